"""Silhouette chart of a clustering run: how well each picture sits in its cluster.

Left panel: the classic silhouette profile (each picture's silhouette, sorted within its cluster,
drawn as a filled band), which shows badly placed pictures (negative values) at a glance. Right
panel: the mean silhouette per cluster as bars, with the number of pictures written on each bar.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from iss.visualization.style import apply_matplotlib_style, cluster_color, cluster_name, save_figure


def silhouette_table(labels: np.ndarray, silhouettes: np.ndarray) -> list[dict]:
    """Per cluster (by label): ``label``, ``count``, ``mean`` silhouette (NaN when none is known).

    Parameters
    ----------
    labels : int array, shape (n,)
    silhouettes : float array, shape (n,); NaN where unknown
    """
    labels = np.asarray(labels, dtype=int)
    silhouettes = np.asarray(silhouettes, dtype=float)
    rows = []
    for label in np.unique(labels):
        values = silhouettes[labels == label]
        known = values[~np.isnan(values)]
        rows.append(dict(label=int(label), count=int(values.size),
                         mean=float(known.mean()) if known.size else float("nan")))
    return rows


def plot_silhouettes(labels: np.ndarray, silhouettes: np.ndarray, out_png: str | Path,
                     title: str = "Silhouette per cluster") -> Path:
    """Write the silhouette profile and per-cluster mean bar chart as a PNG.

    Parameters
    ----------
    labels : int array, shape (n,)
        Cluster of each picture (``-1`` = noise).
    silhouettes : float array, shape (n,)
        Silhouette of each picture, in [-1, 1]; NaN where unknown.
    out_png : str or Path
    title : str

    Returns
    -------
    Path
    """
    labels = np.asarray(labels, dtype=int)
    silhouettes = np.asarray(silhouettes, dtype=float)
    if labels.shape != silhouettes.shape or labels.ndim != 1:
        raise ValueError(f"labels and silhouettes must be 1-D of the same length, got {labels.shape} "
                         f"and {silhouettes.shape}")
    table = silhouette_table(labels, silhouettes)
    apply_matplotlib_style()
    k = len(table)
    fig, (ax_profile, ax_bars) = plt.subplots(1, 2, figsize=(12, max(4.0, 0.42 * k + 2.0)),
                                              gridspec_kw={"width_ratios": [1.25, 1]})

    # profile: clusters stacked top-down like the bars, a gap between them, one line per picture,
    # best first within a cluster
    y_low, gap = 0, max(3, int(0.02 * len(labels)))
    for row in table:
        values = np.sort(silhouettes[(labels == row["label"]) & ~np.isnan(silhouettes)])[::-1]
        y = np.arange(y_low, y_low + values.size)
        ax_profile.fill_betweenx(y, 0, values, color=cluster_color(row["label"]), alpha=0.85, linewidth=0)
        ax_profile.text(-0.01, y_low + values.size / 2, cluster_name(row["label"]),
                        ha="right", va="center", fontsize=9, transform=ax_profile.get_yaxis_transform())
        y_low += values.size + gap
    overall = float(np.nanmean(silhouettes)) if np.any(~np.isnan(silhouettes)) else float("nan")
    if overall == overall:
        ax_profile.axvline(overall, color="#e15759", linestyle="--", linewidth=1.2)
        ax_profile.text(overall, 1.0, f" mean {overall:.2f}", color="#e15759", fontsize=9, ha="left", va="bottom",
                        transform=ax_profile.get_xaxis_transform())
    ax_profile.set_xlim(min(-0.1, np.nanmin(silhouettes) - 0.05) if overall == overall else -0.1, 1)
    ax_profile.set_yticks([])
    ax_profile.set_ylim(y_low, -gap)  # top-down
    ax_profile.set_xlabel("silhouette of each picture")
    ax_profile.set_title("Silhouette profile (pictures sorted within clusters)", pad=16)
    ax_profile.grid(axis="y", visible=False)

    # bars: mean silhouette per cluster with counts
    names = [cluster_name(r["label"]) for r in table]
    means = np.array([r["mean"] for r in table])
    positions = np.arange(k)
    bars = ax_bars.barh(positions, np.nan_to_num(means), color=[cluster_color(r["label"]) for r in table],
                        height=0.7)
    for bar, row in zip(bars, table):
        text = f"{row['mean']:.2f}  ·  n={row['count']:,}" if row["mean"] == row["mean"] else f"n={row['count']:,}"
        x = bar.get_width()
        ax_bars.text(x + 0.01 if x >= 0 else 0.01, bar.get_y() + bar.get_height() / 2, text,
                     va="center", fontsize=9, color="#1f2933")
    ax_bars.set_yticks(positions, names)
    ax_bars.invert_yaxis()
    ax_bars.axvline(0, color="#9aa5b1", linewidth=0.8)
    lowest = np.nanmin(means) if np.any(~np.isnan(means)) else 0
    ax_bars.set_xlim(min(0, lowest - 0.05), 1.15)
    ax_bars.set_xlabel("mean silhouette")
    ax_bars.set_title("Mean silhouette and size per cluster", pad=16)
    ax_bars.grid(axis="y", visible=False)

    fig.suptitle(title, fontsize=14, fontweight="bold", x=0.01, ha="left")
    return save_figure(fig, out_png)
