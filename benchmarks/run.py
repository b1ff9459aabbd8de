"""Run every benchmark, each in a fresh process, then print one summary of reports/bench/*.json.

    python -m benchmarks.run                 # all areas
    python -m benchmarks.run ingest search   # some areas (or BENCH=ingest,search make bench)

Each area is a module ``benchmarks/<area>.py`` whose ``main()`` prints its figures and
writes ``reports/bench/<area>.json``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from benchmarks.common import BENCH_DIR, ROOT

# fidelity: 617 s on a quiet machine (2026-12-07), under the 15 minutes that would give it a target of its own only
AREAS = ["ingest", "training", "cold_start", "scatter", "search", "ann", "quality", "fidelity"]


def _flatten(prefix: str, value, out: dict) -> None:
    if isinstance(value, dict):
        for key, sub in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), sub, out)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        out[prefix] = value


def print_summary(areas: list[str]) -> None:
    """One line per figure of every area's JSON."""
    print("\n=== benchmark summary (reports/bench) ===")
    for area in areas:
        path = BENCH_DIR / f"{area}.json"
        if not path.exists():
            print(f"{area:<12} (no results: {path} missing)")
            continue
        figures: dict = {}
        _flatten("", json.loads(path.read_text()), figures)
        for key, value in figures.items():
            print(f"{area:<12} {key:<40} {value:.4g}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    areas = argv or [a for a in os.environ.get("BENCH", "").split(",") if a] or AREAS
    unknown = sorted(set(areas) - set(AREAS))
    if unknown:
        print(f"unknown benchmark area(s) {unknown}; expected some of {AREAS}", file=sys.stderr)
        return 2
    failed = []
    for area in areas:
        print(f"\n=== {area} ===", flush=True)
        start = time.perf_counter()
        code = subprocess.call([sys.executable, "-m", f"benchmarks.{area}"], cwd=ROOT)
        print(f"=== {area}: exit {code} after {time.perf_counter() - start:.0f} s ===", flush=True)
        if code:
            failed.append(area)
    print_summary(areas)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
