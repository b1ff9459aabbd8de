"""Static 2-D projections of the latents (PCA, t-SNE, UMAP) coloured by cluster, as PNGs.

They show whether the autoencoder's latent space already separates the clusters linearly (PCA),
locally (t-SNE) or along a manifold (UMAP). t-SNE and UMAP cost O(n log n) with large constants,
so at most ``sample`` pictures are projected (a stratified, seeded sample: every cluster keeps its
share). High-dimensional latents are first reduced to 50 PCA components, as t-SNE's authors advise.
A run whose own 2-D coordinates already are one of these projections of the same latents (n2d's
UMAP, classical's t-SNE: :func:`run_projection`) lends them to that figure instead of fitting it again.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.decomposition import PCA

from iss.visualization.style import apply_matplotlib_style, cluster_color, cluster_name, save_figure

METHODS = ("pca", "tsne", "umap")
METHOD_TITLES = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}
# t-SNE gradient steps (scikit-learn's default is 1,000). They are the whole cost, and after the 250
# steps of early exaggeration a few thousand points barely move: on the 2,000-frame demo, 500 steps
# gave the same clusters and neighbourhoods (KL divergence 1.29 against 1.23) in half the time.
TSNE_MAX_ITER = 500


def stratified_sample(labels: np.ndarray, size: int, random_state: int = 0) -> np.ndarray:
    """Sorted row indices of a seeded sample of ``size`` rows keeping each label's share (all if fewer)."""
    labels = np.asarray(labels)
    n = len(labels)
    if size <= 0 or n <= size:
        return np.arange(n)
    rng = np.random.default_rng(random_state)
    chosen = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        take = max(1, int(round(size * members.size / n)))
        chosen.append(rng.choice(members, size=min(take, members.size), replace=False))
    return np.sort(np.concatenate(chosen))


def project(latents: np.ndarray, method: str, random_state: int = 0) -> np.ndarray:
    """2-D coordinates of the latents by ``method`` (``pca``, ``tsne`` or ``umap``), shape (n, 2).

    Parameters
    ----------
    latents : float array, shape (n, d)
    method : {"pca", "tsne", "umap"}
    random_state : int, default=0
    """
    latents = np.asarray(latents, dtype=np.float32).reshape(len(latents), -1)
    n, d = latents.shape
    if n < 3:
        raise ValueError(f"a projection needs at least 3 pictures, got {n}")
    if method == "pca":
        return PCA(n_components=2, random_state=random_state).fit_transform(latents)
    reduced = PCA(n_components=min(50, d, n), random_state=random_state).fit_transform(latents) if d > 50 else latents
    if method == "tsne":
        from sklearn.manifold import TSNE
        from threadpoolctl import threadpool_limits

        perplexity = float(min(30.0, (n - 1) / 3))
        # one OpenMP thread: on a busy 2-core machine, threads spin-waiting at barriers made
        # Barnes-Hut t-SNE 10x slower than single-threaded (13 s versus 1.4 s on 300 pictures)
        with threadpool_limits(limits=1):
            return TSNE(n_components=2, perplexity=perplexity, init="pca", max_iter=TSNE_MAX_ITER,
                        random_state=random_state).fit_transform(reduced)
    if method == "umap":
        try:  # the clustering's fast import: numba code cached on disk, no TensorFlow
            from iss.clustering.umap_compat import import_umap

            umap = import_umap()
        except ImportError as exc:  # an optional extra, as in umap-learn itself
            raise ImportError("UMAP projections need umap-learn: pip install umap-learn") from exc
        return umap.UMAP(n_components=2, n_neighbors=min(15, n - 1), min_dist=0.1, n_jobs=1,  # seeded: serial
                         random_state=random_state).fit_transform(reduced)
    raise ValueError(f"unknown projection method {method!r}; expected one of {', '.join(METHODS)}")


def run_projection(clustering_type: str, estimator: dict) -> str | None:
    """Which projection of its latents a clustering run's own 2-D coordinates are, if any.

    Parameters
    ----------
    clustering_type : str
        The run's ``clustering_type``.
    estimator : dict
        Its estimator parameters (``clustering_runs.params["estimator"]``).

    Returns
    -------
    {"umap", "tsne"} or None
        ``umap`` for ``n2d`` and ``hdbscan`` when their plot coordinates are a 2-D UMAP
        (``n_components`` 2, or ``plot="umap"``: a second 2-D UMAP on the same graph); ``tsne`` for
        ``classical`` and ``advanced`` with ``plot="tsne"`` (t-SNE of their PCA-reduced latents);
        None otherwise (the first two of more UMAP components, or principal components).
    """
    if clustering_type in ("n2d", "hdbscan"):
        return "umap" if estimator.get("n_components") == 2 or estimator.get("plot") == "umap" else None
    if clustering_type in ("classical", "advanced"):
        return "tsne" if estimator.get("plot") == "tsne" else None
    return None


def plot_projection(xy: np.ndarray, labels: np.ndarray, out_png: str | Path, title: str,
                    x_label: str = "component 1", y_label: str = "component 2") -> Path:
    """Scatter PNG of 2-D points coloured by cluster, with a legend.

    Parameters
    ----------
    xy : float array, shape (n, 2)
    labels : int array, shape (n,)
    out_png : str or Path
    title : str
    x_label, y_label : str
    """
    xy, labels = np.asarray(xy, dtype=float), np.asarray(labels, dtype=int)
    if xy.shape != (len(labels), 2):
        raise ValueError(f"xy must have shape ({len(labels)}, 2) to match labels, got {xy.shape}")
    apply_matplotlib_style()
    fig, ax = plt.subplots(figsize=(8.5, 6.5))
    size = float(np.clip(40 - 9 * np.log10(max(len(labels), 1)), 3, 30))
    for label in np.unique(labels):
        members = labels == label
        ax.scatter(xy[members, 0], xy[members, 1], s=size, color=cluster_color(label), alpha=0.75,
                   linewidths=0, label=f"{cluster_name(label)} ({members.sum():,})")
    ax.set_title(title, loc="left")
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), markerscale=max(1.0, 6 / np.sqrt(size)),
              title="cluster", fontsize=9)
    return save_figure(fig, out_png)


def write_projection_figures(latents: np.ndarray, labels: np.ndarray, out_dir: str | Path,
                             methods: Sequence[str] = METHODS, sample: int = 2000,
                             random_state: int = 0, precomputed: dict[str, np.ndarray] | None = None) -> dict[str, Path]:
    """``out_dir/projection_<method>.png`` for each method.

    Parameters
    ----------
    latents : float array, shape (n, d) (or (n, h, w, c): flattened)
    labels : int array, shape (n,)
        Cluster of each row of ``latents``.
    out_dir : str or Path
    methods : sequence of {"pca", "tsne", "umap"}
    sample : int, default=2000
        At most this many pictures (stratified by cluster; 0 = all).
    random_state : int, default=0
    precomputed : dict, optional
        ``{method: xy}``, float arrays of shape (n, 2): coordinates of every row that already are
        that projection (the run's own embedding, see :func:`run_projection`); plotted as they are.

    Returns
    -------
    dict
        ``{method: path}``.
    """
    latents = np.asarray(latents)
    labels = np.asarray(labels, dtype=int)
    if len(latents) != len(labels):
        raise ValueError(f"{len(latents)} latent rows but {len(labels)} labels")
    rows = stratified_sample(labels, sample, random_state)
    shown = "" if len(rows) == len(labels) else f", sample of {len(rows):,}"
    paths = {}
    precomputed = precomputed or {}
    for method in methods:
        if method in precomputed:
            xy, origin = np.asarray(precomputed[method])[rows], ", the run's embedding"
        else:
            xy, origin = project(latents[rows], method, random_state=random_state), ""
        axes = ("PC 1", "PC 2") if method == "pca" else (f"{METHOD_TITLES[method]} 1", f"{METHOD_TITLES[method]} 2")
        paths[method] = plot_projection(
            xy, labels[rows], Path(out_dir) / f"projection_{method}.png",
            title=f"{METHOD_TITLES[method]} of the latents ({len(labels):,} pictures{shown}{origin})",
            x_label=axes[0], y_label=axes[1])
    return paths
