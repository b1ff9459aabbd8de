"""Fixtures shared by the clustering tests."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_blobs

N_BLOBS = 5


@pytest.fixture(scope="module")
def blobs():
    """400 training and 100 new latents around 5 well separated centres (16-d): ``X, y, X_new, y_new``."""
    X, y = make_blobs(500, 16, centers=N_BLOBS, cluster_std=1.0, center_box=(-20, 20), random_state=3)
    return X[:400].astype(np.float32), y[:400], X[400:].astype(np.float32), y[400:]
