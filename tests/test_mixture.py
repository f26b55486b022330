"""The E-step's mixture: Ward's initialisation, warm refits, and the mixture on torch."""

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.cluster import AgglomerativeClustering
from sklearn.metrics import adjusted_rand_score

from skdiffclust import _mixture
from skdiffclust._mixture import (
    INIT_PARAMS,
    LatentMixture,
    TorchMixture,
    fit_mixture,
    make_mixture,
    occupied_components,
    refit_from_partition,
    umap_labels,
    ward_labels,
)


def _three_blobs(n_per_blob=(100, 100, 100), random_state=0):
    rng = np.random.RandomState(random_state)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    y = np.repeat([0, 1, 2], n_per_blob)
    return centres[y] + rng.normal(0, 0.5, size=(len(y), 2)), y


def _latent_mixture(init_params, n_components=2, random_state=0):
    return make_mixture(
        n_components,
        covariance_type="full",
        weight_concentration_prior_type="dirichlet_distribution",
        weight_concentration_prior=None,
        random_state=random_state,
        init_params=init_params,
    )


def test_ward_labels_match_agglomerative_clustering():
    Z, _ = _three_blobs()
    Z = np.concatenate([Z, np.random.RandomState(1).uniform(-5, 15, size=(50, 2))])
    expected = AgglomerativeClustering(3, linkage="ward").fit_predict(Z)
    assert adjusted_rand_score(expected, ward_labels(Z, 3, np.random.RandomState(0))) == 1.0


def test_ward_labels_on_a_subset_label_every_row(monkeypatch):
    Z, y = _three_blobs()
    monkeypatch.setattr(_mixture, "WARD_MAX_SAMPLES", 40)
    labels = ward_labels(Z, 3, np.random.RandomState(0))
    assert labels.shape == (300,)
    assert adjusted_rand_score(y, labels) == 1.0


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_ward_start_is_the_mixtures_start(monkeypatch):
    Z, y = _three_blobs((150, 100, 50))
    calls = []

    def recording_ward_labels(Z, n_clusters, random_state):
        calls.append(n_clusters)
        return y

    monkeypatch.setattr(_mixture, "ward_labels", recording_ward_labels)
    mixture = _latent_mixture("ward", n_components=3).set_params(max_iter=1).fit(Z)
    assert isinstance(mixture, LatentMixture)
    assert calls == [3]
    # One variational iteration from the given partition keeps its weights.
    np.testing.assert_allclose(mixture.weights_, [0.5, 1 / 3, 1 / 6], atol=0.01)


def test_ward_start_recovers_blobs_and_does_not_depend_on_the_seed():
    Z, y = _three_blobs((150, 100, 50))
    first = _latent_mixture("ward", n_components=3, random_state=0).fit(Z).predict(Z)
    second = _latent_mixture("ward", n_components=3, random_state=1).fit(Z).predict(Z)
    assert adjusted_rand_score(y, first) == 1.0
    np.testing.assert_array_equal(first, second)


def test_unknown_init_params_is_rejected():
    Z, _ = _three_blobs()
    with pytest.raises(ValueError, match="init_params"):
        _latent_mixture("spectral").fit(Z)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("init_params", INIT_PARAMS)
def test_every_init_params_fits(init_params):
    Z, y = _three_blobs()
    labels = _latent_mixture(init_params, n_components=3).fit(Z).predict(Z)
    assert labels.shape == y.shape


def _two_moons_in_3d(n=300, random_state=0):
    """Two interleaved half-circles: no two Gaussians in the plane separate them."""
    from sklearn.datasets import make_moons

    X, y = make_moons(n, noise=0.05, random_state=random_state)
    return np.column_stack([X, np.zeros(n)]) * 3, y


def test_umap_start_follows_the_manifolds_where_gaussians_cut_across():
    pytest.importorskip("umap")
    Z, y = _two_moons_in_3d()
    by_umap = umap_labels(Z, 2, np.random.RandomState(0))
    assert adjusted_rand_score(y, by_umap) > 0.9
    by_kmeans_start = _latent_mixture("kmeans", n_components=2).fit(Z).predict(Z)
    assert adjusted_rand_score(y, by_kmeans_start) < 0.6


def test_umap_start_is_the_mixtures_start_and_keeps_torchs_threads():
    pytest.importorskip("umap")
    Z, _ = _three_blobs()
    threads = torch.get_num_threads()
    labels = _latent_mixture("umap", n_components=3, random_state=0).fit(Z).predict(Z)
    assert torch.get_num_threads() == threads
    again = _latent_mixture("umap", n_components=3, random_state=0).fit(Z).predict(Z)
    np.testing.assert_array_equal(labels, again)
    assert adjusted_rand_score(umap_labels(Z, 3, np.random.RandomState(0)), labels) == 1.0


def test_refit_from_partition_keeps_the_partitions_order_and_forgets_the_old_fit():
    Z, y = _three_blobs()
    fitted = _latent_mixture("kmeans", n_components=3).fit(Z)
    order = np.array([2, 0, 1])  # component order[k] is blob k
    refit = refit_from_partition(fitted, Z, order[y], max_iter=1)
    assert refit is not fitted
    np.testing.assert_array_equal(refit.predict(Z), order[y])
    centres = np.stack([Z[y == k].mean(axis=0) for k in range(3)])
    np.testing.assert_allclose(refit.means_[order], centres, atol=0.15)  # the prior shrinks them
    assert refit.n_iter_ == 1 and refit.max_iter == 1
    assert not hasattr(refit, "_start_partition")
    # The partition is used once: a later plain fit starts as the parameters say.
    again = clone(refit).set_params(max_iter=100).fit(Z)
    assert adjusted_rand_score(y, again.predict(Z)) == 1.0


# ---------------------------------------------------------------- warm refits
def test_em_refits_the_mixture_when_a_component_is_lost():
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


# -------------------------------------------------------------- on torch
@pytest.mark.parametrize("covariance_type", ["diag", "full"])
def test_torch_mixture_has_the_variances_of_the_fitted_one(covariance_type):
    Z, _ = _three_blobs()
    mixture = make_mixture(
        3,
        covariance_type=covariance_type,
        weight_concentration_prior_type="dirichlet_distribution",
        weight_concentration_prior=None,
        random_state=0,
    ).fit(Z)
    torch_mixture = TorchMixture.from_sklearn(mixture, "cpu", dtype=torch.float64)
    variances = mixture.covariances_
    if covariance_type == "full":
        variances = np.diagonal(variances, axis1=1, axis2=2)
    np.testing.assert_allclose(torch_mixture.variances().numpy(), variances, rtol=1e-10)
    np.testing.assert_allclose(torch_mixture.means.numpy(), mixture.means_)
