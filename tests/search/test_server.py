"""The explorer server through FastAPI's TestClient: search (JSON and HTML), thumbnails, picture
and cluster pages, near-duplicates and outliers (pages and CSV), reports, and clear 4xx answers
to bad requests after which the server still works."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.search.conftest import bomb_png, out_of_collection
from tests.search.photographs import real_photographs

pytestmark = pytest.mark.slow  # uses the shared trained setup

JSON = {"Accept": "application/json"}


@pytest.fixture(scope="module")
def client(search_env):
    from iss.search.server import create_app

    with TestClient(create_app(search_env.cfg, search_env.service)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def picture(search_env):
    return sorted(search_env.collection.glob("*.jpg"))[7]


def upload(data: bytes, name="query.jpg", content_type="image/jpeg"):
    return {"file": (name, data, content_type)}


def assert_healthy(client, picture):
    assert client.get("/health").json()["status"] == "ok"
    answer = client.post("/search?format=json", files=upload(picture.read_bytes()))
    assert answer.status_code == 200 and answer.json()["results"][0]["pictures_id"] == picture.stem


def test_upload_page_and_health(client, search_env):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'type="file" name="file"' in page.text and 'action="/search"' in page.text
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["n_index"] == len(search_env.service.index)
    assert health["distance_threshold"] == pytest.approx(search_env.service.index.threshold_)


def test_search_json_finds_the_picture(client, picture):
    for kwargs in ({"url": "/search?format=json"}, {"url": "/search", "headers": JSON}):
        answer = client.post(files=upload(picture.read_bytes()), data={"k": "5"}, **kwargs)
        assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
        body = answer.json()
        assert body["good_match"] is True and body["verdict"] == "good match (a copy)"
        assert "80 %" in body["confidence_means"]  # one sentence saying what a confidence means
        assert len(body["results"]) == 5
        first = body["results"][0]
        assert first["pictures_id"] == picture.stem and first["distance"] < 1e-3 and first["confidence"] == 1.0
        assert first["thumb_url"] == f"/thumbs/{picture.stem}.jpg" and first["cluster"] is not None
        assert body["query"] == {"width": 640, "height": 360}


def test_search_html_shows_thumbnails_and_verdict(client, picture):
    answer = client.post("/search", files=upload(picture.read_bytes()), headers={"Accept": "text/html"})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    html = answer.text
    assert 'id="verdict"' in html and "Good match" in html
    assert 'id="confidence-means"' in html and "80 %" in html
    assert html.count('src="/thumbs/') == 12 and f'src="/thumbs/{picture.stem}.jpg"' in html
    assert 'src="data:image/png;base64,' in html  # the query itself


def test_out_of_collection_upload_says_no_good_match(client):
    queries = out_of_collection(n_fashion=1)
    body = client.post("/search?format=json", files=upload(queries["fashion_mnist_0"], "item.png", "image/png")).json()
    assert body["good_match"] is False and body["reasons"]
    assert all(r["confidence"] == 0 and r["good_match"] is False for r in body["results"])
    html = client.post("/search", files=upload(queries["uniform_noise"], "noise.png", "image/png")).text
    assert "No good match" in html
    china = client.post("/search?format=json", files=upload(real_photographs()["china"], "china.jpg")).json()
    assert china["verdict"] == "no good match" and "appearance" in [
        name for name, check in china["checks"].items() if not check["passed"]]


def test_thumbnails_are_served_by_id_only(client, picture, search_env):
    answer = client.get(f"/thumbs/{picture.stem}.jpg")
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(answer.content)).size == tuple(search_env.service.cache.thumb_size)
    for bad in ("/thumbs/nope.jpg", "/thumbs/..%2F..%2Fetc%2Fpasswd.jpg", "/thumbs/%2e%2e.jpg",
                f"/thumbs/{picture.stem}%00.jpg"):
        assert client.get(bad).status_code == 404, bad
    assert "no picture 'nope' in the search index" in client.get("/thumbs/nope.jpg").json()["error"]["message"]


def test_picture_page(client, picture, search_env):
    body = client.get(f"/pictures/{picture.stem}?format=json").json()
    assert body["metadata"]["filename"] == picture.name
    assert [c["run_id"] for c in body["clusters"]] == [search_env.run_id]
    neighbours = [n["pictures_id"] for n in body["neighbours"]]
    assert len(neighbours) == 12 and picture.stem not in neighbours
    html = client.get(f"/pictures/{picture.stem}").text
    assert f"/clusters/{search_env.run_id}/{body['clusters'][0]['label']}" in html
    assert html.count('src="/thumbs/') == 12  # the 12 neighbours; the picture itself at screen size
    assert f'src="/pictures/{picture.stem}/picture.jpg"' in html
    assert "Day or night" in html or "no position is known" in html
    from PIL import Image

    answer = client.get(f"/pictures/{picture.stem}/picture.jpg")
    assert answer.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(answer.content)) as shown, Image.open(picture) as original:
        assert shown.size == original.size  # the collection's 640x360 frame fits the screen box as it is
    assert client.get("/pictures/unknown-id/picture.jpg").status_code == 404
    assert client.get("/pictures/unknown-id").status_code == 404


def test_cluster_pages_cover_the_cluster_once(client, search_env):
    runs = client.get("/clusters?format=json").json()["runs"]
    run = next(r for r in runs if r["run_id"] == search_env.run_id)
    label, size = max(run["clusters"], key=lambda c: c[1])
    first = client.get(f"/clusters/{run['run_id']}/{label}?format=json").json()
    assert first["total"] == size and first["page"] == 1
    page_size = first["page_size"]
    assert first["pages"] == -(-size // page_size) >= 2, "the largest cluster should span pages"
    seen = []
    for number in range(1, first["pages"] + 1):
        page = client.get(f"/clusters/{run['run_id']}/{label}?page={number}&format=json").json()
        seen += [p["pictures_id"] for p in page["pictures"]]
        silhouettes = [p["silhouette"] for p in page["pictures"]]
        assert silhouettes == sorted(silhouettes, reverse=True)
    assert len(seen) == len(set(seen)) == size
    html = client.get(f"/clusters/{run['run_id']}/{label}?page=2").text
    assert 'class="prev"' in html and html.count('src="/thumbs/') == min(page_size, size - page_size)
    assert client.get(f"/clusters/{run['run_id']}/{label}?page={first['pages'] + 1}").status_code == 404
    assert client.get(f"/clusters/{run['run_id']}/999").status_code == 404
    assert client.get(f"/clusters/9999/{label}").status_code == 404
    assert client.get(f"/clusters/{run['run_id']}/{label}?page=abc", headers=JSON).status_code == 422
    assert f"/clusters/{run['run_id']}/{label}" in client.get("/clusters").text


def test_near_duplicates_and_outliers_pages_and_csv(client, search_env):
    pairs = client.get("/near-duplicates?format=json").json()
    threshold = pairs["threshold"]
    assert all(p["distance"] <= threshold for p in pairs["pairs"])
    rows = list(csv.DictReader(io.StringIO(client.get("/near-duplicates.csv").text)))
    assert len(rows) == len(pairs["pairs"])
    if rows:
        assert set(rows[0]) == {"pictures_id_a", "pictures_id_b", "distance", "taken_at_a", "taken_at_b"}
    assert client.get("/near-duplicates").status_code == 200

    sets = client.get("/near-duplicates?format=json").json()["sets"]
    assert [s["size"] for s in sets] == sorted((s["size"] for s in sets), reverse=True)
    keep_one = list(csv.DictReader(io.StringIO(client.get("/near-duplicates-keep-one.csv").text)))
    assert len(keep_one) == sum(s["size"] for s in sets)
    assert sum(r["keep"] == "yes" for r in keep_one) == len(sets)

    answer = client.get("/outliers.csv?n=10")
    assert answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    scores = [float(r["score"]) for r in rows]
    assert len(rows) == 10 and scores == sorted(scores, reverse=True)
    assert scores[0] == pytest.approx(float(search_env.service.outlier_scores.score.max()), rel=1e-5)
    assert all(r["reason"] for r in rows)
    assert 'id="outliers"' in client.get("/outliers").text


def test_reports_are_served_read_only(client, search_env):
    folder = search_env.cfg.path("reports") / "run-x"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "index.html").write_text("<html>run report</html>")
    assert client.get("/reports/run-x/index.html").text == "<html>run report</html>"
    assert client.get("/reports/run-x/").status_code == 200
    assert client.get("/reports/..%2Fiss_search.db").status_code == 404
    assert client.post("/reports/run-x/index.html").status_code == 405


@pytest.mark.parametrize("make_request, status, words", [
    (lambda c: c.post("/search", files=upload(b""), headers=JSON), 400, "empty"),
    (lambda c: c.post("/search", files=upload(b"GIF89a but not really" * 10), headers=JSON), 400, "not a picture"),
    (lambda c: c.post("/search", files=upload(bomb_png(), "bomb.png", "image/png"), headers=JSON), 413, "pixels"),
    (lambda c: c.post("/search", files=upload(np.random.default_rng(0).bytes(11 * 2**20)), headers=JSON), 413,
     "MB limit"),
    (lambda c: c.post("/search", data={"k": "3"}, headers=JSON), 422, "'file' is missing"),
    (lambda c: c.post("/search", files=upload(small_jpeg()), data={"k": "1000"}, headers=JSON), 422, "'k'"),
])
def test_bad_requests_get_clear_4xx_and_the_server_stays_healthy(client, picture, make_request, status, words):
    answer = make_request(client)
    assert answer.status_code == status
    assert words in answer.json()["error"]["message"]
    assert_healthy(client, picture)


def test_streamed_upload_over_the_limit_is_cut_off(client, picture, search_env):
    """No Content-Length (chunked): the body is counted while it streams in and refused past the limit."""
    limit = int(search_env.service.settings["max_upload_mb"] * 2**20)
    boundary = "xyz"

    def body():
        yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.jpg\"\r\n"
               f"Content-Type: image/jpeg\r\n\r\n").encode()
        chunk = b"\xff" * 2**20
        for _ in range(limit // len(chunk) + 2):
            yield chunk
        yield f"\r\n--{boundary}--\r\n".encode()

    answer = client.post("/search", content=body(), headers={"Content-Type": f"multipart/form-data; boundary={boundary}",
                                                             **JSON})
    assert answer.status_code == 413 and "MB limit" in answer.json()["error"]["message"]
    assert_healthy(client, picture)


def test_errors_are_html_pages_for_browsers(client):
    answer = client.post("/search", files=upload(b""), headers={"Accept": "text/html"})
    assert answer.status_code == 400 and answer.headers["content-type"].startswith("text/html")
    assert 'id="error"' in answer.text and "empty" in answer.text
    assert client.get("/no/such/page").status_code == 404


def small_jpeg() -> bytes:
    """A small valid JPEG."""
    buffer = io.BytesIO()
    Image.new("RGB", (64, 36), (10, 20, 30)).save(buffer, format="JPEG")
    return buffer.getvalue()


def test_near_duplicate_pairs_pass_both_tests_and_sets_are_not_chains_of_the_collection(search_env):
    from iss.search.novelty import thumb_correlations

    service = search_env.service
    a, b, d = service.near_duplicate_pairs
    assert (d <= service.calibration.near_duplicate_distance).all()
    assert service.calibration.near_duplicate_distance < service.calibration.near_copy_distance
    ids = service.index.ids_
    if len(a):
        correlations = thumb_correlations(service.cache.get_thumbs([str(ids[i]) for i in a]),
                                          service.cache.get_thumbs([str(ids[j]) for j in b]))
        assert (correlations >= service.calibration.near_copy_correlation).all()
    # before the median edit and the correlation, ordinary neighbours chained a quarter of the demo into one set
    assert max((s["size"] for s in service.near_duplicate_sets()), default=0) <= 0.05 * len(service.index)
