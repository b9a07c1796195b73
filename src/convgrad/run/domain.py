"""A suite's pairs of settings within one layer's own domain, with cases added where it has none.

The shipped suite covers every pair of settings of every conv layer; a layer that cannot run some
of its cases (declared limits, `supports`, `Unsupported` at run time) loses the cases, and with
them pairs it does support: a layer that takes 'valid' and 'same' padding only, no dilation and
no groups, ran 5 of 44 cases, and none put 'same' padding on a non-square input. For a suite that
asks for it (`domain_pairs = true`), this finds every pair of settings the layer accepts
(covering.py), and checks added cases ("domain 1", ...) until each is covered; a case the layer
turns down at run time is left out and the pairs are worked out again, a few rounds at most.
"""

from __future__ import annotations

from typing import Optional

from convgrad.covering import FACTORS, domain_cover, levels_of, required_pairs
from convgrad.geometry import LayerGeometry
from convgrad.impl.protocol import Implementation
from convgrad.numerics.gradient import ProgressFactory
from convgrad.options import CheckOptions
from convgrad.report import CaseReport, DomainPairs, SuiteReport
from convgrad.run.suite import run_suite
from convgrad.suite import SuiteCase

__all__ = ["cover_domain", "ROUNDS"]

ROUNDS = 3  # added cases the layer may turn down at run time before the pairs are left uncovered


def cover_domain(
    report: SuiteReport, implementation: Implementation, options: CheckOptions,
    progress: Optional[ProgressFactory] = None, *, jobs: int = 1, fail_fast: bool = False,
) -> SuiteReport:
    """`report` with the cases that cover the rest of the layer's domain, and how it is covered;
    with `fail_fast`, no added case starts once one has failed."""
    small = [c for c in report.cases if levels_of(c.geometry) is not None]
    if not any(c.skipped for c in small):  # every case ran: the suite's pairs are the full domain
        pairs = len(required_pairs(FACTORS))
        return SuiteReport(report.cases, DomainPairs(pairs, pairs, len(small), added=0, refused=0))
    checked = [c.geometry for c in small if c.skipped is None]
    refused: list[LayerGeometry] = [c.geometry for c in small if c.skipped is not None]
    added: list[CaseReport] = []
    turned_down = 0
    for _ in range(ROUNDS):
        cover = domain_cover(lambda g: implementation.unsupported(g) is None, checked, refused)
        if not cover.added:
            break
        first = len(added) + turned_down + 1
        cases = [SuiteCase(f"domain {first + n}", geometry) for n, geometry in enumerate(cover.added)]
        run = run_suite(cases, implementation, options, progress, jobs=jobs, fail_fast=fail_fast)
        for case in run.cases:
            if case.skipped is None:
                added.append(case)
                checked.append(case.geometry)
            else:  # the layer turned it down at run time: its pairs are worked out again without it
                refused.append(case.geometry)
                turned_down += 1
        if run.not_run:
            break
    final = domain_cover(lambda g: implementation.unsupported(g) is None, checked, refused)
    by = sum(1 for g in checked if levels_of(g) is not None)
    return SuiteReport(
        report.cases + tuple(added),
        DomainPairs(len(final.pairs), len(final.covered), by, added=len(added), refused=turned_down),
    )
