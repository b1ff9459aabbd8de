"""The sampling step: seeded, recorded, optionally stratified by hour and mirrored in folders."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from sqlalchemy import select

from iss.data.sampling import SamplingError, assign_splits, check_proportions, sample_splits, split_ids
from iss.db import schema
from iss.db.engine import get_engine
from iss.db.queries import upsert

PROPORTIONS = {"train": 0.8, "test": 0.1, "valid": 0.1}


def test_proportions_must_sum_to_one():
    assert check_proportions({"valid": 0.1, "train": 0.9}) == {"train": 0.9, "valid": 0.1}
    with pytest.raises(SamplingError, match=r"sums to 0.9; the proportions must sum to 1"):
        check_proportions({"train": 0.8, "test": 0.1})
    with pytest.raises(SamplingError, match=r"unknown split\(s\) \['holdout'\]"):
        check_proportions({"train": 0.5, "holdout": 0.5})
    with pytest.raises(SamplingError, match=">= 0"):
        check_proportions({"train": 1.5, "test": -0.5})


def test_split_is_exact_seeded_and_independent_of_order():
    ids = [f"p{i:04d}" for i in range(1000)]
    splits = assign_splits(ids, PROPORTIONS, seed=7)
    assert {s: int(np.sum(splits == s)) for s in PROPORTIONS} == {"train": 800, "test": 100, "valid": 100}
    np.testing.assert_array_equal(splits, assign_splits(ids, PROPORTIONS, seed=7))
    shuffled = list(np.random.default_rng(0).permutation(ids))
    by_id = dict(zip(shuffled, assign_splits(shuffled, PROPORTIONS, seed=7)))
    assert all(by_id[i] == s for i, s in zip(ids, splits))
    other = assign_splits(ids, PROPORTIONS, seed=8)
    assert np.mean(other != splits) > 0.2  # another seed, another split


def test_split_is_mostly_stable_when_the_collection_grows():
    ids = [f"p{i:04d}" for i in range(1000)]
    before = dict(zip(ids, assign_splits(ids, PROPORTIONS, seed=1)))
    grown = ids + [f"q{i:04d}" for i in range(100)]
    after = dict(zip(grown, assign_splits(grown, PROPORTIONS, seed=1)))
    assert np.mean([before[i] == after[i] for i in ids]) > 0.9


def test_groups_never_straddle_splits():
    ids = [f"p{i:03d}" for i in range(600)]
    groups = [f"h{i // 3}" for i in range(600)]  # three pictures per hour
    splits = assign_splits(ids, PROPORTIONS, seed=3, groups=groups)
    for g in set(groups):
        assert len({s for s, gg in zip(splits, groups) if gg == g}) == 1
    assert abs(np.mean(splits == "train") - 0.8) < 0.05


def _insert_pictures(engine, n: int, start=dt.datetime(2020, 1, 1), minutes: int = 20) -> list[str]:
    rows, ids = [], []
    for i in range(n):
        taken = start + dt.timedelta(minutes=minutes * i)
        pid = taken.strftime("%Y%m%d-%H%M%S")
        ids.append(pid)
        rows.append(dict(pictures_id=pid, filename=f"{pid}.jpg", taken_at=taken, taken_at_source="filename",
                         width=64, height=36, file_size=3, file_mtime=0.0, cache_index=i,
                         ingested_at=dt.datetime(2024, 1, 1)))
    with engine.begin() as conn:
        upsert(conn, schema.pictures, rows)
    return ids


def _splits(engine) -> dict[str, tuple[str, int]]:
    with engine.connect() as conn:
        return {r.pictures_id: (r.split, r.seed) for r in conn.execute(select(schema.splits))}


def test_sample_splits_records_the_split_and_reruns_identically(db_cfg):
    engine = get_engine(db_cfg.database_url)
    ids = _insert_pictures(engine, 200)
    counts = sample_splits(db_cfg, engine)
    assert counts == {"train": 160, "test": 20, "valid": 20}
    first = _splits(engine)
    assert sorted(first) == ids and {seed for _, seed in first.values()} == {42}
    assert len(split_ids(engine, "test")) == 20 and split_ids(engine, "test") == sorted(split_ids(engine, "test"))

    assert sample_splits(db_cfg, engine) == counts
    assert _splits(engine) == first  # same split, no duplicate rows (primary key)
    with engine.connect() as conn:
        assert len(conn.execute(select(schema.splits)).all()) == 200

    reseeded = sample_splits(db_cfg.with_overrides({"sampling": {"seed": 5}}), engine)
    assert reseeded == counts and {seed for _, seed in _splits(engine).values()} == {5}
    assert _splits(engine) != first
    with pytest.raises(SamplingError, match="unknown"):
        split_ids(engine, "holdout")
    engine.dispose()


def test_stratified_by_hour_train_and_test_share_no_hour(db_cfg):
    engine = get_engine(db_cfg.database_url)
    _insert_pictures(engine, 300, minutes=15)  # four frames per hour
    cfg = db_cfg.with_overrides({"sampling": {"stratify_by_hour": True}})
    counts = sample_splits(cfg, engine)
    assert sum(counts.values()) == 300 and abs(counts["train"] - 240) <= 8
    with engine.connect() as conn:
        rows = conn.execute(select(schema.pictures.c.taken_at, schema.splits.c.split)
                            .join(schema.splits, schema.splits.c.pictures_id == schema.pictures.c.pictures_id)).all()
    hours: dict[str, set] = {}
    for taken_at, split in rows:
        hours.setdefault(taken_at.strftime("%Y%m%d%H"), set()).add(split)
    assert all(len(s) == 1 for s in hours.values())
    assert {next(iter(s)) for s in hours.values()} == {"train", "test", "valid"}
    engine.dispose()


def test_bad_proportions_in_config_fail_before_writing(db_cfg):
    engine = get_engine(db_cfg.database_url)
    _insert_pictures(engine, 10)
    with pytest.raises(SamplingError, match="must sum to 1"):
        sample_splits(db_cfg.with_overrides({"sampling": {"proportions": {"train": 0.7, "test": 0.1}}}), engine)
    assert _splits(engine) == {}
    engine.dispose()


def test_copy_to_dirs_links_pictures_and_follows_a_new_seed(cfg):
    engine = get_engine(cfg.database_url)
    ids = _insert_pictures(engine, 30)
    folder = cfg.path("collections")
    folder.mkdir(parents=True)
    for pid in ids:
        (folder / f"{pid}.jpg").write_bytes(pid.encode())
    run_cfg = cfg.with_overrides({"sampling": {"copy_to_dirs": True}})
    counts = sample_splits(run_cfg, engine)
    splits_dir = cfg.path("splits_dir")

    def listing():
        return {s: sorted(p.stem for p in (splits_dir / s).iterdir()) for s in ("train", "test", "valid")}

    assert {s: len(v) for s, v in listing().items()} == counts
    assert listing()["test"] == split_ids(engine, "test")
    one = next((splits_dir / "train").iterdir())
    assert one.stat().st_ino == (folder / one.name).stat().st_ino  # a hard link, no extra space

    sample_splits(run_cfg, engine)  # idempotent
    assert {s: len(v) for s, v in listing().items()} == counts
    sample_splits(run_cfg.with_overrides({"sampling": {"seed": 9}}), engine)
    assert listing()["valid"] == split_ids(engine, "valid")  # files moved with the new split
    assert sum(len(v) for v in listing().values()) == 30
    engine.dispose()
