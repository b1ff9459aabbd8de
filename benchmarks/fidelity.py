"""Do our clusters hold on real collections? The default pipeline against UMAP on pixels and PCA.

    make bench-fidelity          # or: python -m benchmarks.fidelity [set ...]

Data sets (``SETS``): the 30 real ISS frames of ``shared/real/iss_frames`` (labelled by eye here,
``REAL_KINDS``; small, and the posters repeat some frames, so read it as a sanity check), the
generated demo at 2,000 frames and at 300 (the autoencoder trained on those 300: a first run on a
small collection), MNIST-10k, a stratified 10k of Fashion-MNIST, and Fashion-MNIST at 500
pictures (stratified). On each, in the same run:

- ``default``: the default pipeline, label-free: the autoencoder, ``features: auto`` (the
  autoencoder's latents or the pixels, by cluster stability, :mod:`iss.features.auto`), then the
  default clustering (``clustering.default`` of ``config_demo.yaml``: n2d, UMAP 2-D + k-means) with
  ``n_clusters: auto`` (modularity). On the demo sets these are the pipeline's own steps on a
  temporary SQLite database (generate, ingest, sample, train ``simple_conv``, encode, features,
  clustering). On the 28x28 sets the autoencoder is the one the project uses for such pictures,
  the N2D paper's dense autoencoder trained as in ``benchmarks/quality.py`` (the conv autoencoder
  is built for camera frames);
- ``umap_pixels``: UMAP (20 neighbours, 2-D, min_dist 0) on the raw pixels, k-means with the true k;
- ``pca``: PCA(50) of the raw pixels, k-means with the true k.

Each gets ACC (Hungarian), NMI, ARI against the true kinds (used for nothing else), the k found
and seconds. Writes ``reports/bench/fidelity.json``: one key per data set holding ``default``,
``umap_pixels`` and ``pca`` (each ``ari``, ``nmi``, ``acc``, ``k``, ``seconds``), plus what auto
chose and why; the candidates' features are kept in ``reports/bench/fidelity/<set>.npz``.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import BENCH_DIR, write_report

SETS = {
    "real_30": {"source": "real", "n": 30},
    "demo_2000": {"source": "demo", "n": 2000, "input_sizes": True},
    "demo_300": {"source": "demo", "n": 300},
    "mnist_10k": {"source": "mnist_10k", "n": None},
    "fashion_mnist_10k": {"source": "fashion_mnist", "n": 10000},
    "fashion_mnist_500": {"source": "fashion_mnist", "n": 500},
}
DIGIT_EPOCHS = {"mnist_10k": 100, "fashion_mnist": 30}  # benchmarks/quality.py's recipe
# The 30 real frames of shared/real/iss_frames, labelled by eye for this benchmark only (frames 1-3
# and 4 of each poster are the same pictures on all three posters): poster<p>_pos<NN> -> kind.
REAL_KINDS = {1: "horizon", 2: "horizon_iss", 3: "dusk_horizon", 4: "glare", 5: "horizon", 6: "nadir",
              7: "nadir", 8: "nadir", 9: "nadir", 10: "horizon"}
SEED = 0


def scored(y, labels, seconds: float, k: int | None = None) -> dict:
    """``ari``, ``nmi``, ``acc`` (rounded), ``k`` (clusters found) and ``seconds``."""
    from iss.clustering.metrics import external_metrics

    metrics = {m: round(v, 4) for m, v in external_metrics(np.asarray(y).astype(str), labels).items()}
    return {**metrics, "k": int(k if k is not None else len(np.unique(labels))), "seconds": round(seconds, 1)}


def baselines(pixels: np.ndarray, y: np.ndarray) -> dict:
    """UMAP on pixels + k-means, and PCA(50) + k-means, with the true number of kinds."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from threadpoolctl import threadpool_limits

    from iss.clustering.n2d import N2DClustering

    k = len(np.unique(y))
    out = {}
    tick = time.perf_counter()
    # direct_below=0: UMAP at every size (n2d's own default skips it below 50 pictures)
    model = N2DClustering(n_clusters=k, n_neighbors=20, min_dist=0.0, n_components=2, direct_below=0,
                          random_state=SEED).fit(pixels)
    out["umap_pixels"] = scored(y, model.labels_, time.perf_counter() - tick)
    tick = time.perf_counter()
    with threadpool_limits(limits=1):
        reduced = PCA(n_components=min(50, *pixels.shape), random_state=SEED).fit_transform(pixels)
        labels = KMeans(n_clusters=k, n_init=10, random_state=SEED).fit_predict(reduced)
    out["pca"] = scored(y, labels, time.perf_counter() - tick)
    return out


def default_clustering(cfg, features: np.ndarray):
    """The default clustering of ``config_demo.yaml`` (section as configured, n_clusters auto) fitted on ``features``."""
    from iss.clustering import make_clustering

    clustering_type = cfg.get("clustering.default")
    section = {k: v for k, v in cfg.section(f"clustering.{clustering_type}").items() if k != "version"}
    return make_clustering(clustering_type, **section).fit(features)


def run_collection(name: str, n: int, workdir: Path, real: bool = False,
                   input_sizes: bool = False) -> tuple[dict, dict]:
    """The pipeline's own steps in ``workdir`` on ``n`` generated frames, or on the real frames; figures
    and the candidates."""
    from iss.clustering.registry import run_clustering
    from iss.config import load_config, real_frames_dir
    from iss.data.cache import ImageCache
    from iss.data.demo import generate_collection
    from iss.data.ingest import populate_db
    from iss.data.sampling import sample_splits
    from iss.data.sync import sync_collections
    from iss.db.engine import get_engine
    from iss.features import build_features
    from iss.features.autoencoder import read_latents
    from iss.models.encode import encode_collection
    from iss.models.training import train_model
    from iss.pipeline import run_metrics

    overrides = {"database": {"url": "sqlite:///bench.db"}}
    if real:  # the real frames' folder, as a user would point sync at it
        overrides["sync"] = {"source": str(real_frames_dir()), "collections_subdir": "", "history_file": "",
                             "labels_file": ""}
    cfg = load_config(mode="demo", root=workdir, overrides=overrides)
    engine = get_engine(cfg.database_url)
    tick = time.perf_counter()
    if real:
        cfg.path("labels").parent.mkdir(parents=True, exist_ok=True)
        with open(cfg.path("labels"), "w", newline="") as fh:
            fh.write("pictures_id,kind\n" + "".join(f"{p.stem},{REAL_KINDS[int(p.stem[-2:])]}\n"
                                                    for p in sorted(real_frames_dir().glob("*.jpg"))))
    else:
        generate_collection(cfg.path("source"), n=n, seed=int(cfg.get("demo.seed")), progress=False)
    generated_s = time.perf_counter() - tick
    started = time.perf_counter()
    sync_collections(cfg, progress=False)
    populate_db(cfg, engine, progress=False)
    sample_splits(cfg, engine)
    model_type, model_name = cfg.get("training.model_type"), cfg.get("training.model_name")
    train_model(cfg, engine, model_type, model_name, verbose=0)
    encode_collection(cfg, engine, model_type, model_name)
    chosen = build_features(cfg, "auto", model_type, model_name)
    run_id = run_clustering(cfg, engine, cfg.get("clustering.default"), model_type, model_name, features="auto")
    seconds = time.perf_counter() - started
    metrics = run_metrics(engine, run_id)
    engine.dispose()

    cache = ImageCache(cfg.path("cache"))
    ids = np.array(cache.ids)
    with open(cfg.path("labels"), newline="") as fh:
        kinds = {row["pictures_id"]: row["kind"] for row in csv.DictReader(fh)}
    y = np.array([kinds[i] for i in ids])
    pixels = cache.thumbs.reshape(len(ids), -1).astype(np.float32) / 255.0
    out = {"n": int(len(ids)), "true_k": int(len(np.unique(y))),
           "default": {**{m: round(metrics[m], 4) for m in ("ari", "nmi", "acc")}, "k": int(metrics["n_clusters"]),
                       "seconds": round(seconds, 1), "generate_s": round(generated_s, 1)},
           "auto": chosen.record["auto"]}
    out["default"]["kind_purity"] = kind_purity(engine_labels(cfg, run_id, ids), y)
    out.update(baselines(pixels, y))
    latent_ids, latents = read_latents(cfg, model_type, model_name)
    order = {pid: i for i, pid in enumerate(latent_ids.tolist())}
    candidates = {"y": y, "autoencoder": latents[[order[i] for i in ids]],
                  "pixels": _pixel_candidate(cfg, cache), "raw": np.asarray(cache.thumbs)}
    if input_sizes:
        out["autoencoder_input"] = compare_input_sizes(cfg, candidates["autoencoder"], ids, y)
    return out, candidates


def compare_input_sizes(cfg, latents_48x27: np.ndarray, ids: np.ndarray, y: np.ndarray) -> dict:
    """The autoencoder on the 48x27 model input against one on the 96x54 thumbnails (``training.input:
    thumb``, latent 6x12x16): UMAP + k-means with the true k on each one's latents, same settings."""
    from iss.clustering.n2d import N2DClustering
    from iss.db.engine import get_engine
    from iss.features.autoencoder import read_latents
    from iss.models.encode import encode_collection
    from iss.models.training import train_model

    k = len(np.unique(y))
    thumb_cfg = cfg.with_overrides({"training": {"input": "thumb"},
                                    "models": {"simple_conv": {"latent_shape": [6, 12, 16]}}})
    engine = get_engine(cfg.database_url)
    tick = time.perf_counter()
    trained = train_model(thumb_cfg, engine, "simple_conv", "thumb", verbose=0)
    encode_collection(thumb_cfg, engine, "simple_conv", "thumb")
    engine.dispose()
    seconds = time.perf_counter() - tick
    latent_ids, latents = read_latents(cfg, "simple_conv", "thumb")
    order = {pid: i for i, pid in enumerate(latent_ids.tolist())}
    out = {}
    for name, values in (("input48x27", latents_48x27), ("thumb96x54", latents[[order[i] for i in ids]])):
        labels = N2DClustering(n_clusters=k, random_state=SEED).fit(values).labels_
        out[name] = {**scored(y, labels, 0.0), "latent_dim": int(values.shape[1])}
    out["thumb96x54"].update(train_encode_s=round(seconds, 1), val_loss=trained.metrics.get("val_loss"))
    return out


def _pixel_candidate(cfg, cache) -> np.ndarray:
    from iss.features.pixels import cached_pixels, pixel_features, pixel_settings

    settings = pixel_settings(cfg)
    return pixel_features(cached_pixels(cache, settings["size"]), settings["pca_components"],
                          bool(settings["standardise"]), int(settings["pca_sample"]))[0]


def engine_labels(cfg, run_id: int, ids: np.ndarray) -> np.ndarray:
    """The labels a recorded run gave ``ids``."""
    from sqlalchemy import select

    from iss.db import schema
    from iss.db.engine import get_engine

    engine = get_engine(cfg.database_url)
    e = schema.pictures_embedding
    with engine.connect() as conn:
        rows = dict(conn.execute(select(e.c.pictures_id, e.c.label).where(e.c.run_id == run_id)).all())
    engine.dispose()
    return np.array([rows[i] for i in ids])


def kind_purity(labels: np.ndarray, y: np.ndarray) -> dict:
    """For each kind, the share of its pictures in the cluster holding most of them."""
    out = {}
    for kind in np.unique(y):
        _, counts = np.unique(labels[y == kind], return_counts=True)
        out[str(kind)] = round(float(counts.max() / counts.sum()), 4)
    return out


def run_digits(name: str, source: str, n: int | None) -> tuple[dict, dict]:
    """The default pipeline (N2D autoencoder, features auto, default clustering) on 28x28 pictures."""
    from benchmarks.quality import RECIPE, load_dataset, train_and_encode
    from iss.config import load_config
    from iss.features.auto import choose_features
    from iss.features.pixels import pixel_features, pixel_settings

    x, y = load_dataset(source)
    if n is not None and n < len(x):
        x, y = stratified(x, y, n)
    cfg = load_config(mode="demo")
    started = time.perf_counter()
    augment = RECIPE["autoencoder"]["augment"]["mnist_10k" if source == "mnist_10k" else "fashion_mnist"]
    latents, record = train_and_encode(x, DIGIT_EPOCHS[source], SEED, **augment)
    settings = pixel_settings(cfg)
    pixels = pixel_features(x, settings["pca_components"], bool(settings["standardise"]), int(settings["pca_sample"]))[0]
    candidates = {"pixels": pixels, "autoencoder": latents}
    chosen, auto = choose_features(candidates, cfg.get("features.auto"))
    model = default_clustering(cfg, candidates[chosen])
    out = {"n": int(len(x)), "true_k": int(len(np.unique(y))),
           "default": {**scored(y, model.labels_, time.perf_counter() - started, model.n_clusters_),
                       "autoencoder": record},
           "auto": auto}
    out.update(baselines(x.reshape(len(x), -1).astype(np.float32) / 255.0, y))
    return out, {"y": y, **candidates, "raw": x}


def stratified(x: np.ndarray, y: np.ndarray, n: int, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """``n`` pictures, the same number of each class (seeded), in their original order."""
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    rows = np.sort(np.concatenate([rng.choice(np.flatnonzero(y == c), n // len(classes), replace=False)
                                   for c in classes]))
    return x[rows], y[rows]


def main(names: list[str] | None = None) -> dict:
    """Run the benchmark on ``names`` (default all), print the table and write reports/bench/fidelity.json."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    names = names or list(SETS)
    unknown = sorted(set(names) - set(SETS))
    if unknown:
        raise SystemExit(f"unknown data set(s) {unknown}; expected some of {list(SETS)}")
    started = time.perf_counter()
    previous = BENCH_DIR / "fidelity.json"
    # a run on some sets updates them and keeps the others' figures (each set is one self-contained run)
    result: dict = {k: v for k, v in json.loads(previous.read_text()).items() if k in SETS} if previous.exists() else {}
    kept = BENCH_DIR / "fidelity"
    kept.mkdir(parents=True, exist_ok=True)
    for name in names:
        spec = SETS[name]
        print(f"{name} ...", flush=True)
        tick = time.perf_counter()
        if spec["source"] in ("demo", "real"):
            with tempfile.TemporaryDirectory(prefix=f"iss-fidelity-{name}-") as tmp:
                figures, candidates = run_collection(name, spec["n"], Path(tmp), real=spec["source"] == "real",
                                                     input_sizes=spec.get("input_sizes", False))
        else:
            figures, candidates = run_digits(name, spec["source"], spec["n"])
        figures["total_s"] = round(time.perf_counter() - tick, 1)
        figures["measured_at"] = time.strftime("%Y-%m-%d %H:%M")
        np.savez(kept / f"{name}.npz", **candidates)
        result[name] = figures
        print(f"  {name}: " + "  ".join(f"{m} ARI {figures[m]['ari']:.3f} k={figures[m]['k']}"
                                        for m in ("default", "umap_pixels", "pca"))
              + f"  (auto: {figures['auto']['chosen']})", flush=True)
    result["total_s"] = round(time.perf_counter() - started, 1)
    print_table(result, [name for name in SETS if name in result])
    write_report("fidelity", result)
    return result


def print_table(result: dict, names: list[str]) -> None:
    print(f"\n{'data set':<20}{'method':<13}{'ARI':>7}{'NMI':>7}{'ACC':>7}{'k':>4}{'s':>8}   auto chose")
    for name in names:
        for method in ("default", "umap_pixels", "pca"):
            f = result[name][method]
            chose = result[name]["auto"]["chosen"] if method == "default" else ""
            print(f"{name:<20}{method:<13}{f['ari']:>7.3f}{f['nmi']:>7.3f}{f['acc']:>7.3f}{f['k']:>4}"
                  f"{f['seconds']:>8.1f}   {chose}")
    for name in names:
        gap = result[name]["default"]["ari"] - result[name]["umap_pixels"]["ari"]
        print(f"{name}: default - umap_pixels ARI = {gap:+.3f} ({'ok' if gap >= -0.02 else 'BELOW'} the -0.02 bar)")


if __name__ == "__main__":
    main(sys.argv[1:] or None)
