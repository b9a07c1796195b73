"""A shorthand for the tests: run one case of a layer object through the pipeline."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from convgrad import reference
from convgrad.compare import compare_bounded
from convgrad.geometry import LayerGeometry
from convgrad.adapters.loading import as_implementation
from convgrad.adapters.protocol import ReferenceLayer
from convgrad.numerics.gradient import ProgressFactory
from convgrad.options import CheckOptions
from convgrad.numerics.rounding import rounding_bounds
from convgrad.report import CaseReport, TensorComparison
from convgrad.run.case import run_case
from convgrad.run.isolation import run_case_isolated


def check_layer(
    geometry: LayerGeometry,
    layer: Any = None,
    *,
    name: Optional[str] = None,
    progress: Optional[ProgressFactory] = None,
    isolated: bool = False,
    **options: Any,
) -> CaseReport:
    """`layer` (default: the reference layer) on `geometry`, with CheckOptions(**options);
    in a child process with `isolated`."""
    implementation = as_implementation(ReferenceLayer() if layer is None else layer)
    run = run_case_isolated if isolated else run_case
    return run(geometry, implementation, CheckOptions(**options), name=name, progress=progress)


def against_bounds(layer: Any, geometry: LayerGeometry, tensors: Sequence[np.ndarray]) -> list[TensorComparison]:
    """Every coordinate of the layer's O, dX, dK and db at `tensors` (x, w, b, dy) against the
    float64 reference and the rounding bound (no pipeline: just the numbers)."""
    x, w, b, dy = tensors
    bounds = rounding_bounds(x, w, b, dy, geometry)
    assert bounds is not None
    settings = geometry.conv_settings()
    wide = [t.astype(np.float64) for t in (x, w, b, dy)]
    expected = dict(zip(("dX", "dK", "db"), reference.backward(wide[3], *wide[:3], **settings)))
    expected["O"] = reference.forward(*wide[:3], **settings)
    got = dict(zip(("dX", "dK", "db"), layer.backward(dy, x, w, b, **settings)))
    got["O"] = layer.forward(x, w, b, **settings)
    return [compare_bounded(name, values, expected[name], bounds, method="float64 reference") for name, values in got.items()]


def skipped_for_uneven_padding(case: dict) -> bool:
    """A suite case (JSON) skipped because it pads more on one side and the layer takes one padding
    per axis: the standard suite's uneven case, for every layer that does not declare pairs."""
    return case["skipped"] is not None and "declare uneven_padding = true" in case["skipped"]
