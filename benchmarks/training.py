"""Training speed and quality: the original convolutional autoencoder versus the fast default.

    python -m benchmarks.training                                  # 2,000 demo frames, 25 epochs
    BENCH_TRAINING_EPOCHS=10 BENCH_TRAINING_N=1000 python -m benchmarks.training   # quicker

On the demo collection (generated once under ``data/bench/demo`` by
:func:`iss.data.demo.generate_collection`, decoded once to 48x27 with
:func:`iss.data.images.decode_picture` and kept in ``data/bench/demo/inputs_48x27.npz``),
in one run and with the same seeded 80/10/10 split, batch size and learning rate
(``config_demo.yaml``'s ``training``), for ``simple_conv`` ``variant: original`` and
``variant: fast``:

- ``ms_per_image_epoch``: wall time of the training epochs after the first (which includes
  tracing) / (training pictures x epochs); ``cpu_ms_per_image_epoch`` the same in CPU time
  (all threads), which a busy shared machine disturbs less;
- ``val_loss``: reconstruction MSE on the valid split, with the best epoch's weights
  (early stopping on val_loss, patience ``training.early_stopping_patience``);
- ``demo_ari``: adjusted Rand index between the demo kinds (``labels.csv``) and N2D clusters of
  the latents of every frame (UMAP to 2-D, n_neighbors 20, min_dist 0, then k-means, k=6);
- ``encode_per_s``: pictures per second of :func:`iss.models.encode.encode_images` on 20,000
  inputs (best of 3).

Also measured, for the record: the fast variant compiled with XLA (``jit_compile``), a few
epochs, speed only. Writes ``reports/bench/training.json``.
"""

from __future__ import annotations

import csv
import os
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402

from benchmarks.common import ROOT, write_report  # noqa: E402

BENCH_DATA = ROOT / "data" / "bench" / "demo"
INPUTS_FILE = BENCH_DATA / "inputs_48x27.npz"
N_KINDS = 6


def ensure_demo(n: int) -> tuple[list[str], list[str]]:
    """Ids and kinds of ``n`` demo frames under data/bench/demo (generated once, then reused)."""
    from iss.data.demo import generate_collection

    labels = BENCH_DATA / "labels.csv"
    rows = list(csv.DictReader(open(labels, newline=""))) if labels.is_file() else []
    if len(rows) < n:
        print(f"generating {n} demo frames in {BENCH_DATA} (once; reused by later runs)", flush=True)
        generate_collection(BENCH_DATA, n=n, seed=0, progress=True)
        rows = list(csv.DictReader(open(labels, newline="")))
    rows = rows[:n]
    return [r["pictures_id"] for r in rows], [r["kind"] for r in rows]


def decode_inputs(ids: list[str]) -> np.ndarray:
    """uint8 (n, 27, 48, 3) model inputs of the frames, decoded once and kept in an .npz."""
    if INPUTS_FILE.is_file():
        with np.load(INPUTS_FILE) as data:
            if list(data["ids"]) == ids:
                return data["inputs"]
    from iss.data.images import decode_picture

    started = time.perf_counter()
    inputs = np.stack([decode_picture(BENCH_DATA / "collections" / f"{pid}.jpg").input for pid in ids])
    print(f"decoded {len(ids)} frames to 48x27 in {time.perf_counter() - started:.1f} s", flush=True)
    np.savez(INPUTS_FILE, ids=np.array(ids), inputs=inputs)
    return inputs


def split_rows(n: int, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """Seeded 80% train / 10% valid rows (the remaining 10% is the unused test share)."""
    order = np.random.default_rng(seed).permutation(n)
    n_train, n_valid = int(0.8 * n), int(0.1 * n)
    return np.sort(order[:n_train]), np.sort(order[n_train:n_train + n_valid])


def demo_ari(latents: np.ndarray, kinds: list[str]) -> float:
    """ARI of N2D clusters (UMAP 2-D, n_neighbors 20, min_dist 0, k-means k=6) against the kinds."""
    from sklearn.metrics import adjusted_rand_score

    from iss.clustering import make_clustering

    clustering = make_clustering("n2d", n_clusters=N_KINDS, n_neighbors=20, min_dist=0.0, n_components=2,
                                 method="kmeans", random_state=0).fit(latents)
    return float(adjusted_rand_score(kinds, clustering.labels_))


def encode_rate(encoder, inputs: np.ndarray, n: int = 20_000, repeats: int = 3) -> float:
    """Best pictures/s of ``encode_images`` over ``n`` inputs (the collection tiled)."""
    from iss.models.encode import encode_images

    pixels = np.resize(inputs, (n, *inputs.shape[1:]))
    encode_images(encoder, pixels[:64])  # trace once
    best = 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        encode_images(encoder, pixels)
        best = max(best, n / (time.perf_counter() - started))
    return best


class CpuTimer(keras.callbacks.Callback):
    """CPU seconds (all threads) of each epoch."""

    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.process_time()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.process_time() - self._start)


def train_variant(variant: str, inputs: np.ndarray, kinds: list[str], train: np.ndarray, valid: np.ndarray,
                  settings: dict, epochs: int, jit_compile: bool = False, quality: bool = True) -> dict:
    """Train ``simple_conv`` of ``variant`` and measure it (see the module docstring)."""
    from iss.models.autoencoders import build_autoencoder
    from iss.models.dataset import make_dataset
    from iss.models.encode import encode_images
    from iss.models.training import fit

    keras.utils.set_random_seed(int(settings["seed"]))
    ae = build_autoencoder("simple_conv", inputs.shape[1:], variant=variant)
    ae.compile(float(settings["learning_rate"]), jit_compile=jit_compile)
    batch_size = int(settings["batch_size"])
    train_ds = make_dataset(inputs, batch_size, shuffle=True, seed=int(settings["seed"]), rows=train)
    valid_ds = make_dataset(inputs, 256, rows=valid)
    cpu = CpuTimer()
    result = fit(ae, train_ds, valid_ds, epochs=epochs, patience=int(settings["early_stopping_patience"]),
                 n_train=len(train), verbose=0, extra_callbacks=[cpu])
    timed = result.epoch_seconds[1:]  # the first epoch includes tracing the graph
    out = {
        "ms_per_image_epoch": 1000 * sum(timed) / (len(train) * len(timed)),
        "cpu_ms_per_image_epoch": 1000 * sum(cpu.seconds[1:]) / (len(train) * len(timed)),
        "first_epoch_s": result.epoch_seconds[0],
        "epochs": result.epochs_done,
        "best_epoch": result.best_epoch,
        "params": int(ae.model.count_params()),
    }
    if quality:
        out["val_loss"] = float(ae.model.evaluate(valid_ds, verbose=0))
        out["demo_ari"] = demo_ari(encode_images(ae.encoder, inputs), kinds)
        out["encode_per_s"] = encode_rate(ae.encoder, inputs)
    label = variant + (" (XLA)" if jit_compile else "")
    print(f"  {label:<14} {out['ms_per_image_epoch']:.3f} ms/image/epoch over {len(timed)} epochs"
          + (f", val_loss {out['val_loss']:.5f}, ARI {out['demo_ari']:.3f}" if quality else ""), flush=True)
    return out


def main() -> dict:
    from iss.config import load_config
    from iss.models.training import training_settings

    n = int(os.environ.get("BENCH_TRAINING_N", 2000))
    epochs = int(os.environ.get("BENCH_TRAINING_EPOCHS", 25))
    settings = training_settings(load_config(mode="demo"))
    ids, kinds = ensure_demo(n)
    inputs = decode_inputs(ids)
    train, valid = split_rows(len(ids))
    print(f"training bench: {len(train)} train / {len(valid)} valid demo frames of {inputs.shape[1:]}, "
          f"up to {epochs} epochs, batch {settings['batch_size']}, lr {settings['learning_rate']}", flush=True)

    started = time.perf_counter()
    results = {variant: train_variant(variant, inputs, kinds, train, valid, settings, epochs)
               for variant in ("original", "fast")}
    results["fast_xla"] = train_variant("fast", inputs, kinds, train, valid, settings, min(epochs, 5),
                                        jit_compile=True, quality=False)
    original, fast = results["original"], results["fast"]
    speedup = original["ms_per_image_epoch"] / fast["ms_per_image_epoch"]
    report = {
        **results,
        "encode_per_s": fast["encode_per_s"],
        "speedup": speedup,
        "cpu_speedup": original["cpu_ms_per_image_epoch"] / fast["cpu_ms_per_image_epoch"],
        "val_loss_ratio": fast["val_loss"] / original["val_loss"],
        "ari_gain": fast["demo_ari"] - original["demo_ari"],
        "targets": {"speedup_at_least_5": speedup >= 5.0, "val_loss_not_worse": fast["val_loss"] <= original["val_loss"],
                    "ari_not_worse": fast["demo_ari"] >= original["demo_ari"],
                    "encode_at_least_5000_per_s": fast["encode_per_s"] >= 5000},
        "n_train": int(len(train)), "n_valid": int(len(valid)), "max_epochs": epochs,
        "batch_size": int(settings["batch_size"]), "seconds": time.perf_counter() - started,
    }

    print(f"\n{'variant':<10} {'ms/img/epoch':>12} {'cpu ms':>8} {'epochs':>6} {'val MSE':>9} {'demo ARI':>8} "
          f"{'encode/s':>9} {'params':>11}")
    for name in ("original", "fast"):
        r = results[name]
        print(f"{name:<10} {r['ms_per_image_epoch']:>12.3f} {r['cpu_ms_per_image_epoch']:>8.3f} {r['epochs']:>6} "
              f"{r['val_loss']:>9.5f} {r['demo_ari']:>8.3f} {r['encode_per_s']:>9.0f} {r['params']:>11,}")
    xla = results["fast_xla"]
    print(f"{'fast+XLA':<10} {xla['ms_per_image_epoch']:>12.3f} {xla['cpu_ms_per_image_epoch']:>8.3f} "
          f"{xla['epochs']:>6}   (speed only; not used: slower than plain fast on this CPU)"
          if xla["ms_per_image_epoch"] > fast["ms_per_image_epoch"] else
          f"{'fast+XLA':<10} {xla['ms_per_image_epoch']:>12.3f} {xla['cpu_ms_per_image_epoch']:>8.3f} {xla['epochs']:>6}")
    print(f"fast vs original: {speedup:.1f}x faster per epoch ({report['cpu_speedup']:.1f}x in CPU time), "
          f"val_loss x{report['val_loss_ratio']:.2f}, ARI {report['ari_gain']:+.3f}; "
          f"encode {report['encode_per_s']:,.0f} pictures/s")
    print("targets: " + ", ".join(f"{k} {'OK' if v else 'MISSED'}" for k, v in report["targets"].items()))
    write_report("training", report)
    return report


if __name__ == "__main__":
    main()
