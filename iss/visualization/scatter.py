"""Interactive bokeh scatter of a clustering run: one point per picture, its thumbnail on hover, and a
grid of the pictures selected with the lasso, a box or a tap, each linking to its picture page.

The page fills the window, links back to the run page, and works offline and stays light with
tens of thousands of pictures:

- bokeh's JavaScript is inlined (``bokeh.resources.INLINE``), so no CDN is needed;
- thumbnails are small JPEG files beside the page (``reports/thumbs/<id>.jpg``), fetched by the
  browser only when a tooltip shows them, instead of base64 images inflating the HTML;
- all points share one data source; each cluster is a view of it (a ``GroupFilter``), so hiding a
  cluster (legend click or the checkboxes) costs nothing and the data is sent once;
- above ``reports.scatter_aggregate_above`` pictures (a million frames) one point per picture would
  make a page of hundreds of megabytes that no browser draws smoothly, so the page draws instead one
  density image per cluster (a NumPy 2-D histogram coloured in the cluster's colour, a PNG data URI
  drawn with ``image_url``, at a fixed resolution: zooming enlarges its bins) and, over it, a seeded
  sample of the pictures per cluster (:func:`scatter_sample`), which keep the thumbnail hover, the
  lasso and the selection grid. The page then holds bokeh (~1.6 MB), the sample's rows and the
  PNGs, whatever the number of pictures;
- picture pages are the explorer server's (``iss serve``): on the same origin when the page is
  served by it (under ``/reports/``), else at ``explorer`` (``http://127.0.0.1:8000``).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from bokeh.embed import file_html
from bokeh.layouts import column, row
from bokeh.models import (
    BoxSelectTool,
    Button,
    CDSView,
    CheckboxGroup,
    ColumnDataSource,
    CustomJS,
    Div,
    GroupFilter,
    HoverTool,
    LassoSelectTool,
    Legend,
    LegendItem,
    TapTool,
)
from bokeh.plotting import figure
from bokeh.resources import INLINE

from iss.artefacts import write_text
from iss.visualization.data import format_location, format_time, thumb_url
from iss.visualization.pages import render_page
from iss.visualization.style import cluster_color, cluster_title

# thumbnails are 96x54 files, shown at 1.67x in the tooltip (still sharp enough, easier to read)
TOOLTIP_IMAGE_SIZE = (160, 90)

# Tooltip: bokeh fills @{field}; the <img> points at a JPEG file beside the page.
TOOLTIP_HTML = """
<div style="width:{w}px;font:12px/1.35 sans-serif;color:#1f2933">
  <img src="@{{thumb}}" alt="@{{pictures_id}}" width="{w}" height="{h}"
       style="display:block;border-radius:3px;margin-bottom:4px;background:#000">
  <div style="font-weight:600">@{{pictures_id}}</div>
  <div>@{{time}}</div>
  <div style="color:#616e7c">@{{location}}</div>
  <div><span style="display:inline-block;width:9px;height:9px;border-radius:2px;background:@{{color}}"></span>
       @{{cluster}} &middot; silhouette @{{silhouette}}{{0.00}}</div>
</div>
"""


# thumbnails shown at once in the selection grid (a lasso over a dense region can take thousands)
SELECTION_GRID_MAX = 120
SIDE_WIDTH = 340

# The selection grid: the first pictures selected, each a link to its picture page.
SELECTION_JS = """
const served = /^https?:$/.test(location.protocol) && location.pathname.indexOf('/reports/') === 0;
const base = served ? '' : explorer;
const esc = s => String(s).replace(/[&<>"']/g, c => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'})[c]);
const picked = source.selected.indices;
const d = source.data;
if (!picked.length) {
  grid.text = "<p style='color:#616e7c;margin:4px 0'>Select pictures with the lasso, a box or a click: " +
              "they show here; click one to open its page.</p>";
  return;
}
const shown = picked.slice(0, max);
let html = `<div style='font:13px sans-serif;margin:2px 0 6px'><b class='n-selected'>${picked.length.toLocaleString('en')}` +
           ` selected</b>${picked.length > max ? ` · first ${max} shown` : ''}</div>` +
           "<div class='selection-grid' style='display:grid;grid-template-columns:repeat(3,1fr);gap:4px'>";
for (const i of shown) {
  const id = d.pictures_id[i];
  html += `<a class='pic' href='${esc(base + '/pictures/' + encodeURIComponent(id))}' ` +
          `title='${esc(id + ' · ' + d.cluster[i] + ' · ' + d.time[i])}' style='display:block;line-height:0'>` +
          `<img src='${esc(d.thumb[i])}' alt='${esc(id)}' loading='lazy' ` +
          `style='width:100%;aspect-ratio:16/9;object-fit:cover;border-radius:2px;border-bottom:3px solid ${d.color[i]}'></a>`;
}
grid.text = html + "</div>";
"""


def scatter_source(frame: pd.DataFrame, thumb_prefix: str | None = "thumbs",
                   thumb_urls: Sequence[str] | None = None, x: str = "pictures_x",
                   y: str = "pictures_y", names: dict | None = None) -> ColumnDataSource:
    """The scatter's data: coordinates, cluster, colour and the strings the tooltip shows.

    Parameters
    ----------
    frame : DataFrame
        One row per picture, with ``pictures_id``, ``label``, ``x``/``y`` columns and optionally
        ``silhouette``, ``taken_at``, ``latitude``, ``longitude``, ``location``
        (as :func:`iss.visualization.data.load_run_frame` returns).
    thumb_prefix : str or None, default="thumbs"
        URL of the thumbnail folder relative to the page; None for no thumbnails.
    thumb_urls : sequence of str, optional
        Explicit thumbnail URLs, one per row (e.g. JPEG data URIs in a notebook); overrides the prefix.
    x, y : str
        Coordinate columns.
    names : dict, optional
        ``{label: name}`` of the clusters (:mod:`iss.clustering.names`); default ``"cluster k"``.
    """
    n = len(frame)
    ids = frame["pictures_id"].astype(str).tolist()
    labels = frame["label"].astype(int).to_numpy()
    missing = pd.Series([np.nan] * n, index=frame.index)
    if thumb_urls is not None:
        thumbs = list(thumb_urls)
    elif thumb_prefix is not None:
        thumbs = [thumb_url(i, thumb_prefix) for i in ids]
    else:
        thumbs = [""] * n
    data = {
        # float32 halves the page size of the coordinates and is far finer than a screen pixel
        "x": frame[x].to_numpy(dtype="float32"),
        "y": frame[y].to_numpy(dtype="float32"),
        "pictures_id": ids,
        "label": [str(v) for v in labels],  # GroupFilter compares strings
        "cluster": [cluster_title(v, names) for v in labels],
        "color": [cluster_color(v) for v in labels],
        "silhouette": frame.get("silhouette", missing).to_numpy(dtype="float32"),
        "time": [format_time(v) for v in frame.get("taken_at", missing)],
        "location": [format_location(a, b, t) for a, b, t in zip(frame.get("latitude", missing),
                                                                   frame.get("longitude", missing),
                                                                   frame.get("location", missing))],
        "thumb": thumbs,
    }
    return ColumnDataSource(data)


def scatter_sample(frame: pd.DataFrame, aggregate_above: int | None, sample_size: int,
                   random_state: int = 0) -> pd.DataFrame | None:
    """The pictures drawn one by one over the density images, or None when every picture is drawn.

    A seeded random sample per cluster, in proportion to the cluster's size but with at least
    ``sample_size / (4 * clusters)`` pictures of each (a small cluster still gets thumbnails to
    hover), so it holds at most ``1.25 * sample_size`` rows. Random rather than the most typical
    pictures: those sit at the clusters' centres, and hover must find pictures everywhere the
    density is drawn.

    Parameters
    ----------
    frame : DataFrame
        The run's pictures (with ``label``).
    aggregate_above : int or None
        Aggregate only when ``len(frame)`` is above it; None never aggregates.
    sample_size : int
        Pictures to keep (see above for the bound).
    random_state : int, default=0

    Returns
    -------
    DataFrame or None
        Rows of ``frame`` in their original order.
    """
    positions = sample_positions(frame, aggregate_above, sample_size, random_state)
    return None if positions is None else frame.iloc[positions]


def sample_positions(frame: pd.DataFrame, aggregate_above: int | None, sample_size: int,
                     random_state: int = 0) -> np.ndarray | None:
    """Row positions (sorted) of :func:`scatter_sample`'s pictures, or None when every picture is drawn."""
    if aggregate_above is None or len(frame) <= aggregate_above:
        return None
    if sample_size < 1:
        raise ValueError(f"sample_size must be at least 1, got {sample_size}")
    rng = np.random.default_rng(random_state)
    labels = frame["label"].astype(int).to_numpy()
    groups = pd.Series(np.arange(len(frame))).groupby(labels)
    floor = max(1, sample_size // (4 * groups.ngroups))
    keep = []
    for _, rows in groups:
        quota = min(len(rows), max(floor, int(sample_size * len(rows) / len(frame))))
        keep.append(rng.choice(rows.to_numpy(), size=quota, replace=False))
    return np.sort(np.concatenate(keep))


def density_images(frame: pd.DataFrame, bins: Sequence[int] = (1200, 800), x: str = "pictures_x",
                   y: str = "pictures_y") -> tuple[dict[int, str], tuple[float, float, float, float]]:
    """One density image per cluster: a 2-D histogram of its pictures, as a transparent PNG.

    Each non-empty bin is painted in the cluster's colour, its opacity growing with the log of its
    count (from 0.35 for one picture to 1 for the densest bin of all clusters), so sparse outskirts
    stay visible next to dense cores and clusters compare on one scale. NumPy only (no datashader:
    a histogram per cluster is all the page needs). Memory: one float64 histogram of
    ``bins`` at a time, plus the coordinates.

    Parameters
    ----------
    frame : DataFrame
        With ``label`` and the coordinate columns.
    bins : (int, int), default=(1200, 800)
        Bins across x and across y (the PNGs' width and height).
    x, y : str
        Coordinate columns.

    Returns
    -------
    images : dict
        ``{label: "data:image/png;base64,..."}``.
    extent : (x0, y0, width, height)
        The data rectangle every image covers.
    """
    from PIL import Image, ImageColor

    xs, ys = frame[x].to_numpy(dtype=np.float64), frame[y].to_numpy(dtype=np.float64)
    finite = np.isfinite(xs) & np.isfinite(ys)
    if not finite.any():
        raise ValueError("density_images needs finite coordinates; every picture has a NaN or infinite x or y")
    (x0, x1), (y0, y1) = [(float(v[finite].min()), float(v[finite].max())) for v in (xs, ys)]
    pad_x, pad_y = max((x1 - x0) * 0.01, 1e-6), max((y1 - y0) * 0.01, 1e-6)
    edges = (np.linspace(x0 - pad_x, x1 + pad_x, int(bins[0]) + 1), np.linspace(y0 - pad_y, y1 + pad_y, int(bins[1]) + 1))
    labels = frame["label"].astype(int).to_numpy()
    counts = {}
    for label in sorted(set(labels[finite].tolist())):
        member = finite & (labels == label)
        counts[label] = np.histogram2d(xs[member], ys[member], bins=edges)[0].astype(np.float32)
    top = np.log1p(max(float(c.max()) for c in counts.values()))
    images = {}
    for label, count in counts.items():
        rgba = np.zeros((*count.T.shape, 4), dtype=np.uint8)
        grid = count.T[::-1]  # rows from the top (PNG) = y from high to low
        filled = grid > 0
        rgba[..., :3] = ImageColor.getrgb(cluster_color(label))[:3]
        rgba[..., 3] = np.where(filled, np.round(255 * (0.35 + 0.65 * np.log1p(grid) / top)), 0).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(rgba, mode="RGBA").save(buffer, format="PNG", compress_level=6)
        images[label] = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    extent = (float(edges[0][0]), float(edges[1][0]), float(edges[0][-1] - edges[0][0]),
              float(edges[1][-1] - edges[1][0]))
    return images, extent


def build_scatter(frame: pd.DataFrame, title: str = "Pictures", thumb_prefix: str | None = "thumbs",
                  thumb_urls: Sequence[str] | None = None, x: str = "pictures_x", y: str = "pictures_y",
                  x_label: str = "x", y_label: str = "y", width: int = 980, height: int = 700,
                  point_size: float | None = None, names: dict | None = None,
                  explorer: str = "http://127.0.0.1:8000", fill: bool = False,
                  aggregate_above: int | None = None, sample_size: int = 20_000,
                  density_bins: Sequence[int] = (1200, 800), random_state: int = 0):
    """A bokeh layout: the scatter coloured by cluster, a legend, a show/hide cluster widget and the
    grid of selected pictures.

    Parameters
    ----------
    frame : DataFrame
        See :func:`scatter_source`.
    title : str
    thumb_prefix, thumb_urls : see :func:`scatter_source`.
    x, y : str
        Coordinate columns of ``frame``.
    x_label, y_label : str
        Axis titles.
    width, height : int
        Plot size in pixels (ignored with ``fill``).
    point_size : float, optional
        Marker size in pixels; default shrinks with the number of pictures.
    names : dict, optional
        ``{label: name}`` of the clusters, for the legend, checkboxes and tooltips.
    explorer : str
        Base URL of the explorer server, for picture pages when the page is not served by it.
    fill : bool, default=False
        Fill the window (the page) instead of ``width`` x ``height`` (a notebook cell).
    aggregate_above : int, optional
        Above this many pictures, draw one density image per cluster (:func:`density_images`) and
        only a sample of the pictures as points (:func:`scatter_sample`); ``thumb_urls``, when
        given (one per row of ``frame``), are kept for the sample's rows. None draws every picture.
    sample_size : int, default=20000
        Pictures drawn as points when aggregating.
    density_bins : (int, int), default=(1200, 800)
        Resolution of the density images.
    random_state : int, default=0
        Seed of the sample.

    Returns
    -------
    bokeh.models.LayoutDOM
        ``row(figure, controls)``; the figure's per-cluster point renderers are named
        ``cluster-<label>`` (and the density images ``density-<label>`` when aggregated), the
        selection grid is the ``Div`` named ``selection_grid``.
    """
    if len(frame) == 0:
        raise ValueError("build_scatter needs at least one picture; the frame is empty")
    positions = sample_positions(frame, aggregate_above, sample_size, random_state)
    sample = None if positions is None else frame.iloc[positions]
    points = frame if sample is None else sample
    if sample is not None and thumb_urls is not None:
        if len(thumb_urls) != len(frame):
            raise ValueError(f"thumb_urls has {len(thumb_urls)} URLs for {len(frame)} pictures; give one per row")
        thumb_urls = [thumb_urls[i] for i in positions]
    source = scatter_source(points, thumb_prefix=thumb_prefix, thumb_urls=thumb_urls, x=x, y=y, names=names)
    size = point_size or float(np.clip(14 - 2.2 * np.log10(len(points)), 4, 10))
    sizing = {"sizing_mode": "stretch_both"} if fill else {"width": width, "height": height}
    plot = figure(title=title, tools="pan,wheel_zoom,box_zoom,reset,save", active_scroll="wheel_zoom",
                  x_axis_label=x_label, y_axis_label=y_label, toolbar_location="above", output_backend="canvas",
                  min_width=400, min_height=300, **sizing)
    plot.title.text_font_size = "15px"
    plot.grid.grid_line_color = "#eef1f5"
    plot.background_fill_color = "#fcfcfd"

    labels = sorted({int(v) for v in frame["label"]})
    counts = frame["label"].astype(int).value_counts()
    densities = {}
    if sample is not None:
        images, (x0, y0, dw, dh) = density_images(frame, density_bins, x=x, y=y)
        for label in labels:
            if label in images:
                densities[label] = plot.image_url(url=[images[label]], x=x0, y=y0, w=dw, h=dh, anchor="bottom_left",
                                                  name=f"density-{label}")
    renderers, items = [], []
    for label in labels:
        view = CDSView(filter=GroupFilter(column_name="label", group=str(label)))
        renderer = plot.scatter("x", "y", source=source, view=view, size=size, marker="circle",
                                fill_color=cluster_color(label), fill_alpha=0.75 if sample is None else 0.45,
                                line_color=None,
                                hover_fill_alpha=1.0, hover_line_color="#111", hover_line_width=1.5,
                                hover_fill_color=cluster_color(label), name=f"cluster-{label}")
        renderers.append(renderer)
        items.append(LegendItem(label=f"{cluster_title(label, names)} ({counts[label]:,})", renderers=[renderer]))
    legend = Legend(items=items, click_policy="hide", title="click to hide", label_text_font_size="12px",
                    background_fill_alpha=0.85)
    plot.add_layout(legend, "right")

    # limit=1 per cluster: in a dense region show the nearest picture, not a stack of dozens
    hover = HoverTool(renderers=renderers, point_policy="snap_to_data", limit=1,
                      tooltips=TOOLTIP_HTML.format(w=TOOLTIP_IMAGE_SIZE[0], h=TOOLTIP_IMAGE_SIZE[1]))
    plot.add_tools(hover)
    # select (lasso is the default drag: selecting is what the page is for), then see the pictures
    lasso = LassoSelectTool(renderers=renderers)
    plot.add_tools(lasso, BoxSelectTool(renderers=renderers), TapTool(renderers=renderers))
    plot.toolbar.active_drag = lasso

    checkbox = CheckboxGroup(labels=[f"{cluster_title(v, names)} ({counts[v]:,})" for v in labels],
                             active=list(range(len(labels))), name="cluster_toggles")
    checkbox.js_on_change("active", CustomJS(args=dict(renderers=renderers), code="""
        renderers.forEach((r, i) => { r.visible = cb_obj.active.includes(i) })
    """))
    # Keep the checkboxes (and the density images) in step when a cluster is hidden from the legend.
    followers = [densities.get(label) for label in labels]
    sync = CustomJS(args=dict(renderers=renderers, checkbox=checkbox, followers=followers), code="""
        renderers.forEach((r, i) => { if (followers[i] && followers[i].visible !== r.visible) followers[i].visible = r.visible })
        const active = renderers.map((r, i) => r.visible ? i : -1).filter(i => i >= 0)
        if (active.join() !== checkbox.active.join()) checkbox.active = active
    """)
    for renderer in renderers:
        renderer.js_on_change("visible", sync)
    show_all = Button(label="Show all", width=95, button_type="default")
    show_all.js_on_event("button_click", CustomJS(args=dict(checkbox=checkbox, n=len(labels)), code="""
        checkbox.active = Array.from({length: n}, (_, i) => i)
    """))
    hide_all = Button(label="Hide all", width=95, button_type="default")
    hide_all.js_on_event("button_click", CustomJS(args=dict(checkbox=checkbox), code="checkbox.active = []"))
    if sample is None:
        how = f"{len(frame):,} pictures. Hover a point for its thumbnail; scroll to zoom; drag to select."
    else:
        how = (f"{len(frame):,} pictures, drawn as a density per cluster (darker: more pictures; "
               f"{int(density_bins[0])}x{int(density_bins[1])} bins, zoom enlarges them). Hover a point for its "
               f"thumbnail, drag to select: the points are {len(sample):,} pictures sampled from every cluster.")
    heading = Div(text=f"<b>Clusters</b><br><span style='color:#616e7c' class='scatter-how'>{how}</span>",
                  width=SIDE_WIDTH - 10, name="scatter_heading")
    grid = Div(text="", width=SIDE_WIDTH - 10, name="selection_grid",
               styles={"overflow-y": "auto", "max-height": "62vh" if fill else f"{height}px"})
    show_selection = CustomJS(args=dict(source=source, grid=grid, explorer=explorer.rstrip("/"),
                                        max=SELECTION_GRID_MAX), code=SELECTION_JS)
    source.selected.js_on_change("indices", show_selection)
    grid.text = ("<p style='color:#616e7c;margin:4px 0'>Select pictures with the lasso, a box or a click: they show "
                 "here; click one to open its page.</p>")
    controls = column(heading, row(show_all, hide_all), checkbox, Div(text="<b>Selection</b>"), grid,
                      width=SIDE_WIDTH, **({"sizing_mode": "stretch_height"} if fill else {}))
    return row(plot, controls, **({"sizing_mode": "stretch_both"} if fill else {}))


NAV_STYLE = {"background-color": "#17212b", "color": "#fff", "padding": "10px 18px", "font": "14px sans-serif"}


def page_nav(title: str, links: Sequence[tuple[str, str]]) -> Div:
    """The dark header bar of the report pages (title and links), a bokeh ``Div`` as wide as the window
    (``templates/nav_bar.html``; the title and links are escaped there)."""
    return Div(text=render_page("nav_bar.html", title=title, links=list(links)), height=42,
               sizing_mode="stretch_width", styles=NAV_STYLE, name="nav")


def write_scatter_page(frame: pd.DataFrame, out_html: str | Path, title: str = "Pictures",
                       thumb_prefix: str | None = "thumbs",
                       links: Sequence[tuple[str, str]] = (("index.html", "Run page"), ("../index.html", "All runs"),
                                                           ("../facets_dive.html", "Dive")),
                       **kwargs) -> Path:
    """Write the scatter as a self-contained HTML page that fills the window (bokeh inlined, thumbnails
    as files), under a header linking back to the run page.

    Parameters
    ----------
    frame : DataFrame
        See :func:`build_scatter`.
    out_html : str or Path
    title : str
    thumb_prefix : str or None
        URL of the thumbnail folder relative to the page (the files are written separately, by
        :func:`iss.visualization.data.write_thumbnails`).
    links : sequence of (href, text)
        The header's links, relative to the page.
    **kwargs
        Passed to :func:`build_scatter`.

    Returns
    -------
    Path
    """
    out_html = Path(out_html)
    out_html.parent.mkdir(parents=True, exist_ok=True)
    layout = column(page_nav(title, links), build_scatter(frame, title=title, thumb_prefix=thumb_prefix, fill=True, **kwargs),
                    sizing_mode="stretch_both")
    html = file_html(layout, resources=INLINE, title=title)
    return write_text(out_html, html)
