"""The picture folders that ``bench-peers`` and ``bench-e2e`` run every tool on, made once and
cached under ``data/bench/``.

Each folder is laid out as the demo generator lays it out, which is what ``sync_collections``
reads by default: ``collections/<id>.<ext>`` (the pictures), ``labels.csv``
(``pictures_id,kind``: the known kind of each picture, used only to score clusterings) and,
for the demo, ``history/history.txt``.

- ``demo_folder(n)``: ``n`` generated ISS-like 1280x720 JPEG frames (``iss.data.demo``, seed 0:
  the 2,000-frame one is ``make demo``'s collection). The folder name carries a hash of the
  generator's source, so a changed generator gets a new folder instead of stale frames.
- ``npz_folder(name, n)``: a reference data set (``mnist_10k``, ``fashion_mnist``, from
  ``iss.config.datasets_dir()``) as 28x28 grayscale PNG files; ``n`` below the set's size takes
  a seeded stratified sample (the same share of every class).
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np

from benchmarks.common import ROOT

BENCH_DATA = ROOT / "data" / "bench"
DONE = ".complete"  # written last: a folder without it is unfinished (an interrupted run) and is completed


def _done(folder: Path) -> dict | None:
    marker = folder / DONE
    return json.loads(marker.read_text()) if marker.is_file() else None


def _finish(folder: Path, record: dict) -> Path:
    (folder / DONE).write_text(json.dumps(record, indent=2) + "\n")
    return folder


def generator_hash() -> str:
    """First 8 hex digits of the SHA-1 of ``iss/data/demo.py`` (the demo frames' recipe)."""
    return hashlib.sha1((ROOT / "iss" / "data" / "demo.py").read_bytes()).hexdigest()[:8]


def demo_folder(n: int, seed: int = 0, size: tuple[int, int] = (1280, 720), progress: bool = True) -> Path:
    """A folder of ``n`` generated demo frames, generated on first use (resumes an interrupted one).

    Returns
    -------
    Path
        ``data/bench/demo-<n>-s<seed>-<w>x<h>-<generator hash>/``.
    """
    from iss.data.demo import generate_collection

    folder = BENCH_DATA / f"demo-{n}-s{seed}-{size[0]}x{size[1]}-{generator_hash()}"
    if _done(folder):
        return folder
    print(f"generating {n} demo frames at {size[0]}x{size[1]} into {folder} (once; cached)", flush=True)
    summary = generate_collection(folder, n=n, seed=seed, size=size, progress=progress)
    return _finish(folder, {"kind": "demo", "n": n, "seed": seed, "size": list(size),
                            "generate_s": round(summary.seconds, 1), "kinds": dict(summary.kinds)})


def stratified_indices(y: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of ``n`` items of ``y``, each class in proportion to its share (seeded).

    Raises
    ------
    ValueError
        If ``n`` is not in ``[1, len(y)]``.
    """
    if not 1 <= n <= len(y):
        raise ValueError(f"n={n}: expected between 1 and the {len(y)} items available")
    if n == len(y):
        return np.arange(len(y))
    from sklearn.model_selection import train_test_split

    chosen, _ = train_test_split(np.arange(len(y)), train_size=n, stratify=y, random_state=seed)
    return np.sort(chosen)


def npz_folder(name: str, n: int | None = None, seed: int = 0) -> Path:
    """A reference data set written as PNG files (on first use), ``n`` of them stratified.

    Parameters
    ----------
    name : {"mnist_10k", "fashion_mnist"}
    n : int, optional
        Pictures to write (default: all).
    seed : int, default=0
        Seed of the stratified sample.

    Returns
    -------
    Path
        ``data/bench/<name>-<n>/``.
    """
    from PIL import Image

    from benchmarks.quality import load_dataset

    x, y = load_dataset(name)
    n = len(x) if n is None else n
    folder = BENCH_DATA / f"{name}-{n}"
    if _done(folder):
        return folder
    print(f"writing {n} pictures of {name} as PNG into {folder} (once; cached)", flush=True)
    if folder.exists():
        shutil.rmtree(folder)
    pictures = folder / "collections"
    pictures.mkdir(parents=True)
    chosen = stratified_indices(y, n, seed)
    with (folder / "labels.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["pictures_id", "kind"])
        for i in chosen.tolist():
            picture_id = f"{name}-{i:05d}"
            Image.fromarray(x[i, ..., 0]).save(pictures / f"{picture_id}.png")
            writer.writerow([picture_id, int(y[i])])
    return _finish(folder, {"kind": "npz", "name": name, "n": n, "seed": seed,
                            "classes": {str(c): int((y[chosen] == c).sum()) for c in np.unique(y)}})


def read_labels(folder: Path) -> dict[str, str]:
    """``{pictures_id: kind}`` from a folder's ``labels.csv``."""
    with (folder / "labels.csv").open(newline="") as fh:
        return {row["pictures_id"]: row["kind"] for row in csv.DictReader(fh)}


def picture_files(folder: Path) -> list[Path]:
    """The pictures of a folder's ``collections/``, sorted by name."""
    return sorted(p for p in (folder / "collections").iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
