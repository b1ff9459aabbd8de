"""n2d's final step (``clustering.n2d.method``): the clusterer of the UMAP embedding.

Each step is a :class:`FinalStep` that builds a scikit-learn clusterer (``fit(X)`` returns it
fitted, ``predict(X)`` gives labels) from ``k`` and the parameters of the
:class:`~iss.clustering.n2d.N2DClustering` it belongs to. :data:`FINAL_STEPS` maps each method
name to its step, one module each; a new one is a :class:`FinalStep` subclass in a new module plus
one line in :data:`FINAL_STEPS` (see the README's developer guide).

``kmeans`` (:mod:`.kmeans`)
    :class:`sklearn.cluster.KMeans`, ``n_init`` starts.
``gmm`` (:mod:`.gmm`)
    :class:`sklearn.mixture.GaussianMixture` with ``covariance_type``, ``n_init`` starts.
``scan`` (:mod:`.scan`)
    :class:`~iss.clustering.scan.SCANClusterer`: ``n_init`` heads trained so that each latent's
    ``scan_neighbors`` nearest latents share its cluster (weight of even cluster use:
    ``entropy_weight``).

This module imports nothing heavy: the config schema reads :data:`FINAL_STEPS` to validate
``clustering.n2d.method``, and a step's module (scikit-learn...) is imported when it is used.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

from iss.registries import load_entry

if TYPE_CHECKING:
    import numpy as np

# clustering.n2d.method -> "module:class" of its FinalStep; N2DClustering's checks and the config
# schema list these keys
FINAL_STEPS: dict[str, str] = {
    "kmeans": "iss.clustering.final_steps.kmeans:KMeansStep",
    "gmm": "iss.clustering.final_steps.gmm:GaussianMixtureStep",
    "scan": "iss.clustering.final_steps.scan:SCANStep",
}


class FinalStep(ABC):
    """How n2d clusters its UMAP embedding into ``k`` clusters.

    ``n2d`` below is the :class:`~iss.clustering.n2d.N2DClustering` being fitted: a step reads its
    parameters (``n_init``, ``random_state``, ...) from it, so that n2d's parameters stay the one
    place they are set.
    """

    #: whether :meth:`fit` needs each latent's nearest latents (``n2d.scan_neighbors`` of them)
    needs_neighbours: ClassVar[bool] = False

    def check(self, n2d, X: np.ndarray) -> None:
        """Raise ``ValueError`` if ``n2d``'s parameters or the latents ``X`` do not suit this step."""

    @abstractmethod
    def estimator(self, n2d, k: int):
        """An unfitted scikit-learn clusterer of ``k`` clusters (with ``fit`` and ``predict``)."""

    def fit(self, n2d, k: int, features: np.ndarray, neighbours: np.ndarray | None = None):
        """:meth:`estimator` fitted on the UMAP ``features`` (n, n_components)."""
        return self.estimator(n2d, k).fit(features)


def final_step(method: str) -> FinalStep:
    """The step registered for ``method`` in :data:`FINAL_STEPS`."""
    return load_entry(FINAL_STEPS[method])()
