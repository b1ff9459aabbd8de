"""Silhouette chart: per-cluster statistics and the PNG."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from iss.visualization.silhouettes import plot_silhouettes, silhouette_table


def test_table_counts_and_means_ignore_missing():
    labels = np.array([0, 0, 0, 1, 1, -1])
    sil = np.array([0.1, 0.3, np.nan, -0.2, 0.0, np.nan])
    table = silhouette_table(labels, sil)
    assert [r["label"] for r in table] == [-1, 0, 1]
    assert [r["count"] for r in table] == [1, 3, 2]
    assert table[1]["mean"] == pytest.approx(0.2)
    assert table[2]["mean"] == pytest.approx(-0.1)
    assert np.isnan(table[0]["mean"])


def test_png_grows_with_the_number_of_clusters(tmp_path):
    rng = np.random.default_rng(0)
    small = plot_silhouettes(np.repeat([0, 1], 20), rng.uniform(-0.2, 0.9, 40), tmp_path / "a.png")
    large = plot_silhouettes(np.repeat(np.arange(20), 10), rng.uniform(-0.2, 0.9, 200), tmp_path / "b.png")
    with Image.open(small) as a, Image.open(large) as b:
        assert a.size[0] == b.size[0] >= 1200
        assert b.size[1] > a.size[1] >= 400
        assert np.asarray(a.convert("L")).std() > 10  # not blank


def test_mismatched_inputs_are_refused(tmp_path):
    with pytest.raises(ValueError, match="same length"):
        plot_silhouettes(np.zeros(3, int), np.zeros(4), tmp_path / "x.png")
