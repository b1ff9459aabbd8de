"""The artefact catalog: every file or table that passes between steps, with its one writer and its one reader.

Each step of :mod:`iss.pipeline` names what it reads and writes from :data:`ARTEFACTS`. An entry gives
where the artefact lives (its layout under a ``paths.*`` key of the config, and the function that
computes that path), the one function that writes it and the one that reads it back, as
``"module:attribute"`` names resolved on use (:meth:`Artefact.resolve`), so that importing the catalog
imports neither TensorFlow nor the steps. A new artefact is one entry here; a second reader or writer
of an existing one is a bug (``tests/test_artefacts.py`` resolves every name).

The module also owns the one way files are replaced: :func:`atomic_path` (write under a hidden
temporary name in the same folder, then ``os.replace``), and :func:`replace_folder` for folders.
A crash or an error therefore never leaves half a file where a later step, or a re-run, would take
it for a finished one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


# --------------------------------------------------------------------------------------------
# Atomic replacement
# --------------------------------------------------------------------------------------------

def partial_name(path: str | os.PathLike) -> Path:
    """The temporary name :func:`atomic_path` writes ``path`` under: ``.<stem>.partial<suffix>``.

    Hidden (collection listings skip it), in the same folder (``os.replace`` is then a rename on
    one file system), and with the final suffix, for writers that pick a format by extension
    (Keras ``.keras``, Pillow).
    """
    path = Path(path)
    return path.with_name(f".{path.stem}.partial{path.suffix}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path`` in one rename.

    The parent folder is created. If the block raises, the temporary file is removed and
    ``path`` is left as it was.

    Examples
    --------
    >>> with atomic_path(folder / "latents.npz") as tmp:  # doctest: +SKIP
    ...     with open(tmp, "wb") as f:
    ...         np.savez(f, ids=ids, latents=latents)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.is_file():
            tmp.unlink(missing_ok=True)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Replace ``path`` with ``data`` atomically (:func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Replace ``path`` with ``text`` atomically (:func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding=encoding)
    return Path(path)


@contextlib.contextmanager
def replace_folder(folder: str | os.PathLike) -> Iterator[Path]:
    """Yield a new hidden folder beside ``folder``; on success it takes ``folder``'s place.

    The previous folder is moved aside before the new one is renamed in and deleted after, so an
    interruption leaves either the old or the new folder complete (plus, at worst, a hidden
    ``.<name>.old-*`` one). If the block raises, the new folder is deleted and ``folder`` is kept.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        yield tmp
        old = None
        if folder.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old-", dir=folder.parent))
            os.replace(folder, old)  # onto the empty folder just made: a rename
        tmp.rename(folder)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# The catalog
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Artefact:
    """One artefact that passes between steps.

    Attributes
    ----------
    name : str
        Its key in :data:`ARTEFACTS` and in :data:`iss.pipeline.STEPS`.
    layout : str
        Where it lives: a ``paths.*`` key of the config, then the layout below it.
    locate : str
        ``"module:function"`` giving its path (or folder) from the config.
    writer, reader : str
        ``"module:attribute"`` of the one function (or method) that writes it and of the one that
        reads it. ``reader`` is empty for end products, which people open.
    """

    name: str
    layout: str
    locate: str
    writer: str
    reader: str = ""

    def resolve(self, role: str):
        """The function behind ``role`` (``"locate"``, ``"writer"`` or ``"reader"``), imported now."""
        target = getattr(self, role)
        if not target:
            raise LookupError(f"artefact {self.name!r} has no {role} (it is an end product)")
        from iss.registries import load_entry

        return load_entry(target)


ARTEFACTS: dict[str, Artefact] = {a.name: a for a in (
    Artefact("source", "paths.source/*.jpg (+ history.txt): the collection as the camera or the demo left it",
             "iss.config:Config.path", "iss.pipeline:generate_demo", "iss.data.sync:sync_collections"),
    Artefact("collection", "paths.collections/**/<picture>: the synced pictures (never modified after)",
             "iss.config:Config.path", "iss.data.sync:sync_collections", "iss.data.listing:list_folder"),
    Artefact("cache", "paths.cache/: decoded inputs and thumbnails of every ingested picture, in ingest order",
             "iss.config:Config.path", "iss.data.ingest:populate_db", "iss.data.cache:ImageCache"),
    Artefact("pictures", "database: pictures, pictures_location, pictures_rejected",
             "iss.config:Config.database_url", "iss.data.ingest:populate_db",
             "iss.visualization.data:load_pictures_frame"),
    Artefact("splits", "database: splits (train/test/valid, seeded)",
             "iss.config:Config.database_url", "iss.data.sampling:sample_splits", "iss.data.sampling:split_ids"),
    Artefact("model", "paths.models/<model_type>/<model_name>/: encoder.keras, decoder.keras, record.json, "
             "encoder.tflite", "iss.models.store:model_dir", "iss.models.training:save_model",
             "iss.models.encode:load_encoder"),
    Artefact("latents", "paths.latents/<model_type>/<model_name>/latents.npz: ids, latents, encoder_sha256",
             "iss.models.store:latents_path", "iss.models.store:write_latents", "iss.models.store:read_latents"),
    Artefact("features", "paths.features/<name>/: features.npz and record.json (pixel and auto features)",
             "iss.features.store:features_dir", "iss.features.store:write_features",
             "iss.features.store:read_features"),
    Artefact("clustering", "paths.models/clustering/<type>_<model>_v<version>/: params.json, state.joblib",
             "iss.clustering.registry:run_dir", "iss.clustering.base:ClusteringBase.save",
             "iss.clustering.base:ClusteringBase.load"),
    Artefact("runs", "database: clustering_runs, pictures_embedding (x, y, label, silhouette)",
             "iss.config:Config.database_url", "iss.clustering.registry:run_clustering",
             "iss.visualization.data:load_run_frame"),
    Artefact("search_index", "paths.processed/search/<model_type>/<model_name>/: index.npz, index.json, "
             "novelty.npz, novelty.json", "iss.search.build:index_dir", "iss.search.build:save_index",
             "iss.search.build:load_index"),
    Artefact("reports", "paths.reports/<run>/ and index.html: run pages and figures",
             "iss.config:Config.path", "iss.visualization.reports:render_run_reports"),
    Artefact("facets", "paths.reports/facets*.html + sprite atlas: the collection explorers",
             "iss.config:Config.path", "iss.visualization.facets:build_facets"),
    Artefact("posters", "paths.posters/<poster_id>.jpg (+ .pdf), database: posters, posters_slots",
             "iss.config:Config.path", "iss.posters.render:generate_posters"),
)}


def artefact(name: str) -> Artefact:
    """The catalog entry ``name``; a ``KeyError`` listing the names otherwise."""
    try:
        return ARTEFACTS[name]
    except KeyError:
        raise KeyError(f"no artefact {name!r}; the catalog has {', '.join(ARTEFACTS)}") from None
