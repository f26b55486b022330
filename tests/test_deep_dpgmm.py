"""Tests specific to DeepDPGMMClusterer and its divergence.

The generic scikit-learn checks, pickling, pipelines and RNG isolation are in
``test_common.py``.
"""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from skdiffclust import DeepDPGMMClusterer
from skdiffclust._mixture import TorchMixture
from skdiffclust.losses import component_divergence, gaussian_kl, skew_js_divergence

_SMALL = dict(
    latent_dim=2,
    hidden_dims=(16,),
    pretrain_epochs=3,
    n_iter=2,
    batch_size=32,
    device="cpu",
    random_state=0,
)


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
    # Nielsen's worked example (DESIGN.md section 3).
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


@pytest.mark.parametrize(
    "covariance_type, init_params, cluster_scale",
    # The defaults, Ward with the method's diagonal covariances, and the
    # previous defaults.
    [("full", "ward", 1.7), ("diag", "ward", 1.7), ("diag", "random", 1.0)],
)
def test_finds_the_number_of_well_separated_blobs(covariance_type, init_params, cluster_scale):
    X, y = make_blobs(
        n_samples=400,
        centers=4,
        n_features=10,
        cluster_std=1.0,
        center_box=(-20, 20),
        random_state=0,
    )
    model = DeepDPGMMClusterer(
        n_components=20,
        latent_dim=4,
        hidden_dims=(64,),
        pretrain_epochs=30,
        n_iter=10,
        covariance_type=covariance_type,
        init_params=init_params,
        cluster_scale=cluster_scale,
        device="cpu",
        random_state=0,
    ).fit(X)
    assert model.mixture_.covariance_type == covariance_type
    assert model.n_clusters_ == 4
    assert adjusted_rand_score(y, model.labels_) > 0.95
    history = model.n_clusters_history_
    assert len(history) == model.n_iter + 1 and history[-1] == model.n_clusters_


def test_covariance_prior_follows_cluster_scale():
    for covariance_type, expected in [("diag", np.full(3, 12.0)), ("full", 12.0 * np.eye(3))]:
        model = DeepDPGMMClusterer(latent_dim=3, cluster_scale=2.0, covariance_type=covariance_type)
        params = model._mixture_params()
        assert params["covariance_type"] == covariance_type
        np.testing.assert_array_equal(params["covariance_prior"], expected)


@pytest.mark.parametrize("divergence", ["ajs", "kl"])
@pytest.mark.parametrize("assignment", ["hard", "soft"])
def test_divergence_and_assignment_options_run(divergence, assignment):
    X, _ = make_blobs(n_samples=90, centers=3, random_state=0)
    model = DeepDPGMMClusterer(
        n_components=6, divergence=divergence, assignment=assignment, alpha=0.3, **_SMALL
    ).fit(X)
    assert np.all(np.isfinite(model.history_["loss"]))
    proba = model.predict_proba(X)
    assert proba.shape == (90, model.n_clusters_)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(np.unique(model.labels_), np.arange(model.n_clusters_))


def test_sample_shapes_and_labels():
    X, _ = make_blobs(n_samples=90, centers=3, random_state=0)
    model = DeepDPGMMClusterer(n_components=6, **_SMALL).fit(X)
    X_new, y_new = model.sample(25)
    assert X_new.shape == (25, 2) and y_new.shape == (25,)
    assert set(y_new) <= set(range(model.n_clusters_))
    assert np.all(np.diff(y_new) >= 0)  # grouped by cluster, as GaussianMixture.sample
    X_one, y_one = model.sample(5, cluster=model.n_clusters_ - 1)
    assert X_one.shape == (5, 2)
    np.testing.assert_array_equal(y_one, model.n_clusters_ - 1)
    with pytest.raises(ValueError, match="cluster must be"):
        model.sample(2, cluster=model.n_clusters_)


def test_conv_backbone_runs():
    rng = np.random.RandomState(0)
    X = rng.rand(40, 64)
    model = DeepDPGMMClusterer(n_components=4, image_shape=(1, 8, 8), conv_width=4, **_SMALL).fit(X)
    assert model.sample(3)[0].shape == (3, 64)
