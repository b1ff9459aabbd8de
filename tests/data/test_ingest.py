"""The populate_db step: messy folders, re-runs, failures mid-step, the cache, on SQLite and MariaDB."""

from __future__ import annotations

import datetime as dt
import io
import os
import shutil

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

import iss.data.ingest as ingest
from iss.data.cache import ImageCache
from iss.data.images import decode_picture
from iss.data.ingest import IngestError, populate_db
from iss.db import schema
from iss.db.engine import get_engine
from iss.db.queries import count

from .picture_files import SKIPPED_KINDS, frame, jpeg_bytes, make_messy_folder, write_frames


@pytest.fixture
def ingest_cfg(db_cfg):
    """``db_cfg`` (each backend) with in-process decoding and small batches."""
    return db_cfg.with_overrides({"ingest": {"workers": 1, "batch_size": 4, "chunk_size": 2}})


@pytest.fixture
def db(ingest_cfg):
    engine = get_engine(ingest_cfg.database_url)
    yield engine
    engine.dispose()


def _pictures(engine) -> dict[str, dict]:
    with engine.connect() as conn:
        return {r.pictures_id: r._asdict() for r in conn.execute(select(schema.pictures))}


def _rejected(engine) -> dict[str, str]:
    with engine.connect() as conn:
        return {r.filename: r.reason for r in conn.execute(select(schema.pictures_rejected))}


def test_messy_folder_ingests_every_good_file_and_reports_each_bad_one(ingest_cfg, db):
    good, bad = make_messy_folder(ingest_cfg.path("collections"))
    summary = populate_db(ingest_cfg, db, progress=False)

    assert sorted(_pictures(db)) == sorted(good)
    assert _rejected(db) == {**bad, **SKIPPED_KINDS}
    assert {f: r for f, r, _ in summary.rejected_files} == bad
    assert {f: r for f, r, _ in summary.skipped_files} == SKIPPED_KINDS
    assert summary.accepted == len(good) and summary.decoded == len(good) + 4  # + empty, truncated, text, bomb
    assert summary.rejected == {"empty": 1, "not_image": 1, "too_large": 1, "truncated": 1}
    assert summary.folders == 2  # the top folder and the empty sub-folder
    text = summary.format()
    for filename, reason in bad.items():
        assert f"rejected {filename}: {reason}" in text
    for filename, reason in SKIPPED_KINDS.items():
        assert f"not read {filename}: {reason}" in text
    assert _pictures(db)["bad_id_with_spaces_c73c0ecb"]["filename"] == "bad id with spaces.jpg"
    csv_rows = ingest_cfg.path("reports").joinpath("skipped_files.csv").read_text(encoding="utf-8-sig").splitlines()
    assert csv_rows[0] == "filename,reason,detail,rejected_at" and len(csv_rows) == 1 + len(bad) + len(SKIPPED_KINDS)
    rows = _pictures(db)
    assert (rows["20200101-050000"]["width"], rows["20200101-050000"]["height"]) == (180, 320)  # EXIF-rotated
    assert {i: r["taken_at_source"] for i, r in rows.items() if r["taken_at_source"] != "filename"} == {
        "bad_id_with_spaces_c73c0ecb": "mtime", "x" * 55 + "_50f3c877": "mtime"}  # no time in those names
    cache = ImageCache(ingest_cfg.path("cache"))
    assert sorted(cache.ids) == sorted(good)
    for pid, row in rows.items():
        assert cache.index_of([pid])[0] == row["cache_index"]
    red = cache.get_thumbs(["20200101-010000"])[0].reshape(-1, 3).mean(0)  # half-transparent red PNG on black
    assert 120 < red[0] < 135 and red[1] < 5


def test_second_run_decodes_nothing_and_writes_no_duplicates(ingest_cfg, db, monkeypatch):
    good, bad = make_messy_folder(ingest_cfg.path("collections"))
    write_frames(ingest_cfg.path("collections"), 6)
    populate_db(ingest_cfg, db, progress=False)
    with db.connect() as conn:  # closed at once: an open transaction would block the next test's DROP TABLE
        before = (count(conn, schema.pictures), count(conn, schema.pictures_rejected))

    calls = []
    real_decode = ingest.decode_picture
    monkeypatch.setattr(ingest, "decode_picture", lambda *a, **k: calls.append(a) or real_decode(*a, **k))
    summary = populate_db(ingest_cfg, db, progress=False)
    assert calls == [] and summary.decoded == 0 and summary.batches == 0
    assert summary.known == len(good) + 6 and summary.known_rejected == len(bad)
    assert len(summary.skipped_files) == len(SKIPPED_KINDS)  # named again on every run, not rewritten
    with db.connect() as conn:
        assert (count(conn, schema.pictures), count(conn, schema.pictures_rejected)) == before
    assert len(ImageCache(ingest_cfg.path("cache"))) == len(good) + 6

    new = write_frames(ingest_cfg.path("collections"), 3, start=6)
    summary = populate_db(ingest_cfg, db, progress=False)
    assert len(calls) == 3 and summary.decoded == 3 and summary.accepted == 3
    assert set(new) <= set(_pictures(db))


def test_a_fixed_file_is_retried_and_leaves_the_rejected_table(ingest_cfg, db):
    folder = ingest_cfg.path("collections")
    make_messy_folder(folder)
    populate_db(ingest_cfg, db, progress=False)
    (folder / "20200101-000200.jpg").write_bytes(jpeg_bytes(frame(42)))  # the truncated one, re-downloaded
    os.utime(folder / "20200101-000200.jpg", (1e9, 1e9))
    summary = populate_db(ingest_cfg, db, progress=False)
    assert summary.decoded == 1 and summary.accepted == 1
    assert "20200101-000200" in _pictures(db)
    assert "20200101-000200.jpg" not in _rejected(db)


def test_same_stem_other_extension_both_ingested_and_each_keeps_its_id(cfg):
    folder = cfg.path("collections")
    folder.mkdir(parents=True)
    (folder / "IMG_0002.JPG").write_bytes(jpeg_bytes(frame(1)))
    (folder / "IMG_0002.jpg").write_bytes(jpeg_bytes(frame(2)))
    engine = get_engine(cfg.database_url)
    run_cfg = cfg.with_overrides({"ingest": {"workers": 1}})
    populate_db(run_cfg, engine, progress=False)
    assert {i: r["filename"] for i, r in _pictures(engine).items()} == {
        "IMG_0002": "IMG_0002.JPG", "IMG_0002_ce0c2d9f": "IMG_0002.jpg"}
    assert _rejected(engine) == {}
    (folder / "IMG_0002.JPG").unlink()
    (folder / "IMG_0002.png").write_bytes(jpeg_bytes(frame(3)))
    summary = populate_db(run_cfg, engine, progress=False)
    assert summary.known == 1 and summary.accepted == 1
    ids = {r["filename"]: i for i, r in _pictures(engine).items()}
    assert ids["IMG_0002.jpg"] == "IMG_0002_ce0c2d9f" and ids["IMG_0002.png"] == "IMG_0002_dcacb6ee"
    engine.dispose()


def test_failure_in_the_second_batch_leaves_no_partial_batch_and_a_rerun_completes(ingest_cfg, db, monkeypatch):
    ids = write_frames(ingest_cfg.path("collections"), 10)
    real_upsert = ingest.upsert
    calls = {"pictures": 0}

    def failing_upsert(conn, table, rows, *args, **kwargs):
        written = real_upsert(conn, table, rows, *args, **kwargs)  # the rows are sent to the database...
        if table is schema.pictures:
            calls["pictures"] += 1
            if calls["pictures"] == 2:
                raise RuntimeError("injected failure in batch 2")  # ...then the transaction must roll back
        return written

    monkeypatch.setattr(ingest, "upsert", failing_upsert)
    with pytest.raises(RuntimeError, match="injected"):
        populate_db(ingest_cfg, db, progress=False)
    assert sorted(_pictures(db)) == ids[:4]  # batch 1 only (batch_size 4)
    assert ImageCache(ingest_cfg.path("cache")).ids == ids[:4]  # no pixels for uncommitted ids

    monkeypatch.setattr(ingest, "upsert", real_upsert)
    summary = populate_db(ingest_cfg, db, progress=False)
    assert summary.known == 4 and summary.decoded == 6
    rows = _pictures(db)
    assert sorted(rows) == ids
    cache = ImageCache(ingest_cfg.path("cache"))
    assert cache.ids == ids
    assert [rows[i]["cache_index"] for i in ids] == list(range(10))


def test_a_lost_cache_is_rebuilt_by_a_rerun(ingest_cfg, db):
    ids = write_frames(ingest_cfg.path("collections"), 5)
    populate_db(ingest_cfg, db, progress=False)
    expected = ImageCache(ingest_cfg.path("cache")).get_inputs(ids)
    shutil.rmtree(ingest_cfg.path("cache"))
    summary = populate_db(ingest_cfg, db, progress=False)
    assert summary.decoded == 5 and summary.known == 0
    cache = ImageCache(ingest_cfg.path("cache"))
    np.testing.assert_array_equal(cache.get_inputs(ids), expected)
    with db.connect() as conn:
        assert count(conn, schema.pictures) == 5


def test_the_cache_alone_serves_a_training_epoch(ingest_cfg, db, monkeypatch):
    """After ingest, inputs come from the cache: no JPEG is opened, even with the pictures gone."""
    folder = ingest_cfg.path("collections")
    ids = write_frames(folder, 8, size=(1280, 720))
    expected = np.stack([decode_picture(folder / f"{i}.jpg").input for i in ids])
    populate_db(ingest_cfg, db, progress=False)
    shutil.rmtree(folder)

    def no_decoding(*args, **kwargs):
        raise AssertionError("a training epoch must not decode pictures")

    monkeypatch.setattr(Image, "open", no_decoding)
    cache = ImageCache(ingest_cfg.path("cache"))
    batch = cache.get_inputs(ids)
    assert batch.shape == (8, 27, 48, 3) and batch.dtype == np.uint8
    np.testing.assert_array_equal(batch, expected)


def test_missing_collection_folder_says_what_to_do(ingest_cfg, db):
    with pytest.raises(IngestError, match="does not exist; run `make sync_collections`"):
        populate_db(ingest_cfg, db, progress=False)


def test_populate_db_loads_the_history(ingest_cfg, db):
    ids = write_frames(ingest_cfg.path("collections"), 4)
    history = ingest_cfg.path("history")
    history.parent.mkdir(parents=True)
    history.write_text(f"10.0;20.0;{ids[0]};Indian Ocean\n-5;30;{ids[1]};\nbroken line\n")
    summary = populate_db(ingest_cfg, db, progress=False)
    assert summary.locations.history_rows == 2 and summary.locations.written == 2
    assert any("line 3" in w for w in summary.locations.warnings)
    with db.connect() as conn:
        rows = {r.pictures_id: r for r in conn.execute(select(schema.pictures_location))}
    assert rows[ids[0]].pictures_location_text == "Indian Ocean" and rows[ids[1]].pictures_location_text is None
    assert rows[ids[0]].is_day is not None
    assert "2 from history" in summary.format()


def test_timestamp_sources(cfg):
    folder = cfg.path("collections")
    folder.mkdir(parents=True)
    (folder / "20200102-030405.jpg").write_bytes(jpeg_bytes(frame(1)))
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = "2019:05:06 07:08:09"
    (folder / "holiday.jpg").write_bytes(jpeg_bytes(frame(2), exif=exif))
    (folder / "other.jpg").write_bytes(jpeg_bytes(frame(3)))
    os.utime(folder / "other.jpg", (1_600_000_000, 1_600_000_000))
    engine = get_engine(cfg.database_url)
    populate_db(cfg.with_overrides({"ingest": {"workers": 1}}), engine, progress=False)
    rows = _pictures(engine)
    assert (rows["20200102-030405"]["taken_at"], rows["20200102-030405"]["taken_at_source"]) == \
        (dt.datetime(2020, 1, 2, 3, 4, 5), "filename")
    assert (rows["holiday"]["taken_at"], rows["holiday"]["taken_at_source"]) == (dt.datetime(2019, 5, 6, 7, 8, 9), "exif")
    assert (rows["other"]["taken_at"], rows["other"]["taken_at_source"]) == (dt.datetime(2020, 9, 13, 12, 26, 40), "mtime")
    engine.dispose()


def test_file_name_times_in_a_local_time_zone_are_stored_in_utc(cfg):
    write_frames(cfg.path("collections"), 1)  # 20200102-000000, Paris time in winter = UTC+1
    engine = get_engine(cfg.database_url)
    populate_db(cfg.with_overrides({"ingest": {"workers": 1, "timezone": "Europe/Paris"}}), engine, progress=False)
    assert _pictures(engine)["20200102-000000"]["taken_at"] == dt.datetime(2020, 1, 1, 23, 0, 0)
    engine.dispose()


@pytest.mark.slow
@pytest.mark.parametrize("start_method", ["fork", "forkserver"])
def test_worker_processes_give_the_same_result_as_one_process(cfg, tmp_path, start_method):
    """fork: pixels come back through shared memory; forkserver: pickled through the pool."""
    ids = write_frames(cfg.path("collections"), 40)
    (cfg.path("collections") / "20200102-010500.jpg").write_bytes(b"")  # a rejection amid good files
    results = {}
    for workers in (1, 2):
        run_cfg = cfg.with_overrides({"ingest": {"workers": workers, "chunk_size": 3, "batch_size": 8,
                                                 "start_method": start_method},
                                      "paths": {"cache": str(tmp_path / f"cache{workers}")},
                                      "database": {"url": f"sqlite:///{tmp_path / f'w{workers}.db'}"}})
        engine = get_engine(run_cfg.database_url)
        summary = populate_db(run_cfg, engine, progress=False)
        assert summary.workers == workers and summary.accepted == 40 and summary.rejected == {"empty": 1}
        rows = _pictures(engine)
        engine.dispose()
        cache = ImageCache(run_cfg.path("cache"))
        results[workers] = (cache.ids, cache.get_inputs(ids), cache.get_thumbs(ids),
                            {i: (r["width"], r["cache_index"], r["taken_at"]) for i, r in rows.items()})
    assert results[1][0] == results[2][0] == ids
    np.testing.assert_array_equal(results[1][1], results[2][1])
    np.testing.assert_array_equal(results[1][2], results[2][2])
    assert results[1][3] == results[2][3]


# --- any folder a user points it at (issue 15, items 1, 2, 3 and 7), on SQLite and MariaDB -----------
def _filenames(engine) -> dict[str, str]:
    return {i: r["filename"] for i, r in _pictures(engine).items()}


def test_sub_folders_are_read_and_each_picture_keeps_its_relative_path(ingest_cfg, db):
    folder = ingest_cfg.path("collections")
    for relative, seed in (("a.jpg", 1), ("2019/b.jpg", 2), ("2020/cam_a/c.jpg", 3)):
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_bytes(jpeg_bytes(frame(seed)))
    flat = populate_db(ingest_cfg.with_overrides({"ingest": {"recursive": False}}), db, progress=False)
    assert _filenames(db) == {"a": "a.jpg"}
    assert [(f, r) for f, r, _ in flat.skipped_files] == [("2019/", "subfolder"), ("2020/", "subfolder")]
    assert "not read 2019/: subfolder (a sub-folder (set ingest.recursive: true to read it))" in flat.format()

    summary = populate_db(ingest_cfg, db, progress=False)
    assert _filenames(db) == {"a": "a.jpg", "b": "2019/b.jpg", "c": "2020/cam_a/c.jpg"}
    assert (summary.listed, summary.folders, summary.known, summary.accepted) == (3, 4, 1, 2)
    assert summary.skipped_files == [] and _rejected(db) == {}  # the sub-folder rows are gone
    cache = ImageCache(ingest_cfg.path("cache"))
    np.testing.assert_array_equal(cache.get_thumbs(["c"])[0],
                                  decode_picture(folder / "2020/cam_a/c.jpg").thumb)


ORDINARY_NAMES = {  # file name -> id (stem when safe, else safe stem + hash of the relative path)
    "Screenshot 1.png": "Screenshot_1_1d008af8",
    "IMG_0001 (1).JPG": "IMG_0001_1_a60040e6",
    "été.jpg": "ete_0e87fb50",
    "日本の写真.jpg": "7f4b58e8",
    "a" * 86 + ".jpg": "a" * 55 + "_779986ff",  # a 90-character name
    "IMG_0002.JPG": "IMG_0002",
    "IMG_0002.jpg": "IMG_0002_ce0c2d9f",
}


def test_ordinary_file_names_are_all_ingested_with_stable_ids(ingest_cfg, db):
    folder = ingest_cfg.path("collections")
    folder.mkdir(parents=True)
    for k, name in enumerate(ORDINARY_NAMES):
        (folder / name).write_bytes(jpeg_bytes(frame(k)) if not name.endswith(".png") else b"")
    frame(99).save(folder / "Screenshot 1.png")
    summary = populate_db(ingest_cfg, db, progress=False)
    assert summary.accepted == 7 and summary.rejected == {} and summary.skipped == {}
    assert _filenames(db) == {pid: name for name, pid in ORDINARY_NAMES.items()}
    again = populate_db(ingest_cfg, db, progress=False)
    assert (again.known, again.decoded) == (7, 0)
    assert sorted(ImageCache(ingest_cfg.path("cache")).ids) == sorted(ORDINARY_NAMES.values())


def test_ids_differing_only_in_case_are_two_pictures_on_every_backend(ingest_cfg, db):
    """Issue 15, item 7: MariaDB's default collation made CaseTest and casetest one row (one file's id, the
    other's pixels), and every later clustering failed on a duplicate key."""
    from iss.db.queries import replace_rows

    folder = ingest_cfg.path("collections")
    folder.mkdir(parents=True)
    (folder / "CaseTest.jpg").write_bytes(jpeg_bytes(Image.new("RGB", (96, 54), (255, 0, 0))))
    (folder / "casetest.jpg").write_bytes(jpeg_bytes(Image.new("RGB", (96, 54), (0, 0, 255))))
    summary = populate_db(ingest_cfg, db, progress=False)
    assert summary.accepted == 2
    assert _filenames(db) == {"CaseTest": "CaseTest.jpg", "casetest": "casetest.jpg"}
    cache = ImageCache(ingest_cfg.path("cache"))
    assert cache.get_thumbs(["CaseTest"])[0, 0, 0, 0] > 200 and cache.get_thumbs(["casetest"])[0, 0, 0, 2] > 200
    with db.begin() as conn:
        run = conn.execute(schema.clustering_runs.insert().values(
            clustering_type="n2d", clustering_version=1, model_type="m", model_name="Demo",
            created_at=dt.datetime(2024, 1, 1))).inserted_primary_key[0]
        conn.execute(schema.clustering_runs.insert().values(
            clustering_type="n2d", clustering_version=1, model_type="m", model_name="demo",
            created_at=dt.datetime(2024, 1, 1)))  # names too compare exactly
        replace_rows(conn, schema.pictures_embedding, schema.pictures_embedding.c.run_id == run,
                     [dict(run_id=run, pictures_id=i, pictures_x=0.0, pictures_y=0.0, label=0)
                      for i in ("CaseTest", "casetest")])
    with db.connect() as conn:
        assert count(conn, schema.pictures_embedding) == 2
        found = conn.execute(select(schema.pictures.c.filename).where(
            schema.pictures.c.pictures_id == "casetest")).scalar_one()
    assert found == "casetest.jpg"


def _heic_bytes(image: Image.Image) -> bytes:
    from pillow_heif import register_heif_opener

    register_heif_opener()
    buffer = io.BytesIO()
    image.save(buffer, "HEIF")
    return buffer.getvalue()


def test_every_format_pillow_reads_is_ingested_and_every_other_file_is_named(ingest_cfg, db):
    pytest.importorskip("pillow_heif", reason="the heic extra (pip install pillow-heif)")
    folder = ingest_cfg.path("collections")
    folder.mkdir(parents=True)
    picture = frame(5)
    picture.save(folder / "20200101-000000.avif", "AVIF")
    (folder / "20200101-000100.jfif").write_bytes(jpeg_bytes(picture))
    (folder / "20200101-000200.heic").write_bytes(_heic_bytes(picture))
    picture.save(folder / "20200101-000300.jp2", "JPEG2000")
    (folder / "IMG_0001.CR2").write_bytes(b"II*\x00raw camera data")
    (folder / "notes.txt").write_text("hello")
    summary = populate_db(ingest_cfg, db, progress=False)
    assert sorted(_filenames(db).values()) == ["20200101-000000.avif", "20200101-000100.jfif",
                                               "20200101-000200.heic", "20200101-000300.jp2"]
    assert [(f, r) for f, r, _ in summary.skipped_files] == [("IMG_0001.CR2", "unsupported_format"),
                                                              ("notes.txt", "not_picture")]
    thumbs = ImageCache(ingest_cfg.path("cache")).get_thumbs(["20200101-000000", "20200101-000200"]).astype(int)
    reference = decode_picture(folder / "20200101-000100.jfif").thumb.astype(int)
    assert np.abs(thumbs - reference).mean() < 6  # the same picture in every format

    restricted = populate_db(ingest_cfg.with_overrides({"ingest": {"extensions": [".jpg", ".jfif"]}}), db,
                             progress=False)
    assert {f: r for f, r, _ in restricted.skipped_files}["20200101-000000.avif"] == "excluded_extension"


def test_heic_without_the_plugin_is_named_with_the_install_hint(ingest_cfg, db, monkeypatch):
    import iss.data.listing as listing

    folder = ingest_cfg.path("collections")
    folder.mkdir(parents=True)
    (folder / "IMG_1234.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic")
    (folder / "20200101-000000.jpg").write_bytes(jpeg_bytes(frame(1)))
    monkeypatch.setattr(listing, "heif_plugin", lambda: False)
    summary = populate_db(ingest_cfg, db, progress=False)
    assert summary.accepted == 1
    assert summary.skipped_files == [("IMG_1234.HEIC", "unsupported_format", listing.HEIF_HINT)]
    assert "pip install -e '.[heic]'" in summary.format()
    assert _rejected(db) == {"IMG_1234.HEIC": "unsupported_format"}


def test_a_path_too_long_to_store_is_named_not_lost(ingest_cfg, db):
    folder = ingest_cfg.path("collections")
    deep = folder.joinpath(*["d" * 100] * 5)  # 504 characters of folders
    deep.mkdir(parents=True)
    (deep / "picture.jpg").write_bytes(jpeg_bytes(frame(1)))
    (deep / "notes.txt").write_text("x")
    summary = populate_db(ingest_cfg, db, progress=False)
    assert summary.accepted == 0
    assert sorted((len(f), r) for f, r, _ in summary.skipped_files) == [(514, "not_picture"), (516, "name_too_long")]
    stored = sorted(_rejected(db))
    assert [len(name) for name in stored] == [512, 512] and all("~" in name[-9:] for name in stored)
    again = populate_db(ingest_cfg, db, progress=False)
    assert sorted(_rejected(db)) == stored and len(again.skipped_files) == 2


def test_the_single_machine_ingest_needs_no_dask_and_the_others_name_the_extra(cfg, monkeypatch):
    import sys

    from iss.compute import ComputeError

    for module in ("distributed", "dask", "zarr", "fsspec"):
        monkeypatch.setitem(sys.modules, module, None)  # as if the dask extra were not installed
    write_frames(cfg.path("collections"), 5)
    summary = populate_db(cfg.with_overrides({"ingest": {"workers": 1}}), progress=False)
    assert summary.accepted == 5 and summary.scheduler == "inprocess"
    write_frames(cfg.path("collections"), 3, start=5)
    for scheduler in ("local", "synchronous"):
        with pytest.raises(ComputeError, match=r"pip install 'iss\[dask\]'"):
            populate_db(cfg.with_overrides({"compute": {"scheduler": scheduler}}), progress=False)
