"""The report as plain JSON values for machines. Field names here are a stable interface."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any, Optional

from convgrad import __version__
from convgrad.explain.derivation import Derivation, KernelGrid, WorkedCoordinate
from convgrad.findings.diagnosis import Diagnosis
from convgrad.findings.locate import Location
from convgrad.numerics.plan import DifferencePlan
from convgrad.report import STATUSES, CallCheck, CaseReport, DomainPairs, Precision, SuiteReport, TensorComparison

if TYPE_CHECKING:  # types only, not a cycle: a check's --json need not load the fuzz loop and its live display
    from convgrad.render.fuzz import Reproduction
    from convgrad.run.fuzz import FuzzResult

__all__ = [
    "suite_to_dict", "case_to_dict", "tensor_to_dict", "precision_to_dict", "call_to_dict", "render_json", "fuzz_to_json",
]


def _number(value: Optional[float]) -> Optional[float]:
    """JSON has no NaN or Infinity: those become null."""
    if value is None or not math.isfinite(value):
        return None
    return value


def tensor_to_dict(tensor: TensorComparison) -> dict[str, Any]:
    worst = tensor.worst[0] if tensor.worst else None
    result: dict[str, Any] = {
        "name": tensor.name,
        # "dX wrt w" (a derivative of the backward), "jvp x" (forward mode), else the name (or "dK vs float64 reference")
        "label": tensor.label,
        "wrt": tensor.wrt,  # what a derivative row is taken with respect to (x, w, b, dy); null for the others
        "together": tensor.together,  # dX+dK+db wrt ... (every cotangent at once), jvp x+w+b (every tangent)
        "shape": list(tensor.shape) if tensor.shape is not None else None,
        "expected_shape": list(tensor.expected_shape),
        "max_abs_error": _number(tensor.max_abs_error),
        "max_rel_error": _number(tensor.max_rel_error),
        "tolerance": tensor.tolerance,
        "checked": tensor.checked,
        "total": tensor.total,
        "mismatches": tensor.mismatches,
        "passed": tensor.passed,
        "status": tensor.status,
        "worst_index": list(worst.index) if worst else None,
        "analytical_at_worst": _number(worst.analytical) if worst else None,
        "numerical_at_worst": _number(worst.numerical) if worst else None,
        "scale": _number(tensor.scale),
        "method": tensor.method,
        "forward_calls": tensor.forward_calls,
        "step": _number(tensor.step),
        # Always present, null when unset, so consumers need no key checks.
        "reason": tensor.reason,
        "note": tensor.note,
        "absent": tensor.absent,  # e.g. "no bias": the layer has no such tensor, so it was not checked
        "location": location_to_dict(tensor.location) if tensor.location is not None else None,
        "compared_with": tensor.compared_with,  # "finite differences", "float64 reference" or "nothing"
        "precision": precision_to_dict(tensor.precision) if tensor.precision is not None else None,
        "call": tensor.call,  # in a later check, the call that returned it ("backward of layer A"); else null
        "plan": plan_to_dict(tensor.plan) if tensor.plan is not None else None,  # the differences, for gradients
    }
    return result


def plan_to_dict(plan: DifferencePlan) -> dict[str, Any]:
    """How a gradient's finite differences were planned: method, differences, step, and why."""
    return {
        "method": plan.method,  # coloured, dense, sample, projection or reference (a large case)
        "differences": plan.differences,  # central, one-sided, or auto (one-sided once shown linear)
        "step": plan.step,
        "curved_step": plan.curved_step,  # the step where the forward may be curved and is; else null
        "samples": plan.samples if plan.method in ("sample", "projection", "reference") else None,
        "seed": plan.seed,
        "why": plan.why,  # why auto chose the method when it is not the usual one, else null
    }


def precision_to_dict(precision: Precision) -> dict[str, Any]:
    """A row judged by the rounding model: each coordinate within lam * sqrt(n) * u * B."""
    return {
        "unit_roundoff": precision.unit_roundoff,
        "lambda": precision.lam,
        "largest_error_over_bound": _number(precision.largest_ratio),
        "effective_bits": precision.bits,
        "dtype_bits": precision.dtype_bits,
        "likely_cause": precision.cause,
    }


def location_to_dict(location: Location) -> dict[str, Any]:
    """Where a failing tensor is wrong (the error map itself is left to the table and --svg).

    Every key is always present; what does not apply to this tensor is null.
    """
    has_region = location.region is not None
    return {
        "wrong": location.wrong,
        "checked": location.checked,
        "fraction": location.fraction,
        "index_label": location.channel_label,  # "channels" (dX, O) or "kernels" (dK, db)
        "indices": list(location.channels),
        "samples": list(location.samples) if location.batch > 1 else None,
        "region": location.region,
        "border_reach": list(location.reach or ()) if has_region else None,
        "border_wrong": location.border_wrong if has_region else None,
        "border_total": location.border_total if has_region else None,
        "interior_wrong": location.interior_wrong if has_region else None,
        "interior_total": location.interior_total if has_region else None,
        "stride_phases": [list(p) for p in location.phases] if location.phases is not None else None,
        "stride_phase_count": location.phase_count if location.phases is not None else None,
    }


def diagnoses_to_list(diagnoses: tuple[Diagnosis, ...]) -> list[dict[str, str]]:
    return [{"tensor": d.tensor, "kind": d.kind, "message": d.message, "short": d.short} for d in diagnoses]


def call_to_dict(check: CallCheck) -> dict[str, Any]:
    """One later call of the protocol; `reason` is null when it passed."""
    return {
        "name": check.name,
        "part": check.part,  # "call protocol" or "network scenario"
        "called_with": check.called_with,
        "compared_with": check.compared_with,
        "passed": check.passed,
        "status": check.status,
        "reason": check.reason,
        "forward_calls": check.forward_calls,
        "tensors": [tensor_to_dict(t) for t in check.tensors],
    }


def case_to_dict(case: CaseReport) -> dict[str, Any]:
    result: dict[str, Any] = {
        "name": case.name,
        "passed": case.passed,
        "status": case.status,
        "elapsed_s": round(case.elapsed_s, 6),
        "implementation": case.implementation,
        "output_shape": list(case.output_shape),
        "settings": {
            **case.geometry.settings(),
            "seed": case.seed,
            "relative_step": case.tolerances.relative_step,
            "rtol": case.tolerances.rtol,
            "method": case.method,
            "samples": case.samples,
            "forward_check": case.forward_check,
            "order": case.order,  # 2: the derivatives of the backward were checked too
            "jvp": case.jvp,  # the forward-mode derivative was checked too
        },
        "forward_calls": case.forward_calls,
        "tensors": [tensor_to_dict(t) for t in case.tensors],
        # Below float64: dX, dK and db against the float64 reference (empty for float64).
        "reference_gradients": [tensor_to_dict(t) for t in case.reference_gradients],
        # --order 2: a row per derivative of the backward (dX wrt w, ...); --jvp: one per tensor moved (jvp x, ...).
        "derivatives": [tensor_to_dict(t) for t in case.derivatives],
        "warnings": list(case.warnings),
        "diagnosis": diagnoses_to_list(case.diagnoses),
        "calls": [call_to_dict(c) for c in case.calls],
        # Why it did not pass, in one line: each wrong tensor and its diagnosis; null for a pass.
        "reason": case.failure_summary or None,
        # The why as the groups show it (no coordinate counts or values); "" for a pass.
        "cause": case.cause,
        "skipped": case.skipped,
    }
    return result


def suite_to_dict(suite: SuiteReport) -> dict[str, Any]:
    return {
        "convgrad_version": __version__,
        "passed": suite.passed,
        "summary": {status: suite.count(status) for status in STATUSES},
        "cases": [case_to_dict(c) for c in suite.cases],
        # The cases by status and cause, in order of status precedence: one mistake is one group.
        "groups": [
            {"status": g.status, "cause": g.cause, "cases": [c.name for c in g.cases]} for g in suite.groups
        ],
        # For a suite with domain_pairs: the pairs of settings within the layer's own domain; else null.
        "domain_pairs": domain_to_dict(suite.domain) if suite.domain is not None else None,
        "not_run": suite.not_run,  # cases never started: --fail-fast stopped at the first failure
    }


def domain_to_dict(domain: DomainPairs) -> dict[str, Any]:
    return {
        "pairs": domain.pairs,  # pairs of factor levels some small 2-D case the layer accepts has
        "covered": domain.covered,  # of those, the pairs of the cases checked
        "cases": domain.cases,  # small 2-D cases checked, the suite's own and the added ones
        "added": domain.added,  # cases added for the layer's domain ("domain 1", ...)
        "refused": domain.refused,  # added cases the layer turned down at run time
    }


def _grid_to_dict(grid: KernelGrid) -> dict[str, Any]:
    return {"rows": grid.rows, "columns": grid.columns, "cells": [[list(cell) for cell in row] for row in grid.cells]}


def _worked_to_dict(worked: WorkedCoordinate) -> dict[str, Any]:
    return {
        "index": list(worked.index),
        "channel_in_group": worked.channel_in_group,
        "window": [list(span) for span in worked.window],
        "filters": [
            {
                "filter": f.filter,
                "depth_index": f.depth_index,
                "partial_sum": f.partial,
                "terms": [
                    {"tap": list(t.tap), "kernel_tap": list(t.kernel_tap), "position": list(t.position),
                     "dy_index": None if t.dy_index is None else list(t.dy_index), "dy": t.dy,
                     "kernel": t.kernel, "product": t.product, "kind": t.kind}
                    for t in f.terms
                ],
            }
            for f in worked.filters
        ],
        "sum": worked.total,
        "dx": worked.dx,
    }


def derivation_to_json(derivation: Derivation) -> str:
    """`convgrad explain --json`: the shapes at every step of dX, the worked coordinate, what the
    pictures show, and the proof."""
    d = derivation

    def shape(value: Optional[tuple[int, ...]]) -> Optional[list[int]]:
        return None if value is None else list(value)

    m = d.padded_map
    f0, c_in_group, c0, f_in_group = d.kernel_slice
    return json.dumps(
        {
            "convgrad_version": __version__,
            "settings": {**d.geometry.settings(), "seed": d.seed},
            "dx_steps": {
                "dy": shape(d.dy),
                "zero_inserted": shape(d.spread),
                "trailing_zeros": list(d.trailing_zeros),
                "pad": list(d.reach),
                "padded": shape(d.full),
                "kernels": shape(d.kernels),
                "rotated_and_swapped": shape(d.swapped),
                "dilated_extent": shape(d.dilated_extent),
                "dilated": shape(d.dilated),
                "correlated": shape(d.correlated),
                "cropped": shape(d.cropped),
            },
            "worked_coordinate": _worked_to_dict(d.worked),
            "kernel_grid": {"before": _grid_to_dict(d.grid_before), "after": _grid_to_dict(d.grid_after)},
            "rotation": {
                "kernel": [f0, c_in_group],
                "rotated": [c0, f_in_group],
                "before": d.kernel_before.tolist(),
                "after": d.kernel_after.tolist(),
            },
            "padded_dy_map": {
                "filter": m.channel,
                "axes": list(m.axes),
                "cut": list(m.cut),
                "size": list(m.size),
                "kinds": [list(row) for row in m.kinds],
                "taps": sorted(list(t) for t in m.taps),
            },
            "dk_coordinate": {
                "index": list(d.weight.index),
                "channel": d.weight.channel,
                "products": len(d.weight.terms),
                "sum": d.weight.total,
                "dk": d.weight.dk,
            },
            "border_coordinate": None if d.border is None else _worked_to_dict(d.border),
            "shortcut": None if d.shortcut is None else {
                "pad": [list(side) for side in d.shortcut.sides],
                "padded": list(d.shortcut.shape),
                "max_difference": d.shortcut.max_difference,
            },
            "formulas": [{"name": name, **formula.to_dict()} for name, formula in d.formulas.named()],
            "proof": [
                {"tensor": p.tensor, "max_abs_error": p.max_abs_error, "max_rel_error": p.max_rel_error,
                 "checked": p.checked, "forward_calls": p.forward_calls, "holds": p.holds}
                for p in d.proofs
            ],
            "tolerance": d.tolerance,
            "holds": d.holds,
        },
        indent=2,
    )


def render_json(suite: SuiteReport) -> str:
    return json.dumps(suite_to_dict(suite), indent=2)


def fuzz_to_json(result: FuzzResult, reproduction: Optional[Reproduction] = None) -> str:
    """`convgrad fuzz --json`: what was checked, skipped and covered, and the failure found.

    `failure` is null when no layer failed; otherwise it holds the first failing case and the
    shrunk one (as in a check's `cases`), the shrink's `steps`, `tries`, whether it was
    `complete` (the shrunk case is minimal) and if not, why (`incomplete_reason`), and the
    `command` and `toml` that reproduce the shrunk case.
    """
    failure = result.failure
    return json.dumps(
        {
            "convgrad_version": __version__,
            "passed": result.passed,
            "implementation": result.implementation,
            "seed": result.seed,
            "budget_s": result.options.budget_s,
            "dtypes": list(result.options.dtypes),
            "elapsed_s": round(result.elapsed_s, 6),
            "checked": result.checked,
            "skipped": result.skipped,
            "skip_reasons": [{"reason": reason, "count": count} for reason, count in result.skip_reasons],
            "coverage": dict(result.coverage.counts),
            "failure": None if failure is None else {
                "found_after": failure.found_after,
                "first": case_to_dict(failure.first),
                "shrunk": case_to_dict(failure.shrunk),
                "steps": failure.steps,
                "tries": failure.tries,
                "complete": failure.complete,
                "incomplete_reason": failure.incomplete,  # null when complete
                "command": reproduction.command if reproduction else None,
                "toml": reproduction.toml if reproduction else None,
            },
        },
        indent=2,
    )
