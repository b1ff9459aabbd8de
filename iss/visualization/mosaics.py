"""Mosaics: the most typical pictures of each cluster as one PNG grid, pasted with PIL.

A picture is more typical of its cluster when its silhouette is higher (it is closer to its own
cluster than to any other); pictures without a silhouette come after, nearest to the cluster's
centre in the 2-D embedding first. Thumbnails come from the ingest cache, never from the JPEGs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from iss.data.cache import ImageCache
from iss.visualization.style import cluster_color, cluster_name, cluster_title, font_path

HEADER_HEIGHT = 46
GAP = 2
BACKGROUND = (23, 33, 43)  # dark, like the page headers: thumbnails of space read better on it


def order_by_typicality(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows sorted by cluster, then from most to least typical within each cluster.

    Parameters
    ----------
    frame : DataFrame
        With ``label``, ``pictures_x``, ``pictures_y`` and optionally ``silhouette``.

    Returns
    -------
    DataFrame
        Same rows, with a ``centre_distance`` column (distance to the cluster's mean x, y) and
        ``rank`` (0 = most typical of its cluster).
    """
    ordered = frame.copy()
    centres = ordered.groupby("label")[["pictures_x", "pictures_y"]].transform("mean")
    ordered["centre_distance"] = np.hypot(ordered["pictures_x"] - centres["pictures_x"],
                                          ordered["pictures_y"] - centres["pictures_y"])
    silhouette = ordered["silhouette"] if "silhouette" in ordered else pd.Series(np.nan, index=ordered.index)
    ordered["_has_silhouette"] = silhouette.notna()
    ordered["_neg_silhouette"] = -silhouette.fillna(0.0)
    ordered = ordered.sort_values(["label", "_has_silhouette", "_neg_silhouette", "centre_distance", "pictures_id"],
                                  ascending=[True, False, True, True, True], kind="stable")
    ordered["rank"] = ordered.groupby("label").cumcount()
    return ordered.drop(columns=["_has_silhouette", "_neg_silhouette"])


def _hex_to_rgb(color: str) -> tuple[int, int, int]:
    color = color.lstrip("#")
    return tuple(int(color[i:i + 2], 16) for i in (0, 2, 4))


def mosaic_image(thumbs: np.ndarray, title: str, subtitle: str = "", columns: int = 8,
                 color: str = "#4e79a7") -> Image.Image:
    """A grid of thumbnails under a header band.

    Parameters
    ----------
    thumbs : uint8 array, shape (n, h, w, 3)
        In reading order (left to right, top to bottom).
    title : str
        Bold header text (e.g. ``"Cluster 3"``).
    subtitle : str
        Smaller text after the title (e.g. counts).
    columns : int, default=8
    color : str
        Hex colour of the header's cluster swatch and underline.

    Returns
    -------
    PIL.Image.Image
        RGB, width ``columns * (w + 2) + 2`` (fewer columns when n is smaller).
    """
    thumbs = np.asarray(thumbs, dtype=np.uint8)
    if thumbs.ndim != 4 or thumbs.shape[-1] != 3:
        raise ValueError(f"thumbs must be (n, h, w, 3) uint8, got shape {thumbs.shape}")
    n, h, w, _ = thumbs.shape
    columns = max(1, min(columns, n)) if n else columns
    rows = int(np.ceil(n / columns)) if n else 0
    width = max(columns * (w + GAP) + GAP, 480)
    height = HEADER_HEIGHT + rows * (h + GAP) + GAP
    image = Image.new("RGB", (width, height), BACKGROUND)
    for i in range(n):
        r, c = divmod(i, columns)
        image.paste(Image.fromarray(thumbs[i]), (GAP + c * (w + GAP), HEADER_HEIGHT + GAP + r * (h + GAP)))
    draw = ImageDraw.Draw(image)
    rgb = _hex_to_rgb(color)
    draw.rectangle([0, HEADER_HEIGHT - 3, width, HEADER_HEIGHT - 1], fill=rgb)
    draw.rounded_rectangle([10, 12, 28, 30], radius=3, fill=rgb)
    bold = ImageFont.truetype(font_path(bold=True), 18)
    regular = ImageFont.truetype(font_path(), 13)
    draw.text((38, 10), title, font=bold, fill=(255, 255, 255))
    title_width = draw.textlength(title, font=bold)
    draw.text((38 + title_width + 12, 15), subtitle, font=regular, fill=(190, 203, 217))
    return image


def fit_text(draw: ImageDraw.ImageDraw, text: str, font, width: float) -> str:
    """``text`` cut with an ellipsis so that it is at most ``width`` pixels wide in ``font``."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text.rstrip(" ,·") + "…"


def cluster_mosaic_images(frame: pd.DataFrame, cache: ImageCache, size: int = 64,
                          columns: int = 8, names: dict | None = None) -> dict[int, Image.Image]:
    """One mosaic image per cluster (in memory), most typical pictures first.

    Parameters
    ----------
    frame : DataFrame
        A run's pictures (see :func:`order_by_typicality`).
    cache : ImageCache
        Source of the thumbnails.
    size : int, default=64
        At most this many pictures per mosaic (the most typical ones).
    columns : int, default=8
    names : dict, optional
        ``{label: name}`` shown in the headers (see :mod:`iss.clustering.names`).

    Returns
    -------
    dict
        ``{label: PIL.Image}``, by label.
    """
    ordered = order_by_typicality(frame)
    images = {}
    for label, members in ordered.groupby("label", sort=True):
        shown = members.head(size)
        thumbs = cache.get_thumbs(shown["pictures_id"].tolist())
        mean = members["silhouette"].mean() if "silhouette" in members else float("nan")
        parts = [f"{len(members):,} pictures"]
        if mean == mean:
            parts.append(f"mean silhouette {mean:.2f}")
        parts.append(f"{len(shown)} most typical shown, best first")
        images[int(label)] = mosaic_image(thumbs, title=cluster_title(label, names),
                                          subtitle="  ·  ".join(parts), columns=columns, color=cluster_color(label))
    return images


def write_cluster_mosaics(frame: pd.DataFrame, cache: ImageCache, out_dir: str | Path, size: int = 64,
                          columns: int = 8, names: dict | None = None) -> dict[int, Path]:
    """One mosaic PNG per cluster, ``out_dir/cluster_<label>.png`` (``cluster_noise.png`` for -1).

    Parameters are those of :func:`cluster_mosaic_images`.

    Returns
    -------
    dict
        ``{label: path}``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for label, image in cluster_mosaic_images(frame, cache, size=size, columns=columns, names=names).items():
        path = out_dir / f"cluster_{'noise' if label == -1 else label}.png"
        image.save(path, optimize=True)
        paths[label] = path
    return paths


def write_overview_mosaic(frame: pd.DataFrame, cache: ImageCache, out_png: str | Path, per_cluster: int = 10,
                          label_width: int = 210, names: dict | None = None) -> Path:
    """One row per cluster with its ``per_cluster`` most typical pictures: the run at a glance.

    Each row starts with the cluster's number and name (``names``: ``{label: name}``) and size.

    Returns
    -------
    Path
    """
    ordered = order_by_typicality(frame)
    groups = [(label, members.head(per_cluster)) for label, members in ordered.groupby("label", sort=True)]
    h, w = cache.thumb_shape[:2]
    width = label_width + per_cluster * (w + GAP) + GAP
    height = len(groups) * (h + GAP) + GAP
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    bold = ImageFont.truetype(font_path(bold=True), 14)
    small = ImageFont.truetype(font_path(), 11)
    counts = frame["label"].value_counts()
    for row, (label, members) in enumerate(groups):
        top = GAP + row * (h + GAP)
        draw.rectangle([0, top, 5, top + h], fill=_hex_to_rgb(cluster_color(label)))
        heading = cluster_name(label).capitalize() if not (names and names.get(int(label))) else f"{label}"
        draw.text((14, top + 4), heading, font=bold, fill=(255, 255, 255))
        if names and names.get(int(label)):
            draw.text((14 + draw.textlength(heading + "  ", font=bold), top + 6),
                      fit_text(draw, names[int(label)], small, label_width - 40), font=small, fill=(255, 255, 255))
        draw.text((14, top + h - 18), f"{counts[label]:,} pictures", font=small, fill=(190, 203, 217))
        for col, pixels in enumerate(cache.get_thumbs(members["pictures_id"].tolist())):
            image.paste(Image.fromarray(pixels), (label_width + GAP + col * (w + GAP), top))
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    image.save(out_png, optimize=True)
    return out_png


def mosaic_order(frame: pd.DataFrame, label: int, size: int | None = None) -> Sequence[str]:
    """Picture ids of a cluster's mosaic, in the order they are pasted (most typical first)."""
    ordered = order_by_typicality(frame)
    ids = ordered.loc[ordered["label"] == label, "pictures_id"].tolist()
    return ids[:size] if size else ids
