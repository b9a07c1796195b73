"""Where a tensor is judged: analytical values against their reference, the error measure, the verdict.

The error of coordinate i is |analytical_i - reference_i| / scale, where scale is the largest
magnitude in either tensor. Dividing by the tensor's scale rather than by each coordinate's own
value keeps the measure meaningful near zero: a coordinate whose true value is 1e-17 is not a
failure because its rounding error is 1e-16, yet an error of 1e-5 of the tensor's scale anywhere
is caught.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Optional, Sequence

import numpy as np

from convgrad.geometry import GradientName, TensorName
from convgrad.numerics.gradient import NumericalGradient
from convgrad.numerics.rounding import RoundingBounds
from convgrad.report import Coordinate, Precision, TensorComparison

__all__ = [
    "compare",
    "compare_numerical",
    "compare_bounded",
    "compare_with_reference",
    "scale_floor",
    "spot_check_disagreement",
    "WORST_SHOWN",
    "FLOOR_FRACTION",
    "effective_bits",
]

# A gradient whose every value is far below one product term dy*w (or dy*x) is structurally zero
# (no window reaches it); its numerical values are then pure rounding noise, which must not be
# measured against itself. 1e-3 of one term is far below any real gradient's scale.
FLOOR_FRACTION = 1e-3


def scale_floor(gradient: GradientName, x: np.ndarray, w: np.ndarray, dy: np.ndarray) -> float:
    """The smallest scale the errors of `gradient` are measured against."""
    partner = {"dX": w, "dK": x}.get(gradient)
    term = float(np.max(np.abs(dy), initial=0.0))
    if partner is not None:
        term *= float(np.max(np.abs(partner), initial=0.0))
    return FLOOR_FRACTION * term

WORST_SHOWN = 5  # coordinates listed for a failing tensor


def effective_bits(error: np.ndarray, magnitude: np.ndarray, most: int) -> int:
    """The significant bits a tensor's values carry: -log2 of the largest error_i / magnitude_i,
    where magnitude_i is the sum of absolute products (numerics/rounding.py); at most `most`, the
    dtype's own. A sum rounded at precision 2^-p is off by about 2^-p of that magnitude or less."""
    reached = magnitude > 0
    worst = float(np.max(np.where(reached, error / np.where(reached, magnitude, 1.0), 0.0), initial=0.0))
    unreached = bool(np.any(error[~reached] > 0))
    if unreached or not np.isfinite(worst):
        return 0
    return most if worst == 0.0 else max(0, min(most, int(round(-np.log2(worst)))))


def compare(
    name: TensorName,
    analytical: np.ndarray,
    reference: np.ndarray,
    tolerance: float,
    *,
    method: str,
    forward_calls: int = 0,
    step: float | None = None,
    note: str | None = None,
    floor: float = 0.0,
    against: str = "numerical",
    call: Optional[str] = None,
) -> TensorComparison:
    """Compare every coordinate where `reference` is defined (NaN marks coordinates not computed).

    `floor` is the smallest scale errors are measured against (see `scale_floor`); `against` names
    the reference values in the reason ("numerical", "reference", "first call")."""
    analytical = np.asarray(analytical, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    computed = ~np.isnan(reference)
    checked = int(np.count_nonzero(computed))
    if checked == reference.size:  # every coordinate computed (the usual case): no masking needed
        diff = np.abs(analytical - reference)
        known = reference
    else:
        diff = np.where(computed, np.abs(analytical - np.where(computed, reference, 0.0)), 0.0)
        known = reference[computed]
    largest = float(max(np.max(np.abs(analytical), initial=0.0), np.max(np.abs(known), initial=0.0)))
    scale = max(largest, floor)
    # Both notes are about the comparison, not the layer: what it can prove here (the verdict line
    # repeats them), never evidence of a wrong result, which fails the row instead.
    if largest == 0.0:
        rel = np.zeros_like(diff)
        note = _join(
            note,
            "both are exactly zero everywhere, so this comparison cannot tell a right gradient "
            "from a wrong one",
        )
    elif largest < floor:
        note = _join(
            note,
            "every value is far below one product term (no window reaches this tensor here), so "
            "errors are measured against that term and the comparison says little",
        )
    if scale > 0.0:
        rel = diff / scale
    mismatches = int(np.count_nonzero(rel > tolerance))
    max_rel = float(rel.max(initial=0.0))
    order = _worst_first(rel, max_rel, passed=mismatches == 0)
    worst = _coordinates(order[computed.flat[order]], analytical, reference, diff, rel)  # computed ones only
    passed = mismatches == 0
    reason = None
    if not passed:
        top = worst[0]
        reason = (
            f"{mismatches} of {checked} coordinates differ by more than {tolerance:g} of the "
            f"tensor's scale {scale:.3g}; worst at {list(top.index)}: analytical "
            f"{top.analytical:.6g}, {against} {top.numerical:.6g}"
        )
    return TensorComparison(
        name=name,
        expected_shape=tuple(reference.shape),
        shape=tuple(analytical.shape),
        tolerance=tolerance,
        status="passed" if passed else "failed",
        method=method,
        checked=checked,
        total=int(reference.size),
        mismatches=mismatches,
        max_abs_error=float(diff.max(initial=0.0)),
        max_rel_error=max_rel,
        scale=scale,
        worst=worst,
        forward_calls=forward_calls,
        step=step,
        reason=reason,
        note=note,
        analytical=analytical,
        numerical=reference,
        call=call,
    )


def compare_bounded(
    name: TensorName, analytical: np.ndarray, reference: np.ndarray, bounds: RoundingBounds, *, method: str,
    against: str = "reference", call: Optional[str] = None,
) -> TensorComparison:
    """Every coordinate against its own rounding bound (numerics/rounding.py): what a correct layer
    in the dtype can be off by. `tolerance` is then the loosest coordinate's bound relative to the
    scale (each coordinate's own is tighter), and `precision` says how many bits the values carry."""
    analytical = np.asarray(analytical, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    bound, magnitude = bounds.bound[name], bounds.magnitude[name]
    diff = np.abs(analytical - reference)
    ratio = np.where(bound > 0, diff / np.where(bound > 0, bound, 1.0), np.where(diff > 0, np.inf, 0.0))
    ratio = np.where(np.isnan(ratio), np.inf, ratio)  # a NaN or infinite value is no rounding error
    largest = float(max(np.max(np.abs(analytical), initial=0.0), np.max(np.abs(reference), initial=0.0)))
    scale = largest if np.isfinite(largest) and largest > 0 else 1.0
    mismatches = int(np.count_nonzero(ratio > 1.0))
    bits = effective_bits(diff, magnitude, bounds.significant_bits)
    largest_ratio = float(ratio.max(initial=0.0))
    precision = Precision(
        unit_roundoff=bounds.unit_roundoff, lam=bounds.lam, largest_ratio=largest_ratio,
        bits=bits, dtype_bits=bounds.significant_bits,
    )
    order = _worst_first(ratio, largest_ratio, passed=mismatches == 0)
    worst = _coordinates(order, analytical, reference, diff, diff / scale, ratio)
    reason = None
    if mismatches:
        top = worst[0]
        reason = (
            f"{mismatches} of {diff.size} coordinates differ from the {against} by more than "
            f"rounding in {bounds.significant_bits} bits allows (worst {precision.largest_ratio:.3g}x its bound); "
            f"{name} carries about {bits} significant bits of {bounds.significant_bits}; worst at "
            f"{list(top.index)}: analytical {top.analytical:.8g}, {against} {top.numerical:.8g}"
        )
    return TensorComparison(
        name=name,
        expected_shape=tuple(reference.shape),
        shape=tuple(analytical.shape),
        tolerance=float(np.max(bound, initial=0.0)) / scale,
        status="passed" if mismatches == 0 else "failed",
        method=method,
        checked=int(diff.size),
        total=int(diff.size),
        mismatches=mismatches,
        max_abs_error=float(diff.max(initial=0.0)),
        max_rel_error=float(diff.max(initial=0.0)) / scale,
        scale=scale,
        worst=worst,
        reason=reason,
        analytical=analytical,
        numerical=reference,
        precision=precision,
        call=call,
    )


def compare_with_reference(
    name: TensorName,
    analytical: np.ndarray,
    reference: np.ndarray,
    bounds: Optional[RoundingBounds],
    rtol: float,
    *,
    method: str,
    against: str,
    floor: float = 0.0,
    call: Optional[str] = None,
) -> TensorComparison:
    """A result against reference values: by the rounding model when the dtype has one (`bounds`),
    else by `rtol` of the tensor's scale (float64, and comparisons of one call with another).
    `call`: which call of a later check returned it."""
    if bounds is not None:
        return compare_bounded(name, analytical, reference, bounds, method=method, against=against, call=call)
    return compare(name, analytical, reference, rtol, method=method, against=against, floor=floor, call=call)


def _worst_first(errors: np.ndarray, largest: float, passed: bool = False) -> np.ndarray:
    """The flat indices of the WORST_SHOWN largest of `errors` (float64, none below zero), largest
    first, equal errors in index order: the same on every machine, where the order a sort leaves
    equal values in is not. `largest`: their maximum. A tensor that `passed` lists its worst alone
    (reports show no more of it, and later calls compare hundreds of such tensors)."""
    flat = errors.reshape(-1)
    shown = min(1 if passed else WORST_SHOWN, flat.size)
    if largest == 0.0:  # every error is 0 (a call repeated exactly)
        return np.arange(shown)
    if shown == 1:  # argmax returns the first of equal maxima: index order without a partition
        return np.array([int(np.argmax(flat))])
    # Past a few times the list's length, a partition finds the candidates without a full sort:
    # every error at least the shown-th largest, ties included, so the choice among equals is ours.
    if flat.size > 4 * shown:
        kth = flat[np.argpartition(flat, flat.size - shown)[flat.size - shown]]
        candidates = np.flatnonzero(flat >= kth)
    else:
        candidates = np.arange(flat.size)
    return candidates[np.lexsort((candidates, -flat[candidates]))][:shown]


def _coordinates(
    order: Sequence[int] | np.ndarray, analytical: np.ndarray, reference: np.ndarray, diff: np.ndarray,
    rel: np.ndarray, ratio: Optional[np.ndarray] = None,
) -> tuple[Coordinate, ...]:
    """The coordinates at the flat indices `order`, worst first, as a report lists them."""
    flats = np.asarray(order, dtype=np.intp)
    # Each array read once for all of them, as plain Python numbers.
    indices = zip(*(a.tolist() for a in np.unravel_index(flats, diff.shape))) if diff.ndim else [()] * flats.size
    ratios = [None] * flats.size if ratio is None else ratio.flat[flats].tolist()
    return tuple(
        Coordinate(index=tuple(index), analytical=a, numerical=n, abs_error=d, rel_error=r, bound_ratio=q)
        for index, a, n, d, r, q in zip(
            indices,
            analytical.flat[flats].tolist(),
            reference.flat[flats].tolist(),
            diff.flat[flats].tolist(),
            rel.flat[flats].tolist(),
            ratios,
        )
    )


def _join(first: str | None, second: str) -> str:
    return f"{first}; {second}" if first else second


def compare_numerical(
    name: GradientName, analytical: np.ndarray, numerical: NumericalGradient, tolerance: float, floor: float
) -> TensorComparison:
    """An analytical gradient against its numerical gradient, by coordinate or by direction.

    Along a direction v the analytical side is <analytical, v>, with v the perturbation applied;
    the directional values are then compared like a tensor of their own (projections have no
    floor: they are not coordinates that can be structurally zero)."""
    directional = numerical.directions is not None and numerical.projections is not None
    if directional:
        assert numerical.directions is not None and numerical.projections is not None
        ours, theirs = numerical.directions @ analytical.astype(np.float64).reshape(-1), numerical.projections
    else:
        ours, theirs = analytical, numerical.values
    result = compare(
        name,
        ours,
        theirs,
        tolerance,
        method=numerical.method,
        forward_calls=numerical.forward_calls,
        step=numerical.step,
        note=numerical.note,
        floor=0.0 if directional else floor,
    )
    if not directional:
        return result
    reason = result.reason.replace(" coordinates differ", " directions differ") if result.reason else None
    return replace(
        result,
        expected_shape=tuple(numerical.values.shape),
        shape=tuple(analytical.shape),
        total=int(numerical.values.size),  # coordinates in the tensor; `checked` counts directions
        reason=reason,
        # Directional values are not coordinates of the tensor: nothing to map or diagnose.
        analytical=None,
        numerical=None,
    )


def spot_check_disagreement(numerical: NumericalGradient, tolerance: float, floor: float) -> Optional[str]:
    """Why a coloured result cannot be trusted, or None when its spot checks agree with it.

    Coloured and one-at-a-time values agree to rounding for any implementation that is local and
    treats batch items independently; a disagreement beyond the check's own tolerance means one
    of those failed, and the tensor must be redone one coordinate at a time.
    """
    spot = numerical.spot_check
    if spot is None or spot.indices.size == 0:
        return None
    coloured = numerical.values.reshape(-1)[spot.indices]
    scale = max(
        float(np.max(np.abs(numerical.values), initial=0.0)), float(np.max(np.abs(spot.values), initial=0.0)), floor
    )
    worst = float(np.max(np.abs(coloured - spot.values), initial=0.0))
    if worst <= tolerance * scale:
        return None
    return (
        f"coloured and one-at-a-time differences disagree at {spot.indices.size} spot-checked "
        f"coordinates (by {worst / scale:.2e} of the scale): the implementation is not local "
        "or treats batch items differently; checked one coordinate at a time"
    )
