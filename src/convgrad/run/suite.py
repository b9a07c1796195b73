"""Running a suite of cases against one implementation, each case in a child process of its own,
`jobs` of them at a time.

A case the implementation cannot express (a keyword it does not accept, a rank it does not
handle) is skipped with that reason by the pipeline, never counted as a pass.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence

from convgrad.adapters.protocol import Implementation
from convgrad.numerics.gradient import Progress, ProgressFactory
from convgrad.options import CheckOptions
from convgrad.report import SuiteReport
from convgrad.run.isolation import IsolatedCase, run_cases_isolated
from convgrad.suite import SuiteCase

__all__ = ["run_suite", "default_jobs"]


def default_jobs() -> int:
    """One case per core this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def run_suite(
    cases: Sequence[SuiteCase],
    implementation: Implementation,
    options: CheckOptions,
    progress: Optional[ProgressFactory] = None,
    *,
    jobs: int = 1,
    fail_fast: bool = False,
    share_out: bool = False,
) -> SuiteReport:
    """Every case, `jobs` at a time; the reports in the suite's order. The tolerances of every
    case's dtype are settled before the first runs, so a step too small for one of them is
    refused before any time is spent. `fail_fast`: no case starts once one has failed; the
    report counts the cases not run. `share_out`: jobs the cases leave idle share out each case's
    coloured calls."""
    for case in cases:
        options.tolerances(case.geometry.dtype)
    isolated = [
        IsolatedCase(case.geometry, case.name, None if progress is None else _labelled(progress, case.name))
        for case in cases
    ]
    ran = run_cases_isolated(isolated, implementation, options, jobs=jobs, fail_fast=fail_fast, share_out=share_out)
    return SuiteReport(cases=tuple(ran), not_run=len(cases) - len(ran))


def _labelled(progress: ProgressFactory, case_name: str) -> ProgressFactory:
    def factory(description: str, total: int) -> Progress:
        return progress(f"{case_name}: {description}", total)

    return factory
