"""ClusterDDPM: its KL term, its diffusion schedule and samplers, its backbones."""

import numpy as np
import pytest
import torch
from _estimators import CLUSTER_DDPM_SMALL as SMALL
from _estimators import blobs
from scipy.stats import multivariate_normal
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import GaussianMixture

from skdiffclust import ClusterDDPM
from skdiffclust._mixture import TorchMixture
from skdiffclust.diffusion import (
    NoiseSchedule,
    ancestral_sample,
    ddim_sample,
    linear_beta_schedule,
)
from skdiffclust.losses import mixture_kl


# ------------------------------------------------------------------- KL term
@pytest.mark.parametrize("covariance_type", ["diag", "full"])
def test_mixture_kl_matches_monte_carlo(covariance_type):
    rng = np.random.RandomState(0)
    n_dims, n_mc = 3, 400_000
    Z_fit = np.vstack([rng.normal(c, s, size=(200, n_dims)) for c, s in [(-2, 0.7), (1, 1.3)]])
    gm = GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(Z_fit)
    mixture = TorchMixture.from_sklearn(gm, "cpu")

    mean = np.array([[0.5, -0.3, 1.0]])
    log_var = np.log(np.array([[0.4, 1.5, 0.8]]))
    z0 = np.array([[0.2, 0.1, 0.6]])  # the sample the responsibilities come from
    as_tensor = torch.tensor
    kl = mixture_kl(
        as_tensor(z0, dtype=torch.float32),
        as_tensor(mean, dtype=torch.float32),
        as_tensor(log_var, dtype=torch.float32),
        mixture,
    ).item()

    # KL(q(z)q(c) || p(z, c)) = E_q(z)[log q(z) - sum_c gamma_c log(pi_c N(z; m_c, S_c))]
    #                           + sum_c gamma_c log gamma_c, with gamma = p(c | z0).
    gamma = gm.predict_proba(z0)[0]
    var = np.exp(log_var[0])
    Z = mean[0] + np.sqrt(var) * rng.standard_normal((n_mc, n_dims))
    log_q = multivariate_normal(mean[0], np.diag(var)).logpdf(Z)
    covariances = (
        gm.covariances_ if covariance_type == "full" else [np.diag(c) for c in gm.covariances_]
    )
    log_p = sum(
        g * (np.log(w) + multivariate_normal(m, c).logpdf(Z))
        for g, w, m, c in zip(gamma, gm.weights_, gm.means_, covariances, strict=True)
    )
    integrand = log_q - log_p
    estimate = integrand.mean() + np.sum(gamma * np.log(gamma))
    stderr = integrand.std() / np.sqrt(n_mc)
    assert abs(kl - estimate) < 4 * stderr + 1e-3 * abs(estimate)
    assert kl > 0


def test_mixture_kl_is_differentiable_and_zero_free_of_nan():
    gm = GaussianMixture(2, covariance_type="diag", random_state=0).fit(
        np.random.RandomState(0).standard_normal((50, 2))
    )
    mixture = TorchMixture.from_sklearn(gm, "cpu")
    mean = torch.zeros(4, 2, requires_grad=True)
    log_var = torch.zeros(4, 2, requires_grad=True)
    # A latent far from every component: responsibilities underflow to 0.
    z = torch.full((4, 2), 1e3)
    kl = mixture_kl(z, mean, log_var, mixture)
    kl.sum().backward()
    assert torch.all(torch.isfinite(kl))
    assert torch.all(torch.isfinite(mean.grad)) and torch.all(torch.isfinite(log_var.grad))


# ------------------------------------------------------------------ diffusion
@pytest.mark.parametrize("n_timesteps", [1, 10, 400])
def test_linear_schedule_matches_formula(n_timesteps):
    betas, alpha_bars = linear_beta_schedule(n_timesteps)
    t = np.arange(n_timesteps + 1)
    expected_betas = 1e-4 + (0.02 - 1e-4) * t / n_timesteps
    np.testing.assert_allclose(betas.numpy(), expected_betas, rtol=1e-12)
    np.testing.assert_allclose(alpha_bars.numpy(), np.cumprod(1 - expected_betas), rtol=1e-12)
    assert betas[-1].item() == pytest.approx(0.02)

    schedule = NoiseSchedule(n_timesteps)
    np.testing.assert_allclose(
        schedule.alpha_bars.numpy(), np.cumprod(1 - expected_betas), rtol=1e-6
    )


def test_add_noise_and_timesteps():
    schedule = NoiseSchedule(20)
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    noise = torch.randn(5, 3, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([1, 5, 10, 15, 20])
    ab = schedule.alpha_bars[t][:, None]
    expected = ab.sqrt() * x + (1 - ab).sqrt() * noise
    torch.testing.assert_close(schedule.add_noise(x, t, noise), expected)

    with torch.random.fork_rng():
        torch.manual_seed(0)
        uniform = schedule.sample_timesteps(20_000, 1.0, "cpu")
        skewed = schedule.sample_timesteps(20_000, 3.0, "cpu")
    assert uniform.min() == 1 and uniform.max() == 20
    assert uniform.float().mean().item() == pytest.approx(10.5, abs=0.15)
    # ceil(T u^(1/3)) has mean about 3T/4 + 1/2.
    assert skewed.float().mean().item() == pytest.approx(15.5, abs=0.3)


def _oracle(schedule, target):
    """The exact noise predictor for data concentrated at ``target``."""

    def denoiser(x, z, t_frac):
        t = (t_frac[:, 0] * schedule.n_timesteps).round().long()
        ab = schedule.alpha_bars[t][:, None]
        return (x - ab.sqrt() * target) / (1 - ab).sqrt()

    return denoiser


def test_samplers_recover_a_point_mass():
    schedule = NoiseSchedule(50)
    target = torch.tensor([[0.3, -0.7, 1.5]])
    z = torch.zeros(100, 2)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        ddpm = ancestral_sample(_oracle(schedule, target), z, schedule, (3,))
        ddim = ddim_sample(_oracle(schedule, target), z, schedule, (3,), n_steps=7)
    torch.testing.assert_close(ddim, target.expand(100, 3), atol=1e-5, rtol=0)
    # The last ancestral steps add sqrt(beta_t) noise of about 0.01.
    assert (ddpm - target).abs().max().item() < 0.1


# ------------------------------------------------------------------- sampling
def test_sample_shapes_and_grouped_labels(fitted_cluster_ddpm):
    model, X = fitted_cluster_ddpm
    X_new, y = model.sample(25)
    assert X_new.shape == (25, X.shape[1])
    assert y.shape == (25,)
    assert np.all(np.diff(y) >= 0), "labels are grouped by cluster"
    assert y.min() >= 0 and y.max() < model.n_clusters_
    assert np.all(np.isfinite(X_new))
    # Like GaussianMixture.sample, a fixed random_state gives the same draw.
    np.testing.assert_array_equal(model.sample(25)[0], X_new)


def test_sample_one_cluster_ddim_and_guidance(fitted_cluster_ddpm):
    model, X = fitted_cluster_ddpm
    for cluster in range(model.n_clusters_):
        X_new, y = model.sample(6, cluster=cluster, n_steps=4)
        assert X_new.shape == (6, X.shape[1])
        np.testing.assert_array_equal(y, cluster)
    plain, _ = model.sample(6, cluster=0, n_steps=4)
    guided, _ = model.sample(6, cluster=0, n_steps=4, guidance=2.0)
    assert np.all(np.isfinite(guided))
    assert not np.allclose(plain, guided)
    ancestral, _ = model.sample(6, cluster=0)
    assert not np.allclose(plain, ancestral)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_samples": 0}, "n_samples must be a positive integer"),
        ({"n_samples": 2.5}, "n_samples must be a positive integer"),
        ({"cluster": 99}, r"cluster must be an integer in \[0, "),
        ({"cluster": -1}, r"cluster must be an integer in \[0, "),
        ({"guidance": -1.0}, "guidance must be a non-negative number"),
        ({"n_steps": 0}, "n_steps must be None or a positive integer"),
    ],
)
def test_sample_bad_arguments(fitted_cluster_ddpm, kwargs, match):
    model, _ = fitted_cluster_ddpm
    with pytest.raises(ValueError, match=match):
        model.sample(**kwargs)


def test_sample_in_units_of_the_data():
    X, _ = blobs()
    X = X * 10 + 100
    model = ClusterDDPM(n_clusters=3, **SMALL).fit(X)
    X_new, _ = model.sample(50, n_steps=5)
    low, high = X.min(), X.max()
    span = high - low
    assert low - span < X_new.mean() < high + span


# ------------------------------------------------------------------ backbones
def _digit_images(n_samples, upscale=1):
    digits = load_digits()
    images = digits.images[:n_samples] / 16.0
    if upscale > 1:
        images = np.kron(images, np.ones((upscale, upscale)))
    return images, digits.target[:n_samples]


@pytest.mark.parametrize(
    "image_shape, pad",
    [((1, 8, 8), 0), ((1, 28, 28), 2), ((3, 5, 7), None)],
    ids=["digits-8x8", "28x28", "rgb-5x7"],
)
def test_unet_backbone_fits_and_predicts(image_shape, pad):
    if pad is None:
        rng = np.random.RandomState(0)
        X = rng.uniform(size=(40, int(np.prod(image_shape))))
    elif image_shape[1] == 8:
        X = _digit_images(60)[0].reshape(60, -1)
    else:
        images = np.pad(_digit_images(40, upscale=3)[0], ((0, 0), (pad, pad), (pad, pad)))
        X = images.reshape(40, -1)
    params = {**SMALL, "pretrain_epochs": 1, "n_iter": 1}
    model = ClusterDDPM(n_clusters=3, image_shape=image_shape, unet_width=8, **params).fit(X)
    labels = model.predict(X)
    np.testing.assert_array_equal(labels, model.labels_)
    assert labels.min() >= 0 and labels.max() < model.n_clusters_
    assert model.transform(X).shape == (len(X), 2)
    X_new, y = model.sample(3, n_steps=2)
    assert X_new.shape == (3, X.shape[1]) and np.all(np.isfinite(X_new))


def test_unet_width_must_be_a_multiple_of_8():
    X = _digit_images(20)[0].reshape(20, -1)
    model = ClusterDDPM(n_clusters=2, image_shape=(1, 8, 8), unet_width=12, **SMALL)
    with pytest.raises(ValueError, match="unet_width must be a multiple of 8, got 12"):
        model.fit(X)


# -------------------------------------------------------------------- scaling
@pytest.mark.parametrize("random_state", [0, 1])
def test_unscaled_data_is_clustered(random_state):
    # Blobs around 100, as in scikit-learn's check_fit_idempotent.
    X, y = blobs(n_samples=90, random_state=random_state)
    X = X + 100
    params = {**SMALL, "random_state": random_state}
    labels = ClusterDDPM(n_clusters=3, **params).fit_predict(X)
    assert adjusted_rand_score(y, labels) > 0.8


def test_scaling_round_trips_through_sample_units(fitted_cluster_ddpm):
    model, X = fitted_cluster_ddpm
    Xs = model._scale(X)
    np.testing.assert_allclose(model._unscale(Xs), X, rtol=1e-5, atol=1e-5 * np.abs(X).max())


# ------------------------------------------------------------------ kl_weight
def test_kl_weight_auto_scales_with_the_data_dimension(fitted_cluster_ddpm):
    model, X = fitted_cluster_ddpm
    assert model._effective_kl_weight() == pytest.approx(0.1 * X.shape[1] / 784)
    digits = _digit_images(30)[0].reshape(30, -1)
    params = {**SMALL, "pretrain_epochs": 1, "n_iter": 0}
    on_digits = ClusterDDPM(n_clusters=3, **params).fit(digits)
    assert on_digits._effective_kl_weight() == pytest.approx(0.1 * 64 / 784)
    on_digits.set_params(kl_weight=0.5)
    assert on_digits._effective_kl_weight() == 0.5


def test_timestep_skew_auto_grows_with_the_data_dimension(fitted_cluster_ddpm):
    model, X = fitted_cluster_ddpm
    # Few features: never below uniform sampling.
    assert X.shape[1] < 64 / 9
    assert model._effective_timestep_skew() == 1.0
    digits = _digit_images(30)[0].reshape(30, -1)
    params = {**SMALL, "pretrain_epochs": 1, "n_iter": 0}
    on_digits = ClusterDDPM(n_clusters=3, **params).fit(digits)
    assert on_digits._effective_timestep_skew() == pytest.approx(3.0)
    on_mnist_sized = ClusterDDPM(n_clusters=3, **params).fit(np.tile(digits, (1, 49))[:, :784])
    assert on_mnist_sized._effective_timestep_skew() == pytest.approx(10.5)
    on_digits.set_params(timestep_skew=2.0)
    assert on_digits._effective_timestep_skew() == 2.0


# ------------------------------------------------------- EM safeguards
def test_latent_collapse_stops_em_with_a_warning(monkeypatch):
    X, _ = blobs()
    model = ClusterDDPM(n_clusters=3, **{**SMALL, "n_iter": 5})
    # The spread relative to pretraining after each EM iteration: a collapse.
    scales = iter([1.0, 0.5, 0.2, 0.1, 0.05])
    monkeypatch.setattr(
        ClusterDDPM,
        "_latent_collapsed",
        lambda self, latent_scale: next(scales) < self._collapse_ratio,
    )
    with pytest.warns(ConvergenceWarning, match="collapsed during EM iteration 3 .* after 2 EM"):
        model.fit(X)
    # Iterations 1 and 2 keep at least 25% of the spread; iteration 3 stops the
    # fit, and the estimator is left as after iteration 2.
    assert len(model.history_["loss"]) == 2
    assert len(model.history_["latent_scale"]) == 3
    assert model.labels_.shape == (X.shape[0],)


def test_latent_scale_is_recorded_and_stable_without_collapse(fitted_cluster_ddpm):
    model, _ = fitted_cluster_ddpm
    scales = model.history_["latent_scale"]
    assert len(scales) == model.n_iter + 1
    assert all(np.isfinite(scales)) and min(scales) > model._collapse_ratio * scales[0]


def test_em_refits_the_mixture_when_a_component_is_lost():
    from skdiffclust._mixture import fit_mixture, make_mixture, occupied_components

    rng = np.random.RandomState(0)
    three_groups = np.concatenate([rng.normal(c, 0.1, size=(50, 2)) for c in (-5, 0, 5)])
    mixture = make_mixture(
        3,
        covariance_type="full",
        weight_concentration_prior_type="dirichlet_distribution",
        weight_concentration_prior=None,
        random_state=0,
    )
    fit_mixture(mixture, three_groups)
    # The latents move far away: a short warm refit leaves components behind.
    moved = three_groups * 2.0 + 40.0
    warm = fit_mixture(clone(mixture), three_groups)
    assert len(occupied_components(fit_mixture(warm, moved, max_iter=1), moved)) < 3
    kept = fit_mixture(mixture, moved, max_iter=1, keep_all_components=True)
    assert len(occupied_components(kept, moved)) == 3
