"""``QuantumKernelSVC``: scikit-learn's ``SVC`` on a quantum kernel of a registered encoder, on any backend.

The kernel (:mod:`hqf.quantum.kernels`) is ``fidelity``, ``k(x, x') = |⟨φ(x')|φ(x)⟩|²`` with ``|φ(x)⟩``
the encoder's feature map of ``x`` on as many qubits as ``x`` has features, or ``projected`` (bandwidth
``gamma``). ``fit`` computes the Gram matrix of the training rows (``n(n−1)/2`` circuits for the fidelity
kernel) and fits ``SVC(kernel="precomputed")`` on it; a prediction computes the kernel against the
support vectors only (``m · n_SV`` circuits for ``m`` rows). With ``probability`` (the default), the
SVM's decision values are calibrated into class probabilities by scikit-learn's ``CalibratedClassifierCV``
(Platt's sigmoid on cross-validated decision values, up to 5 stratified folds, ``ensemble=False``), and
``predict`` gives the most probable class, as that calibrated classifier does. Scale or reduce the features beforehand
(``StandardScaler``, ``PCA``) in a ``Pipeline``: each feature is one qubit's angle.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.svm import SVC
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from hqf.errors import ConfigError, DataError, HqfError
from hqf.quantum.circuit import MAX_QUBITS
from hqf.quantum.kernels import FidelityKernel, ProjectedKernel
from hqf.registry.make import make_backend, make_encoder
from hqf.sklearn.inputs import features, features_and_labels

KERNELS = ("fidelity", "projected")


class QuantumKernelSVC(ClassifierMixin, BaseEstimator):
    """A support-vector classifier on a quantum kernel: one qubit per feature, the feature map a
    registered encoder, the circuits run on a registered backend.

    Args:
        encoder: a registered encoder without trainable parameters on ``d`` features and ``d`` qubits
            (``angle``, ``iqp``, ``basis``, ...).
        encoder_options: its options, e.g. ``{"rotation": "RX", "scale": 0.5}`` (None: its defaults).
        backend: a registered backend (``hqf list``); a noisy one gives the noisy kernel.
        backend_options: its options (None: its defaults).
        kernel: ``fidelity`` or ``projected``.
        gamma: the projected kernel's bandwidth (unused by the fidelity kernel).
        C: the SVM's regularization.
        probability: calibrate class probabilities (``predict_proba``; needs 2 rows of each class or
            more), and predict the most probable class; False: no ``predict_proba``, and ``predict`` is
            the SVM's.

    Attributes:
        classes_: the labels seen in ``fit``, sorted.
        n_features_in_: the number of features (qubits) seen in ``fit``.
        svc_: the ``SVC(kernel="precomputed")`` fitted on all the training rows.
        calibrated_: the fitted ``CalibratedClassifierCV`` around it (None without ``probability``).
        kernel_: the :class:`~hqf.quantum.kernels.FidelityKernel` or ``ProjectedKernel``; its
            ``evaluations`` counts the circuits run.
        support_angles_: the feature-map angles of the support vectors.

    Raises:
        hqf.errors.ConfigError: (in ``fit``) an unknown kernel, an encoder with trainable parameters or
            interleaved with an ansatz, more features than qubits a circuit may have, invalid options.
        hqf.errors.DataError: (in ``fit``) labels of fewer than two classes; with ``probability``, a class
            of one row.

    Example::

        >>> from sklearn.datasets import make_moons
        >>> X, y = make_moons(40, noise=0.1, random_state=0)
        >>> QuantumKernelSVC().fit(X, y).predict(X[:4]).shape
        (4,)
    """

    def __init__(
        self,
        encoder="angle",
        encoder_options=None,
        backend="torch",
        backend_options=None,
        kernel="fidelity",
        gamma=1.0,
        C=1.0,
        probability=True,
    ):
        self.encoder = encoder
        self.encoder_options = encoder_options
        self.backend = backend
        self.backend_options = backend_options
        self.kernel = kernel
        self.gamma = gamma
        self.C = C
        self.probability = probability

    def fit(self, X, y):
        """Compute the Gram matrix of ``X[n, d]`` and fit the SVM to the labels ``y[n]``; returns ``self``."""
        X, classes, codes = features_and_labels(self, X, y)
        if self.kernel not in KERNELS:
            raise ConfigError(f"'kernel' must be one of {', '.join(KERNELS)} (got {self.kernel!r})")
        n_qubits = X.shape[1]
        if n_qubits > MAX_QUBITS:
            raise ConfigError(f"one qubit per feature: {n_qubits} features exceed {MAX_QUBITS} qubits (reduce them)")
        encoder = self._encoder(n_qubits)
        try:
            backend = make_backend(self.backend, **(self.backend_options or {}))
            if self.kernel == "fidelity":
                kernel = FidelityKernel(backend, n_qubits, encoder.operations())
            else:
                kernel = ProjectedKernel(backend, n_qubits, encoder.operations(), gamma=self.gamma)
        except (TypeError, ValueError) as exc:
            if isinstance(exc, HqfError):
                raise
            raise ConfigError(f"{type(self).__name__}: {exc}") from None
        angles = self._angles(encoder, X)
        gram = kernel.gram(angles).numpy()
        svc, calibrated = SVC(kernel="precomputed", C=self.C), None
        if self.probability:
            calibrated = CalibratedClassifierCV(svc, ensemble=False, cv=_folds(codes)).fit(gram, codes)
            svc = calibrated.calibrated_classifiers_[0].estimator
        else:
            svc.fit(gram, codes)
        self.classes_, self.encoder_, self.kernel_ = classes, encoder, kernel
        self.svc_, self.calibrated_ = svc, calibrated
        self.support_angles_ = angles[torch.as_tensor(svc.support_)]
        self.n_fit_ = len(codes)
        return self

    def kernel_rows(self, X) -> np.ndarray:
        """``[m, n_fit]``: the kernel of each row against the training rows, computed for the support
        vectors' columns (the others are 0: the SVM does not read them)."""
        check_is_fitted(self)
        X = features(self, X, reset=False)
        rows = np.zeros((len(X), self.n_fit_))
        if len(X):
            values = self.kernel_.cross(self._angles(self.encoder_, X), self.support_angles_)
            rows[:, self.svc_.support_] = values.numpy()
        return rows

    def decision_function(self, X) -> np.ndarray:
        """The SVM's decision values: ``[m]`` for two classes (positive: ``classes_[1]``), else ``[m, n_classes]``."""
        rows = self.kernel_rows(X)
        return self.svc_.decision_function(rows)

    def predict(self, X) -> np.ndarray:
        """``[m]``: the class of each row (with ``probability``: the most probable one)."""
        rows = self.kernel_rows(X)
        model = self.svc_ if self.calibrated_ is None else self.calibrated_
        return self.classes_[model.predict(rows)]

    @available_if(lambda self: self.probability)
    def predict_proba(self, X) -> np.ndarray:
        """``[m, n_classes]``: Platt-scaled class probabilities (only with ``probability=True``)."""
        rows = self.kernel_rows(X)
        return self.calibrated_.predict_proba(rows)

    def _encoder(self, n_qubits: int):
        """The encoder on ``n_qubits`` features and qubits, in float64; a ConfigError if it cannot be a
        fixed feature map."""
        try:
            encoder = make_encoder(self.encoder, n_qubits, n_qubits, **(self.encoder_options or {}))
        except (TypeError, ValueError) as exc:
            if isinstance(exc, HqfError):
                raise
            raise ConfigError(f"encoder {self.encoder!r} on {n_qubits} qubits: {exc}") from None
        if encoder.interleaved:
            raise ConfigError(f"encoder {self.encoder!r} is interleaved with an ansatz; a kernel needs a feature map")
        if any(p.requires_grad for p in encoder.parameters()):
            raise ConfigError(f"encoder {self.encoder!r} has trainable parameters here; a kernel needs a fixed map")
        return encoder.to(torch.float64)

    @staticmethod
    def _angles(encoder, X: np.ndarray) -> torch.Tensor:
        with torch.no_grad():
            return encoder(torch.tensor(X, dtype=torch.float64))


#: folds of the probability calibration at most
CALIBRATION_FOLDS = 5


def _folds(codes: np.ndarray) -> int:
    """Stratified folds of the calibration: up to :data:`CALIBRATION_FOLDS`, no more than the rows of the
    smallest class; a class of one row is a DataError."""
    smallest = int(np.bincount(codes).min())
    if smallest < 2:
        raise DataError("probability=True needs at least 2 rows of each class (set probability=False)")
    return min(CALIBRATION_FOLDS, smallest)
