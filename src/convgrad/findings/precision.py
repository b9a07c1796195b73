"""Why a low-precision result lost bits: the likely cause, told from the pattern of its errors.

Two things can be checked, not just guessed:

- Every value is a float16 (or bfloat16) number: the tensor was kept in that format somewhere,
  a sum accumulated in a float16 buffer or a whole path computed in float16.
- The values match the reference computed from operands rounded to 10 mantissa bits (TF32, which
  float16 shares) much better than the plain reference: the operands were rounded before being
  multiplied. With values that are not float16 numbers, that is TF32 math (GPU convolutions with
  TF32 enabled); with float16 values, a float32 path that goes through float16.

What cannot be told apart is said as "likely": a lossy algorithm (FFT, Winograd) and a sum kept in
some other low precision leave the same trace, fewer bits than the dtype's.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Optional, Sequence

import numpy as np

from convgrad import reference
from convgrad.geometry import LayerGeometry, TensorName
from convgrad.numerics.rounding import RoundingBounds
from convgrad.report import TensorComparison

__all__ = ["with_likely_cause", "likely_cause", "round_mantissa"]

Tensors = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # x, w, b, dy

# Operands rounded to this many bits explain the errors when the values are this much closer to
# the reference computed from them (root mean square) than to the plain reference.
EXPLAINED = 0.25
# A tensor kept in float16 whose error is partly explained by rounded operands (measured: 0.68 to
# 0.74 left for a forward computed in float16, 1.06 to 1.44 for a sum accumulated in float16).
PARTLY_EXPLAINED = 0.85
FORMATS = {"float16": 10, "bfloat16": 7}  # stored mantissa bits
# Below this many bits the values are wrong, not imprecise: that is for diagnosis.py to explain.
FEWEST_BITS = 6
WIDESPREAD = 0.1  # rounding in a lower precision moves most coordinates, not a few


def round_mantissa(values: np.ndarray, bits: int) -> np.ndarray:
    """Values rounded to nearest with `bits` stored mantissa bits (float32's exponent range)."""
    drop = 23 - bits
    raw = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    kept = np.uint32((0xFFFFFFFF >> drop) << drop)
    return ((raw + np.uint32(1 << (drop - 1))) & kept).view(np.float32).astype(np.float64)


def _stored_in(values: np.ndarray, bits: int) -> bool:
    """Whether every finite value has at most `bits` stored mantissa bits (and is nonzero somewhere)."""
    finite = values[np.isfinite(values)]
    return bool(finite.size and np.any(finite != 0) and np.array_equal(round_mantissa(finite, bits), finite))


def _from_rounded_operands(name: TensorName, tensors: Tensors, geometry: LayerGeometry, bits: int) -> np.ndarray:
    x, w, b, dy = (round_mantissa(t, bits) for t in tensors)
    settings = geometry.conv_settings()
    if name == "O":
        return reference.forward(x, w, b, **settings)
    gradients = reference.backward(dy, x, w, b, **settings)
    return gradients[("dX", "dK", "db").index(name)]


def _rms(values: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(values)))) if values.size else 0.0


def likely_cause(row: TensorComparison, tensors: Tensors, geometry: LayerGeometry) -> Optional[str]:
    """The likely cause of a row that failed the rounding model, in words; None when none fits."""
    if row.analytical is None or row.numerical is None or row.precision is None:
        return None
    values, expected = row.analytical, row.numerical
    if not np.all(np.isfinite(values)):
        return None
    off = _rms(values - expected)
    # How much of the error is left against the reference computed from rounded operands.
    left = {fmt: _rms(values - _from_rounded_operands(row.name, tensors, geometry, bits)) / off
            for fmt, bits in FORMATS.items()} if off > 0 else {}
    rounded = next((fmt for fmt, share in left.items() if share < EXPLAINED), None)
    stored = next((fmt for fmt, bits in sorted(FORMATS.items(), key=lambda f: f[1]) if _stored_in(values, bits)), None)
    if stored is not None and (rounded == stored or left.get(stored, 1.0) < PARTLY_EXPLAINED):
        return (
            f"likely a float32 path that goes through {stored}: the values are {stored} numbers, and "
            f"much of the error comes from operands rounded to {stored}"
        )
    if rounded == "float16":
        return (
            "likely TF32 products: the values match operands rounded to 10 mantissa bits before "
            "multiplying, as GPU convolutions do with TF32 math enabled"
        )
    if rounded == "bfloat16":
        return "likely bfloat16 products: the values match operands rounded to 7 mantissa bits before multiplying"
    if stored is not None:
        return (
            f"likely {stored} accumulation: every value is a {stored} number, so the sum was kept "
            f"(or the result passed) through {stored}"
        )
    if row.mismatches < WIDESPREAD * row.checked:
        return None  # a few wrong coordinates are a mistake, not rounding
    return (
        f"likely a sum kept in a lower precision, or an algorithm that loses bits (FFT, Winograd): "
        f"about {row.precision.bits} significant bits"
    )


def with_likely_cause(
    row: TensorComparison, tensors: Tensors, geometry: LayerGeometry, bounds: Optional[RoundingBounds]
) -> TensorComparison:
    """`row` with its precision's likely cause (and the reason ending with it) when it failed the model."""
    if bounds is None or row.passed or row.precision is None or row.precision.bits < FEWEST_BITS:
        return row
    cause = likely_cause(row, tensors, geometry)
    if cause is None:
        return row
    reason = f"{row.reason}; {cause}" if row.reason else cause
    return replace(row, status="lost precision", precision=replace(row.precision, cause=cause), reason=reason)


ROUNDING_FACTOR = 8.0  # past the rounding bound by at most this, with at most 3 bits lost: rounding


def rounding_only(rows: Sequence[TensorComparison]) -> Optional[str]:
    """Rounding, not state or layout, when every failing row is within a few times its rounding
    bound and keeps all but a few bits: no state, layout or fast path a later call looks for is
    that close to right. None otherwise (or when a row is not judged by the rounding model)."""
    failing = [t for t in rows if not t.passed]
    if not failing or any(t.precision is None for t in failing):
        return None
    precisions = [t.precision for t in failing if t.precision is not None]
    ratio, bits = max(p.largest_ratio for p in precisions), min(p.bits for p in precisions)
    if ratio > ROUNDING_FACTOR or bits < precisions[0].dtype_bits - 3:
        return None
    return (
        f"up to {ratio:.2g}x the rounding bound, {bits} of {precisions[0].dtype_bits} bits kept: rounding, not "
        "state or layout; an algorithm that spreads its rounding over every coordinate (FFT, Winograd) can pass "
        "the per-coordinate bound where a coordinate sums few products"
    )
