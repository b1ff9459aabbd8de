"""UMAP on the pixels + k-means, folder to clusters: the simplest strong baseline, written as a
data scientist would write it in a notebook (what ``benchmarks.peers`` runs as a peer).

    python -m benchmarks.peer_umap FOLDER OUT.json --k K

Every picture of ``FOLDER`` (recursively: .jpg, .jpeg, .png) is read with PIL, shrunk with
``Image.thumbnail((48, 48))`` (which decodes JPEGs at reduced size through ``draft``; a 1280x720
frame becomes 48x27, the size of iss's model input, and a 28x28 digit stays 28x28), flattened
to RGB pixels in [0, 1]; then ``umap.UMAP(n_neighbors=30, min_dist=0.0, n_components=2)``, the
settings of umap-learn's "Using UMAP for clustering" guide, and scikit-learn's ``KMeans(K)``.
Writes ``OUT.json``: ``labels`` (``{picture id: cluster}``, the id being the file name without
its extension), ``k`` and the settings. It imports nothing from ``iss``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

UMAP_PARAMS = {"n_neighbors": 30, "min_dist": 0.0, "n_components": 2, "random_state": 0}
THUMBNAIL = (48, 48)
EXTENSIONS = (".jpg", ".jpeg", ".png")


def read_pixels(paths: list[Path]) -> np.ndarray:
    """``(n, h * w * 3)`` float32 pixels in [0, 1] of pictures shrunk to fit ``THUMBNAIL``."""
    from PIL import Image

    rows = []
    for path in paths:
        with Image.open(path) as im:
            im.thumbnail(THUMBNAIL)
            rows.append(np.asarray(im.convert("RGB"), dtype=np.float32).reshape(-1) / 255.0)
    return np.stack(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="folder of pictures (searched recursively)")
    parser.add_argument("out", type=Path, help="JSON file receiving the labels")
    parser.add_argument("--k", type=int, required=True, help="number of clusters for k-means")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    paths = sorted(p for p in args.folder.rglob("*") if p.suffix.lower() in EXTENSIONS)
    pixels = read_pixels(paths)
    read_s = time.perf_counter() - start
    import umap
    from sklearn.cluster import KMeans

    embedding = umap.UMAP(**UMAP_PARAMS).fit_transform(pixels)
    labels = KMeans(n_clusters=args.k, n_init=10, random_state=0).fit_predict(embedding)
    args.out.write_text(json.dumps({
        "tool": "umap_kmeans", "umap": UMAP_PARAMS, "thumbnail": THUMBNAIL, "k": int(len(np.unique(labels))),
        "labels": {p.stem: int(lab) for p, lab in zip(paths, labels)}, "features": list(pixels.shape),
        "seconds": {"read": round(read_s, 1), "total": round(time.perf_counter() - start, 1)},
    }))
    print(f"umap + k-means: {len(paths)} pictures {pixels.shape}, read {read_s:.1f} s, "
          f"total {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
