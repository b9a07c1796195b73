"""How far a correct layer computed in a low precision may be from the float64 reference.

Coordinate i of O, dX, dK or db is a sum of n_i products. Summed in a precision with unit roundoff
u, its error stays below

    bound_i = LAMBDA * (u * (sqrt(n_i) * B_i + term + SPREAD * spread_P) + n_i * eta)

where B_i is the same sum taken over absolute values (the reference run on |x|, |w|, |dy|), and
sqrt(n_i) models rounding errors that add up as a random walk. n_i counts only the products that
are actually summed (taps reading padding add exact zeros): the reference run on ones counts them.
`term`, the tensor's average product magnitude at its largest coordinate, keeps the bound of a
coordinate no product reaches (B_i = 0) from being exactly zero: there a direct sum returns exact
0, and a transform (FFT, Winograd) returns rounding noise of about one product term. eta, half
the smallest subnormal, is the absolute error of one operation whose result underflows.

The model is used for dtypes below float64; a float64 layer is judged against the float64
reference by the tensor-scale tolerance (options.py), since there the reference rounds as much as
the layer does. LAMBDA is chosen from benchmarks/precision.py (README: "How precise is float32?").
"""

from __future__ import annotations

import functools
import math

from dataclasses import dataclass, replace
from typing import Collection, Mapping, Optional

import numpy as np

from convgrad import reference
from convgrad.geometry import GRADIENT_NAMES, TENSOR_NAMES, LayerGeometry, TensorName

__all__ = ["LAMBDA", "RoundingBounds", "rounding_bounds", "unit_roundoff", "significant_bits", "uses_rounding_model"]

# Correct float32 layers (torch, einsum, im2col + matmul, a loop of taps) stay below 0.38 of the
# bound with LAMBDA = 2 on every benchmarked layer, and below 0.54 over 400 random small layers,
# where n is small and the worst case is n u B rather than sqrt(n) u B (2 covers it up to n = 4);
# layers that keep 11 significant bits reach 1.2 to 4000 times it (benchmarks/RESULTS.md).
LAMBDA = 2.0
# The FFT (complex64) needs about 1 and Winograd F(2x2, 3x3) about 2; F(4x4, 3x3), whose transforms
# reach 8 and 1/24, needs about 60 and stays below 0.51 of the bound with 128 (benchmarks/precision.py
# --transforms). Layers keeping float16 or bfloat16 sums or TF32 operands stay 5 times past it or more.
SPREAD = 128.0
REFERENCE_ROUNDOFF = 2.0**-53  # the float64 reference's own rounding, added to the layer's


def significant_bits(dtype: np.dtype | str) -> int:
    """Bits of a dtype's significand, the implicit one included (float32: 24)."""
    return int(np.finfo(dtype).nmant) + 1


def unit_roundoff(dtype: np.dtype | str) -> float:
    """Half the distance from 1 to the next number: the largest relative error of one rounding."""
    return 2.0 ** -significant_bits(dtype)


def uses_rounding_model(dtype: np.dtype | str) -> bool:
    """Whether results of `dtype` are judged by the rounding model (below float64)."""
    return significant_bits(dtype) < significant_bits("float64")


@dataclass(frozen=True)
class RoundingBounds:
    """Per tensor: the largest error a correct layer may make at each coordinate (`bound`), and the
    magnitude that error is measured against for effective precision (`magnitude`: B_i + term)."""

    bound: Mapping[TensorName, np.ndarray]
    magnitude: Mapping[TensorName, np.ndarray]
    unit_roundoff: float
    significant_bits: int
    lam: float = LAMBDA


def rounding_bounds(
    x: np.ndarray, w: np.ndarray, b: np.ndarray, dy: np.ndarray, geometry: LayerGeometry, *,
    names: Collection[TensorName] = TENSOR_NAMES,
) -> Optional[RoundingBounds]:
    """The bounds for the layer's own inputs, or None when the dtype is judged without the model;
    `names`: the tensors bounds are needed for (O alone costs half, the gradients alone the other)."""
    if not uses_rounding_model(geometry.dtype):
        return None
    settings = geometry.conv_settings()
    ax, aw, ab, ady = (np.abs(np.asarray(t, dtype=np.float64)) for t in (x, w, b, dy))
    sums: dict[TensorName, np.ndarray] = {}
    if "O" in names:
        sums["O"] = reference.forward(ax, aw, ab, **settings)
    if set(names) & set(GRADIENT_NAMES):
        sums.update(zip(GRADIENT_NAMES, reference.backward(ady, ax, aw, ab, **settings)))
    counts = _products(replace(geometry, batch=x.shape[0]))
    spreads = _spread(ax, aw, ady, geometry, names)
    u = unit_roundoff(geometry.dtype) + REFERENCE_ROUNDOFF
    eta = float(np.finfo(geometry.dtype).smallest_subnormal) / 2
    bound: dict[TensorName, np.ndarray] = {}
    magnitude: dict[TensorName, np.ndarray] = {}
    for name, total in sums.items():
        n = np.rint(counts[name])
        reached = n > 0
        term = float(np.max(np.where(reached, total / np.where(reached, n, 1.0), 0.0), initial=0.0))
        bound[name] = LAMBDA * (u * (np.sqrt(n) * total + term + SPREAD * spreads.get(name, 0.0)) + n * eta)
        magnitude[name] = total + term
    return RoundingBounds(bound, magnitude, u, significant_bits(geometry.dtype))


def _spread(
    ax: np.ndarray, aw: np.ndarray, ady: np.ndarray, geometry: LayerGeometry, names: Collection[TensorName]
) -> dict[TensorName, np.ndarray]:
    """Per plane of O, dX and dK (the spatial axes at one (item, channel) or (kernel, channel)):
    sqrt(log2 m / m * sum over the plane's channel pairs of |a|_2^2 |b|_2^2), the root mean square
    error per coordinate that rounding spread by a transform of m points leaves (docs/MATH.md),
    shaped to broadcast over the plane. db is a plain sum: no transform spreads it."""
    g = geometry.groups
    spatial = tuple(range(2, ax.ndim))
    m = max(2, math.prod(geometry.padded_spatial))
    squares = [np.sum(t * t, axis=spatial) for t in (ax, aw, ady)]  # (N, C), (F, C/g), (N, F)
    xs = squares[0].reshape(ax.shape[0], g, -1)  # N, g, C/g
    ws = squares[1].reshape(g, -1, aw.shape[1])  # g, F/g, C/g
    ds = squares[2].reshape(ady.shape[0], g, -1)  # N, g, F/g
    planes: dict[TensorName, np.ndarray] = {}
    if "O" in names:
        planes["O"] = np.einsum("ngc,gfc->ngf", xs, ws).reshape(ax.shape[0], -1)
    if "dX" in names:
        planes["dX"] = np.einsum("ngf,gfc->ngc", ds, ws).reshape(ax.shape[0], -1)
    if "dK" in names:
        planes["dK"] = np.einsum("ngc,ngf->gfc", xs, ds).reshape(aw.shape[0], -1)
    scale = math.log2(m) / m
    return {name: np.sqrt(scale * plane).reshape(plane.shape + (1,) * len(spatial)) for name, plane in planes.items()}


@functools.lru_cache(maxsize=32)
def _products(geometry: LayerGeometry) -> Mapping[TensorName, np.ndarray]:
    """n_i: the products each coordinate of O, dX, dK and db sums (the reference run on ones, the
    bias counted in O), a function of the geometry alone: worked out once for the calls of a check."""
    settings = geometry.conv_settings()
    ones = [np.ones(shape) for shape in (geometry.x_shape, geometry.w_shape, geometry.y_shape)]
    counts: dict[TensorName, np.ndarray] = {
        "O": reference.forward(ones[0], ones[1], np.zeros(geometry.b_shape), **settings) + 1.0
    }
    counts.update(zip(GRADIENT_NAMES, reference.backward(ones[2], ones[0], ones[1], np.zeros(geometry.b_shape), **settings)))
    for values in counts.values():
        values.flags.writeable = False
    return counts
