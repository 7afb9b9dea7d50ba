"""The values every loader returns: a :class:`Split` (features and labels) and a :class:`Dataset` (three splits
and the facts a run records about them)."""

from __future__ import annotations

import attrs
import numpy as np


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
