"""What we rely on in umap-learn, pynndescent and numba beyond the public ``umap.UMAP``
(:mod:`iss.clustering.umap_compat`). When an upgrade changes one of these, a test here fails and
names it: fix umap_compat, or pin the version."""

from __future__ import annotations

import importlib
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest

from iss.clustering import umap_compat
from iss.clustering.umap_compat import (
    EXPECTED_WARNINGS,
    TransformIndex,
    fuzzy_graph,
    import_umap,
    nndescent_neighbours,
    numba_cache_dir,
    precomputed_knn,
    spectral_layout,
)
from iss.clustering.umap_reducer import ExactKNNIndex


def test_numba_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.delenv("ISS_NUMBA_CACHE_DIR", raising=False)
    default = numba_cache_dir()
    assert default.parent.name == "numba" and default.parent.parent.name == ".cache"
    monkeypatch.setenv("ISS_NUMBA_CACHE_DIR", str(tmp_path / "mine"))
    assert numba_cache_dir() == tmp_path / "mine"
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba"))
    assert numba_cache_dir() == tmp_path / "numba"  # numba's own variable wins


def test_import_umap_leaves_parametric_umap_importable():
    umap = import_umap()
    assert hasattr(umap, "UMAP")
    assert sys.modules.get("umap.parametric_umap", "absent") is not None  # no blocking entry left behind


def test_import_umap_caches_umaps_compiled_code_without_tensorflow(tmp_path):
    """In a fresh process: umap's functions are compiled with cache=True into the cache folder,
    numba's decorators are given back, and TensorFlow stays out."""
    code = ("import json, sys, numpy as np, numba\n"
            "njit, jit = numba.njit, numba.jit\n"
            "from iss.clustering.umap_compat import import_umap\n"
            "umap = import_umap()\n"
            "from umap import distances\n"
            "distances.euclidean(np.zeros(3), np.ones(3))\n"
            "print(json.dumps({'tensorflow': 'tensorflow' in sys.modules,\n"
            "                  'restored': numba.njit is njit and numba.jit is jit}))\n")
    cache = tmp_path / "numba"
    if numba_cache_dir().is_dir():  # start from the project's warm cache (a cold one compiles for ~30 s)...
        shutil.copytree(numba_cache_dir(), cache)
    for old in cache.rglob("distances.euclidean*"):  # ...less the function this test has compiled
        old.unlink()
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"tensorflow": False, "restored": True}
    cached = [p.name for p in cache.rglob("*.nbi")]
    assert any(name.startswith("distances.euclidean") for name in cached), (
        f"umap.distances.euclidean was not cached under {cache} ({len(cached)} index files): umap no longer "
        "decorates through numba.njit at import, so import_umap's cache=True default has no effect")


def test_the_internal_functions_take_the_arguments_we_pass():
    import_umap()
    from umap.spectral import spectral_layout as umap_spectral_layout
    from umap.umap_ import fuzzy_simplicial_set, nearest_neighbors

    def names(function):
        return list(inspect.signature(function).parameters)

    assert names(nearest_neighbors)[:6] == ["X", "n_neighbors", "metric", "metric_kwds", "angular", "random_state"]
    assert {"low_memory", "n_jobs"} <= set(names(nearest_neighbors))
    assert names(fuzzy_simplicial_set)[:4] == ["X", "n_neighbors", "random_state", "metric"]
    assert {"knn_indices", "knn_dists"} <= set(names(fuzzy_simplicial_set))
    assert names(umap_spectral_layout)[:4] == ["data", "graph", "dim", "random_state"]


def test_the_private_names_we_fake_still_exist():
    """``_angular_trees`` is pynndescent's, read by ``UMAP.transform`` next to ``query``."""
    import pynndescent

    umap = import_umap()
    transform = inspect.getsource(umap.UMAP.transform)
    assert "_knn_search_index._angular_trees" in transform and "_knn_search_index.query(" in transform
    assert "self._angular_trees" in inspect.getsource(pynndescent.NNDescent)
    assert hasattr(TransformIndex, "_angular_trees")


def test_the_warnings_we_silence_are_still_worded_so():
    """A reworded warning would print on every run: each expected message is still in its module."""
    import_umap()
    for pattern, module in EXPECTED_WARNINGS.items():
        source = " ".join(inspect.getsource(importlib.import_module(module)).split())
        assert re.search(pattern.strip(".*"), source), (pattern, module)


class _Spy:
    """An exact index that records the queries UMAP.transform makes."""

    def __init__(self, X):
        self.exact = ExactKNNIndex(X, "euclidean")
        self.calls = []

    def query(self, X, k):
        self.calls.append((len(X), k))
        return self.exact.query(X, k)


def test_transform_queries_the_precomputed_index():
    """UMAP.transform of new points asks our index (through TransformIndex) for their neighbours."""
    umap = import_umap()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 6)).astype(np.float32)
    spy = _Spy(X)
    k = 10
    knn = precomputed_knn(*spy.exact.neighbour_graph(k)[:2], spy)
    # force_approximation_algorithm: below 4,096 points umap would otherwise use all distances, not the index
    model = umap.UMAP(n_neighbors=k, n_epochs=20, random_state=0, n_jobs=1, precomputed_knn=knn,
                      force_approximation_algorithm=True)
    with umap_compat.expected_warnings():
        model.fit(X)
        new = model.transform(X[:7] + 0.01)
    assert spy.calls == [(7, k)]
    assert new.shape == (7, 2) and np.isfinite(new).all()


def test_the_graph_and_layout_helpers_run_on_this_umap():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(120, 5)).astype(np.float32)
    indices, distances = ExactKNNIndex(X, "euclidean").neighbour_graph(8)[:2]
    graph = fuzzy_graph(X, 8, "euclidean", (indices, distances), 0)
    assert graph.shape == (120, 120) and graph.nnz > 0
    layout = spectral_layout(graph, 2, np.random.RandomState(0))
    assert layout.shape == (120, 2) and np.isfinite(layout).all()


@pytest.mark.slow  # NN-descent cannot be cached: numba compiles it in every process (about a minute)
def test_nndescent_neighbours_run_on_this_umap():
    X = np.random.default_rng(1).normal(size=(120, 5)).astype(np.float32)
    with umap_compat.expected_warnings():
        indices, distances, _ = nndescent_neighbours(X, 8, "euclidean", 0)
    assert indices.shape == distances.shape == (120, 8) and (indices[:, 0] == np.arange(120)).all()


def test_expected_warnings_silence_only_those():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with umap_compat.expected_warnings():
            warnings.warn("precomputed_knn[2] (knn_search_index) is not an NNDescent object: ...")
            warnings.warn("something else")
    assert [str(w.message) for w in caught] == ["something else"]

