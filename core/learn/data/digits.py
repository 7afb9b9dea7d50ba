"""scikit-learn's bundled handwritten digits, whole (8×8) or mean-pooled to 4×4."""

from __future__ import annotations

import numpy as np

#: the names the digits go by: 64 features, or 16 after 2×2 mean pooling
DIGITS = ("digits", "digits-4x4")


def digits(downsample: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8×8 digits (1,797 images, 10 classes); 2×2 mean-pooled to 4×4 if asked."""
    from sklearn.datasets import load_digits  # noqa: PLC0415 — scikit-learn takes ~1 s to import

    bunch = load_digits()
    x = bunch.data.astype(np.float32)
    if downsample:
        x = x.reshape(-1, 4, 2, 4, 2).mean(axis=(2, 4)).reshape(-1, 16)
    return x, bunch.target.astype(np.int64)
