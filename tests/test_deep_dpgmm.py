"""Tests specific to DeepDPGMMClusterer and its divergence.

The generic scikit-learn checks, pickling, pipelines and RNG isolation are in
``test_common.py``.
"""

import math

import numpy as np
import pytest
import torch
from _estimators import with_covariance
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from skdiffclust import DeepDPGMMClusterer
from skdiffclust._mixture import TorchMixture
from skdiffclust.losses import (
    component_divergence,
    gaussian_kl,
    latent_spread_penalty,
    skew_js_divergence,
)

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
    [("full", "ward", "auto"), ("diag", "ward", 1.7), ("diag", "random", 1.0)],
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


# ------------------------------------------------------------ latent spread
def _small_model(**params):
    """A DeepDPGMMClusterer small enough to fit in about a second."""
    defaults = dict(
        n_components=8,
        latent_dim=2,
        hidden_dims=(16,),
        pretrain_epochs=1,
        n_iter=0,
        device="cpu",
        random_state=0,
    )
    return DeepDPGMMClusterer(**{**defaults, **params})


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
    from skdiffclust._base import effective_dimension

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


def test_spread_weight_adds_the_penalty_to_the_network_loss():
    X, _ = make_blobs(n_samples=120, centers=3, n_features=6, random_state=0)
    model = _small_model(n_components=5, latent_dim=3, pretrain_epochs=2, n_iter=0).fit(X)
    mixture = TorchMixture.from_sklearn(model.mixture_, "cpu")
    x = torch.as_tensor(model._scale(X[:32]))
    losses = {}
    for weight in (0.0, 2.0):
        model.set_params(spread_weight=weight)
        model.encoder_.train()
        with torch.random.fork_rng():  # the same sampled codes for both weights
            torch.manual_seed(0)
            losses[weight] = model._network_loss(x, mixture)
    model.encoder_.train()
    mean, _ = model._encode(x)
    expected = 2.0 * latent_spread_penalty(mean)
    torch.testing.assert_close(losses[2.0] - losses[0.0], expected)


def test_e_step_sees_exactly_standardised_codes():
    X, _ = make_blobs(n_samples=300, centers=3, n_features=8, random_state=1)
    model = _small_model(n_components=8, latent_dim=4, hidden_dims=(32,), n_iter=2).fit(X)
    # The running statistics were set from the whole training set at the last
    # E-step (not left as running averages of the last epoch's batches).
    with torch.no_grad():
        raw = model.encoder_.encoder(torch.as_tensor(model._scale(X)))[0].double().numpy()
    encoder = model.encoder_
    np.testing.assert_allclose(encoder.running_mean.numpy(), raw.mean(axis=0), rtol=1e-5, atol=1e-7)
    assert encoder.running_var.item() == pytest.approx(np.mean(raw.var(axis=0)), rel=1e-5)
    Z = model.transform(X).astype(np.float64)
    np.testing.assert_allclose(Z.mean(axis=0), 0, atol=1e-4)
    # The E-step standardises its one pass of raw means exactly as the encoder does.
    Xs = torch.as_tensor(model._scale(X))
    np.testing.assert_array_equal(model._e_step_latents(Xs), model._encode_mean(Xs))


def test_auto_cluster_scale_grows_with_the_rows_the_mixture_sees():
    from skdiffclust.deep_dpgmm import AUTO_SCALE, AUTO_SCALE_SAMPLES, auto_cluster_scale

    assert auto_cluster_scale(AUTO_SCALE_SAMPLES) == pytest.approx(AUTO_SCALE)
    assert auto_cluster_scale(16 * AUTO_SCALE_SAMPLES) == pytest.approx(2 * AUTO_SCALE)
    X, _ = make_blobs(n_samples=160, centers=3, n_features=5, random_state=0)
    model = _small_model().fit(X)
    assert model.cluster_scale_ == pytest.approx(AUTO_SCALE * (160 / AUTO_SCALE_SAMPLES) ** 0.25)
    expected_prior = model.latent_dim * model.cluster_scale_**2 * np.eye(2)
    np.testing.assert_allclose(model.mixture_.covariance_prior, expected_prior)
    # The E-step subsample is what the mixture sees.
    model = _small_model(e_step_max_samples=40).fit(X)
    assert model.cluster_scale_ == pytest.approx(auto_cluster_scale(40))
    model = _small_model(cluster_scale=2.5).fit(X)
    assert model.cluster_scale_ == 2.5
    with pytest.raises(ValueError, match="cluster_scale"):
        DeepDPGMMClusterer(cluster_scale="large").fit(X)
