"""Image datasets from local files, in the formats they are published in; nothing is downloaded.

A dataset is named ``KIND:PATH`` (``--dataset mnist:~/data/mnist``), PATH a directory:

=================  ====================================================================================
``mnist``          IDX files ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
``fashion-mnist``  ``t10k-labels-idx1-ubyte``, each plain or ``.gz``
``cifar10``        the *binary* version: ``data_batch_1.bin`` … ``data_batch_5.bin``, ``test_batch.bin``
                   (in PATH or PATH/cifar-10-batches-bin); records ``label, 3072 pixels``
``cifar100``       the *binary* version: ``train.bin``, ``test.bin`` (in PATH or PATH/cifar-100-binary);
                   records ``coarse label, fine label, 3072 pixels``; the 100 fine labels are used
``stl10``          ``train_X.bin``, ``train_y.bin``, ``test_X.bin``, ``test_y.bin`` (in PATH or
                   PATH/stl10_binary); images stored column-major, labels 1–10; the unlabelled part is not read
``images``         one folder per class, ``PATH/<class name>/*.png`` (or .jpg, .jpeg, .bmp, .gif, .tif,
                   .tiff, .webp), all of one size; grey images stay one channel unless any image has colour
=================  ====================================================================================

The published train and test parts are read together (the run splits them 70/15/15 like any dataset).
Pixels stay ``uint8`` ``[N, C, H, W]`` here. The Python-pickle versions of CIFAR are not read: hqf
never unpickles user files. A missing file, a truncated or corrupt one, or labels out of range is a
one-line :class:`hqf.errors.DataError` naming the file (and, when missing, the expected names and
where the dataset is published).
"""

from __future__ import annotations

import gzip
import math
import pathlib
import warnings
import zlib

import attrs
import numpy as np

from hqf.errors import DataError

PUBLISHED = {
    "mnist": "https://yann.lecun.com/exdb/mnist/",
    "fashion-mnist": "https://github.com/zalandoresearch/fashion-mnist",
    "cifar10": "https://www.cs.toronto.edu/~kriz/cifar.html (CIFAR-10 binary version)",
    "cifar100": "https://www.cs.toronto.edu/~kriz/cifar.html (CIFAR-100 binary version)",
    "stl10": "https://cs.stanford.edu/~acoates/stl10/ (binary files)",
}
KINDS = (*PUBLISHED, "images")
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
CIFAR10_FILES = (*(f"data_batch_{i}.bin" for i in range(1, 6)), "test_batch.bin")
CIFAR100_FILES = ("train.bin", "test.bin")
STL10_FILES = ("train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin")
SUBFOLDERS = {"cifar10": "cifar-10-batches-bin", "cifar100": "cifar-100-binary", "stl10": "stl10_binary"}
#: the most data bytes one IDX file may declare (the MNIST training images hold 47 MB)
MAX_IDX_BYTES = 1 << 32
#: the most pixels one image file of an ``images`` folder may have (its header is read first)
MAX_IMAGE_PIXELS = 1 << 24
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
CLASS_NAMES = {
    "mnist": tuple(str(d) for d in range(10)),
    "fashion-mnist": (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
    "stl10": ("airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"),
}
#: where a class-name list ships beside the binary files (used when present)
NAME_FILES = {"cifar10": "batches.meta.txt", "cifar100": "fine_label_names.txt", "stl10": "class_names.txt"}


@attrs.frozen(eq=False)
class Images:
    """Pixels ``x[N, C, H, W]`` (uint8), class indices ``y[N]`` (int64) and the class names."""

    x: np.ndarray
    y: np.ndarray
    class_names: tuple[str, ...]


def parse_source(name: str) -> tuple[str, pathlib.Path] | None:
    """``(kind, path)`` of a dataset named ``KIND:PATH`` with a known kind; None for any other name."""
    kind, sep, path = name.partition(":")
    if not sep or kind.lower() not in KINDS or not path:
        return None
    return kind.lower(), pathlib.Path(path).expanduser()


def read_images(kind: str, root: pathlib.Path) -> Images:
    """The images of dataset ``kind`` (one of :data:`KINDS`) in the directory ``root``."""
    if not root.is_dir():
        raise DataError(f"{kind}: {root} is not a directory{_where(kind)}")
    if kind == "images":
        return read_folder(root)
    readers = {"mnist": _mnist, "fashion-mnist": _mnist, "cifar10": _cifar10, "cifar100": _cifar100, "stl10": _stl10}
    return readers[kind](kind, root)


def _where(kind: str) -> str:
    return f"; {kind} is published at {PUBLISHED[kind]} (hqf downloads nothing)" if kind in PUBLISHED else ""


def _locate(kind: str, root: pathlib.Path, names: tuple[str, ...], gz: bool = False) -> list[pathlib.Path]:
    """The files ``names`` in ``root`` (or its conventional subfolder), each also as ``.gz`` when ``gz``."""
    folder = root / SUBFOLDERS[kind] if kind in SUBFOLDERS and (root / SUBFOLDERS[kind]).is_dir() else root
    found, missing = [], []
    for name in names:
        candidates = [folder / name, folder / f"{name}.gz"] if gz else [folder / name]
        path = next((c for c in candidates if c.is_file()), None)
        (found if path is not None else missing).append(path or name)
    if missing:
        expected = ", ".join(f"{n}[.gz]" if gz else n for n in names)
        raise DataError(f"{kind}: {folder} lacks {', '.join(missing)} (expected {expected}){_where(kind)}")
    return found


def _read_bytes(path: pathlib.Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                return handle.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: not a readable file ({type(exc).__name__}: {exc})") from None


def read_idx(path: pathlib.Path) -> np.ndarray:
    """An IDX array of unsigned bytes (the MNIST format: magic ``0 0 8 ndim``, big-endian int32 sizes),
    its header checked (every size >= 1, at most :data:`MAX_IDX_BYTES` in all) before the data is read."""
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb") as handle:
            magic = handle.read(4)
            if len(magic) < 4 or magic[0] != 0 or magic[1] != 0:
                raise DataError(f"{path}: not an IDX file (it does not start with the IDX magic bytes 0 0)")
            if magic[2] != 0x08:
                raise DataError(f"{path}: IDX element type 0x{magic[2]:02x}; hqf reads unsigned bytes (0x08) only")
            ndim = magic[3]
            sizes = handle.read(4 * ndim)
            if ndim == 0 or len(sizes) < 4 * ndim:
                raise DataError(f"{path}: truncated IDX header ({4 + len(sizes)} bytes for {ndim} dimensions)")
            shape = tuple(int(n) for n in np.frombuffer(sizes, dtype=">i4"))
            if min(shape) < 1:
                raise DataError(f"{path}: corrupt IDX header: shape {list(shape)}; every size must be >= 1")
            size = math.prod(shape)
            if size > MAX_IDX_BYTES:
                raise DataError(
                    f"{path}: the IDX header promises {size:,} bytes (shape {list(shape)}); "
                    f"hqf's limit is {MAX_IDX_BYTES:,} bytes per file"
                )
            data = handle.read(size + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: not a readable file ({type(exc).__name__}: {exc})") from None
    if len(data) != size:
        held = f"{len(data)}" if len(data) <= size else "more"
        raise DataError(
            f"{path}: truncated or corrupt: the header promises {size} bytes of data for shape "
            f"{list(shape)}, the file holds {held}"
        )
    return np.frombuffer(data, dtype=np.uint8).reshape(shape)


def _labels(y: np.ndarray, n_classes: int, path: pathlib.Path, first: int = 0) -> np.ndarray:
    """``y − first`` as int64, every value checked to lie in ``0..n_classes−1``."""
    y = y.astype(np.int64) - first
    bad = np.flatnonzero((y < 0) | (y >= n_classes))
    if bad.size:
        raise DataError(
            f"{path}: label {int(y[bad[0]]) + first} at record {int(bad[0])} is outside "
            f"{first}..{n_classes - 1 + first}; the file is corrupt"
        )
    return y


def _mnist(kind: str, root: pathlib.Path) -> Images:
    paths = _locate(kind, root, IDX_FILES, gz=True)
    xs, ys = [], []
    for images_path, labels_path in (paths[0:2], paths[2:4]):
        x, y = read_idx(images_path), read_idx(labels_path)
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise DataError(
                f"{images_path}: expected images [N, H, W] and {labels_path.name} labels [N] "
                f"(got {list(x.shape)} and {list(y.shape)})"
            )
        xs.append(x)
        ys.append(_labels(y, 10, labels_path))
    if xs[0].shape[1:] != xs[1].shape[1:]:
        raise DataError(f"{kind}: train images are {list(xs[0].shape[1:])}, test images {list(xs[1].shape[1:])}")
    x = np.concatenate(xs)[:, None]
    return Images(x, np.concatenate(ys), CLASS_NAMES[kind])


def _records(path: pathlib.Path, size: int) -> np.ndarray:
    """The fixed-size records of a binary file as ``uint8 [n, size]``."""
    data = _read_bytes(path)
    if not data or len(data) % size:
        raise DataError(f"{path}: truncated or corrupt: {len(data)} bytes is not a whole number of {size}-byte records")
    return np.frombuffer(data, dtype=np.uint8).reshape(-1, size)


def _names(kind: str, folder: pathlib.Path, n_classes: int) -> tuple[str, ...]:
    """The class names from the list shipped beside the files, else the known ones, else numbers."""
    path = folder / NAME_FILES[kind]
    if path.is_file():
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        names = tuple(line.strip() for line in lines if line.strip())
        if len(names) == n_classes:
            return names
    return CLASS_NAMES.get(kind, tuple(str(c) for c in range(n_classes)))


def _cifar(kind: str, root: pathlib.Path, names: tuple[str, ...], label_bytes: int, n_classes: int) -> Images:
    paths = _locate(kind, root, names)
    xs, ys = [], []
    for path in paths:
        records = _records(path, label_bytes + 3072)
        ys.append(_labels(records[:, label_bytes - 1], n_classes, path))
        xs.append(records[:, label_bytes:].reshape(-1, 3, 32, 32))
    return Images(np.concatenate(xs), np.concatenate(ys), _names(kind, paths[0].parent, n_classes))


def _cifar10(kind: str, root: pathlib.Path) -> Images:
    return _cifar(kind, root, CIFAR10_FILES, label_bytes=1, n_classes=10)


def _cifar100(kind: str, root: pathlib.Path) -> Images:
    return _cifar(kind, root, CIFAR100_FILES, label_bytes=2, n_classes=100)


def _stl10(kind: str, root: pathlib.Path) -> Images:
    paths = _locate(kind, root, STL10_FILES)
    xs, ys = [], []
    for images_path, labels_path in (paths[0:2], paths[2:4]):
        # each image is stored column-major: [3, W, H] in C order, so swap the last two axes
        x = _records(images_path, 3 * 96 * 96).reshape(-1, 3, 96, 96).transpose(0, 1, 3, 2)
        y = _records(labels_path, 1)[:, 0]
        if len(x) != len(y):
            raise DataError(f"{images_path}: {len(x)} images but {labels_path.name} holds {len(y)} labels")
        xs.append(x)
        ys.append(_labels(y, 10, labels_path, first=1))
    return Images(np.ascontiguousarray(np.concatenate(xs)), np.concatenate(ys), _names(kind, paths[0].parent, 10))


def read_folder(root: pathlib.Path) -> Images:
    """Images in ``root/<class name>/`` (class folders in name order), all of one size."""
    from PIL import Image, UnidentifiedImageError  # noqa: PLC0415 — Pillow is needed only for image folders

    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    files = [(c, sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)) for c, p in enumerate(classes)]
    empty = [classes[c].name for c, found in files if not found]
    if len(classes) < 2 or empty:
        if empty:
            what = f"class folders without images: {', '.join(empty)}"
        else:
            what = f"{len(classes)} class folder{'s' * (len(classes) != 1)}; need at least 2 classes"
        raise DataError(f"images: {root}: {what} (expected {root}/<class name>/*.png or .jpg, one folder per class)")
    pixels, labels, size = [], [], None
    for c, found in files:
        for path in found:
            array = _read_image(path, Image, UnidentifiedImageError)
            if size is None:
                size = array.shape[:2]
            elif array.shape[:2] != size:
                raise DataError(
                    f"{path}: {array.shape[1]}×{array.shape[0]} pixels; the images before it are "
                    f"{size[1]}×{size[0]} (hqf does not resize: give images of one size)"
                )
            pixels.append(array[None] if array.ndim == 2 else array.transpose(2, 0, 1))
            labels.append(c)
    channels = max(p.shape[0] for p in pixels)
    x = np.stack([np.broadcast_to(p, (channels, *p.shape[1:])) for p in pixels])
    return Images(x, np.asarray(labels, dtype=np.int64), tuple(p.name for p in classes))


def _read_image(path: pathlib.Path, Image, UnidentifiedImageError) -> np.ndarray:  # noqa: N803 — Pillow's names
    """The pixels of one image file, ``[H, W]`` (grey) or ``[H, W, 3]``; its size is checked against
    :data:`MAX_IMAGE_PIXELS` from the header, before it is decoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the size is checked below
            with Image.open(path) as image:
                if image.width * image.height > MAX_IMAGE_PIXELS:
                    raise DataError(
                        f"{path}: {image.width}×{image.height} pixels; hqf's limit is {MAX_IMAGE_PIXELS:,} "
                        "pixels per image"
                    )
                grey = image.mode in ("1", "L", "LA", "I", "I;16", "F")
                return np.asarray(image.convert("L" if grey else "RGB"))
    except DataError:
        raise
    except Image.DecompressionBombError:
        raise DataError(f"{path}: more pixels than hqf's limit of {MAX_IMAGE_PIXELS:,} per image") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable image ({type(exc).__name__}: {exc})") from None


def channel_scaler(x: np.ndarray, image_shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and (population) std of image rows ``x[N, C·H·W]``, float64, each repeated over
    its channel's ``H·W`` positions (the per-feature form :func:`hqf.learn.data.splits.apply_scaler` takes);
    a std of 0 becomes 1. Accumulated in float64 a bounded block of rows at a time."""
    channels, area = image_shape[0], image_shape[1] * image_shape[2]
    step = max(1, (1 << 22) // x.shape[1])
    total = np.zeros(channels)
    for start in range(0, len(x), step):
        total += x[start : start + step].reshape(-1, channels, area).sum(axis=(0, 2), dtype=np.float64)
    count = max(len(x) * area, 1)
    mean = total / count
    squares = np.zeros(channels)
    for start in range(0, len(x), step):
        block = x[start : start + step].reshape(-1, channels, area).astype(np.float64) - mean[:, None]
        squares += (block**2).sum(axis=(0, 2))
    std = np.sqrt(squares / count)
    std[std == 0] = 1.0
    return np.repeat(mean, area), np.repeat(std, area)
