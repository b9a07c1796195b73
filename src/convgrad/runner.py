"""Run a suite of cases against one implementation: skipped, checked, collected in a SuiteReport.

A case the implementation cannot express (a keyword it does not accept, a rank it does not
handle) is skipped with that reason, never run and never counted as a pass.
"""

from __future__ import annotations

from typing import Optional, Sequence

from convgrad.adapters import Adapter
from convgrad.checker import ProgressFactory
from convgrad.methods import DEFAULT_SAMPLES, validate_method
from convgrad.isolation import DEFAULT_TIMEOUT_S, check_layer_isolated
from convgrad.report import CaseReport, SuiteReport
from convgrad.suite import SuiteCase
from convgrad.tolerances import tolerances_for

__all__ = ["run_suite", "run_case"]


def run_suite(
    cases: Sequence[SuiteCase],
    implementation: Adapter,
    *,
    seed: int = 0,
    relative_step: Optional[float] = None,
    rtol: Optional[float] = None,
    forward_check: bool = True,
    progress: Optional[ProgressFactory] = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    method: str = "auto",
    samples: int = DEFAULT_SAMPLES,
) -> SuiteReport:
    """Every case in order. Settings are validated for all cases before the first one runs."""
    validate_method(method, samples)
    for case in cases:
        tolerances_for(case.geometry.dtype, relative_step=relative_step, rtol=rtol)
    reports = tuple(
        run_case(
            case, implementation, seed=seed, relative_step=relative_step, rtol=rtol,
            forward_check=forward_check, progress=progress, timeout=timeout,
            method=method, samples=samples,
        )
        for case in cases
    )
    return SuiteReport(cases=reports)


def run_case(
    case: SuiteCase,
    implementation: Adapter,
    *,
    seed: int = 0,
    relative_step: Optional[float] = None,
    rtol: Optional[float] = None,
    forward_check: bool = True,
    progress: Optional[ProgressFactory] = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    method: str = "auto",
    samples: int = DEFAULT_SAMPLES,
) -> CaseReport:
    """One case: skipped if the implementation cannot express it, else checked in a child process
    so that a hanging or crashing implementation fails this case, not the run."""
    tolerances = tolerances_for(case.geometry.dtype, relative_step=relative_step, rtol=rtol)
    skipped = implementation.unsupported(case.geometry)
    if skipped is not None:
        return CaseReport(
            name=case.name,
            geometry=case.geometry,
            implementation=implementation.name,
            seed=seed,
            tolerances=tolerances,
            tensors=(),
            elapsed_s=0.0,
            forward_calls=0,
            skipped=skipped,
            method=method,
            samples=samples if method in ("sample", "projection") else None,
            forward_check=forward_check,
        )
    labelled = None
    if progress is not None:
        labelled = lambda description, total: progress(f"{case.name}: {description}", total)  # noqa: E731
    return check_layer_isolated(
        case.geometry,
        implementation,
        timeout=timeout,
        seed=seed,
        tolerances=tolerances,
        name=case.name,
        implementation_name=implementation.name,
        progress=labelled,
        forward_check=forward_check,
        method=method,
        samples=samples,
    )
