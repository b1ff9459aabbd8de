"""iss side by side with the tools people pick instead, on the same folders, in one run.

    make bench-peers                       # everything; writes reports/bench/peers.json
    python -m benchmarks.peers --small     # a tenth of each folder, to check the harness (peers-small.json)
    python -m benchmarks.peers --datasets demo_2k --tools iss,umap_kmeans --out /tmp/x.json

Folders (``benchmarks.folders``, made once and cached under ``data/bench/``), each with the
known kind of every picture:

- ``demo_2k``: the 2,000-frame demo collection (``make demo``'s), 1280x720 JPEGs, 6 kinds;
- ``demo_14k``: 14,000 demo frames at 1280x720, the size of the real ISS collection;
- ``mnist_10k``: the 10,000 MNIST digits as 28x28 PNGs, 10 classes;
- ``fashion_10k``: a stratified 10,000 of Fashion-MNIST's 70,000 as 28x28 PNGs, 10 classes.

Tools, each run folder to clusters in fresh processes, one after the other (never two at once):

- ``iss``: every step a user runs, each ``python -m iss.exec.<step>`` from a fresh project root
  (``benchmarks.iss_run``): sync, ingest, sampling, training, encode, clustering and the run's
  reports. The demo config as shipped, told the number of kinds (its n2d ``n_clusters``); for
  the 28x28 sets the model input and thumbnails at 28x28 and the dense autoencoder
  (``iss_run.collection_overrides`` says why).
- ``clustimage_defaults``: clustimage 1.7.1 (the best-known pip-installable "cluster my image
  folder" tool) as its README first runs it: ``Clustimage().fit_transform(folder)`` (PCA of
  128x128 RGB pixels keeping 95 % of the variance, t-SNE, agglomerative clustering, k by
  silhouette over 3..25).
- ``clustimage_best``: clustimage told the number of kinds, at the settings that scored best
  for these folders in a sweep (``CLUSTIMAGE_BEST`` says which and why): 28x28 grayscale and
  k-means on its t-SNE map for the digits and clothes, 64x36 RGB and its agglomerative
  clustering for the demo frames.
- ``umap_kmeans``: UMAP on the pixels + k-means with the known k (``benchmarks.peer_umap``).
- ``fastdup_kmeans``: fastdup 2.54 at its defaults (embeddings from its bundled model, offline)
  + k-means with the known k (``benchmarks.peer_fastdup``).

clustimage and fastdup live in environments of their own, ``.venv-peers`` and ``.venv-fastdup``
(``requirements-peers.txt``, ``requirements-fastdup.txt``; ``make bench-peers`` creates them),
never in ``.venv``.

For every (tool, folder): ``status`` (ok | failed | time_limit | memory_limit), ``wall_s`` end
to end, ``cpu_s``, ``peak_rss_mb`` (sum over the process tree; ``peak_pss_mb`` splits shared
pages), ``k`` found, and ACC (Hungarian matching) / NMI / ARI against the known kinds, all
scored by the same function (``iss.clustering.metrics.external_metrics``). Every run has a
time limit and a memory cap (``--time-limit``, ``--memory-limit-gb``; default 30 min and
8 GB, the machine being shared): a run that hits one is stopped, its process group killed, and
recorded with the limit it hit and the figures it had reached. ``verdicts`` compares iss with
clustimage per folder (faster than its defaults, ARI above its best) and says why when a
comparison cannot be made. The machine's load is recorded before and after every run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

from benchmarks import iss_run
from benchmarks.common import BENCH_DIR, ROOT, write_report
from benchmarks.folders import BENCH_DATA, demo_folder, npz_folder, read_labels
from benchmarks.measure import machine_state, run_measured, tail

PEERS_PYTHON = ROOT / ".venv-peers" / "bin" / "python"
FASTDUP_PYTHON = ROOT / ".venv-fastdup" / "bin" / "python"

# name -> how to make the folder, its size (and the size of --small), its number of kinds
DATASETS = {
    "demo_2k": {"kind": "demo", "n": 2000, "small": 200, "k": 6},
    "mnist_10k": {"kind": "npz", "set": "mnist_10k", "n": 10000, "small": 1000, "k": 10},
    "fashion_10k": {"kind": "npz", "set": "fashion_mnist", "n": 10000, "small": 1000, "k": 10},
    "demo_14k": {"kind": "demo", "n": 14000, "small": 1400, "k": 6},
}
TOOLS = ["iss", "umap_kmeans", "fastdup_kmeans", "clustimage_best", "clustimage_defaults"]

# clustimage's best settings per kind of folder: (Clustimage(**init), fit_transform(**fit)); k is
# always fixed to the number of known kinds (min_clust = max_clust = k), as iss is told it.
# Chosen by ARI in a sweep (clustimage 1.7.1; 1,000 pictures of each 28x28 set, 200 and 2,000 demo frames):
# - 28x28 sets: pixels at their own size in grayscale (the default upscales them to 128x128 RGB:
#   21x the features for nothing), PCA, then k-means on the t-SNE map (cluster_space "low").
#   ARI MNIST / Fashion-MNIST: k-means on the t-SNE map 0.52 / 0.52; k-means on the PCA features
#   0.34-0.40 / 0.36-0.38; agglomerative (the default) 0.37 / 0.34; HOG features + k-means 0.33 / 0.40.
# - demo frames: 64x36 RGB (the frames' 16:9 shape, 1/7 of the default's features), PCA,
#   agglomerative clustering (the default). ARI on 2,000 frames 0.79, against 0.62 for k-means on
#   the t-SNE map; on 200 frames 0.70 against 0.67 at the default 128x128 and 0.47-0.67 for k-means.
#   No t-SNE (embedding None): clustering in the PCA space does not use it, and it costs minutes.
CLUSTIMAGE_BEST = {
    "npz": ({"dim": [28, 28], "grayscale": True},
            {"cluster": "kmeans", "cluster_space": "low", "min_clust": None, "max_clust": None}),
    "demo": ({"dim": [64, 36], "embedding": None}, {"cluster": "agglomerative", "min_clust": None, "max_clust": None}),
}


def make_folder(spec: dict, small: bool) -> Path:
    n = spec["small"] if small else spec["n"]
    if spec["kind"] == "demo":
        return demo_folder(n)
    return npz_folder(spec["set"], n)


def scored(labels: dict[str, int], known: dict[str, str]) -> dict:
    """k found and ACC / NMI / ARI of ``labels`` against the known kinds (pictures in both)."""
    from iss.clustering.metrics import external_metrics

    ids = [i for i in labels if i in known]
    metrics = external_metrics([known[i] for i in ids], [labels[i] for i in ids]) if ids else {}
    return {"k": len(set(labels.values())), "n_clustered": len(labels), "n_scored": len(ids),
            **{m: round(v, 4) for m, v in metrics.items()}}


def clustimage_settings(tool: str, spec: dict) -> tuple[dict, dict]:
    if tool == "clustimage_defaults":
        return {}, {}
    init, fit = CLUSTIMAGE_BEST[spec["kind"]]
    return dict(init), {**fit, "min_clust": spec["k"], "max_clust": spec["k"]}


def run_peer(tool: str, spec: dict, folder: Path, work: Path, limits: dict) -> tuple[dict, dict | None]:
    """Run one peer (not iss) on ``folder``: (measured record, its output JSON or None)."""
    out = work / "labels.json"
    python = {"umap_kmeans": Path(sys.executable), "fastdup_kmeans": FASTDUP_PYTHON}.get(tool, PEERS_PYTHON)
    if not python.exists():
        raise SystemExit(f"{python} not found: run `make bench-peers` (it creates the peers' environments "
                         f"from requirements-peers.txt and requirements-fastdup.txt)")
    if tool in ("umap_kmeans", "fastdup_kmeans"):
        cmd = [str(python), "-m", f"benchmarks.peer_{tool.split('_')[0]}", str(folder), str(out), "--k", str(spec["k"])]
        settings = {"k": spec["k"]}
    else:
        init, fit = clustimage_settings(tool, spec)
        cmd = [str(python), "-m", "benchmarks.peer_clustimage", str(folder), str(out),
               "--init", json.dumps(init), "--fit", json.dumps(fit)]
        settings = {"init": init, "fit": fit}
    tmp = work / "tmp"  # the peers' caches and work files: fresh per run, removed after
    tmp.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    measured = run_measured(cmd, env=env, cwd=ROOT, log_path=work / "run.log", **limits)
    shutil.rmtree(tmp, ignore_errors=True)
    record = {**measured.as_dict(), "settings": settings}
    output = json.loads(out.read_text()) if measured.ok and out.is_file() else None
    return record, output


def run_iss(spec: dict, folder: Path, work: Path, limits: dict, keep: bool) -> tuple[dict, dict | None]:
    """iss from a fresh root on ``folder``: (record with the per-step figures, its labels or None)."""
    root = work / "root"
    if root.exists():
        shutil.rmtree(root)
    config = iss_run.write_config(root, iss_run.collection_overrides(folder, spec["kind"], spec["k"]))
    steps = iss_run.run_steps(root, config, iss_run.PEER_STEPS, work / "logs", limits["time_limit_s"],
                              limits["memory_limit_mb"])
    record = {**iss_run.total(steps), "steps": {name: m.as_dict() for name, m in steps.items()},
              "limits": {"time_s": limits["time_limit_s"], "memory_mb": limits["memory_limit_mb"]},
              "settings": {"config_overrides": iss_run.collection_overrides(Path("<folder>"), spec["kind"], spec["k"])}}
    ok = record["status"] == "ok" and len(steps) == len(iss_run.PEER_STEPS)
    labels = iss_run.latest_run(root, config)["labels"] if ok else None
    if not ok:
        record["log_tail"] = tail(list(steps.values())[-1].log)
    if not keep:
        shutil.rmtree(root, ignore_errors=True)
    return record, ({"labels": labels} if labels else None)


def verdicts(results: dict) -> dict:
    """Per folder: is iss faster than clustimage's defaults, and is its ARI above clustimage's best?

    Each is ``true``/``false``, or ``null`` with the reason when a run needed for it did not finish.
    """
    out = {}
    for name, tools in results.items():
        iss, defaults, best = tools.get("iss"), tools.get("clustimage_defaults"), tools.get("clustimage_best")
        entry: dict = {}
        if iss and defaults:
            if iss["status"] != "ok":
                entry["faster_than_clustimage_defaults"] = None
                entry["faster_note"] = f"iss did not finish ({iss['status']})"
            elif defaults["status"] == "ok" or defaults["status"] == "time_limit":
                entry["faster_than_clustimage_defaults"] = iss["wall_s"] < defaults["wall_s"]
                entry["speed_ratio"] = round(defaults["wall_s"] / iss["wall_s"], 2)
                if defaults["status"] == "time_limit":
                    entry["faster_note"] = f"clustimage was stopped at the time limit, {defaults['wall_s']:.0f} s"
            else:
                entry["faster_than_clustimage_defaults"] = None
                entry["faster_note"] = (f"clustimage's defaults did not finish: {defaults['status']} after "
                                        f"{defaults['wall_s']:.0f} s at {defaults['peak_rss_mb']:.0f} MB")
        if iss and best:
            if iss.get("ari") is not None and best.get("ari") is not None:
                entry["ari_above_clustimage_best"] = iss["ari"] > best["ari"]
                entry["ari_margin"] = round(iss["ari"] - best["ari"], 4)
            else:
                entry["ari_above_clustimage_best"] = None
                who = "iss" if iss.get("ari") is None else "clustimage_best"
                entry["ari_note"] = f"{who} did not finish ({tools[who]['status']})"
        out[name] = entry
    return out


def table(results: dict) -> str:
    """The results as a Markdown table (what the README shows)."""
    lines = ["| folder | tool | status | wall s | peak RSS MB | k | ACC | NMI | ARI |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, tools in results.items():
        for tool, r in tools.items():
            cells = [f"{r[m]:.3f}" if r.get(m) is not None else "—" for m in ("acc", "nmi", "ari")]
            lines.append(f"| {name} | {tool} | {r['status']} | {r['wall_s']:.0f} | {r['peak_rss_mb']:.0f} | "
                         f"{r.get('k', '—')} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(DATASETS), help=f"comma-separated, from {list(DATASETS)}")
    parser.add_argument("--tools", default=",".join(TOOLS), help=f"comma-separated, from {TOOLS}")
    parser.add_argument("--small", action="store_true", help="a tenth of each folder (checks the harness)")
    parser.add_argument("--time-limit", type=float, default=1800.0, help="seconds per (tool, folder)")
    parser.add_argument("--memory-limit-gb", type=float, default=8.0, help="RSS cap per (tool, folder)")
    parser.add_argument("--keep", action="store_true", help="keep iss's project roots (data/bench/runs/)")
    parser.add_argument("--out", type=Path, help="JSON file (default reports/bench/peers.json, "
                                                 "peers-small.json with --small)")
    args = parser.parse_args(argv)
    names, tools = args.datasets.split(","), args.tools.split(",")
    unknown = sorted(set(names) - set(DATASETS)) + sorted(set(tools) - set(TOOLS))
    if unknown:
        parser.error(f"unknown dataset or tool {unknown}; expected some of {list(DATASETS)} and {TOOLS}")
    limits = {"time_limit_s": args.time_limit, "memory_limit_mb": args.memory_limit_gb * 1024}
    started = time.perf_counter()
    report: dict = {"command": "python -m benchmarks.peers " + " ".join(argv if argv is not None else sys.argv[1:]),
                    "machine_at_start": machine_state(), "limits": limits, "datasets": {}, "results": {}}
    if "iss" in tools:
        report["numba_warm_up"] = iss_run.warm_numba_cache(BENCH_DATA / "runs" / "warm-up")
    # every folder first: a missing data set stops the run before an hour of measurements, not after
    folders = {name: make_folder(DATASETS[name], args.small) for name in names}
    for name in names:
        spec, folder = DATASETS[name], folders[name]
        known = read_labels(folder)
        report["datasets"][name] = {"folder": str(folder), "n": len(known), "k_true": spec["k"]}
        report["results"][name] = {}
        print(f"\n{name}: {len(known)} pictures in {folder}", flush=True)
        for tool in tools:
            work = BENCH_DATA / "runs" / ("peers-small" if args.small else "peers") / name / tool
            work.mkdir(parents=True, exist_ok=True)
            print(f"  {tool} ...", flush=True)
            load_before = machine_state()["load_average_1_5_15"]
            if tool == "iss":
                record, output = run_iss(spec, folder, work, limits, args.keep)
            else:
                record, output = run_peer(tool, spec, folder, work, limits)
            if output:
                record.update(scored(output["labels"], known))
            elif "log_tail" not in record:
                record["log_tail"] = tail(record.get("log"))
            record["load_average_before_after"] = [load_before, machine_state()["load_average_1_5_15"]]
            report["results"][name][tool] = record
            print(f"  {tool}: {record['status']}, {record['wall_s']:.0f} s, {record['peak_rss_mb']:.0f} MB, "
                  f"k={record.get('k')}, ARI={record.get('ari')}", flush=True)
    report["verdicts"] = verdicts(report["results"])
    report["machine_at_end"] = machine_state()
    report["total_s"] = round(time.perf_counter() - started, 1)
    print("\n" + table(report["results"]))
    print("\nverdicts: " + json.dumps(report["verdicts"], indent=1))
    out = args.out or BENCH_DIR / ("peers-small.json" if args.small else "peers.json")
    if args.out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {out}")
    else:
        write_report(out.stem, report)
    return report


if __name__ == "__main__":
    main()
