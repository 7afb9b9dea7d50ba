"""The hybrid model of the seed paper (eqs. 1–9): backbone f_c, quantum branch, fusion, head.

::

    x ──f_c──► H_c ─────────────────────────┐
    │           └─(quantum_input="latent")─┐ ▼
    └──────────(quantum_input="input")──► encoder → ansatz → backend ─► H_q ─► fusion ─► F ─► head

The backbone is a registered plugin (``hqf list``: ``mlp``, ``transformer``, ``cnn``, ``resnet``). The
head is ``W_o F + b_o`` by default; ``head = [h₁, …]`` puts ``Linear → ReLU → Dropout(head_dropout)``
layers of those widths before it (seed 003's ``Linear(4→128)``, dropout, classes; seed 001's QENN).
The head produces logits; the softmax of eq. 9 lives in the cross-entropy loss. The classical parts
run in float32; the quantum layer runs in the backend's real dtype and ``H_q`` is cast to float32.
A fusion that does not use the quantum branch (``classical-only``) builds no quantum layer at all; a
fusion that does not use ``H_c`` fed from the raw input builds no backbone.
"""

from __future__ import annotations

import attrs
import torch
from torch import nn

from hqf.errors import BackendContractError, ConfigError, HqfError
from hqf.learn.data.dataset import Split
from hqf.learn.run_data import load_data
from hqf.learn.training.run_backend import make_run_backend
from hqf.quantum.interfaces import Backend
from hqf.quantum.layer import QuantumLayer
from hqf.registry.contracts import Backbone, BaselineInputs, Fusion
from hqf.registry.loader import registry
from hqf.registry.make import make_ansatz, make_backbone, make_encoder, make_fusion


def make_head(in_features: int, n_classes: int, hidden: tuple[int, ...] = (), dropout: float = 0.0) -> nn.Module:
    """``Linear(in_features → n_classes)`` when ``hidden`` is empty; otherwise ``Linear → ReLU →
    Dropout(dropout)`` for each hidden width (no Dropout module when ``dropout`` is 0), then the
    ``Linear`` to the classes."""
    if not hidden:
        return nn.Linear(in_features, n_classes)
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_features, width), nn.ReLU()] + ([nn.Dropout(dropout)] if dropout else [])
        in_features = width
    return nn.Sequential(*layers, nn.Linear(in_features, n_classes))


class HybridModel(nn.Module):
    """Backbone, optional quantum branch, fusion and head; ``forward(x)`` gives logits ``[B, C]``.

    The quantum branch (``quantum``: a :class:`hqf.quantum.layer.QuantumLayer`, or a stand-in such as
    the classical surrogate's) maps its input to ``H_q`` and declares ``out_features`` and
    ``gradient_method``.
    """

    def __init__(
        self,
        backbone: nn.Module | None,
        quantum: nn.Module | None,
        fusion: Fusion,
        n_classes: int,
        quantum_input: str = "latent",
        head: tuple[int, ...] = (),
        head_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if quantum_input not in ("latent", "input"):
            raise ValueError(f"'quantum_input' must be 'latent' or 'input' (got {quantum_input!r})")
        if fusion.uses_quantum and quantum is None:
            raise ValueError(f"fusion {fusion.name!r} uses H_q but no quantum layer was given")
        if (fusion.uses_classical or (quantum is not None and quantum_input == "latent")) and backbone is None:
            raise ValueError("this layout needs a classical backbone")
        self.backbone, self.quantum, self.fusion = backbone, quantum, fusion
        self.quantum_input = quantum_input
        self.head = make_head(fusion.out_features, n_classes, head, head_dropout)

    def features(self, x: torch.Tensor, quantum_constant: bool = False) -> torch.Tensor:
        """The fused representation ``F[B, k]`` (float32).

        ``quantum_constant``: compute ``H_q`` without a graph (held constant for differentiation).
        """
        backbone, quantum, fusion = self.backbone, self.quantum, self.fusion
        h_c = backbone(x) if backbone is not None else None
        h_q = None
        if quantum is not None:
            source = h_c if self.quantum_input == "latent" else x
            if quantum_constant and torch.is_grad_enabled():
                with torch.no_grad():
                    h_q = quantum(source)
            else:
                h_q = quantum(source)
            h_q = h_q if h_q.dtype == x.dtype else h_q.to(x.dtype)
        out = fusion(h_c if fusion.uses_classical else None, h_q)
        return out if out.dtype == x.dtype else out.to(x.dtype)

    def forward_features(self, x: torch.Tensor, quantum_constant: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """``(F, logits)``: the features the regularizers see and the head's output."""
        features = self.features(x, quantum_constant)
        return features, self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    @property
    def quantum_gradient(self) -> str | None:
        """How the quantum branch is differentiated (``backprop``, ``adjoint``, ``parameter-shift``); None without
        one."""
        return self.quantum.gradient_method if self.quantum is not None else None

    @torch.inference_mode()
    def fusion_diagnostics(self, x: torch.Tensor) -> dict[str, float]:
        """The fusion's diagnostics (:meth:`hqf.registry.contracts.Fusion.diagnostics`) after a call on ``x``."""
        self.features(x)
        return self.fusion.diagnostics()


class BaselineModel(nn.Module):
    """A whole classical baseline (``hqf.quantum.interfaces``) with the hybrid's interface; ``F`` is its logits.

    It has no quantum branch (``quantum`` is None) and no fusion (no diagnostics).
    """

    quantum = None
    quantum_gradient = None

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.module(x)
        return logits, logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)

    def fusion_diagnostics(self, x: torch.Tensor) -> dict[str, float]:
        """None: a baseline has no fusion."""
        return {}


def check_backend_contract(model: HybridModel | BaselineModel) -> None:
    """Run the model's backend once on a 2-row batch of zero angles before training, and check that it
    returns ``[2, R]`` real values (:class:`BackendContractError` names a backend that does not).

    The global random state is left as it was (a sampling backend may draw from it)."""
    quantum = getattr(model, "quantum", None)
    backend, circuit = getattr(quantum, "backend", None), getattr(quantum, "circuit", None)
    if not isinstance(backend, Backend) or circuit is None:
        return
    angles = torch.zeros(2, circuit.n_params, dtype=backend.real_dtype, device=quantum.weights.device)
    expected = [2, circuit.n_outputs]
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        try:
            out = backend.expval(circuit, angles)
        except HqfError:
            raise
        except (Exception, SystemExit) as exc:  # noqa: BLE001  any failure of a plugin on a valid circuit (sys.exit too)
            text = str(exc).strip().splitlines()
            raise BackendContractError(
                backend.name, f"expval failed on a valid circuit: {type(exc).__name__}: {text[0] if text else ''}"
            ) from None
    if not isinstance(out, torch.Tensor):
        raise BackendContractError(backend.name, f"expval returned {type(out).__name__}, not a torch.Tensor")
    if list(out.shape) != expected:
        raise BackendContractError(
            backend.name,
            f"expval returned shape {list(out.shape)} for {expected[0]} rows "
            f"of {expected[1]} observables; expected {expected}",
        )
    if out.is_complex() or not out.is_floating_point():
        raise BackendContractError(backend.name, f"expval returned dtype {out.dtype}; expected real values")


def build_backbone(config, in_features: int) -> Backbone:
    """The registered backbone ``config.backbone`` for rows of ``in_features`` values, with its options
    (its table ``[backbone_options.<name>]``)."""
    options = config.plugin_options("backbone", config.backbone)
    if not isinstance(options, dict):
        options = attrs.asdict(options)
    try:
        return make_backbone(config.backbone, in_features, config.latent, **options)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, HqfError):
            raise
        raise ConfigError(f"backbone {config.backbone!r} with {in_features} input features: {exc}") from None


def build_baseline(config, in_features: int, n_classes: int, train: Split | None = None) -> nn.Module:
    """The module of the baseline ``config.baseline``; ``train``: the run's training split (loaded from
    the configuration when the baseline uses it and none is given)."""
    cls = registry().get("baseline", config.baseline).cls
    baseline = cls()
    if not cls.receives_inputs:  # the earlier form: the run configuration, then the sizes
        baseline.configure(config)
        return baseline.build(in_features, n_classes)
    if cls.uses_training_split and train is None:
        train = load_data(config).train
    hybrid = config.replace(baseline=None, backend="torch", noise="", depolarizing=0.0, backend_options={})
    inputs = BaselineInputs(
        in_features,
        n_classes,
        train.x if cls.uses_training_split else None,
        train.y if cls.uses_training_split else None,
        config.plugin_options("baseline", config.baseline) if cls.options is not None else None,
        config.seed,
        config.encoder,
        dict(config.encoder_options),
        lambda: make_run_backend(config),
        lambda: build_model(hybrid, in_features, n_classes),
    )
    return baseline.build(inputs)


def build_model(
    config, in_features: int, n_classes: int, backend: Backend | None = None, train: Split | None = None
) -> HybridModel | BaselineModel:
    """The model a :class:`hqf.learn.config.RunConfig` describes, on ``config.device``.

    Seeds torch's global generator with ``config.seed`` first, so the initial weights are a function of
    the configuration. ``backend`` is built from the configuration when not given (and only when the
    fusion uses the quantum branch). ``train``: the training split, for a baseline that fits on it
    (loaded from the configuration when not given).
    """
    torch.manual_seed(config.seed)
    if config.baseline is not None:
        module = build_baseline(config, in_features, n_classes, train)
        # a baseline that returns a whole hybrid-shaped model (e.g. classical-surrogate) keeps its own F
        return (module if isinstance(module, HybridModel) else BaselineModel(module)).to(config.device)
    fusion_cls = registry().get("fusion", config.fusion).cls
    needs_backbone = fusion_cls.uses_classical or (fusion_cls.uses_quantum and config.quantum_input == "latent")
    backbone = None
    if needs_backbone:
        backbone = build_backbone(config, in_features)
    quantum = None
    if fusion_cls.uses_quantum:
        ansatz = make_ansatz(config.ansatz)
        source = config.latent if config.quantum_input == "latent" else in_features
        try:
            encoder = make_encoder(config.encoder, source, ansatz.n_qubits, **config.encoder_options)
        except (TypeError, ValueError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(
                f"encoder {config.encoder!r} with {source} inputs on {ansatz.n_qubits} qubits: {exc}"
            ) from None
        backend = backend if backend is not None else make_run_backend(config)
        generator = torch.Generator().manual_seed(config.seed)
        quantum = QuantumLayer(encoder, ansatz, backend, gradient=config.gradient, generator=generator)
    classical_width = backbone.out_features if backbone is not None else 0
    quantum_width = quantum.out_features if quantum is not None else 0
    fusion = make_fusion(config.fusion, classical_width, quantum_width)
    model = HybridModel(backbone, quantum, fusion, n_classes, config.quantum_input, config.head, config.head_dropout)
    return model.to(config.device)


def count_parameters(model: HybridModel | BaselineModel) -> dict[str, int]:
    """Trainable parameters: in all, and in the quantum layer (encoder and ansatz)."""
    total = sum(p.numel() for p in model.parameters() if p.requires_grad)
    quantum = model.quantum
    n_quantum = sum(p.numel() for p in quantum.parameters() if p.requires_grad) if quantum is not None else 0
    return {"n_parameters": total, "n_quantum_parameters": n_quantum}
