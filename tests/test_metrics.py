"""Tests of skdiffclust.metrics: clustering accuracy and the effective dimension of codes."""

from itertools import permutations

import numpy as np
import pytest
from _estimators import with_covariance
from hypothesis import given
from hypothesis import strategies as st

from skdiffclust.metrics import clustering_accuracy, effective_dimension


@pytest.mark.parametrize(
    "y_true, y_pred, expected",
    [
        # Same partition under other label values.
        ([0, 0, 1, 1, 2, 2], [2, 2, 0, 0, 1, 1], 1.0),
        ([0, 0, 1, 1], [0, 0, 0, 1], 3 / 4),
        # More clusters than classes: class 0 is split, its smaller part unmatched.
        ([0, 0, 0, 1, 1], [0, 0, 2, 1, 1], 4 / 5),
        ([0, 0, 0, 1, 1, 1], [0, 1, 2, 3, 3, 3], 4 / 6),
        # Fewer clusters than classes: class 1 is left unmatched.
        ([0, 0, 1, 1, 2, 2], [0, 0, 0, 0, 1, 1], 4 / 6),
        # One cluster: the fraction of the majority class.
        ([0, 1, 1, 2, 1], [5, 5, 5, 5, 5], 3 / 5),
        # Greedy matching (largest cell first: class 0 -> cluster 0) gives 3/7;
        # the optimal matching crosses over: class 0 -> 1, class 1 -> 0.
        ([0, 0, 0, 0, 0, 1, 1], [0, 0, 0, 1, 1, 0, 0], 4 / 7),
        # Labels of any hashable, sortable type.
        (["cat", "cat", "dog"], [7, 7, 3], 1.0),
        ([1], [0], 1.0),
    ],
)
def test_clustering_accuracy_hand_computed(y_true, y_pred, expected):
    assert clustering_accuracy(y_true, y_pred) == pytest.approx(expected)


def test_clustering_accuracy_returns_python_float():
    assert type(clustering_accuracy(np.array([0, 1]), np.array([1, 0]))) is float


@pytest.mark.parametrize(
    "y_true, y_pred, message",
    [
        ([0, 1, 1], [0, 1], "inconsistent numbers of samples"),
        ([[0, 1], [1, 0]], [0, 1], "y_true must be 1-D"),
        ([0, 1], np.zeros((2, 1)), "y_pred must be 1-D"),
        ([], [], "at least one sample"),
    ],
)
def test_clustering_accuracy_invalid_input(y_true, y_pred, message):
    with pytest.raises(ValueError, match=message):
        clustering_accuracy(y_true, y_pred)


def _brute_force_accuracy(y_true, y_pred):
    """Best accuracy over every one-to-one matching, by enumeration."""
    classes, clusters = np.unique(y_true), np.unique(y_pred)
    counts = np.array([[np.sum((y_true == a) & (y_pred == b)) for b in clusters] for a in classes])
    if len(classes) > len(clusters):
        counts = counts.T
    best = max(
        sum(counts[row, col] for row, col in enumerate(cols))
        for cols in permutations(range(counts.shape[1]), counts.shape[0])
    )
    return best / len(y_true)


# Paired label arrays of equal length; few distinct labels keep the brute force cheap.
labelings = st.integers(min_value=1, max_value=40).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 4), min_size=n, max_size=n),
        st.lists(st.integers(0, 4), min_size=n, max_size=n),
    )
)
relabelings = st.permutations(range(5))


@given(labelings)
def test_clustering_accuracy_matches_brute_force(labels):
    y_true, y_pred = map(np.asarray, labels)
    assert clustering_accuracy(y_true, y_pred) == pytest.approx(
        _brute_force_accuracy(y_true, y_pred)
    )


@given(labelings, relabelings, relabelings)
def test_clustering_accuracy_invariant_to_relabeling(labels, true_map, pred_map):
    y_true, y_pred = map(np.asarray, labels)
    expected = clustering_accuracy(y_true, y_pred)
    assert clustering_accuracy(np.take(true_map, y_true), y_pred) == pytest.approx(expected)
    assert clustering_accuracy(y_true, np.take(pred_map, y_pred)) == pytest.approx(expected)


@given(labelings, st.randoms(use_true_random=False))
def test_clustering_accuracy_invariant_to_sample_order(labels, rng):
    y_true, y_pred = map(np.asarray, labels)
    order = list(range(len(y_true)))
    rng.shuffle(order)
    assert clustering_accuracy(y_true[order], y_pred[order]) == pytest.approx(
        clustering_accuracy(y_true, y_pred)
    )


@given(labelings)
def test_clustering_accuracy_symmetric(labels):
    y_true, y_pred = labels
    assert clustering_accuracy(y_true, y_pred) == pytest.approx(clustering_accuracy(y_pred, y_true))


@given(labelings)
def test_clustering_accuracy_bounds(labels):
    y_true, y_pred = map(np.asarray, labels)
    accuracy = clustering_accuracy(y_true, y_pred)
    assert 0.0 < accuracy <= 1.0
    # At least the largest cell of the contingency matrix is matched.
    largest_cell = max(np.sum((y_true == a) & (y_pred == b)) for a in y_true for b in y_pred)
    assert accuracy >= largest_cell / len(y_true) - 1e-12


@given(labelings, relabelings)
def test_clustering_accuracy_one_for_identical_partitions(labels, relabeling):
    y_true, _ = labels
    y_pred = np.take(relabeling, y_true)
    assert clustering_accuracy(y_true, y_pred) == 1.0


@given(labelings, st.integers())
def test_clustering_accuracy_single_cluster_is_majority_fraction(labels, cluster):
    y_true, _ = labels
    majority_fraction = np.bincount(y_true).max() / len(y_true)
    assert clustering_accuracy(y_true, [cluster] * len(y_true)) == pytest.approx(majority_fraction)


# -------------------------------------------------------- effective dimension
def test_effective_dimension_is_the_participation_ratio_of_the_spectrum():
    rng = np.random.RandomState(0)
    assert effective_dimension(with_covariance(rng.randn(50, 5), np.eye(5))) == pytest.approx(5)
    # Principal variances 3 and 1, rotated by 30 degrees: 4**2 / (9 + 1).
    c, s = np.cos(np.pi / 6), np.sin(np.pi / 6)
    rotation = np.array([[c, -s], [s, c]])
    covariance = rotation @ np.diag([3.0, 1.0]) @ rotation.T
    assert effective_dimension(with_covariance(rng.randn(50, 2), covariance)) == pytest.approx(1.6)
    # All the variance along one direction.
    line = rng.randn(50, 1) * np.array([[1.0, -2.0, 0.5]])
    assert effective_dimension(line) == pytest.approx(1)
    assert np.isnan(effective_dimension(np.ones((10, 3))))
    assert np.isnan(effective_dimension(np.zeros((1, 3))))


def test_effective_dimension_of_one_latent_dimension():
    rng = np.random.RandomState(0)
    assert effective_dimension(rng.randn(30, 1)) == pytest.approx(1)
    assert effective_dimension(rng.randn(30, 1).tolist()) == pytest.approx(1)
    assert np.isnan(effective_dimension(np.full((5, 1), 2.0)))


def test_effective_dimension_is_public_and_returns_a_python_float():
    import skdiffclust.metrics

    assert "effective_dimension" in skdiffclust.metrics.__all__
    assert type(effective_dimension(np.random.RandomState(0).randn(10, 3))) is float
