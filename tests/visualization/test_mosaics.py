"""Mosaics: most typical pictures first, pasted from the cache, with a header."""

from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import Image

from iss.visualization.data import cache_for, load_run_frame
from iss.visualization.mosaics import (
    GAP,
    HEADER_HEIGHT,
    mosaic_image,
    mosaic_order,
    order_by_typicality,
    write_cluster_mosaics,
    write_overview_mosaic,
)


def test_order_by_silhouette_then_centre_distance():
    frame = pd.DataFrame({"pictures_id": list("abcdef"), "label": [0, 0, 0, 1, 1, 1],
                          "pictures_x": [0, 5, 1, 0, 0, 9], "pictures_y": [0, 0, 0, 0, 1, 9],
                          "silhouette": [0.2, 0.9, 0.5, np.nan, np.nan, 0.1]})
    ordered = order_by_typicality(frame)
    assert ordered["pictures_id"].tolist() == ["b", "c", "a", "f", "e", "d"]
    # cluster 1: the known silhouette first, then nearest to the centre (3, 3.33): e before d
    assert ordered["rank"].tolist() == [0, 1, 2, 0, 1, 2]


def test_mosaics_paste_the_most_typical_thumbnails_in_order(sqlite_run, tmp_path):
    frame = load_run_frame(sqlite_run.engine, sqlite_run.run.run_id)
    cache = cache_for(sqlite_run.cfg)
    paths = write_cluster_mosaics(frame, cache, tmp_path, size=6, columns=3)
    assert sorted(paths) == sorted(set(frame["label"]))
    for label, path in paths.items():
        members = frame[frame["label"] == label].sort_values("silhouette", ascending=False)
        expected = members["pictures_id"].head(6).tolist()
        assert list(mosaic_order(frame, label, 6)) == expected
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
        rows = int(np.ceil(len(expected) / 3))
        assert pixels.shape[0] == HEADER_HEIGHT + rows * (54 + GAP) + GAP
        thumbs = cache.get_thumbs(expected)
        for k, thumb in enumerate(thumbs):  # tile k is the k-th most typical picture, pixel for pixel
            r, c = divmod(k, 3)
            top, left = HEADER_HEIGHT + GAP + r * (54 + GAP), GAP + c * (96 + GAP)
            assert np.array_equal(pixels[top:top + 54, left:left + 96], thumb)


def test_header_and_width():
    thumbs = np.full((10, 54, 96, 3), 200, np.uint8)
    image = mosaic_image(thumbs, "Cluster 7", "10 pictures", columns=8, color="#e15759")
    assert image.size == (8 * (96 + GAP) + GAP, HEADER_HEIGHT + 2 * (54 + GAP) + GAP)
    header = np.asarray(image)[:HEADER_HEIGHT]
    assert (header > 200).any()  # white title text drawn
    assert tuple(header[HEADER_HEIGHT - 2, 5]) == (0xE1, 0x57, 0x59)  # cluster-coloured underline


def test_overview_has_one_row_per_cluster(sqlite_run, tmp_path):
    frame = load_run_frame(sqlite_run.engine, sqlite_run.run.run_id)
    path = write_overview_mosaic(frame, cache_for(sqlite_run.cfg), tmp_path / "overview.png", per_cluster=5)
    with Image.open(path) as image:
        assert image.size[1] == frame["label"].nunique() * (54 + GAP) + GAP


def test_mosaics_read_only_the_thumbnails_they_show(sqlite_run, tmp_path):
    """At a million pictures the mosaics must cost what they show, not the collection: every
    thumbnail read from the cache is one pasted, and none is read twice."""
    frame = load_run_frame(sqlite_run.engine, sqlite_run.run.run_id)
    cache = cache_for(sqlite_run.cfg)
    read = []
    get_thumbs = cache.get_thumbs

    def counting(ids):
        read.extend(ids)
        return get_thumbs(ids)

    cache.get_thumbs = counting
    write_cluster_mosaics(frame, cache, tmp_path / "mosaics", size=5, columns=5)
    shown = [i for k in sorted(set(frame["label"])) for i in mosaic_order(frame, k, size=5)]
    assert read == shown and len(read) == 5 * frame["label"].nunique() < len(frame)
    read.clear()
    write_overview_mosaic(frame, cache, tmp_path / "overview.png", per_cluster=3)
    assert read == [i for k in sorted(set(frame["label"])) for i in mosaic_order(frame, k, size=3)]
