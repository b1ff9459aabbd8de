"""Reliability: one "everything odd" folder through the whole pipeline, on SQLite and MariaDB (issue 15).

The folder is built from the real ISS frames (and scikit-learn's two real photographs): nested
folders, ordinary but odd file names, every picture format Pillow reads (and some it cannot),
EXIF rotation, transparency, 16-bit, byte-identical copies, bad files, files that are not
pictures, a labels file and a history file as a spreadsheet saves them. Every good picture
must come through, every other file must be listed with its reason, and no step may fail.
"""

from __future__ import annotations

import csv
import io
import shutil

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_sample_image
from sqlalchemy import select

from iss.config import load_config
from iss.data.ids import hashed_id
from iss.db import schema
from iss.db.engine import get_engine
from iss.pipeline import run_pipeline, summary

from .conftest import MYSQL_SERVER_URL, real_frame_paths
from .data.picture_files import bomb_png, frame, jpeg_bytes
from .steps import drop_mysql_database, new_mysql_database

pytestmark = pytest.mark.slow

ROOT_IDS = [f"20171113-{h:02d}{m:02d}00" for h in range(2) for m in (0, 20, 40)] + ["20171113-020000",
                                                                                    "20171113-022000"]
ORIENTATIONS = {"rotated/turned 6.jpg": 6, "rotated/turned 8.jpg": 8, "rotated/upside down.jpg": 3}
# relative path -> picture id, for every picture that must come through
EXPECTED = {f"{pid}.jpg": pid for pid in ROOT_IDS}
EXPECTED.update({
    "2019/20171114-000000.jpg": "20171114-000000", "2019/20171114-002000.jpg": "20171114-002000",
    "2019/11/20171114-004000.jpg": "20171114-004000",
    "2020/cam a/Screenshot 1.png": "Screenshot_1_" + hashed_id("2020/cam a/Screenshot 1.png")[-8:],
    "2020/cam a/IMG_0001 (1).JPG": "IMG_0001_1_" + hashed_id("2020/cam a/IMG_0001 (1).JPG")[-8:],
    "été.jpg": "ete_0e87fb50", "日本の写真.jpg": "7f4b58e8", "a" * 86 + ".jpg": "a" * 55 + "_779986ff",
    "IMG_0002.JPG": "IMG_0002", "IMG_0002.jpg": "IMG_0002_ce0c2d9f",
    "CaseTest.jpg": "CaseTest", "casetest.jpg": "casetest",
    "rotated/turned 6.jpg": "turned_6_" + hashed_id("rotated/turned 6.jpg")[-8:],
    "rotated/turned 8.jpg": "turned_8_" + hashed_id("rotated/turned 8.jpg")[-8:],
    "rotated/upside down.jpg": "upside_down_" + hashed_id("rotated/upside down.jpg")[-8:],
    "formats/frame.avif": "frame", "formats/frame.jfif": "frame_" + hashed_id("formats/frame.jfif")[-8:],
    "formats/frame.webp": "frame_" + hashed_id("formats/frame.webp")[-8:],
    "formats/frame.jp2": "frame_" + hashed_id("formats/frame.jp2")[-8:],
    "formats/china.gif": "china", "formats/flower.bmp": "flower", "formats/gray16.png": "gray16",
    "formats/gray16.tif": "gray16_" + hashed_id("formats/gray16.tif")[-8:],
    "transparency/rgba.png": "rgba", "transparency/palette.png": "palette",
    "copies/20171113-000000 copy.jpg": "20171113-000000_copy_" + hashed_id("copies/20171113-000000 copy.jpg")[-8:],
    "copies/again/20171113-000000.jpg": "20171113-000000_" + hashed_id("copies/again/20171113-000000.jpg")[-8:],
    "copies/Kopie (2).jpg": "Kopie_2_" + hashed_id("copies/Kopie (2).jpg")[-8:],
})
HEIC = {"formats/frame.heic": "frame_" + hashed_id("formats/frame.heic")[-8:]}
REJECTED = {"bad/empty.jpg": "empty", "bad/truncated.jpg": "truncated", "bad/text.jpg": "not_image",
            "bad/bomb.png": "too_large", "raw/IMG_9999.CR2": "unsupported_format"}
NOT_COPIED = {".DS_Store": "hidden", ".thumbnails/": "hidden", "Thumbs.db": "not_picture",
              "notes.txt": "not_picture", "2019/readme.md": "not_picture", "frame.jpg.part": "temporary"}


def _real_pictures() -> list[Image.Image]:
    """The real ISS frames (when this machine has them) and scikit-learn's two photographs, as RGB."""
    frames = [Image.open(path).convert("RGB") for path in real_frame_paths()]
    photos = [Image.fromarray(load_sample_image(name)) for name in ("china.jpg", "flower.jpg")]
    if not frames:  # a machine without them: crops of the photographs stand in
        frames = [photo.crop((x, y, x + 320, y + 180)) for photo in photos for x in range(0, 320, 40)
                  for y in (0, 120, 240)]
    return [frame_.resize((320, 180)) if frame_.size[0] > 640 else frame_ for frame_ in frames] + photos


def _save(image: Image.Image, path, **kwargs) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **kwargs)


def build_odd_source(source) -> dict[str, str]:
    """The odd folder as a sync source (``collections/``, ``history/history.txt``, ``labels.csv``).

    Returns
    -------
    dict of str to str
        Relative path -> expected id of every picture that must be ingested.
    """
    pictures = _real_pictures()
    folder = source / "collections"
    pick = iter(range(10_000))

    def real() -> Image.Image:
        return pictures[next(pick) % (len(pictures) - 2)]

    expected = dict(EXPECTED)
    for name in [n for n in EXPECTED if n.endswith((".jpg", ".JPG")) and not n.startswith(("rotated", "copies"))]:
        _save(real(), folder / name, format="JPEG", quality=90)
    _save(real(), folder / "2020/cam a/Screenshot 1.png")
    for name, orientation in ORIENTATIONS.items():  # stored turned, EXIF says how to show it upright
        undo = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}
        exif = Image.Exif()
        exif[0x0112] = orientation
        _save(real().transpose(undo[orientation]), folder / name, format="JPEG", quality=90, exif=exif)
    _save(real(), folder / "formats/frame.avif", format="AVIF")
    (folder / "formats/frame.jfif").write_bytes(jpeg_bytes(real()))
    _save(real(), folder / "formats/frame.webp", format="WEBP")
    _save(real(), folder / "formats/frame.jp2", format="JPEG2000")
    _save(pictures[-2].convert("P"), folder / "formats/china.gif")
    _save(pictures[-1], folder / "formats/flower.bmp")
    gray = (np.asarray(real().convert("L"), dtype=np.uint16) * 257)  # 16-bit grayscale
    _save(Image.fromarray(gray), folder / "formats/gray16.tif")
    _save(Image.fromarray(gray), folder / "formats/gray16.png")
    try:
        from pillow_heif import register_heif_opener

        register_heif_opener()
        _save(real(), folder / "formats/frame.heic", format="HEIF")
        expected.update(HEIC)
    except ImportError:
        pass
    rgba = real().convert("RGBA")
    alpha = np.full((rgba.height, rgba.width), 255, dtype=np.uint8)
    alpha[:, : rgba.width // 2] = 0  # the left half fully transparent: shown black, whatever is under it
    rgba.putalpha(Image.fromarray(alpha))
    _save(rgba, folder / "transparency/rgba.png")
    palette = real().convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    _save(palette, folder / "transparency/palette.png", transparency=0)
    for copy in ("copies/20171113-000000 copy.jpg", "copies/again/20171113-000000.jpg", "copies/Kopie (2).jpg"):
        (folder / copy).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(folder / "20171113-000000.jpg", folder / copy)  # byte-identical copies
    # bad pictures: rejected with their reason
    (folder / "bad").mkdir()
    (folder / "bad/empty.jpg").write_bytes(b"")
    whole = jpeg_bytes(frame(9, (640, 360)))
    (folder / "bad/truncated.jpg").write_bytes(whole[: len(whole) // 2])
    (folder / "bad/text.jpg").write_text("a text file with a picture's name")
    (folder / "bad/bomb.png").write_bytes(bomb_png())
    (folder / "raw").mkdir()
    (folder / "raw/IMG_9999.CR2").write_bytes(b"II*\x00\x10\x00\x00\x00CR\x02\x00 raw camera data")
    # not pictures: named by the sync, never copied
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (folder / ".thumbnails").mkdir()
    (folder / ".thumbnails/20171113-000000.jpg").write_bytes(jpeg_bytes(frame(1)))
    (folder / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (folder / "notes.txt").write_text("holiday frames")
    (folder / "2019/readme.md").write_text("# 2019")
    (folder / "frame.jpg.part").write_bytes(whole[:100])

    # a history file and a labels file as a spreadsheet saves them: BOM, CRLF, quotes, padding
    history = ["lat;lon;id;location;;"] + [f'"{10 + k},5";"{20 + k},25";"{pid}";"Pacific; Ocean {k}";;'
                                            for k, pid in enumerate(ROOT_IDS)]
    history.append('"-5,0";"30,0";"2020/cam a/IMG_0001 (1).JPG";"Indian Ocean";;')  # by file name
    (source / "history").mkdir()
    (source / "history/history.txt").write_bytes(("\r\n".join(history) + "\r\n").encode("utf-8-sig"))
    kinds = ["horizon", "nadir"] * 4
    (source / "labels.csv").write_bytes(("pictures_id;kind\r\n" + "".join(
        f"{pid};{kind}\r\n" for pid, kind in zip(ROOT_IDS, kinds))).encode("utf-8-sig"))
    return expected


def _template(root) -> None:
    (root / "posters").mkdir(parents=True, exist_ok=True)
    (root / "posters" / "odd_2x2.yaml").write_text(
        "canvas: {width_px: 800, height_px: 600, dpi: 100}\nunit: [400, 300]\nborder: {size_px: 10, colour: white}\n"
        "run: latest\nslots:\n" + "".join(
            f"  - {{origin: [{x}, {y}], size: [1, 1], position: '{2 * y + x + 1}', "
            f"rule: {{kind: clusters, clusters: auto}}}}\n" for y in (0, 1) for x in (0, 1)))


@pytest.fixture(params=["sqlite", "mysql"])
def odd_run(request, tmp_path_factory):
    root = tmp_path_factory.mktemp("odd")
    expected = build_odd_source(root / "source")
    url = (f"sqlite:///{root / 'iss.db'}" if request.param == "sqlite" else new_mysql_database(MYSQL_SERVER_URL))
    if request.param == "mysql":
        request.addfinalizer(lambda: drop_mysql_database(url))
    _template(root / "config")
    config = root / "config" / "config_odd.yaml"
    config.write_text("paths:\n  source: source\n")
    base = load_config(mode="demo", root=root)
    cfg = base.with_overrides({
        "database": {"url": url},
        "sync": {"source": str(root / "source")},
        "ingest": {"workers": 2, "batch_size": 8},
        "sampling": {"copy_to_dirs": True},
        "training": {"epochs": 2, "batch_size": 16, "checkpoint_every": 1},
        "clustering": {"n2d": {"umap": {"n_neighbors": 10}, "n_clusters": 4}},
        "reports": {"projections": []},
        "posters": {"default_template": "odd_2x2", "templates_dir": str(root / "config" / "posters"),
                    "pdf": False},
    })
    result = run_pipeline(cfg, generate=False, progress=False)
    return cfg, result, expected


def _rows(url, table, *columns):
    engine = get_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(select(*[table.c[c] for c in columns])).all()
    engine.dispose()
    return rows


def test_everything_odd_folder_through_the_whole_pipeline(odd_run):
    cfg, result, expected = odd_run
    url = result.database_url

    # every good picture came through, under its relative path and a safe id
    assert dict(_rows(url, schema.pictures, "filename", "pictures_id")) == expected
    # every other file is listed with its reason: by the sync (not copied) and by the ingest (not ingested)
    assert {name: reason for name, reason, _ in result.sync.not_copied} == NOT_COPIED
    assert dict(_rows(url, schema.pictures_rejected, "filename", "reason")) == REJECTED
    with open(cfg.path("reports") / "skipped_files.csv", encoding="utf-8-sig", newline="") as handle:
        assert {row["filename"]: row["reason"] for row in csv.DictReader(handle)} == REJECTED
    text = result.ingest.format() + "\n" + result.sync.format()
    for name, reason in {**REJECTED, **NOT_COPIED}.items():
        assert f"{name}: {reason}" in text, name
    assert "not ingested   5 files" in summary(result)

    # no step failed, and each wrote its result
    assert set(result.seconds) == {"sync_collections", "populate_db", "sampling", "training", "encode",
                                   "features", "exec_clustering", "reports", "facets", "posters"}
    n = len(expected)
    assert len(_rows(url, schema.splits, "pictures_id")) == n
    mirrored = [p for split in ("train", "test", "valid") for p in (cfg.path("splits_dir") / split).iterdir()]
    assert sorted(p.stem for p in mirrored) == sorted(expected.values())  # flat: <id><extension>
    embedding = dict(_rows(url, schema.pictures_embedding, "pictures_id", "label"))
    assert len(embedding) == n and result.report_index.is_file() and result.posters

    # byte-identical copies share their original's cluster
    copies = [pid for name, pid in expected.items() if name.startswith("copies/")]
    assert {embedding[pid] for pid in copies} == {embedding["20171113-000000"]}
    assert result.metrics["n_distinct_fitted"] <= n - 3

    # EXIF rotation applied: 6 and 8 turn a landscape picture stored portrait back to landscape
    sizes = {pid: (w, h) for pid, w, h in _rows(url, schema.pictures, "pictures_id", "width", "height")}
    for name in ORIENTATIONS:
        width, height = sizes[expected[name]]
        assert width > height, name
    # the spreadsheet-saved labels scored the run, the spreadsheet-saved history located the frames
    assert result.metrics["n_labelled"] == len(ROOT_IDS) and "acc" in result.metrics
    locations = {pid: (lat, text) for pid, lat, text in _rows(url, schema.pictures_location, "pictures_id",
                                                              "pictures_latitude", "pictures_location_text")}
    assert locations[ROOT_IDS[1]] == (pytest.approx(11.5), "Pacific; Ocean 1")
    assert locations[expected["2020/cam a/IMG_0001 (1).JPG"]] == (pytest.approx(-5.0), "Indian Ocean")
    assert len(locations) == len(ROOT_IDS) + 1


def test_everything_odd_folder_rerun_changes_nothing(odd_run):
    cfg, result, expected = odd_run
    before = {t.name: sorted(map(tuple, _rows(result.database_url, t, *[c.name for c in t.primary_key.columns])))
              for t in (schema.pictures, schema.pictures_rejected, schema.pictures_location, schema.splits,
                        schema.pictures_embedding)}
    again = run_pipeline(cfg, generate=False, progress=False)
    after = {t.name: sorted(map(tuple, _rows(again.database_url, t, *[c.name for c in t.primary_key.columns])))
             for t in (schema.pictures, schema.pictures_rejected, schema.pictures_location, schema.splits,
                       schema.pictures_embedding)}
    assert after == before
    assert (again.ingest.decoded, again.ingest.known, again.ingest.known_rejected) == (0, len(expected), 4)
    assert again.run_id == result.run_id


def test_thumbnails_of_odd_formats_show_the_same_picture_upright(odd_run):
    """Rotated, transparent and 16-bit pictures become upright 8-bit RGB thumbnails, like plain JPEGs."""
    from iss.data.cache import ImageCache

    cfg, _, expected = odd_run
    cache = ImageCache(cfg.path("cache"))
    thumbs = cache.get_thumbs([expected[name] for name in ORIENTATIONS])
    assert thumbs.shape == (3, 54, 96, 3) and thumbs.dtype == np.uint8
    gray = cache.get_thumbs([expected["formats/gray16.tif"], expected["formats/gray16.png"]]).astype(int)
    assert gray.max() > 100 and np.abs(gray[0] - gray[1]).mean() < 2  # scaled from 16 bits, not clipped to white
    rgba = cache.get_thumbs([expected["transparency/rgba.png"]])[0].astype(int)
    assert rgba[:, :47].max() == 0 and rgba[:, 49:].max() > 50  # transparent half black, the rest shown


def test_odd_folder_sources_are_real_pictures():
    """The folder is built from real photographs, not only generated frames."""
    buffer = io.BytesIO()
    pictures = _real_pictures()
    assert len(pictures) >= 20
    pictures[0].save(buffer, "JPEG")
    assert buffer.tell() > 5000
