"""The search's database reads (times, clusters, cluster pages, picture pages, runs) on SQLite and
on the MySQL/MariaDB server: the session's rows copied into each backend."""

from __future__ import annotations

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
