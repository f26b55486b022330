"""Metrics to evaluate a clustering against ground-truth classes, and the shape of
latent codes."""

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics.cluster import contingency_matrix
from sklearn.utils import check_consistent_length

__all__ = ["clustering_accuracy", "effective_dimension"]


def _check_labels(labels, name):
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got an array of shape {labels.shape}.")
    return labels


def clustering_accuracy(y_true, y_pred):
    """Accuracy of a clustering under the best one-to-one matching of clusters to classes.

    The clusters are matched to the classes by the Hungarian algorithm
    (:func:`scipy.optimize.linear_sum_assignment`) on the contingency matrix,
    maximising the number of samples whose matched class is their true class.
    The score is that number divided by the number of samples.

    The numbers of clusters and of classes may differ: each class is matched to
    at most one cluster and each cluster to at most one class, so the samples
    of unmatched clusters (when there are more clusters than classes) or of
    unmatched classes (when there are fewer) count as errors.

    Like the other clustering metrics of :mod:`sklearn.metrics.cluster`, the
    score only depends on the partitions, not on the label values.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Ground-truth class labels.

    y_pred : array-like of shape (n_samples,)
        Cluster labels to evaluate.

    Returns
    -------
    accuracy : float
        Fraction of samples in the matched cluster of their class, in [0, 1];
        1.0 means that both labelings are the same partition.

    See Also
    --------
    sklearn.metrics.adjusted_rand_score : Pair-counting agreement, adjusted for chance.
    sklearn.metrics.normalized_mutual_info_score : Normalized mutual information.

    Notes
    -----
    This is the "unsupervised clustering accuracy" (ACC) of the deep clustering
    literature (e.g. Xie, Girshick and Farhadi, "Unsupervised Deep Embedding
    for Clustering Analysis", ICML 2016). It is not adjusted for chance: with
    many small clusters it can be high for a random labeling.

    Examples
    --------
    >>> from skdiffclust.metrics import clustering_accuracy
    >>> clustering_accuracy([0, 0, 1, 1], [1, 1, 0, 0])
    1.0
    >>> clustering_accuracy([0, 0, 1, 1], [0, 0, 0, 1])
    0.75

    More clusters than classes: the smaller cluster of class 0 is unmatched.

    >>> clustering_accuracy([0, 0, 0, 1, 1], [0, 0, 2, 1, 1])
    0.8
    """
    y_true = _check_labels(y_true, "y_true")
    y_pred = _check_labels(y_pred, "y_pred")
    check_consistent_length(y_true, y_pred)
    if y_true.shape[0] == 0:
        raise ValueError("clustering_accuracy needs at least one sample, got 0.")

    # Rows are classes, columns are clusters; the assignment handles the
    # rectangular case by leaving the extra rows or columns unmatched.
    contingency = contingency_matrix(y_true, y_pred)
    classes, clusters = linear_sum_assignment(contingency, maximize=True)
    return float(contingency[classes, clusters].sum() / y_true.shape[0])


def effective_dimension(Z):
    """Participation ratio of the covariance spectrum of ``Z``, from 1 to n_features.

    ``(sum of eigenvalues)**2 / sum of squared eigenvalues``: n_features when
    the variance is spread evenly over all directions, 1 when it lies along a
    single one. A drop during training means the codes are collapsing onto a
    few directions.

    Parameters
    ----------
    Z : array-like of shape (n_samples, n_features)
        Latent codes, for example an estimator's ``transform``.

    Returns
    -------
    float
        NaN for fewer than two rows or for codes without spread.
    """
    if len(Z) < 2:
        return float("nan")
    # atleast_2d: np.cov of a single column is a scalar.
    covariance = np.atleast_2d(np.cov(np.asarray(Z, dtype=np.float64), rowvar=False))
    eigenvalues = np.linalg.eigvalsh(covariance)
    eigenvalues = np.clip(np.atleast_1d(eigenvalues), 0, None)
    total = eigenvalues.sum()
    if total == 0:
        return float("nan")
    return float(total**2 / np.sum(eigenvalues**2))
