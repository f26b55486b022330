"""The torch mixture posterior (``TorchMixture.for_posterior`` and ``log_proba``)
against scikit-learn's, through :func:`restricted_log_proba`."""

from functools import lru_cache

import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs
from sklearn.mixture import GaussianMixture

from skdiffclust._mixture import (
    TorchMixture,
    fit_mixture,
    make_mixture,
    restricted_log_proba,
    restricted_log_proba_torch,
)
from skdiffclust.losses import mixture_log_joint


@lru_cache
def _fitted(covariance_type, prior_type="dirichlet_process", n_features=5, random_state=0):
    """``(mixture, Z)``, fitted once per module: tests must not modify them."""
    Z, _ = make_blobs(n_samples=1000, n_features=n_features, centers=6, random_state=random_state)
    # Skewed, correlated codes: the full covariances are far from diagonal.
    Z = Z @ np.random.RandomState(random_state).normal(size=(n_features, n_features))
    mixture = make_mixture(
        8,
        covariance_type=covariance_type,
        weight_concentration_prior_type=prior_type,
        weight_concentration_prior=None,
        random_state=random_state,
    )
    return fit_mixture(mixture, Z), Z


@pytest.mark.parametrize("covariance_type", ["diag", "full"])
@pytest.mark.parametrize("prior_type", ["dirichlet_process", "dirichlet_distribution"])
@pytest.mark.parametrize("components", [None, [0, 2, 3, 5], [4]])
def test_float64_posterior_equals_sklearns(covariance_type, prior_type, components):
    mixture, Z = _fitted(covariance_type, prior_type)
    kept = np.arange(mixture.n_components) if components is None else np.asarray(components)
    expected = restricted_log_proba(mixture, Z, kept)
    view = TorchMixture.for_posterior(mixture, "cpu", components=components)
    got = view.log_proba(Z)
    assert got.dtype == torch.float64 and got.shape == expected.shape
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(got.argmax(dim=1).numpy(), expected.argmax(axis=1))
    np.testing.assert_allclose(torch.logsumexp(got, dim=1).numpy(), 0, atol=1e-12)
    # The numpy wrapper is the same computation.
    np.testing.assert_array_equal(restricted_log_proba_torch(mixture, Z, kept), got.numpy())


@pytest.mark.parametrize("covariance_type", ["diag", "full"])
def test_float32_posterior_close_to_sklearns(covariance_type):
    mixture, Z = _fitted(covariance_type)
    kept = np.array([1, 2, 4, 6, 7])
    expected = restricted_log_proba(mixture, Z, kept)
    got = TorchMixture.for_posterior(mixture, "cpu", kept, dtype=torch.float32).log_proba(Z)
    assert got.dtype == torch.float32
    # Compared where the posterior is not vanishingly small (log p > -30).
    visible = expected > -30
    np.testing.assert_allclose(got.numpy()[visible], expected[visible], atol=1e-3)
    # The argmax agrees except on near ties.
    top_two = np.sort(expected, axis=1)[:, -2:]
    clear = top_two[:, 1] - top_two[:, 0] > 1e-3
    np.testing.assert_array_equal(got.argmax(dim=1).numpy()[clear], expected.argmax(axis=1)[clear])


@pytest.mark.parametrize("covariance_type", ["diag", "full"])
def test_plain_gaussian_mixture(covariance_type):
    # Not only the Bayesian mixtures of the estimators: any sklearn mixture.
    _, Z = _fitted(covariance_type)
    mixture = GaussianMixture(4, covariance_type=covariance_type, random_state=0).fit(Z)
    kept = np.arange(4)
    np.testing.assert_allclose(
        restricted_log_proba_torch(mixture, Z, kept),
        restricted_log_proba(mixture, Z, kept),
        rtol=1e-9,
        atol=1e-9,
    )


@pytest.mark.parametrize("covariance_type", ["diag", "full"])
def test_log_proba_is_the_normalised_log_joint(covariance_type):
    # The matrix-product form computes what losses.mixture_log_joint does, for
    # any view; it differentiates the same way.
    mixture, Z = _fitted(covariance_type)
    view = TorchMixture.from_sklearn(mixture, "cpu", dtype=torch.float64)
    z = torch.as_tensor(Z[:300]).requires_grad_()
    got = view.log_proba(z)
    expected = torch.log_softmax(mixture_log_joint(z, view), dim=1)
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9)
    (grad_got,) = torch.autograd.grad(got[:, 0].sum(), z)
    (grad_expected,) = torch.autograd.grad(expected[:, 0].sum(), z)
    torch.testing.assert_close(grad_got, grad_expected, rtol=1e-7, atol=1e-9)


def test_log_proba_blocks_and_empty_input():
    mixture, Z = _fitted("full")
    view = TorchMixture.for_posterior(mixture, "cpu")
    n_rows = 2 * view._posterior_batch_size + 3  # blocks of unequal size
    Z = np.concatenate([Z] * 3)[:n_rows]
    np.testing.assert_allclose(
        view.log_proba(Z).numpy(),
        restricted_log_proba(mixture, Z, np.arange(mixture.n_components)),
        rtol=1e-9,
        atol=1e-9,
    )
    assert view.log_proba(Z[:0]).shape == (0, mixture.n_components)
