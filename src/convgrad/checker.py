"""One gradient check of one layer: random tensors, analytical vs numerical, a `CaseReport`.

spec (LayerGeometry) -> random x, w, b, dy -> the implementation's forward and backward ->
numerical gradients -> comparisons -> report. Nothing here prints.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Callable, Mapping

import numpy as np

from convgrad import reference
from convgrad.comparison import compare, scale_floor
from convgrad.diagnosis import diagnose
from convgrad.errors import SettingError
from convgrad.finite_differences import NumericalGradient, Progress
from convgrad.geometry import LayerGeometry
from convgrad.implementation import GRADIENT_NAMES, GuardedLayer, ImplementationFailure, ReferenceLayer
from convgrad.locate import locate
from convgrad.methods import DEFAULT_SAMPLES, METHODS, validate_method
from convgrad.numerical import numerical_gradient
from convgrad.projection import compare_projections
from convgrad.report import CaseReport, TensorComparison
from convgrad.tolerances import Tolerances, perturbation_scale, tolerances_for

__all__ = ["check_layer", "random_tensors", "METHODS"]

TENSOR_NAMES = ("x", "w", "b", "dy")  # the random tensors of a check, in the order drawn

# Called once per gradient tensor (and again for a dense fallback) with a description and the
# number of forward calls planned; returns the callback that advances it.
ProgressFactory = Callable[[str, int], Progress]


def random_tensors(
    geometry: LayerGeometry, seed: int, scale: Mapping[str, float] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """x, w, b and the upstream gradient dy, standard normal in the layer's dtype.

    `scale` multiplies any of them, e.g. {"x": 1e6, "dy": 1e-6}, to test extreme magnitudes;
    the numbers drawn from the seed are the same whatever the scale (0 gives all zeros).
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:  # NumPy would raise a ValueError
        raise SettingError(f"--seed {seed!r} must be a whole number of 0 or more, like 0 or 42")
    scale = dict(scale or {})
    unknown = set(scale) - set(TENSOR_NAMES)
    if unknown:
        raise SettingError(f"scale names {sorted(unknown)}; use {', '.join(TENSOR_NAMES)}")
    if not all(np.isfinite(v) for v in scale.values()):
        raise SettingError(f"scale {scale} must hold finite numbers")
    rng = np.random.default_rng(seed)
    dtype = np.dtype(geometry.dtype)
    x = rng.standard_normal(geometry.x_shape).astype(dtype)
    w = rng.standard_normal(geometry.w_shape).astype(dtype)
    b = rng.standard_normal(geometry.b_shape).astype(dtype)
    dy = rng.standard_normal(geometry.y_shape).astype(dtype)
    if scale:
        x, w, b, dy = (
            (t.astype(np.float64) * scale.get(n, 1.0)).astype(dtype) for n, t in zip(TENSOR_NAMES, (x, w, b, dy))
        )
    return x, w, b, dy


def check_layer(
    geometry: LayerGeometry,
    layer: Any = None,
    *,
    seed: int = 0,
    tolerances: Tolerances | None = None,
    name: str | None = None,
    implementation_name: str | None = None,
    progress: ProgressFactory | None = None,
    forward_check: bool = True,
    scale: Mapping[str, float] | None = None,
    method: str = "auto",
    samples: int = DEFAULT_SAMPLES,
) -> CaseReport:
    """Check `layer` (default: the reference layer) on `geometry`: dX, dK and db by `method`
    (every coordinate unless sample or projection, see methods.py).

    With `forward_check` (the default) the output is also compared with the reference forward (row
    O), so a backward that is the exact gradient of a wrong forward cannot pass. `scale` multiplies
    the random x, w, b or dy (see `random_tensors`).
    """
    validate_method(method, samples)
    start = time.perf_counter()
    layer = ReferenceLayer() if layer is None else layer
    tolerances = tolerances or tolerances_for(geometry.dtype)
    guard = GuardedLayer(layer, geometry)
    x, w, b, dy = random_tensors(geometry, seed, scale)
    tensors: list[TensorComparison] = []
    reason = None

    def finish() -> CaseReport:
        # Where and why are worked out from the report's own numbers, for failing tensors only.
        located = tuple(replace(t, location=locate(t, geometry)) if not t.passed else t for t in tensors)
        return CaseReport(
            name=name or "convgrad check",
            geometry=geometry,
            implementation=implementation_name or getattr(layer, "name", type(layer).__name__),
            seed=seed,
            tolerances=tolerances,
            tensors=located,
            elapsed_s=time.perf_counter() - start,
            forward_calls=guard.forward_calls,
            warnings=tuple(guard.warnings),
            reason=reason,
            diagnoses=diagnose(geometry, located, (x, w, b, dy)),
            method=method,
            samples=samples if method in ("sample", "projection") else None,
            forward_check=forward_check,
        )

    expected = {"dX": geometry.x_shape, "dK": geometry.w_shape, "db": geometry.b_shape}
    try:
        y = guard.forward(x, w, b)
    except ImplementationFailure as failure:
        reason = str(failure)
        tensors.append(_not_checked("O", geometry.y_shape, tolerances.rtol, reason))
        tensors.extend(_not_checked(n, expected[n], tolerances.rtol, "not checked: forward failed") for n in GRADIENT_NAMES)
        return finish()
    if forward_check:
        tensors.append(_check_output(y, x, w, b, geometry, tolerances.rtol))

    try:
        gradients, problems = guard.backward(dy, x, w, b)
    except ImplementationFailure as failure:
        reason = str(failure)
        tensors.extend(_not_checked(n, expected[n], tolerances.rtol, reason) for n in GRADIENT_NAMES)
        return finish()

    for gradient_name, analytical in zip(GRADIENT_NAMES, gradients):
        if analytical is None:
            problem = problems[gradient_name]
            tensors.append(
                _not_checked(gradient_name, expected[gradient_name], tolerances.rtol, str(problem), problem.shape)
            )
            continue
        step = tolerances.step_for(perturbation_scale(gradient_name, (x, w, b), y))
        floor = scale_floor(gradient_name, x, w, dy)
        try:
            numerical = numerical_gradient(
                method, guard.forward, (x, w, b), gradient_name, dy, step, geometry,
                analytical=analytical, samples=samples, seed=seed, tolerance=tolerances.rtol,
                floor=floor, progress=progress,
            )
        except ImplementationFailure as failure:
            message = f"while computing finite differences for {gradient_name}, {failure}"
            tensors.append(_not_checked(gradient_name, expected[gradient_name], tolerances.rtol, message, analytical.shape))
            continue
        if numerical.projections is not None:
            tensors.append(compare_projections(gradient_name, analytical, numerical, tolerances.rtol))
            continue
        tensors.append(
            compare(
                gradient_name,
                analytical,
                numerical.values,
                tolerances.rtol,
                method=numerical.method,
                forward_calls=numerical.forward_calls,
                step=numerical.step,
                note=numerical.note,
                floor=floor,
            )
        )
    return finish()


def _check_output(
    y: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray, geometry: LayerGeometry, rtol: float
) -> TensorComparison:
    """The implementation's output against the reference convolution, computed in float64."""
    expected = reference.forward(
        x.astype(np.float64),
        w.astype(np.float64),
        b.astype(np.float64),
        stride=geometry.stride,
        padding=geometry.padding,
        dilation=geometry.dilation,
        groups=geometry.groups,
    )
    return compare("O", y, expected, rtol, method="reference forward")


def _not_checked(
    name: str,
    expected_shape: tuple[int, ...],
    tolerance: float,
    reason: str,
    shape: tuple[int, ...] | None = None,
) -> TensorComparison:
    return TensorComparison(
        name=name,
        expected_shape=tuple(expected_shape),
        shape=shape,
        tolerance=tolerance,
        passed=False,
        method="none",
        total=int(np.prod(expected_shape)),
        reason=reason,
    )
