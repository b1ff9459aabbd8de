"""A real search setup, built once per test session: a generated ISS-like collection, ingested
with the project's ingest, a really trained autoencoder, its latents, a clustering run and the
search service on top. About 30-60 s on a 2-core machine; every search test shares it."""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from iss.config import datasets_dir, load_config
from iss.db.engine import get_engine

N_PICTURES = 300
FRAME_SIZE = (640, 360)  # rendered at half that, like the real 1280x720 frames; enough for the texture check
EPOCHS = 12
MODEL_TYPE, MODEL_NAME = "simple_conv", "searchtest"
FASHION_MNIST = datasets_dir() / "fashion_mnist.npz"


@dataclass
class SearchEnv:
    cfg: object
    engine: object
    service: object
    run_id: int
    collection: Path


def train_small_autoencoder(cfg, engine, cache):
    """A real simple_conv autoencoder trained for a few epochs on the whole small collection, saved."""
    import keras

    from iss.models.autoencoders import build_autoencoder
    from iss.models.dataset import make_dataset
    from iss.models.training import model_dir, save_model

    keras.utils.set_random_seed(0)
    ae = build_autoencoder(MODEL_TYPE, input_shape=cache.input_shape, **cfg.section(f"models.{MODEL_TYPE}"))
    ae.compile(learning_rate=2e-3)
    history = ae.model.fit(make_dataset(cache.inputs, batch_size=32, shuffle=True, seed=0), epochs=EPOCHS,
                           verbose=0, shuffle=False)  # the dataset shuffles
    save_model(ae, model_dir(cfg, MODEL_TYPE, MODEL_NAME),
               {"model_type": MODEL_TYPE, "model_name": MODEL_NAME, "params": ae.params,
                "input_shape": list(cache.input_shape), "training": {"epochs": EPOCHS},
                "loss": [float(v) for v in history.history["loss"]]})
    return history.history["loss"]


def record_kmeans_run(engine, ids, latents, n_clusters=6) -> int:
    """A clustering run (k-means on the latents, PCA for x/y, real silhouettes) written to the database."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.metrics import silhouette_samples

    from iss.db import schema
    from iss.db.queries import replace_rows, upsert

    labels = KMeans(n_clusters, n_init=4, random_state=0).fit_predict(latents)
    xy = PCA(2, random_state=0).fit_transform(latents)
    silhouettes = silhouette_samples(latents, labels)
    with engine.begin() as conn:
        upsert(conn, schema.clustering_runs, [dict(
            clustering_type="classical", clustering_version=1, model_type=MODEL_TYPE, model_name=MODEL_NAME,
            params={"n_clusters": n_clusters}, metrics={}, n_clusters=n_clusters, path=None,
            created_at=dt.datetime(2024, 1, 1))])
        run_id = conn.execute(schema.clustering_runs.select().where(
            schema.clustering_runs.c.model_name == MODEL_NAME)).mappings().first()["run_id"]
        replace_rows(conn, schema.pictures_embedding, schema.pictures_embedding.c.run_id == run_id,
                     [dict(run_id=run_id, pictures_id=str(pid), pictures_x=float(x), pictures_y=float(y),
                           label=int(label), silhouette=float(s))
                      for pid, (x, y), label, s in zip(ids, xy, labels, silhouettes)])
    return int(run_id)


def build_search_env(root: Path, n: int = N_PICTURES) -> SearchEnv:
    from iss.data.cache import ImageCache
    from iss.data.demo import generate_collection
    from iss.data.ingest import populate_db
    from iss.models.encode import encode_collection, load_latents
    from iss.search.service import SearchService

    cfg = load_config(mode="demo", root=root, overrides={
        "database": {"url": "sqlite:///iss_search.db"},
        "training": {"model_type": MODEL_TYPE, "model_name": MODEL_NAME},
        "ingest": {"workers": 2}})
    generate_collection(root / "data" / "raw", n=n, seed=0, size=FRAME_SIZE, progress=False)
    engine = get_engine(cfg.database_url)
    populate_db(cfg, engine, progress=False)
    cache = ImageCache(cfg.path("cache"))
    train_small_autoencoder(cfg, engine, cache)
    encode_collection(cfg, engine, MODEL_TYPE, MODEL_NAME)
    ids, latents = load_latents(cfg, MODEL_TYPE, MODEL_NAME)
    run_id = record_kmeans_run(engine, ids, latents)
    service = SearchService.from_config(cfg, engine)
    return SearchEnv(cfg, engine, service, run_id, cfg.path("collections"))


@pytest.fixture(scope="session")
def search_env(tmp_path_factory) -> SearchEnv:
    """The shared real setup (see the module docstring)."""
    env = build_search_env(tmp_path_factory.mktemp("search_env"))
    yield env
    env.engine.dispose()


# --- query pictures ---------------------------------------------------------------------------
def encoded(image: Image.Image, fmt: str = "PNG", quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, quality=quality)
    return buffer.getvalue()


def near_copies(path: Path) -> dict[str, bytes]:
    """Edited copies of a collection picture: re-encoded at low quality, cropped 2-5%, brightened 10%, all three."""
    image = Image.open(path).convert("RGB")
    w, h = image.size
    crop3 = image.crop((int(w * 0.015), int(h * 0.015), w - int(w * 0.015), h - int(h * 0.015)))
    return {
        "jpeg_q40": encoded(image, "JPEG", 40),
        "crop_2pct_corner": encoded(image.crop((0, 0, w - int(w * 0.02), h - int(h * 0.02))), "JPEG", 90),
        "crop_5pct_centre": encoded(image.crop((int(w * 0.025), int(h * 0.025), w - int(w * 0.025),
                                                h - int(h * 0.025))), "JPEG", 90),
        "bright_10pct": encoded(ImageEnhance.Brightness(image).enhance(1.1), "JPEG", 90),
        "all_three": encoded(ImageEnhance.Brightness(crop3).enhance(1.1), "JPEG", 50),
    }


def out_of_collection(n_fashion: int = 5, seed: int = 0, size=(1280, 720)) -> dict[str, bytes]:
    """Pictures from elsewhere: Fashion-MNIST items scaled up to colour frames, pixel noise, plain white."""
    rng = np.random.default_rng(seed)
    queries = {}
    with np.load(FASHION_MNIST) as data:
        items = data["x"][rng.choice(len(data["x"]), n_fashion, replace=False)]
    for i, item in enumerate(items):
        queries[f"fashion_mnist_{i}"] = encoded(Image.fromarray(item).convert("RGB").resize(size, Image.BILINEAR))
    queries["uniform_noise"] = encoded(Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)))
    queries["gaussian_noise"] = encoded(Image.fromarray(
        np.clip(rng.normal(128, 40, (size[1], size[0], 3)), 0, 255).astype(np.uint8)))
    queries["plain_white"] = encoded(Image.new("RGB", size, (255, 255, 255)))
    return queries


def bomb_png(width: int = 30_000, height: int = 30_000) -> bytes:
    """A tiny PNG whose header announces ``width x height`` pixels (a decompression bomb)."""
    import struct
    import zlib

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + chunk(b"IEND", b""))


def new_frames(start: int, n: int, size=FRAME_SIZE) -> dict[str, bytes]:
    """Frames ``start .. start+n-1`` of the same generator (seed 0), not in the collection, as JPEG bytes."""
    from iss.data.demo import frame_kind, render_frame

    frames = {}
    for index in range(start, start + n):
        kind, rng = frame_kind(0, index)
        frames[f"{index}_{kind}"] = encoded(render_frame(kind, rng, size), "JPEG", 85)
    return frames


@pytest.fixture(scope="session")
def server_url(search_env):
    """The explorer server on the shared setup, in a thread, on a free port of 127.0.0.1."""
    import threading
    import time

    import uvicorn

    from iss.search.server import create_app

    config = uvicorn.Config(create_app(search_env.cfg, search_env.service), host="127.0.0.1", port=0,
                            log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the explorer server did not start", pytrace=False)
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
