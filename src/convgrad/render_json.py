"""The report as plain JSON values for machines. Field names here are a stable interface."""

from __future__ import annotations

import json
import math
from typing import Any, Optional

from convgrad import __version__
from convgrad.report import CaseReport, SuiteReport, TensorComparison

__all__ = ["suite_to_dict", "case_to_dict", "tensor_to_dict", "render_json"]


def _number(value: Optional[float]) -> Optional[float]:
    """JSON has no NaN or Infinity: those become null."""
    if value is None or not math.isfinite(value):
        return None
    return value


def tensor_to_dict(tensor: TensorComparison) -> dict[str, Any]:
    worst = tensor.worst[0] if tensor.worst else None
    result: dict[str, Any] = {
        "name": tensor.name,
        "shape": list(tensor.shape) if tensor.shape is not None else None,
        "expected_shape": list(tensor.expected_shape),
        "max_abs_error": _number(tensor.max_abs_error),
        "max_rel_error": _number(tensor.max_rel_error),
        "tolerance": tensor.tolerance,
        "checked": tensor.checked,
        "total": tensor.total,
        "mismatches": tensor.mismatches,
        "passed": tensor.passed,
        "worst_index": list(worst.index) if worst else None,
        "analytical_at_worst": _number(worst.analytical) if worst else None,
        "numerical_at_worst": _number(worst.numerical) if worst else None,
        "scale": _number(tensor.scale),
        "method": tensor.method,
        "forward_calls": tensor.forward_calls,
        "step": _number(tensor.step),
    }
    if tensor.reason is not None:
        result["reason"] = tensor.reason
    if tensor.note is not None:
        result["note"] = tensor.note
    return result


def case_to_dict(case: CaseReport) -> dict[str, Any]:
    result: dict[str, Any] = {
        "name": case.name,
        "passed": case.passed,
        "elapsed_s": round(case.elapsed_s, 6),
        "implementation": case.implementation,
        "output_shape": list(case.output_shape),
        "settings": {
            **case.geometry.settings(),
            "seed": case.seed,
            "relative_step": case.tolerances.relative_step,
            "rtol": case.tolerances.rtol,
        },
        "forward_calls": case.forward_calls,
        "tensors": [tensor_to_dict(t) for t in case.tensors],
        "warnings": list(case.warnings),
    }
    if case.reason is not None:
        result["reason"] = case.reason
    if case.skipped is not None:
        result["skipped"] = case.skipped
    return result


def suite_to_dict(suite: SuiteReport) -> dict[str, Any]:
    return {
        "convgrad_version": __version__,
        "passed": suite.passed,
        "summary": {status: suite.count(status) for status in ("passed", "failed", "skipped")},
        "cases": [case_to_dict(c) for c in suite.cases],
    }


def render_json(suite: SuiteReport) -> str:
    return json.dumps(suite_to_dict(suite), indent=2)
