"""End to end: the whole pipeline on ~200 generated frames, on SQLite, run twice."""

import pytest
from PIL import Image
from sqlalchemy import func, select

from iss.db import schema
from iss.db.engine import get_engine
from iss.pipeline import run_pipeline, summary

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def small_cfg(tmp_path_factory):
    from iss.config import load_config
    root = tmp_path_factory.mktemp("pipeline")
    return load_config(mode="demo", root=root, overrides={
        "demo": {"n_frames": 200, "seed": 3},
        "training": {"epochs": 3, "batch_size": 32, "checkpoint_every": 2},
        "clustering": {"n2d": {"umap": {"n_neighbors": 10}}},
    })


def counts(url):
    engine = get_engine(url)
    with engine.connect() as conn:
        result = {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
                  for t in (schema.pictures, schema.pictures_location, schema.splits, schema.models,
                            schema.clustering_runs, schema.pictures_embedding, schema.posters, schema.posters_slots)}
    engine.dispose()
    return result


def test_whole_pipeline_end_to_end_and_rerun_is_idempotent(small_cfg):
    result = run_pipeline(small_cfg, progress=False)

    rows = counts(result.database_url)
    assert rows["pictures"] == 200
    assert 100 <= rows["pictures_location"] <= 180  # ~70% of frames have a history line
    assert rows["splits"] == 200
    assert rows["models"] == 1 and rows["clustering_runs"] == 1
    assert rows["pictures_embedding"] == 200
    assert rows["posters"] == 1 and rows["posters_slots"] >= 1

    assert (small_cfg.path("models") / "simple_conv" / "demo" / "encoder.keras").is_file()
    assert result.report_index.is_file() and result.report_index.name == "index.html"
    html = result.report_index.read_text()
    assert "silhouette" in html.lower() and ".png" in html
    assert any(p.name.endswith(".html") for p in result.facets)
    poster = next(p for p in result.posters if p.suffix == ".jpg")
    with Image.open(poster) as image:
        assert image.size[0] >= 1000 and image.size[1] >= 1000
    assert set(result.metrics) >= {"silhouette", "ari"}
    assert "run report" in summary(result)

    # Same inputs again: every step re-runs without duplicating anything.
    again = run_pipeline(small_cfg, progress=False)
    assert counts(again.database_url) == rows
    assert again.run_id == result.run_id
