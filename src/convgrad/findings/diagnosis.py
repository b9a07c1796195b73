"""Why a gradient is wrong: the classic mistakes, tested as hypotheses against the check's numbers.

For each classic mistake (kernels not rotated, kernel and channel axes not swapped, stride or
dilation ignored, the crop shifted by a pixel, groups mixed up, a constant factor) we recompute
what the gradient WOULD be under that mistake, from the same x, w, b and dO, and ask whether the
implementation's analytical gradient equals it to the check's tolerance. A hypothesis is only
tested on a tensor that failed, so a correct layer never gets a diagnosis; and a hypothesis that
coincides with the right gradient for this geometry cannot fire, because the tensor failed.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator, Optional, Sequence

import numpy as np

from convgrad import reference
from convgrad.geometry import LayerGeometry, TensorName, format_shape

if TYPE_CHECKING:  # report.py imports this module for the Diagnosis type
    from convgrad.report import TensorComparison

__all__ = ["Diagnosis", "diagnose", "dx_as_if", "dk_as_if", "matches"]

# A hypothesis is accepted when it matches to the check's tolerance, but never tighter than this:
# hypotheses are computed in float64 with a different summation order than the implementation.
_MATCH_FLOOR = 1e-10


@dataclass(frozen=True)
class Diagnosis:
    """One named mistake that explains a failing tensor, in a sentence that says the fix."""

    tensor: TensorName
    kind: str  # a stable identifier, e.g. "kernels_not_rotated"
    message: str


Tensors = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # x, w, b, dy in float64


def diagnose(
    geometry: LayerGeometry, tensors: Sequence["TensorComparison"], inputs: Tensors
) -> tuple[Diagnosis, ...]:
    """Every classic mistake that explains a failing tensor of this case (none for a passing one)."""
    x, w, b, dy = (np.asarray(a, dtype=np.float64) for a in inputs)
    by_name = {t.name: t for t in tensors}
    found: list[Diagnosis] = []
    output = by_name.get("O")
    forward_ok = output is None or output.passed
    if output is not None and not output.passed:
        found.extend(_forward_diagnoses(geometry, by_name, x, w, b, dy))
    for name in ("dX", "dK", "db"):
        tensor = by_name.get(name)
        if tensor is None or tensor.passed:
            continue
        shape_mistake = _shape_diagnosis(geometry, tensor)
        if shape_mistake is not None:
            found.append(shape_mistake)
            continue
        if not forward_ok or tensor.analytical is None or tensor.numerical is None:
            continue  # against a wrong forward the numerical gradient is not the convolution's
        found.extend(_gradient_diagnoses(geometry, tensor, x, w, dy))
    return tuple(found)


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
    xp = reference.pad(x, geometry.padding)[(slice(None), slice(None), *(slice(0, e) for e in extent))]
    return reference.weight_gradient(
        dy, xp, geometry.kernel_size, stride=stride, padding=[0] * geometry.ndim, dilation=dilation,
        groups=geometry.groups,
    )


def _flip(w: np.ndarray) -> np.ndarray:
    return np.flip(w, axis=tuple(range(2, w.ndim)))


def _interleaved_groups(geometry: LayerGeometry) -> Optional[np.ndarray]:
    """Kernel order as if kernel f belonged to group f % g instead of f // g (None if the same)."""
    g, per_group = geometry.groups, geometry.filters // geometry.groups
    order = np.array([j + g * t for j in range(g) for t in range(per_group)])
    return None if np.array_equal(order, np.arange(geometry.filters)) else order


# --- The hypotheses ------------------------------------------------------------------------

Hypothesis = tuple[str, Callable[[], Optional[np.ndarray]], str]  # kind, candidate, message


def _dx_hypotheses(geometry: LayerGeometry, x: np.ndarray, w: np.ndarray, dy: np.ndarray) -> Iterator[Hypothesis]:
    g = geometry.groups
    swap_possible = geometry.filters == geometry.channels  # unswapped kernels have the right shape
    yield (
        "kernels_not_rotated",
        lambda: dx_as_if(dy, reference.rotate_and_swap(_flip(w), g), geometry),
        "dX matches the numerical gradient once the kernels are rotated 180°: rotate each kernel "
        "(flip every spatial axis) before the full correlation.",
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

    for shift in itertools.product(*[(-1, 0, 1) if p > 0 else (0,) for p in geometry.padding]):
        if any(shift):
            where = " and ".join(
                f"{name} one pixel {'late' if s > 0 else 'early'}" for name, s in zip(geometry.axis_names, shift) if s
            )
            yield (
                "padding_crop_shifted",
                cropped_at(shift),
                f"dX matches the numerical gradient once the padding is cropped where it is: the "
                f"crop starts {where}. Crop exactly the padding {format_shape(geometry.padding)} from "
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


def _gradient_diagnoses(
    geometry: LayerGeometry, tensor: "TensorComparison", x: np.ndarray, w: np.ndarray, dy: np.ndarray
) -> list[Diagnosis]:
    analytical = tensor.analytical
    assert analytical is not None and tensor.numerical is not None
    tolerance = max(tensor.tolerance, _MATCH_FLOOR)
    hypotheses: Iterator[Hypothesis] = iter(())
    if tensor.name == "dX":
        hypotheses = _dx_hypotheses(geometry, x, w, dy)
    elif tensor.name == "dK":
        hypotheses = _dk_hypotheses(geometry, x, w, dy)
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
            found.append(Diagnosis(tensor.name, kind, message))
    if not found:
        factor = _constant_factor(tensor, geometry, tolerance)
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


def _constant_factor(tensor: "TensorComparison", geometry: LayerGeometry, tolerance: float) -> Optional[Diagnosis]:
    analytical, numerical = tensor.analytical, tensor.numerical
    assert analytical is not None and numerical is not None
    if np.isnan(numerical).any():
        return None
    norm = float(np.sum(numerical * numerical))
    if norm == 0.0:
        return None
    factor = float(np.sum(analytical * numerical)) / norm
    if factor == 0.0 or not matches(analytical, factor * numerical, tolerance):
        return None
    name = tensor.name
    named = _named_factor(factor, geometry)
    if named is not None:
        return Diagnosis(name, "constant_factor", f"{name} is {_ratio(factor)} the numerical gradient everywhere: {named}.")
    return Diagnosis(
        name,
        "constant_factor",
        f"{name} is {_ratio(factor)} the numerical gradient everywhere: look for a stray constant "
        f"factor of {factor:.6g} in its formula.",
    )


def _named_factor(factor: float, geometry: LayerGeometry) -> Optional[str]:
    """A sentence naming the count that `factor` equals, with the fix, or None."""
    n = geometry.batch
    taps = math.prod(geometry.kernel_size)
    weights = taps * geometry.channels // geometry.groups
    positions = math.prod(geometry.out_spatial)
    taps_text = "x".join(map(str, geometry.kernel_size))
    counts = [
        (-1.0, "the sign is flipped: E = sum(dO * O) has gradient +dO, so drop the minus sign"),
        (1 / n, f"1/N = 1/{n}, an average over the batch: sum over the batch instead of taking the mean"),
        (float(n), f"N = {n}, the batch size: do not multiply by the batch size"),
        (float(taps), f"{taps}, the number of kernel elements ({taps_text}): something is added "
                      "once per kernel element; add it once per output position"),
        (float(weights), f"{weights}, the number of weights per kernel (C/g x {taps_text}): "
                         "something is added once per weight; add it once per output position"),
        (1 / taps, f"1/{taps}, one over the number of kernel elements ({taps_text}): do not "
                   "average over the kernel"),
        (1 / positions, f"1/{positions}, an average over the output positions: sum over them instead"),
        (1 / (n * positions), f"1/{n * positions}, an average over the batch and the output "
                              "positions: sum over them instead"),
    ]
    names = [text for value, text in counts if value != 1.0 and math.isclose(factor, value, rel_tol=1e-4)]
    return "; or ".join(dict.fromkeys(names)) or None


def _ratio(factor: float) -> str:
    if factor == -1.0 or math.isclose(factor, -1.0, rel_tol=1e-4):
        return "-1 times"
    if abs(factor) >= 1:
        return f"{factor:.4g} times"
    return f"1/{1 / factor:.4g} of"


# --- Wrong shapes -------------------------------------------------------------------------


def _shape_diagnosis(geometry: LayerGeometry, tensor: "TensorComparison") -> Optional[Diagnosis]:
    got, expected = tensor.shape, tensor.expected_shape
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
        )
    if tensor.name == "dK" and tuple(got) == (expected[1], expected[0], *expected[2:]):
        return Diagnosis(
            "dK",
            "dk_axes_swapped",
            f"dK has shape {format_shape(got)} but the kernels are {format_shape(expected)}: its kernel "
            "and channel axes are swapped; return dK in the kernels' own layout (F, C/g, ...).",
        )
    return None


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
    settings = geometry.conv_settings()
    if output.analytical is not None and output.analytical.shape == geometry.y_shape:
        tolerance = max(output.tolerance, _MATCH_FLOOR)
        if matches(output.analytical, reference.forward(x, np.ascontiguousarray(_flip(w)), b, **settings), tolerance):
            found.append(Diagnosis(
                "O",
                "forward_flips_kernels",
                "O matches a true convolution (kernels rotated 180°), but conv layers compute a "
                "cross-correlation: do not flip the kernels in the forward pass.",
            ))
        elif matches(output.analytical, reference.forward(x, w, np.zeros_like(b), **settings), tolerance):
            found.append(Diagnosis(
                "O", "forward_without_bias", "O matches the convolution without its bias: add b[f] to every output of kernel f."
            ))
    gradients = [by_name.get(n) for n in ("dX", "dK", "db")]
    if all(t is not None and t.passed for t in gradients):
        found.append(Diagnosis(
            "O",
            "forward_not_convolution",
            "The forward is not a convolution, yet dX, dK and db match its finite differences: the "
            "backward is the exact gradient of that wrong forward. Fix the forward; a gate with the "
            "forward check turned off would have passed this layer.",
        ))
    elif _backward_is_convolution_gradient(geometry, gradients, x, w, dy):
        found.append(Diagnosis(
            "O",
            "backward_of_true_convolution",
            "dX, dK and db are the correct gradients of the convolution, but the forward computes "
            "something else, so they cannot match its finite differences: fix the forward.",
        ))
    return found


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
