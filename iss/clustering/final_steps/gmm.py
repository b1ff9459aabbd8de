"""``method: gmm``: a Gaussian mixture (the N2D paper's choice) with ``covariance_type``, ``n_init`` starts."""

from __future__ import annotations

from sklearn.mixture import GaussianMixture

from iss.clustering.final_steps import FinalStep


class GaussianMixtureStep(FinalStep):
    def estimator(self, n2d, k):
        return GaussianMixture(n_components=k, covariance_type=n2d.covariance_type, n_init=n2d.n_init,
                               random_state=n2d.random_state)
