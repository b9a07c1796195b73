"""A suite's pairs of settings within one layer's own domain, with cases added where it has none.

The shipped suite covers every pair of settings of every conv layer; a layer that cannot run some
of its cases (declared limits, `supports`, `Unsupported` at run time) loses the cases, and with
them pairs it does support: a layer that takes 'valid' and 'same' padding only, no dilation and
no groups, ran 5 of 44 cases, and none put 'same' padding on a non-square input. For a suite that
asks for it (`domain_pairs = true`), this finds every pair of settings the layer accepts
(covering.py), and checks added cases ("domain 1", ...) until each is covered; a case the layer
turns down at run time is left out and the pairs are worked out again, ten rounds at most.
"""

from __future__ import annotations

import functools

from dataclasses import replace
from typing import Optional

from convgrad.covering import FACTORS, Pair, domain_cover, levels_of, pairs_of, required_pairs
from convgrad.geometry import LayerGeometry
from convgrad.adapters.protocol import Implementation
from convgrad.numerics.gradient import ProgressFactory
from convgrad.options import CheckOptions
from convgrad.report import CaseReport, DomainPairs, SuiteReport
from convgrad.run.suite import run_suite
from convgrad.suite import SuiteCase

__all__ = ["cover_domain", "ROUNDS"]

# Rounds of added cases: a layer that turns some down at run time gets others in the next round,
# until every pair it runs is covered or this many rounds have passed.
ROUNDS = 10


def cover_domain(
    report: SuiteReport, implementation: Implementation, options: CheckOptions,
    progress: Optional[ProgressFactory] = None, *, jobs: int = 1, fail_fast: bool = False, share_out: bool = False,
) -> SuiteReport:
    """`report` with the cases that cover the rest of the layer's domain, and how it is covered;
    with `fail_fast`, no added case starts once one has failed (`not_run` counts the round's rest)."""
    small = [c for c in report.cases if levels_of(c.geometry) is not None]
    checked = [c.geometry for c in small if c.skipped is None]
    refused: list[LayerGeometry] = [c.geometry for c in small if c.skipped is not None]
    every_pair = required_pairs(FACTORS)
    if every_pair <= _pairs(checked):  # the cases that ran hold every pair any layer has
        return SuiteReport(report.cases, DomainPairs(len(every_pair), len(every_pair), len(checked), 0, 0))
    # Each round asks again about the same 19008 layers: the answers are kept.
    accepts = functools.lru_cache(maxsize=None)(lambda g: implementation.unsupported(g) is None)
    added: list[CaseReport] = []
    turned_down = not_run = 0
    for _ in range(ROUNDS):
        cover = domain_cover(accepts, checked, refused)
        if not cover.added:
            break
        cases = [SuiteCase(f"domain {len(added) + n + 1}", geometry) for n, geometry in enumerate(cover.added)]
        run = run_suite(cases, implementation, options, progress, jobs=jobs, fail_fast=fail_fast, share_out=share_out)
        for case in run.cases:
            if case.skipped is None:  # numbered as reported, whichever were turned down before it
                added.append(replace(case, name=f"domain {len(added) + 1}"))
                checked.append(case.geometry)
            else:  # the layer turned it down at run time: its pairs are worked out again without it
                refused.append(case.geometry)
                turned_down += 1
        if run.not_run:
            not_run = run.not_run
            break
    final = domain_cover(accepts, checked, refused)
    return SuiteReport(
        report.cases + tuple(added),
        DomainPairs(len(final.pairs), len(final.covered), len(checked), added=len(added), refused=turned_down),
        not_run=report.not_run + not_run,
    )


def _pairs(geometries: list[LayerGeometry]) -> set[Pair]:
    return {pair for g in geometries if (levels := levels_of(g)) is not None for pair in pairs_of(levels, FACTORS)}
