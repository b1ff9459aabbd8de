"""The quality benchmark's recipe runs end to end on a small synthetic set (the real one is `make bench-quality`)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import quality

pytestmark = pytest.mark.slow


def _strokes(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` noisy 28x28 uint8 pictures of two kinds (a vertical or a horizontal bar), and their kinds."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(40, 20, (n, 28, 28, 1))
    x[y == 1, 4:24, 12:16] = 230
    x[y == 0, 12:16, 4:24] = 230
    return np.clip(x, 0, 255).astype(np.uint8), y


@pytest.mark.parametrize("augment", [{}, {"shift": 0.1, "rotation": 0.04, "zoom": 0.1}])
def test_recipe_trains_encodes_and_clusters(augment):
    x, y = _strokes(400)
    latents, record = quality.train_and_encode(x, epochs=5, seed=0, **augment)
    assert latents.shape == (400, quality.RECIPE["autoencoder"]["params"]["latent_dim"])
    assert np.isfinite(latents).all() and np.isfinite(record["final_loss"])
    assert record["shift"] == augment.get("shift", 0.0)
    labels = quality.n2d_fit(latents, 2, seed=0).labels_
    assert quality.scored(y, labels, 0.0)["acc"] > 0.9  # two bar directions are easy to tell apart
