"""``qsvm``: a support-vector machine on a quantum kernel of the run's encoder, on the run's backend (seed 004).

**The model.** The run's training split (standardized by the data loader) is reduced to ``qubits``
features — its first principal components when there are more features than qubits, each scaled to
unit variance on the training split — multiplied by ``scale`` (for ``basis`` encoding, with
``binarize``, thresholded at 0 instead: a bit per feature). The run's encoder (``encoder``,
``encoder_options``, on ``qubits`` qubits) turns them into angles; :mod:`hqf.quantum.kernels` gives
the kernel (``fidelity``: ``|⟨φ(x')|φ(x)⟩|²``, or ``projected``, bandwidth ``gamma``) on the run's
backend, and scikit-learn's ``SVC(kernel="precomputed", C=C)`` is fitted on the Gram matrix of
at most ``max_train`` training points (a seeded random subset when the split is larger).

**Prediction** reuses the fit: a training point's kernel row is read from the Gram matrix, and a new
point's row is computed against the support vectors only (``M · n_SV`` fidelity circuits for ``M``
points; the projected kernel needs one circuit per new point). The SVC's one-vs-rest decision values
``D[B, K]`` (``[−d/2, d/2]`` for two classes) become logits ``a·D + b`` with a scale ``a`` and
per-class biases ``b``: the only trainable parameters, which the run's training loop fits by
cross-entropy (a Platt-style calibration; the SVM itself is not changed by training). Rows of the
training split are computed once and kept; validation and test rows are computed at every call,
so latency and the circuit counts are those of real predictions.

**Counts.** :meth:`KernelSVM.diagnostics` reports the circuits run for the Gram matrix
(``N(N−1)/2`` for the fidelity kernel, ``N`` for the projected one) and for predictions so far, the
support-vector count, and the kernel-target alignment of the training Gram matrix; the module's
``repr`` (meta.json's ``model``) carries them.

Options (``[baseline_options.qsvm]``, :class:`QSVMOptions`): ``kernel`` (``fidelity``), ``C`` (1.0),
``qubits`` (the number of features, at most 4 by default), ``scale`` (1.0), ``gamma`` (1.0, projected
only), ``max_train`` (300), ``binarize`` (false).
"""

from __future__ import annotations

import attrs
import numpy as np
import torch

from hqf.errors import ConfigError
from hqf.quantum.interfaces import Encoder
from hqf.quantum.kernels import FidelityKernel, ProjectedKernel, target_alignment
from hqf.registry.contracts import Baseline, BaselineInputs
from hqf.registry.make import make_encoder
from hqf.registry.options import flag, integer, number, one_of, option

KERNELS = ("fidelity", "projected")


@attrs.frozen
class QSVMOptions:
    """``[baseline_options.qsvm]`` (module docstring)."""

    kernel: str = option("fidelity", one_of(*KERNELS))
    C: float = option(1.0, number(0, strict=True))
    #: None: the number of features, at most 4
    qubits: int | None = option(None, integer(2, optional=True))
    scale: float = option(1.0, number(0, strict=True))
    gamma: float = option(1.0, number(0, strict=True))
    max_train: int = option(300, integer(2))
    binarize: bool = option(False, flag)


def resolve_qubits(options: QSVMOptions, n_features: int) -> int:
    """The qubits of the kernel: ``options.qubits``, or ``min(n_features, 4)``; more than the features is
    a ConfigError."""
    qubits = min(n_features, 4) if options.qubits is None else options.qubits
    if qubits > n_features:
        raise ConfigError(f"qsvm: 'qubits' ({qubits}) exceeds the {n_features} features of the data")
    return qubits


class FeatureReduction(torch.nn.Module):
    """``x[B, F] -> [B, Q]``: the first ``Q`` principal components of the training data at unit variance,
    times ``scale`` (or, with ``binarize``, 1 where a component is > 0 and 0 elsewhere)."""

    def __init__(self, x_train: np.ndarray, n_components: int, scale: float, binarize: bool) -> None:
        super().__init__()
        x = torch.as_tensor(x_train, dtype=torch.float64)
        mean = x.mean(dim=0)
        if n_components == x.shape[1]:
            basis = torch.eye(x.shape[1], dtype=torch.float64)
        else:
            basis = torch.linalg.svd(x - mean, full_matrices=False).Vh[:n_components].T
        spread = ((x - mean) @ basis).std(dim=0)
        spread[spread == 0] = 1.0
        self.register_buffer("mean", mean)
        self.register_buffer("basis", basis / spread)
        self.scale, self.binarize = float(scale), binarize

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (x.to(torch.float64) - self.mean) @ self.basis
        return (z > 0).to(torch.float64) if self.binarize else self.scale * z


class KernelSVM(torch.nn.Module):
    """A fitted SVC on a quantum kernel, as logits ``a·D + b`` (see the module docstring)."""

    def __init__(
        self,
        reduction: FeatureReduction,
        encoder: Encoder,
        kernel,
        svc,
        fit_x: np.ndarray,
        fit_y: np.ndarray,
        gram: np.ndarray,
        fit_angles: torch.Tensor,
        fit_features: torch.Tensor | None,
        gram_circuits: int,
        alignment: float,
        n_classes: int,
        all_train_x: np.ndarray,
    ) -> None:
        super().__init__()
        self.fit_x, self.fit_y, self.gram = fit_x, fit_y, gram  # the fitted points, their labels and Gram matrix
        self.reduction, self.encoder, self.kernel, self.svc = reduction, encoder, kernel, svc
        self.n_classes, self.n_fit = n_classes, fit_angles.shape[0]
        self.support = torch.as_tensor(svc.support_, dtype=torch.int64)
        self.fit_angles, self.fit_features = fit_angles, fit_features  # features: the projected kernel's, else None
        self.gram_circuits, self.alignment = gram_circuits, alignment
        self.prediction_circuits = 0
        self.known = {row.tobytes(): k for k, row in zip(gram, fit_x)}  # training rows: [n_fit] each
        self.train_keys = {row.tobytes() for row in np.asarray(all_train_x, dtype=np.float32)}
        self.scale = torch.nn.Parameter(torch.ones((), dtype=torch.float64))
        self.bias = torch.nn.Parameter(torch.zeros(n_classes, dtype=torch.float64))

    def angles(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.encoder(self.reduction(x.detach().cpu())).to(torch.float64)

    def kernel_rows(self, x: torch.Tensor) -> np.ndarray:
        """``[B, n_fit]`` kernel values against the fitted points (only support-vector columns are
        computed for the fidelity kernel; the others are 0 and unused by the SVC)."""
        rows = x.detach().cpu().numpy().astype(np.float32, copy=False)
        keys = [row.tobytes() for row in rows]
        out = np.zeros((len(rows), self.n_fit))
        missing = [i for i, key in enumerate(keys) if key not in self.known]
        for i, key in enumerate(keys):
            if key in self.known:
                out[i] = self.known[key]
        if missing:
            before = self.kernel.evaluations
            angles = self.angles(torch.as_tensor(rows[missing]))
            if self.fit_features is not None:
                values = self.kernel.from_features(self.kernel.features(angles), self.fit_features)
                out[missing] = values.numpy()
            else:
                out[np.ix_(missing, self.support.numpy())] = self.kernel.cross(
                    angles, self.fit_angles[self.support]
                ).numpy()
            self.prediction_circuits += self.kernel.evaluations - before
            self.known.update({keys[i]: out[i].copy() for i in missing if keys[i] in self.train_keys})
        return out

    def decision(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, K]``: the SVC's one-vs-rest decision values (``[−d/2, d/2]`` for two classes)."""
        values = torch.as_tensor(self.svc.decision_function(self.kernel_rows(x)), dtype=torch.float64)
        return torch.stack([-values / 2, values / 2], dim=1) if values.ndim == 1 else values

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.scale * self.decision(x) + self.bias).to(x.device)

    def diagnostics(self) -> dict:
        """Circuit counts, support vectors and kernel-target alignment of the training Gram matrix."""
        return {
            "kernel_circuits_gram": self.gram_circuits,
            "kernel_circuits_prediction": self.prediction_circuits,
            "support_vectors": int(len(self.support)),
            "fit_points": self.n_fit,
            "kernel_target_alignment": self.alignment,
        }

    def extra_repr(self) -> str:
        return ", ".join(
            f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}"
            for key, value in self.diagnostics().items()
        )


class QuantumKernelSVM(Baseline):
    """``SVC(kernel="precomputed")`` on a quantum kernel of the run's encoder and backend.

    Reads the run's training split, encoder, backend, seed and its options (:class:`QSVMOptions`,
    module docstring) from :class:`~hqf.registry.contracts.BaselineInputs`, and fits when built.

    Example::

        >>> import numpy as np
        >>> from hqf.registry.make import make_backend
        >>> rng = np.random.default_rng(0)
        >>> x, y = rng.normal(size=(40, 3)).astype(np.float32), np.repeat([0, 1], 20)
        >>> inputs = BaselineInputs(3, 2, x, y, QSVMOptions(max_train=20), 0, "angle", {},
        ...                         lambda: make_backend("torch"), lambda: None)
        >>> svm = QuantumKernelSVM().build(inputs)
        >>> svm.diagnostics()["kernel_circuits_gram"], svm(torch.zeros(2, 3)).shape
        (190, torch.Size([2, 2]))
    """

    name = "qsvm"
    description = "SVM on a quantum (fidelity or projected) kernel of the run's encoder and backend (seed 004)"
    options = QSVMOptions
    metric_keys = ("kernel_circuits_gram", "kernel_circuits_prediction", "support_vectors", "kernel_target_alignment")
    receives_inputs = True
    uses_training_split = True

    def build(self, inputs: BaselineInputs) -> torch.nn.Module:
        from sklearn.svm import SVC  # noqa: PLC0415 — scikit-learn takes ~1 s to import

        options, in_features, n_classes = inputs.options, inputs.in_features, inputs.n_classes
        train_x, train_y = inputs.train_x, inputs.train_y
        if train_x.shape[1] != in_features:
            raise ConfigError(f"qsvm: the data has {train_x.shape[1]} features, the model was asked for {in_features}")
        n_qubits = resolve_qubits(options, in_features)
        encoder = _encoder(inputs, n_qubits)
        if encoder.interleaved:
            raise ConfigError(
                f"qsvm: encoder {inputs.encoder!r} is interleaved with an ansatz; a kernel needs a plain feature map"
            )
        generator = np.random.default_rng([inputs.seed, 4])
        size = min(len(train_y), options.max_train)
        fit = np.sort(generator.choice(len(train_y), size, replace=False))
        reduction = FeatureReduction(train_x, n_qubits, options.scale, options.binarize)
        backend = inputs.make_backend()
        if options.kernel == "fidelity":
            kernel = FidelityKernel(backend, n_qubits, encoder.operations())
        else:
            kernel = ProjectedKernel(backend, n_qubits, encoder.operations(), gamma=options.gamma)
        with torch.no_grad():
            angles = encoder(reduction(torch.as_tensor(train_x[fit]))).to(torch.float64)
        fit_features = kernel.features(angles) if isinstance(kernel, ProjectedKernel) else None
        gram = kernel.gram(angles) if fit_features is None else kernel.from_features(fit_features, fit_features)
        gram_circuits = kernel.evaluations
        labels = train_y[fit]
        if len(np.unique(labels)) != n_classes:
            raise ConfigError(
                f"qsvm: the {len(labels)} fitted training points miss some of the {n_classes} classes; "
                "raise 'max_train' or 'samples'"
            )
        svc = SVC(kernel="precomputed", C=float(options.C)).fit(gram.numpy(), labels)
        alignment = target_alignment(gram, torch.as_tensor(labels))
        return KernelSVM(
            reduction,
            encoder,
            kernel,
            svc,
            train_x[fit],
            labels,
            gram.numpy(),
            angles,
            fit_features,
            gram_circuits,
            alignment,
            n_classes,
            train_x,
        )


def _encoder(inputs: BaselineInputs, n_qubits: int) -> Encoder:
    """The run's encoder on ``n_qubits`` inputs and qubits, in float64."""
    try:
        encoder = make_encoder(inputs.encoder, n_qubits, n_qubits, **inputs.encoder_options)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"qsvm: encoder {inputs.encoder!r} on {n_qubits} qubits: {exc}") from None
    return encoder.to(torch.float64)
