"""Data-parallel training of one run with ``torch.distributed`` (``torchrun … -m hqf run``, ``hqf run --ddp N``).

Every rank builds the same model and data from the same seed and draws the same mini-batch order.
Of every global mini-batch, rank ``r`` runs the forward pass on its own contiguous shard (sizes differ
by at most one row) through ``DistributedDataParallel``; the fused features and logits of all shards
are gathered, so that the cross-entropy and every first-order regularizer (``stability``) are the
single-process values on the global batch, computed identically on every rank. A term that needs
second derivatives (``curvature``) is computed by rank 0 alone, on its own replica, from the same
samples a single process uses (:class:`RankZeroTerm`). Gradients: see :class:`DataParallel` and
docs/method.md ("Data-parallel training"). Rank 0 alone writes the run directory.

The process group is gloo on the CPU and nccl on CUDA, set up from torchrun's environment
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``); a collective that
waits longer than ``timeout_s`` (another rank died) raises instead of hanging.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import pathlib
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator

import attrs
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from hqf.errors import ConfigError
from hqf.learn.rundir.lock import LOCK
from hqf.learn.training.terms import Term
from hqf.registry.contracts import Regularizer, RegularizerInputs

__all__ = [
    "DataParallel", "Ranks", "RankZeroTerm", "adapt_terms", "free_port", "from_environment", "launch_command",
    "process_group", "rank_directory", "rank_setup", "shard_bounds",
]  # fmt: skip

#: seconds a collective may wait for the other ranks before the run fails
TIMEOUT_S = 120.0
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@attrs.frozen
class Ranks:
    """This process's place among the ranks of one data-parallel run."""

    rank: int
    world: int
    local_rank: int = 0

    @property
    def writes(self) -> bool:
        """Whether this rank writes the run directory (rank 0 alone)."""
        return self.rank == 0


def from_environment(environ=os.environ) -> Ranks | None:
    """The ranks torchrun describes in the environment, or None outside a multi-process launch."""
    if "RANK" not in environ or "WORLD_SIZE" not in environ:
        return None
    try:
        ranks = Ranks(int(environ["RANK"]), int(environ["WORLD_SIZE"]), int(environ.get("LOCAL_RANK", 0)))
    except ValueError:
        raise ConfigError(
            f"RANK, WORLD_SIZE and LOCAL_RANK must be integers (got {environ['RANK']!r}, "
            f"{environ['WORLD_SIZE']!r}, {environ.get('LOCAL_RANK')!r})"
        ) from None
    return ranks if ranks.world > 1 else None


@contextlib.contextmanager
def rank_directory(ranks: Ranks, out: pathlib.Path, resume: bool) -> Iterator[pathlib.Path]:
    """The folder this rank's run writes: ``out`` on rank 0; on the other ranks a temporary folder
    (holding a copy of ``out``'s run and checkpoint when resuming), removed afterwards."""
    if ranks.writes:
        yield out
        return
    with tempfile.TemporaryDirectory(prefix=f"hqf-rank{ranks.rank}-") as scratch:
        here = pathlib.Path(scratch) / "run"
        if resume:
            shutil.copytree(out, here, ignore=shutil.ignore_patterns(LOCK, f".{LOCK}.*"))
        yield here


@contextlib.contextmanager
def rank_setup(ranks: Ranks | None, device: str, out: pathlib.Path, resume: bool) -> Iterator[pathlib.Path]:
    """The folder this process's run writes (:func:`rank_directory`), with the process group of
    ``ranks`` set up meanwhile; ``out`` itself when ``ranks`` is None (one process)."""
    if ranks is None:
        yield out
        return
    with process_group(ranks, device), rank_directory(ranks, out, resume) as here:
        yield here


def launch_command(processes: int, hqf_args: list[str], port: int) -> list[str]:
    """torchrun (``python -m torch.distributed.run``) starting ``processes`` ranks of ``hqf HQF_ARGS`` on
    this machine, rendezvous at 127.0.0.1:``port``."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        "1",
        "--nproc-per-node",
        str(processes),
        "--master-addr",
        LOOPBACK[0],
        "--master-port",
        str(port),
        "-m",
        "hqf",
        *hqf_args,
    ]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK[0], 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def process_group(ranks: Ranks, device: str, timeout_s: float = TIMEOUT_S) -> Iterator[Ranks]:
    """While entered: the default process group of ``ranks`` (nccl for a CUDA ``device``, whose rank
    uses GPU ``LOCAL_RANK``; else gloo); a collective that waits over ``timeout_s`` raises."""
    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.set_device(ranks.local_rank)
    elif os.environ.get("MASTER_ADDR") in LOOPBACK and os.path.exists("/sys/class/net/lo"):
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # ranks on one machine talk over loopback only
    dist.init_process_group(
        "nccl" if cuda else "gloo",
        rank=ranks.rank,
        world_size=ranks.world,
        timeout=datetime.timedelta(seconds=timeout_s),
    )
    try:
        yield ranks
    finally:
        dist.destroy_process_group()


def shard_bounds(rows: int, world: int) -> list[int]:
    """Offsets of the ``world`` contiguous shards of ``rows`` rows (the first ``rows % world`` one longer)."""
    base, extra = divmod(rows, world)
    bounds = [0]
    for r in range(world):
        bounds.append(bounds[-1] + base + (1 if r < extra else 0))
    return bounds


class _GatherRows(torch.autograd.Function):
    """All ranks' row blocks concatenated in rank order. Backward: this rank's block of the incoming
    gradient, times the world size (every rank computes the same loss of the gathered rows, so the
    sum over ranks of their gradients is that; DDP's average then divides by the world size)."""

    @staticmethod
    def forward(ctx, local: torch.Tensor, bounds: list[int], rank: int) -> torch.Tensor:
        longest = max(b - a for a, b in zip(bounds, bounds[1:]))
        padded = local.new_zeros((longest, *local.shape[1:]))
        padded[: len(local)] = local
        blocks = [torch.empty_like(padded) for _ in range(len(bounds) - 1)]
        dist.all_gather(blocks, padded.contiguous())
        ctx.block, ctx.world = (bounds[rank], bounds[rank + 1]), len(bounds) - 1
        return torch.cat([block[: b - a] for block, a, b in zip(blocks, bounds, bounds[1:])])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        start, stop = ctx.block
        return grad[start:stop] * ctx.world, None, None


class _Features(nn.Module):
    """``forward`` = the model's ``forward_features``: what DDP wraps."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, **options) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.forward_features(x, **options)


class DataParallel(nn.Module):
    """A run's model trained data-parallel: :meth:`forward_features` of a global mini-batch runs this
    rank's shard through ``DistributedDataParallel`` and returns the gathered features and logits of
    the whole batch; ``forward`` (validation, evaluation) runs the whole input on the local replica.

    Its parameters and ``state_dict`` are the model's. Gradient of a loss ``L`` of the gathered
    rows, computed alike on every rank: rank ``r`` back-propagates ``W · ∂L/∂(its rows)`` into its
    replica, and DDP averages over the ``W`` ranks, which gives ``Σ_r ∂L/∂(rows r) · ∂(rows r)/∂θ``,
    the single-process gradient.
    """

    def __init__(self, model: nn.Module, ranks: Ranks) -> None:
        super().__init__()
        self.module, self.ranks = model, ranks
        device_ids = [ranks.local_rank] if next(model.parameters()).is_cuda else None
        # held outside the module tree: parameters() and state_dict() stay the model's own
        self.__dict__["ddp"] = DistributedDataParallel(_Features(model), device_ids=device_ids)

    def forward_features(self, x: torch.Tensor, **options) -> tuple[torch.Tensor, torch.Tensor]:
        bounds = shard_bounds(len(x), self.ranks.world)
        rank = self.ranks.rank
        features, logits = self.ddp(x[bounds[rank] : bounds[rank + 1]], **options)
        joined = _GatherRows.apply(torch.cat([features, logits.to(features.dtype)], dim=1), bounds, rank)
        return joined[:, : features.shape[1]], joined[:, features.shape[1] :].to(logits.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)

    def state_dict(self, *args, **kwargs):
        """The model's own (a checkpoint of a data-parallel run resumes with any number of ranks)."""
        return self.module.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        return self.module.load_state_dict(state_dict, strict=strict, assign=assign)


class _RankZeroPenalty(Regularizer):
    """``regularizer``'s penalty computed on rank 0 alone: its value is broadcast to every rank (so the
    loss is the same everywhere), its gradient on rank 0 is scaled by the world size (DDP's average
    divides it again) and on the other ranks is none."""

    def __init__(self, regularizer: Regularizer, ranks: Ranks) -> None:
        self.inner, self.ranks = regularizer, ranks
        self.name = regularizer.name
        self.needs_second_derivatives = regularizer.needs_second_derivatives
        self.generator = getattr(regularizer, "generator", None)  # checkpointed with the run

    def penalty(self, inputs: RegularizerInputs) -> torch.Tensor:
        if self.ranks.rank == 0:
            value = self.inner.penalty(inputs)
            shared = value.detach().to(torch.float64).reshape(1).clone()
        else:
            value, shared = None, torch.zeros(1, dtype=torch.float64, device=inputs.ce_loss.device)
        dist.broadcast(shared, src=0)
        if value is None:
            return shared[0].to(inputs.ce_loss.dtype)
        return value + (self.ranks.world - 1) * (value - value.detach())

    def __repr__(self) -> str:
        return f"rank 0 alone: {self.inner!r}"


@attrs.frozen
class RankZeroTerm(Term):
    """A term evaluated by rank 0 alone on its own replica, from the rows a single process uses (the
    first ``batch`` of the global mini-batch): :meth:`Term.inputs` on the local model, with the
    mini-batch's forward pass replaced by a local one of those rows (the gathered one would route
    the term's own derivatives through the other ranks)."""

    ranks: Ranks | None = None

    def inputs(
        self, model: nn.Module, xb: torch.Tensor, yb: torch.Tensor, full: RegularizerInputs
    ) -> RegularizerInputs:
        if self.ranks.rank != 0:
            return full  # not read: the penalty arrives from rank 0
        local = model.module if isinstance(model, DataParallel) else model
        size = len(yb) if self.batch is None else min(self.batch, len(yb))
        features, logits = local.forward_features(xb[:size])
        own = RegularizerInputs(features, logits, F.cross_entropy(logits.float(), yb[:size]), full.parameters)
        return Term.inputs(self, local, xb, yb, own)


def adapt_terms(terms: list[Term], ranks: Ranks) -> list[Term]:
    """The run's terms for data-parallel training: those that need second derivatives become
    :class:`RankZeroTerm`; first-order terms on their own sub-batch are refused (DDP allows one
    forward pass per iteration); the others see the gathered global batch unchanged."""
    adapted = []
    for term in terms:
        if term.regularizer.needs_second_derivatives:
            fields = {f.name: getattr(term, f.name) for f in attrs.fields(Term)}
            fields["regularizer"] = _RankZeroPenalty(term.regularizer, ranks)
            adapted.append(RankZeroTerm(**fields, ranks=ranks))
        elif term.batch is not None or term.quantum_constant:
            raise ConfigError(
                f"regularizer {term.name!r} runs a forward pass of its own, which data-parallel "
                "training does not support; train it in one process"
            )
        else:
            adapted.append(term)
    return adapted
