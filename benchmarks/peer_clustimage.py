"""One clustimage run, folder to clusters: what ``benchmarks.peers`` starts in the peers'
environment (``.venv-peers``, ``requirements-peers.txt``), never in the project's.

    .venv-peers/bin/python -m benchmarks.peer_clustimage FOLDER OUT.json [--init JSON] [--fit JSON]

``--init`` holds ``Clustimage(...)`` keyword arguments and ``--fit`` ``fit_transform(...)``
keyword arguments (both default ``{}``: clustimage's defaults, as a user first runs it).
Writes ``OUT.json``: ``labels`` (``{picture id: cluster}``, the id being the file name without
its extension), ``k`` (clusters found) and the settings. It imports nothing from ``iss``; the
caller scores the labels and measures time and memory from outside.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="folder of pictures (searched recursively)")
    parser.add_argument("out", type=Path, help="JSON file receiving the labels")
    parser.add_argument("--init", default="{}", help="Clustimage(**init) keyword arguments, as JSON")
    parser.add_argument("--fit", default="{}", help="fit_transform(folder, **fit) keyword arguments, as JSON")
    args = parser.parse_args(argv)
    init, fit = json.loads(args.init), json.loads(args.fit)
    if "dim" in init:
        init["dim"] = tuple(init["dim"])

    start = time.perf_counter()
    from clustimage import Clustimage

    model = Clustimage(**init)
    results = model.fit_transform(str(args.folder), **fit)
    if results is None:
        print("clustimage returned no result (see its log above)", file=sys.stderr)
        return 1
    labels = {Path(p).stem: int(lab) for p, lab in zip(results["pathnames"], results["labels"])}
    args.out.write_text(json.dumps({
        "tool": "clustimage", "init": init, "fit": fit, "k": len(set(labels.values())), "labels": labels,
        "features": list(results["feat"].shape), "seconds": round(time.perf_counter() - start, 1),
    }, default=list))
    print(f"clustimage: {len(labels)} pictures, k={len(set(labels.values()))}, features {results['feat'].shape}, "
          f"{time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
