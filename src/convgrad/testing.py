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
from typing import Any, Callable, Collection, Mapping, Optional, Sequence, TypedDict, Unpack

from convgrad.errors import ConvgradError
from convgrad.geometry import AxisSpec, LayerGeometry, PaddingSpec, resolve_geometry
from convgrad.options import CheckOptions, Differences, Method
from convgrad.report import CaseReport
from convgrad.suite import SuiteCase

__all__ = ["check", "assert_conv_gradients", "suite_cases", "assert_case", "CaseOptions", "CheckKeywords"]


class CaseOptions(TypedDict, total=False):
    """How the layer is loaded and checked: the keywords of `assert_case`, and of `check` apart
    from the geometry. Each left out takes the default of what it sets, so every default has one
    home: `CheckOptions` (`step` is its `relative_step`: None, like `rtol`, means the dtype's
    default), `as_implementation` (`impl_config` is its `config`); `name` names the report
    ("check of <implementation>" by default)."""

    seed: int
    rtol: Optional[float]
    step: Optional[float]
    method: Method
    samples: int
    forward_check: bool
    timeout: float
    strict: bool
    differences: Differences
    order: int
    jvp: bool
    layout: Optional[str]
    weight_layout: Optional[str]
    impl_config: Optional[str]
    device: str
    name: Optional[str]


class _Shapes(TypedDict):
    in_shape: str | Sequence[int]
    kernel_shape: str | Sequence[int]


class CheckKeywords(_Shapes, CaseOptions, total=False):
    """The keywords of `check` and `assert_conv_gradients`: the layer's geometry (in_shape and
    kernel_shape required, the rest with `resolve_geometry`'s defaults) and the `CaseOptions`."""

    batch: int
    stride: AxisSpec
    padding: PaddingSpec
    dilation: AxisSpec
    groups: int
    dtype: str


_GEOMETRY = ("in_shape", "kernel_shape", "batch", "stride", "padding", "dilation", "groups", "dtype")
_LOADING = {"layout": "layout", "weight_layout": "weight_layout", "impl_config": "config", "device": "device"}
_CHECKING = {"step": "relative_step"}  # the CaseOptions named otherwise in CheckOptions


def check(impl: Any = "reference", **keywords: Unpack[CheckKeywords]) -> CaseReport:
    """Check one layer and return its CaseReport (see `convgrad check` for what is compared).

    `impl` is an implementation spec ("reference", "torch", "my_conv.py:Layer", ...) or any object
    with forward and backward: a module, an instance or a class taking no arguments; or a
    torch.nn.Module (instance or class), torch.autograd.Function or jax function, run on `device`. Bad input
    raises a ConvgradError; a wrong implementation gives a report with `passed` False. The case
    runs in a child process that may take at most `timeout` seconds.

    Keywords (`CheckKeywords`): in_shape, kernel_shape, batch, stride, padding, dilation, groups,
    dtype as `resolve_geometry` takes them; seed, rtol, step, method, samples, forward_check,
    timeout, strict, differences, order, jvp as `CheckOptions` takes them; layout, weight_layout, impl_config,
    device as `as_implementation` takes them; name.
    """
    _refuse_unknown("check", keywords, CheckKeywords.__annotations__)
    given: dict[str, Any] = dict(keywords)
    geometry = resolve_geometry(**{key: given.pop(key) for key in _GEOMETRY if key in given})
    return _run(impl, geometry, given)


def _run(impl: Any, geometry: LayerGeometry, options: dict[str, Any]) -> CaseReport:
    """One case of `impl` on `geometry` with the `CaseOptions` given, in a child process: what
    `check` and `assert_case` share."""
    from convgrad.adapters.loading import as_implementation
    from convgrad.run.isolation import run_case_isolated

    given = dict(options)
    name = given.pop("name", None)
    loading = {_LOADING[key]: given.pop(key) for key in list(given) if key in _LOADING}
    settings = CheckOptions(**{_CHECKING.get(key, key): value for key, value in given.items()})
    settings.tolerances(geometry.dtype)  # a step too small for this dtype is bad input, not a failed case
    implementation = as_implementation(impl, **loading)
    return run_case_isolated(geometry, implementation, settings, name=name or f"check of {implementation.name}")


def _refuse_unknown(function: str, keywords: Mapping[str, object], known: Collection[str]) -> None:
    """The TypeError Python raises for a keyword a function does not take (a type checker reports
    it before): keywords typed by a TypedDict arrive in a dict, which takes any."""
    unknown = [key for key in keywords if key not in known]
    if unknown:
        raise TypeError(f"{function}() got an unexpected keyword argument {unknown[0]!r}")


def assert_conv_gradients(impl: Any = "reference", **keywords: Unpack[CheckKeywords]) -> CaseReport:
    """Like `check` (the same keywords), but raise AssertionError unless every checked tensor passes.

    The message names the failing tensors (O, dX, dK, db) and holds the report's table as plain
    text. A case the implementation cannot express (a keyword it does not accept) is not a pass
    either: it raises with the reason.
    """
    __tracebackhide__ = True  # pytest starts the failure at the caller's line, not in convgrad
    report = _reported(lambda: check(impl, **keywords))
    if report.skipped is not None:
        raise AssertionError(f"convgrad could not check {report.implementation}: {report.skipped}")
    return _passed(report)


def suite_cases(path: str) -> list[Any]:
    """The cases of a suite file as `pytest.param`s, each with the case's name as its test id.

    Bad input (a missing file, an unknown key) raises ConvgradError while pytest collects."""
    import pytest

    from convgrad.suite import load_suite

    return [pytest.param(case, id=case.name) for case in load_suite(path).cases]


def assert_case(case: SuiteCase, impl: Any = "reference", **options: Unpack[CaseOptions]) -> CaseReport:
    """Check one case of `suite_cases` and raise AssertionError unless every tensor passes.

    `options` are `check`'s, without the geometry (seed, rtol, step, layout, device, timeout, ...).
    A case the implementation declares it cannot run is skipped (`pytest.skip` with the reason),
    as the command line skips it; with strict=True it fails instead."""
    __tracebackhide__ = True
    _refuse_unknown("assert_case", options, CaseOptions.__annotations__)
    report = _reported(lambda: _run(impl, case.geometry, {"name": case.name, **options}))
    if report.skipped is not None:
        import pytest

        pytest.skip(f"convgrad: {report.skipped}")
    return _passed(report)


def _reported(run: Callable[[], CaseReport]) -> CaseReport:
    __tracebackhide__ = True
    try:
        return run()
    except ConvgradError as error:  # bad input: the caller's line and the message, not our stack
        raise error.with_traceback(None) from None


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
    Console(file=buffer, width=width, color_system=None, force_terminal=False, highlight=False, markup=False).print(
        render_case(report)
    )
    return buffer.getvalue()
