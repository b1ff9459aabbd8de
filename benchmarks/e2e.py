"""The whole pipeline at the size of the real ISS collection: 14,000 frames at 1280x720.

    make bench-e2e                         # writes reports/bench/e2e.json
    python -m benchmarks.e2e --n 200       # a small check of the harness (e2e-200.json)

The frames are generated once (``benchmarks.folders.demo_folder``, cached under
``data/bench/``; the same folder ``bench-peers`` uses). Then every step runs as a user runs it,
``python -m iss.exec.<step>`` in a fresh process, from a fresh project root with the demo
config pointed at that folder (``benchmarks.iss_run``): sync, ingest, sampling, training,
encode, clustering, reports, facets, posters.

For every step: wall time, CPU time, peak RSS and PSS of its process tree, its status
(``benchmarks.measure``). Every step is sampled by py-spy (``--nonblocking``, 20 Hz: the
process is never paused; py-spy's own few MB are in the memory figures); the slowest step's
profile is summarised in ``slowest.profile``: the share of samples per library (the innermost
frame in an installed package or in ``iss``), the innermost functions and the ``iss``
functions that hold the most samples (``benchmarks.profiles``). The raw profiles stay in
``data/bench/runs/e2e/profiles/`` (``flamegraph.pl`` or speedscope read them).

Targets (issue #19): the whole run under 15 minutes and under 4 GB peak on this 2-core
machine; ``targets`` says whether they were met. The machine's load is recorded at the start
and the end (other work shares the machine, so wall times are pessimistic).
"""

from __future__ import annotations

import argparse
import shutil
import sys

from benchmarks import iss_run
from benchmarks.common import write_report
from benchmarks.folders import BENCH_DATA, demo_folder
from benchmarks.measure import machine_state, tail
from benchmarks.profiles import summarise

N_FRAMES = 14_000
TARGET_S, TARGET_MB = 15 * 60, 4096


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=N_FRAMES, help="frames (default 14,000; fewer to check the harness)")
    parser.add_argument("--time-limit", type=float, default=3600.0, help="seconds for all the steps together")
    parser.add_argument("--memory-limit-gb", type=float, default=8.0, help="RSS cap per step")
    parser.add_argument("--keep", action="store_true", help="keep the project root (data/bench/runs/e2e/root)")
    args = parser.parse_args(argv)

    at_start = machine_state()
    folder = demo_folder(args.n)
    work = BENCH_DATA / "runs" / ("e2e" if args.n == N_FRAMES else f"e2e-{args.n}")
    root = work / "root"
    shutil.rmtree(work, ignore_errors=True)
    warm_up = iss_run.warm_numba_cache(work / "warm-up")
    config = iss_run.write_config(root, iss_run.collection_overrides(folder, "demo", 6))
    print(f"e2e: {args.n} frames from {folder}, project root {root}", flush=True)
    steps = iss_run.run_steps(root, config, iss_run.E2E_STEPS, work / "logs", args.time_limit,
                              args.memory_limit_gb * 1024, profile=work / "profiles")
    whole = iss_run.total(steps)
    complete = whole["status"] == "ok" and len(steps) == len(iss_run.E2E_STEPS)
    slowest = max(steps, key=lambda s: steps[s].wall_s)
    profile = work / "profiles" / f"{slowest}.txt"
    result = {
        "command": "python -m benchmarks.e2e " + " ".join(argv if argv is not None else sys.argv[1:]),
        "n_frames": args.n, "frame_size": [1280, 720], "folder": str(folder),
        "total": whole, "complete": complete, "numba_warm_up": warm_up,
        "steps": {name: m.as_dict() for name, m in steps.items()},
        "slowest": {"step": slowest, "wall_s": round(steps[slowest].wall_s, 1),
                    "share_of_total": round(steps[slowest].wall_s / max(whole["wall_s"], 1e-9), 3),
                    "profile": summarise(profile) if profile.is_file() else "py-spy not installed in this venv",
                    "profile_file": str(profile)},
        "targets": {"wall_s": TARGET_S, "peak_rss_mb": TARGET_MB,
                    "met": complete and whole["wall_s"] < TARGET_S and whole["peak_rss_mb"] < TARGET_MB},
        "machine_at_start": at_start, "machine_at_end": machine_state(),
    }
    if complete:
        result["clustering_metrics"] = iss_run.latest_run(root, config)["metrics"]
    else:
        result["log_tail"] = tail(list(steps.values())[-1].log)
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    print(f"\n{'step':<12}{'status':>10}{'wall s':>9}{'cpu s':>9}{'peak RSS MB':>13}{'peak PSS MB':>13}")
    for name, m in steps.items():
        print(f"{name:<12}{m.status:>10}{m.wall_s:>9.1f}{m.cpu_s:>9.1f}{m.peak_rss_mb:>13.0f}{m.peak_pss_mb:>13.0f}")
    print(f"{'total':<12}{whole['status']:>10}{whole['wall_s']:>9.1f}{whole['cpu_s']:>9.1f}"
          f"{whole['peak_rss_mb']:>13.0f}{whole['peak_pss_mb']:>13.0f}")
    print(f"slowest step: {slowest}; profile by library: {result['slowest']['profile']}")
    print(f"targets (< {TARGET_S} s, < {TARGET_MB} MB): {'met' if result['targets']['met'] else 'NOT met'}")
    write_report("e2e" if args.n == N_FRAMES else f"e2e-{args.n}", result)
    return result


if __name__ == "__main__":
    main()
