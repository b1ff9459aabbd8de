"""A run's reports: every figure written and linked from its index.html; the CLI."""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from iss.config import load_config
from iss.db.engine import get_engine
from iss.visualization.data import ReportError, get_run, run_folder_name
from iss.visualization.facets import build_facets
from iss.visualization.reports import render_run_reports
from tests.synthetic import make_synthetic_run

from .conftest import FAST_REPORTS, N_CLUSTERS, N_PICTURES


def _links(index_html: str) -> set[str]:
    return set(re.findall(r"(?:href|src)='([^']+)'", index_html))


def test_index_links_every_figure_and_page(sqlite_run):
    cfg, engine, run = sqlite_run.cfg, sqlite_run.engine, sqlite_run.run
    index = render_run_reports(cfg, engine, run.run_id)
    folder = cfg.path("reports") / run_folder_name(get_run(engine, run.run_id))
    assert index == folder / "index.html"
    html = index.read_text()
    links = _links(html)
    expected = {"scatter.html", "silhouettes.png", "overview.png", "projection_pca.png", "../index.html"}
    expected |= {f"mosaics/cluster_{k}.png" for k in range(N_CLUSTERS)}
    assert expected <= links
    for link in expected:
        assert (folder / link).exists(), link
    # the run's parameters and metrics are shown, in words
    assert "n_clusters" in html and "Silhouette" in html and f"{N_PICTURES:,}" in html
    # facets pages not built yet: said so, with the command; once built, the run page links them
    assert "iss facets" in html and "class='explorer-link'><b>Dive" not in html
    build_facets(cfg, engine)
    links = _links(index.read_text())
    assert {"../facets_overview.html", "../facets_dive.html"} <= links and "iss facets" not in index.read_text()
    # the shared thumbnails exist for every picture
    assert len(list((cfg.path("reports") / "thumbs").glob("*.jpg"))) == N_PICTURES
    # the run list links the run
    assert f"{folder.name}/index.html" in (cfg.path("reports") / "index.html").read_text()
    with Image.open(folder / "mosaics" / "cluster_0.png") as mosaic:
        assert mosaic.width == 4 * 98 + 2 or mosaic.width == 480  # mosaic_columns 4 (min width 480)


def test_rerender_is_idempotent_and_latest_is_default(sqlite_run):
    cfg, engine = sqlite_run.cfg, sqlite_run.engine
    first = render_run_reports(cfg, engine)
    files = sorted(p.relative_to(first.parent) for p in first.parent.rglob("*") if p.is_file())
    second = render_run_reports(cfg, engine, sqlite_run.run.run_id)
    assert second == first
    assert sorted(p.relative_to(first.parent) for p in first.parent.rglob("*") if p.is_file()) == files


def test_missing_latents_skip_projections_with_a_note(sqlite_run):
    sqlite_run.run.latents_path.unlink()
    index = render_run_reports(sqlite_run.cfg, sqlite_run.engine, sqlite_run.run.run_id)
    assert "projection_pca.png" not in _links(index.read_text())
    assert "No projections" in index.read_text() and "make encode" in index.read_text()


def test_pictures_missing_from_the_cache_are_a_clear_error(sqlite_run):
    cfg, engine = sqlite_run.cfg, sqlite_run.engine
    other = cfg.with_overrides({"paths": {"cache": str(cfg.root / "other_cache")}})
    make_synthetic_run(other, engine, n_pictures=5, n_clusters=2, model_name="elsewhere",
                       start=dt.datetime(2018, 1, 1))  # new pictures, cached in other_cache only
    with pytest.raises(ReportError, match=r"5 pictures of run \d+ are not in the ingest cache .*make populate_db"):
        render_run_reports(cfg, engine)
    # ...and the first run still renders
    assert render_run_reports(cfg, engine, sqlite_run.run.run_id).exists()


def test_classical_run_gets_a_dendrogram(sqlite_run):
    """A real classical clustering (iss.clustering) of the synthetic latents: its linkage_ is drawn."""
    from iss.clustering.registry import run_clustering

    cfg = sqlite_run.cfg.with_overrides({"clustering": {"classical": {"kmeans_clusters": 12, "n_clusters": 4,
                                                                      "pca_components": 8}}})
    run_id = run_clustering(cfg, sqlite_run.engine, "classical", "simple_conv", "synthetic", features="autoencoder")
    index = render_run_reports(cfg, sqlite_run.engine, run_id)
    assert "dendrogram.png" in _links(index.read_text())
    with Image.open(index.parent / "dendrogram.png") as image:
        assert image.width >= 900 and np.asarray(image.convert("L")).std() > 5


def test_cli_renders_a_run_and_names_unknown_runs(tmp_path, monkeypatch):
    from iss.exec.reports import app

    monkeypatch.setenv("ISS_ROOT", str(tmp_path))
    monkeypatch.setenv("MODE", "demo")
    cfg = load_config(mode="demo", root=tmp_path, overrides=FAST_REPORTS)
    engine = get_engine(cfg.database_url)  # the demo config's database, under the root
    run = make_synthetic_run(cfg, engine, n_pictures=20, n_clusters=2)
    engine.dispose()
    run.latents_path.unlink()  # the demo config asks for t-SNE and UMAP: keep this test fast
    result = CliRunner().invoke(app, ["--run-id", str(run.run_id)])
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith("index.html")
    result = CliRunner().invoke(app, ["--run-id", "42"])
    assert result.exit_code == 1


def test_noise_label_is_rendered_as_its_own_grey_group(sqlite_run):
    """hdbscan marks outliers -1: they get a 'noise' mosaic, legend entry and grey colour."""
    from sqlalchemy import update

    from iss.db import schema

    embedding = schema.pictures_embedding
    noisy = sqlite_run.run.ids[:7]
    with sqlite_run.engine.begin() as conn:
        conn.execute(update(embedding).where(embedding.c.pictures_id.in_(noisy)).values(label=-1, silhouette=None))
    index = render_run_reports(sqlite_run.cfg, sqlite_run.engine, sqlite_run.run.run_id)
    assert (index.parent / "mosaics" / "cluster_noise.png").exists()
    html = index.read_text()
    assert "noise" in html and "#9e9e9e" in html
    scatter = (index.parent / "scatter.html").read_text()
    assert '"noise (7)"' in scatter or "noise (7)" in scatter


@pytest.mark.parametrize("same_latents", [True, False])
def test_projection_reuses_the_runs_own_umap(sqlite_run, monkeypatch, same_latents):
    """An n2d run's stored 2-D UMAP is the UMAP figure; latents other than the run's get their own fit."""
    from sqlalchemy import update

    from iss.db.schema import clustering_runs
    from iss.visualization import figures

    cfg, engine, run = sqlite_run.cfg, sqlite_run.engine, sqlite_run.run
    latents = str(run.latents_path) if same_latents else "/elsewhere/latents.npz"
    with engine.begin() as conn:
        conn.execute(update(clustering_runs).where(clustering_runs.c.run_id == run.run_id).values(
            params={"estimator": {"n_components": 2, "plot": "umap"}, "latents": latents}))
    fitted = []
    monkeypatch.setattr(figures, "project", lambda x, method, **kw: fitted.append(method) or x[:, :2])
    cfg = cfg.with_overrides({"reports": {"projections": ["pca", "umap"]}})
    index = render_run_reports(cfg, engine, run.run_id)
    assert fitted == (["pca"] if same_latents else ["pca", "umap"])
    assert "projection_umap.png" in _links(index.read_text())
    assert (index.parent / "projection_umap.png").is_file()
