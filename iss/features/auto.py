"""``features: auto``: choose the autoencoder's latents or the pictures' pixels, per collection, by
how reproducible the clusters they give are.

Why stability. On a few hundred real ISS frames, UMAP + k-means on the thumbnails' pixels found
the same clusters on every UMAP seed (ARI 1.00 against the kinds), while on the latents of an
autoencoder trained on those frames the clusters changed with the seed (0.55-0.78): with little
to learn from, the autoencoder's space has no stable structure. On thousands of frames the
autoencoder's clusters are the better ones (demo: 0.85 against 0.70). Clusters that are really in
the data come back when the data are resampled and the layout re-seeded; clusters that an
unstable representation makes up do not (clustering stability: Ben-Hur, Elisseeff & Guyon, PSB
2002; Lange et al., Neural Computation 16, 2004; :mod:`iss.clustering.stability`).

The measurement, for each candidate, on the same random sample of at most ``sample`` pictures:
``n_runs`` times, a random ``subsample`` share of them, a 2-D UMAP with another seed, k-means; k
is chosen once per candidate by modularity (:func:`iss.clustering.metrics.choose_k`) on its
first run. The stability is the mean adjusted Rand index between the runs' labels on the
pictures two runs share.

The rule: the autoencoder when its stability exceeds the pixels' by more than ``margin``,
otherwise the pixels: the pictures themselves are the reference that a learnt representation
has to beat, never the other way round.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from iss.clustering.metrics import choose_k
from iss.clustering.stability import kmeans_labels, mean_pairwise_ari, resampled_runs
from iss.config_schema import AutoFeatures

log = logging.getLogger(__name__)

def cluster_stability(X: np.ndarray, k_range=(2, 12), n_runs: int = 3, subsample: float = 0.8, n_neighbors: int = 20,
                      n_epochs: int | None = 200, random_state: int = 0) -> dict:
    """How reproducible UMAP + k-means clusters of ``X`` are under resampling and re-seeding.

    Parameters
    ----------
    X : ndarray, shape (n, d)
    k_range : (int, int)
        k is chosen in it by modularity on the first run.
    n_runs : int, default=3
        Clusterings compared (each on its own subsample and UMAP seed); at least 2.
    subsample : float, default=0.8
        Share of the pictures in each run.
    n_neighbors, n_epochs : UMAP parameters.
    random_state : int

    Returns
    -------
    dict
        ``stability`` (mean pairwise ARI on shared pictures, in [-1, 1]), ``k``, ``pairs`` (the
        pairwise ARIs), ``k_curve`` (modularity by k of the first run), ``seconds``.

    Raises
    ------
    ValueError
        Bad ``n_runs`` or ``subsample`` (named as ``features.auto`` keys), or too few pictures.
    """
    started = time.perf_counter()
    try:
        runs = resampled_runs(X, n_runs, subsample, None, n_neighbors, n_epochs=n_epochs, random_state=random_state)
    except ValueError as exc:
        raise ValueError(f"features.auto: {exc}") from None
    rows, embedding = runs[0]
    high = min(k_range[1], len(rows) - 1)
    k, curve = choose_k(embedding, range(min(k_range[0], high), high + 1),
                        lambda kk: kmeans_labels(embedding, kk, random_state), "modularity",
                        graph_features=np.asarray(X, dtype=np.float32)[rows])
    stability, pairs = mean_pairwise_ari([(r, kmeans_labels(e, k, random_state)) for r, e in runs])
    return {"stability": round(stability, 4), "k": int(k), "pairs": [round(p, 4) for p in pairs],
            "k_curve": {str(kk): round(v, 4) for kk, v in curve.items()},
            "seconds": round(time.perf_counter() - started, 1)}


def choose_features(candidates: dict[str, np.ndarray], settings: dict | None = None) -> tuple[str, dict]:
    """Pick ``"autoencoder"`` or ``"pixels"`` among ``candidates`` by cluster stability (module docstring).

    Parameters
    ----------
    candidates : dict
        ``{"pixels": (n, d1), "autoencoder": (n, d2)}``, rows in the same picture order; without
        ``"autoencoder"`` the pixels are chosen without measuring.
    settings : dict, optional
        ``features.auto`` keys; those left out take their default (:class:`iss.config_schema.AutoFeatures`).

    Returns
    -------
    chosen : str
    record : dict
        ``chosen``, ``reason`` (a sentence with the numbers), ``scores`` (per candidate, from
        :func:`cluster_stability`), ``settings``, ``n_measured``.
    """
    settings = {**AutoFeatures().model_dump(), **(settings or {})}
    unknown = sorted(set(settings) - set(AutoFeatures.model_fields))
    if unknown:
        raise ValueError(f"features.auto: unknown key(s) {', '.join(unknown)}; expected some of "
                         f"{', '.join(sorted(AutoFeatures.model_fields))}")
    if "pixels" not in candidates:
        raise ValueError("features: auto needs the pixel features as a candidate")
    record = {"settings": settings}
    if "autoencoder" not in candidates:
        record.update(chosen="pixels", reason="no autoencoder latents to compare with: the pixels are used")
        return "pixels", record
    n = len(candidates["pixels"])
    if any(len(v) != n for v in candidates.values()):
        raise ValueError(f"features: auto candidates have different numbers of pictures "
                         f"({ {k: len(v) for k, v in candidates.items()} })")
    rng = np.random.default_rng(int(settings["random_state"]))
    rows = np.sort(rng.choice(n, size=min(n, int(settings["sample"])), replace=False))
    scores = {}
    for name in ("pixels", "autoencoder"):
        scores[name] = cluster_stability(
            candidates[name][rows], tuple(settings["k_range"]), int(settings["n_runs"]), float(settings["subsample"]),
            int(settings["n_neighbors"]), settings["n_epochs"], int(settings["random_state"]))
        log.info("features auto: %s clusters reproduce with ARI %.3f (k=%d, %.0f s)", name,
                 scores[name]["stability"], scores[name]["k"], scores[name]["seconds"])
    gain = scores["autoencoder"]["stability"] - scores["pixels"]["stability"]
    chosen = "autoencoder" if gain > float(settings["margin"]) else "pixels"
    verdict = ("more reproducible than the pixels' by more than the margin" if chosen == "autoencoder"
               else "not more reproducible than the pixels' by more than the margin")
    reason = (f"the autoencoder's clusters reproduce with ARI {scores['autoencoder']['stability']:.3f} against "
              f"{scores['pixels']['stability']:.3f} for the pixels' ({gain:+.3f}; margin {settings['margin']}): "
              f"{verdict}, so the {'autoencoder latents' if chosen == 'autoencoder' else 'pixels'} are used")
    record.update(chosen=chosen, reason=reason, scores=scores, n_measured=int(len(rows)))
    return chosen, record
