"""The hybrid model of the seed paper (eqs. 1–9): backbone f_c, quantum branch, fusion, linear head.

::

    x ──f_c──► H_c ─────────────────────────┐
    │           └─(quantum_input="latent")─┐ ▼
    └──────────(quantum_input="input")──► encoder → ansatz → backend ─► H_q ─► fusion ─► F ─► W_o F + b_o

The head produces logits; the softmax of eq. 9 lives in the cross-entropy loss. The classical parts
run in float32; the quantum layer runs in the backend's real dtype and ``H_q`` is cast to float32.
A fusion that does not use the quantum branch (``classical-only``) builds no quantum layer at all; a
fusion that does not use ``H_c`` fed from the raw input builds no backbone.
"""

from __future__ import annotations

import torch
from torch import nn

from hqf.errors import BackendContractError, ConfigError, HqfError
from hqf.quantum.interfaces import Backend, Fusion
from hqf.quantum.layer import QuantumLayer
from hqf.quantum.make import make_ansatz, make_backend, make_encoder, make_fusion
from hqf.quantum.registry import registry


class MLPBackbone(nn.Module):
    """``H_c = GELU(W₂ GELU(W₁ x + b₁) + b₂)``: ``in_features → hidden → latent``."""

    def __init__(self, in_features: int, hidden: int, latent: int) -> None:
        super().__init__()
        self.out_features = latent
        self.net = nn.Sequential(nn.Linear(in_features, hidden), nn.GELU(), nn.Linear(hidden, latent), nn.GELU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first, _, second, _ = self.net  # the GELUs as functions: two module calls fewer at batch 1
        return nn.functional.gelu(second(nn.functional.gelu(first(x))))


class _EncoderLayer(nn.Module):
    """Pre-norm transformer encoder layer with explicit attention ``softmax(QKᵀ/√d_h) V``.

    Written out (rather than ``nn.TransformerEncoderLayer``) because torch's fused CPU attention kernel
    has no double backward, which the curvature regularizer needs.
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.ff = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, dim = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(b, n, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        weights = torch.softmax(q @ k.transpose(-2, -1) / (dim // self.heads) ** 0.5, dim=-1)
        x = x + self.proj((weights @ v).transpose(1, 2).reshape(b, n, dim))
        return x + self.ff(self.norm2(x))


class TransformerBackbone(nn.Module):
    """A small transformer encoder over feature tokens (the seed's "transformer-based backbone").

    Feature ``j`` of ``x`` becomes the token ``x_j · v_j + e_j`` (a learned value direction and a
    learned feature embedding, width ``dim``); ``layers`` pre-norm encoder layers with ``heads`` heads
    (feed-forward width ``2·dim``, no dropout); mean pooling over tokens; ``H_c = GELU(W · pooled + b)``
    of width ``latent``. Cost grows with the square of the number of features.
    """

    def __init__(self, in_features: int, latent: int, dim: int = 32, layers: int = 2, heads: int = 4) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"'transformer_dim' ({dim}) must be divisible by 'transformer_heads' ({heads})")
        self.out_features = latent
        self.value = nn.Parameter(torch.randn(in_features, dim) / dim**0.5)
        self.position = nn.Parameter(torch.randn(in_features, dim) * 0.02)
        self.layers = nn.Sequential(*(_EncoderLayer(dim, heads) for _ in range(layers)))
        self.out = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, latent), nn.GELU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.unsqueeze(-1) * self.value + self.position  # [B, d, dim]
        return self.out(self.layers(tokens).mean(dim=1))


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
        self.head = nn.Linear(fusion.out_features, n_classes)

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
        """How the quantum branch is differentiated (``backprop``, ``adjoint``, ``parameter-shift``); None without one."""
        return self.quantum.gradient_method if self.quantum is not None else None

    @torch.inference_mode()
    def fusion_diagnostics(self, x: torch.Tensor) -> dict[str, float]:
        """The fusion's diagnostics (:meth:`hqf.quantum.interfaces.Fusion.diagnostics`) after a call on ``x``."""
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


def make_run_backend(config) -> Backend:
    """The backend a configuration names, checked first (unavailable/unknown: a one-line HqfError).

    The simulator runs on ``config.device`` when the backend supports that device type; a backend that
    does not (cuquantum: GPU only, the model on the CPU) keeps its own default device, and the
    expectation values come back to the model's device.
    """
    options = dict(config.backend_options)
    if config.depolarizing:
        options["depolarizing"] = config.depolarizing
    supported = registry().get("backend", config.backend).cls.capabilities.devices
    if "device" not in options and torch.device(config.device).type in supported:
        options["device"] = config.device
    try:
        return make_backend(config.backend, dtype=config.dtype, **options)
    except TypeError as exc:
        raise ConfigError(f"backend {config.backend!r} does not take these options {sorted(options)}: {exc}") from None
    except ValueError as exc:
        raise ConfigError(f"backend {config.backend!r}: {exc}") from None


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
        except Exception as exc:  # noqa: BLE001  any failure of a plugin on a valid circuit breaks the contract
            text = str(exc).strip().splitlines()
            raise BackendContractError(backend.name, f"expval failed on a valid circuit: {type(exc).__name__}: "
                                                     f"{text[0] if text else ''}") from None
    if not isinstance(out, torch.Tensor):
        raise BackendContractError(backend.name, f"expval returned {type(out).__name__}, not a torch.Tensor")
    if list(out.shape) != expected:
        raise BackendContractError(backend.name, f"expval returned shape {list(out.shape)} for {expected[0]} rows "
                                                 f"of {expected[1]} observables; expected {expected}")
    if out.is_complex() or not out.is_floating_point():
        raise BackendContractError(backend.name, f"expval returned dtype {out.dtype}; expected real values")


def build_model(config, in_features: int, n_classes: int, backend: Backend | None = None) -> HybridModel | BaselineModel:
    """The model a :class:`hqf.learn.experiment.RunConfig` describes, on ``config.device``.

    Seeds torch's global generator with ``config.seed`` first, so the initial weights are a function of
    the configuration. ``backend`` is built from the configuration when not given (and only when the
    fusion uses the quantum branch).
    """
    torch.manual_seed(config.seed)
    if config.baseline is not None:
        baseline = registry().get("baseline", config.baseline).cls()
        baseline.configure(config)
        module = baseline.build(in_features, n_classes)
        # a baseline that returns a whole hybrid-shaped model (e.g. classical-surrogate) keeps its own F
        return (module if isinstance(module, HybridModel) else BaselineModel(module)).to(config.device)
    fusion_cls = registry().get("fusion", config.fusion).cls
    needs_backbone = fusion_cls.uses_classical or (fusion_cls.uses_quantum and config.quantum_input == "latent")
    backbone = None
    if needs_backbone:
        if config.backbone == "mlp":
            backbone = MLPBackbone(in_features, config.hidden, config.latent)
        else:
            backbone = TransformerBackbone(
                in_features, config.latent, config.transformer_dim, config.transformer_layers, config.transformer_heads
            )
    quantum = None
    if fusion_cls.uses_quantum:
        ansatz = make_ansatz(config.ansatz)
        source = config.latent if config.quantum_input == "latent" else in_features
        try:
            encoder = make_encoder(config.encoder, source, ansatz.n_qubits, **config.encoder_options)
        except (TypeError, ValueError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"encoder {config.encoder!r} with {source} inputs on {ansatz.n_qubits} qubits: {exc}") from None
        backend = backend if backend is not None else make_run_backend(config)
        generator = torch.Generator().manual_seed(config.seed)
        quantum = QuantumLayer(encoder, ansatz, backend, gradient=config.gradient, generator=generator)
    classical_width = backbone.out_features if backbone is not None else 0
    quantum_width = quantum.out_features if quantum is not None else 0
    fusion = make_fusion(config.fusion, classical_width, quantum_width)
    model = HybridModel(backbone, quantum, fusion, n_classes, config.quantum_input)
    return model.to(config.device)


def count_parameters(model: HybridModel | BaselineModel) -> dict[str, int]:
    """Trainable parameters: in all, and in the quantum layer (encoder and ansatz)."""
    total = sum(p.numel() for p in model.parameters() if p.requires_grad)
    quantum = model.quantum
    n_quantum = sum(p.numel() for p in quantum.parameters() if p.requires_grad) if quantum is not None else 0
    return {"n_parameters": total, "n_quantum_parameters": n_quantum}
