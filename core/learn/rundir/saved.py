"""The trained model a run keeps: its weights in ``model.safetensors``, loaded for inference anywhere.

``model.safetensors`` (a format that stores tensors and text only, read without unpickling) holds the
model's state dict under ``model.*``, the training split's per-feature mean and standard deviation
under ``scaler.*`` (new data is z-scored exactly as the training data was), and as metadata the
number of features and the class names. With the run's ``config.toml`` that rebuilds the model::

    import hqf.learn.rundir.saved

    trained = hqf.learn.rundir.saved.load("runs/example")             # the run's own backend
    trained = hqf.learn.rundir.saved.load("runs/example", backend="pennylane")
    probabilities = trained.predict_proba(features)             # raw features [N, d] -> [N, C]
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
import safetensors
import safetensors.torch
import torch

from hqf.errors import ConfigError, DataError
from hqf.learn.config import RunConfig
from hqf.learn.data.dataset import Dataset
from hqf.learn.data.files import as_numbers, check_features, read_csv_table, read_npz_arrays
from hqf.learn.data.load import BUILTIN, load_dataset
from hqf.learn.data.splits import apply_scaler
from hqf.learn.run_data import check_device
from hqf.learn.rundir.checkpoint import atomic_write
from hqf.learn.training.model import BaselineModel, HybridModel, build_model
from hqf.learn.training.run_backend import evaluation_backend, exact_backend, noisy_backends, run_noise
from hqf.quantum.mitigation import MitigatedBackend, parse_mitigation
from hqf.quantum.noise import NoiseModel
from hqf.registry.loader import registry
from hqf.registry.make import make_ansatz

MODEL = "model.safetensors"
FORMAT = "hqf-model-1"
#: the most features or classes a model file may declare (a model is built to that size before loading)
MAX_FEATURES = 1 << 20


def save_model(path: str | pathlib.Path, model: torch.nn.Module, dataset: Dataset) -> None:
    """Write ``model``'s weights, ``dataset``'s scaler and class names to ``path`` (atomically)."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    if dataset.scaler is not None:
        mean, std = dataset.scaler
        tensors["scaler.mean"], tensors["scaler.std"] = torch.from_numpy(mean.copy()), torch.from_numpy(std.copy())
    metadata = {
        "format": FORMAT,
        "n_features": str(dataset.n_features),
        "n_classes": str(dataset.n_classes),
        "class_names": json.dumps(list(dataset.class_names)),
    }
    data = safetensors.torch.save(tensors, metadata=metadata)
    atomic_write(path, lambda handle: handle.write(data))


class TrainedModel(torch.nn.Module):
    """A run's trained model taking raw features: ``forward(x)`` z-scores ``x[N, d]`` as in training,
    then gives the logits ``[N, C]``. ``model`` is the network itself (on z-scored input)."""

    def __init__(
        self,
        model: HybridModel | BaselineModel,
        scaler,
        class_names: tuple[str, ...],
        config: RunConfig,
        n_features: int,
    ) -> None:
        super().__init__()
        self.model, self.scaler, self.class_names, self.config = model, scaler, class_names, config
        self.n_features = n_features

    def scale(self, x: np.ndarray) -> torch.Tensor:
        """``x`` as float32, z-scored like the training split (bit for bit), on the model's device."""
        x = np.array(x, dtype=np.float32)  # a copy: scaled in place
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise DataError(f"expected features of shape [N, {self.n_features}] (got {list(x.shape)})")
        if self.scaler is not None:
            apply_scaler(x, self.scaler)
        return torch.as_tensor(x).to(self.config.device)

    def forward(self, x: torch.Tensor | np.ndarray) -> torch.Tensor:
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
        return self.model(self.scale(x))

    @torch.inference_mode()
    def predict_proba(self, x: np.ndarray, scaled: bool = False, batch_size: int = 1024) -> np.ndarray:
        """Class probabilities ``[N, C]`` (float64) of raw features (``scaled``: already z-scored)."""
        tensor = torch.as_tensor(np.asarray(x, dtype=np.float32)).to(self.config.device) if scaled else self.scale(x)
        self.model.eval()
        parts = [
            torch.softmax(self.model(tensor[i : i + batch_size]).double(), dim=1)
            for i in range(0, len(tensor), batch_size)
        ]
        return torch.cat(parts).cpu().numpy() if parts else np.zeros((0, len(self.class_names)))

    def predict(self, x: np.ndarray) -> list[str]:
        """The most probable class name of each row of raw features."""
        return [self.class_names[i] for i in self.predict_proba(x).argmax(axis=1)]


def load(
    run_dir: str | pathlib.Path,
    backend: str | None = None,
    device: str | None = None,
    depolarizing: float | None = None,
    noise: str | dict | None = None,
    mitigate: str | None = None,
) -> TrainedModel:
    """The trained model of the finished run in ``run_dir``, in eval mode, ready for inference.

    ``backend``: simulate the quantum layer on another registered backend (its own default options;
    the gradient method is left to ``auto``); by default the backend the run's test metrics came from
    (:func:`hqf.learn.training.run_backend.evaluation_backend`: for a run trained on trajectories, an
    exact density-matrix backend). ``device``: another torch device. ``noise``: a noise model in place
    of the run's (its text form, ``"depolarizing=0.02,readout=0.03"``, or a table; ``""``: none), and
    without ``backend`` the run's backend when it runs that noise, else the first exact backend that
    does; ``depolarizing``: shorthand for ``noise="depolarizing=p"``, not with ``noise``. ``mitigate``:
    ``"zne"``, ``"readout"`` or ``"zne,readout"`` (:func:`hqf.quantum.mitigation.parse_mitigation`): the
    quantum layer's backend wrapped in a :class:`~hqf.quantum.mitigation.MitigatedBackend` (values only:
    inference, not training). The global random state is left as it was.

    Raises:
        ConfigError: ``run_dir`` holds no ``model.safetensors`` (not a finished run), or the file does
            not fit the run's configuration; an unknown or unavailable ``backend``; a bad noise model, or
            a backend that does not run it; a bad ``mitigate``, or mitigation without noise or of a readout
            error the noise model does not have.
    """
    run_dir = pathlib.Path(run_dir)
    path = run_dir / MODEL
    if not path.is_file():
        raise ConfigError(f"{run_dir} holds no trained model ({MODEL}); only a finished run has one")
    config = RunConfig.from_toml(run_dir / "config.toml")
    if noise is not None and depolarizing is not None:
        raise ConfigError("give either 'noise' or its shorthand 'depolarizing', not both")
    changes = {}
    if noise is not None or depolarizing is not None:
        changes.update(noise=noise if noise is not None else "", depolarizing=depolarizing or 0.0)
    if device is not None:
        check_device(device)
        changes["device"] = device
    config = config.replace(**changes) if changes else config
    noise_here = run_noise(config)
    if backend is not None and noise_here is not None:  # the backend asked for runs the noise itself
        try:
            noise_here.require(backend, registry().get("backend", backend).cls.capabilities.channels)
        except ValueError as exc:
            raise ConfigError(f"{exc}; noisy backends: {', '.join(noisy_backends())}") from None
    chosen = backend or inference_backend(config)
    if chosen != config.backend:
        config = config.replace(backend=chosen, backend_options={}, gradient="auto")
    tensors, metadata = _read(path)
    n_features, n_classes, class_names, scaler = _contents(path, tensors, metadata)
    with torch.random.fork_rng(devices=[]):  # building seeds torch's generator: keep the caller's
        model = build_model(config, n_features, n_classes)
    state = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ConfigError(
            f"{path} does not fit the model of {run_dir}/config.toml: {str(exc).splitlines()[0]}"
        ) from None
    model.eval()
    if mitigate is not None:
        mitigated(model, mitigate, run_noise(config))
    return TrainedModel(model, scaler, class_names, config, n_features).eval()


def inference_backend(config: RunConfig) -> str:
    """The backend a loaded run runs on by default: the one its test metrics came from, or, for a noise
    model its own backend does not run, the first exact backend that runs it."""
    name = evaluation_backend(config)
    noise = run_noise(config)
    if noise is None or noise.features <= registry().get("backend", name).cls.capabilities.channels:
        return name
    return exact_backend(noise, make_ansatz(config.ansatz).n_qubits) or name


def mitigated(model: HybridModel | BaselineModel, text: str, noise: NoiseModel | None) -> None:
    """Wrap ``model``'s quantum backend in the mitigation ``text`` names (its gradient left to ``auto``).

    Raises:
        ConfigError: a bad ``text``; no quantum layer; no noise, or a readout error to invert that ``noise``
            does not have.
    """
    try:
        zne, readout = parse_mitigation(text)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if model.quantum is None:
        raise ConfigError("mitigation needs a quantum layer; this model has none")
    if noise is None or noise.is_noiseless:
        raise ConfigError(f"mitigation ({text}) needs a noise model to mitigate; give one (--noise, noise=...)")
    try:
        model.quantum.backend = MitigatedBackend(model.quantum.backend, zne=zne, readout=readout)
    except ValueError as exc:
        raise ConfigError(f"{exc} (noise {noise})") from None
    model.quantum.gradient = "auto"


def _read(path: pathlib.Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    try:
        with safetensors.safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as exc:  # noqa: BLE001  safetensors raises its own error types for a damaged file
        raise ConfigError(f"{path} is not a readable safetensors file ({type(exc).__name__}: {exc})") from None
    if metadata.get("format") != FORMAT:
        raise ConfigError(f"{path} is not an hqf model file (format {metadata.get('format')!r}; expected {FORMAT!r})")
    return tensors, metadata


def _contents(
    path: pathlib.Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]
) -> tuple[int, int, tuple[str, ...], tuple[np.ndarray, np.ndarray] | None]:
    """The number of features and classes, the class names and the scaler a model file records, each
    checked (sizes bounded before anything is built, every tensor finite); a ConfigError naming the
    file and the field otherwise."""

    def bad(field: str, problem: str) -> ConfigError:
        return ConfigError(f"{path}: {field} {problem}; the file is damaged (retrain, or restore it)")

    counts = {}
    for field, low in (("n_features", 1), ("n_classes", 2)):
        text = metadata.get(field)
        if text is None:
            raise bad(f"metadata {field!r}", "is missing")
        if not text.isascii() or not text.isdigit():
            raise bad(f"metadata {field!r}", f"is {text!r}, not a whole number")
        if not low <= int(text) <= MAX_FEATURES:
            raise bad(f"metadata {field!r}", f"is {int(text):,}; it must lie in {low}..{MAX_FEATURES:,}")
        counts[field] = int(text)
    try:
        names = json.loads(metadata.get("class_names", ""))
    except ValueError:
        raise bad("metadata 'class_names'", "is not JSON") from None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise bad("metadata 'class_names'", f"is {type(names).__name__}, not a list of names")
    if len(names) != counts["n_classes"]:
        raise bad("metadata 'class_names'", f"lists {len(names)} names for n_classes {counts['n_classes']}")
    for key, tensor in tensors.items():
        if tensor.is_floating_point() or tensor.is_complex():
            if not torch.isfinite(tensor).all():
                raise bad(f"tensor {key!r}", "holds NaN or infinity")
    scaler = None
    present = [k for k in ("scaler.mean", "scaler.std") if k in tensors]
    if present:
        if len(present) == 1:
            raise bad("the scaler", f"has {present[0]!r} alone (it needs scaler.mean and scaler.std)")
        mean, std = (tensors[k].double().numpy() for k in ("scaler.mean", "scaler.std"))
        if mean.shape != (counts["n_features"],) or std.shape != mean.shape:
            raise bad(
                "the scaler",
                f"has shapes {list(mean.shape)} and {list(std.shape)} for n_features {counts['n_features']}",
            )
        if not (std > 0).all():
            raise bad("tensor 'scaler.std'", f"holds {float(std.min()):g}; a standard deviation must be > 0")
        scaler = (mean, std)
    return counts["n_features"], counts["n_classes"], tuple(names), scaler


def read_features(
    path: str | pathlib.Path, n_features: int, label_column: str | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Raw features ``[N, n_features]`` of a .csv or .npz file, and its labels when it has them.

    A CSV with ``n_features`` columns is all features; with one more, the label column is
    ``label_column`` (default: the last). A .npz needs ``X`` (or ``x``) and may hold ``y``.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        arrays = read_npz_arrays(path, label_column or "y", need_labels=False)
        x, labels = arrays["x"], arrays.get("y")
        if x.ndim != 2 or x.shape[1] != n_features or not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
            raise DataError(
                f"{path}: 'X' must be real numbers of shape [N, {n_features}] (got {x.dtype} {list(x.shape)})"
            )
        x = x.astype(np.float64)
    elif suffix == ".csv":
        header, body = read_csv_table(path)
        width = len(body[0])
        names = header or [str(j) for j in range(width)]
        table = np.array(body, dtype=object)
        labels = None
        if width == n_features + 1:
            label = names.index(label_column) if header and label_column in names else width - 1
            labels = np.array([str(cell).strip() for cell in table[:, label]])
            table, names = np.delete(table, label, axis=1), [n for j, n in enumerate(names) if j != label]
        elif width != n_features:
            raise DataError(
                f"{path}: the model takes {n_features} features; the file has {width} columns "
                f"(give {n_features}, or {n_features + 1} with the label)"
            )
        first_line = 2 if header is not None else 1
        x = as_numbers(table, names, first_line, path)
        check_features(x, path, names, first_line)
    else:
        raise DataError(
            f"{path}: unsupported data file type {suffix!r}; use .csv or .npz (or a built-in: {', '.join(BUILTIN)})"
        )
    check_features(x, path)
    return x, labels


def run_dataset(trained: TrainedModel, name: str | None = None) -> Dataset:
    """The dataset ``name`` (default: the run's own) drawn, split and scaled exactly as the run drew its own."""
    config = trained.config
    name = name or config.dataset
    if name not in BUILTIN and name != config.dataset:
        raise ConfigError(f"--dataset {name!r}: not a .csv/.npz file nor a built-in dataset ({', '.join(BUILTIN)})")
    data = load_dataset(
        name, samples=config.samples, seed=config.seed if config.data_seed is None else config.data_seed,
        imbalance=config.imbalance, label_noise=config.label_noise, label_column=config.label_column,
        features=config.features, input_noise=config.input_noise, input_noise_on=config.input_noise_on,
    )  # fmt: skip
    if data.n_features != trained.n_features:
        raise ConfigError(f"--dataset {name!r} has {data.n_features} features; the model takes {trained.n_features}")
    return data
