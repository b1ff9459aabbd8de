"""Dendrogram of a hierarchical clustering (the ``classical`` clustering's merge tree).

``classical`` first groups the latents into many small k-means clusters, then merges their centres
with agglomerative (Ward) clustering; the fitted estimator keeps the merge tree as ``linkage_``, a
SciPy linkage matrix. The dendrogram shows that tree, cut where it yields the run's clusters.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from scipy.cluster import hierarchy

from iss.visualization.style import _PALETTE, apply_matplotlib_style, save_figure

log = logging.getLogger(__name__)


def cut_height(linkage: np.ndarray, n_clusters: int) -> float:
    """A height between the merges that leave ``n_clusters`` groups (for the colour threshold)."""
    heights = np.sort(np.asarray(linkage)[:, 2])
    n_leaves = len(heights) + 1
    if not 1 < n_clusters <= n_leaves:
        return float(heights[-1]) + 1.0 if n_clusters <= 1 else 0.0
    # merges numbered from the top: the (n_clusters-1) highest ones split the tree into n_clusters
    upper, lower = heights[-(n_clusters - 1)], heights[-n_clusters] if n_clusters < n_leaves else 0.0
    return float((upper + lower) / 2)


def plot_dendrogram(linkage: np.ndarray, out_png: str | Path, n_clusters: int | None = None,
                    leaf_labels: Sequence[str] | None = None, title: str = "Dendrogram",
                    max_leaves: int = 80) -> Path:
    """Write a dendrogram PNG of a SciPy linkage matrix.

    Parameters
    ----------
    linkage : float array, shape (m - 1, 4)
        As returned by :func:`scipy.cluster.hierarchy.linkage` for m leaves.
    out_png : str or Path
    n_clusters : int, optional
        Colour the branches of this many groups and draw the cut line.
    leaf_labels : sequence of str, optional
        One per leaf (e.g. ``"k12 · 310"`` for a k-means centre and its size).
    title : str
    max_leaves : int, default=80
        Larger trees are truncated to their last ``max_leaves`` merges (leaf counts shown).

    Returns
    -------
    Path
    """
    linkage = np.asarray(linkage, dtype=float)
    if linkage.ndim != 2 or linkage.shape[1] != 4 or len(linkage) == 0:
        raise ValueError(f"linkage must be a SciPy linkage matrix of shape (m - 1, 4), got {linkage.shape}")
    hierarchy.is_valid_linkage(linkage, throw=True, name="linkage")
    n_leaves = len(linkage) + 1
    if leaf_labels is not None and len(leaf_labels) != n_leaves:
        raise ValueError(f"leaf_labels has {len(leaf_labels)} labels for {n_leaves} leaves")
    apply_matplotlib_style()
    fig, ax = plt.subplots(figsize=(max(9.0, min(0.22 * min(n_leaves, max_leaves) + 3, 20)), 5.5))
    threshold = cut_height(linkage, n_clusters) if n_clusters else None
    hierarchy.set_link_color_palette(list(_PALETTE))
    try:
        kwargs = dict(ax=ax, color_threshold=threshold if threshold is not None else 0,
                      above_threshold_color="#9aa5b1", leaf_font_size=8)
        if n_leaves > max_leaves:
            kwargs.update(truncate_mode="lastp", p=max_leaves, show_contracted=True)
        elif leaf_labels is not None:
            kwargs.update(labels=list(leaf_labels), leaf_rotation=90)
        hierarchy.dendrogram(linkage, **kwargs)
    finally:
        hierarchy.set_link_color_palette(None)
    if threshold is not None:
        ax.axhline(threshold, color="#e15759", linestyle="--", linewidth=1.2)
        ax.text(ax.get_xlim()[1], threshold, f"  cut: {n_clusters} clusters", va="bottom", ha="right",
                color="#e15759", fontsize=9)
    ax.set_ylabel("merge distance (Ward)")
    ax.set_title(title, loc="left")
    ax.grid(axis="x", visible=False)
    return save_figure(fig, out_png)


def load_run_linkage(run: dict) -> np.ndarray | None:
    """The linkage matrix of a run's fitted clustering, or None when it has none.

    Loads the estimator saved at ``run["path"]`` (:meth:`iss.clustering.base.ClusteringBase.load`)
    and returns its ``linkage_`` (only hierarchical clusterings, like ``classical``, have one).
    """
    path = run.get("path")
    if not path or not Path(path).is_dir():
        return None
    from iss.clustering.base import ClusteringBase

    try:
        fitted = ClusteringBase.load(path)
    except (FileNotFoundError, ValueError, TypeError) as exc:
        log.warning("run %s: cannot load the fitted clustering at %s (%s); no dendrogram", run.get("run_id"),
                    path, exc)
        return None
    linkage = getattr(fitted, "linkage_", None)
    return None if linkage is None else np.asarray(linkage, dtype=float)
