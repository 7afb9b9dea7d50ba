"""What every dataset goes through after it is read: the stratified 70/15/15 split, z-scoring with the training
split's statistics, label noise and Gaussian input noise.

Label noise flips a fraction of the training and validation labels to a uniformly drawn *other* class;
the test labels stay clean. Gaussian input noise (σ) can be added after scaling to chosen splits. Large
arrays are handled :data:`CHUNK_ROWS` rows at a time, in float32.
"""

from __future__ import annotations

import numpy as np

from hqf.errors import DataError
from hqf.learn.data.dataset import Split

SPLIT_FRACTIONS = (0.70, 0.15, 0.15)
#: rows handled at once by the chunked loops (scaling, noise, synthetic features)
CHUNK_ROWS = 1 << 16
#: the splits (0 train, 1 validation, 2 test) that input noise goes to, by the name a config gives
NOISE_SPLITS = {"all": (0, 1, 2), "train": (0,), "test": (2,)}


def stratified_counts(counts: np.ndarray) -> np.ndarray:
    """Per-class train/val/test counts ``[C, 3]`` following :data:`SPLIT_FRACTIONS`."""
    train = np.floor(counts * SPLIT_FRACTIONS[0]).astype(np.int64)
    val = np.floor(counts * SPLIT_FRACTIONS[1]).astype(np.int64)
    return np.stack([train, val, counts - train - val], axis=1)


def stratified_split(
    x: np.ndarray, y: np.ndarray, n_classes: int, rng: np.random.Generator, source: str
) -> list[Split]:
    """70/15/15 split with each class divided in those proportions (shuffled within each split)."""
    counts = np.bincount(y, minlength=n_classes)
    small = np.flatnonzero(counts < 3)
    if small.size:
        raise DataError(f"{source}: classes {small.tolist()} have fewer than 3 samples; each split needs one")
    per_split = stratified_counts(counts)
    parts: list[list[np.ndarray]] = [[], [], []]
    for c in range(n_classes):
        members = rng.permutation(np.flatnonzero(y == c))
        bounds = np.cumsum(per_split[c])
        for s, chunk in enumerate(np.split(members, bounds[:2])):
            parts[s].append(chunk)
    splits = []
    for chunks in parts:
        index = rng.permutation(np.concatenate(chunks))
        splits.append(Split(np.ascontiguousarray(x[index], dtype=np.float32), y[index].astype(np.int64)))
    return splits


def _column_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and (population) std in float64, chunk by chunk (Chan et al.'s pairwise update)."""
    n, mean, m2 = 0, np.zeros(x.shape[1]), np.zeros(x.shape[1])
    for start in range(0, len(x), CHUNK_ROWS):
        block = x[start : start + CHUNK_ROWS].astype(np.float64)
        k = len(block)
        block_mean = block.mean(axis=0)
        block_m2 = ((block - block_mean) ** 2).sum(axis=0)
        delta = block_mean - mean
        total = n + k
        mean = mean + delta * (k / total)
        m2 = m2 + block_m2 + delta**2 * (n * k / total)
        n = total
    return mean, np.sqrt(m2 / max(n, 1))


def fit_scaler(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and std (float64) of ``x``; a std of 0 becomes 1."""
    mean, std = _column_stats(x)
    std[std == 0] = 1.0
    return mean, std


def apply_scaler(x: np.ndarray, scaler: tuple[np.ndarray, np.ndarray]) -> None:
    """z-score the float32 array ``x`` in place: ``(x − mean)·(1/std)`` in float32, chunk by chunk."""
    mean, std = scaler
    mean32, inv32 = mean.astype(np.float32), (1.0 / std).astype(np.float32)
    for start in range(0, len(x), CHUNK_ROWS):
        block = x[start : start + CHUNK_ROWS]
        block -= mean32
        block *= inv32


def standardize(splits: list[Split], scaler: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
    """z-score every split in place with the training split's per-feature mean and std (std 0 → 1),
    or with ``scaler`` (:func:`fit_scaler` of the training split) when given."""
    mean, std = scaler if scaler is not None else fit_scaler(splits[0].x)
    for split in splits:
        apply_scaler(split.x, (mean, std))
    return {"scaler_mean_abs_max": float(np.abs(mean).max()), "scaler_std_min": float(std.min())}


def flip_labels(y: np.ndarray, fraction: float, n_classes: int, rng: np.random.Generator) -> np.ndarray:
    """A copy of ``y`` with ``round(fraction·n)`` labels moved to a uniformly drawn other class."""
    if not 0 <= fraction < 1:
        raise DataError(f"'label_noise' must be in [0, 1) (got {fraction})")
    y = y.copy()
    count = int(round(fraction * len(y)))
    if count == 0 or n_classes < 2:
        return y
    where = rng.choice(len(y), size=count, replace=False)
    y[where] = (y[where] + rng.integers(1, n_classes, size=count)) % n_classes
    return y


def add_input_noise(x: np.ndarray, sigma: float, rng: np.random.Generator) -> None:
    """Add ``N(0, σ²)`` noise to ``x`` in place (chunked, float32); a σ that makes a value overflow
    float32 is a DataError naming the option."""
    if sigma < 0:
        raise DataError(f"'input_noise' must be >= 0 (got {sigma})")
    for start in range(0, len(x), CHUNK_ROWS):
        block = x[start : start + CHUNK_ROWS]
        with np.errstate(over="ignore", invalid="ignore"):
            block += sigma * rng.standard_normal(block.shape, dtype=np.float32)
        if not np.isfinite(block).all():
            raise DataError(
                f"'input_noise' = {sigma:g} makes the (z-scored) inputs overflow float32 "
                "(the model computes in float32); give a smaller σ"
            )
