"""Splitting clusters whose codes hold two well-separated groups.

A Dirichlet-process mixture whose covariance prior is worth a fixed number of
pseudo-samples widens small clusters more than large ones, so on data with
many small clusters it merges neighbours that are plainly apart. This module
splits such merges after the fact: a cluster is cut in two by 2-means when its
codes, projected on the 2-means axis, have two modes separated by a deep
valley. The test needs no scale: it compares densities along one line, so it
does not depend on the number of rows, of clusters or on the prior.

The axis is cross-fitted: each row is projected on an axis that 2-means found
without it. An axis fitted on the same rows would find a gap in any cloud of
a few dozen points in ten dimensions.
"""

import numpy as np
from sklearn.cluster import KMeans

#: Folds of the cross-fitted projection.
N_FOLDS = 5

#: Points of the grid on which the density of the projection is evaluated.
GRID_SIZE = 256


def valley_ratio(t, cut=0.0):
    """Density at the valley between the modes on either side of ``cut``, over the lower mode's.

    The density of ``t`` is a Gaussian kernel estimate with Silverman's
    bandwidth, which oversmooths multimodal data, so a deep valley is strong
    evidence of two groups. The modes are the highest points of the density
    below and above ``cut`` (the boundary of the split under test), so a
    bump in a tail does not count as a second group. Returns 1.0 when one
    side is empty or the density has no valley between them.
    """
    t = np.asarray(t, dtype=np.float64)
    spread = np.std(t)
    iqr = np.subtract(*np.percentile(t, [75, 25]))
    if iqr > 0:
        spread = min(spread, iqr / 1.34)
    if spread <= 0:
        return 1.0
    bandwidth = 0.9 * spread * len(t) ** -0.2
    grid = np.linspace(t.min(), t.max(), GRID_SIZE)
    density = np.exp(-0.5 * ((grid[:, None] - t[None, :]) / bandwidth) ** 2).sum(axis=1)
    below, above = np.flatnonzero(grid < cut), np.flatnonzero(grid >= cut)
    if len(below) == 0 or len(above) == 0:
        return 1.0
    left = below[np.argmax(density[below])]
    right = above[np.argmax(density[above])]
    lower_mode = min(density[left], density[right])
    return float(density[left : right + 1].min() / lower_mode)


def cross_fitted_projection(Z, reference_axis, random_state):
    """Coordinate of each row of ``Z`` along a 2-means axis fitted without it.

    Each fold's axis is oriented like ``reference_axis`` and its coordinate is
    0 at the midpoint of the fold's two centroids (the boundary of its split)
    and 0.5 at the second centroid, so the folds' coordinates are on one scale.
    """
    folds = np.array_split(random_state.permutation(len(Z)), N_FOLDS)
    t = np.empty(len(Z))
    for test in folds:
        train = np.ones(len(Z), dtype=bool)
        train[test] = False
        centers = _two_means(Z[train], random_state).cluster_centers_
        axis = centers[1] - centers[0]
        if axis @ reference_axis < 0:
            axis = -axis
        t[test] = (Z[test] - centers.mean(axis=0)) @ axis / max(axis @ axis, 1e-300)
    return t


def split_clusters(Z, labels, *, max_valley_ratio, min_rows, random_state):
    """Split the clusters of ``labels`` while their codes hold two separated groups.

    A cluster is cut by 2-means when both halves have at least ``min_rows``
    rows and the cross-fitted projection of its codes on the 2-means axis has
    a :func:`valley_ratio` below ``max_valley_ratio``; both halves are then
    tested in turn.

    Returns
    -------
    labels : ndarray of shape (n_samples,)
        Labels ``0 .. K-1``: the clusters of ``labels`` in order of their first
        row, each split cluster's second half numbered after them.
    """
    _, labels = np.unique(labels, return_inverse=True)
    pending = list(range(labels.max() + 1))
    next_label = len(pending)
    while pending:
        cluster = pending.pop()
        rows = np.flatnonzero(labels == cluster)
        halves = _separated_halves(Z[rows], max_valley_ratio, min_rows, random_state)
        if halves is None:
            continue
        labels[rows[halves]] = next_label
        pending += [cluster, next_label]
        next_label += 1
    return labels


def _separated_halves(Z, max_valley_ratio, min_rows, random_state):
    """The second half of 2-means on ``Z`` as a mask, if the halves are apart; else None."""
    if len(Z) < max(2 * min_rows, 2 * N_FOLDS):
        return None
    two_means = _two_means(Z, random_state)
    second = two_means.labels_ == 1
    if min(second.sum(), (~second).sum()) < min_rows:
        return None
    centers = two_means.cluster_centers_
    t = cross_fitted_projection(Z, centers[1] - centers[0], random_state)
    return second if valley_ratio(t) < max_valley_ratio else None


def _two_means(Z, random_state):
    return KMeans(2, n_init=3, random_state=random_state.randint(np.iinfo(np.int32).max)).fit(Z)
