"""convgrad inside your own test suite: `check` returns the report, `assert_conv_gradients` raises.

    from convgrad.testing import assert_conv_gradients
    import my_conv

    def test_my_conv_backward():
        assert_conv_gradients(my_conv, in_shape=(3, 20, 20), kernel_shape=(5, 3, 3, 3), stride=2)
"""

from __future__ import annotations

import io
from typing import Any, Optional, Sequence

from convgrad.errors import ConvgradError
from convgrad.geometry import AxisSpec, resolve_geometry
from convgrad.options import DEFAULT_SAMPLES, DEFAULT_TIMEOUT_S, CheckOptions, Differences, Method
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
    method: Method = "auto",
    samples: int = DEFAULT_SAMPLES,
    timeout: float = DEFAULT_TIMEOUT_S,
    strict: bool = False,
    differences: Differences = "auto",
) -> CaseReport:
    """Check one layer and return its CaseReport (see `convgrad check` for what is compared).

    `impl` is an implementation spec ("reference", "torch", "my_conv.py:Layer", ...) or any object
    with forward and backward: a module, an instance or a class taking no arguments. Bad input
    raises a ConvgradError; a wrong implementation gives a report with `passed` False. The case
    runs in a child process that may take at most `timeout` seconds.
    """
    from convgrad.impl.loading import as_implementation
    from convgrad.run.isolation import run_case_isolated

    options = CheckOptions(
        seed=seed, relative_step=step, rtol=rtol, method=method, samples=samples,
        forward_check=forward_check, timeout=timeout, strict=strict, differences=differences,
    )
    geometry = resolve_geometry(
        in_shape, kernel_shape, batch=batch, stride=stride, padding=padding, dilation=dilation,
        groups=groups, dtype=dtype,
    )
    options.tolerances(geometry.dtype)  # a step too small for this dtype is bad input, not a failed case
    implementation = as_implementation(impl, layout=layout, weight_layout=weight_layout)
    return run_case_isolated(geometry, implementation, options, name=name or f"check of {implementation.name}")


def assert_conv_gradients(impl: Any = "reference", **options: Any) -> CaseReport:
    """Like `check`, but raise AssertionError unless every checked tensor passes.

    The message names the failing tensors (O, dX, dK, db) and holds the report's table as plain
    text. A case the implementation cannot express (a keyword it does not accept) is not a pass
    either: it raises with the reason.
    """
    __tracebackhide__ = True  # pytest starts the failure at the caller's line, not in convgrad
    try:
        report = check(impl, **options)
    except ConvgradError as error:  # bad input: the caller's line and the message, not our stack
        raise error.with_traceback(None) from None
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

    from convgrad.render.table import render_case

    buffer = io.StringIO()
    Console(file=buffer, width=width, color_system=None, force_terminal=False, highlight=False).print(
        render_case(report)
    )
    return buffer.getvalue()
