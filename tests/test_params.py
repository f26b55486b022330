"""Every parameter, drawn from its own constraint, is accepted or rejected before
any network is built.

The values come from each estimator's ``_parameter_constraints``: inside an
interval as Python and numpy numbers, and outside it (bools, values beyond
the bounds, strings). A valid value must fit; an invalid one must raise
scikit-learn's ``InvalidParameterError`` before a network exists.
"""

from numbers import Integral

import numpy as np
import pytest
from _estimators import ESTIMATORS, blobs, estimator_id
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.utils._param_validation import (
    Interval,
    InvalidParameterError,
    StrOptions,
    make_constraint,
)

from skdiffclust._base import TrainingDivergedError

#: Parameters whose valid values are set by hand: their constraint is not a
#: number interval or a set of strings (or their large values only cost time).
_VALID = {
    "hidden_dims": st.sampled_from([(8,), [8, 4], np.array([8])]),
    "image_shape": st.just(None),
    "device": st.sampled_from(["cpu", np.str_("cpu")]),
    "random_state": st.sampled_from([0, np.int64(1), None, np.random.RandomState(0)]),
    "verbose": st.sampled_from([0, False]),
    "warm_start": st.sampled_from([False, True, np.bool_(False)]),
    "callbacks": st.sampled_from([None, [], ()]),
    "e_step_max_samples": st.sampled_from([None, 10, np.int64(40)]),
    # Image-only settings: the vector estimators drawn here need None.
    "augmentation": st.just(None),
}

#: Upper ends of the valid draws, so that a fit stays fast.
_SMALL_UPPER = {
    "pretrain_epochs": 3,
    "n_iter": 2,
    "batch_size": 40,
    "latent_dim": 3,
    "n_clusters": 3,
    "n_components": 6,
    "n_timesteps": 12,
    "conv_width": 16,
    "unet_width": 16,
    "learning_rate": 0.05,
    "em_learning_rate": 0.05,
}

_NUMBER_TYPES = {
    "int": [int, np.int32, np.int64],
    "real": [float, np.float32, np.float64],
}


def _constraints(estimator, name):
    return [make_constraint(c) for c in estimator._parameter_constraints[name]]


def _valid_values(estimator, name):
    if name in _VALID:
        return _VALID[name]
    options = []
    for constraint in _constraints(estimator, name):
        if getattr(constraint, "hidden", False):
            continue
        if isinstance(constraint, StrOptions):
            options.append(st.sampled_from(sorted(constraint.options)))
        elif isinstance(constraint, Interval):
            low = constraint.left if constraint.left is not None else 0
            high = min(constraint.right or np.inf, _SMALL_UPPER.get(name, low + 3))
            if issubclass(constraint.type, Integral):
                types = _NUMBER_TYPES["int"]
                values = st.integers(int(low), int(max(high, low)))
            else:
                types = _NUMBER_TYPES["real"]
                high = high if high > low else low + 1.0
                values = st.floats(low, high, exclude_min=True, exclude_max=True)
            typed = st.tuples(values, st.sampled_from(types)).map(lambda v: v[1](v[0]))
            # float32 rounding can land on an open bound.
            options.append(typed.filter(constraint.is_satisfied_by))
        elif type(constraint).__name__ == "_NoneConstraint":
            options.append(st.just(None))
    assert options, f"no valid value drawn for {name}"
    return st.one_of(options)


def _invalid_values(estimator, name):
    constraints = _constraints(estimator, name)
    candidates = [True, np.bool_(True), "bogus", -7, 1e9, float("nan"), object()]
    bad = [v for v in candidates if not any(c.is_satisfied_by(v) for c in constraints)]
    return st.sampled_from(bad) if bad else st.nothing()


def _networks_never_built(monkeypatch, estimator):
    def fail(*args, **kwargs):
        raise AssertionError("a network was built before the parameters were validated")

    monkeypatch.setattr(type(estimator), "_build_networks", fail)


def _cases(estimators):
    return [
        pytest.param(estimator, name, id=f"{estimator_id(estimator)}-{name}")
        for estimator in estimators
        for name in sorted(estimator._parameter_constraints)
    ]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("estimator, name", _cases(e for e in ESTIMATORS if e.image_shape is None))
@settings(max_examples=3)  # each example is a fit
@given(data=st.data())
def test_valid_values_of_every_parameter_fit(estimator, name, data):
    value = data.draw(_valid_values(estimator, name), label="value")
    X, _ = blobs()
    model = clone(estimator).set_params(**{"pretrain_epochs": 2, "n_iter": 1, name: value})
    try:
        model.fit(X)
    except TrainingDivergedError:
        return  # a valid but too large learning rate: a clear error of its own
    assert model.labels_.shape == (len(X),)


@pytest.mark.parametrize("estimator, name", _cases(ESTIMATORS))
@given(data=st.data())
def test_invalid_values_are_rejected_before_training(estimator, name, data):
    value = data.draw(_invalid_values(estimator, name), label="value")
    X, _ = blobs()
    model = clone(estimator).set_params(**{name: value})
    with pytest.MonkeyPatch.context() as monkeypatch:
        _networks_never_built(monkeypatch, model)
        with pytest.raises(InvalidParameterError, match=name):
            model.fit(X)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=estimator_id)
@pytest.mark.parametrize(
    "name", ["latent_dim", "n_iter", "batch_size", "pretrain_epochs", "learning_rate"]
)
def test_bools_are_not_numbers(estimator, name, monkeypatch):
    model = clone(estimator).set_params(**{name: True})
    _networks_never_built(monkeypatch, model)
    with pytest.raises(InvalidParameterError, match=f"'{name}' parameter"):
        model.fit(blobs()[0])
