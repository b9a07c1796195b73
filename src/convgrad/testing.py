"""convgrad inside your own test suite: `check` returns the report, `assert_conv_gradients` raises.

    from convgrad.testing import assert_conv_gradients
    import my_conv

    def test_my_conv_backward():
        assert_conv_gradients(my_conv, in_shape=(3, 20, 20), kernel_shape=(5, 3, 3, 3), stride=2)

A suite file becomes one pytest test per case, which pytest-xdist (`pytest -n auto`) spreads over
cores and machines:

    @pytest.mark.parametrize("case", suite_cases("configs/standard.toml"))
    def test_my_conv(case):
        assert_case(case, "my_conv.py")
"""

from __future__ import annotations

import io
from typing import Any, Optional, Sequence

from convgrad.errors import ConvgradError
from convgrad.geometry import AxisSpec, LayerGeometry, resolve_geometry
from convgrad.options import DEFAULT_SAMPLES, DEFAULT_TIMEOUT_S, CheckOptions, Differences, Method
from convgrad.report import CaseReport
from convgrad.suite import SuiteCase

__all__ = ["check", "assert_conv_gradients", "suite_cases", "assert_case"]


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
    layout: Optional[str] = None,
    weight_layout: Optional[str] = None,
    impl_config: Optional[str] = None,
    device: str = "cpu",
    name: Optional[str] = None,
    method: Method = "auto",
    samples: int = DEFAULT_SAMPLES,
    timeout: float = DEFAULT_TIMEOUT_S,
    strict: bool = False,
    differences: Differences = "auto",
) -> CaseReport:
    """Check one layer and return its CaseReport (see `convgrad check` for what is compared).

    `impl` is an implementation spec ("reference", "torch", "my_conv.py:Layer", ...) or any object
    with forward and backward: a module, an instance or a class taking no arguments; or a
    torch.nn.Module (instance or class), torch.autograd.Function or jax function, run on `device`. Bad input
    raises a ConvgradError; a wrong implementation gives a report with `passed` False. The case
    runs in a child process that may take at most `timeout` seconds.
    """
    geometry = resolve_geometry(
        in_shape, kernel_shape, batch=batch, stride=stride, padding=padding, dilation=dilation,
        groups=groups, dtype=dtype,
    )
    return _run(
        impl, geometry, name, seed=seed, rtol=rtol, step=step, forward_check=forward_check, layout=layout,
        weight_layout=weight_layout, impl_config=impl_config, device=device, method=method, samples=samples,
        timeout=timeout, strict=strict, differences=differences,
    )


def _run(
    impl: Any, geometry: LayerGeometry, name: Optional[str], *, seed: int = 0, rtol: Optional[float] = None,
    step: Optional[float] = None, forward_check: bool = True, layout: Optional[str] = None,
    weight_layout: Optional[str] = None, impl_config: Optional[str] = None, device: str = "cpu",
    method: Method = "auto", samples: int = DEFAULT_SAMPLES, timeout: float = DEFAULT_TIMEOUT_S,
    strict: bool = False, differences: Differences = "auto",
) -> CaseReport:
    """One case of `impl` on `geometry`, in a child process: what `check` and `assert_case` share."""
    from convgrad.adapters.loading import as_implementation
    from convgrad.run.isolation import run_case_isolated

    options = CheckOptions(
        seed=seed, relative_step=step, rtol=rtol, method=method, samples=samples,
        forward_check=forward_check, timeout=timeout, strict=strict, differences=differences,
    )
    options.tolerances(geometry.dtype)  # a step too small for this dtype is bad input, not a failed case
    implementation = as_implementation(
        impl, layout=layout, weight_layout=weight_layout, config=impl_config, device=device
    )
    return run_case_isolated(geometry, implementation, options, name=name or f"check of {implementation.name}")


def assert_conv_gradients(impl: Any = "reference", **options: Any) -> CaseReport:
    """Like `check`, but raise AssertionError unless every checked tensor passes.

    The message names the failing tensors (O, dX, dK, db) and holds the report's table as plain
    text. A case the implementation cannot express (a keyword it does not accept) is not a pass
    either: it raises with the reason.
    """
    __tracebackhide__ = True  # pytest starts the failure at the caller's line, not in convgrad
    report = _reported(check, impl, **options)
    if report.skipped is not None:
        raise AssertionError(f"convgrad could not check {report.implementation}: {report.skipped}")
    return _passed(report)


def suite_cases(path: str) -> list[Any]:
    """The cases of a suite file as `pytest.param`s, each with the case's name as its test id.

    Bad input (a missing file, an unknown key) raises ConvgradError while pytest collects."""
    import pytest

    from convgrad.suite import load_suite

    return [pytest.param(case, id=case.name) for case in load_suite(path).cases]


def assert_case(case: SuiteCase, impl: Any = "reference", **options: Any) -> CaseReport:
    """Check one case of `suite_cases` and raise AssertionError unless every tensor passes.

    `options` are `check`'s, without the geometry (seed, rtol, step, layout, device, timeout, ...).
    A case the implementation declares it cannot run is skipped (`pytest.skip` with the reason),
    as the command line skips it; with strict=True it fails instead."""
    __tracebackhide__ = True
    report = _reported(_run, impl, case.geometry, case.name, **options)
    if report.skipped is not None:
        import pytest

        pytest.skip(f"convgrad: {report.skipped}")
    return _passed(report)


def _reported(run: Any, *arguments: Any, **options: Any) -> CaseReport:
    __tracebackhide__ = True
    try:
        report: CaseReport = run(*arguments, **options)
    except ConvgradError as error:  # bad input: the caller's line and the message, not our stack
        raise error.with_traceback(None) from None
    return report


def _passed(report: CaseReport) -> CaseReport:
    """The report if every tensor passed, else AssertionError with the failing tensors and the table."""
    __tracebackhide__ = True
    if not report.passed:
        failing = ", ".join(t.label for t in report.failing) or "the case"
        verdict = "could not be checked" if report.status == "error" else (
            "does not match" if len(report.failing) == 1 else "do not match"
        )
        raise AssertionError(
            f"convgrad: {failing} of {report.implementation} {verdict}: {report.failure_summary}\n"
            f"{_plain_text(report)}"
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
