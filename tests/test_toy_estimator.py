"""A third estimator written against BaseDeepClusterer: an autoencoder, then a
Gaussian mixture on its codes. The base and the backbone factory do the rest."""

import pickle
from numbers import Integral

import numpy as np
import torch
from _estimators import blobs, small
from sklearn.metrics import adjusted_rand_score
from sklearn.utils._param_validation import Interval
from sklearn.utils.estimator_checks import parametrize_with_checks

from skdiffclust._base import BaseDeepClusterer


class AutoencoderGMM(BaseDeepClusterer):
    """Reconstruction loss only; a diagonal Gaussian mixture clusters the codes."""

    _parameter_constraints = {
        **BaseDeepClusterer._parameter_constraints,
        "n_clusters": [Interval(Integral, 1, None, closed="left")],
    }
    _network_roles = {"encoder": "encoder", "decoder": "decoder"}
    _keep_all_components = True  # the number of clusters is given

    def __init__(
        self,
        n_clusters=8,
        *,
        latent_dim=10,
        hidden_dims=(256,),
        image_shape=None,
        conv_width=32,
        pretrain_epochs=50,
        n_iter=5,
        batch_size=128,
        learning_rate=1e-3,
        scaling="global",
        device="auto",
        random_state=None,
        verbose=0,
        callbacks=None,
        e_step_max_samples=None,
        init_params="ward",
        warm_start=False,
    ):
        self.n_clusters = n_clusters
        self.latent_dim = latent_dim
        self.hidden_dims = hidden_dims
        self.image_shape = image_shape
        self.conv_width = conv_width
        self.pretrain_epochs = pretrain_epochs
        self.n_iter = n_iter
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.scaling = scaling
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.callbacks = callbacks
        self.e_step_max_samples = e_step_max_samples
        self.init_params = init_params
        self.warm_start = warm_start

    def _pretrain_loss(self, x):
        mean, _ = self._encode(x)
        return torch.sum((self.decoder_(mean) - x.flatten(1)) ** 2, dim=1).mean()

    def _network_loss(self, x, mixture):
        return self._pretrain_loss(x)

    def _mixture_params(self):
        return {
            "n_components": self.n_clusters,
            "covariance_type": "diag",
            "weight_concentration_prior_type": "dirichlet_distribution",
            "weight_concentration_prior": None,
            "init_params": self.init_params,
        }


def test_toy_estimator_clusters_blobs():
    X, y = blobs()
    model = small(AutoencoderGMM, n_clusters=3).fit(X)
    assert adjusted_rand_score(y, model.labels_) > 0.9
    np.testing.assert_array_equal(model.predict(X), model.labels_)
    assert model.transform(X).shape == (len(X), 2)
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.transform(X), model.transform(X))
    np.testing.assert_array_equal(restored.predict(X), model.labels_)


@parametrize_with_checks([small(AutoencoderGMM, n_clusters=3)])
def test_toy_estimator_passes_the_sklearn_checks(estimator, check):
    check(estimator)
