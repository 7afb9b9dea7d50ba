"""The image shape ``(C, H, W)`` an image backbone reads its input rows as."""

from __future__ import annotations

import math


def resolve_image_shape(in_features: int, given: list[int] | tuple[int, ...] | None = None) -> tuple[int, int, int]:
    """``given`` checked against ``in_features``, or the square image ``in_features`` is: ``C·S·S`` with
    ``C = 1`` when ``in_features`` is a perfect square, else ``C = 3`` (no integer is both ``S²`` and
    ``3·S'²``, so a square grey or colour image is never mistaken for the other).

    Raises:
        ValueError: ``given`` is not three positive integers whose product is ``in_features``, or
            ``in_features`` is not ``S²`` or ``3·S²`` and no shape is given.
    """
    if given is not None:
        shape = tuple(given)
        if len(shape) != 3 or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in shape):
            raise ValueError(f"'image_shape' must be three positive integers [C, H, W] (got {list(shape)})")
        if math.prod(shape) != in_features:
            raise ValueError(
                f"'image_shape' {list(shape)} holds {math.prod(shape)} values; the data rows have {in_features}"
            )
        return shape  # type: ignore[return-value]
    for channels in (1, 3):
        side = math.isqrt(in_features // channels)
        if in_features % channels == 0 and channels * side * side == in_features:
            return channels, side, side
    raise ValueError(
        f"{in_features} features are not a square grey (S²) or colour (3·S²) image; give "
        "backbone_options.image_shape = [C, H, W]"
    )
