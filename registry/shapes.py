"""Shape vocabulary for shape rules (plain Python). Shapes exclude the batch dimension:
image (C, H, W), tokens (T, D), vector (D,), per-sample scalar ()."""
from __future__ import annotations

from diffc.registry.core import ShapeError


def fmt(shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def image(shape, port: str) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise ShapeError(f"'{port}' must be an image [C, H, W], got {fmt(shape)}", port)
    return shape


def tokens(shape, port: str) -> tuple[int, int]:
    if len(shape) != 2:
        raise ShapeError(f"'{port}' must be a token sequence [T, D], got {fmt(shape)}", port)
    return shape


def vector(shape, port: str) -> tuple[int]:
    if len(shape) != 1:
        raise ShapeError(f"'{port}' must be a vector [D], got {fmt(shape)}", port)
    return shape


def channels(shape) -> int:
    """Feature width: C of an image, D of tokens or a vector."""
    return shape[0] if len(shape) == 3 else shape[-1]


def same_width(shape, width: int, port: str, what: str) -> None:
    if channels(shape) != width:
        raise ShapeError(f"'{port}' has {channels(shape)} channels but {what} needs {width}", port)
