"""convgrad inside your own test suite: `check` returns the report, `assert_conv_gradients` raises.

    from convgrad.testing import assert_conv_gradients
    import my_conv

    def test_my_conv_backward():
        assert_conv_gradients(my_conv, in_shape=(3, 20, 20), kernel_shape=(5, 3, 3, 3), stride=2)
"""

from __future__ import annotations

import io
from typing import Any, Optional, Sequence

from convgrad.geometry import AxisSpec, resolve_geometry
from convgrad.report import CaseReport

__all__ = ["check", "assert_conv_gradients"]


def check(
    impl: Any = "reference",
    *,
    in_shape: str | Sequence[int],
    kernel_shape: str | Sequence[int],
    batch: int = 1,
    stride: AxisSpec = 1,
    padding: AxisSpec = 0,
    dilation: AxisSpec = 1,
    groups: int = 1,
    dtype: str = "float64",
    seed: int = 0,
    rtol: Optional[float] = None,
    step: Optional[float] = None,
    forward_check: bool = True,
    layout: str = "nchw",
    weight_layout: str = "oihw",
    name: Optional[str] = None,
    method: str = "auto",
    samples: Optional[int] = None,
    timeout: Optional[float] = None,
) -> CaseReport:
    """Check one layer and return its CaseReport (see `convgrad check` for what is compared).

    `impl` is an --impl spec ("reference", "torch", "my_conv.py:Layer", ...) or any object with
    forward and backward: a module, an instance or a class taking no arguments. Bad input raises
    a ConvgradError; a wrong implementation gives a report with `passed` False. `method`,
    `samples` and `timeout` mean what --method, --samples and --timeout mean on the command line.
    """
    from convgrad.isolation import DEFAULT_TIMEOUT_S
    from convgrad.loading import as_adapter
    from convgrad.methods import DEFAULT_SAMPLES
    from convgrad.options import CheckOptions
    from convgrad.runner import run_case
    from convgrad.suite import SuiteCase

    options = CheckOptions(
        seed=seed, relative_step=step, rtol=rtol, method=method,
        samples=DEFAULT_SAMPLES if samples is None else samples, forward_check=forward_check,
        timeout=DEFAULT_TIMEOUT_S if timeout is None else timeout,
    )
    geometry = resolve_geometry(
        in_shape, kernel_shape, batch=batch, stride=stride, padding=padding, dilation=dilation,
        groups=groups, dtype=dtype,
    )
    implementation = as_adapter(impl, layout=layout, weight_layout=weight_layout)
    case = SuiteCase(name=name or f"check of {implementation.name}", geometry=geometry)
    return run_case(case, implementation, options)


def assert_conv_gradients(impl: Any = "reference", **options: Any) -> CaseReport:
    """Like `check`, but raise AssertionError unless every checked tensor passes.

    The message names the failing tensors (O, dX, dK, db) and holds the report's table as plain
    text. A case the implementation cannot express (a keyword it does not accept) is not a pass
    either: it raises with the reason.
    """
    report = check(impl, **options)
    if report.skipped is not None:
        raise AssertionError(f"convgrad could not check {report.implementation}: {report.skipped}")
    if not report.passed:
        failing = ", ".join(t.name for t in report.failing) or "the case"
        raise AssertionError(
            f"convgrad: {failing} of {report.implementation} "
            f"{'does' if len(report.failing) == 1 else 'do'} not match\n{_plain_text(report)}"
        )
    return report


def _plain_text(report: CaseReport, width: int = 100) -> str:
    """The rich report without colour codes, for an exception message."""
    from rich.console import Console

    from convgrad.render_table import render_case

    buffer = io.StringIO()
    Console(file=buffer, width=width, color_system=None, force_terminal=False, highlight=False).print(
        render_case(report)
    )
    return buffer.getvalue()
