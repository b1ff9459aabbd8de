"""``method: kmeans``: k-means on the UMAP embedding, ``n_init`` starts (the best kept)."""

from __future__ import annotations

from sklearn.cluster import KMeans

from iss.clustering.final_steps import FinalStep


class KMeansStep(FinalStep):
    def estimator(self, n2d, k):
        return KMeans(n_clusters=k, n_init=n2d.n_init, random_state=n2d.random_state)
