"""The search's database reads (times, clusters, cluster pages, picture pages, runs) on SQLite and
on the MySQL/MariaDB server: the session's rows copied into each backend."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from iss.db import schema
from iss.db.queries import upsert
from iss.search.service import SearchService

pytestmark = pytest.mark.slow  # uses the shared trained setup


@pytest.fixture
def service_on(search_env, engine):
    """The session's search service reading from ``engine`` (each backend) instead of its own SQLite."""
    tables = [schema.pictures, schema.pictures_location, schema.clustering_runs, schema.pictures_embedding]
    with search_env.engine.connect() as source, engine.begin() as target:
        for table in tables:
            rows = [dict(r) for r in source.execute(select(table)).mappings()]
            for start in range(0, len(rows), 500):
                upsert(target, table, rows[start:start + 500])
    s = search_env.service
    return SearchService(s.cfg, engine, s.model, s.index, s.calibration, s.cache)


def test_search_metadata_on_each_backend(service_on, search_env):
    path = sorted(search_env.collection.glob("*.jpg"))[11]
    result = service_on.search(path, k=6)
    reference = search_env.service.search(path, k=6)
    assert [h.as_dict() for h in result.hits] == [h.as_dict() for h in reference.hits]
    assert result.hits[0].taken_at is not None and result.hits[0].run_id == search_env.run_id


def test_cluster_paging_on_each_backend(service_on, search_env):
    run = service_on.latest_run()
    assert run["run_id"] == search_env.run_id
    label, size = max(next(r for r in service_on.runs() if r["run_id"] == run["run_id"])["clusters"],
                      key=lambda c: c[1])
    pages = [service_on.cluster_page(run["run_id"], label, page, page_size=16)
             for page in range(1, -(-size // 16) + 1)]
    ids = [p["pictures_id"] for page in pages for p in page["pictures"]]
    assert len(ids) == len(set(ids)) == size
    assert ids == [p["pictures_id"] for page in (search_env.service.cluster_page(run["run_id"], label, n, 16)
                                                 for n in range(1, len(pages) + 1)) for p in page["pictures"]]
    with pytest.raises(IndexError):
        service_on.cluster_page(run["run_id"], label, len(pages) + 1, page_size=16)
    with pytest.raises(KeyError):
        service_on.cluster_page(run["run_id"] + 100, label)


def test_picture_page_on_each_backend(service_on, search_env):
    picture_id = str(search_env.service.index.ids_[20])
    info = service_on.picture(picture_id)
    assert info["metadata"]["pictures_id"] == picture_id and info["clusters"][0]["run_id"] == search_env.run_id
    reference = search_env.service.picture(picture_id)
    assert info["neighbours"] == reference["neighbours"] and info["metadata"] == reference["metadata"]
    # MySQL FLOAT columns are single precision
    assert info["clusters"][0]["silhouette"] == pytest.approx(reference["clusters"][0]["silhouette"], rel=1e-5)


def test_a_run_on_pixel_features_gives_the_clusters_when_the_search_model_has_none(service_on, search_env, engine):
    """`make demo` with ``features: auto`` may cluster the pixels while the autoencoder serves the
    search: the hits and the run page link then show that run, not "no cluster"."""
    r, e = schema.clustering_runs, schema.pictures_embedding
    with engine.begin() as conn:
        conn.execute(e.delete())
        conn.execute(r.delete())
        upsert(conn, r, [dict(clustering_type="kmeans", clustering_version=1, model_type="pixels",
                              model_name="pixels-thumb96x54", params={}, metrics={}, n_clusters=2, path=None,
                              created_at=dt.datetime(2024, 1, 2))])
        run_id = conn.execute(select(r.c.run_id)).scalar_one()
        ids = [str(i) for i in search_env.service.index.ids_]
        upsert(conn, e, [dict(run_id=run_id, pictures_id=pid, pictures_x=0.0, pictures_y=0.0, label=k % 2,
                              silhouette=0.5) for k, pid in enumerate(ids)])
    assert service_on.latest_run()["run_id"] == run_id
    path = sorted(search_env.collection.glob("*.jpg"))[11]
    hits = service_on.search(path, k=4).hits
    assert all(h.run_id == run_id and h.cluster in (0, 1) for h in hits)
