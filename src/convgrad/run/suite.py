"""Running a suite of cases against one implementation, each in its own child process.

A case the implementation cannot express (a keyword it does not accept, a rank it does not
handle) is skipped with that reason by the pipeline, never counted as a pass.
"""

from __future__ import annotations

from typing import Optional, Sequence

from convgrad.impl.protocol import Implementation
from convgrad.numerics.gradient import Progress, ProgressFactory
from convgrad.options import CheckOptions
from convgrad.report import SuiteReport
from convgrad.run.isolation import run_case_isolated
from convgrad.suite import SuiteCase

__all__ = ["run_suite"]


def run_suite(
    cases: Sequence[SuiteCase],
    implementation: Implementation,
    options: CheckOptions,
    progress: Optional[ProgressFactory] = None,
) -> SuiteReport:
    """Every case in order. The tolerances of every case's dtype are settled before the first runs,
    so a step too small for one of them is refused before any time is spent."""
    for case in cases:
        options.tolerances(case.geometry.dtype)
    reports = []
    for case in cases:
        labelled = None
        if progress is not None:
            labelled = _labelled(progress, case.name)
        reports.append(run_case_isolated(case.geometry, implementation, options, name=case.name, progress=labelled))
    return SuiteReport(cases=tuple(reports))


def _labelled(progress: ProgressFactory, case_name: str) -> ProgressFactory:
    def factory(description: str, total: int) -> Progress:
        return progress(f"{case_name}: {description}", total)

    return factory
