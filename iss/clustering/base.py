"""What every clustering shares: parameter checks, canonical labels, save/load, ``assign``.

A clustering here is a scikit-learn estimator (``__init__`` stores parameters, ``fit``
validates them and returns ``self``, fitted state ends in ``_``) with four more methods:

- ``predict(X)`` -> labels ``(n,)`` for new latents;
- ``transform(X)`` -> plot coordinates ``(n, 2)``;
- ``reduce(X)`` -> the reduced features the final clustering works in (PCA or UMAP space;
  silhouettes are computed there);
- ``save(directory)`` / ``ClusteringBase.load(directory)``: ``params.json`` (readable
  parameters, type, library versions) and ``state.joblib`` (the fitted attributes).

Subclasses implement ``_fit(X)``, ``_reduce(X)``, ``_predict_reduced(R)`` and
``_coords(X, R)``; ``assign`` computes labels, reduced features and coordinates with a
single pass of the (possibly expensive) reduction.

Identical rows (copies of one picture) always share a cluster, for every clustering type:
``fit`` works on the distinct rows and gives every copy its original's label, reduced features
and coordinates (the copies would otherwise weigh as a dense clump and be split between
clusters); ``predict``, ``transform`` and ``assign`` do the same, and a row identical to a
fitted one gets exactly its fitted values. Asking for more clusters than there are distinct
rows is a ``ValueError`` that says so. Conditions a user should act on (HDBSCAN finding no
cluster) are :class:`ClusteringWarning` and are kept in ``fit_warnings_``.
"""

from __future__ import annotations

import hashlib
import json
import numbers
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import joblib
import numpy as np
import sklearn
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.utils.validation import check_is_fitted, validate_data
from threadpoolctl import threadpool_limits

from iss.artefacts import replace_folder

PARAMS_FILE = "params.json"
STATE_FILE = "state.joblib"


# --- parameter checks: each error names the parameter, its value and what was expected ----------

def check_int(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int in ``[low, high]`` or a ``ValueError`` naming ``name``."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if ok:
        value = int(value)
        ok = (low is None or value >= low) and (high is None or value <= high)
    if not ok:
        if low is not None and high is not None:
            expected = f"an int in [{low}, {high}]"
        elif low is not None:
            expected = f"an int >= {low}"
        elif high is not None:
            expected = f"an int <= {high}"
        else:
            expected = "an int"
        raise ValueError(f"{name}={value!r}: expected {expected}")
    return value


def check_float(name: str, value: Any, low: float | None = None, high: float | None = None,
                low_open: bool = False) -> float:
    """``value`` as a float in ``[low, high]`` (``(low, high]`` with ``low_open``) or a ``ValueError``."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)
    if ok:
        number = float(value)
        ok = (low is None or (number > low if low_open else number >= low)) and (high is None or number <= high)
    if not ok:
        left = "(" if low_open else "["
        expected = (f"a number in {left}{low:g}, {high:g}]" if low is not None and high is not None
                    else f"a number {'>' if low_open else '>='} {low:g}" if low is not None
                    else f"a number <= {high:g}" if high is not None else "a finite number")
        raise ValueError(f"{name}={value!r}: expected {expected}")
    return number


def check_choice(name: str, value: Any, choices: tuple) -> Any:
    """``value`` if it is one of ``choices``, else a ``ValueError`` listing them."""
    if value not in choices:
        raise ValueError(f"{name}={value!r}: expected one of {', '.join(map(repr, choices))}")
    return value


def check_n_clusters(n_clusters: Any, k_range: Any) -> tuple[int | str, tuple[int, int]]:
    """Check ``n_clusters`` (an int >= 2 or ``"auto"``) and ``k_range`` (``[low, high]``, 2 <= low <= high)."""
    if not (isinstance(k_range, (list, tuple)) and len(k_range) == 2):
        raise ValueError(f"k_range={k_range!r}: expected [low, high] with 2 <= low <= high")
    low = check_int("k_range[0]", k_range[0], 2)
    high = check_int("k_range[1]", k_range[1], low)
    if n_clusters == "auto":
        return "auto", (low, high)
    if isinstance(n_clusters, str):
        raise ValueError(f"n_clusters={n_clusters!r}: expected an int >= 2 or 'auto'")
    return check_int("n_clusters", n_clusters, 2), (low, high)


def check_enough_samples(name: str, n_samples: int, needed: int, why: str) -> None:
    """Raise a ``ValueError`` when ``n_samples`` (distinct rows) ``< needed``, saying which parameter needs them."""
    if n_samples < needed:
        raise ValueError(f"X has {n_samples} distinct samples (identical rows count once) but {name} needs at "
                         f"least {needed} ({why}); give more samples or lower {name.split('=')[0]}")


class ClusteringWarning(UserWarning):
    """A fitted clustering that needs the user's attention (e.g. HDBSCAN found no cluster); says what to change."""


def row_keys(X: np.ndarray) -> list[bytes]:
    """A 16-byte BLAKE2b digest of each row's float32 bytes: equal keys = identical rows."""
    X = np.ascontiguousarray(X, dtype=np.float32)
    return [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in X]


def distinct_rows(keys: list[bytes]) -> tuple[np.ndarray, np.ndarray, dict[bytes, int]]:
    """Distinct rows by key, in order of first appearance.

    Returns
    -------
    first : ndarray of int, shape (n_distinct,)
        Index of each distinct row's first appearance.
    inverse : ndarray of int, shape (n,)
        For each row, its distinct row (``X[first][inverse]`` equals ``X``).
    index : dict of bytes to int
        Key -> distinct row.
    """
    index: dict[bytes, int] = {}
    inverse = np.fromiter((index.setdefault(key, len(index)) for key in keys), dtype=np.int64, count=len(keys))
    first = np.empty(len(index), dtype=np.int64)
    first[inverse[::-1]] = np.arange(len(keys) - 1, -1, -1)  # the last write wins: the first appearance
    return first, inverse, index


def size_order_map(labels: np.ndarray) -> dict[int, int]:
    """Mapping old label -> new label so that 0 is the largest cluster, 1 the next... (-1, noise, stays).

    Ties are broken by the smallest old label, so the mapping is deterministic.
    """
    values, counts = np.unique(labels[labels >= 0], return_counts=True)
    order = sorted(zip(-counts, values))
    mapping = {int(old): new for new, (_, old) in enumerate(order)}
    mapping[-1] = -1
    return mapping


def apply_map(labels: np.ndarray, mapping: dict[int, int]) -> np.ndarray:
    """Relabel with ``mapping`` (vectorised); labels missing from it raise ``KeyError``."""
    labels = np.asarray(labels)
    keys = np.array(sorted(mapping), dtype=np.int64)
    vals = np.array([mapping[k] for k in keys], dtype=np.int64)
    pos = np.searchsorted(keys, labels)
    pos = np.clip(pos, 0, len(keys) - 1)
    if not np.all(keys[pos] == labels):
        missing = sorted(set(np.unique(labels).tolist()) - set(mapping))
        raise KeyError(f"labels {missing} have no mapping")
    return vals[pos]


@dataclass
class Assignment:
    """What a fitted clustering says about some latents.

    Attributes
    ----------
    labels : ndarray of int, shape (n,)
        Cluster labels (-1 = noise, hdbscan only).
    reduced : ndarray of float, shape (n, r)
        Features in the space the clusters were formed in.
    coords : ndarray of float, shape (n, 2), or None
        Plot coordinates (None from ``predict`` and ``reduce``, which do not compute them).
    """

    labels: np.ndarray
    reduced: np.ndarray
    coords: np.ndarray


class ClusteringBase(ClusterMixin, BaseEstimator):
    """Shared machinery; see the module docstring. Not used directly."""

    clustering_type: ClassVar[str] = ""

    # --- the scikit-learn part ------------------------------------------------------------------

    # Fitted attributes with one row per fitted sample: expanded from the distinct rows to every copy.
    _per_sample_attributes: ClassVar[tuple[str, ...]] = ("labels_", "reduced_", "embedding_")

    def fit(self, X, y=None):
        """Fit on latents ``X`` of shape (n_samples, n_features); returns ``self``.

        Fitted on the distinct rows of ``X``; copies get their original's label. ``y`` is ignored
        (present for scikit-learn compatibility).

        Raises
        ------
        ValueError
            A parameter out of range, too few distinct rows for a parameter, or fewer distinct rows
            than ``n_clusters``.
        """
        X = validate_data(self, X, dtype=np.float32, ensure_min_samples=2, ensure_min_features=1)
        keys = row_keys(X)
        first, inverse, index = distinct_rows(keys)
        asked = getattr(self, "n_clusters", None)
        if isinstance(asked, numbers.Integral) and len(first) < asked:
            raise ValueError(
                f"X has {len(X)} rows but only {len(first)} distinct ones, fewer than n_clusters={asked}: "
                f"identical pictures always share a cluster, so at most {len(first)} clusters can be formed; "
                f"lower n_clusters (or use 'auto'), or add more distinct pictures")
        distinct = X if len(first) == len(X) else X[first]
        self._check_params(distinct)
        self.fit_warnings_: list[str] = []
        # One BLAS/OpenMP thread: the steps work on small or low-dimensional arrays, where
        # spinning worker threads only cost (t-SNE of 600 points: 3 s with one thread, 49 s
        # with two on this loaded 2-core machine). The one big product, the exact neighbour
        # search, sets its own thread count (iss.neighbours.ExactNeighbours).
        with threadpool_limits(limits=1):
            self._fit(distinct)
        if len(first) < len(X):
            for name in self._per_sample_attributes:
                setattr(self, name, getattr(self, name)[inverse])
        self.n_distinct_ = int(len(first))
        self.fitted_rows_ = index  # row key -> fitted distinct row, whose copies come first at first_rows_
        self.first_rows_ = first
        return self

    def _warn(self, message: str) -> None:
        """Record a :class:`ClusteringWarning` in ``fit_warnings_`` and emit it."""
        self.fit_warnings_.append(message)
        warnings.warn(message, ClusteringWarning, stacklevel=4)

    def reduce(self, X) -> np.ndarray:
        """Reduced features ``(n, r)`` of new latents, in the space the clusters were formed in."""
        return self._by_distinct_rows(X, coords=False).reduced

    def predict(self, X) -> np.ndarray:
        """Cluster label of each row of ``X`` (n, n_features) -> int array (n,)."""
        return self._by_distinct_rows(X, coords=False).labels

    def transform(self, X) -> np.ndarray:
        """Plot coordinates ``(n, 2)`` of each row of ``X``."""
        return self._by_distinct_rows(X, coords=True).coords

    def assign(self, X) -> Assignment:
        """Labels, reduced features and plot coordinates of ``X`` in one pass."""
        return self._by_distinct_rows(X, coords=True)

    def _by_distinct_rows(self, X, coords: bool) -> Assignment:
        """Assign each distinct row of ``X`` once: a row identical to a fitted one gets its fitted values,
        the others go through the reduction; copies share the result."""
        X = self._check_X(X)
        keys = row_keys(X)
        first, inverse, _ = distinct_rows(keys)
        known = getattr(self, "fitted_rows_", {})  # (absent from clusterings saved by older versions)
        fitted = np.array([known.get(keys[i], -1) for i in first], dtype=np.int64)
        new = fitted < 0
        n_reduced = self.reduced_.shape[1]
        labels = np.empty(len(first), dtype=np.int64)
        reduced = np.empty((len(first), n_reduced), dtype=np.float32)
        xy = np.empty((len(first), 2), dtype=np.float32) if coords else None
        if (~new).any():
            rows = self.first_rows_[fitted[~new]]
            labels[~new], reduced[~new] = self.labels_[rows], self.reduced_[rows]
            if coords:
                xy[~new] = self.embedding_[rows]
        if new.any():
            unseen = X[first[new]]
            with threadpool_limits(limits=1):
                unseen_reduced = self._reduce(unseen)
                labels[new], reduced[new] = self._predict_reduced(unseen_reduced), unseen_reduced
                if coords:
                    xy[new] = self._coords(unseen, unseen_reduced)
        return Assignment(labels=labels[inverse], reduced=reduced[inverse],
                          coords=xy[inverse] if coords else None)

    def _check_X(self, X) -> np.ndarray:
        check_is_fitted(self, "labels_")
        return validate_data(self, X, dtype=np.float32, reset=False)

    # --- to implement -------------------------------------------------------------------------

    def _check_params(self, X: np.ndarray) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _fit(self, X: np.ndarray) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _reduce(self, X: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _predict_reduced(self, reduced: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _coords(self, X: np.ndarray, reduced: np.ndarray | None) -> np.ndarray:  # pragma: no cover - abstract
        """Plot coordinates of ``X``; ``reduced`` is ``self._reduce(X)`` when already computed, else None."""
        raise NotImplementedError

    # --- persistence --------------------------------------------------------------------------

    def save(self, directory: str | Path) -> Path:
        """Write ``params.json`` and ``state.joblib`` into ``directory`` (replaced atomically).

        Returns
        -------
        Path
            The directory.
        """
        check_is_fitted(self, "labels_")
        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        params = self.get_params(deep=False)
        record = {
            "clustering_type": self.clustering_type,
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
            "params": params,
            "n_features_in": int(self.n_features_in_),
            "n_samples_fit": int(len(self.labels_)),
            "n_clusters": int(self.n_clusters_),
            "versions": _library_versions(),
        }
        state = {k: v for k, v in vars(self).items() if k not in params}
        with replace_folder(directory) as tmp:  # a crash never leaves half a model
            (tmp / PARAMS_FILE).write_text(json.dumps(record, indent=2, default=_json_default) + "\n")
            joblib.dump(state, tmp / STATE_FILE)  # uncompressed: zlib cost 1.7 s on 14,000 latents
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> "ClusteringBase":
        """A fitted clustering saved by :meth:`save` (``ClusteringBase.load`` picks the right class)."""
        directory = Path(directory)
        params_file = directory / PARAMS_FILE
        if not params_file.is_file():
            raise FileNotFoundError(f"{params_file} not found: {directory} is not a saved clustering "
                                    f"(save one with estimator.save(directory))")
        record = json.loads(params_file.read_text())
        from iss.clustering import clustering_class  # the registry of types lives in the package

        klass = clustering_class(record["clustering_type"])
        if cls is not ClusteringBase and not issubclass(klass, cls):
            raise TypeError(f"{directory} holds a {record['clustering_type']!r} clustering, not a {cls.__name__}")
        saved_sklearn = record.get("versions", {}).get("scikit-learn")
        if saved_sklearn and saved_sklearn != sklearn.__version__:
            warnings.warn(f"{directory} was saved with scikit-learn {saved_sklearn}, this is "
                          f"{sklearn.__version__}: refit it if predictions look wrong", stacklevel=2)
        params = record["params"]
        if "k_range" in params and isinstance(params["k_range"], list):
            params["k_range"] = tuple(params["k_range"])
        estimator = klass(**params)
        klass._before_load()
        estimator.__dict__.update(joblib.load(directory / STATE_FILE))
        return estimator

    @classmethod
    def _before_load(cls) -> None:
        """Hook run before unpickling the state (UMAP types import umap the fast way here)."""


def _library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("scikit-learn", "numpy", "scipy", "umap-learn", "pynndescent", "numba"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
