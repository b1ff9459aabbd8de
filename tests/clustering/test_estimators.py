"""The four clusterings as estimators: recovery of separated blobs, reproducibility, save/load,
automatic k, parameter errors. Each type is fitted once per module on small blobs (UMAP's
numba code comes from the on-disk cache after the first run ever)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.metrics import adjusted_rand_score

from iss.clustering import CLUSTERING_TYPES, estimator_params, make_clustering
from iss.clustering.base import ClusteringBase
from tests.clustering.conftest import N_BLOBS

# small, fast settings per type for 400 latents of 16 dimensions
PARAMS = {
    "n2d": dict(n_clusters=N_BLOBS, n_neighbors=10, n_epochs=100, n_init=3),
    "hdbscan": dict(min_cluster_size=20, n_neighbors=10, n_epochs=100),
    "classical": dict(n_clusters=N_BLOBS, pca_components=5, kmeans_clusters=20, perplexity=20.0),
    "advanced": dict(pca_components=5, k_low=8, k_high=16, n_runs=5, threshold=5, eps=6.0, min_samples=1),
}


@pytest.fixture(scope="module")
def fitted(blobs):
    """One fitted estimator per type (shared by the tests of this module)."""
    X, _, _, _ = blobs
    return {t: make_clustering(t, **PARAMS[t]).fit(X) for t in CLUSTERING_TYPES}


@pytest.mark.parametrize("clustering_type", list(CLUSTERING_TYPES))
def test_separated_blobs_are_recovered(fitted, blobs, clustering_type):
    X, y, X_new, y_new = blobs
    model = fitted[clustering_type]
    assert adjusted_rand_score(y, model.labels_) >= 0.95
    assert model.n_clusters_ == N_BLOBS
    assert adjusted_rand_score(y_new, model.predict(X_new)) >= 0.95
    # fitted attributes end in "_" and have the documented shapes
    assert model.labels_.shape == (400,)
    assert model.embedding_.shape == (400, 2)
    assert model.reduced_.shape[0] == 400
    assert model.transform(X_new).shape == (100, 2)
    # labels are numbered by decreasing cluster size
    sizes = np.bincount(model.labels_[model.labels_ >= 0])
    assert list(sizes) == sorted(sizes, reverse=True)


@pytest.mark.parametrize("clustering_type", list(CLUSTERING_TYPES))
def test_same_random_state_gives_identical_labels(fitted, blobs, clustering_type):
    X, _, X_new, _ = blobs
    again = clone(fitted[clustering_type]).fit(X)
    np.testing.assert_array_equal(again.labels_, fitted[clustering_type].labels_)
    np.testing.assert_array_equal(again.predict(X_new), fitted[clustering_type].predict(X_new))


@pytest.mark.parametrize("clustering_type", list(CLUSTERING_TYPES))
def test_save_then_load_predicts_the_same(fitted, blobs, clustering_type, tmp_path):
    _, _, X_new, _ = blobs
    model = fitted[clustering_type]
    folder = model.save(tmp_path / clustering_type)
    assert (folder / "params.json").is_file() and (folder / "state.joblib").is_file()
    loaded = ClusteringBase.load(folder)
    assert type(loaded) is type(model)
    assert loaded.get_params() == model.get_params()
    np.testing.assert_array_equal(loaded.labels_, model.labels_)
    np.testing.assert_array_equal(loaded.predict(X_new), model.predict(X_new))
    np.testing.assert_allclose(loaded.transform(X_new), model.transform(X_new), rtol=1e-5, atol=1e-5)
    # saving again over the same folder replaces it
    model.save(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["params.json", "state.joblib"]


def test_load_checks_the_class_and_the_folder(fitted, tmp_path):
    folder = fitted["n2d"].save(tmp_path / "n2d")
    from iss.clustering.classical import ClassicalClustering

    with pytest.raises(TypeError, match="n2d"):
        ClassicalClustering.load(folder)
    with pytest.raises(FileNotFoundError, match="params.json"):
        ClusteringBase.load(tmp_path / "nothing")


def test_assign_matches_predict_and_transform(fitted, blobs):
    _, _, X_new, _ = blobs
    model = fitted["classical"]
    result = model.assign(X_new)
    np.testing.assert_array_equal(result.labels, model.predict(X_new))
    np.testing.assert_allclose(result.coords, model.transform(X_new))
    assert result.reduced.shape == (100, 5)


def test_classical_keeps_the_centres_dendrogram(fitted):
    model = fitted["classical"]
    assert model.linkage_.shape == (19, 4)  # kmeans_clusters - 1 merges
    assert model.centre_labels_.shape == (20,)
    # t-SNE is not inductive: a training latent is placed at its own fitted coordinates
    np.testing.assert_allclose(model.transform(np.asarray(model.pca_.inverse_transform(model.reduced_[:5]))),
                               model.embedding_[:5], atol=1e-4)


def test_n2d_with_more_components_has_a_2d_plot(blobs):
    X, y, X_new, _ = blobs
    model = make_clustering("n2d", **{**PARAMS["n2d"], "n_components": 4, "method": "gmm"}).fit(X)
    assert model.reduced_.shape == (400, 4) and model.embedding_.shape == (400, 2)
    assert adjusted_rand_score(y, model.labels_) >= 0.95
    assert model.transform(X_new).shape == (100, 2)


def test_hdbscan_keeps_noise_as_minus_one_and_does_not_count_it():
    # Structureless points: HDBSCAN leaves many of them in no dense region. (A small far group
    # is not a reliable noise case: UMAP may lay it out beside a blob, and HDBSCAN then labels
    # it as that blob's fringe, depending on the layout.)
    X = np.random.default_rng(0).uniform(-1, 1, size=(300, 16)).astype(np.float32)
    model = make_clustering("hdbscan", **PARAMS["hdbscan"]).fit(X)
    labels = model.labels_
    assert (labels == -1).any()
    clusters = labels[labels >= 0]
    assert model.n_clusters_ == len(np.unique(clusters))  # noise is not counted as a cluster
    sizes = np.bincount(clusters, minlength=model.n_clusters_)
    assert (np.diff(sizes) <= 0).all()  # numbered by decreasing size
    # a new point takes its nearest fitted neighbour's label, noise included
    predicted = model.predict(X[:50])
    assert set(predicted.tolist()) <= set(labels.tolist())


@pytest.mark.parametrize("clustering_type", ["n2d", "classical"])
def test_automatic_k_finds_the_number_of_blobs(blobs, clustering_type):
    X, y, _, _ = blobs
    params = {**PARAMS[clustering_type], "n_clusters": "auto", "k_range": (2, 8)}
    model = make_clustering(clustering_type, **params).fit(X)
    assert sorted(model.k_sweep_) == list(range(2, 9))
    assert max(model.k_sweep_, key=model.k_sweep_.get) == N_BLOBS
    assert model.n_clusters_ == N_BLOBS
    assert adjusted_rand_score(y, model.labels_) >= 0.95


@pytest.mark.parametrize("clustering_type, params, message", [
    ("n2d", {"n_clusters": 0}, r"n_clusters=0: expected an int >= 2"),
    ("n2d", {"n_clusters": "many"}, r"n_clusters='many'"),
    ("n2d", {"method": "spectral"}, r"method='spectral': expected one of 'kmeans', 'gmm'"),
    ("n2d", {"min_dist": 2.0}, r"min_dist=2.0: expected a number in \[0, 1\]"),
    ("n2d", {"n_neighbors": 1}, r"n_neighbors=1: expected an int >= 2"),
    ("n2d", {"n_neighbors": 500}, r"n_neighbors=500"),
    ("n2d", {"n_clusters": "auto", "k_range": (5, 3)}, r"k_range\[1\]=3: expected an int >= 5"),
    ("classical", {"kmeans_clusters": 3, "n_clusters": 6}, r"kmeans_clusters=3: expected an int >= 6"),
    ("classical", {"pca_components": 40}, r"pca_components=40: expected an int in \[1, 16\]"),
    ("classical", {"linkage": "nearest"}, r"linkage='nearest'"),
    ("advanced", {"threshold": 0}, r"threshold=0: expected an int >= 1"),
    ("advanced", {"k_low": 30, "k_high": 20}, r"k_high=20: expected an int >= 30"),
    ("advanced", {"eps": 0}, r"eps=0: expected a number > 0"),
    ("hdbscan", {"min_cluster_size": 1}, r"min_cluster_size=1: expected an int >= 2"),
])
def test_a_bad_parameter_names_itself(blobs, clustering_type, params, message):
    X, _, _, _ = blobs
    with pytest.raises(ValueError, match=message):
        make_clustering(clustering_type, **{**PARAMS[clustering_type], **params}).fit(X)


def test_unknown_type_and_keys_are_named():
    with pytest.raises(ValueError, match="clustering_type='kmeans'"):
        make_clustering("kmeans")
    with pytest.raises(ValueError, match="unknown parameter.*n_cluster\\b"):
        make_clustering("n2d", n_cluster=5)


def test_config_sections_build_estimators(cfg):
    """Every clustering section of the demo config makes a valid estimator (umap: flattened)."""
    for clustering_type in CLUSTERING_TYPES:
        section = cfg.section(f"clustering.{clustering_type}")
        model = make_clustering(clustering_type, **section)
        assert "version" not in model.get_params()
        if "umap" in section:
            assert model.n_neighbors == section["umap"]["n_neighbors"]
    assert estimator_params("n2d", {"k_range": [2, 5]})["k_range"] == (2, 5)


def test_predict_before_fit_is_refused():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        make_clustering("n2d").predict(np.zeros((3, 4), dtype=np.float32))


def test_wrong_number_of_features_is_refused(fitted):
    with pytest.raises(ValueError, match="features"):
        fitted["classical"].predict(np.zeros((3, 7), dtype=np.float32))


# --- identical pictures (issue 15, item 5) ------------------------------------------------------
@pytest.mark.parametrize("clustering_type", ["classical", "advanced", "n2d", "hdbscan"])
def test_identical_rows_share_one_cluster_for_every_type(blobs, clustering_type):
    """30 copies of one latent and 10 of another, among 400 others: each set of copies is one cluster,
    fitted as one row (they used to be split over 5 clusters)."""
    X, _, X_new, _ = blobs
    data = np.vstack([X, np.repeat(X[:1], 29, axis=0), np.repeat(X[200:201], 9, axis=0)])
    params = {**PARAMS[clustering_type], "n_components": 5} if clustering_type == "hdbscan" else PARAMS[clustering_type]
    model = make_clustering(clustering_type, **params).fit(data)
    assert model.n_distinct_ == 400 and len(model.labels_) == 438
    copies_a = np.r_[0, 400:429]
    copies_b = np.r_[200, 429:438]
    assert len(set(model.labels_[copies_a].tolist())) == 1 and len(set(model.labels_[copies_b].tolist())) == 1
    np.testing.assert_array_equal(model.embedding_[copies_a], np.repeat(model.embedding_[:1], 30, axis=0))
    # new copies get exactly the fitted values; copies among new rows share theirs
    again = model.assign(np.vstack([X[:1], X[:1], X_new[:3], X_new[:1]]))
    assert (again.labels[:2] == model.labels_[0]).all()
    np.testing.assert_array_equal(again.coords[:2], model.embedding_[[0, 0]])
    assert again.labels[5] == again.labels[2] and (again.coords[5] == again.coords[2]).all()
    np.testing.assert_array_equal(model.predict(X[:5]), model.labels_[:5])


@pytest.mark.parametrize("clustering_type", ["classical", "n2d"])
def test_fewer_distinct_pictures_than_clusters_asked_is_said(clustering_type):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 16)).astype(np.float32)
    data = np.vstack([np.repeat(a[None], 30, axis=0), np.repeat(b[None], 10, axis=0)])
    with pytest.raises(ValueError, match=r"X has 40 rows but only 2 distinct ones, fewer than n_clusters=6: "
                                         r"identical pictures always share a cluster"):
        make_clustering(clustering_type, **{**PARAMS[clustering_type], "n_clusters": 6}).fit(data)
    # enough clusters asked, but too few distinct rows for a parameter: counted as distinct rows
    with pytest.raises(ValueError, match=r"X has 2 distinct samples \(identical rows count once\)"):
        make_clustering(clustering_type, **{**PARAMS[clustering_type], "n_clusters": 2}).fit(data)


def test_hdbscan_that_finds_no_cluster_names_the_setting_to_lower():
    from iss.clustering.base import ClusteringWarning

    X = np.random.default_rng(0).uniform(-1, 1, size=(120, 16)).astype(np.float32)  # no dense region
    model = make_clustering("hdbscan", **{**PARAMS["hdbscan"], "min_cluster_size": 100})
    with pytest.warns(ClusteringWarning, match=r"HDBSCAN found no cluster: all 120 distinct pictures are noise "
                                               r"\(label -1\); lower min_cluster_size \(now 100\)"):
        model.fit(X)
    assert model.n_clusters_ == 0 and (model.labels_ == -1).all() and len(model.fit_warnings_) == 1


def test_many_small_clusters_grouped_by_the_merge_tree(blobs):
    """The original project's way: 20 small k-means clusters kept as they are, the merge tree groups them."""
    from scipy.cluster.hierarchy import fcluster

    X, y, _, _ = blobs
    model = make_clustering("classical", pca_components=8, kmeans_clusters=20, n_clusters=20, plot="pca").fit(X)
    assert model.n_clusters_ == 20 and sorted(model.merge_order_) == list(range(20))
    # cutting the tree into as many groups as blobs gives the blobs back
    groups = fcluster(model.linkage_, t=N_BLOBS, criterion="maxclust")[model.kmeans_.labels_]
    assert adjusted_rand_score(y, groups) >= 0.95
    # neighbours in merge order mostly belong to the same blob
    blob_of = {c: np.bincount(y[model.labels_ == c]).argmax() for c in range(20)}
    same = [blob_of[a] == blob_of[b] for a, b in zip(model.merge_order_, model.merge_order_[1:])]
    assert sum(same) == 20 - N_BLOBS


def test_n2d_clusters_a_small_collection_on_its_features(blobs):
    """Fewer distinct pictures than direct_below: k-means on the features, k by their silhouette,
    plot on two principal components; new rows go through the same path."""
    X, y, X_new, y_new = blobs
    small = make_clustering("n2d", **{**PARAMS["n2d"], "n_clusters": "auto"}).fit(X[:40])
    assert small.layout_ == "direct" and small.n_clusters_ == N_BLOBS
    assert small.k_sweep_criterion_ == "silhouette" and "direct_below=50" in small.k_reason_
    assert adjusted_rand_score(y[:40], small.labels_) == 1.0
    assert small.reduced_.shape == (40, 16) and small.embedding_.shape == (40, 2)
    assert adjusted_rand_score(y_new, small.predict(X_new)) == 1.0
    np.testing.assert_allclose(small.transform(X[:40]), small.embedding_, atol=1e-4)
    assert make_clustering("n2d", **PARAMS["n2d"]).fit(X).layout_ == "umap"


def test_n2d_finds_the_kinds_of_the_real_iss_frames():
    """The 30 real ISS frames of shared/real (5 kinds, labelled by eye in benchmarks/fidelity.py),
    as the pipeline's pixel features: UMAP's 20-neighbour graph over 28 distinct frames finds 2
    kinds (ARI about 0.5); k-means on the features themselves finds the kinds."""
    from benchmarks.fidelity import REAL_KINDS
    from iss.config import real_frames_dir
    from iss.data.images import decode_picture
    from iss.features.pixels import pixel_features

    files = sorted(real_frames_dir().glob("*.jpg"))
    assert len(files) == 30
    thumbs = np.stack([decode_picture(f).thumb for f in files])
    kinds = [REAL_KINDS[int(f.stem[-2:])] for f in files]
    features, _ = pixel_features(thumbs)
    direct = make_clustering("n2d", n_clusters="auto").fit(features)
    assert direct.layout_ == "direct" and direct.n_clusters_ in (4, 5, 6)
    assert adjusted_rand_score(kinds, direct.labels_) >= 0.85
    on_umap = make_clustering("n2d", n_clusters="auto", direct_below=0).fit(features)
    assert on_umap.layout_ == "umap"
    assert adjusted_rand_score(kinds, on_umap.labels_) < adjusted_rand_score(kinds, direct.labels_) - 0.2
