"""Run a suite of cases against one implementation: skipped, checked, collected in a SuiteReport.

A case the implementation cannot express (a keyword it does not accept, a rank it does not
handle) is skipped with that reason, never run and never counted as a pass.
"""

from __future__ import annotations

from typing import Optional, Sequence

from convgrad.adapters import Adapter
from convgrad.checker import ProgressFactory
from convgrad.isolation import check_layer_isolated
from convgrad.options import CheckOptions
from convgrad.report import CaseReport, SuiteReport
from convgrad.suite import SuiteCase

__all__ = ["run_suite", "run_case"]


def run_suite(
    cases: Sequence[SuiteCase],
    implementation: Adapter,
    options: CheckOptions,
    progress: Optional[ProgressFactory] = None,
) -> SuiteReport:
    """Every case in order. Tolerances are validated for every case before the first one runs."""
    for case in cases:
        options.tolerances(case.geometry.dtype)
    return SuiteReport(cases=tuple(run_case(case, implementation, options, progress) for case in cases))


def run_case(
    case: SuiteCase,
    implementation: Adapter,
    options: CheckOptions,
    progress: Optional[ProgressFactory] = None,
) -> CaseReport:
    """One case: skipped if the implementation cannot express it, else checked in a child process
    so that a hanging or crashing implementation fails this case, not the run."""
    keywords = options.check_keywords(case.geometry.dtype)
    skipped = implementation.unsupported(case.geometry)
    if skipped is not None:
        sampling = options.method in ("sample", "projection")
        return CaseReport(
            name=case.name,
            geometry=case.geometry,
            implementation=implementation.name,
            seed=options.seed,
            tolerances=keywords["tolerances"],
            tensors=(),
            elapsed_s=0.0,
            forward_calls=0,
            skipped=skipped,
            method=options.method,
            samples=options.samples if sampling else None,
            forward_check=options.forward_check,
        )
    labelled = None
    if progress is not None:
        labelled = lambda description, total: progress(f"{case.name}: {description}", total)  # noqa: E731
    return check_layer_isolated(
        case.geometry,
        implementation,
        timeout=options.timeout,
        name=case.name,
        implementation_name=implementation.name,
        progress=labelled,
        **keywords,
    )
