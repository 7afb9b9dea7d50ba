"""Datasets: the seed paper's structured decision sets (synthetic, seeded), scikit-learn's digits, user files.

Every loader returns a :class:`Dataset`: float32 features and int64 labels split 70/15/15 (stratified by
class), z-scored with the mean and standard deviation of the training split only.

Synthetic sets (``dataset-a``, ``dataset-b``; see docs/method.md, "Data"). A dataset name fixes the
*distribution*: class centres, covariances and the feature map are drawn from a seed derived from the name,
so ``dataset-a`` is one benchmark. ``seed`` draws the *samples* (labels, latents, noise). For each sample:

1. a class ``y`` with prior ``p_c ∝ imbalance^(-c/(C-1))`` (majority : minority = ``imbalance`` : 1,
   the other classes spread geometrically between), and one of ``K`` clusters of that class uniformly;
2. a latent ``z = μ_{y,k} + L_{y,k} ε`` in ``R^m`` (``ε ~ N(0, I)``, ``L`` a random rotation times
   log-uniform axis scales: anisotropic Gaussians, several per class, so classes are multi-modal);
3. features ``x = tanh(z W₁ + b₁) W₂ + z W₃ + σ_n ξ`` in ``R^d``: a fixed random nonlinear map of the
   latent plus isotropic noise. Features are strongly correlated (rank-``m`` signal in ``d`` dimensions),
   which survives z-scoring and makes the loss surface anisotropic.

Label noise flips a fraction of the training and validation labels to a uniformly drawn *other* class;
the test labels stay clean. Gaussian input noise (σ) can be added after scaling to chosen splits.

User files (``.csv``, ``.npz``) are read here too, and any malformed one is a :class:`DataError`: text
that is not UTF-8 or not CSV, ragged rows, cells that are not numbers, arrays of objects (never
unpickled: ``allow_pickle=False``). The synthetic sets and the file readers share the split, the
scaling and these checks, which is why they live in one module longer than the others.

Image files (``mnist:DIR``, ``cifar10:DIR``, …) are read by :mod:`hqf.learn.data.images`; their rows are the
pixels of one image each, row-major (``Dataset.image_shape`` gives ``(C, H, W)``), scaled per channel.
"""

from __future__ import annotations

import csv
import math
import pathlib
import zipfile
import zlib

import attrs
import numpy as np

from hqf.errors import DataError
from hqf.learn.data import images
SPLIT_FRACTIONS = (0.70, 0.15, 0.15)
_CHUNK = 1 << 16


@attrs.frozen(eq=False)
class Split:
    """Features ``x[n, d]`` (float32) and labels ``y[n]`` (int64 in ``0..C-1``)."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


@attrs.frozen(eq=False)
class Dataset:
    """Train, validation and test splits with the facts a run records about them."""

    name: str
    train: Split
    val: Split
    test: Split
    n_features: int
    n_classes: int
    class_names: tuple[str, ...]
    info: dict = attrs.field(factory=dict)
    #: the per-feature mean and standard deviation (float64) every split was z-scored with; None: not scaled
    scaler: tuple[np.ndarray, np.ndarray] | None = None
    #: ``(C, H, W)`` of an image dataset (each row holds one image's pixels, row-major); None otherwise
    image_shape: tuple[int, int, int] | None = None

    def summary(self) -> dict:
        """Sizes and class counts, JSON-ready."""
        return {
            "name": self.name,
            "n_features": self.n_features,
            "n_classes": self.n_classes,
            "n_train": len(self.train),
            "n_val": len(self.val),
            "n_test": len(self.test),
            "train_class_counts": np.bincount(self.train.y, minlength=self.n_classes).tolist(),
            **self.info,
        }


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
DIGITS = ("digits", "digits-4x4")
BUILTIN = (*SYNTHETIC, *DIGITS)


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


def _features(structure: _Structure, spec: SyntheticSpec, y: np.ndarray, rng: np.random.Generator, out: np.ndarray) -> None:
    """Fill ``out[n, d]`` with samples of ``x | y``, chunk by chunk (float32 throughout)."""
    m, K = spec.n_latent, spec.clusters
    for start in range(0, len(y), _CHUNK):
        yc = y[start : start + _CHUNK]
        n = len(yc)
        k = rng.integers(0, K, size=n)
        eps = rng.standard_normal((n, m), dtype=np.float32)
        z = structure.centres[yc, k] + np.einsum("nij,nj->ni", structure.chol[yc, k], eps)
        x = np.tanh(z @ structure.w1 + structure.b1) @ structure.w2
        x += z @ structure.w3
        x += spec.noise * rng.standard_normal((n, spec.n_features), dtype=np.float32)
        out[start : start + n] = x


def _stratified_counts(counts: np.ndarray) -> np.ndarray:
    """Per-class train/val/test counts ``[C, 3]`` following :data:`SPLIT_FRACTIONS`."""
    train = np.floor(counts * SPLIT_FRACTIONS[0]).astype(np.int64)
    val = np.floor(counts * SPLIT_FRACTIONS[1]).astype(np.int64)
    return np.stack([train, val, counts - train - val], axis=1)


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
    per_split = _stratified_counts(counts)
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


def digits(downsample: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8×8 digits (1,797 images, 10 classes); 2×2 mean-pooled to 4×4 if asked."""
    from sklearn.datasets import load_digits  # at use: scikit-learn takes ~1 s to import

    bunch = load_digits()
    x = bunch.data.astype(np.float32)
    if downsample:
        x = x.reshape(-1, 4, 2, 4, 2).mean(axis=(2, 4)).reshape(-1, 16)
    return x, bunch.target.astype(np.int64)


def _labels_to_index(raw: np.ndarray, source: str) -> tuple[np.ndarray, tuple[str, ...]]:
    names, index = np.unique(raw, return_inverse=True)
    if len(names) < 2:
        raise DataError(f"{source}: the label column has {len(names)} distinct value(s); need at least 2 classes")
    return index.astype(np.int64), tuple(str(v) for v in names)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_csv_table(path: pathlib.Path) -> tuple[list[str] | None, list[list[str]]]:
    """The header (None when the first row is all numbers) and the data rows of a CSV file, every row as
    wide as the first; blank lines are skipped. A file that is not UTF-8 text or not CSV is a DataError."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = [row for row in csv.reader(handle) if row and any(cell.strip() for cell in row)]
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a UTF-8 text file (byte {exc.start}); a .csv must be text") from None
    except csv.Error as exc:
        raise DataError(f"{path}: not a readable CSV file ({exc})") from None
    if not rows:
        raise DataError(f"{path}: the file is empty")
    header = None if all(_is_number(cell) for cell in rows[0]) else [c.strip() for c in rows[0]]
    body = rows[1:] if header is not None else rows
    if not body:
        raise DataError(f"{path}: no data rows after the header")
    width = len(rows[0])
    first_line = 2 if header is not None else 1
    for i, row in enumerate(body):
        if len(row) != width:
            raise DataError(f"{path}: line {first_line + i} has {len(row)} fields; expected {width} like the first line")
    return header, body


def as_numbers(table: np.ndarray, names: list[str], first_line: int, path: pathlib.Path) -> np.ndarray:
    """The cells of ``table`` (an object array of strings) as float64; a DataError names the first that is not a number."""
    try:
        return table.astype(np.float64)
    except ValueError:
        for (i, j), cell in np.ndenumerate(table):
            if not _is_number(cell):
                raise DataError(f"{path}: line {first_line + i}, column {names[j]!r}: {cell!r} is not a number") from None
        raise DataError(f"{path}: the features are not numbers") from None


def read_csv(path: pathlib.Path, label_column: str | int | None = None) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Features and labels from a CSV file (header optional; labels may be any strings or numbers)."""
    header, body = read_csv_table(path)
    width = len(body[0])
    if width < 2:
        raise DataError(f"{path}: need at least one feature column and a label column (got {width} column)")
    first_line = 2 if header is not None else 1
    label = _column_index(label_column, header, width, path)
    names = header or [str(j) for j in range(width)]
    table = np.array(body, dtype=object)
    raw_labels = np.array([cell.strip() for cell in table[:, label]])
    features = np.delete(table, label, axis=1)
    feature_names = [n for j, n in enumerate(names) if j != label]
    x = as_numbers(features, feature_names, first_line, path)
    return x, raw_labels, tuple(feature_names)


def _column_index(label_column: str | int | None, header: list[str] | None, width: int, path: pathlib.Path) -> int:
    if label_column is None:
        return width - 1
    if isinstance(label_column, int) or (isinstance(label_column, str) and label_column.lstrip("-").isdigit()):
        index = int(label_column)
        if not -width <= index < width:
            raise DataError(f"{path}: label column {index} is out of range for {width} columns")
        return index % width
    if header is None or label_column not in header:
        known = ", ".join(header) if header else "none (the file has no header row)"
        raise DataError(f"{path}: no column named {label_column!r}; columns: {known}")
    return header.index(label_column)


def read_npz(path: pathlib.Path, label_column: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Features (key ``X`` or ``x``) and labels (key ``label_column``, default ``y``) from a .npz file."""
    label_key = label_column or "y"
    arrays = read_npz_arrays(path, label_key, need_labels=True)
    x, y = arrays["x"], arrays["y"]
    if x.ndim != 2:
        raise DataError(f"{path}: features must be a 2-D array [samples, features] (got shape {list(x.shape)})")
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(f"{path}: labels must be 1-D with one per row of features (got {list(y.shape)} for {len(x)} rows)")
    if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
        raise DataError(f"{path}: features must be real numbers (got dtype {x.dtype})")
    if y.dtype.kind not in "biufUS":
        raise DataError(f"{path}: labels must be integers, numbers or strings (got dtype {y.dtype})")
    return x.astype(np.float64), y


def read_npz_arrays(path: pathlib.Path, label_key: str, need_labels: bool) -> dict[str, np.ndarray]:
    """Features (``X`` or ``x``) and, when present, labels (``label_key``) of a .npz archive, read
    without unpickling (``allow_pickle=False``: an object array is a DataError, never executed)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = list(archive.keys())
            feature_key = next((k for k in ("X", "x") if k in keys), None)
            if feature_key is None or (need_labels and label_key not in keys):
                wanted = "'X' (or 'x')" + (f" and {label_key!r}" if need_labels else "")
                raise DataError(f"{path}: expected arrays {wanted}; found {keys}")
            arrays = {"x": archive[feature_key]}
            if label_key in keys:
                arrays["y"] = archive[label_key]
    except DataError:
        raise
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "allow_pickle" in text:
            text = "it holds object arrays, which hqf does not load (they would need unpickling)"
        raise DataError(f"{path}: not a readable .npz archive ({text})") from None
    return arrays


def read_file(path: str | pathlib.Path, label_column: str | None = None) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], str]:
    """Validated features ``x[n, d]`` and class indices ``y[n]`` from a .csv or .npz file."""
    path = pathlib.Path(path)
    if not path.exists() and path.suffix.lower() not in (".csv", ".npz"):
        raise DataError(f"unknown dataset {str(path)!r}; built-in: {', '.join(BUILTIN)}, a path to a .csv or .npz file, "
                        f"or KIND:DIRECTORY of images ({', '.join(images.KINDS)})")
    if not path.exists():
        raise DataError(f"data file not found: {path}")
    if not path.is_file():
        raise DataError(f"data path is not a file: {path}")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        x, raw, _ = read_csv(path, label_column)
    elif suffix == ".npz":
        x, raw = read_npz(path, label_column)
    else:
        raise DataError(f"{path}: unsupported data file type {suffix!r}; use .csv or .npz (or a built-in: {', '.join(BUILTIN)})")
    bad = ~np.isfinite(x)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise DataError(f"{path}: features contain NaN or infinity ({int(bad.sum())} value(s), first at row {row}, feature {col})")
    if np.issubdtype(raw.dtype, np.floating) and not np.isfinite(raw).all():
        raise DataError(f"{path}: the label column contains NaN or infinity")
    y, class_names = _labels_to_index(raw, str(path))
    return x, y, class_names, path.name


def stratified_split(x: np.ndarray, y: np.ndarray, n_classes: int, rng: np.random.Generator, source: str) -> list[Split]:
    """70/15/15 split with each class divided in those proportions (shuffled within each split)."""
    counts = np.bincount(y, minlength=n_classes)
    small = np.flatnonzero(counts < 3)
    if small.size:
        raise DataError(f"{source}: classes {small.tolist()} have fewer than 3 samples; each split needs one")
    per_split = _stratified_counts(counts)
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
    for start in range(0, len(x), _CHUNK):
        block = x[start : start + _CHUNK].astype(np.float64)
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
    for start in range(0, len(x), _CHUNK):
        block = x[start : start + _CHUNK]
        block -= mean32
        block *= inv32


def standardize(splits: list[Split], scaler: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
    """z-score every split in place with the training split's per-feature mean and std (std 0 → 1),
    or with ``scaler`` (:func:`fit_scaler` of the training split) when given."""
    mean, std = scaler if scaler is not None else fit_scaler(splits[0].x)
    for split in splits:
        apply_scaler(split.x, (mean, std))
    return {"scaler_mean_abs_max": float(np.abs(mean).max()), "scaler_std_min": float(std.min())}


def add_input_noise(x: np.ndarray, sigma: float, rng: np.random.Generator) -> None:
    """Add ``N(0, σ²)`` noise to ``x`` in place (chunked, float32)."""
    if sigma < 0:
        raise DataError(f"'input_noise' must be >= 0 (got {sigma})")
    for start in range(0, len(x), _CHUNK):
        block = x[start : start + _CHUNK]
        block += sigma * rng.standard_normal(block.shape, dtype=np.float32)


NOISE_SPLITS = {"all": (0, 1, 2), "train": (0,), "test": (2,)}


def load_dataset(
    name: str,
    *,
    samples: int | None = None,
    seed: int = 0,
    imbalance: float | None = None,
    label_noise: float | None = None,
    label_column: str | None = None,
    input_noise: float = 0.0,
    input_noise_on: str = "all",
    standardize_features: bool = True,
    features: int | None = None,
) -> Dataset:
    """A built-in dataset (``dataset-a``, ``dataset-b``, ``digits``, ``digits-4x4``), a .csv/.npz path, or
    image files named ``KIND:DIRECTORY`` (:mod:`hqf.learn.data.images`: ``mnist``, ``fashion-mnist``,
    ``cifar10``, ``cifar100``, ``stl10``, ``images``), scaled per channel with the training split's mean
    and std and kept as uint8 until the split makes its one float32 copy.

    ``samples`` caps the total before splitting (synthetic sets: the number generated; default their
    full size). ``label_noise`` defaults to 2% for the synthetic sets and 0 otherwise. ``imbalance``
    (majority:minority) and ``features`` (the feature dimension) apply to the synthetic sets only.
    """
    if input_noise_on not in NOISE_SPLITS:
        raise DataError(f"'input_noise_on' must be one of {sorted(NOISE_SPLITS)} (got {input_noise_on!r})")
    if samples is not None and samples < 1:
        raise DataError(f"'samples' must be >= 1 (got {samples})")
    rng = np.random.default_rng([seed, 1])
    info: dict = {"seed": seed}
    image_shape = None  # (C, H, W) of an image dataset, whose rows are its pixels row-major
    if name in SYNTHETIC:
        spec = SYNTHETIC[name]
        noise = 0.02 if label_noise is None else label_noise
        splits, extra = synthetic(name, samples, seed, imbalance, features)
        info.update(extra)
        n_classes, class_names = spec.n_classes, tuple(str(c) for c in range(spec.n_classes))
    else:
        for option, value in (("imbalance", imbalance), ("features", features)):
            if value is not None:
                raise DataError(f"'{option}' applies to the synthetic datasets only ({', '.join(SYNTHETIC)}), not {name!r}")
        noise = 0.0 if label_noise is None else label_noise
        if name in DIGITS:
            x, y = digits(downsample=name == "digits-4x4")
            class_names = tuple(str(c) for c in range(10))
            source = name
        elif (image_source := images.parse_source(name)) is not None:
            pictures = images.read_images(*image_source)
            image_shape = pictures.x.shape[1:]
            x, y, class_names, source = pictures.x.reshape(len(pictures.y), -1), pictures.y, pictures.class_names, name
            info["image_shape"] = list(image_shape)
        else:
            x, y, class_names, source = read_file(name, label_column)
        if samples is not None and samples < len(y):
            keep = rng.choice(len(y), size=samples, replace=False)
            x, y = x[keep], y[keep]
        n_classes = len(class_names)
        splits = stratified_split(x, y, n_classes, rng, source)
    for s in (0, 1):  # training and validation labels; the test split stays clean
        splits[s] = Split(splits[s].x, flip_labels(splits[s].y, noise, n_classes, rng))
    info["label_noise"] = noise
    scaler = None
    if standardize_features:
        scaler = fit_scaler(splits[0].x) if image_shape is None else images.channel_scaler(splits[0].x, image_shape)
        info.update(standardize(splits, scaler))
    if input_noise:
        for s in NOISE_SPLITS[input_noise_on]:
            add_input_noise(splits[s].x, input_noise, rng)
    info.update(input_noise=input_noise, input_noise_on=input_noise_on if input_noise else None)
    train, val, test = splits
    return Dataset(name, train, val, test, train.x.shape[1], n_classes, class_names, info, scaler, image_shape)
