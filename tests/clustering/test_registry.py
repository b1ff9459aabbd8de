"""The run registry on SQLite and MariaDB: rows written, re-runs replacing them, fit on a sample,
evaluation against a labels file, and the CLI."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score
from sqlalchemy import select

from iss.clustering.base import ClusteringBase
from iss.clustering.registry import read_latents, run_clustering, run_dir
from iss.db import schema
from iss.db.queries import count

N, K = 300, 3
# fast settings for 300 latents; the config section supplies everything else
FAST = {"n2d": {"n_clusters": K, "umap": {"n_neighbors": 10}, "n_epochs": 100, "n_init": 3},
        "classical": {"n_clusters": K, "kmeans_clusters": 12, "pca_components": 4, "plot": "pca"}}


def write_latents(cfg, model_type="simple_conv", model_name="demo", n=N, seed=0):
    """Blob latents under the config root, as the encode step writes them; returns (ids, kinds)."""
    X, y = make_blobs(n, 8, centers=K, cluster_std=1.0, center_box=(-15, 15), random_state=seed)
    ids = np.array([f"20240101-{i:06d}" for i in range(n)])
    path = cfg.path("latents") / model_type / model_name / "latents.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, ids=ids, latents=X.astype(np.float32))
    return ids, np.array(["horizon", "nadir", "night"])[y]


def fast_cfg(cfg, clustering_type="n2d", fit_sample=0):
    section = {**cfg.section(f"clustering.{clustering_type}"), **FAST[clustering_type]}
    return cfg.with_overrides({"clustering": {clustering_type: section, "fit_sample": fit_sample}})


def embedding_rows(engine, run_id):
    e = schema.pictures_embedding
    with engine.connect() as conn:
        return conn.execute(select(e).where(e.c.run_id == run_id).order_by(e.c.pictures_id)).mappings().all()


def run_row(engine, run_id):
    r = schema.clustering_runs
    with engine.connect() as conn:
        return conn.execute(select(r).where(r.c.run_id == run_id)).mappings().one()


def test_a_run_is_recorded_and_a_rerun_replaces_it(db_cfg, engine):
    cfg = fast_cfg(db_cfg)
    ids, kinds = write_latents(cfg)
    run_id = run_clustering(cfg, engine, "n2d", "simple_conv", "demo", features="autoencoder")

    row = run_row(engine, run_id)
    assert (row["clustering_type"], row["clustering_version"], row["model_type"], row["model_name"]) == \
        ("n2d", 1, "simple_conv", "demo")
    assert row["n_clusters"] == K and row["created_at"] is not None
    assert row["params"]["estimator"]["n_clusters"] == K and row["params"]["n_fitted"] == N
    metrics = row["metrics"]
    assert metrics["silhouette"] > 0.5 and metrics["davies_bouldin"] > 0 and metrics["calinski_harabasz"] > 0
    assert set(metrics["silhouette_per_cluster"]) == {"0", "1", "2"}
    assert metrics["timings"]["fit_s"] > 0 and metrics["space"] == "umap-2d"
    assert "acc" not in metrics  # no labels file under this root

    rows = embedding_rows(engine, run_id)
    assert [r["pictures_id"] for r in rows] == sorted(ids.tolist())
    labels = np.array([r["label"] for r in rows])
    assert adjusted_rand_score(kinds, labels) >= 0.95  # ids are already sorted
    assert all(-1 <= r["silhouette"] <= 1 for r in rows)
    assert all(np.isfinite([r["pictures_x"], r["pictures_y"]]).all() for r in rows)

    # the saved model reproduces the stored labels
    model = ClusteringBase.load(run_dir(cfg, "n2d", "demo", 1))
    np.testing.assert_array_equal(model.labels_, labels)

    # same version again: same run_id, rows replaced, nothing duplicated
    again = run_clustering(cfg, engine, "n2d", "simple_conv", "demo", features="autoencoder")
    assert again == run_id
    with engine.connect() as conn:
        assert count(conn, schema.clustering_runs) == 1
        assert count(conn, schema.pictures_embedding) == N
    # another version is another run
    other = run_clustering(cfg, engine, "n2d", "simple_conv", "demo", version=2, features="autoencoder")
    assert other != run_id
    with engine.connect() as conn:
        assert count(conn, schema.clustering_runs) == 2
        assert count(conn, schema.pictures_embedding) == 2 * N


def test_fit_on_a_sample_then_predict_the_rest(db_cfg, engine):
    cfg = fast_cfg(db_cfg, "classical", fit_sample=120)
    _, kinds = write_latents(cfg)
    run_id = run_clustering(cfg, engine, "classical", "simple_conv", "demo", features="autoencoder")
    row = run_row(engine, run_id)
    assert row["params"]["n_fitted"] == 120 and row["params"]["n_pictures"] == N
    rows = embedding_rows(engine, run_id)
    assert len(rows) == N
    assert adjusted_rand_score(kinds, [r["label"] for r in rows]) >= 0.95
    assert row["metrics"]["space"] == "pca-4d"


def test_known_labels_add_accuracy_nmi_ari(cfg, engine):
    cfg = fast_cfg(cfg).with_overrides({"database": {"url": str(engine.url)}})
    ids, kinds = write_latents(cfg)
    labels_file = cfg.path("labels")
    labels_file.parent.mkdir(parents=True, exist_ok=True)
    # a labels file for all but 10 pictures
    labels_file.write_text("pictures_id,kind\n" + "".join(f"{i},{k}\n" for i, k in zip(ids[10:], kinds[10:])))
    run_id = run_clustering(cfg, engine, "n2d", "simple_conv", "demo", features="autoencoder")
    metrics = run_row(engine, run_id)["metrics"]
    assert metrics["n_labelled"] == N - 10
    assert metrics["acc"] >= 0.95 and metrics["ari"] >= 0.95 and metrics["nmi"] >= 0.9


def test_missing_or_bad_latents_say_what_to_do(cfg, engine):
    with pytest.raises(FileNotFoundError, match="make encode MODEL_TYPE=simple_conv"):
        run_clustering(cfg, engine, "n2d", "simple_conv", "demo", features="autoencoder")
    path = cfg.path("latents") / "simple_conv" / "demo" / "latents.npz"
    path.parent.mkdir(parents=True)
    np.savez(path, ids=np.array(["a", "b"]), latents=np.array([[0.0, np.nan], [1.0, 2.0]], dtype=np.float32))
    with pytest.raises(ValueError, match="NaN or infinite latents"):
        read_latents(cfg, "simple_conv", "demo")
    np.savez(path, ids=np.array(["a", "b", "c"]), latents=np.zeros((2, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="'ids' has shape"):
        read_latents(cfg, "simple_conv", "demo")


def test_cli_records_a_run(cfg, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from iss.exec.exec_clustering import app

    write_latents(cfg)
    monkeypatch.setenv("ISS_ROOT", str(tmp_path))
    monkeypatch.setenv("MODE", "demo")
    monkeypatch.delenv("ISS_CONFIG", raising=False)
    result = CliRunner().invoke(app, ["--clustering-type", "n2d", "--model-type", "simple_conv",
                                      "--model-name", "demo", "--version", "3", "--features", "autoencoder",
                                      "--no-reports"])
    assert result.exit_code == 0, result.output
    assert "run 1 recorded" in result.output
    assert (tmp_path / "models" / "clustering" / "n2d_demo_3" / "params.json").is_file()
    # a missing model's latents: one clear line and exit code 1, no traceback
    result = CliRunner().invoke(app, ["--clustering-type", "n2d", "--model-name", "nothing", "--features",
                                      "autoencoder", "--no-reports"])
    assert result.exit_code == 1
    assert not isinstance(result.exception, FileNotFoundError)


def test_the_clustering_step_does_not_import_tensorflow():
    """TensorFlow costs seconds at start-up; nothing the clustering step imports may pull it in."""
    code = ("import sys, iss.exec.exec_clustering, iss.clustering.registry, iss.clustering.n2d, "
            "iss.clustering.hdbscan\n"
            "from iss.clustering.umap_compat import import_umap\n"
            "umap = import_umap()\n"
            "assert hasattr(umap, 'UMAP')\n"
            "print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr[-2000:]


# --- side files and failures (issue 15, item 6) -----------------------------------------------
def test_a_spreadsheet_saved_labels_file_is_read(db_cfg, engine):
    """UTF-8 byte-order mark, CRLF line ends and ';' between fields, as a spreadsheet saves a CSV."""
    cfg = fast_cfg(db_cfg)
    ids, kinds = write_latents(cfg)
    labels_file = cfg.path("labels")
    labels_file.parent.mkdir(parents=True, exist_ok=True)
    labels_file.write_bytes(("pictures_id;kind\r\n" + "".join(f"{i};{k}\r\n" for i, k in zip(ids, kinds)))
                            .encode("utf-8-sig"))
    metrics = run_row(engine, run_clustering(cfg, engine, "n2d", "simple_conv", "demo", features="autoencoder"))["metrics"]
    assert metrics["n_labelled"] == N and metrics["acc"] >= 0.95


@pytest.mark.parametrize("content", [b"\xff\xfe not utf-8 \x00\x81", "id,class\r\na,b\r\n".encode("utf-8-sig")])
def test_a_bad_labels_file_skips_the_scores_not_the_run(db_cfg, engine, caplog, content):
    cfg = fast_cfg(db_cfg)
    write_latents(cfg)
    cfg.path("labels").parent.mkdir(parents=True, exist_ok=True)
    cfg.path("labels").write_bytes(content)
    run_id = run_clustering(cfg, engine, "n2d", "simple_conv", "demo", features="autoencoder")
    metrics = run_row(engine, run_id)["metrics"]
    assert "acc" not in metrics and metrics["n_clusters"] == K
    assert "evaluation labels skipped, the run goes on without ACC/NMI/ARI" in caplog.text
    assert str(cfg.path("labels")) in caplog.text
    assert (run_dir(cfg, "n2d", "demo", 1) / "params.json").is_file()


def test_a_failed_run_leaves_no_model_folder_and_keeps_the_previous_one(db_cfg, engine, monkeypatch):
    import iss.clustering.registry as registry

    cfg = fast_cfg(db_cfg)
    write_latents(cfg)
    folder = run_dir(cfg, "n2d", "demo", 1)
    monkeypatch.setattr(registry, "_record_run", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("database gone")))
    with pytest.raises(RuntimeError, match="database gone"):
        run_clustering(cfg, engine, "n2d", "simple_conv", "demo", features="autoencoder")
    assert sorted(p.name for p in folder.parent.iterdir()) == []  # neither the model nor its staging folder
    with engine.connect() as conn:
        assert count(conn, schema.clustering_runs) == 0
    monkeypatch.undo()

    run_id = run_clustering(cfg, engine, "n2d", "simple_conv", "demo", features="autoencoder")
    before = (folder / "state.joblib").read_bytes()
    monkeypatch.setattr(registry, "_record_run", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("database gone")))
    with pytest.raises(RuntimeError):
        run_clustering(cfg.with_overrides({"clustering": {"n2d": {"n_clusters": 4}}}), engine, "n2d",
                       "simple_conv", "demo", features="autoencoder")
    assert sorted(p.name for p in folder.parent.iterdir()) == ["n2d_demo_1"]
    assert (folder / "state.joblib").read_bytes() == before  # the recorded model, still matching its row
    assert run_row(engine, run_id)["n_clusters"] == K


def test_cli_unknown_clustering_type_lists_the_valid_ones(cfg, tmp_path, monkeypatch, caplog):
    from typer.testing import CliRunner

    from iss.exec.exec_clustering import app

    monkeypatch.setenv("ISS_ROOT", str(tmp_path))
    monkeypatch.setenv("MODE", "demo")
    monkeypatch.delenv("ISS_CONFIG", raising=False)
    result = CliRunner().invoke(app, ["--clustering-type", "bogus", "--no-reports"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)  # no traceback
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors == ["clustering_type='bogus': expected one of 'classical', 'advanced', 'n2d', 'hdbscan'"]
