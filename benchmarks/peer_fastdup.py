"""fastdup's embeddings + k-means, folder to clusters: what ``benchmarks.peers`` starts in
fastdup's own environment (``.venv-fastdup``, ``requirements-fastdup.txt``: fastdup pins
numpy < 2 and scikit-learn 1.5, which clustimage's environment cannot share).

    .venv-fastdup/bin/python -m benchmarks.peer_fastdup FOLDER OUT.json --k K

fastdup (Visual Layer's dataset-curation tool) runs at its defaults on the folder
(``fastdup.create(input_dir, work_dir).run()``: its bundled ONNX model embeds every picture in
576 dimensions, offline, and builds its similarity graph); its own groups are connected
components of near-duplicates, not kinds, so the kinds come from scikit-learn's ``KMeans(K)``
on its embeddings. Writes ``OUT.json``: ``labels`` (``{picture id: cluster}``, the id being the
file name without its extension), ``k``. It imports nothing from ``iss``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="folder of pictures (searched recursively)")
    parser.add_argument("out", type=Path, help="JSON file receiving the labels")
    parser.add_argument("--k", type=int, required=True, help="number of clusters for k-means")
    args = parser.parse_args(argv)
    os.environ.setdefault("SENTRY_OPT_OUT", "1")  # no crash reports sent (there is no network here anyway)

    start = time.perf_counter()
    import fastdup
    from sklearn.cluster import KMeans

    work = tempfile.mkdtemp(prefix="fastdup-")
    fd = fastdup.create(input_dir=str(args.folder), work_dir=work)
    fd.run(overwrite=True)
    names, features = fd.embeddings()
    labels = KMeans(n_clusters=args.k, n_init=10, random_state=0).fit_predict(features)
    args.out.write_text(json.dumps({
        "tool": "fastdup_kmeans", "fastdup": fastdup.__version__, "k": int(len(set(labels.tolist()))),
        "labels": {Path(n).stem: int(lab) for n, lab in zip(names, labels)}, "features": list(features.shape),
        "seconds": round(time.perf_counter() - start, 1),
    }))
    print(f"fastdup + k-means: {len(names)} pictures, features {features.shape}, "
          f"{time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
