"""What both estimators do with their inputs: ``X`` checked as scikit-learn checks it, ``y`` as labels."""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets

from hqf.errors import DataError

try:
    from sklearn.utils.validation import validate_data
except ImportError:  # scikit-learn < 1.6: the same check as a private method of the estimator

    def validate_data(estimator, X, y="no_validation", reset=True, **options):
        return estimator._validate_data(X, y, reset=reset, **options)


def features(estimator, X, reset: bool) -> np.ndarray:
    """``X`` as a finite float64 matrix with the features seen in ``fit`` (``reset``: this is ``fit``)."""
    return validate_data(estimator, X, reset=reset, dtype=np.float64)


def features_and_labels(estimator, X, y) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(X, classes, codes)`` for ``fit``: ``X`` as :func:`features`, the sorted distinct labels of ``y``
    and each row's index into them; fewer than two classes is a :class:`DataError`."""
    X, y = validate_data(estimator, X, y, dtype=np.float64)
    check_classification_targets(y)
    classes, codes = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise DataError(f"a classifier needs samples of at least 2 classes (got 1 class: {classes[0]!r})")
    return X, classes, codes


def integer(value):
    """``value`` as a Python int where it is an integer of any kind (numpy's included), else unchanged."""
    return int(value) if isinstance(value, numbers.Integral) and not isinstance(value, bool) else value


def seed(random_state) -> int:
    """The run seed of ``random_state``: an integer as given, else one drawn from it (None: from numpy's
    global generator; a ``RandomState``: from it), as scikit-learn's ``check_random_state`` reads it."""
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return int(random_state)
    return int(check_random_state(random_state).randint(0, 2**31 - 1))
