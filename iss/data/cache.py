"""The ingest cache: every picture decoded once, at model input size and thumbnail size.

Layout of a cache folder (append-only, so ingesting new pictures never rewrites old ones)::

    meta.json     {"input_size": [w, h], "thumb_size": [w, h], "version": 1}
    ids.txt       one picture id per line, in row order
    inputs.u8     uint8 rows of shape (h, w, 3) at input size, raw
    thumbs.u8     uint8 rows of shape (h, w, 3) at thumbnail size, raw

Rows are read through ``numpy.memmap``, so training, plots and mosaics never decode a JPEG
again and memory stays bounded by what is indexed. Pixel rows are written before their ids:
a crash mid-append leaves extra bytes that the next open truncates, never an id without pixels.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from iss.artefacts import write_text

CACHE_VERSION = 1


class CacheError(Exception):
    """The cache folder is inconsistent with what was asked of it."""


class ImageCache:
    """Append-only cache of decoded pictures keyed by picture id.

    Parameters
    ----------
    root : str or Path
        The cache folder (created on first append).
    input_size, thumb_size : (int, int), optional
        ``(width, height)``. Required to create a cache; checked against an existing one.
    """

    def __init__(self, root: str | Path, input_size: Sequence[int] | None = None,
                 thumb_size: Sequence[int] | None = None):
        self.root = Path(root)
        meta_path = self.root / "meta.json"
        if meta_path.exists():
            try:
                meta = json.loads(meta_path.read_text())
            except ValueError as exc:
                raise CacheError(f"{meta_path} is damaged ({exc}); delete {self.root} and run `make populate_db` "
                                 f"to rebuild the cache") from exc
            for name, asked in (("input_size", input_size), ("thumb_size", thumb_size)):
                if asked is not None and list(asked) != meta[name]:
                    raise CacheError(
                        f"{self.root}: cache holds {name} {meta[name]} but {list(asked)} was asked; "
                        f"delete the folder to rebuild it at the new size"
                    )
            self.input_size, self.thumb_size = tuple(meta["input_size"]), tuple(meta["thumb_size"])
        else:
            if input_size is None or thumb_size is None:
                raise CacheError(f"no ingest cache at {self.root}; run `make populate_db` first")
            self.input_size, self.thumb_size = tuple(input_size), tuple(thumb_size)
        self._ids: list[str] = []
        self._index: dict[str, int] = {}
        self._load_ids()

    # --- shapes -----------------------------------------------------------------
    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(height, width, 3)`` of a model input row."""
        return (self.input_size[1], self.input_size[0], 3)

    @property
    def thumb_shape(self) -> tuple[int, int, int]:
        """``(height, width, 3)`` of a thumbnail row."""
        return (self.thumb_size[1], self.thumb_size[0], 3)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, picture_id: str) -> bool:
        return picture_id in self._index

    @property
    def ids(self) -> list[str]:
        """Picture ids in row order."""
        return list(self._ids)

    def index_of(self, ids: Sequence[str]) -> np.ndarray:
        """Row numbers of ``ids``, shape (n,). Raises KeyError naming the first unknown id."""
        try:
            return np.fromiter((self._index[i] for i in ids), dtype=np.int64, count=len(ids))
        except KeyError as exc:
            raise KeyError(f"picture {exc.args[0]!r} is not in the ingest cache {self.root}; "
                           f"run `make populate_db`") from None

    # --- reading ----------------------------------------------------------------
    def _memmap(self, name: str, shape: tuple[int, int, int]) -> np.ndarray:
        n = len(self._ids)
        if n == 0:
            return np.zeros((0, *shape), dtype=np.uint8)
        return np.memmap(self.root / name, dtype=np.uint8, mode="r", shape=(n, *shape))

    @property
    def inputs(self) -> np.ndarray:
        """All model-input rows, uint8 memmap of shape (n, h, w, 3)."""
        return self._memmap("inputs.u8", self.input_shape)

    @property
    def thumbs(self) -> np.ndarray:
        """All thumbnail rows, uint8 memmap of shape (n, th, tw, 3)."""
        return self._memmap("thumbs.u8", self.thumb_shape)

    def size_for(self, shape: Sequence[int]) -> str:
        """``"input"`` or ``"thumb"``: which cached pictures have ``shape`` ``(h, w, 3)`` (a model's input).

        Raises
        ------
        CacheError
            Neither does (names both and the fix).
        """
        shape = tuple(int(s) for s in shape)
        if shape == self.input_shape:
            return "input"
        if shape == self.thumb_shape:
            return "thumb"
        raise CacheError(f"{self.root}: a model taking pictures of {shape} cannot be fed from this cache, which holds "
                         f"{self.input_shape} inputs and {self.thumb_shape} thumbnails; train the model again "
                         f"(training.input: input | thumb) or re-ingest at that size")

    def pictures(self, shape: Sequence[int]) -> np.ndarray:
        """All rows of shape ``(h, w, 3)`` = ``shape``: the inputs or the thumbnails (memmap), see :meth:`size_for`."""
        return self.inputs if self.size_for(shape) == "input" else self.thumbs

    def pictures_file(self, shape: Sequence[int]) -> Path:
        """The raw uint8 file of the rows of ``shape`` (``inputs.u8`` or ``thumbs.u8``): what another process
        (a Dask task) maps to read some rows without this object, see :func:`read_rows`."""
        return self.root / ("inputs.u8" if self.size_for(shape) == "input" else "thumbs.u8")

    def get_pictures(self, ids: Sequence[str], shape: Sequence[int]) -> np.ndarray:
        """Rows of shape ``shape`` for ``ids``, uint8 array (len(ids), h, w, 3)."""
        return self.get_inputs(ids) if self.size_for(shape) == "input" else self.get_thumbs(ids)

    def get_inputs(self, ids: Sequence[str]) -> np.ndarray:
        """Model-input rows for ``ids``, uint8 array of shape (len(ids), h, w, 3)."""
        return np.asarray(self.inputs[self.index_of(ids)])

    def get_thumbs(self, ids: Sequence[str]) -> np.ndarray:
        """Thumbnail rows for ``ids``, uint8 array of shape (len(ids), th, tw, 3)."""
        return np.asarray(self.thumbs[self.index_of(ids)])

    # --- writing ----------------------------------------------------------------
    def _load_ids(self) -> None:
        ids_path = self.root / "ids.txt"
        text = ids_path.read_text() if ids_path.exists() else ""
        ids = text.splitlines()
        if text and not text.endswith("\n"):
            ids = ids[:-1]  # an id cut by a crash mid-write is not an id
        rows = [self._rows_in(name, shape) for name, shape in
                (("inputs.u8", self.input_shape), ("thumbs.u8", self.thumb_shape))]
        n = min([len(ids), *rows])
        self._ids = ids[:n]
        self._index = {pid: i for i, pid in enumerate(self._ids)}
        # Files hold more than the complete rows: truncate before the next append (not on every one).
        self._dirty = len(text) != sum(len(i) + 1 for i in self._ids) or any(r != n for r in rows)

    def _rows_in(self, name: str, shape: tuple[int, int, int]) -> int:
        path = self.root / name
        return path.stat().st_size // int(np.prod(shape)) if path.exists() else 0

    def _truncate_to_ids(self) -> None:
        """Drop bytes or ids beyond the last complete row (left by an interrupted append)."""
        n = len(self._ids)
        for name, shape in (("inputs.u8", self.input_shape), ("thumbs.u8", self.thumb_shape)):
            path = self.root / name
            if path.exists() and path.stat().st_size != n * int(np.prod(shape)):
                os.truncate(path, n * int(np.prod(shape)))
        ids_path = self.root / "ids.txt"
        ids_path.write_text("".join(f"{i}\n" for i in self._ids))

    def append(self, ids: Sequence[str], inputs: np.ndarray, thumbs: np.ndarray) -> int:
        """Append rows for new ids (ids already cached are skipped).

        Parameters
        ----------
        ids : sequence of str, length n
        inputs : uint8 array, shape (n, h, w, 3) at input size
        thumbs : uint8 array, shape (n, th, tw, 3) at thumbnail size

        Returns
        -------
        int
            Rows actually appended.
        """
        inputs, thumbs = np.asarray(inputs, dtype=np.uint8), np.asarray(thumbs, dtype=np.uint8)
        if inputs.shape[1:] != self.input_shape or thumbs.shape[1:] != self.thumb_shape:
            raise CacheError(f"append expects rows of {self.input_shape} and {self.thumb_shape}, "
                             f"got {inputs.shape[1:]} and {thumbs.shape[1:]}")
        if not (len(ids) == len(inputs) == len(thumbs)):
            raise CacheError(f"append got {len(ids)} ids, {len(inputs)} inputs, {len(thumbs)} thumbs")
        seen: set[str] = set()  # not a copy of the index: appends stay O(batch) on a large cache
        keep = []
        for i, pid in enumerate(ids):  # skip cached ids and repeats within the batch
            if pid not in self._index and pid not in seen:
                seen.add(pid)
                keep.append(i)
        if not keep:
            return 0
        self.root.mkdir(parents=True, exist_ok=True)
        meta_path = self.root / "meta.json"
        if not meta_path.exists():
            # atomic: a run killed here must not leave an empty meta.json that stops every re-run
            write_text(meta_path, json.dumps({"input_size": list(self.input_size),
                                              "thumb_size": list(self.thumb_size), "version": CACHE_VERSION}))
        if self._dirty:
            self._truncate_to_ids()
        self._dirty = True  # until every file of this append is written
        if len(keep) < len(ids):
            inputs, thumbs = inputs[keep], thumbs[keep]
        with open(self.root / "inputs.u8", "ab") as f:
            f.write(np.ascontiguousarray(inputs).data)  # the array's own buffer: no extra copy
        with open(self.root / "thumbs.u8", "ab") as f:
            f.write(np.ascontiguousarray(thumbs).data)
        with open(self.root / "ids.txt", "a") as f:
            f.write("".join(f"{ids[i]}\n" for i in keep))
        for i in keep:
            self._index[ids[i]] = len(self._ids)
            self._ids.append(ids[i])
        self._dirty = False
        return len(keep)


def read_rows(path: str | Path, n_rows: int, shape: Sequence[int], rows: np.ndarray) -> np.ndarray:
    """Rows ``rows`` of a cache file of ``n_rows`` pictures of ``shape`` (see :meth:`ImageCache.pictures_file`),
    as a uint8 array; only those rows are read."""
    pictures = np.memmap(path, dtype=np.uint8, mode="r", shape=(int(n_rows), *(int(s) for s in shape)))
    return np.asarray(pictures[np.asarray(rows)])
