"""Merging the clusters that the codes' neighbour graph does not separate."""

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from skdiffclust import DeepDPGMMClusterer
from skdiffclust._merge import cluster_edges, merge_clusters, neighbour_graph
from skdiffclust._mixture import make_mixture, refit_from_partition


def _cut_blob_and_a_far_one(n_features, rng):
    """A blob cut into three slabs along its first axis, and a second blob far away."""
    near = rng.standard_normal((200, n_features))
    far = rng.standard_normal((200, n_features)) + 10
    labels = np.r_[np.digitize(near[:, 0], [-0.5, 0.5]), np.full(200, 3)]
    return np.vstack([near, far]), labels


def test_neighbour_graph_is_symmetric_and_cluster_edges_add_up():
    Z, y = make_blobs(n_samples=120, centers=3, n_features=5, random_state=0)
    graph = neighbour_graph(Z, 10)
    assert (graph != graph.T).nnz == 0
    assert graph.diagonal().sum() == 0
    assert np.all(np.asarray(graph.sum(axis=1)).ravel() >= 10)
    edges, volume = cluster_edges(graph, y, 3)
    np.testing.assert_allclose(edges, edges.T)
    assert volume.sum() == graph.sum()
    # Blobs this far apart share (almost) no edges.
    assert edges[~np.eye(3, dtype=bool)].sum() < 0.05 * volume.sum()


def test_slabs_of_one_blob_in_ten_dimensions_are_merged_and_the_far_blob_kept():
    Z, labels = _cut_blob_and_a_far_one(10, np.random.RandomState(0))
    merged = merge_clusters(Z, labels, n_neighbors=10)
    np.testing.assert_array_equal(merged, np.r_[np.zeros(200), np.ones(200)])


def test_separated_clusters_are_kept_and_relabelled_in_order():
    Z, y = make_blobs(
        n_samples=600, centers=20, n_features=10, center_box=(-10, 10), random_state=0
    )
    merged = merge_clusters(Z, 2 * y + 7, n_neighbors=10)
    assert adjusted_rand_score(y, merged) == 1.0
    np.testing.assert_array_equal(merged, y)


def _modularity(Z, labels):
    graph = neighbour_graph(Z, 10)
    edges, volume = cluster_edges(graph, labels, labels.max() + 1)
    total = volume.sum()
    return (np.trace(edges) - (volume**2).sum() / total) / total


def test_each_merge_raises_the_modularity_and_a_single_cluster_or_tiny_input_is_kept():
    rng = np.random.RandomState(0)
    Z = rng.standard_normal((300, 10))
    labels = rng.randint(6, size=300)
    merged = merge_clusters(Z, labels, n_neighbors=10)
    assert merged.max() < labels.max()
    assert _modularity(Z, merged) > _modularity(Z, labels)
    np.testing.assert_array_equal(merge_clusters(Z, np.zeros(300), n_neighbors=10), 0)
    np.testing.assert_array_equal(merge_clusters(Z[:2], np.array([3, 5]), n_neighbors=10), [0, 1])


def test_the_first_e_step_merges_over_split_codes_when_merge_neighbors_is_set():
    # One blob cut in three by the mixture (a prior far too narrow for it) and
    # a far blob: the merge puts the slabs back together.
    Z, labels = _cut_blob_and_a_far_one(10, np.random.RandomState(0))
    model = DeepDPGMMClusterer(n_components=8, merge_neighbors=10)
    model.cluster_scale_, model.n_components_, model._split_shrink = 1.0, 8, 1.0
    mixture = make_mixture(random_state=np.random.RandomState(0), **model._mixture_params())
    mixture = refit_from_partition(mixture, Z, labels, max_iter=1)
    assert len(np.unique(mixture.predict(Z))) == 4
    merged = model._revise_first_partition(mixture, Z)
    assert adjusted_rand_score(np.r_[np.zeros(200), np.ones(200)], merged.predict(Z)) == 1.0
    model.set_params(merge_neighbors=0, split_valley=0)
    assert model._revise_first_partition(mixture, Z) is mixture


@pytest.mark.parametrize("bad", [-1, 2.5, "ten"])
def test_merge_neighbors_is_validated(bad):
    X, _ = make_blobs(n_samples=60, centers=2, random_state=0)
    with pytest.raises((ValueError, TypeError), match="merge_neighbors"):
        DeepDPGMMClusterer(merge_neighbors=bad).fit(X)
