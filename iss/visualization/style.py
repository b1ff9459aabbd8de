"""One look for every report: cluster colours, fonts and the matplotlib setup.

The same cluster gets the same colour in the bokeh scatter, the static PNGs, the mosaics and the
facets dive, so a reader can move between pages without a legend lookup.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # reports are written by batch steps and tests: never open a window

# Tableau 10 first (distinct, colour-blind friendlier), then its light variants for runs with more clusters.
_PALETTE = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
    "#2f4b7c", "#a05195", "#d45087", "#f95d6a", "#ff7c43", "#ffa600", "#003f5c", "#665191", "#7fc97f", "#beaed4",
]
NOISE_COLOR = "#9e9e9e"  # label -1 (hdbscan noise)
NOISE_LABEL = -1

def cluster_color(label: int) -> str:
    """Hex colour of a cluster label (grey for noise, ``-1``)."""
    label = int(label)
    if label == NOISE_LABEL:
        return NOISE_COLOR
    return _PALETTE[label % len(_PALETTE)]


def cluster_name(label: int, names: dict | None = None) -> str:
    """Name of a cluster: its recorded name (``names[label]``, see :mod:`iss.clustering.names`), else
    ``"cluster 3"`` (``"noise"`` for -1)."""
    label = int(label)
    if names and names.get(label):
        return str(names[label])
    return "noise" if label == NOISE_LABEL else f"cluster {label}"


def cluster_title(label: int, names: dict | None = None) -> str:
    """Number and name of a cluster for legends and bins, ``"3 · dark, city lights"`` (or ``"cluster 3"``)."""
    label = int(label)
    if names and names.get(label) and label != NOISE_LABEL:
        return f"{label} · {names[label]}"
    return cluster_name(label)


def shown_names(names: dict | None) -> dict[int, str]:
    """``{label: shown name}`` from :func:`iss.clustering.names.cluster_names`' entries (or plain strings)."""
    return {int(k): (v["name"] if isinstance(v, dict) else str(v)) for k, v in (names or {}).items()}


def font_path(bold: bool = False) -> str:
    """A TrueType font that is always there: matplotlib ships DejaVu Sans."""
    from matplotlib import font_manager

    return font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans",
                                                             weight="bold" if bold else "normal"))


def apply_matplotlib_style() -> None:
    """Readable defaults for the static figures (light grid, no top/right spines)."""
    matplotlib.rcParams.update({
        "figure.dpi": 100,
        "savefig.dpi": 110,
        "font.size": 10,
        "axes.titlesize": 12,
        "axes.titleweight": "bold",
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "grid.color": "#e4e7eb",
        "grid.linewidth": 0.8,
        "axes.axisbelow": True,
        "axes.edgecolor": "#9aa5b1",
        "legend.frameon": False,
    })


def save_figure(fig, path: str | Path) -> Path:
    """Lay out ``fig``, write it to ``path`` (parent folders created) and close it.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The finished figure.
    path : str or Path
        Output file; the format follows the suffix (``.png``).

    Returns
    -------
    Path
        ``path`` as a Path.
    """
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)  # why: pyplot keeps every open figure alive; a batch of reports would leak memory
    return path
