"""The E-step's mixture: Ward's initialisation."""

import numpy as np
import pytest
from sklearn.cluster import AgglomerativeClustering
from sklearn.metrics import adjusted_rand_score

from skdiffclust import _mixture
from skdiffclust._mixture import LatentMixture, make_mixture, ward_labels


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
