"""The collection's own lists: sets of near-duplicates and the pictures least like the rest.

Near-duplicate sets
    Pairs of pictures closer than an edited copy is to its original (the search index's calibrated
    near-copy distance) are edges of a graph; its connected components (scipy.sparse.csgraph) are the
    sets, largest first. In each set the picture to keep is its medoid (smallest mean latent distance
    to the others: the most representative one), so "keep one" deletes the rest.

Outliers
    A picture is odd when it is far from its neighbours compared with how far they are from theirs:
    the Local Outlier Factor (Breunig et al. 2000, scikit-learn's ``LocalOutlierFactor``), which,
    unlike a plain distance to the nearest pictures, does not rank every picture of a varied kind
    (cloudy views) above a truly odd one. It is measured on two coarse descriptions of each
    thumbnail, because an oddity shows in different places:

    - ``layout``: mean colour and luminance spread of a 6x3 grid (a test pattern, a large lens
      reflection, a coloured cast);
    - ``bands``: mean and spread of the luminance of six horizontal bands (half a frame lost, a
      frame upside down);
    - ``colours``: hue x saturation x value histogram of the whole thumbnail (the appearance
      check's, :func:`iss.search.appearance.hsv_histogram`): colours the collection never shows
      (a lens reflection's green disc and magenta ring, a test pattern).

    Each score becomes a robust z-score (median and MAD over the collection) and a picture's score
    is the largest of the three, with the description that gave it as the reason. Latent distances
    were tried and left out: on the demo the autoencoder's latents (kNN distance, LOF or
    reconstruction error) rank ordinary cloudy frames first and the odd frames between 69th and
    1,169th. With these descriptions, the demo's injected odd frames (``iss.data.odd_frames``) rank
    2nd, 4th and 1st of 2,003 (at half size; without ``colours`` the lens reflection, among the
    demo's sun-glare frames, ranked 32nd), and the same three made from real HDEV frames rank 1st
    to 3rd of 33.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GRID = (6, 3)  # columns, rows of the layout description
BANDS = 6  # horizontal bands of the band description
LOF_NEIGHBORS = {"layout": 10, "bands": 20, "colours": 20}
REASONS = {"layout": "unusual layout of light and colour", "bands": "unusual light from top to bottom",
           "colours": "unusual colours"}
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_BATCH = 2048


@dataclass
class NearDuplicateSet:
    """One set of near-identical pictures.

    Attributes
    ----------
    rows : int array
        Index rows of the members, the one to keep first, then by id.
    keep : int
        Index row of the picture to keep (the set's medoid).
    max_distance : float
        Largest latent distance of an edge inside the set.
    """

    rows: np.ndarray
    keep: int
    max_distance: float

    def __len__(self) -> int:
        return len(self.rows)


def near_duplicate_sets(n: int, rows_a: np.ndarray, rows_b: np.ndarray, distances: np.ndarray,
                        latents: np.ndarray, ids: np.ndarray) -> list[NearDuplicateSet]:
    """Connected components of the near-duplicate pairs, largest first (then by the kept picture's id).

    Parameters
    ----------
    n : int
        Number of pictures (graph nodes).
    rows_a, rows_b : int arrays, shape (p,)
        The pairs (as :meth:`iss.search.index.SimilarityIndex.near_duplicate_pairs` returns them).
    distances : float array, shape (p,)
    latents : float array, shape (n, d)
        To choose each set's medoid.
    ids : array of str, shape (n,)

    Returns
    -------
    list of NearDuplicateSet
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if len(rows_a) == 0:
        return []
    graph = coo_matrix((np.ones(len(rows_a)), (rows_a, rows_b)), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    edge_component = component[rows_a]
    sets = []
    for c in np.unique(edge_component):
        members = np.flatnonzero(component == c)
        points = np.asarray(latents[members], dtype=np.float32).reshape(len(members), -1)
        if len(members) <= 2000:  # exact medoid; beyond, the most connected member
            squared = (points ** 2).sum(axis=1)
            gram = np.maximum(squared[:, None] + squared[None, :] - 2 * points @ points.T, 0)
            keep = members[int(np.argmin(np.sqrt(gram).mean(axis=1)))]
        else:
            degree = np.bincount(np.concatenate([rows_a, rows_b])[np.isin(np.concatenate([rows_a, rows_b]), members)],
                                 minlength=n)
            keep = int(np.argmax(degree))
        others = sorted((m for m in members if m != keep), key=lambda m: str(ids[m]))
        sets.append(NearDuplicateSet(rows=np.array([keep, *others]), keep=int(keep),
                                     max_distance=float(distances[edge_component == c].max())))
    sets.sort(key=lambda s: (-len(s), str(ids[s.keep])))
    return sets


# --- outliers -----------------------------------------------------------------------------------
def _cells(pixels: np.ndarray) -> np.ndarray:
    """Float pictures (n, h, w, c) cut into the ``GRID``: (n, rows, cell h, columns, cell w, c)."""
    n, h, w, c = pixels.shape
    gx, gy = GRID
    ch, cw = h // gy, w // gx
    return pixels[:, : ch * gy, : cw * gx].reshape(n, gy, ch, gx, cw, c)


def grid_colours(thumbs: np.ndarray) -> np.ndarray:
    """Mean RGB (0-1) of each cell of the 6x3 ``GRID``, float32 (n, 3 rows * 6 columns * 3): a picture
    seen from afar (the posters' near-duplicate test; the colour part of ``layout``)."""
    pixels = np.asarray(thumbs, dtype=np.float32) / 255.0
    return _cells(pixels).mean(axis=(2, 4)).reshape(len(pixels), -1)


def picture_descriptions(thumbs: np.ndarray) -> dict[str, np.ndarray]:
    """The ``layout``, ``bands`` and ``colours`` descriptions of thumbnails.

    Parameters
    ----------
    thumbs : uint8 array, shape (n, h, w, 3)

    Returns
    -------
    dict
        ``layout``: float32 (n, 4 * 6 * 3), mean RGB and luminance std of each grid cell;
        ``bands``: float32 (n, 2 * 6), mean and std of the luminance of each band;
        ``colours``: float32 (n, 12 * 4 * 4), square-rooted HSV histogram.
    """
    from iss.search.appearance import hsv_histogram

    pixels = np.asarray(thumbs, dtype=np.float32) / 255.0
    n, h, w, _ = pixels.shape
    bh = h // BANDS
    luma = pixels @ _LUMA
    layout = np.concatenate([_cells(pixels).mean(axis=(2, 4)), _cells(luma[..., None]).std(axis=(2, 4))], axis=-1)
    bands = luma[:, : bh * BANDS].reshape(n, BANDS, bh * w)
    colours = np.stack([hsv_histogram(p) for p in pixels]) if n else np.zeros((0, 12 * 4 * 4), np.float32)
    return {"layout": layout.reshape(n, -1), "bands": np.hstack([bands.mean(axis=2), bands.std(axis=2)]),
            "colours": colours}


def robust_z(scores: np.ndarray) -> np.ndarray:
    """``(score - median) / (1.4826 * MAD)``: how many standard deviations above the usual, robustly."""
    scores = np.asarray(scores, dtype=np.float64)
    median = np.median(scores)
    mad = 1.4826 * np.median(np.abs(scores - median))
    return (scores - median) / (mad if mad > 0 else (scores.std() or 1.0))


def lof_scores(features: np.ndarray, n_neighbors: int) -> np.ndarray:
    """Local Outlier Factor of every row (about 1 for ordinary pictures, larger for odd ones)."""
    from sklearn.neighbors import LocalOutlierFactor

    features = np.asarray(features, dtype=np.float32).reshape(len(features), -1)
    k = max(1, min(int(n_neighbors), len(features) - 1))
    return -LocalOutlierFactor(n_neighbors=k).fit(features).negative_outlier_factor_


@dataclass
class OutlierScores:
    """Per picture: ``score`` (the largest robust z), ``reason`` (the description that gave it) and
    the robust z of each description (``parts``)."""

    score: np.ndarray
    reason: np.ndarray
    parts: dict[str, np.ndarray]


def outlier_scores(cache, ids) -> OutlierScores:
    """How odd each picture is (see the module docstring).

    Parameters
    ----------
    cache : iss.data.cache.ImageCache
        Thumbnails of ``ids`` (read in batches: memory bounded by the batch).
    ids : sequence of str

    Returns
    -------
    OutlierScores
    """
    ids = [str(i) for i in ids]
    parts_list = [picture_descriptions(cache.get_thumbs(ids[s:s + _BATCH])) for s in range(0, len(ids), _BATCH)]
    descriptions = {key: np.concatenate([p[key] for p in parts_list]) for key in parts_list[0]}
    parts = {key: robust_z(lof_scores(values, LOF_NEIGHBORS[key])) for key, values in descriptions.items()}
    names = list(parts)
    stacked = np.stack([parts[k] for k in names])
    return OutlierScores(score=stacked.max(axis=0), reason=np.array(names)[stacked.argmax(axis=0)], parts=parts)
