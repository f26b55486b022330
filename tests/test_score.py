"""ClusterDDPM.score_samples and score: the evidence lower bound of log p(x).

The terms of the bound are tested in ``test_diffusion.py``.
"""

import numpy as np
import pytest
import torch
from _estimators import blobs, small
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError

from skdiffclust import ClusterDDPM


# ------------------------------------------------------------ score_samples
def test_score_samples_shape_determinism_and_score(fitted_cluster_ddpm):
    model, X = fitted_cluster_ddpm
    scores = model.score_samples(X)
    assert scores.shape == (len(X),) and scores.dtype == np.float64
    assert np.all(np.isfinite(scores))
    np.testing.assert_array_equal(scores, model.score_samples(X))
    # A row's score depends on that row only.
    np.testing.assert_allclose(scores[7:9], model.score_samples(X[7:9]), rtol=1e-10)
    np.testing.assert_allclose(scores[3], model.score_samples(X[3:4])[0], rtol=1e-10)
    np.testing.assert_allclose(scores[::-1], model.score_samples(X[::-1]), rtol=1e-10)
    assert model.score(X) == pytest.approx(scores.mean(), rel=1e-12)
    assert model.score(X, np.zeros(len(X))) == model.score(X)


def test_score_samples_leaves_the_global_rng_alone(fitted_cluster_ddpm):
    model, X = fitted_cluster_ddpm
    unseeded = clone(model).set_params(random_state=None).fit(X)
    np_state, torch_state = np.random.get_state(), torch.get_rng_state()
    for estimator in (model, unseeded):
        estimator.score_samples(X)
    assert torch.equal(torch.get_rng_state(), torch_state)
    np.testing.assert_array_equal(np.random.get_state()[1], np_state[1])
    # Without a seed, the scores are still a function of the model and X.
    np.testing.assert_array_equal(unseeded.score_samples(X), unseeded.score_samples(X))


def test_scores_are_in_the_units_of_X(fitted_cluster_ddpm):
    model, X = fitted_cluster_ddpm
    rescaled = clone(model).fit(10 * X)
    # Global scaling maps both to the same data, so the networks are the same...
    np.testing.assert_array_equal(model._scale(X), rescaled._scale(10 * X))
    np.testing.assert_array_equal(model.labels_, rescaled.labels_)
    # ... and the densities differ by the Jacobian only.
    np.testing.assert_allclose(
        rescaled.score_samples(10 * X),
        model.score_samples(X) - X.shape[1] * np.log(10),
        rtol=1e-10,
    )


def test_training_data_scores_higher_than_uniform_noise():
    # 40 features: the advantage of clustered data over noise grows with the
    # dimension, and the mismatch of q(z|x) to the mixture does not (across
    # seeds 0-4 the means differ by 52 to 77 nats).
    X, _ = blobs(n_samples=150, n_features=40)
    model = small(ClusterDDPM, hidden_dims=(32,), n_timesteps=50, pretrain_epochs=20, n_iter=5).fit(
        X
    )
    noise = np.random.RandomState(0).uniform(X.min(0), X.max(0), size=X.shape)
    train, random = model.score_samples(X), model.score_samples(noise)
    assert train.mean() > random.mean() + 25
    assert np.median(train) > np.quantile(random, 0.9)


def test_not_fitted_and_wrong_n_features(fitted_cluster_ddpm):
    model, X = fitted_cluster_ddpm
    with pytest.raises(NotFittedError):
        clone(model).score_samples(X)
    with pytest.raises(NotFittedError):
        clone(model).score(X)
    for method in (model.score_samples, model.score):
        with pytest.raises(ValueError, match="X has 3 features, but .* is expecting 4 features"):
            method(X[:, :3])


def test_unet_backbone():
    X = load_digits().data[:80]
    model = small(
        ClusterDDPM,
        image_shape=(1, 8, 8),
        conv_width=8,
        pretrain_epochs=1,
        n_iter=1,
        n_timesteps=60,
    ).fit(X)
    scores = model.score_samples(X[:6])
    assert scores.shape == (6,) and np.all(np.isfinite(scores))
    np.testing.assert_allclose(scores[2:4], model.score_samples(X[2:4]), rtol=1e-10)


@pytest.mark.parametrize("n_timesteps", [1, 2])
def test_few_timesteps(fitted_cluster_ddpm, n_timesteps):
    model, X = fitted_cluster_ddpm
    model = clone(model).set_params(n_timesteps=n_timesteps).fit(X)
    assert np.all(np.isfinite(model.score_samples(X)))
    assert model.n_timesteps_ == n_timesteps
