"""Small, fast instances of every estimator, shared by the common tests.

Each entry is an unfitted estimator with tiny networks and few epochs, so that
the whole of ``test_common.py`` runs in a few minutes on two CPU cores.
Estimators append their own instances here. :func:`blobs` is the small data
set the test files share; :func:`with_covariance` builds data of an exact
covariance.
"""

import numpy as np
from sklearn.datasets import make_blobs

from skdiffclust import ClusterDDPM, DeepDPGMMClusterer

#: Settings that keep ClusterDDPM fast: tiny networks, a short schedule.
CLUSTER_DDPM_SMALL = dict(
    latent_dim=2,
    hidden_dims=(16,),
    n_timesteps=10,
    pretrain_epochs=3,
    n_iter=2,
    batch_size=32,
    learning_rate=1e-2,
    device="cpu",
    random_state=0,
)

ESTIMATORS = [
    ClusterDDPM(n_clusters=3, **CLUSTER_DDPM_SMALL),
    # U-Net backbone. The common checks fit data of 1 to 20 features, so each
    # row is a 1-pixel-high image whose width is inferred from n_features.
    ClusterDDPM(n_clusters=3, image_shape=(1, 1, -1), unet_width=8, **CLUSTER_DDPM_SMALL),
]


def estimator_id(estimator):
    """Test id: class name plus backbone."""
    name = type(estimator).__name__
    backbone = "unet" if getattr(estimator, "image_shape", None) is not None else "mlp"
    return f"{name}-{backbone}"


#: Settings that keep DeepDPGMMClusterer fast: tiny networks, few epochs.
_DPGMM_SMALL = dict(
    n_components=5,
    latent_dim=2,
    hidden_dims=(16,),
    pretrain_epochs=20,  # the 2-D latent of 50 blobs needs it at the default priors
    n_iter=2,
    batch_size=32,
    learning_rate=1e-2,
    device="cpu",
    random_state=0,
)

ESTIMATORS.append(DeepDPGMMClusterer(**_DPGMM_SMALL))


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
