"""Data-parallel training of one run with ``torch.distributed`` (``torchrun … -m hqf run``, ``hqf run --ddp N``).

Every rank builds the same model and data from the same seed and draws the same mini-batch order.
Of every global mini-batch, rank ``r`` runs the forward pass on its own contiguous shard (sizes differ
by at most one row) through ``DistributedDataParallel``; the fused features and logits of all shards
are gathered, so that the cross-entropy and every first-order regularizer (``stability``) are the
single-process values on the global batch, computed identically on every rank. A term that needs
second derivatives (``curvature``) is computed by rank 0 alone, on its own replica, from the same
samples a single process uses (:class:`RankZeroTerm`). Gradients: see :class:`DataParallel` and
docs/method.md ("Data-parallel training"). Rank 0 alone writes the run directory.

The process group is gloo on the CPU and nccl on CUDA, set up from the environment torchrun or
:func:`launch` gives each rank (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``,
``MASTER_PORT``); a collective that waits longer than ``timeout_s`` (another rank died) raises
instead of hanging. Where ``MASTER_ADDR`` is a loopback address and no torchrun agent hosts the
rendezvous, rank 0 hosts it on that address alone (a socket bound there, never on every interface)
and gloo talks over the loopback interface.

``hqf run --ddp N`` (:func:`launch`) starts the N ranks itself: each in a session of its own, ended by
the kernel when the launcher dies (``PR_SET_PDEATHSIG`` on Linux: SIGTERM, so rank 0 saves first),
the launcher's SIGINT or SIGTERM passed on to each. When a rank ends abnormally the others are
given :data:`GRACE_S` to stop on their own (a lost peer fails their next collective at once), then
SIGTERM, then SIGKILL. The run directory keeps its last checkpoint whichever rank died
(:class:`hqf.learn.training.checkpointing.RankLost`), and ``hqf run --resume DIR --ddp N`` continues
it bit for bit.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import datetime
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping

import attrs
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from hqf.errors import ConfigError
from hqf.learn.rundir import checkpoint as ckpt
from hqf.learn.rundir.lock import LOCK, holder
from hqf.learn.rundir.state import read_status
from hqf.learn.training.terms import Term
from hqf.registry.contracts import Regularizer, RegularizerInputs

__all__ = [
    "DataParallel", "Launch", "Ranks", "RankZeroTerm", "adapt_terms", "free_port", "from_environment", "launch",
    "launched", "process_group", "rank_directory", "rank_setup", "shard_bounds",
]  # fmt: skip

#: seconds a collective may wait for the other ranks before the run fails
TIMEOUT_S = 120.0
LOOPBACK = ("127.0.0.1", "localhost", "::1")
#: seconds the other ranks get to end on their own after one ended abnormally, and again after SIGTERM
GRACE_S = 30.0
#: set by :func:`launch` in each rank's environment: the launcher's pid
LAUNCHER = "HQF_DDP_LAUNCHER"
#: the exit status of a rank :func:`launch` started that stopped because another rank was lost
LOST_EXIT = 75
_PR_SET_PDEATHSIG = 1


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


def launched(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether this process is a rank :func:`launch` started (which reports a lost rank for all of them)."""
    return LAUNCHER in environ


def _end_with_launcher() -> None:
    """In a rank :func:`launch` started: SIGTERM from the kernel when the launcher dies (Linux); gone already: stop."""
    launcher = os.environ.get(LAUNCHER, "")
    if not launcher.isdigit():
        return
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != int(launcher):  # it died before the setting took effect
        os.kill(os.getpid(), signal.SIGTERM)


@attrs.frozen
class Launch:
    """How :func:`launch` ended: ``exit_code`` (0: every rank finished) and the line to print (None: the
    ranks said it themselves)."""

    exit_code: int
    message: str | None = None


def launch(processes: int, hqf_args: list[str], out: pathlib.Path, environ: Mapping[str, str] = os.environ) -> Launch:
    """``hqf run --ddp N``: ``hqf HQF_ARGS`` as ``processes`` ranks on this machine, rendezvous on
    127.0.0.1 (see the module's docstring); returns when every rank has ended."""
    port = free_port()
    base = {**environ, "OMP_NUM_THREADS": environ.get("OMP_NUM_THREADS", "1")}
    base.update(
        WORLD_SIZE=str(processes), LOCAL_WORLD_SIZE=str(processes), MASTER_ADDR=LOOPBACK[0], MASTER_PORT=str(port)
    )
    base[LAUNCHER] = str(os.getpid())
    command = [sys.executable, "-m", "hqf", *hqf_args]
    ranks: list[subprocess.Popen] = []
    received: list[int] = []

    def forward(signum, frame) -> None:
        received.append(signum)
        for rank in ranks:
            if rank.poll() is None:
                rank.send_signal(signum)

    previous = {signum: signal.signal(signum, forward) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        for r in range(processes):
            environment = {**base, "RANK": str(r), "LOCAL_RANK": str(r)}
            ranks.append(subprocess.Popen(command, env=environment, start_new_session=True))
        first = _wait_all(ranks)
    finally:
        for rank in ranks:  # the launcher itself is ending (an error here): its ranks with it
            if rank.poll() is None:
                rank.kill()
                rank.wait()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return _outcome(first, ranks, received, out, processes)


def _wait_all(ranks: list[subprocess.Popen]) -> tuple[int, int] | None:
    """Wait for every rank; after one ends abnormally the rest get :data:`GRACE_S`, then SIGTERM, then
    SIGKILL. The first abnormal end as ``(rank, return code)``, or None."""
    first, since, stage = None, 0.0, 0
    while any(rank.poll() is None for rank in ranks):
        if first is None:
            first = _culprit(ranks)
            since = time.monotonic()
        elif time.monotonic() - since > GRACE_S and stage < 2:
            stage += 1
            for rank in ranks:
                if rank.poll() is None:
                    rank.send_signal(signal.SIGTERM if stage == 1 else signal.SIGKILL)
            since = time.monotonic()
        time.sleep(0.05)
    return first or _culprit(ranks)


def _culprit(ranks: list[subprocess.Popen]) -> tuple[int, int] | None:
    """The rank that ended abnormally on its own (by a signal first; not one that stopped for a lost peer)."""
    ended = [(r, p.returncode) for r, p in enumerate(ranks) if p.returncode not in (None, 0)]
    ended.sort(key=lambda item: (item[1] >= 0, item[1] == LOST_EXIT, item[0]))
    return ended[0] if ended else None


def _outcome(
    first: tuple[int, int] | None, ranks: list[subprocess.Popen], received: list[int], out: pathlib.Path, world: int
) -> Launch:
    """The exit status and the one line of a launch whose ranks all ended (see :func:`launch`); the ranks
    print no ``Interrupted:`` line of their own (``hqf run`` under :func:`launched`)."""
    if first is None:
        return Launch(0)
    status = read_status(out) or {}
    kept = (out / ckpt.CHECKPOINT).exists() and status.get("status") in ("running", "interrupted")
    if received:  # the user's SIGINT or SIGTERM, passed on
        how = f"interrupted by {signal.Signals(received[0]).name}"
        code = 128 + received[0]
    else:
        rank, returned = first
        ended = f"ended by {signal.Signals(-returned).name}" if returned < 0 else f"exited with status {returned}"
        how, code = f"rank {rank} of {world} {ended}", 1
        if not kept and returned > 0 and status.get("status") != "interrupted":  # its own error, which it printed
            return Launch(ranks[0].returncode if ranks[0].returncode > 0 else 1)
    if not kept:
        return Launch(code, f"{how} before the run's first checkpoint; run it again")
    if status.get("status") == "running" and holder(out) is None:  # rank 0 itself is gone: nobody recorded it
        record = {**status, "status": "interrupted", "reason": how, "updated": time.time()}
        ckpt.atomic_write_text(out / "status.json", json.dumps(record, indent=1) + "\n")
    return Launch(
        code,
        f"{how}; the run so far is kept in {out} (checkpoint.pt of iteration {status.get('step')}); "
        f"continue it with: hqf run --resume {out} --ddp {world}",
    )


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK[0], 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def process_group(ranks: Ranks, device: str, timeout_s: float = TIMEOUT_S) -> Iterator[Ranks]:
    """While entered: the default process group of ``ranks`` (nccl for a CUDA ``device``, whose rank
    uses GPU ``LOCAL_RANK``; else gloo); a collective that waits over ``timeout_s`` raises."""
    _end_with_launcher()
    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.set_device(ranks.local_rank)
    elif os.environ.get("MASTER_ADDR") in LOOPBACK and os.path.exists("/sys/class/net/lo"):
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # ranks on one machine talk over loopback only
    timeout = datetime.timedelta(seconds=timeout_s)
    with _loopback_store(ranks, timeout) as store:
        dist.init_process_group(
            "nccl" if cuda else "gloo", store=store, rank=ranks.rank, world_size=ranks.world, timeout=timeout
        )
        try:
            yield ranks
        finally:
            dist.destroy_process_group()


@contextlib.contextmanager
def _loopback_store(ranks: Ranks, timeout: datetime.timedelta) -> Iterator[dist.TCPStore | None]:
    """The rendezvous store on ``MASTER_ADDR``:``MASTER_PORT`` when that address is a loopback one and no
    torchrun agent hosts it: rank 0 listens on that address alone. None otherwise (torch's own
    ``env://`` rendezvous)."""
    address, port = os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT", "")
    if address not in LOOPBACK or not port.isdigit() or os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
        yield None
        return
    if ranks.rank != 0:
        yield dist.TCPStore(address, int(port), ranks.world, False, timeout)
        return
    family = socket.AF_INET6 if address == "::1" else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1" if address == "localhost" else address, int(port)))
        listener.listen(128)
        fd = listener.detach()  # the store owns it from here
    yield dist.TCPStore(address, int(port), ranks.world, True, timeout, master_listen_fd=fd)


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
