"""``method: scan``: ``n_init`` SCAN heads (:mod:`iss.clustering.scan`) trained so that each latent's
``scan_neighbors`` nearest latents share its cluster, clusters used evenly (``entropy_weight``)."""

from __future__ import annotations

from iss.clustering.base import check_enough_samples
from iss.clustering.final_steps import FinalStep
from iss.clustering.scan import SCANClusterer


class SCANStep(FinalStep):
    needs_neighbours = True

    def check(self, n2d, X):
        check_enough_samples(f"scan_neighbors={n2d.scan_neighbors}", len(X), n2d.scan_neighbors + 1,
                             "each sample needs that many neighbours")

    def estimator(self, n2d, k):
        return SCANClusterer(n_clusters=k, n_neighbors=n2d.scan_neighbors, entropy_weight=n2d.entropy_weight,
                             n_heads=n2d.n_init, random_state=n2d.random_state)

    def fit(self, n2d, k, features, neighbours=None):
        return self.estimator(n2d, k).fit(features, neighbours=neighbours)
