"""The ``sampling`` step: a seeded train/test/valid split of the pictures, recorded in the database.

Reads the ``pictures`` table and the ``sampling`` config section. Writes the ``splits`` table
(one row per picture: split and seed) and, with ``sampling.copy_to_dirs``, hard links (or
copies) of the pictures in ``paths.splits_dir/{train,test,valid}/`` for directory-based loaders.

How pictures are assigned: every picture (or, with ``stratify_by_hour``, every hour of
pictures) gets a pseudo-random rank from a hash of ``(seed, key)``; walking the ranks in
order, the first ``proportions[train]`` of the pictures go to train, the next to test, and
so on. So the split is exact to a picture (without stratification), identical on every
re-run with the same seed, independent of the order the database returns rows in, and
stable when the collection grows (a picture's rank never changes; only the boundaries move a
little). With ``stratify_by_hour`` all the pictures of one clock hour share a split, so
near-identical consecutive frames cannot be in train and test at once.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.engine import Engine

from iss.config import Config
from iss.data.ids import split_name
from iss.db import schema
from iss.db.queries import upsert

log = logging.getLogger(__name__)

SPLITS = ("train", "test", "valid")


class SamplingError(ValueError):
    """Bad sampling settings."""


def check_proportions(proportions: Mapping[str, float], where: str = "sampling.proportions") -> dict[str, float]:
    """Validated proportions, in the order train, test, valid.

    Raises
    ------
    SamplingError
        Unknown split names, negative values, or a sum other than 1.
    """
    if not isinstance(proportions, Mapping) or not proportions:
        raise SamplingError(f"{where} is {proportions!r}; expected a mapping like {{train: 0.8, test: 0.1, valid: 0.1}}")
    unknown = sorted(set(proportions) - set(SPLITS))
    if unknown:
        raise SamplingError(f"{where} has unknown split(s) {unknown}; expected some of {list(SPLITS)}")
    try:
        values = {name: float(proportions[name]) for name in SPLITS if name in proportions}
    except (TypeError, ValueError):
        raise SamplingError(f"{where} is {dict(proportions)!r}; expected numbers") from None
    if any(v < 0 or not math.isfinite(v) for v in values.values()):
        raise SamplingError(f"{where} is {values}; expected proportions >= 0")
    total = sum(values.values())
    if abs(total - 1.0) > 1e-6:
        raise SamplingError(f"{where} is {values}, which sums to {total:g}; the proportions must sum to 1")
    return values


def _rank(seed: int, key: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest(), "big")


def assign_splits(ids: Sequence[str], proportions: Mapping[str, float], seed: int,
                  groups: Sequence[str] | None = None) -> np.ndarray:
    """The split of each id.

    Parameters
    ----------
    ids : sequence of str, length n
    proportions : mapping of split name to float
        Summing to 1 (see :func:`check_proportions`).
    seed : int
    groups : sequence of str, length n, optional
        Pictures of one group always share a split (e.g. their hour).

    Returns
    -------
    ndarray of str, shape (n,)
    """
    proportions = check_proportions(proportions, "proportions")
    n = len(ids)
    result = np.empty(n, dtype=object)
    if n == 0:
        return result.astype(str)
    keys = list(ids) if groups is None else list(groups)
    members: dict[str, list[int]] = {}
    for index, key in enumerate(keys):
        members.setdefault(key, []).append(index)
    ordered = sorted(members, key=lambda key: (_rank(seed, key), key))
    names = list(proportions)
    bounds = np.cumsum([proportions[name] for name in names]) * n
    position = 0
    for key in ordered:
        size = len(members[key])
        # The group goes where its middle falls: proportions exact for single pictures.
        middle = position + size / 2
        split = names[min(int(np.searchsorted(bounds, middle, side="right")), len(names) - 1)]
        result[members[key]] = split
        position += size
    return result.astype(str)


def hour_key(taken_at, picture_id: str) -> str:
    """The stratification group of a picture: its clock hour, or its id when it has no time."""
    return taken_at.strftime("hour:%Y%m%d%H") if taken_at is not None else f"id:{picture_id}"


def sample_splits(cfg: Config, engine: Engine, batch_size: int = 5000) -> dict[str, int]:
    """Split the pictures into train/test/valid and record the split in the ``splits`` table.

    Parameters
    ----------
    cfg : Config
        Uses ``sampling.seed``, ``sampling.proportions``, ``sampling.stratify_by_hour``,
        ``sampling.copy_to_dirs`` (+ ``sampling.link``) and ``paths.splits_dir``.
    engine : Engine

    Returns
    -------
    dict of str to int
        Number of pictures in each split.
    """
    proportions = check_proportions(cfg.get("sampling.proportions"))
    seed = int(cfg.get("sampling.seed"))
    stratify = bool(cfg.get("sampling.stratify_by_hour"))
    with engine.connect() as conn:
        pictures = conn.execute(select(schema.pictures.c.pictures_id, schema.pictures.c.taken_at,
                                       schema.pictures.c.filename).order_by(schema.pictures.c.pictures_id)).all()
        existing = {r.pictures_id: (r.split, r.seed) for r in conn.execute(select(schema.splits))}
    ids = [p.pictures_id for p in pictures]
    groups = [hour_key(p.taken_at, p.pictures_id) for p in pictures] if stratify else None
    splits = assign_splits(ids, proportions, seed, groups)
    changed = [dict(pictures_id=i, split=str(s), seed=seed) for i, s in zip(ids, splits)
               if existing.get(i) != (str(s), seed)]
    for start in range(0, len(changed), batch_size):
        with engine.begin() as conn:
            upsert(conn, schema.splits, changed[start:start + batch_size])
    counts = {name: int(np.sum(splits == name)) for name in proportions}
    log.info("split of %d pictures (seed %d%s): %s; %d rows written", len(ids), seed,
             ", by hour" if stratify else "", counts, len(changed))
    if cfg.get("sampling.copy_to_dirs"):
        # flat split folders: a picture of a sub-folder, or with an odd name, appears as <id><extension>
        copy_to_dirs(cfg.path("collections"), cfg.path("splits_dir"),
                     {p.filename: (str(s), p.pictures_id + split_name(p.filename)[1]) for p, s in zip(pictures, splits)},
                     link=bool(cfg.get("sampling.link")))
    return counts


def copy_to_dirs(collection: Path, splits_dir: Path, assignment: Mapping[str, str | tuple[str, str]],
                 link: bool = True) -> dict:
    """Mirror the split as ``splits_dir/<split>/<file>`` (hard links when possible, else copies).

    ``assignment`` maps a file (relative to ``collection``) to its split, or to ``(split, name in the
    split folder)``.

    Idempotent: files already in place are kept, files no longer in a split (e.g. after a
    new seed) are removed from it.

    Returns
    -------
    dict
        ``placed``, ``kept``, ``removed``, ``missing`` counts.
    """
    stats = {"placed": 0, "kept": 0, "removed": 0, "missing": 0}
    wanted: dict[str, set[str]] = {name: set() for name in SPLITS}
    source: dict[str, str] = {}
    for filename, target in assignment.items():
        split, name = target if isinstance(target, tuple) else (target, filename)
        wanted.setdefault(split, set()).add(name)
        source[name] = filename
    for split, filenames in wanted.items():
        folder = splits_dir / split
        folder.mkdir(parents=True, exist_ok=True)
        with os.scandir(folder) as entries:
            present = {e.name for e in entries if e.is_file()}
        for name in present - filenames:
            (folder / name).unlink()
            stats["removed"] += 1
        for name in sorted(filenames):
            src, dst = collection / source[name], folder / name
            try:
                src_stat = src.stat()
            except FileNotFoundError:
                stats["missing"] += 1
                continue
            if name in present:
                dst_stat = dst.stat()
                if dst_stat.st_ino == src_stat.st_ino or (dst_stat.st_size == src_stat.st_size and
                                                          int(dst_stat.st_mtime) == int(src_stat.st_mtime)):
                    stats["kept"] += 1
                    continue
                dst.unlink()
            if link:
                try:
                    os.link(src, dst)
                    stats["placed"] += 1
                    continue
                except OSError:  # another file system, or links not supported: copy instead
                    pass
            shutil.copy2(src, dst)
            stats["placed"] += 1
    if stats["missing"]:
        log.warning("%d pictures of the split are missing from %s", stats["missing"], collection)
    log.info("split folders in %s: %s", splits_dir, stats)
    return stats


def split_ids(engine: Engine, split: str) -> list[str]:
    """Ids of the pictures in ``split`` (``train``, ``test`` or ``valid``), sorted.

    Raises
    ------
    SamplingError
        For an unknown split name.
    """
    if split not in SPLITS:
        raise SamplingError(f"split {split!r} is unknown; expected one of {list(SPLITS)}")
    with engine.connect() as conn:
        return list(conn.execute(select(schema.splits.c.pictures_id).where(schema.splits.c.split == split)
                                 .order_by(schema.splits.c.pictures_id)).scalars())
