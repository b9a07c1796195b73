"""Why a gradient is wrong: the classic mistakes, tested as hypotheses against the check's numbers.

For each classic mistake (kernels not rotated, kernel and channel axes not swapped, stride or
dilation ignored, the crop shifted by a pixel, groups mixed up, kernel elements read in another
order, the bias counted once per window element, db summed over the wrong axes (bias_axes.py), a
constant factor) we recompute what the tensor WOULD be under that mistake, from the same x, w, b
and dO, and ask whether the implementation's value equals it to the check's tolerance. A
hypothesis is only tested on a tensor that failed, so a correct layer never gets a diagnosis; and a
hypothesis that coincides with the right gradient for this geometry cannot fire, because the
tensor failed.

The hypotheses are computed from the convolution itself, so they hold whatever the forward does:
when O fails too, each failing gradient is first compared with the convolution's own gradient (a
gradient can fail only because the forward it is checked against is wrong), and only when it is
not that is it tested against the mistakes, so a layer with two bugs gets both named.
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import Callable, Iterator, Optional, Sequence

import numpy as np

from convgrad import reference
from convgrad.findings.bias_axes import SHORT as BIAS_SHORT, shape_message, shape_readings, value_mistakes
from convgrad.geometry import GRADIENT_NAMES, LayerGeometry, TensorName, format_shape
from convgrad.report import Diagnosis, TensorComparison

__all__ = ["Diagnosis", "diagnose", "dx_as_if", "dk_as_if", "matches", "fitted_factor"]

# A hypothesis is accepted when it matches to the check's tolerance, but never tighter than this:
# hypotheses are computed in float64 with a different summation order than the implementation.
_MATCH_FLOOR = 1e-10


Tensors = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # x, w, b, dy in float64


def diagnose(
    geometry: LayerGeometry, tensors: Sequence["TensorComparison"], inputs: Tensors
) -> tuple[Diagnosis, ...]:
    """Every classic mistake that explains a failing tensor of this case (none for a passing one)."""
    x, w, b, dy = (np.asarray(a, dtype=np.float64) for a in inputs)
    by_name = {t.name: t for t in tensors}
    found: list[Diagnosis] = []
    output = by_name.get("O")
    # Against a wrong forward the numerical gradient is not the convolution's: the convolution's
    # own gradient stands in for it.
    convolution: Optional[dict[TensorName, np.ndarray]] = None
    # A forward that matched the reference and failed for another reason (a stacked batch it
    # refused) computes no wrong values to explain.
    if output is not None and output.diagnosable and not (output.compared and output.mismatches == 0):
        found.extend(_forward_diagnoses(geometry, by_name, x, w, b, dy))
        convolution = dict(zip(GRADIENT_NAMES, reference.backward(dy, x, w, b, **geometry.conv_settings())))
    forward_explains_all = any(d.kind == "backward_of_true_convolution" for d in found)
    for name in GRADIENT_NAMES:
        tensor = by_name.get(name)
        if tensor is None or not tensor.diagnosable:
            continue
        shape_mistake = _shape_diagnosis(geometry, tensor)
        if shape_mistake is not None:
            found.append(shape_mistake)
            continue
        if tensor.analytical is None:
            continue
        if convolution is None:
            if name == "dX" and _input_not_read(tensor, x):
                found.append(Diagnosis(
                    "dX",
                    "input_not_read",
                    "The output does not change when x changes (every finite difference of dX is 0), "
                    "though it matched the reference for the x of the first call: the forward computes "
                    "with an x it kept, such as a padded or im2col copy cached from an earlier call and "
                    "keyed on the shape. Compute from the x it is given on every call; dX itself may be "
                    "right.",
                    "the forward computes with an x it kept, not the one it was given",
                ))
            elif tensor.numerical is not None:
                found.extend(_gradient_diagnoses(geometry, tensor, tensor.numerical, x, w, dy))
        elif not forward_explains_all:
            found.extend(_against_convolution(geometry, tensor, convolution[name], x, w, dy))
    return tuple(found)


def _input_not_read(tensor: "TensorComparison", x: np.ndarray) -> bool:
    """Every finite difference of dX is 0 while dX is not and x is not: the output ignored x."""
    return (
        tensor.numerical is not None and tensor.analytical is not None and not np.any(tensor.numerical)
        and bool(np.any(tensor.analytical)) and bool(np.any(x))
    )


def _against_convolution(
    geometry: LayerGeometry, tensor: "TensorComparison", gradient: np.ndarray, x: np.ndarray, w: np.ndarray,
    dy: np.ndarray,
) -> list[Diagnosis]:
    """A failing gradient of a layer whose forward is wrong: the convolution's own gradient (it
    fails only because of the forward), else the mistakes, measured against that gradient."""
    assert tensor.analytical is not None
    if matches(tensor.analytical, gradient, max(tensor.tolerance, _MATCH_FLOOR)):
        name = tensor.name
        return [Diagnosis(
            name,
            "gradient_of_convolution",
            f"{name} is the convolution's own gradient: it differs from the finite differences "
            f"only because the forward is wrong (see O). Fix the forward, not {name}.",
            "the convolution's own gradient, checked against a wrong forward (see O)",
        )]
    return _gradient_diagnoses(geometry, tensor, gradient, x, w, dy)


# --- What the backward computes when it makes a mistake -------------------------------------


def dx_as_if(
    dy: np.ndarray,
    kernels: np.ndarray,
    geometry: LayerGeometry,
    *,
    stride: Optional[Sequence[int]] = None,
    dilation: Optional[Sequence[int]] = None,
    crop_shift: Optional[Sequence[int]] = None,
) -> np.ndarray:
    """dX as a scatter of dO through `kernels` (C x F/g x k, already rotated and swapped).

    dXp[y] gets dO[i] * K'[u] wherever stride*i + dilation*(k-1-u) = y, in an array the size of the
    padded input, which is then cropped from padding + crop_shift. With the layer's own stride,
    dilation and no shift this is exactly the reference full correlation.
    """
    stride = tuple(stride or geometry.stride)
    dilation = tuple(dilation or geometry.dilation)
    shift = tuple(crop_shift or (0,) * geometry.ndim)
    kernel = kernels.shape[2:]
    out = dy.shape[2:]
    reach = [d * (k - 1) for k, d in zip(kernel, dilation)]
    spread = reference.zero_insert(dy, stride, [s * (o - 1) + 1 for s, o in zip(stride, out)])
    full = reference.pad(spread, reach)
    touched = reference.correlate(full, kernels, stride=[1] * len(kernel), dilation=dilation, groups=geometry.groups)
    padded = geometry.padded_spatial
    dxp = np.zeros((*dy.shape[:1], geometry.channels, *padded))
    region = tuple(slice(0, min(t, hp)) for t, hp in zip(touched.shape[2:], padded))
    dxp[(slice(None), slice(None), *region)] = touched[(slice(None), slice(None), *region)]
    start = [p + s for p, s in zip(geometry.padding, shift)]
    return dxp[(slice(None), slice(None), *(slice(a, a + h) for a, h in zip(start, geometry.spatial)))]


def dk_as_if(
    dy: np.ndarray,
    x: np.ndarray,
    geometry: LayerGeometry,
    *,
    stride: Optional[Sequence[int]] = None,
    dilation: Optional[Sequence[int]] = None,
) -> np.ndarray:
    """dK[f,c,u] = sum dO[n,f,i] Xp[n,c, stride*i + dilation*u] with the given stride and dilation."""
    stride = tuple(stride or geometry.stride)
    dilation = tuple(dilation or geometry.dilation)
    out = dy.shape[2:]
    extent = [s * (o - 1) + d * (k - 1) + 1 for s, o, d, k in zip(stride, out, dilation, geometry.kernel_size)]
    xp = reference.pad(x, geometry.padding_pairs)[(slice(None), slice(None), *(slice(0, e) for e in extent))]
    return reference.weight_gradient(
        dy, xp, geometry.kernel_size, stride=stride, padding=[0] * geometry.ndim, dilation=dilation,
        groups=geometry.groups,
    )


def _padding_shown(geometry: LayerGeometry) -> str:
    """'1x1', or per side '0,1x0,1' (before,after) when some axis differs."""
    return geometry.padding_shown + (" (before,after)" if geometry.uneven_padding else "")


def _flip(w: np.ndarray) -> np.ndarray:
    return np.flip(w, axis=tuple(range(2, w.ndim)))


def _interleaved_groups(geometry: LayerGeometry) -> Optional[np.ndarray]:
    """Kernel order as if kernel f belonged to group f % g instead of f // g (None if the same)."""
    g, per_group = geometry.groups, geometry.filters // geometry.groups
    order = np.array([j + g * t for j in range(g) for t in range(per_group)])
    return None if np.array_equal(order, np.arange(geometry.filters)) else order


# --- Kernel elements read in another order than they are laid out -------------------------
#
# An im2col forward multiplies the flattened kernels with the input patches (im2col columns)
# element by element. If the two list each window's elements in different orders, e.g. the
# patches channel innermost (kh, kw, C) and the kernels as laid out (C, kh, kw), every weight
# meets another input element: the layer computes the convolution of a permuted kernel.


def _element_axes(geometry: LayerGeometry) -> list[str]:
    return ["C", *(f"k{a.lower()}" for a in geometry.axis_names)]


def _order_text(geometry: LayerGeometry, order: Sequence[int]) -> str:
    names = _element_axes(geometry)
    return "(" + ", ".join(names[i] for i in order) + ")"


def _other_orders(geometry: LayerGeometry) -> list[tuple[int, ...]]:
    """The orders a layer plausibly mixes up with (C, k...): channels last, kernel axes reversed."""
    spatial = list(range(1, geometry.ndim + 1))
    candidates = [(*spatial, 0), (0, *spatial[::-1]), (*spatial[::-1], 0)]
    laid_out = tuple(range(geometry.ndim + 1))
    return [order for order in dict.fromkeys(candidates) if order != laid_out]


def _read_in(order: Sequence[int], a: np.ndarray) -> np.ndarray:
    """Each kernel of `a` as a layer uses it when it reads elements laid out in (C, k...) order as
    if they were in `order` (the patches in `order`, the kernels flattened as laid out)."""
    inverse = np.argsort(order)
    return a.reshape(a.shape[0], *(a.shape[1 + i] for i in order)).transpose(0, *(1 + int(i) for i in inverse))


def _flattened_in(order: Sequence[int], a: np.ndarray) -> np.ndarray:
    """Each kernel of `a` as a layer uses it when it flattens the kernels in `order` and reads the
    result as (C, k...) (the kernels flattened in `order`, the patches as laid out)."""
    return np.ascontiguousarray(a.transpose(0, *(1 + i for i in order))).reshape(a.shape)


def _transpose_text(order: Sequence[int]) -> str:
    return "w.transpose(" + ", ".join(map(str, (0, *(1 + i for i in order)))) + ").reshape(F, -1)"


def _dx_kernel_order(geometry: LayerGeometry, w: np.ndarray, dy: np.ndarray) -> Iterator[Hypothesis]:
    laid_out = _order_text(geometry, range(geometry.ndim + 1))
    for order in _other_orders(geometry):
        text = _order_text(geometry, order)
        for permute in (_read_in, _flattened_in):
            yield (
                "kernel_element_order",
                functools.partial(_dx_with, permute, order, w, dy, geometry),
                f"dX matches the numerical gradient once each kernel's elements are read in the order "
                f"they are laid out, {laid_out}: the backward pairs the flattened kernels with the "
                f"patches (im2col columns) in {text} order. Flatten both in the same order.",
            )


def _dx_with(
    permute: Callable[[Sequence[int], np.ndarray], np.ndarray], order: Sequence[int], w: np.ndarray, dy: np.ndarray,
    geometry: LayerGeometry,
) -> np.ndarray:
    return dx_as_if(dy, reference.rotate_and_swap(permute(order, w), geometry.groups), geometry)


def _dk_kernel_order(geometry: LayerGeometry, x: np.ndarray, dy: np.ndarray) -> Iterator[Hypothesis]:
    laid_out = _order_text(geometry, range(geometry.ndim + 1))
    dk = dk_as_if(dy, x, geometry)
    for order in _other_orders(geometry):
        text = _order_text(geometry, order)
        yield (
            "kernel_element_order",
            functools.partial(_flattened_in, order, dk),
            f"dK matches the numerical gradient once its elements are put in the order the kernels "
            f"are laid out, {laid_out}: it is computed from patches (im2col columns) in {text} order "
            f"and reshaped as if it were {laid_out}. Build the patches in {laid_out} order, or "
            f"reorder dK before returning it.",
        )
        yield (
            "kernel_element_order",
            functools.partial(_read_in, order, dk),
            f"dK matches the numerical gradient once its elements are put in the order the kernels "
            f"are laid out, {laid_out}: each kernel's gradient is reshaped as if it were laid out "
            f"{text}. Return dK in the kernels' own layout.",
        )


def _forward_kernel_order(
    geometry: LayerGeometry, output: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray, tolerance: float
) -> Optional[Diagnosis]:
    laid_out = _order_text(geometry, range(geometry.ndim + 1))
    settings = geometry.conv_settings()
    for order in _other_orders(geometry):
        text = _order_text(geometry, order)
        if matches(output, reference.forward(x, _read_in(order, w), b, **settings), tolerance):
            how = (
                f"the forward's patches (im2col columns) list each window in {text} order, but the "
                f"kernels are flattened as laid out (w.reshape(F, -1)), so each weight meets another "
                f"input element. Build the patches in {laid_out} order, or flatten the kernels as "
                f"{_transpose_text(order)}."
            )
        elif matches(output, reference.forward(x, _flattened_in(order, w), b, **settings), tolerance):
            how = (
                f"the kernels are flattened in {text} order ({_transpose_text(order)}) but the "
                f"forward's patches (im2col columns) list each window in {laid_out} order. Flatten "
                f"both in the same order."
            )
        else:
            continue
        return Diagnosis(
            "O",
            "kernel_element_order",
            f"O matches the convolution with each kernel's elements read in {text} order while the "
            f"kernels are laid out {laid_out}: {how}",
            _SHORT["kernel_element_order"],
        )
    return None


# --- The hypotheses ------------------------------------------------------------------------

Hypothesis = tuple[str, Callable[[], Optional[np.ndarray]], str]  # kind, candidate, message

# Each hypothesis's mistake in a few words, for one-line summaries ("looks like ...").
_SHORT = {
    "kernels_not_rotated": "the kernels were not rotated 180°",
    "kernels_not_swapped": "the kernels' kernel and channel axes were not swapped",
    "kernels_not_rotated_or_swapped": "the kernels were neither rotated 180° nor swapped",
    "kernels_reshaped_not_swapped": "the kernels were reshaped instead of transposed",
    "padding_crop_shifted": "the padding was cropped one pixel off",
    "stride_ignored": "the stride was ignored",
    "dilation_ignored": "the dilation was ignored",
    "groups_mixed": "kernels were paired with the wrong group",
    "bias_per_window_element": "the bias was counted once per element of the window",
    "kernel_element_order": "each kernel's elements were read in another order than they are laid out (im2col order)",
    **BIAS_SHORT,
}


def _dx_hypotheses(geometry: LayerGeometry, x: np.ndarray, w: np.ndarray, dy: np.ndarray) -> Iterator[Hypothesis]:
    g = geometry.groups
    swap_possible = geometry.filters == geometry.channels  # unswapped kernels have the right shape
    yield (
        "kernels_not_rotated",
        lambda: dx_as_if(dy, reference.rotate_and_swap(_flip(w), g), geometry),
        "dX matches the numerical gradient once the kernels are rotated 180°: the full "
        "correlation of dO needs each kernel flipped along every spatial axis, once. Add the flip "
        "if it is missing; if the backward scatters dO through the kernel as the forward gathers "
        "(dX[window] += w * dO), it needs no flip at all: remove the one it has.",
    )
    if swap_possible:
        yield (
            "kernels_not_swapped",
            lambda: dx_as_if(dy, np.ascontiguousarray(_flip(w)), geometry),
            "dX matches the numerical gradient once the kernels' kernel and channel axes are "
            "swapped: F kernels of depth C/g must become C kernels of depth F/g (transpose axes 0 "
            "and 1 of the rotated kernels, per group) before the full correlation.",
        )
        yield (
            "kernels_not_rotated_or_swapped",
            lambda: dx_as_if(dy, w, geometry),
            "dX matches the numerical gradient once the kernels are rotated 180° and their kernel "
            "and channel axes swapped: flip every spatial axis of each kernel and transpose axes 0 "
            "and 1 (per group) before the full correlation.",
        )
    kernel_count = geometry.filters // g * (geometry.channels // g)
    if geometry.filters != geometry.channels and kernel_count > 1:
        yield (
            "kernels_reshaped_not_swapped",
            lambda: dx_as_if(dy, np.ascontiguousarray(_flip(w)).reshape(geometry.channels, geometry.filters // g, *geometry.kernel_size), geometry),
            "dX matches the numerical gradient once the kernels' kernel and channel axes are "
            "transposed instead of reshaped: use w.swapaxes(0, 1) (per group), not "
            "w.reshape(C, F, ...), which keeps the numbers in the wrong order.",
        )
    rotated = reference.rotate_and_swap(w, g)

    def cropped_at(shift: tuple[int, ...]) -> Callable[[], np.ndarray]:
        return lambda: dx_as_if(dy, rotated, geometry, crop_shift=shift)

    for shift in itertools.product(*[(-1, 0, 1) if p > 0 else (0,) for p in geometry.padding_totals]):
        if any(shift):
            where = " and ".join(
                f"{name} one pixel {'late' if s > 0 else 'early'}" for name, s in zip(geometry.axis_names, shift) if s
            )
            yield (
                "padding_crop_shifted",
                cropped_at(shift),
                f"dX matches the numerical gradient once the padding is cropped where it is: the "
                f"crop starts {where}. Crop exactly the padding {_padding_shown(geometry)} from "
                f"each side: dX = dXp[..., p:p+H].",
            )
    if any(s > 1 for s in geometry.stride):
        yield (
            "stride_ignored",
            lambda: dx_as_if(dy, rotated, geometry, stride=[1] * geometry.ndim),
            f"dX matches the numerical gradient once the stride {format_shape(geometry.stride)} is taken "
            "into account: output position i comes from input s*i + d*u, so insert s-1 zeros "
            "between the rows and columns of dO before the full correlation.",
        )
    if any(d > 1 for d in geometry.dilation):
        yield (
            "dilation_ignored",
            lambda: dx_as_if(dy, rotated, geometry, dilation=[1] * geometry.ndim),
            f"dX matches the numerical gradient once the dilation {format_shape(geometry.dilation)} is "
            "taken into account: dilate the rotated kernels (d-1 zeros between taps) in the full "
            "convolution.",
        )
    order = _interleaved_groups(geometry)
    if order is not None:
        yield (
            "groups_mixed",
            lambda: dx_as_if(dy[:, order], reference.rotate_and_swap(w[order], g), geometry),
            f"dX matches the numerical gradient once each kernel is paired with its own group: "
            f"kernels 0..{geometry.filters // g - 1} belong to group 0 (f // (F/g)), not to "
            "group f % g.",
        )


def _dk_hypotheses(geometry: LayerGeometry, x: np.ndarray, w: np.ndarray, dy: np.ndarray) -> Iterator[Hypothesis]:
    if any(s > 1 for s in geometry.stride):
        yield (
            "stride_ignored",
            lambda: dk_as_if(dy, x, geometry, stride=[1] * geometry.ndim),
            f"dK matches the numerical gradient once the stride {format_shape(geometry.stride)} is taken "
            "into account: dK[f,c,u] sums dO[i] * Xp[s*i + d*u], so step through X by the stride.",
        )
    if any(d > 1 for d in geometry.dilation):
        yield (
            "dilation_ignored",
            lambda: dk_as_if(dy, x, geometry, dilation=[1] * geometry.ndim),
            f"dK matches the numerical gradient once the dilation {format_shape(geometry.dilation)} is "
            "taken into account: tap u of the kernel reads Xp[s*i + d*u], not Xp[s*i + u].",
        )
    order = _interleaved_groups(geometry)
    if order is not None:
        inverse = np.argsort(order)

        def mixed() -> np.ndarray:
            return dk_as_if(dy[:, order], x, geometry)[inverse]

        yield (
            "groups_mixed",
            mixed,
            f"dK matches the numerical gradient once each kernel is paired with its own group: "
            f"kernel f reads the input channels of group f // {geometry.filters // geometry.groups}, "
            "not of group f % g.",
        )


def _db_hypotheses(geometry: LayerGeometry, dy: np.ndarray) -> Iterator[Hypothesis]:
    window = geometry.channels // geometry.groups * math.prod(geometry.kernel_size)
    if window != math.prod(geometry.kernel_size):  # else it is the count of kernel elements (a constant factor)
        yield (
            "bias_per_window_element",
            lambda: window * dy.sum(axis=(0, *range(2, dy.ndim))),
            f"db is {window} times the gradient of the bias: it is counted once per element of the window "
            f"(C/g x {'x'.join(map(str, geometry.kernel_size))} = {window}), as if the bias were added to every "
            "product x * w. The bias is added once per output position, so db[f] is the sum of dO over the "
            "batch and the output positions of kernel f.",
        )
    yield from value_mistakes(geometry, dy)  # db over the wrong axes, of the right shape all the same


def _gradient_diagnoses(
    geometry: LayerGeometry,
    tensor: "TensorComparison",
    truth: np.ndarray,
    x: np.ndarray,
    w: np.ndarray,
    dy: np.ndarray,
) -> list[Diagnosis]:
    """The mistakes that explain a failing gradient; `truth` (the numerical gradient, or the
    convolution's own when the forward is wrong) is what a constant factor is measured against."""
    analytical = tensor.analytical
    assert analytical is not None
    tolerance = max(tensor.tolerance, _MATCH_FLOOR)
    hypotheses: Iterator[Hypothesis] = iter(())
    if tensor.name == "dX":
        hypotheses = itertools.chain(_dx_hypotheses(geometry, x, w, dy), _dx_kernel_order(geometry, w, dy))
    elif tensor.name == "dK":
        hypotheses = itertools.chain(_dk_hypotheses(geometry, x, w, dy), _dk_kernel_order(geometry, x, dy))
    elif tensor.name == "db":
        hypotheses = _db_hypotheses(geometry, dy)
    found: list[Diagnosis] = []
    seen: list[np.ndarray] = []
    for kind, candidate, message in hypotheses:
        values = candidate()
        if values is None or values.shape != analytical.shape:
            continue
        if any(np.array_equal(values, s) for s in seen):
            continue  # the same numbers as an earlier hypothesis: that one already speaks for both
        seen.append(values)
        if matches(analytical, values, tolerance):
            found.append(Diagnosis(tensor.name, kind, message, _SHORT[kind]))
    if not found:
        factor = _constant_factor(tensor.name, analytical, truth, geometry, tolerance)
        if factor is not None:
            found.append(factor)
    return found


def matches(analytical: np.ndarray, candidate: np.ndarray, tolerance: float) -> bool:
    """Whether the two agree everywhere to `tolerance` of the larger one's scale (never if both are 0)."""
    scale = max(float(np.max(np.abs(analytical), initial=0.0)), float(np.max(np.abs(candidate), initial=0.0)))
    if scale == 0.0:
        return False
    return float(np.max(np.abs(analytical - candidate))) <= tolerance * scale


# --- A constant factor, named when it is a count the layer has -------------------------------


def fitted_factor(analytical: np.ndarray, numerical: np.ndarray, tolerance: float) -> Optional[float]:
    """k when analytical = k * numerical everywhere (least squares, then held to `tolerance`), k
    neither 0 nor 1 (a factor of 1 would name no mistake); else None."""
    if np.isnan(numerical).any() or np.count_nonzero(numerical) < 2:
        return None  # one value fits any factor: that says nothing
    norm = float(np.sum(numerical * numerical))
    factor = float(np.sum(analytical * numerical)) / norm
    if factor == 0.0 or abs(factor - 1.0) < 1e-3 or not matches(analytical, factor * numerical, tolerance):
        return None
    return factor


def _constant_factor(
    name: TensorName, analytical: np.ndarray, numerical: np.ndarray, geometry: LayerGeometry, tolerance: float
) -> Optional[Diagnosis]:
    factor = fitted_factor(analytical, numerical, tolerance)
    if factor is None:
        return None
    named = _named_factor(factor, geometry)
    short = f"{name} is {_ratio(factor)} the right values everywhere"
    if named is not None:
        sentences, labels = named
        return Diagnosis(
            name, "constant_factor", f"{name} is {_ratio(factor)} the numerical gradient everywhere: {sentences}.",
            f"{short} ({labels})",
        )
    return Diagnosis(
        name,
        "constant_factor",
        f"{name} is {_ratio(factor)} the numerical gradient everywhere: look for a stray constant "
        f"factor of {factor:.6g} in its formula.",
        f"{short} (a stray factor of {factor:.6g})",
    )


def _named_factor(factor: float, geometry: LayerGeometry) -> Optional[tuple[str, str]]:
    """A sentence naming the count that `factor` equals, with the fix, and that count in a few
    words; or None."""
    n = geometry.batch
    taps = math.prod(geometry.kernel_size)
    weights = taps * geometry.channels // geometry.groups
    positions = math.prod(geometry.out_spatial)
    taps_text = "x".join(map(str, geometry.kernel_size))
    counts = [
        (-1.0, "the sign is flipped: E = sum(dO * O) has gradient +dO, so drop the minus sign", "the sign flipped"),
        (1 / n, f"1/N = 1/{n}, an average over the batch: sum over the batch instead of taking the mean",
         "an average over the batch"),
        (float(n), f"N = {n}, the batch size: do not multiply by the batch size", "the batch size"),
        (float(taps), f"{taps}, the number of kernel elements ({taps_text}): something is added "
                      "once per kernel element; add it once per output position", "once per kernel element"),
        (float(weights), f"{weights}, the number of weights per kernel (C/g x {taps_text}): "
                         "something is added once per weight; add it once per output position", "once per weight"),
        (1 / taps, f"1/{taps}, one over the number of kernel elements ({taps_text}): do not "
                   "average over the kernel", "an average over the kernel"),
        (1 / positions, f"1/{positions}, an average over the output positions: sum over them instead",
         "an average over the output positions"),
        (1 / (n * positions), f"1/{n * positions}, an average over the batch and the output "
                              "positions: sum over them instead", "an average over the batch and the positions"),
    ]
    named = [(text, label) for value, text, label in counts if value != 1.0 and math.isclose(factor, value, rel_tol=1e-4)]
    if not named:
        return None
    return "; or ".join(dict.fromkeys(t for t, _ in named)), " or ".join(dict.fromkeys(label for _, label in named))


def _ratio(factor: float) -> str:
    if factor == -1.0 or math.isclose(factor, -1.0, rel_tol=1e-4):
        return "-1 times"
    if abs(factor) >= 1:
        return f"{factor:.4g} times"
    return f"1/{1 / factor:.4g} of"


# --- Wrong shapes -------------------------------------------------------------------------


def _shape_diagnosis(geometry: LayerGeometry, tensor: "TensorComparison") -> Optional[Diagnosis]:
    got, expected = tensor.shape, tensor.expected_shape
    if tensor.name == "db" and got is not None and tuple(got) != tuple(expected):
        return _bias_shape_diagnosis(geometry, got)
    if got is None or tuple(got) == tuple(expected) or len(got) != len(expected):
        return None
    c, f, g = geometry.channels, geometry.filters, geometry.groups
    if tensor.name == "dX" and got[1] == f and got[1] != c and tuple(got[2:]) == tuple(expected[2:]):
        return Diagnosis(
            "dX",
            "dx_depth_f",
            f"dX has depth F = {f} where the input has C = {c} channels: the kernels were rotated "
            f"but their kernel and channel axes not swapped. Swap axes 0 and 1 of the rotated "
            f"kernels (per group) so the {f} kernels of depth {c // g} become {c} kernels of depth "
            f"{f // g}; the full correlation then gives depth {c}.",
            "the kernels were rotated but not swapped (dX has depth F)",
        )
    if tensor.name == "dK" and tuple(got) == (expected[1], expected[0], *expected[2:]):
        return Diagnosis(
            "dK",
            "dk_axes_swapped",
            f"dK has shape {format_shape(got)} but the kernels are {format_shape(expected)}: its kernel "
            "and channel axes are swapped; return dK in the kernels' own layout (F, C/g, ...).",
            "dK's kernel and channel axes are swapped",
        )
    return None


def _bias_shape_diagnosis(geometry: LayerGeometry, shape: Sequence[int]) -> Optional[Diagnosis]:
    """db of another shape than the bias, named by the axes of dO it kept (several readings when sizes coincide)."""
    readings = shape_readings(geometry, shape)
    if not readings:
        return None
    kind, message, short = shape_message(geometry, shape, readings)
    return Diagnosis("db", kind, message, short)


# --- A wrong forward ----------------------------------------------------------------------


def _forward_diagnoses(
    geometry: LayerGeometry,
    by_name: dict[TensorName, "TensorComparison"],
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray,
    dy: np.ndarray,
) -> list[Diagnosis]:
    output = by_name["O"]
    found: list[Diagnosis] = []
    kernels = by_name.get("dK")
    if kernels is not None and kernels.numerical is not None and not np.any(kernels.numerical) and np.any(w):
        found.append(Diagnosis(
            "O",
            "weights_not_read",
            "The output does not change when the weights change (every finite difference of dK is 0): the "
            "forward computes with weights of its own, not the ones the layer was given: a copy or a view "
            "of W made once (W_mat = W.reshape(...)), or weights kept under another name. Read the "
            "weights the layer holds on every call; a training loop that assigns new weights (layer.W = "
            "...) would leave the forward on the old ones.",
            "the forward does not read the weights it was given",
        ))
        return found
    if output.analytical is not None and output.analytical.shape == geometry.y_shape:
        mistake = _forward_mistake(geometry, output.analytical, x, w, b, max(output.tolerance, _MATCH_FLOOR))
        if mistake is not None:
            found.append(mistake)
    gradients = [by_name.get(n) for n in ("dX", "dK", "db")]
    if all(t is not None and (t.passed or t.lost_precision) for t in gradients):  # they match, to rounding
        found.append(Diagnosis(
            "O",
            "forward_not_convolution",
            "The forward is not a convolution, yet dX, dK and db match its finite differences: the "
            "backward is the exact gradient of that wrong forward. Fix the forward; a gate with the "
            "forward check turned off would have passed this layer.",
            "a wrong forward, and a backward that is its exact gradient",
        ))
    elif _backward_is_convolution_gradient(geometry, gradients, x, w, dy):
        found.append(Diagnosis(
            "O",
            "backward_of_true_convolution",
            "dX, dK and db are the correct gradients of the convolution, but the forward computes "
            "something else, so they cannot match its finite differences: fix the forward.",
            "a wrong forward, and a backward that is right for the convolution",
        ))
    return found


def _forward_mistake(
    geometry: LayerGeometry, output: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray, tolerance: float
) -> Optional[Diagnosis]:
    """The first classic forward mistake that O equals, or None."""
    settings = geometry.conv_settings()
    if matches(output, reference.forward(x, np.ascontiguousarray(_flip(w)), b, **settings), tolerance):
        return Diagnosis(
            "O",
            "forward_flips_kernels",
            "O matches a true convolution (kernels rotated 180°), but conv layers compute a "
            "cross-correlation: do not flip the kernels in the forward pass.",
            "the forward flips the kernels (a true convolution)",
        )
    if matches(output, reference.forward(x, w, np.zeros_like(b), **settings), tolerance):
        return Diagnosis(
            "O", "forward_without_bias", "O matches the convolution without its bias: add b[f] to every output of kernel f.",
            "the forward leaves out the bias",
        )
    window = geometry.channels // geometry.groups * math.prod(geometry.kernel_size)
    if window > 1 and matches(output, reference.forward(x, w, window * b, **settings), tolerance):
        return Diagnosis(
            "O",
            "bias_per_window_element",
            f"O matches the convolution with the bias added {window} times, once per element of the "
            f"window (C/g x {'x'.join(map(str, geometry.kernel_size))} = {window}): the bias is added "
            "to every product inside the sum, as in sum(x_window * w[f] + b[f]). Add it once per "
            "output position, after the sum: sum(x_window * w[f]) + b[f].",
            "the forward adds the bias to every element of the window",
        )
    return _forward_kernel_order(geometry, output, x, w, b, tolerance)


def _backward_is_convolution_gradient(
    geometry: LayerGeometry,
    gradients: list[Optional["TensorComparison"]],
    x: np.ndarray,
    w: np.ndarray,
    dy: np.ndarray,
) -> bool:
    if any(t is None or t.analytical is None for t in gradients):
        return False
    settings = geometry.conv_settings()
    correct = reference.backward(dy, x, w, np.zeros(geometry.filters), **settings)
    return all(
        matches(t.analytical, r, max(t.tolerance, _MATCH_FLOOR))  # type: ignore[union-attr,arg-type]
        for t, r in zip(gradients, correct)
    )
