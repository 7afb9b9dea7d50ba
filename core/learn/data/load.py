"""``load_dataset``: a dataset by name, split, noised and scaled the same way whatever its source.

A name is a built-in set (the synthetic :data:`~hqf.learn.data.synthetic.SYNTHETIC` sets, the
:data:`~hqf.learn.data.digits.DIGITS`), image files ``KIND:DIRECTORY`` (:mod:`hqf.learn.data.images`) or
a path to a ``.csv`` or ``.npz`` file (:mod:`hqf.learn.data.files`). Every dataset comes back as a
:class:`~hqf.learn.data.dataset.Dataset`: float32 features and int64 labels split 70/15/15 (stratified by
class), z-scored with the mean and standard deviation of the training split only
(:mod:`hqf.learn.data.splits`). Image rows are the pixels of one image each, row-major
(``Dataset.image_shape`` gives ``(C, H, W)``), scaled per channel.
"""

from __future__ import annotations

import pathlib

import numpy as np

from hqf.errors import DataError
from hqf.learn.data import images
from hqf.learn.data.dataset import Dataset, Split
from hqf.learn.data.digits import DIGITS, digits
from hqf.learn.data.files import FILE_TYPES, read_file
from hqf.learn.data.splits import NOISE_SPLITS, add_input_noise, fit_scaler, flip_labels, standardize, stratified_split
from hqf.learn.data.synthetic import SYNTHETIC, synthetic

#: the datasets that need no file
BUILTIN = (*SYNTHETIC, *DIGITS)


def data_file(name: str) -> pathlib.Path:
    """The path a dataset name that is neither built in nor images stands for; a DataError when it can
    name no dataset (no such file and no .csv/.npz suffix) or names a file of another type."""
    path = pathlib.Path(name)
    suffix = path.suffix.lower()
    if not path.exists() and suffix not in FILE_TYPES:
        raise DataError(
            f"unknown dataset {str(path)!r}; built-in: {', '.join(BUILTIN)}, a path to a .csv or .npz "
            f"file, or KIND:DIRECTORY of images ({', '.join(images.KINDS)})"
        )
    if path.is_file() and suffix not in FILE_TYPES:
        raise DataError(
            f"{path}: unsupported data file type {suffix!r}; use .csv or .npz (or a built-in: {', '.join(BUILTIN)})"
        )
    return path


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
                raise DataError(
                    f"'{option}' applies to the synthetic datasets only ({', '.join(SYNTHETIC)}), not {name!r}"
                )
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
            x, y, class_names, source = read_file(data_file(name), label_column)
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
