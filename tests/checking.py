"""A shorthand for the tests: run one case of a layer object through the pipeline."""

from __future__ import annotations

from typing import Any, Optional

from convgrad.geometry import LayerGeometry
from convgrad.impl.loading import as_implementation
from convgrad.impl.protocol import ReferenceLayer
from convgrad.numerics.gradient import ProgressFactory
from convgrad.options import CheckOptions
from convgrad.report import CaseReport
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
