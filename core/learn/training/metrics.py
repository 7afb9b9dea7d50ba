"""Evaluation metrics of the seed paper's Tables I–IV (definitions in docs/method.md).

- accuracy and macro-F1 (scikit-learn's ``f1_score(average="macro")`` over all classes);
- expected calibration error: 15 equal-width confidence bins on [0, 1], top-label confidence
  (the largest softmax probability), ``ECE = Σ_b (n_b/N)·|acc_b − conf_b|``; a bin is ``(lo, hi]``,
  the first one ``[0, 1/15]``;
- negative log-likelihood: mean cross-entropy of the softmax probabilities;
- inference latency per instance: median over repeats (after warm-up) of one forward pass at a batch
  size, divided by the batch size, model in eval mode under ``torch.inference_mode``;
- the variance amplification index (VAI, Table III) — how much the fused embedding ``F`` moves under
  Gaussian input noise, relative to how much it varies across inputs, relative to the same ratio at the
  input::

      VAI = [ E_x tr Cov_η F(x+η) / tr Cov_x F(x) ] / [ σ²·d / tr Cov_x x ],    η ~ N(0, σ² I_d)

  For a linear map ``F(x) = A x + b`` it is ``‖A‖_F² · tr Σ / (d · tr(A Σ Aᵀ))`` (Σ the input
  covariance): 1 for isotropic inputs; below 1 when ``F`` responds less to noise than to the signal.
  It is invariant to rescaling ``F``, so a model cannot lower it by shrinking its embedding.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

ECE_BINS = 15


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int | None = None) -> float:
    """Unweighted mean of per-class F1 over ``0..n_classes-1`` (a class never predicted scores 0)."""
    from sklearn.metrics import f1_score  # noqa: PLC0415 — scikit-learn takes ~1 s to import

    labels = list(range(n_classes)) if n_classes is not None else None
    return float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0))


def reliability(probs: np.ndarray, y_true: np.ndarray, n_bins: int = ECE_BINS) -> dict:
    """Per-bin mean confidence, accuracy and count (top-label, equal-width bins; empty bins: None)."""
    probs = np.asarray(probs, dtype=np.float64)
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == np.asarray(y_true)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    out: dict[str, list] = {"edges": edges.tolist(), "confidence": [], "accuracy": [], "count": []}
    for b in range(n_bins):
        members = index == b
        count = int(members.sum())
        out["count"].append(count)
        out["confidence"].append(float(confidence[members].mean()) if count else None)
        out["accuracy"].append(float(correct[members].mean()) if count else None)
    return out


def expected_calibration_error(probs: np.ndarray, y_true: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """``Σ_b (n_b/N)·|acc_b − conf_b|`` over equal-width bins of the top-label confidence."""
    bins = reliability(probs, y_true, n_bins)
    total = sum(bins["count"])
    return float(
        sum(n * abs(a - c) for n, a, c in zip(bins["count"], bins["accuracy"], bins["confidence"]) if n) / total
    )


def nll(probs: np.ndarray, y_true: np.ndarray) -> float:
    """Mean ``−log p(y_i)`` (probabilities clipped at 1e-12)."""
    probs = np.asarray(probs, dtype=np.float64)
    picked = probs[np.arange(len(probs)), np.asarray(y_true)]
    return float(-np.mean(np.log(np.clip(picked, 1e-12, None))))


@torch.inference_mode()
def predict_proba(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 1024) -> np.ndarray:
    """Softmax probabilities ``[N, C]`` (float64 numpy), model in eval mode."""
    model.eval()
    parts = [torch.softmax(model(x[i : i + batch_size]).double(), dim=1) for i in range(0, len(x), batch_size)]
    return torch.cat(parts).cpu().numpy()


def classification_metrics(probs: np.ndarray, y_true: np.ndarray, n_classes: int) -> dict:
    """accuracy, macro_f1, ece, nll and the reliability bins of one prediction set."""
    pred = probs.argmax(axis=1)
    return {
        "accuracy": accuracy(y_true, pred),
        "macro_f1": macro_f1(y_true, pred, n_classes),
        "ece": expected_calibration_error(probs, y_true),
        "nll": nll(probs, y_true),
        "reliability": reliability(probs, y_true),
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.inference_mode()
def latency_per_instance(
    model: torch.nn.Module, x: torch.Tensor, batch_size: int, repeats: int = 30, warmup: int = 3
) -> float:
    """Median seconds per instance of ``model(x[:batch_size])`` (rows repeated if ``x`` is shorter),
    in eval mode under ``torch.inference_mode`` (frozen weights: no autograd graph is recorded)."""
    with torch.inference_mode():
        return _median_latency(model, x, batch_size, repeats, warmup)


def _median_latency(model: torch.nn.Module, x: torch.Tensor, batch_size: int, repeats: int, warmup: int) -> float:
    if len(x) < batch_size:
        x = x.repeat((batch_size + len(x) - 1) // len(x), 1)
    batch = x[:batch_size].contiguous()
    model.eval()
    for _ in range(warmup):
        model(batch)
    _sync(batch.device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(batch)
        _sync(batch.device)
        times.append(time.perf_counter() - start)
    return statistics.median(times) / batch_size


def _total_variance(values: torch.Tensor) -> torch.Tensor:
    """``tr Cov`` over the first axis (unbiased), float64."""
    values = values.double()
    return ((values - values.mean(dim=0)) ** 2).sum(dim=-1).sum(dim=0) / (values.shape[0] - 1)


@torch.inference_mode()
def variance_amplification(
    embed: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    sigma: float = 0.05,
    draws: int = 8,
    generator: torch.Generator | None = None,
) -> dict:
    """The VAI of the module docstring, estimated on the rows of ``x`` with ``draws`` noise draws each.

    Returns ``vai``, ``noise_var`` (``E_x tr Cov_η F(x+η)``), ``signal_var`` (``tr Cov_x F(x)``),
    ``input_nsr`` (``σ²·d / tr Cov_x x``) and ``reason``: None, or why ``vai`` is None (the inputs or the
    embedding do not vary over the rows: a ratio of zero variances).
    """
    if len(x) < 2 or draws < 2:
        raise ValueError(f"need at least 2 inputs and 2 noise draws (got {len(x)} and {draws})")
    n, d = x.shape
    clean = embed(x)
    noise = (
        torch.randn((draws, n, d), generator=generator, dtype=torch.float32).to(device=x.device, dtype=x.dtype) * sigma
    )
    noisy = torch.stack([embed(x + noise[k]) for k in range(draws)])  # [draws, n, k]
    noise_var = float(_total_variance(noisy).mean())  # per-input variance over draws, averaged over inputs
    signal_var = float(_total_variance(clean))
    input_var = float(_total_variance(x))
    input_nsr = sigma**2 * d / input_var if input_var > 0 else None
    reason = None
    if input_nsr is None:
        reason = "the test inputs do not vary (tr Cov_x x = 0)"
    elif not signal_var > 0:
        reason = "the embedding does not vary over the test inputs (tr Cov_x F(x) = 0)"
    vai = (noise_var / signal_var) / input_nsr if reason is None else None
    return {"vai": vai, "noise_var": noise_var, "signal_var": signal_var, "input_nsr": input_nsr, "reason": reason}
