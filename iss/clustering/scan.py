"""SCAN's clustering step on fixed features: small softmax heads trained so that neighbours agree.

Van Gansbeke et al., "SCAN: Learning to Classify Images without Labels" (ECCV 2020), step 2,
with the features fixed instead of fine-tuned. Each head is a one-hidden-layer perceptron
that maps a feature vector (here a point of the UMAP embedding) to ``k`` cluster
probabilities. Training minimises, over pairs of a point and one of its ``n_neighbors``
nearest neighbours (found in a space of the caller's choice, the autoencoder latents in
``n2d``)::

    loss = -mean(log <p(point), p(neighbour)>) - entropy_weight * entropy(mean p)

The first term asks neighbours to fall in the same cluster; the second asks the clusters to
be used evenly, which is what keeps a mixture from spending two clusters on one class that
forms two islands while merging three neighbouring classes into one blob (Fashion-MNIST's
bags, and its pullovers, coats and shirts). It assumes clusters of comparable sizes: lower
``entropy_weight`` (or use ``kmeans``/``gmm``) when they are not.

Several heads start from different random weights and train together. The kept head is,
among the heads whose final loss is within 0.01 of the lowest, the one that agrees most with
the others (highest mean adjusted Rand index): steadier than the single lowest loss, since two
heads' losses can differ by 0.0001 while their partitions differ by 8 points of accuracy.

Plain NumPy (Adam, hand-written gradients of a two-layer network): the clustering step stays
free of TensorFlow, which keeps its cold start short, and the state pickles with joblib.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.metrics import adjusted_rand_score
from sklearn.utils.validation import check_is_fitted, validate_data

from iss.clustering.base import check_enough_samples, check_float, check_int

EPS = 1e-8
# Heads whose final losses differ by less than this (nats) count as equally good: such
# differences come from the stochastic training, not from better partitions.
LOSS_TOLERANCE = 0.01


class SCANClusterer(ClusterMixin, BaseEstimator):
    """Neighbour-consistent, evenly used clusters of fixed features (SCAN's clustering step).

    Parameters
    ----------
    n_clusters : int, default=10
    n_neighbors : int, default=50
        Neighbours per point that should share its cluster.
    entropy_weight : float, default=5.0
        Weight of the even-use term (SCAN's default).
    n_heads : int, default=16
        Heads trained from different random starts; one is kept (see the module docstring).
    hidden : int, default=64
        Units of each head's hidden layer.
    min_epochs : int, default=10
    min_steps : int, default=700
        Training runs ``max(min_epochs, min_steps / batches per epoch)`` epochs, so that small
        inputs still get enough updates.
    batch_size : int, default=1024
    learning_rate : float, default=1e-3
    random_state : int, default=0

    Attributes
    ----------
    labels_ : ndarray of int, shape (n_samples,)
    head_losses_ : ndarray, shape (n_heads,)
        Final loss of every head on all points and all their neighbours.
    head_ : int
        The kept head.
    weights_ : list of ndarray
        The kept head: ``[W1 (1, d, hidden), b1 (1, hidden), W2 (1, hidden, k), b2 (1, k)]``.
    mean_, scale_ : ndarray, shape (n_features,)
        Standardisation of the features.
    """

    def __init__(self, n_clusters=10, n_neighbors=50, entropy_weight=5.0, n_heads=16, hidden=64, min_epochs=10,
                 min_steps=700, batch_size=1024, learning_rate=1e-3, random_state=0):
        self.n_clusters = n_clusters
        self.n_neighbors = n_neighbors
        self.entropy_weight = entropy_weight
        self.n_heads = n_heads
        self.hidden = hidden
        self.min_epochs = min_epochs
        self.min_steps = min_steps
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.random_state = random_state

    def fit(self, X, y=None, neighbours=None):
        """Train the heads on ``X`` (n, d) and keep one.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
            What the heads see (``n2d``: the UMAP embedding).
        y : ignored
        neighbours : ndarray of int, shape (n_samples, >= n_neighbors), optional
            Each point's nearest neighbours (itself excluded), nearest first; only the first
            ``n_neighbors`` columns are used. Default: exact neighbours in ``X``.
        """
        X = validate_data(self, X, dtype=np.float32, ensure_min_samples=2)
        self._check_params(len(X))
        if neighbours is None:
            from iss.clustering.umap_reducer import ExactKNNIndex

            neighbours = ExactKNNIndex(X, "euclidean").others(self.n_neighbors)
        neighbours = np.asarray(neighbours)
        if neighbours.ndim != 2 or len(neighbours) != len(X) or neighbours.shape[1] < self.n_neighbors:
            raise ValueError(f"neighbours has shape {neighbours.shape}: expected ({len(X)}, >= {self.n_neighbors}) "
                             f"indices of each sample's nearest neighbours")
        neighbours = neighbours[:, :self.n_neighbors].astype(np.int64)
        self.mean_ = X.mean(0)
        self.scale_ = X.std(0) + EPS
        x = (X - self.mean_) / self.scale_
        rng = np.random.default_rng(self.random_state)
        heads = _Heads(x.shape[1], self.hidden, self.n_clusters, self.n_heads, rng)
        adam = _Adam(heads.params, self.learning_rate)
        n, batch = len(x), min(self.batch_size, len(x))
        batches = math.ceil(n / batch)
        for _ in range(max(self.min_epochs, math.ceil(self.min_steps / batches))):
            order = rng.permutation(n)
            partner = neighbours[order, rng.integers(0, self.n_neighbors, n)]
            for start in range(0, n, batch):
                adam.step(heads.gradients(x[order[start:start + batch]], x[partner[start:start + batch]],
                                          self.entropy_weight))
        probs = heads.probabilities(x)  # (n, heads, k)
        self.head_losses_ = _full_losses(probs, neighbours, self.entropy_weight)
        self.head_ = _medoid_of_best(probs.argmax(-1), self.head_losses_)
        self.weights_ = [p[self.head_:self.head_ + 1].copy() for p in heads.params]
        self.labels_ = probs[:, self.head_].argmax(-1)
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Cluster probabilities ``(n, n_clusters)`` of the kept head."""
        check_is_fitted(self, "weights_")
        X = validate_data(self, X, dtype=np.float32, reset=False)
        return _forward(self.weights_, (X - self.mean_) / self.scale_)[1][:, 0]

    def predict(self, X) -> np.ndarray:
        """Cluster label ``(n,)`` of each row of ``X``."""
        return self.predict_proba(X).argmax(-1)

    def _check_params(self, n_samples: int) -> None:
        check_int("n_clusters", self.n_clusters, 2)
        check_int("n_neighbors", self.n_neighbors, 1)
        check_float("entropy_weight", self.entropy_weight, 0.0)
        check_int("n_heads", self.n_heads, 1)
        check_int("hidden", self.hidden, 1)
        check_int("min_epochs", self.min_epochs, 1)
        check_int("min_steps", self.min_steps, 1)
        check_int("batch_size", self.batch_size, 2)
        check_float("learning_rate", self.learning_rate, 0.0, low_open=True)
        check_int("random_state", self.random_state, 0)
        check_enough_samples(f"n_neighbors={self.n_neighbors}", n_samples, self.n_neighbors + 1,
                             "each sample needs that many neighbours")


class _Heads:
    """``n_heads`` independent two-layer perceptrons evaluated together (einsum over the head axis)."""

    def __init__(self, n_in: int, hidden: int, k: int, n_heads: int, rng: np.random.Generator):
        def glorot(fan_in, fan_out):  # Keras' default initialiser
            limit = math.sqrt(6.0 / (fan_in + fan_out))
            return rng.uniform(-limit, limit, (n_heads, fan_in, fan_out)).astype(np.float32)

        self.params = [glorot(n_in, hidden), np.zeros((n_heads, hidden), np.float32),
                       glorot(hidden, k), np.zeros((n_heads, k), np.float32)]

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return _forward(self.params, x)

    def probabilities(self, x: np.ndarray, chunk: int = 8192) -> np.ndarray:
        return np.concatenate([self.forward(x[i:i + chunk])[1] for i in range(0, len(x), chunk)])

    def gradients(self, anchors: np.ndarray, partners: np.ndarray, entropy_weight: float) -> list[np.ndarray]:
        """Gradients of the summed heads' loss on a batch of (point, neighbour) pairs."""
        n = len(anchors)
        hid_a, p_a = self.forward(anchors)
        hid_b, p_b = self.forward(partners)
        agreement = (p_a * p_b).sum(-1, keepdims=True) + EPS  # (n, heads, 1)
        grad_a = -p_b / agreement / n
        grad_b = -p_a / agreement / n
        mean = p_a.mean(0)  # d(-w * entropy(mean))/dp_a = w * (log mean + 1) / n
        grad_a += entropy_weight * (np.log(mean + EPS) + 1.0) / n
        grads = [np.zeros_like(p) for p in self.params]
        for x, hidden, p, grad_p in ((anchors, hid_a, p_a, grad_a), (partners, hid_b, p_b, grad_b)):
            logits = p * (grad_p - (grad_p * p).sum(-1, keepdims=True))  # through the softmax
            grads[2] += np.einsum("nhu,nhk->huk", hidden, logits)
            grads[3] += logits.sum(0)
            back = np.einsum("nhk,huk->nhu", logits, self.params[2]) * (hidden > 0)
            grads[0] += np.einsum("nd,nhu->hdu", x, back)
            grads[1] += back.sum(0)
        return grads


class _Adam:
    """Adam (Keras' defaults: beta 0.9 / 0.999, epsilon 1e-7) updating ``params`` in place."""

    def __init__(self, params: list[np.ndarray], learning_rate: float):
        self.params, self.learning_rate, self.t = params, learning_rate, 0
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]

    def step(self, grads: list[np.ndarray]) -> None:
        self.t += 1
        rate = self.learning_rate * math.sqrt(1 - 0.999 ** self.t) / (1 - 0.9 ** self.t)
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            m += 0.1 * (g - m)
            v += 0.001 * (g * g - v)
            p -= rate * m / (np.sqrt(v) + 1e-7)


def _forward(params: list[np.ndarray], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(hidden (n, heads, h), probabilities (n, heads, k))`` of ``x`` (n, d) through every head."""
    w1, b1, w2, b2 = params
    hidden = np.maximum(np.einsum("nd,hdu->nhu", x, w1) + b1, 0.0)
    return hidden, _softmax(np.einsum("nhu,huk->nhk", hidden, w2) + b2)


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _full_losses(probs: np.ndarray, neighbours: np.ndarray, entropy_weight: float,
                 chunk: int = 2048) -> np.ndarray:
    """Each head's loss over all points and all their neighbours: ``(heads,)``."""
    total = np.zeros(probs.shape[1])
    for i in range(0, len(probs), chunk):
        agreement = np.einsum("nhk,njhk->njh", probs[i:i + chunk], probs[neighbours[i:i + chunk]])
        total -= np.log(agreement + EPS).sum((0, 1))
    mean = probs.mean(0)
    entropy = -(mean * np.log(mean + EPS)).sum(-1)
    return total / neighbours.size - entropy_weight * entropy


def _medoid_of_best(labels: np.ndarray, losses: np.ndarray, tolerance: float = LOSS_TOLERANCE) -> int:
    """Index of the head that agrees most with the others among those within ``tolerance`` of the lowest loss.

    ``labels`` is ``(n, heads)``."""
    better = np.flatnonzero(losses <= losses.min() + tolerance)
    agreement = [np.mean([adjusted_rand_score(labels[:, a], labels[:, b]) for b in better if b != a] or [1.0])
                 for a in better]
    return int(better[int(np.argmax(agreement))])
