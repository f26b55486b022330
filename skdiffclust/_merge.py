"""Merging clusters that the codes' neighbour graph does not separate.

A Gaussian mixture cuts a curved or elongated group of codes into several
components, each locally Gaussian, and a Dirichlet-process prior keeps them
when the group is large. The neighbour graph of the codes does not see those
cuts: the rows on both sides of one are each other's nearest neighbours.
This module merges such clusters, greedily and as long as a merge raises the
modularity of the graph, that is while two clusters share more edges than a
random graph with the same degrees would give them. The test needs no
scale: it counts edges, so it does not depend on the number of rows, of
clusters or on the prior.
"""

import numpy as np
from scipy import sparse
from sklearn.neighbors import kneighbors_graph


def neighbour_graph(Z, n_neighbors):
    """The symmetric ``n_neighbors``-nearest-neighbour graph of the rows of ``Z`` (0/1, sparse)."""
    graph = kneighbors_graph(Z, n_neighbors=min(n_neighbors, len(Z) - 1), include_self=False)
    return graph.maximum(graph.T).tocsr()


def cluster_edges(graph, labels, n_clusters):
    """Edges between clusters (``n_clusters`` square, diagonal inside each) and their volumes."""
    membership = sparse.csr_matrix(
        (np.ones(len(labels)), (np.arange(len(labels)), labels)),
        shape=(len(labels), n_clusters),
    )
    edges = (membership.T @ graph @ membership).toarray()
    return edges, edges.sum(axis=1)


def merge_clusters(Z, labels, *, n_neighbors):
    """Merge the clusters of ``labels`` while a merge raises the modularity of the codes' graph.

    At each step the two clusters whose edges in the symmetric
    ``n_neighbors``-nearest-neighbour graph of ``Z`` most exceed the count
    expected from their volumes (``E_ij * 2m / (vol_i * vol_j) > 1``, where
    ``2m`` is the sum of all degrees) are merged.

    Returns
    -------
    labels : ndarray of shape (n_samples,)
        Labels ``0 .. K-1`` of the merged clusters, numbered in the order of
        the smallest input label each one holds.
    """
    _, labels = np.unique(labels, return_inverse=True)
    n_clusters = labels.max() + 1
    if n_clusters < 2 or len(Z) < 3:
        return labels
    edges, volume = cluster_edges(neighbour_graph(Z, n_neighbors), labels, n_clusters)
    total = volume.sum()
    # parent[k] is the cluster that cluster k was merged into (itself if kept).
    parent = np.arange(n_clusters)
    alive = np.ones(n_clusters, dtype=bool)
    while alive.sum() > 1:
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = edges * total / np.outer(volume, volume)
        ratio[~np.triu(np.outer(alive, alive), k=1)] = -np.inf
        i, j = np.unravel_index(np.argmax(ratio), ratio.shape)
        if not ratio[i, j] > 1.0:
            break
        # Cluster j joins cluster i: its edges and volume are added to i's.
        edges[i] += edges[j]
        edges[:, i] += edges[:, j]
        edges[j] = edges[:, j] = 0.0
        volume[i] += volume[j]
        volume[j] = 0.0
        alive[j] = False
        parent[parent == j] = i
    _, merged = np.unique(parent[labels], return_inverse=True)
    return merged
