"""Random valid conv layers for property tests, and the properties every check must have.

Shared by tests/test_properties.py (assertions, run by pytest) and benchmarks/long_profile.py
(counts, for the README's reliability numbers), so both measure exactly the same thing.

Layers are built backwards from their output sizes, so every drawn layer exists: for each spatial
axis draw out, kernel k, stride s, dilation d, padding p and a remainder r < s, then
H = (out - 1)*s + d*(k - 1) + 1 - 2p + r gives floor((H + 2p - d*(k-1) - 1)/s) + 1 = out.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from checking import check_layer
from convgrad.options import METHODS, RANDOM_TENSORS as TENSOR_NAMES
from convgrad.geometry import LayerGeometry, resolve_geometry
from convgrad.adapters.protocol import ReferenceLayer
from convgrad.report import CaseReport
from zoo.layers import OneCoordinateOff

PROFILE = os.environ.get("CONVGRAD_PROFILE", "ci")

# Examples per property and dtype. "long" is the profile whose numbers the README records.
EXAMPLES = {
    "ci": {"float64": 15, "float32": 8},
    "long": {"float64": 500, "float32": 200},
}

# The error injected into one coordinate of a correct gradient, relative to the tensor's scale:
# the smallest error each dtype's default tolerance promises to catch (float32 rounds at ~1e-7
# per operation, so its tolerance is 1e-3; 1e-2 is ten times that).
INJECTED_ERROR = {"float64": 1e-5, "float32": 1e-2}

# Keeps a dense check (2 forward calls per coordinate) to about a tenth of a second.
MAX_COORDINATES = 1500


def coordinates(geometry: LayerGeometry) -> int:
    """Coordinates a dense check perturbs: every element of x, w and b."""
    return sum(math.prod(s) for s in (geometry.x_shape, geometry.w_shape, geometry.b_shape))


@st.composite
def axes(draw: st.DrawFn, ndim: int) -> dict[str, tuple[int, ...]]:
    """Per-axis out, kernel, stride, dilation, padding and input sizes of a layer that exists."""
    small = ndim == 3  # 3-D sizes multiply fast
    values: dict[str, list[int]] = {name: [] for name in ("kernel", "stride", "dilation", "padding", "size")}
    for _ in range(ndim):
        out = draw(st.integers(1, 3 if small else 6))
        k = draw(st.integers(1, 2 if small else 3))
        s = draw(st.integers(1, 2 if small else 3))
        d = draw(st.integers(1, 2))
        r = draw(st.integers(0, s - 1))
        reach = (out - 1) * s + d * (k - 1) + r  # H + 2p - 1 must equal this
        p = draw(st.integers(0, min(2, reach // 2)))  # keeps H >= 1
        values["kernel"].append(k)
        values["stride"].append(s)
        values["dilation"].append(d)
        values["padding"].append(p)
        values["size"].append(reach + 1 - 2 * p)
    return {name: tuple(v) for name, v in values.items()}


@st.composite
def layers(draw: st.DrawFn, dtype: str) -> LayerGeometry:
    """A random valid layer: 1-D/2-D/3-D, batch, stride, padding, dilation, groups (incl.
    depthwise), rectangular sizes; passed through resolve_geometry as the CLI would."""
    ndim = draw(st.integers(1, 3))
    shape = draw(axes(ndim))
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    depthwise = groups > 1 and draw(st.booleans())
    per_group_in = 1 if depthwise else draw(st.integers(1, 3))
    per_group_out = draw(st.integers(1, 3))
    channels, filters = groups * per_group_in, groups * per_group_out
    kernel = (filters, per_group_in, *shape["kernel"])
    short_kernel = draw(st.booleans())  # Fxk..., the depth taken from --in and --groups

    def text(values: tuple[int, ...]) -> str | tuple[int, ...]:
        # The same values as a CLI string ("2x1", or "2" when all equal) or as a tuple.
        if draw(st.booleans()):
            return values
        return str(values[0]) if len(set(values)) == 1 else "x".join(map(str, values))

    geometry = resolve_geometry(
        (channels, *shape["size"]),
        (kernel[0], *kernel[2:]) if short_kernel else kernel,
        batch=draw(st.integers(1, 3)),
        stride=text(shape["stride"]),
        padding=text(shape["padding"]),
        dilation=text(shape["dilation"]),
        groups=groups,
        dtype=dtype,
    )
    assume(coordinates(geometry) <= MAX_COORDINATES)
    return geometry


seeds = st.integers(0, 2**32 - 1)

# Magnitudes of x, w, b and dy, each on its own: mostly 1, sometimes far from it, because a step
# or tolerance that only works when every term has the same size is a false alarm waiting to happen.
magnitudes = st.fixed_dictionaries(
    {name: st.sampled_from([1.0, 1.0, 1.0, 1.0, 1e-6, 1e-3, 1e3, 1e6]) for name in TENSOR_NAMES}
)


@dataclass(frozen=True)
class InjectedError:
    """Which coordinate of which gradient is made wrong, and by how much of the tensor's scale."""

    gradient: str  # dX, dK or db
    flat_index: int
    relative: float  # signed


class OneCoordinateWrong(OneCoordinateOff):
    """The reference layer with `error` injected. The reference, not the zoo's hand-written layer:
    the README's reliability numbers are a measurement of convgrad on its own layer."""

    def __init__(self, error: InjectedError) -> None:
        super().__init__(error.gradient, error.flat_index, error.relative, base=ReferenceLayer())


@st.composite
def injected_errors(draw: st.DrawFn, geometry: LayerGeometry) -> InjectedError:
    gradient = draw(st.sampled_from(["dX", "dK", "db"]))
    shape = {"dX": geometry.x_shape, "dK": geometry.w_shape, "db": geometry.b_shape}[gradient]
    sign = draw(st.sampled_from([-1.0, 1.0]))
    return InjectedError(
        gradient=gradient,
        flat_index=draw(st.integers(0, math.prod(shape) - 1)),
        relative=sign * INJECTED_ERROR[geometry.dtype],
    )


def false_alarm(case: CaseReport) -> str | None:
    """Why a check of a correct layer failed (a false alarm), or None if it passed."""
    if case.passed:
        return None
    return "; ".join(f"{t.name}: {t.reason}" for t in case.failing) or case.reason or "failed"


def missed_bug(case: CaseReport, error: InjectedError) -> str | None:
    """Why the check of a layer with `error` did not catch exactly that error, or None if it did."""
    failing = list(dict.fromkeys(t.name for t in case.failing))  # its two rows below float64 count once
    if failing != [error.gradient]:
        return f"expected only {error.gradient} to fail, got {failing or 'a pass'}"
    return None


def methods_disagreeing(geometry: LayerGeometry, seed: int, scale: dict[str, float] | None = None) -> list[str]:
    """Methods whose numerical gradients differ from the dense ones beyond the tolerance.

    THE PLACE WHERE "coloured and dense agree" IS ASSERTED. Only methods that claim every
    coordinate exactly (coloured) are compared; sampling and projections check less by design.
    """
    exact_alternatives = [m for m in METHODS if m == "coloured"]
    if not exact_alternatives:
        return []
    dense = check_layer(geometry, seed=seed, scale=scale, method="dense")
    disagreeing = []
    for method in exact_alternatives:
        other = check_layer(geometry, seed=seed, scale=scale, method=method)
        for name in ("dX", "dK", "db"):
            a, b = dense.tensor(name).numerical, other.tensor(name).numerical
            if a is None or b is None:
                disagreeing.append(f"{method} {name} (not computed)")
                continue
            scale = float(np.max(np.abs(a), initial=0.0))
            if np.max(np.abs(a - b), initial=0.0) > dense.tolerances.rtol * scale:
                disagreeing.append(f"{method} {name}")
    return disagreeing
