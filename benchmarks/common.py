"""Helpers shared by the ``benchmarks/<area>.py`` modules."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "reports" / "bench"


def write_report(area: str, result: dict) -> Path:
    """Write ``result`` as ``reports/bench/<area>.json`` (what ``benchmarks.run`` summarises).

    Parameters
    ----------
    area : str
        Benchmark area, the module name (``ingest``, ``search``, ...).
    result : dict
        JSON-serialisable figures.

    Returns
    -------
    Path
        The file written; its path is also printed.
    """
    path = BENCH_DIR / f"{area}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")
    return path
