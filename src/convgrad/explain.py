"""The derivation of a layer's gradients for its own numbers, and the proof that it holds.

dX is computed literally by the steps `convgrad explain` shows (reference.zero_insert, pad,
rotate_and_swap, correlate, crop), every shape is read off the arrays those steps produce, and the
result is compared with central finite differences at every coordinate. Always in float64: this is
about the mathematics, not about the rounding of a dtype.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

import numpy as np

from convgrad import reference
from convgrad.compare import compare
from convgrad.geometry import GradientName, LayerGeometry
from convgrad.numerics.gradient import ProgressFactory
from convgrad.numerics.method import numerical_gradient
from convgrad.numerics.step import step_for
from convgrad.options import CheckOptions
from convgrad.run.case import random_tensors

__all__ = ["Derivation", "Proof", "explain", "PROOF_TOLERANCE"]

PROOF_TOLERANCE = 1e-9  # the derivation holds when every error is below this, relative to the scale


@dataclass(frozen=True)
class Proof:
    """One gradient computed by the derivation, against central finite differences."""

    tensor: GradientName
    max_abs_error: float
    max_rel_error: float
    checked: int
    forward_calls: int

    @property
    def holds(self) -> bool:
        return self.max_rel_error < PROOF_TOLERANCE


@dataclass(frozen=True)
class Derivation:
    """Shapes at every step of dX as a full convolution (per sample, without N), and the proofs."""

    geometry: LayerGeometry
    seed: int
    dy: tuple[int, ...]  # F x Ho x Wo
    spread: Optional[tuple[int, ...]]  # after zero insertion; None when the stride leaves dO as is
    trailing_zeros: tuple[int, ...]  # zeros appended per axis where the stride skipped positions
    reach: tuple[int, ...]  # dilation * (kernel - 1): the full convolution's padding per side
    full: tuple[int, ...]  # dO padded by the reach
    kernels: tuple[int, ...]  # F x C/g x k
    swapped: tuple[int, ...]  # C x F/g x k: rotated 180 degrees, kernel and channel axes swapped
    dilated_extent: Optional[tuple[int, ...]]  # d*(k-1)+1 when the dilation is not 1
    correlated: tuple[int, ...]  # C x Hp x Wp
    cropped: Optional[tuple[int, ...]]  # C x H x W after cropping the padding; None without padding
    proofs: tuple[Proof, ...]

    @property
    def holds(self) -> bool:
        return all(p.holds for p in self.proofs)


def explain(geometry: LayerGeometry, seed: int = 0, progress: Optional[ProgressFactory] = None) -> Derivation:
    """Follow the derivation step by step on random tensors and prove it with finite differences."""
    geometry = replace(geometry, dtype="float64")
    options = CheckOptions(seed=seed)
    x, w, b, dy = random_tensors(geometry, options)
    g = geometry
    reach = tuple(d * (k - 1) for k, d in zip(g.kernel_size, g.dilation))
    size = [hp - r for hp, r in zip(g.padded_spatial, reach)]

    # dX, literally as shown: spread dO by the stride, pad it, correlate with rotated swapped kernels, crop.
    spread = reference.zero_insert(dy, g.stride, size)
    full = reference.pad(spread, reach)
    swapped = reference.rotate_and_swap(w, g.groups)
    correlated = reference.correlate(full, swapped, stride=[1] * g.ndim, dilation=g.dilation, groups=g.groups)
    dx = reference.crop(correlated, g.padding)

    settings = g.conv_settings()
    dw = reference.weight_gradient(dy, x, g.kernel_size, **settings)
    db = reference.bias_gradient(dy)

    def forward(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
        return reference.forward(x, w, b, **settings)

    y = forward(x, w, b)
    proofs = []
    derived_gradients: tuple[tuple[GradientName, np.ndarray], ...] = (("dX", dx), ("dK", dw), ("db", db))
    for name, derived in derived_gradients:
        # Every coordinate, the way `convgrad check` does it (coloured where that is cheaper).
        step = step_for(name, (x, w, b), y, options.tolerances("float64"))
        numerical = numerical_gradient(
            "auto", forward, (x, w, b), name, dy, step, geometry,
            samples=options.samples, seed=seed, progress=progress,
        )
        comparison = compare(name, derived, numerical.values, PROOF_TOLERANCE, method=numerical.method)
        proofs.append(Proof(
            tensor=name,
            max_abs_error=comparison.max_abs_error or 0.0,
            max_rel_error=comparison.max_rel_error or 0.0,
            checked=comparison.checked,
            forward_calls=numerical.forward_calls,
        ))

    strided = spread is not dy
    inserted = [s * (o - 1) + 1 for s, o in zip(g.stride, g.out_spatial)]
    return Derivation(
        geometry=geometry,
        seed=seed,
        dy=dy.shape[1:],
        spread=spread.shape[1:] if strided else None,
        trailing_zeros=tuple(n - i for n, i in zip(size, inserted)),
        reach=reach,
        full=full.shape[1:],
        kernels=w.shape,
        swapped=swapped.shape,
        dilated_extent=tuple(r + 1 for r in reach) if any(d > 1 for d in g.dilation) else None,
        correlated=correlated.shape[1:],
        cropped=dx.shape[1:] if any(g.padding) else None,
        proofs=tuple(proofs),
    )
