"""Parameter constraints and checks shared by the estimators.

scikit-learn's :class:`~sklearn.utils._param_validation.Interval` accepts
``True`` as the integer 1 (``bool`` subclasses ``int``): a ``latent_dim=True``
would then reach torch. :func:`integers` and :func:`reals` build intervals
that accept Python and numpy numbers but not bools, so that
``_parameter_constraints`` rejects them with scikit-learn's
``InvalidParameterError`` before any network is built.
"""

from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import Interval


class _NotBoolInterval(Interval):
    def is_satisfied_by(self, val):
        return not isinstance(val, bool | np.bool_) and super().is_satisfied_by(val)

    def __str__(self):
        return super().__str__() + " (not a bool)"


def integers(left, right=None, closed="left"):
    """Constraint: an integer (Python or numpy, not a bool) in an interval."""
    return _NotBoolInterval(Integral, left, right, closed=closed)


def reals(left, right=None, closed="neither"):
    """Constraint: a real number (Python or numpy, not a bool) in an interval."""
    return _NotBoolInterval(Real, left, right, closed=closed)


def check_int_tuple(value, name, length=None):
    """``value`` as a tuple of positive Python ints, or a ``ValueError`` naming ``name``."""
    values = tuple(value)
    if length is not None and len(values) != length:
        raise ValueError(f"{name} must have {length} entries, got {value!r}.")
    if not all(_is_int(v) and v > 0 for v in values):
        raise ValueError(f"{name} must contain positive integers, got {value!r}.")
    return tuple(int(v) for v in values)


def _is_int(value):
    return isinstance(value, Integral) and not isinstance(value, bool | np.bool_)


def resolve_image_shape(image_shape, n_features):
    """``(C, H, W)`` with at most one entry ``-1`` inferred from ``n_features``,
    as in :func:`numpy.reshape`."""
    values = tuple(image_shape)
    if len(values) != 3 or not all(_is_int(v) and (v > 0 or v == -1) for v in values):
        raise ValueError(
            "image_shape must be 3 positive integers (C, H, W), one of which may be -1 "
            f"to infer it from n_features, got {image_shape!r}."
        )
    if values.count(-1) > 1:
        raise ValueError(f"image_shape can have only one entry -1, got {image_shape!r}.")
    known = int(np.prod([v for v in values if v != -1]))
    if -1 in values and n_features % known == 0:
        values = tuple(n_features // known if v == -1 else int(v) for v in values)
    if -1 in values or int(np.prod(values)) != n_features:
        raise ValueError(
            f"image_shape={tuple(image_shape)} does not match X's {n_features} features; "
            "X must hold the images flattened in (C, H, W) order, C * H * W = n_features."
        )
    return tuple(int(v) for v in values)
