"""Projections of the latents (PCA, t-SNE, UMAP) as PNGs."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import adjusted_rand_score
from sklearn.cluster import KMeans

from iss.visualization import figures
from iss.visualization.figures import project, run_projection, stratified_sample, write_projection_figures


def _blobs(n_per=25, k=3, d=20, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 8, (k, d))
    labels = np.repeat(np.arange(k), n_per)
    return (centres[labels] + rng.normal(0, 1, (len(labels), d))).astype(np.float32), labels


def test_stratified_sample_keeps_shares():
    labels = np.array([0] * 900 + [1] * 100)
    rows = stratified_sample(labels, 100, random_state=0)
    assert len(rows) == 100 and np.all(np.diff(rows) > 0)
    assert (labels[rows] == 1).sum() == 10
    assert np.array_equal(stratified_sample(labels, 0), np.arange(1000))
    assert np.array_equal(stratified_sample(labels, 5000), np.arange(1000))


def test_pca_projection_and_png(tmp_path):
    latents, labels = _blobs()
    xy = project(latents, "pca")
    assert xy.shape == (75, 2)
    paths = write_projection_figures(latents, labels, tmp_path, methods=["pca"])
    with Image.open(paths["pca"]) as image:
        assert image.size[0] >= 800 and np.asarray(image.convert("L")).std() > 5


def test_unknown_method_and_mismatch_are_refused(tmp_path):
    latents, labels = _blobs()
    with pytest.raises(ValueError, match="unknown projection method 'mds'"):
        project(latents, "mds")
    with pytest.raises(ValueError, match="75 latent rows but 74 labels"):
        write_projection_figures(latents, labels[:-1], tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["tsne", "umap"])
def test_nonlinear_projections_keep_the_clusters_apart(method, tmp_path):
    latents, labels = _blobs(d=64)  # > 50 dimensions: reduced by PCA first
    xy = project(latents, method, random_state=0)
    assert xy.shape == (75, 2)
    found = KMeans(3, n_init=10, random_state=0).fit_predict(xy)
    assert adjusted_rand_score(labels, found) > 0.9
    paths = write_projection_figures(latents, labels, tmp_path, methods=[method], sample=60)
    assert paths[method].name == f"projection_{method}.png"


def test_run_projection_names_the_runs_own_embedding():
    assert run_projection("n2d", {"n_components": 2, "plot": "first"}) == "umap"
    assert run_projection("n2d", {"n_components": 10, "plot": "umap"}) == "umap"  # a second, 2-D UMAP
    assert run_projection("n2d", {"n_components": 10, "plot": "first"}) is None  # 2 of 10 UMAP components
    assert run_projection("hdbscan", {"n_components": 2}) == "umap"
    assert run_projection("classical", {"plot": "tsne"}) == "tsne"
    assert run_projection("advanced", {"plot": "pca"}) is None
    assert run_projection("n2d", {}) is None


def test_precomputed_projection_is_plotted_not_refitted(tmp_path, monkeypatch):
    latents, labels = _blobs()
    given = np.column_stack([labels * 10.0, np.arange(len(labels), dtype=float)])
    fitted = []
    real_project = figures.project
    monkeypatch.setattr(figures, "project", lambda x, method, **kw: fitted.append(method) or real_project(x, method, **kw))
    paths = write_projection_figures(latents, labels, tmp_path, methods=["pca", "umap"], precomputed={"umap": given})
    assert fitted == ["pca"]
    with Image.open(paths["umap"]) as image:
        assert np.asarray(image.convert("L")).std() > 5
