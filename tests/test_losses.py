"""skdiffclust.losses: the skew Jensen-Shannon divergence, the divergence to each
mixture component, ClusterDDPM's mixture KL and the latent spread penalty."""

import math

import numpy as np
import pytest
import torch
from _estimators import with_covariance
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats
from scipy.stats import multivariate_normal
from sklearn.mixture import GaussianMixture

from skdiffclust._mixture import TorchMixture
from skdiffclust.losses import (
    component_divergence,
    gaussian_kl,
    latent_spread_penalty,
    mixture_kl,
    skew_js_divergence,
)
from skdiffclust.metrics import effective_dimension


# ------------------------------------------------------------------- skew JS
def _skew_js(m1, v1, m2, v2, alpha):
    return skew_js_divergence(
        *(torch.tensor([value], dtype=torch.float64) for value in (m1, v1, m2, v2)), alpha=alpha
    ).item()


def _skew_js_by_quadrature(m1, v1, m2, v2, alpha):
    """The definition: KLs to the normalised geometric mean p^(1-a) q^a."""
    p = stats.norm(m1, math.sqrt(v1))
    q = stats.norm(m2, math.sqrt(v2))
    lo = min(m1 - 12 * math.sqrt(v1), m2 - 12 * math.sqrt(v2))
    hi = max(m1 + 12 * math.sqrt(v1), m2 + 12 * math.sqrt(v2))

    def log_unnormalised(x):
        return (1 - alpha) * p.logpdf(x) + alpha * q.logpdf(x)

    log_norm = math.log(integrate.quad(lambda x: math.exp(log_unnormalised(x)), lo, hi)[0])

    def kl_to_geometric(dist):
        def integrand(x):
            return dist.pdf(x) * (dist.logpdf(x) - log_unnormalised(x) + log_norm)

        return integrate.quad(integrand, lo, hi, limit=200)[0]

    return (1 - alpha) * kl_to_geometric(p) + alpha * kl_to_geometric(q)


def test_skew_js_check_value():
    # Nielsen's worked example: N(-1, 4) and N(-4, 16) at alpha = 1/2 (see the
    # reference of skew_js_divergence).
    assert _skew_js(-1.0, 4.0, -4.0, 16.0, 0.5) == pytest.approx(0.40874, abs=1e-5)


@pytest.mark.parametrize(
    "m1, v1, m2, v2, alpha",
    [(-1.0, 4.0, -4.0, 16.0, 0.5), (0.0, 1.0, 2.0, 0.5, 0.2), (3.0, 0.3, -1.0, 2.0, 0.9)],
)
def test_skew_js_matches_numerical_integration(m1, v1, m2, v2, alpha):
    expected = _skew_js_by_quadrature(m1, v1, m2, v2, alpha)
    assert _skew_js(m1, v1, m2, v2, alpha) == pytest.approx(expected, rel=1e-6, abs=1e-9)


means = st.floats(-10, 10)
variances = st.floats(1e-2, 1e2)
alphas = st.floats(0.01, 0.99)


@settings(max_examples=200, deadline=None)
@given(means, variances, means, variances, alphas)
def test_skew_js_is_non_negative(m1, v1, m2, v2, alpha):
    assert _skew_js(m1, v1, m2, v2, alpha) >= -1e-12


@settings(max_examples=100, deadline=None)
@given(means, variances, alphas)
def test_skew_js_is_zero_for_equal_gaussians(m, v, alpha):
    assert _skew_js(m, v, m, v, alpha) == pytest.approx(0.0, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(means, variances, means, variances, alphas)
def test_skew_js_is_positive_for_different_gaussians(m1, v1, m2, v2, alpha):
    if abs(m1 - m2) < 1e-3 and abs(math.log(v1 / v2)) < 1e-3:
        return
    assert _skew_js(m1, v1, m2, v2, alpha) > 0


@settings(max_examples=100, deadline=None)
@given(means, variances, means, variances)
def test_skew_js_is_symmetric_at_one_half(m1, v1, m2, v2):
    forward = _skew_js(m1, v1, m2, v2, 0.5)
    assert forward == pytest.approx(_skew_js(m2, v2, m1, v1, 0.5), rel=1e-9, abs=1e-12)


# ------------------------------------------------------ component divergence
@pytest.mark.parametrize("divergence", ["ajs", "kl"])
@pytest.mark.parametrize("var1, var2", [(1e-6, 1e6), (1e6, 1e-6), (1e-6, 1e-6), (1e6, 1e6)])
def test_divergence_gradients_are_finite_for_extreme_variances(divergence, var1, var2):
    mean = torch.tensor([[0.5, -2.0]], requires_grad=True)
    log_var = torch.full((1, 2), math.log(var1), requires_grad=True)
    mixture = TorchMixture(
        covariance_type="diag",
        log_weights=torch.zeros(1),
        means=torch.tensor([[1.0, 3.0]]),
        precisions_cholesky=torch.full((1, 2), var2**-0.5),
        log_det_precisions_cholesky=torch.zeros(1),
    )
    value = component_divergence(mean, torch.exp(log_var), mixture, divergence).sum()
    value.backward()
    assert torch.isfinite(value)
    assert torch.all(torch.isfinite(mean.grad)) and torch.all(torch.isfinite(log_var.grad))


def test_component_divergence_matches_pairwise_formulas():
    generator = torch.Generator().manual_seed(0)
    mean, var = torch.randn(5, 3, generator=generator), torch.rand(5, 3, generator=generator) + 0.1
    comp_means = torch.randn(4, 3, generator=generator)
    comp_vars = torch.rand(4, 3, generator=generator) + 0.1
    mixture = TorchMixture("diag", torch.zeros(4), comp_means, comp_vars**-0.5, torch.zeros(4))
    ajs = component_divergence(mean, var, mixture, "ajs", alpha=0.3)
    kl = component_divergence(mean, var, mixture, "kl")
    assert ajs.shape == kl.shape == (5, 4)
    torch.testing.assert_close(
        ajs[2, 1], skew_js_divergence(mean[2], var[2], comp_means[1], comp_vars[1], 0.3)
    )
    torch.testing.assert_close(kl[4, 3], gaussian_kl(mean[4], var[4], comp_means[3], comp_vars[3]))


# ----------------------------------------------------------------- mixture KL
@pytest.mark.parametrize("component", [None, 0, 1])
@pytest.mark.parametrize("covariance_type", ["diag", "full"])
def test_mixture_kl_matches_monte_carlo(covariance_type, component):
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
        None if component is None else torch.tensor([component]),
    ).item()

    # KL(q(z)q(c) || p(z, c)) = E_q(z)[log q(z) - sum_c gamma_c log(pi_c N(z; m_c, S_c))]
    #                           + sum_c gamma_c log gamma_c, with gamma = p(c | z0),
    # or the one-hot of the given component.
    gamma = gm.predict_proba(z0)[0] if component is None else np.eye(2)[component]
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
    estimate = integrand.mean() + np.sum(gamma * np.log(np.where(gamma > 0, gamma, 1.0)))
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


# ------------------------------------------------------------- spread penalty
def _batch_with_covariance(covariance, n_samples=64, seed=0):
    """A batch whose unbiased sample covariance is exactly ``covariance``."""
    Z = np.random.RandomState(seed).randn(n_samples, len(covariance))
    return torch.as_tensor(with_covariance(Z, covariance))


def test_spread_penalty_is_zero_for_identity_covariance_and_counts_folding():
    d = 4
    # Unit variances: the hinge is 1 - sqrt(1 + 1e-4) < 0, so zero.
    assert latent_spread_penalty(_batch_with_covariance(np.eye(d))).item() == pytest.approx(
        0, abs=1e-6
    )
    # All the variance along the first axis (same total): the other three
    # standard deviations are 0, so the hinge is 3/4 of (1 - sqrt(1e-4)).
    folded = latent_spread_penalty(_batch_with_covariance(np.diag([4.0, 1e-12, 1e-12, 1e-12])))
    assert folded.item() == pytest.approx(0.75 * (1 - 0.01), rel=1e-4)
    # Two perfectly correlated unit axes: only the covariance term, 2 * 1**2 / d.
    correlated = np.eye(d)
    correlated[0, 1] = correlated[1, 0] = 1 - 1e-9
    assert latent_spread_penalty(_batch_with_covariance(correlated)).item() == pytest.approx(
        2 / d, rel=1e-4
    )


def test_spread_penalty_gradient_unfolds_the_batch():
    z = _batch_with_covariance(np.diag([3.7, 0.1, 0.1, 0.1])).float()
    before = effective_dimension(z.numpy())
    z.requires_grad_(True)
    optimizer = torch.optim.SGD([z], lr=5.0)
    for _ in range(100):
        optimizer.zero_grad()
        latent_spread_penalty(z).backward()
        assert torch.all(torch.isfinite(z.grad))
        optimizer.step()
    # The hinge lifts the folded axes to unit spread and leaves the wide one
    # (in the estimator, the latent standardisation then caps the total).
    after = z.detach().numpy()
    np.testing.assert_allclose(after.std(axis=0, ddof=1)[1:], 1, atol=0.02)
    assert before < 1.3 and effective_dimension(after) > 2.6
    # Zero-variance dimensions keep a finite gradient.
    flat = torch.zeros(8, 3, requires_grad=True)
    (grad,) = torch.autograd.grad(latent_spread_penalty(flat + torch.arange(8.0)[:, None]), flat)
    assert torch.all(torch.isfinite(grad))
