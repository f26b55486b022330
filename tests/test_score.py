"""ClusterDDPM.score_samples and score: the evidence lower bound of log p(x)."""

import numpy as np
import pytest
import torch
from _estimators import CLUSTER_DDPM_SMALL as SMALL
from _estimators import blobs
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError

from skdiffclust import ClusterDDPM
from skdiffclust.diffusion import (
    linear_beta_schedule,
    posterior_kl,
    prior_kl,
    stratified_timesteps,
)
from skdiffclust.losses import gaussian_kl


# ------------------------------------------------------- terms of the bound
def test_posterior_kl_matches_the_kl_of_the_explicit_gaussians():
    T, n, n_features = 40, 64, 5
    betas, alpha_bars = linear_beta_schedule(T)
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(n, n_features, generator=gen, dtype=torch.float64)
    eps = torch.randn(n, n_features, generator=gen, dtype=torch.float64)
    eps_pred = eps + 0.3 * torch.randn(n, n_features, generator=gen, dtype=torch.float64)
    t = torch.randint(2, T + 1, (n,), generator=gen)

    beta, ab, ab_prev = betas[t, None], alpha_bars[t, None], alpha_bars[t - 1, None]
    alpha = 1.0 - beta
    x_t = ab.sqrt() * x0 + (1.0 - ab).sqrt() * eps
    # q(x_{t-1} | x_t, x_0) from its definition (Ho et al. 2020, eq. 6-7).
    posterior_mean = (ab_prev.sqrt() * beta * x0 + alpha.sqrt() * (1.0 - ab_prev) * x_t) / (
        1.0 - ab
    )
    posterior_var = (1.0 - ab_prev) / (1.0 - ab) * beta
    # The sampler's step: its mean and variance beta_t.
    model_mean = (x_t - beta / (1.0 - ab).sqrt() * eps_pred) / alpha.sqrt()
    expected = gaussian_kl(
        posterior_mean,
        posterior_var.expand(-1, n_features),
        model_mean,
        beta.expand(-1, n_features),
    )
    np.testing.assert_allclose(
        posterior_kl(eps, eps_pred, t, betas, alpha_bars).numpy(), expected.numpy(), rtol=1e-9
    )
    # A perfect prediction leaves only the variance mismatch, which is >= 0.
    exact = posterior_kl(eps, eps, t, betas, alpha_bars)
    assert torch.all(exact >= 0) and torch.all(exact < expected)


def test_prior_kl_matches_the_kl_of_the_explicit_gaussians():
    _, alpha_bars = linear_beta_schedule(10)
    x0 = torch.linspace(-2, 3, 12, dtype=torch.float64).view(3, 4)
    ab = alpha_bars[10]
    expected = gaussian_kl(ab.sqrt() * x0, (1 - ab).expand(3, 4), 0.0, torch.ones(3, 4))
    np.testing.assert_allclose(prior_kl(x0, ab).numpy(), expected.numpy(), rtol=1e-12)


@pytest.mark.parametrize("T, k", [(400, 50), (400, 399), (11, 3), (2, 1)])
def test_stratified_timesteps_cover_2_to_T(T, k):
    u = torch.rand(1000, k, generator=torch.Generator().manual_seed(0))
    u[0] = 0.0
    u[1] = 1.0 - 1e-8  # rounds to 1 in float32
    t, weights = stratified_timesteps(u, T)
    assert weights.sum() == T - 1
    assert t.min() == 2 and t.max() == T
    # Strata are contiguous, in order, and one draw of each weighs its size.
    edges = 2 + torch.cumsum(torch.cat([torch.zeros(1), weights]), 0).long()
    assert torch.all((t >= edges[:-1]) & (t < edges[1:]))
    if k == T - 1:
        assert torch.equal(t, torch.arange(2, T + 1).expand(1000, -1))


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
    params = {**SMALL, "hidden_dims": (32,), "n_timesteps": 50, "pretrain_epochs": 20, "n_iter": 5}
    model = ClusterDDPM(n_clusters=3, **params).fit(X)
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
    model = ClusterDDPM(
        n_clusters=3,
        image_shape=(1, 8, 8),
        unet_width=8,
        **{**SMALL, "pretrain_epochs": 1, "n_iter": 1, "n_timesteps": 60},
    ).fit(X)
    scores = model.score_samples(X[:6])
    assert scores.shape == (6,) and np.all(np.isfinite(scores))
    np.testing.assert_allclose(scores[2:4], model.score_samples(X[2:4]), rtol=1e-10)


@pytest.mark.parametrize("n_timesteps", [1, 2])
def test_few_timesteps(fitted_cluster_ddpm, n_timesteps):
    model, X = fitted_cluster_ddpm
    model = clone(model).set_params(n_timesteps=n_timesteps).fit(X)
    assert np.all(np.isfinite(model.score_samples(X)))
