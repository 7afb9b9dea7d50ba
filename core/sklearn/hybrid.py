"""``HybridClassifier``: the hybrid model of ``hqf run`` as a scikit-learn classifier.

``fit(X, y)`` builds the model a :class:`hqf.learn.config.RunConfig` describes (its checks:
:func:`hqf.learn.preflight.preflight`; the model: :func:`hqf.learn.training.model.build_model`; the loss
terms: :func:`hqf.learn.training.terms.build_terms`) and trains it with the loop of ``hqf run``
(:func:`hqf.learn.training.loop.train`) on the arrays given, in memory: no dataset is loaded and no run
directory is written. The constructor's parameters are the run configuration's main keys; ``config``
takes any other key of it (``{"curvature_every": 5, "head": [16]}``).
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import train_test_split
from sklearn.utils.validation import check_is_fitted

from hqf.errors import ConfigError, RunFailedError
from hqf.learn.config import RunConfig
from hqf.learn.preflight import preflight
from hqf.learn.process.runtime import resolve_threads, set_threads
from hqf.learn.training.loop import train
from hqf.learn.training.model import build_model, check_backend_contract
from hqf.learn.training.run_backend import evaluation_backend, make_run_backend
from hqf.learn.training.settings import TrainSettings
from hqf.learn.training.terms import build_terms
from hqf.sklearn.inputs import features, features_and_labels, integer, seed

#: run-configuration keys an estimator does not read: its data are the arrays given to ``fit``, and it
#: writes no run directory and computes none of a run's evaluation metrics
NOT_ESTIMATOR_KEYS = frozenset(
    {
        "dataset",
        "samples",
        "data_seed",
        "imbalance",
        "label_noise",
        "label_column",
        "features",
        "input_noise",
        "input_noise_on",
        "baseline",
        "baseline_options",
        "full_grad_every",
        "full_grad_samples",
        "vai_sigma",
        "vai_samples",
        "vai_draws",
        "latency_repeats",
        "tensorboard",
        "checkpoint_every",
    }
)
#: run-configuration keys given by the estimator's own parameters (``seed`` by ``random_state``)
PARAMETER_KEYS = frozenset(
    {
        "backend",
        "ansatz",
        "encoder",
        "fusion",
        "backbone",
        "latent",
        "regularizers",
        "regularizer_options",
        "optimizer",
        "lr",
        "batch_size",
        "epochs",
        "max_iterations",
        "seed",
        "threads",
    }
)
#: rows of one forward pass in ``predict`` and ``predict_proba``
PREDICT_BATCH = 4096


class HybridClassifier(ClassifierMixin, BaseEstimator):
    """The hybrid quantum-classical classifier of ``hqf run``: backbone, quantum layer, fusion, head.

    Args:
        backend: a registered backend (``hqf list``).
        ansatz: the ansatz family (``hea``, ``basic``, ``sel``); with ``n_qubits`` and ``n_layers`` it
            makes the run's ansatz spec ``{ansatz}{n_qubits}x{n_layers}``.
        n_qubits: qubits of the quantum layer.
        n_layers: layers of the ansatz.
        encoder: a registered encoder.
        fusion: a registered fusion (``gated``, ``concat``, ``quantum-only``, ``classical-only``).
        backbone: a registered backbone (``mlp``, ...).
        latent: the width of the backbone's output ``H_c``.
        regularizers: the loss regularizers (``()``: none).
        regularizer_options: their options by name, e.g. ``{"curvature": {"weight": 0.01, "every": 10}}``
            (None: their defaults).
        optimizer: ``adam``, ``sgd`` or ``rmsprop``.
        lr: the learning rate.
        batch_size: rows of a mini-batch.
        epochs: passes over the training rows at most.
        max_iterations: optimizer steps at most (None: no limit besides ``epochs``).
        validation_fraction: the share of the rows held out (stratified) for the validation loss whose
            change below ``delta`` stops training; 0: the validation loss is that of the training rows.
        random_state: the run's seed (an integer), which fixes the initial weights and the batch order;
            None or a ``RandomState``: a seed drawn from it.
        threads: torch's and the backend's thread count, set for the process in ``fit`` as ``hqf run``
            sets it: an integer, or ``"auto"`` (:func:`hqf.learn.process.runtime.resolve_threads`: one
            thread for a small circuit, where more cost many times over on a busy machine); None: left
            as it is.
        config: any other key of :class:`hqf.learn.config.RunConfig` (None: none), e.g.
            ``{"curvature_every": 5, "head": [16], "noise": "depolarizing=0.02"}``.

    Attributes:
        classes_: the labels seen in ``fit``, sorted.
        n_features_in_: the number of features seen in ``fit``.
        config_: the :class:`~hqf.learn.config.RunConfig` trained.
        model_: the trained :class:`~hqf.learn.training.model.HybridModel` (trained in float32 as in
            ``hqf run``; kept in float64, so that a row's probabilities do not depend on the other rows
            of the call, as float32 matrix products of other sizes would make them by ~1e-7).
        result_: the training loop's :class:`~hqf.learn.training.curves.TrainResult` (curves, stop reason).
        n_iter_: the optimizer steps ``fit`` took.

    Raises:
        hqf.errors.ConfigError: (in ``fit``) an invalid setting, named in one line.
        hqf.errors.DataError: (in ``fit``) labels of fewer than two classes.
        hqf.errors.RunFailedError: (in ``fit``) the loss became non-finite.

    Example::

        >>> from sklearn.datasets import make_moons
        >>> X, y = make_moons(200, noise=0.1, random_state=0)
        >>> clf = HybridClassifier(n_qubits=2, n_layers=1, latent=4, regularizers=(), lr=0.05, epochs=5)
        >>> clf.fit(X, y).predict_proba(X[:3]).shape
        (3, 2)
    """

    def __init__(
        self,
        backend="torch",
        ansatz="hea",
        n_qubits=8,
        n_layers=6,
        encoder="angle",
        fusion="gated",
        backbone="mlp",
        latent=32,
        regularizers=("stability", "curvature"),
        regularizer_options=None,
        optimizer="adam",
        lr=1e-3,
        batch_size=256,
        epochs=8,
        max_iterations=None,
        validation_fraction=0.0,
        random_state=0,
        threads="auto",
        config=None,
    ):
        self.backend = backend
        self.ansatz = ansatz
        self.n_qubits = n_qubits
        self.n_layers = n_layers
        self.encoder = encoder
        self.fusion = fusion
        self.backbone = backbone
        self.latent = latent
        self.regularizers = regularizers
        self.regularizer_options = regularizer_options
        self.optimizer = optimizer
        self.lr = lr
        self.batch_size = batch_size
        self.epochs = epochs
        self.max_iterations = max_iterations
        self.validation_fraction = validation_fraction
        self.random_state = random_state
        self.threads = threads
        self.config = config

    def run_config(self) -> RunConfig:
        """The :class:`~hqf.learn.config.RunConfig` these parameters describe (the data keys at their
        defaults, unused). Raises :class:`~hqf.errors.ConfigError` naming an invalid one."""
        extra = dict(self.config or {})
        for key in extra:
            name = str(key).replace("-", "_")
            if name in NOT_ESTIMATOR_KEYS:
                raise ConfigError(f"config key {key!r} is a setting of hqf run that an estimator does not read")
            if name in PARAMETER_KEYS:
                given = "random_state" if name == "seed" else name
                raise ConfigError(f"config key {key!r} is the estimator's parameter {given!r}; set that instead")
        if self.regularizer_options is not None:
            extra["regularizer_options"] = self.regularizer_options
        if self.threads is not None:
            extra["threads"] = integer(self.threads)
        return RunConfig.from_dict(
            {
                **extra,
                "backend": self.backend,
                "ansatz": f"{self.ansatz}{integer(self.n_qubits)}x{integer(self.n_layers)}",
                "encoder": self.encoder,
                "fusion": self.fusion,
                "backbone": self.backbone,
                "latent": integer(self.latent),
                "regularizers": list(self.regularizers) if isinstance(self.regularizers, tuple) else self.regularizers,
                "optimizer": self.optimizer,
                "lr": float(self.lr) if isinstance(self.lr, (int, float)) else self.lr,
                "batch_size": integer(self.batch_size),
                "epochs": integer(self.epochs),
                "max_iterations": integer(self.max_iterations),
                "seed": seed(self.random_state),
            },
            source=type(self).__name__,
        )

    def fit(self, X, y):
        """Train a new model on ``X[n, d]`` and the labels ``y[n]``; returns ``self``."""
        X, classes, codes = features_and_labels(self, X, y)
        config = self.run_config()
        fraction = self.validation_fraction
        if isinstance(fraction, bool) or not (isinstance(fraction, (int, float)) and 0 <= fraction < 1):
            raise ConfigError(f"'validation_fraction' must be in [0, 1) (got {fraction!r})")
        checked = preflight(config)
        model = build_model(config, X.shape[1], len(classes), backend=checked.backend)
        check_backend_contract(model)
        if self.threads is not None:
            amplitudes = config.batch_size * 2 ** int(self.n_qubits) if model.quantum is not None else 0
            set_threads(resolve_threads(config.threads, amplitudes), checked.backend)
        if fraction:
            train_rows, val_rows = train_test_split(
                np.arange(len(codes)), test_size=fraction, stratify=codes, random_state=config.seed
            )
        else:
            train_rows = val_rows = np.arange(len(codes))
        x = torch.tensor(X, dtype=torch.float32, device=config.device)
        labels = torch.as_tensor(codes, dtype=torch.int64, device=config.device)
        train_rows, val_rows = torch.as_tensor(train_rows), torch.as_tensor(val_rows)
        result = train(
            model,
            x[train_rows],
            labels[train_rows],
            x[val_rows],
            labels[val_rows],
            build_terms(config, model),
            TrainSettings.from_config(config),
        )
        if result.stop_reason == "non_finite_loss":
            raise RunFailedError(f"the loss became non-finite at iteration {result.steps}; try a smaller 'lr'")
        if model.quantum is not None and evaluation_backend(config) != checked.backend.name:
            model.quantum.backend = make_run_backend(config, evaluation_backend(config))
        model.double()  # inference in float64: a row's probabilities do not depend on the rows beside it
        self.classes_, self.config_, self.model_, self.result_ = classes, config, model, result
        self.n_iter_ = result.steps
        return self

    def predict_proba(self, X) -> np.ndarray:
        """``[n, n_classes]``: the class probabilities (the softmax of the model's logits), columns in
        the order of ``classes_``."""
        check_is_fitted(self)
        X = features(self, X, reset=False)
        x = torch.tensor(X, dtype=torch.float64, device=self.config_.device)
        self.model_.eval()
        with torch.inference_mode():
            logits = [self.model_(part).double() for part in x.split(PREDICT_BATCH)] if len(x) else []
        if not logits:
            return np.zeros((0, len(self.classes_)))
        return torch.softmax(torch.cat(logits), dim=1).cpu().numpy()

    def predict(self, X) -> np.ndarray:
        """``[n]``: the most probable class of each row."""
        probabilities = self.predict_proba(X)
        return self.classes_[np.argmax(probabilities, axis=1)]
