"""Input checks shared by the fusions."""

from __future__ import annotations

import torch


def check_width(name: str, tensor: torch.Tensor | None, width: int) -> torch.Tensor:
    """``tensor`` itself if it is ``[B, width]``; a ValueError naming ``name`` otherwise."""
    if tensor is None:
        raise ValueError(f"this fusion needs {name} (got None)")
    if tensor.ndim != 2 or tensor.shape[1] != width:
        raise ValueError(f"{name} must have shape [B, {width}] (got {list(tensor.shape)})")
    return tensor


def check_positive(**widths: int) -> None:
    for name, value in widths.items():
        if value < 1:
            raise ValueError(f"'{name}' must be >= 1 (got {value})")
