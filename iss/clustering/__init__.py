"""Clusterings of the latents, as scikit-learn estimators.

Types (``clustering.<type>`` section of the config):

- ``classical``: PCA, k-means with many centres, agglomerative clustering of the centres; t-SNE plot.
- ``advanced``: consensus k-means over random k, DBSCAN on the consensus centres.
- ``n2d``: UMAP, then k-means, a Gaussian mixture or SCAN heads.
- ``hdbscan``: UMAP, then HDBSCAN; noise is label -1.

``make_clustering(type, **params)`` builds one (the config section's nested ``umap:``
mapping is flattened, ``version`` is the registry's and ignored here);
:func:`iss.clustering.registry.run_clustering` fits one on a model's latents and records
the run. Importing this package is cheap: umap is imported (without TensorFlow, with numba
caching, see :mod:`iss.clustering.umap_compat`) only when a UMAP type is built.
"""

from __future__ import annotations

import importlib

CLUSTERING_TYPES = {
    "classical": ("iss.clustering.classical", "ClassicalClustering"),
    "advanced": ("iss.clustering.advanced", "AdvancedClustering"),
    "n2d": ("iss.clustering.n2d", "N2DClustering"),
    "hdbscan": ("iss.clustering.hdbscan", "HDBSCANClustering"),
}
# keys of a config section that are not estimator parameters
NON_ESTIMATOR_KEYS = ("version",)


def clustering_class(clustering_type: str):
    """The estimator class of a clustering type."""
    if clustering_type not in CLUSTERING_TYPES:
        raise ValueError(f"clustering_type={clustering_type!r}: expected one of "
                         f"{', '.join(map(repr, CLUSTERING_TYPES))}")
    module, name = CLUSTERING_TYPES[clustering_type]
    return getattr(importlib.import_module(module), name)


def estimator_params(clustering_type: str, section: dict) -> dict:
    """Estimator keyword arguments from a ``clustering.<type>`` config section.

    Drops ``version``, flattens a nested ``umap: {...}`` mapping into the UMAP parameters,
    turns a ``k_range`` list into a tuple, and rejects unknown keys by name.
    """
    params = {k: v for k, v in section.items() if k not in NON_ESTIMATOR_KEYS}
    nested = params.pop("umap", None) or {}
    if not isinstance(nested, dict):
        raise ValueError(f"clustering.{clustering_type}.umap: expected a mapping, got {nested!r}")
    params.update(nested)
    if isinstance(params.get("k_range"), list):
        params["k_range"] = tuple(params["k_range"])
    klass = clustering_class(clustering_type)
    valid = set(klass().get_params())
    unknown = sorted(set(params) - valid)
    if unknown:
        raise ValueError(f"clustering.{clustering_type}: unknown parameter(s) {', '.join(unknown)}; "
                         f"expected some of {', '.join(sorted(valid))}")
    return params


def make_clustering(clustering_type: str, **params):
    """A clustering estimator of type ``clustering_type`` with ``params`` (config-section style).

    Parameters
    ----------
    clustering_type : {"classical", "advanced", "n2d", "hdbscan"}
    **params
        Estimator parameters; a ``clustering.<type>`` config section can be passed as is.

    Examples
    --------
    >>> make_clustering("n2d", n_clusters=6, umap={"n_neighbors": 20}).n_neighbors
    20
    """
    return clustering_class(clustering_type)(**estimator_params(clustering_type, params))


__all__ = ["CLUSTERING_TYPES", "clustering_class", "estimator_params", "make_clustering"]
