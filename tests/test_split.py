"""Splitting the clusters that the Dirichlet-process prior merged."""

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from skdiffclust import DeepDPGMMClusterer, deep_dpgmm
from skdiffclust._mixture import make_mixture, occupied_components
from skdiffclust._split import cross_fitted_projection, split_clusters, valley_ratio


def test_valley_ratio_is_small_between_separated_modes_and_one_without_a_second():
    rng = np.random.default_rng(0)
    apart = np.concatenate([rng.normal(-4, 1, 200), rng.normal(4, 1, 100)])
    assert valley_ratio(apart) < 0.1
    assert valley_ratio(rng.normal(0, 1, 300)) > 0.8
    # Skewed but unimodal data have no valley either.
    assert valley_ratio(rng.exponential(1.0, 300)) > 0.8
    assert valley_ratio(np.zeros(50)) == 1.0


def test_the_cross_fitted_projection_finds_no_gap_in_one_gaussian_cloud():
    # 2-means cuts any cloud in two; fitted on the projected rows themselves, a
    # cloud of 40 points in 10-D shows a gap along its own split axis.
    rng = np.random.RandomState(0)
    Z = rng.standard_normal((40, 10))
    ratios = []
    for seed in range(5):
        state = np.random.RandomState(seed)
        t = cross_fitted_projection(Z, np.ones(10), state)
        ratios.append(valley_ratio(t))
    assert min(ratios) > 0.6


def test_split_clusters_recovers_merged_blobs_and_leaves_single_ones():
    Z, y = make_blobs(
        n_samples=240,
        centers=8,
        n_features=10,
        cluster_std=1.0,
        center_box=(-15, 15),
        random_state=0,
    )
    merged = np.zeros(len(Z), dtype=int)
    labels = split_clusters(
        Z, merged, max_valley_ratio=0.6, min_rows=10, random_state=np.random.RandomState(0)
    )
    assert len(np.unique(labels)) == 8
    assert adjusted_rand_score(y, labels) > 0.95
    # The true partition is kept as it is, labels in order of first row.
    kept = split_clusters(
        Z, y + 5, max_valley_ratio=0.6, min_rows=10, random_state=np.random.RandomState(0)
    )
    assert adjusted_rand_score(y, kept) == 1.0
    assert set(kept) == set(range(8))


def test_split_clusters_keeps_halves_of_at_least_min_rows():
    Z, _ = make_blobs(n_samples=[100, 8], centers=[[0] * 5, [30] * 5], random_state=0)
    labels = split_clusters(
        Z,
        np.zeros(len(Z)),
        max_valley_ratio=0.6,
        min_rows=10,
        random_state=np.random.RandomState(0),
    )
    assert len(np.unique(labels)) == 1
    labels = split_clusters(
        Z, np.zeros(len(Z)), max_valley_ratio=0.6, min_rows=5, random_state=np.random.RandomState(0)
    )
    assert len(np.unique(labels)) == 2


@pytest.mark.parametrize("power", [1.0, 2.0])
def test_the_first_e_step_splits_what_the_prior_merged_and_shrinks_the_prior(monkeypatch, power):
    monkeypatch.setattr(deep_dpgmm, "SPLIT_SHRINK_POWER", power)
    # 20 blobs of 30 codes: a prior worth 10 pseudo-samples of variance 4 widens
    # such small clusters until neighbours merge.
    Z, y = make_blobs(
        n_samples=600,
        centers=20,
        n_features=10,
        cluster_std=1.0,
        center_box=(-10, 10),
        random_state=0,
    )
    Z = (Z - Z.mean(axis=0)) / Z.std(axis=0)
    model = DeepDPGMMClusterer()
    model.cluster_scale_, model.n_components_, model._split_shrink = 2.0, 30, 1.0
    mixture = make_mixture(random_state=np.random.RandomState(0), **model._mixture_params())
    mixture.fit(Z)
    n_merged = len(occupied_components(mixture, Z))
    assert n_merged < 15
    mixture = model._revise_first_partition(mixture, Z)
    n_split = len(occupied_components(mixture, Z))
    assert n_split == 20
    assert adjusted_rand_score(y, mixture.predict(Z)) > 0.95
    assert model.cluster_scale_ == pytest.approx(2.0 * (n_merged / n_split) ** power)
    assert model.n_components_ > n_split  # the truncation is not full
    # A warm refit under the shrunk prior keeps the whole split; under
    # the old prior it went back to about n_merged.
    mixture.set_params(max_iter=20).fit(Z)
    assert len(occupied_components(mixture, Z)) == n_split


def test_split_valley_zero_turns_the_splitting_off_and_is_validated():
    X, _ = make_blobs(
        n_samples=600,
        centers=20,
        n_features=10,
        cluster_std=1.0,
        center_box=(-10, 10),
        random_state=0,
    )
    fits = {}
    for split_valley in (0.0, 0.6):
        fits[split_valley] = DeepDPGMMClusterer(
            n_components=10,
            hidden_dims=(32,),
            pretrain_epochs=20,
            n_iter=0,
            cluster_scale=2.0,
            split_valley=split_valley,
            device="cpu",
            random_state=0,
        ).fit(X)
    assert fits[0.0].cluster_scale_ == 2.0
    assert fits[0.6].n_clusters_ >= fits[0.0].n_clusters_ + 5
    assert fits[0.6].cluster_scale_ < 2.0
    assert fits[0.6].n_components_ > fits[0.6].n_clusters_
    for bad in (-0.1, 1.5, "high"):
        with pytest.raises((ValueError, TypeError), match="split_valley"):
            DeepDPGMMClusterer(split_valley=bad).fit(X)


def test_a_warm_start_keeps_the_shrunk_prior_of_the_split():
    X, _ = make_blobs(
        n_samples=600,
        centers=20,
        n_features=10,
        cluster_std=1.0,
        center_box=(-10, 10),
        random_state=0,
    )
    model = DeepDPGMMClusterer(
        n_components=10,
        hidden_dims=(32,),
        pretrain_epochs=20,
        n_iter=0,
        cluster_scale=2.0,
        device="cpu",
        random_state=0,
    ).fit(X)
    scale, n_clusters = model.cluster_scale_, model.n_clusters_
    assert scale < 2.0
    model.set_params(warm_start=True, n_iter=1).fit(X)
    assert model.cluster_scale_ == pytest.approx(scale)
    assert model.n_clusters_ >= n_clusters - 3
    dim = model.network_spec_.latent_dim
    np.testing.assert_allclose(model.mixture_.covariance_prior, dim * scale**2 * np.eye(dim))
    # A new fit starts from the unshrunk prior again.
    model.set_params(warm_start=False, split_valley=0).fit(X)
    assert model.cluster_scale_ == 2.0
