"""Cluster stability under resampling: do the clusters come back when the pictures are resampled
and the UMAP layout re-seeded?

Clusters that are really in the data come back; a cut that one layout happened to make does not
(clustering stability: Ben-Hur, Elisseeff & Guyon, PSB 2002; Lange, Roth, Braun & Buhmann, Neural
Computation 16, 2004). Two uses in the package:

- ``features: auto`` (:mod:`iss.features.auto`) compares the autoencoder's latents and the
  pixels by how reproducible their clusters are;
- ``k_criterion: stability`` (:class:`iss.clustering.n2d.N2DClustering`) takes the most
  reproducible k of the modularity curve's flat top (:func:`flat_top_k`), then a smaller k,
  almost as modular, if it reproduces much better (:func:`stable_k`).

The measurement (:func:`resampled_runs`, :func:`stability_curve`): ``n_runs`` times, a random
``subsample`` share of at most ``sample`` pictures, a UMAP layout with another seed, k-means on it
for every k; the stability of a k is the mean adjusted Rand index between the runs' labels on the
pictures two runs share.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score
from threadpoolctl import threadpool_limits

from iss.clustering.metrics import MODULARITY_TOLERANCE, near_best

# Defaults of the k choice (N2D's k_criterion "stability"), measured with the fidelity benchmark
# (python -m benchmarks.fidelity): on the 2,000-frame demo, modularity alone keeps k=8 (0.783)
# where k=6 is within 5 % (0.747) and reproduces with ARI 0.996 against 0.84-0.85; on MNIST-10k and
# Fashion-MNIST-10k no smaller k in the window reproduces better by more than 0.1, so the rule
# keeps the 10 and 9 of the modularity curve's flat top there.
STABILITY_SAMPLE = 2000  # pictures the runs are drawn from (the cost is n_runs UMAP layouts of this many)
STABILITY_RUNS = 4
STABILITY_SUBSAMPLE = 0.8
STABILITY_EPOCHS = 200
MODULARITY_WINDOW = 0.05  # k measured (up to the flat top) and smaller k considered within this share of the best
STABILITY_GAP = 0.1  # ... and reproducing better than the flat top's k by more than this ARI


def resampled_runs(X: np.ndarray, n_runs: int = STABILITY_RUNS, subsample: float = STABILITY_SUBSAMPLE,
                   sample: int | None = STABILITY_SAMPLE, n_neighbors: int = 20, n_components: int = 2,
                   metric: str = "euclidean", n_epochs: int | None = STABILITY_EPOCHS,
                   random_state: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """UMAP layouts of random subsamples of ``X``, each with its own seed.

    Parameters
    ----------
    X : ndarray, shape (n, d)
    n_runs : int, default=4
        Layouts made; at least 2.
    subsample : float, default=0.8
        Share of the (sampled) rows in each layout, in (0, 1].
    sample : int or None, default=2000
        The runs draw from a random sample of at most this many rows (None: all).
    n_neighbors, n_components, metric, n_epochs : UMAP parameters (``min_dist`` is 0).
    random_state : int, default=0

    Returns
    -------
    list of (rows, embedding)
        ``rows``: sorted int64 indices into ``X`` (shape (m,)); ``embedding``: float64 (m, n_components).

    Raises
    ------
    ValueError
        Fewer than 2 runs, a share outside (0, 1], or too few rows for ``n_neighbors``.
    """
    from iss.clustering.umap_reducer import UMAPReducer

    if n_runs < 2:
        raise ValueError(f"n_runs={n_runs!r}: expected at least 2 runs to compare")
    if not 0.0 < subsample <= 1.0:
        raise ValueError(f"subsample={subsample!r}: expected a share in (0, 1]")
    X = np.ascontiguousarray(X, dtype=np.float32)
    rng = np.random.default_rng(random_state)
    pool = np.arange(len(X)) if sample is None or sample >= len(X) else np.sort(
        rng.choice(len(X), size=sample, replace=False))
    size = max(n_neighbors + 2, int(round(subsample * len(pool))))
    if size > len(pool):
        raise ValueError(f"{len(pool)} pictures are too few to measure cluster stability with "
                         f"n_neighbors={n_neighbors}")
    runs = []
    for r in range(n_runs):
        rows = np.sort(rng.choice(pool, size=size, replace=False))
        embedding = UMAPReducer(n_neighbors=n_neighbors, min_dist=0.0, n_components=n_components, metric=metric,
                                n_epochs=n_epochs, random_state=random_state + r).fit(X[rows]).embedding_
        runs.append((rows, embedding.astype(np.float64)))
    return runs


def kmeans_labels(embedding: np.ndarray, k: int, random_state: int = 0) -> np.ndarray:
    """k-means labels (5 initialisations, one BLAS thread: the layouts are small) of an embedding."""
    with threadpool_limits(limits=1):
        return KMeans(n_clusters=k, n_init=5, random_state=random_state).fit_predict(embedding)


def mean_pairwise_ari(labelled: list[tuple[np.ndarray, np.ndarray]]) -> tuple[float, list[float]]:
    """Mean ARI between every two ``(rows, labels)`` runs on the rows they share, and the pairs' ARIs."""
    pairs = []
    for i in range(len(labelled)):
        for j in range(i + 1, len(labelled)):
            _, a, b = np.intersect1d(labelled[i][0], labelled[j][0], return_indices=True)
            pairs.append(float(adjusted_rand_score(labelled[i][1][a], labelled[j][1][b])))
    return float(np.mean(pairs)), pairs


def stability_curve(runs: list[tuple[np.ndarray, np.ndarray]], k_values: Iterable[int],
                    random_state: int = 0) -> dict[int, float]:
    """Stability of k-means with each k over ``runs`` (from :func:`resampled_runs`).

    Returns
    -------
    dict
        ``{k: mean pairwise ARI}``, in [-1, 1]; k larger than a run's rows are left out.
    """
    smallest = min(len(rows) for rows, _ in runs)
    return {int(k): mean_pairwise_ari([(rows, kmeans_labels(e, int(k), random_state)) for rows, e in runs])[0]
            for k in k_values if k < smallest}


def flat_top_k(modularity: dict[int, float], stability: dict[int, float],
               tolerance: float = MODULARITY_TOLERANCE) -> int:
    """The most reproducible k among those the modularity curve cannot tell apart.

    The k within ``tolerance`` (relative) of the best modularity are the curve's flat top; the one
    whose clusters reproduce best over resampled layouts is kept, the smaller on a tie. Why: on a
    flat top, taking its smallest k (:func:`iss.clustering.metrics.parsimonious_k`) is a guess.
    On Fashion-MNIST-500's pixels (10 kinds) the curve is within 1 % from 6 to 12, and its
    smallest k, 6, reproduces worse than 7 (ARI 0.772 against 0.830) and finds the kinds worse
    (0.370 against 0.403, ``python -m benchmarks.fidelity``); over 4 seeds, 0.371 became 0.417,
    while MNIST-10k kept 10 and the 2,000-frame demo 6.

    Parameters
    ----------
    modularity : dict
        ``{k: Q}`` (:func:`iss.clustering.metrics.modularity_sweep`).
    stability : dict
        ``{k: ARI}`` (:func:`stability_curve`); k of the top without a stability are left out.
    tolerance : float, default=MODULARITY_TOLERANCE

    Returns
    -------
    int
        The smallest k of the top when none of it has a stability.
    """
    flat = near_best(modularity, tolerance)
    measured = [k for k in flat if k in stability]
    if not measured:
        return min(flat)
    return max(measured, key=lambda k: (stability[k], -k))


def stable_k(modularity: dict[int, float], stability: dict[int, float], k: int,
             window: float = MODULARITY_WINDOW, gap: float = STABILITY_GAP) -> tuple[int, str]:
    """``k`` (:func:`flat_top_k`), unless a smaller k almost as modular reproduces much better.

    A smaller k is considered when its modularity is within ``window`` (relative) of the curve's
    best and its stability beats ``k``'s by more than ``gap``; the most stable of those is kept.
    Why: on data whose kinds have sub-groups, modularity keeps rising slowly past the kinds (the
    2,000-frame demo's horizon and nadir frames split in halves at k=8); such halves change from
    one resampled layout to the next, while the kinds come back every time.

    Parameters
    ----------
    modularity : dict
        ``{k: Q}`` (:func:`iss.clustering.metrics.modularity_sweep`).
    stability : dict
        ``{k: ARI}`` (:func:`stability_curve`).
    k : int
        The k to check (:func:`flat_top_k`).
    window, gap : float

    Returns
    -------
    k : int
    reason : str
        One sentence with the numbers.
    """
    top = max(modularity.values())
    base = stability.get(k)
    if base is None:
        return k, f"k={k} by modularity (its stability was not measured)"
    almost = set(near_best(modularity, window))
    better = {kk: s for kk, s in stability.items() if kk < k and kk in almost and s > base + gap}
    if not better:
        return k, (f"k={k} (modularity {modularity[k]:.3f}); no smaller k within {window:.0%} of the best "
                   f"modularity reproduces better than its {base:.3f} by more than {gap}")
    chosen = max(better, key=lambda kk: (better[kk], -kk))
    return chosen, (f"k={chosen}: within {window:.0%} of the best modularity ({modularity[chosen]:.3f} against "
                    f"{top:.3f}) and its clusters reproduce with ARI {better[chosen]:.3f} against "
                    f"{base:.3f} for k={k}")
