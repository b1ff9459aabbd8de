"""An n2d final step written the way the README's developer guide says (``method: birch``):
scikit-learn's BIRCH on the UMAP embedding. ``test_final_step_extending.py`` registers and fits it."""

from sklearn.cluster import Birch

from iss.clustering.final_steps import FinalStep


class BirchStep(FinalStep):
    """BIRCH's clustering-feature tree, its subclusters merged into ``k`` clusters."""

    def estimator(self, n2d, k):
        return Birch(n_clusters=k, threshold=0.3)
