"""Small, fast instances of every estimator, shared by the test files.

:func:`small` is the one way the tests build an estimator with tiny networks
and few epochs: its settings keep the whole of ``test_common.py`` within a few
minutes on two CPU cores. ``ESTIMATORS`` lists the instances the common tests
run on. :func:`blobs` is the small data set the test files share;
:func:`with_covariance` builds data of an exact covariance.
"""

import numpy as np
from sklearn.datasets import make_blobs

from skdiffclust import ClusterDDPM, DeepDPGMMClusterer

#: Tiny networks and few epochs: the settings every estimator shares, and all
#: of those of any other subclass of BaseDeepClusterer.
BASE_SMALL = dict(
    latent_dim=2,
    hidden_dims=(16,),
    pretrain_epochs=3,
    n_iter=2,
    batch_size=32,
    learning_rate=1e-2,
    device="cpu",
    random_state=0,
)

#: ClusterDDPM's, with a short schedule. Without ``n_clusters``, for
#: ``ClusterDDPM(n_clusters=..., **CLUSTER_DDPM_SMALL)``.
CLUSTER_DDPM_SMALL = {**BASE_SMALL, "n_timesteps": 10}

#: DeepDPGMMClusterer's: the 2-D latent of 50 blobs needs 20 pretraining
#: epochs at the default priors.
DPGMM_SMALL = {**BASE_SMALL, "n_components": 5, "pretrain_epochs": 20}
_DPGMM_SMALL = DPGMM_SMALL  # its former name

#: Estimator class -> the settings of :func:`small`.
SMALL_SETTINGS = {
    ClusterDDPM: {"n_clusters": 3, **CLUSTER_DDPM_SMALL},
    DeepDPGMMClusterer: DPGMM_SMALL,
}

_BY_NAME = {cls.__name__: cls for cls in SMALL_SETTINGS}


def small(estimator, **overrides):
    """An unfitted estimator with tiny networks and few epochs.

    Parameters
    ----------
    estimator : type or str
        An estimator class, or the name of one of the package's
        (``"ClusterDDPM"``, ``"DeepDPGMMClusterer"``). A subclass gets the
        settings of the nearest class of :data:`SMALL_SETTINGS` it derives
        from, any other class those of :data:`BASE_SMALL`.
    **overrides
        Parameters that replace (or add to) the small settings.

    Returns
    -------
    An instance of ``estimator``, unfitted.
    """
    cls = _BY_NAME[estimator] if isinstance(estimator, str) else estimator
    settings = next(
        (SMALL_SETTINGS[base] for base in cls.__mro__ if base in SMALL_SETTINGS), BASE_SMALL
    )
    return cls(**{**settings, **overrides})


ESTIMATORS = [
    small(ClusterDDPM),
    # U-Net backbone. The common checks fit data of 1 to 20 features, so each
    # row is a 1-pixel-high image whose width is inferred from n_features.
    small(ClusterDDPM, image_shape=(1, 1, -1), conv_width=8),
    small(DeepDPGMMClusterer),
]


def estimator_id(estimator):
    """Test id: class name plus backbone."""
    name = type(estimator).__name__
    backbone = "unet" if getattr(estimator, "image_shape", None) is not None else "mlp"
    return f"{name}-{backbone}"


def blobs(n_samples=60, n_features=4, random_state=0):
    """Three tight blobs, ``(X, y)``: small data every test file fits on."""
    return make_blobs(
        n_samples=n_samples,
        n_features=n_features,
        centers=3,
        cluster_std=0.5,
        random_state=random_state,
    )


def with_covariance(Z, covariance):
    """``Z`` moved linearly so that its (unbiased) sample covariance is exactly ``covariance``."""
    Z = Z - Z.mean(axis=0)
    white = Z @ np.linalg.inv(np.linalg.cholesky(np.cov(Z, rowvar=False))).T
    return white @ np.linalg.cholesky(covariance).T
