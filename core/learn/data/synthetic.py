"""The seed paper's structured decision sets, ``dataset-a`` and ``dataset-b`` (synthetic, seeded; see
docs/method.md, "Data").

A dataset name fixes the *distribution*: class centres, covariances and the feature map are drawn from a
seed derived from the name, so ``dataset-a`` is one benchmark. ``seed`` draws the *samples* (labels,
latents, noise). For each sample:

1. a class ``y`` with prior ``p_c ∝ imbalance^(-c/(C-1))`` (majority : minority = ``imbalance`` : 1,
   the other classes spread geometrically between), and one of ``K`` clusters of that class uniformly;
2. a latent ``z = μ_{y,k} + L_{y,k} ε`` in ``R^m`` (``ε ~ N(0, I)``, ``L`` a random rotation times
   log-uniform axis scales: anisotropic Gaussians, several per class, so classes are multi-modal);
3. features ``x = tanh(z W₁ + b₁) W₂ + z W₃ + σ_n ξ`` in ``R^d``: a fixed random nonlinear map of the
   latent plus isotropic noise. Features are strongly correlated (rank-``m`` signal in ``d`` dimensions),
   which survives z-scoring and makes the loss surface anisotropic.
"""

from __future__ import annotations

import math
import zlib

import attrs
import numpy as np

from hqf.errors import DataError
from hqf.learn.data.dataset import Split
from hqf.learn.data.splits import CHUNK_ROWS, stratified_counts


@attrs.frozen
class SyntheticSpec:
    """The definition of one structured decision benchmark."""

    n_features: int
    n_classes: int
    full_size: int
    imbalance: float  # majority : minority class prior ratio
    n_latent: int = 16
    n_hidden: int = 64
    clusters: int = 3  # Gaussian clusters per class
    separation: float = 0.6  # scale of the cluster centres in latent units
    scale_range: tuple[float, float] = (0.3, 1.0)  # log-uniform axis scales of the cluster covariances
    noise: float = 0.3  # σ_n of the isotropic feature noise (before z-scoring)


#: the seed paper's two benchmarks (sizes, features, classes, imbalance from its "Dataset Description";
#: the paper gives no imbalance for B: balanced here)
SYNTHETIC: dict[str, SyntheticSpec] = {
    "dataset-a": SyntheticSpec(n_features=128, n_classes=12, full_size=1_500_000, imbalance=6.0),
    "dataset-b": SyntheticSpec(
        n_features=512, n_classes=8, full_size=220_000, imbalance=1.0, n_latent=24, separation=0.4, noise=0.2
    ),
}


def class_priors(n_classes: int, imbalance: float) -> np.ndarray:
    """``p_c ∝ imbalance^(-c/(C-1))``: class 0 is the majority, class C-1 the minority."""
    if imbalance < 1:
        raise DataError(f"'imbalance' must be >= 1 (majority:minority; got {imbalance})")
    weights = imbalance ** (-np.arange(n_classes) / max(n_classes - 1, 1))
    return weights / weights.sum()


def _structure_seed(name: str) -> int:
    return zlib.crc32(name.encode())


@attrs.frozen(eq=False)
class _Structure:
    """The fixed parameters of a synthetic benchmark (float32)."""

    centres: np.ndarray  # [C, K, m]
    chol: np.ndarray  # [C, K, m, m]
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    w3: np.ndarray


def _structure(name: str, spec: SyntheticSpec) -> _Structure:
    rng = np.random.default_rng(_structure_seed(name))
    C, K, m, h, d = spec.n_classes, spec.clusters, spec.n_latent, spec.n_hidden, spec.n_features
    centres = rng.normal(0.0, spec.separation, size=(C, K, m))
    lo, hi = np.log(spec.scale_range[0]), np.log(spec.scale_range[1])
    chol = np.empty((C, K, m, m))
    for c in range(C):
        for k in range(K):
            rotation, _ = np.linalg.qr(rng.normal(size=(m, m)))
            chol[c, k] = rotation * np.exp(rng.uniform(lo, hi, size=m))  # columns scaled
    w1 = rng.normal(0.0, 1.0 / math.sqrt(m), size=(m, h))
    b1 = rng.normal(0.0, 0.5, size=h)
    w2 = rng.normal(0.0, 1.0 / math.sqrt(h), size=(h, d))
    w3 = rng.normal(0.0, 0.5 / math.sqrt(m), size=(m, d))
    f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
    return _Structure(f32(centres), f32(chol), f32(w1), f32(b1), f32(w2), f32(w3))


def _features(
    structure: _Structure, spec: SyntheticSpec, y: np.ndarray, rng: np.random.Generator, out: np.ndarray
) -> None:
    """Fill ``out[n, d]`` with samples of ``x | y``, chunk by chunk (float32 throughout)."""
    m, K = spec.n_latent, spec.clusters
    for start in range(0, len(y), CHUNK_ROWS):
        yc = y[start : start + CHUNK_ROWS]
        n = len(yc)
        k = rng.integers(0, K, size=n)
        eps = rng.standard_normal((n, m), dtype=np.float32)
        z = structure.centres[yc, k] + np.einsum("nij,nj->ni", structure.chol[yc, k], eps)
        x = np.tanh(z @ structure.w1 + structure.b1) @ structure.w2
        x += z @ structure.w3
        x += spec.noise * rng.standard_normal((n, spec.n_features), dtype=np.float32)
        out[start : start + n] = x


def synthetic(
    name: str,
    samples: int | None = None,
    seed: int = 0,
    imbalance: float | None = None,
    features: int | None = None,
) -> tuple[list[Split], dict]:
    """Unscaled splits of a synthetic benchmark and its facts (see the module docstring).

    ``features`` changes the feature dimension ``d`` (a different benchmark of the same family: its
    structure is drawn from the name and ``d``), e.g. for latency against feature dimension.
    """
    spec = SYNTHETIC[name]
    key = name
    if features is not None and features != spec.n_features:
        spec, key = attrs.evolve(spec, n_features=int(features)), f"{name}/d={int(features)}"
    n = spec.full_size if samples is None else int(samples)
    minimum = 20 * spec.n_classes
    if n < minimum:
        raise DataError(f"{name} needs 'samples' >= {minimum} ({spec.n_classes} classes, 3 splits; got {n})")
    ratio = spec.imbalance if imbalance is None else float(imbalance)
    priors = class_priors(spec.n_classes, ratio)
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, priors)
    missing = np.flatnonzero(counts < 3)
    if missing.size:
        raise DataError(f"{name} with {n} samples drew < 3 samples of classes {missing.tolist()}; use more samples")
    per_split = stratified_counts(counts)
    structure = _structure(key, spec)
    splits = []
    for s in range(3):
        y = np.repeat(np.arange(spec.n_classes), per_split[:, s])
        rng.shuffle(y)
        x = np.empty((len(y), spec.n_features), dtype=np.float32)
        _features(structure, spec, y, rng, x)
        splits.append(Split(x, y.astype(np.int64)))
    info = {"imbalance": ratio, "class_priors": priors.round(6).tolist(), "structure": key}
    return splits, info
