"""The features step: pixel features from the cache, the autoencoder's latents, the automatic choice
recorded with its reason, and every clustering type running on pixels."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score
from sqlalchemy import select

from iss.clustering import CLUSTERING_TYPES
from iss.clustering.registry import run_clustering, run_dir
from iss.db import schema
from iss.features import build_features, load_features, read_features
from iss.features.auto import choose_features, cluster_stability
from iss.features.pixels import STD_FLOOR, pixel_features

from .conftest import K, N, write_latents

# small, fast settings per clustering type for 240 pictures
FAST = {"n2d": {"n_clusters": K},
        "hdbscan": {"min_cluster_size": 20, "umap": {"n_neighbors": 10}, "n_epochs": 100},
        "classical": {"n_clusters": K, "kmeans_clusters": 12, "pca_components": 8, "plot": "pca"},
        "advanced": {"pca_components": 8, "k_low": 8, "k_high": 12, "threshold": 5, "eps": 60.0}}


def run_row(engine, run_id):
    runs = schema.clustering_runs
    with engine.connect() as conn:
        return conn.execute(select(runs).where(runs.c.run_id == run_id)).mappings().one()


def run_labels(engine, run_id, ids):
    e = schema.pictures_embedding
    with engine.connect() as conn:
        rows = dict(conn.execute(select(e.c.pictures_id, e.c.label).where(e.c.run_id == run_id)).all())
    return np.array([rows[i] for i in ids])


def test_pixel_features_are_standardised_pca_components():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (50, 6, 8, 3), dtype=np.uint8)
    images[:, 0] = 0  # a row black in every picture: its noise must not be blown up
    values, record = pixel_features(images, pca_components=5, batch_size=7)
    assert values.shape == (50, 5) and values.dtype == np.float32
    assert record["dim"] == 5 and 0 < record["explained_variance"] <= 1
    raw, record = pixel_features(images, pca_components=None)
    assert raw.shape == (50, 6 * 8 * 3) and record["dim"] == 144
    np.testing.assert_allclose(raw.mean(axis=0), 0, atol=1e-5)
    assert np.abs(raw[:, : 8 * 3]).max() == 0  # constant pixels: centred, scaled by the floor, still 0
    assert STD_FLOOR > 0
    with pytest.raises(ValueError, match="pca_components"):
        pixel_features(images, pca_components=0)


def test_pixels_step_writes_features_that_clustering_reads(collection):
    cfg = collection.cfg
    written = build_features(cfg, "pixels")
    assert written.path.is_file() and written.model_type == "pixels"
    assert written.model_name == "pixels-thumb96x54" and written.dim == 50
    again = load_features(cfg, "pixels")
    np.testing.assert_array_equal(again.ids, collection.ids)
    np.testing.assert_allclose(again.values, written.values)
    with pytest.raises(ValueError, match="features.pixels: unknown key"):
        build_features(cfg.with_overrides({"features": {"pixels": {"sise": "thumb"}}}), "pixels")
    with pytest.raises(ValueError, match="features.kind='pca'"):
        build_features(cfg, "pca")


def test_missing_features_say_which_step_writes_them(collection):
    with pytest.raises(FileNotFoundError, match="make features"):
        load_features(collection.cfg, "auto")
    with pytest.raises(FileNotFoundError, match="make encode"):
        load_features(collection.cfg, "autoencoder")


@pytest.mark.parametrize("clustering_type", sorted(CLUSTERING_TYPES))
def test_every_clustering_type_runs_on_pixels(collection, engine, clustering_type):
    cfg = collection.cfg
    section = {**cfg.section(f"clustering.{clustering_type}"), **FAST[clustering_type]}
    cfg = cfg.with_overrides({"clustering": {clustering_type: section}, "database": {"url": str(engine.url)}})
    build_features(cfg, "pixels")
    run_id = run_clustering(cfg, engine, clustering_type, features="pixels")
    row = run_row(engine, run_id)
    assert (row["model_type"], row["model_name"]) == ("pixels", "pixels-thumb96x54")
    assert row["params"]["features"]["kind"] == "pixels" and row["params"]["latent_dim"] == 50
    assert run_dir(cfg, clustering_type, "pixels-thumb96x54", 1).is_dir()
    labels = run_labels(engine, run_id, collection.ids)
    assert adjusted_rand_score(collection.kinds, labels) > 0.8, clustering_type


def test_auto_prefers_the_pixels_over_an_autoencoder_that_learnt_nothing(collection, engine):
    cfg = collection.cfg.with_overrides({"database": {"url": str(engine.url)}})
    write_latents(cfg, collection.ids, np.random.default_rng(0).standard_normal((N, 32)))
    chosen = build_features(cfg, "auto")
    auto = chosen.record["auto"]
    assert auto["chosen"] == "pixels" and chosen.model_type == "pixels"
    scores = auto["scores"]
    assert scores["pixels"]["stability"] > scores["autoencoder"]["stability"] + 0.3
    assert scores["pixels"]["k"] == K
    assert f"{scores['pixels']['stability']:.3f}" in auto["reason"]
    # the choice is recorded beside the features and in the clustering run
    record = json.loads((chosen.path.parent / "record.json").read_text())
    assert record["auto"]["chosen"] == "pixels" and record["model_name"] == "pixels-thumb96x54"
    run_id = run_clustering(cfg, engine, "n2d", features="auto")
    row = run_row(engine, run_id)
    recorded = row["params"]["features"]
    assert recorded["kind"] == "auto" and recorded["used"] == "pixels"
    assert recorded["auto"]["reason"] == auto["reason"] and recorded["auto"]["scores"]["pixels"]["k"] == K
    assert (row["model_type"], row["model_name"]) == ("pixels", "pixels-thumb96x54")
    assert adjusted_rand_score(collection.kinds, run_labels(engine, run_id, collection.ids)) > 0.8


def test_auto_takes_latents_that_separate_the_kinds_better(collection):
    rng = np.random.default_rng(1)
    centres = rng.normal(0, 10, (K, 16))
    latents = centres[collection.kinds] + rng.normal(0, 0.5, (N, 16))
    noisy_pixels = rng.normal(0, 1, (N, 30))
    noisy_pixels[:, 0] += 0.3 * collection.kinds  # barely any structure
    chosen, record = choose_features({"pixels": noisy_pixels, "autoencoder": latents},
                                     {"sample": N, "n_epochs": 100, "n_neighbors": 10})
    assert chosen == "autoencoder"
    assert record["scores"]["autoencoder"]["k"] == K and record["scores"]["autoencoder"]["stability"] > 0.9
    # without latents there is nothing to compare: pixels, and the record says why
    chosen, record = choose_features({"pixels": noisy_pixels})
    assert chosen == "pixels" and "no autoencoder latents" in record["reason"]


def test_runs_on_different_features_stay_apart(collection, engine):
    cfg = collection.cfg.with_overrides({"database": {"url": str(engine.url)}})
    rng = np.random.default_rng(2)
    write_latents(cfg, collection.ids, rng.normal(0, 10, (K, 8))[collection.kinds] + rng.normal(0, 1, (N, 8)))
    build_features(cfg, "pixels")
    on_pixels = run_clustering(cfg, engine, "n2d", features="pixels")
    on_latents = run_clustering(cfg, engine, "n2d", features="autoencoder")
    assert on_pixels != on_latents
    assert run_row(engine, on_latents)["model_name"] == "demo"
    assert run_dir(cfg, "n2d", "demo", 1) != run_dir(cfg, "n2d", "pixels-thumb96x54", 1)
    assert run_dir(cfg, "n2d", "demo", 1).is_dir() and run_dir(cfg, "n2d", "pixels-thumb96x54", 1).is_dir()
    # re-running on pixels replaces that run only
    assert run_clustering(cfg, engine, "n2d", features="pixels") == on_pixels


def test_stability_is_high_for_separated_groups_and_low_for_noise():
    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(5), 60)
    separated = rng.normal(0, 12, (5, 10))[groups] + rng.normal(0, 1, (300, 10))
    found = cluster_stability(separated, (2, 8), n_runs=3, n_neighbors=10, n_epochs=100)
    assert found["k"] == 5 and found["stability"] > 0.95 and len(found["pairs"]) == 3
    noise = cluster_stability(rng.normal(0, 1, (300, 10)), (2, 8), n_runs=3, n_neighbors=10, n_epochs=100)
    assert noise["stability"] < found["stability"] - 0.2
    with pytest.raises(ValueError, match="n_runs"):
        cluster_stability(separated, n_runs=1)


def test_features_cli_says_what_auto_chose(collection, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from iss.exec.features import app

    monkeypatch.setenv("ISS_ROOT", str(tmp_path))
    monkeypatch.setenv("MODE", "demo")
    monkeypatch.delenv("ISS_CONFIG", raising=False)
    result = CliRunner().invoke(app, ["--kind", "pixels"])
    assert result.exit_code == 0, result.output
    assert "240 pictures x 50 (pixels)" in result.output
    assert read_features(collection.cfg, "pixels-thumb96x54").dim == 50
    result = CliRunner().invoke(app, ["--kind", "nothing"])
    assert result.exit_code == 1 and not isinstance(result.exception, ValueError)
