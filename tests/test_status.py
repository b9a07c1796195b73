"""One status per row, later call and case, set when it is built, with one order of precedence
(report.STATUSES) that every renderer reads. ERROR is not FAIL: a layer that could not be checked
(it raised, returned the wrong shape, hung) is an error; one that ran and is wrong (wrong numbers,
NaN, an input written into, state kept between calls) fails. Both exit 1; each report says which,
and why.

    status          a row, call or case is this when               shown         JUnit
    error           something could not be checked                 ERROR         <error>
    failed          something ran and is wrong                     FAIL          <failure>
    lost precision  wrong only by fewer bits, with a likely cause  LOST BITS     <failure>
    not checked     left after an earlier failure of the case      NOT CHECKED   <failure>
    skipped         declared impossible (a case), or a tensor      SKIP          <skipped>
                    the layer does not have (db without a bias)
    passed          every part passed                              PASS          <testcase/>
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner

from checking import check_layer
from conftest import ReferenceWith
from convgrad.cli import cli
from convgrad.geometry import resolve_geometry
from convgrad.render.json import suite_to_dict
from convgrad.render.junit import render_junit
from convgrad.render.summary import render_totals
from convgrad.render.table import STATUS_TEXT, render_verdict
from convgrad.options import CheckOptions
from convgrad.report import STATUSES, CaseReport, SuiteReport, TensorComparison, first_status
from zoo import layers as zoo
from zoo import spec

NOT_TILED = resolve_geometry("2x6x6", "2x2x3x3", stride=2)  # (6 - 3) % 2 != 0: the layer raises
SEED_LIKE = resolve_geometry("3x6x6", "5x3x3x3")


def run(args: list[str]):
    return CliRunner().invoke(cli, ["check", *args], env={"COLUMNS": "100", "NO_COLOR": "1"})


def rows(output: str) -> dict[str, list[str]]:
    """The table's rows by tensor name, split into words."""
    words = [line.split() for line in output.splitlines()]
    return {w[0]: w for w in words if len(w) > 1 and w[0] in ("O", "dX", "dK", "db") and w[1][0].isdigit()}


def test_a_forward_that_raises_is_an_error_with_rows_not_checked():
    case = check_layer(NOT_TILED, zoo.RaisesWhenStrideDoesNotTile())
    assert case.status == "error" and case.failed and not case.passed
    assert [t.status for t in case.tensors] == ["error", "not checked", "not checked", "not checked"]
    # Gradients that were never compared are no evidence that they match a wrong forward.
    assert "forward_not_convolution" not in [d.kind for d in case.diagnoses]
    result = run(["--impl", spec("RaisesWhenStrideDoesNotTile"), "--in", "2x6x6", "--kernels", "2x2x3x3", "--stride", "2"])
    assert result.exit_code == 1
    table = rows(result.output)
    assert table["O"][-1] == "ERROR" and table["O"][-2] == "-"  # no "0/72 checked"
    assert all(table[n][-2:] == ["NOT", "CHECKED"] for n in ("dX", "dK", "db"))
    assert "FAIL" not in result.output
    verdict = " ".join(result.output.split()).rsplit("ERROR (not checked): ", 1)[1]
    assert verdict.startswith("forward raised AssertionError")
    assert verdict.endswith("declare stride_tiles = true and such cases are skipped")  # it runs where the stride tiles


def test_a_wrong_shape_is_an_error_on_that_gradient_and_the_others_are_still_checked():
    case = check_layer(SEED_LIKE, zoo.DxDepthF())
    assert case.status == "error"
    assert {t.name: t.status for t in case.tensors} == {"O": "passed", "dX": "error", "dK": "passed", "db": "passed"}
    assert [d.kind for d in case.diagnoses] == ["dx_depth_f"]  # the error still says why
    assert case.failure_summary.startswith("dX: backward returned shape 1x5x6x6 for dX, expected 1x3x6x6, looks like")
    assert render_verdict(case).plain == f"ERROR: {case.failure_summary}"  # O, dK and db were checked


def test_nan_and_an_input_written_into_are_failures_not_errors():
    nan = check_layer(resolve_geometry("2x9x9", "3x2x2x2", stride=3), zoo.DxAveragedOverWindows())
    assert nan.status == "failed" and nan.tensor("dX").status == "failed"
    assert "backward returned NaN in dX" in nan.tensor("dX").reason
    in_place = check_layer(SEED_LIKE, zoo.ClipsDyInPlace())
    assert in_place.status == "failed"
    assert {t.name: t.status for t in in_place.tensors} == {"O": "passed", "dX": "failed", "dK": "failed", "db": "failed"}


class RaisesOnItsSecondCall(ReferenceWith):
    """Backward raises when called a second time (finite differences call only forward)."""

    calls = 0

    def backward(self, dy, x, w, b, **settings):
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("the layer was already used")
        return super().backward(dy, x, w, b, **settings)


def test_a_later_call_that_raises_is_an_error_too():
    case = check_layer(SEED_LIKE, RaisesOnItsSecondCall())
    assert all(t.passed for t in case.tensors)  # the first call was proved
    second = case.failing_calls[0]
    assert second.name == "second call" and second.status == "error"
    assert case.status == "error"
    assert "second call: backward raised RuntimeError: the layer was already used" in case.failure_summary


def test_errors_and_failures_are_told_apart_in_totals_json_and_junit():
    suite = SuiteReport((
        check_layer(SEED_LIKE, zoo.KernelsNotRotated(), name="wrong"),
        check_layer(NOT_TILED, zoo.RaisesWhenStrideDoesNotTile(), name="raises"),
        check_layer(SEED_LIKE, zoo.TapLoopConv(), name="right"),
    ))
    assert [c.status for c in suite.cases] == ["failed", "error", "passed"]
    assert render_totals(suite).plain == "FAIL: 1 of 3 cases failed, 1 could not be checked (ERROR), 1 passed"
    report = suite_to_dict(suite)
    assert report["summary"] == {"passed": 1, "failed": 1, "error": 1, "skipped": 0, "lost precision": 0, "not checked": 0}
    assert [c["status"] for c in report["cases"]] == ["failed", "error", "passed"]
    assert [t["status"] for t in report["cases"][1]["tensors"]] == ["error", "not checked", "not checked", "not checked"]
    assert report["cases"][2]["reason"] is None
    root = ET.fromstring(render_junit(suite))
    assert (root.get("failures"), root.get("errors")) == ("1", "1")
    wrong, raises, right = root.iter("testcase")
    assert wrong.find("error") is None and wrong.find("failure").get("type") == "GradientCheckFailure"
    assert raises.find("failure") is None
    error = raises.find("error")
    assert error.get("type") == "ImplementationError" and error.get("message").startswith("forward raised AssertionError")
    assert "O: ERROR" in error.text and "dX: NOT CHECKED" in error.text
    assert list(right) == []


def test_only_errors_still_exit_1_and_say_so(tmp_path):
    suite = tmp_path / "suite.toml"
    suite.write_text('[[case]]\nname = "raises"\nin = "2x6x6"\nkernels = "2x2x3x3"\nstride = 2\n')
    result = run(["--impl", spec("RaisesWhenStrideDoesNotTile"), "--config", str(suite), "--quiet"])
    assert result.exit_code == 1
    assert "FAIL: 1 of 1 cases could not be checked (ERROR), 0 passed" in result.output
    grouped = " ".join(result.output.split())
    assert "ERROR 1 case forward raised AssertionError" in grouped and "are skipped raises FAIL:" in grouped


# (zoo layer, the tensor it gets wrong, the why in a few words)
WHY = [
    ("Im2colKernelOrder", "O", "each kernel's elements were read in another order than they are laid out (im2col order)"),
    ("Im2colKernelOrderInDk", "dK", "each kernel's elements were read in another order than they are laid out (im2col order)"),
    ("BiasGradientPerWindowElement", "db", "the bias was counted once per element of the window"),
    ("BiasInsideWindowSum", "O", "the forward adds the bias to every element of the window"),
    ("ForgetsBiasAndRotation", "dX", "the kernels were not rotated 180°"),
    ("KernelsNotRotated", "dX", "the kernels were not rotated 180°"),
]


@pytest.mark.parametrize("layer, tensor, short", WHY, ids=[w[0] for w in WHY])
def test_the_why_reaches_the_table_the_summary_json_and_junit(tmp_path, layer, tensor, short):
    suite = tmp_path / "suite.toml"
    suite.write_text('[[case]]\nname = "shows it"\nin = "3x6x6"\nkernels = "4x3x3x2"\nbatch = 2\n')
    why = f"{tensor}: "
    table = run(["--impl", spec(layer), "--in", "3x6x6", "--kernels", "4x3x3x2", "--batch", "2"])
    assert table.exit_code == 1
    text = " ".join(table.output.split())
    message = next(d.message for d in check_layer(resolve_geometry("3x6x6", "4x3x3x2", batch=2), getattr(zoo, layer)()).diagnoses
                   if d.tensor == tensor)
    assert f"why: {message}" in text  # the whole sentence, under the tensor's details
    junit = tmp_path / "report.xml"
    summary = run(["--impl", spec(layer), "--config", str(suite), "--quiet", "--junit", str(junit)])
    line = " ".join(summary.output.split())
    line = line[line.index("FAIL 1 case"):]  # the one way the suite failed, with its cause
    assert f"{why}" in line and f"looks like {short}" in line
    (failure,) = ET.parse(junit).getroot().iter("failure")
    assert why in failure.get("message") and f"looks like {short}" in failure.get("message")
    assert f"why ({tensor}): {message}" in failure.text
    (case,) = json.loads(run(["--impl", spec(layer), "--config", str(suite), "--json"]).output)["cases"]
    assert case["status"] == "failed" and why in case["reason"] and f"looks like {short}" in case["reason"]


def test_quiet_gives_each_failing_tensor_its_why():
    result = run(["--impl", spec("KernelsNotRotated"), "--in", "3x6x6", "--kernels", "4x3x3x3", "--quiet"])
    assert result.exit_code == 1
    assert result.output.splitlines()[0] == "FAIL: dX does not match"
    text = " ".join(result.output.split())
    assert "dX: 108 of 108 coordinates differ" in text
    assert "numerical 6.54972 why: dX matches the numerical gradient once the kernels are rotated 180°" in text


def test_one_order_of_statuses_that_every_renderer_knows():
    assert STATUSES == ("error", "failed", "lost precision", "not checked", "skipped", "passed")
    assert first_status(["passed", "not checked", "lost precision"]) == "lost precision"
    assert first_status(["failed", "error", "passed"]) == "error"  # it must first run to be judged
    assert first_status(["passed", "skipped"]) == "passed"  # db of a bias-free layer does not skip its case
    assert first_status([]) == "passed"
    assert list(STATUS_TEXT) == list(STATUSES)
    suite = SuiteReport((check_layer(SEED_LIKE, zoo.TapLoopConv(), name="right"),))
    assert list(suite_to_dict(suite)["summary"]) == list(STATUSES)


def test_each_status_is_counted_alike_in_the_totals_json_and_junit():
    f32 = resolve_geometry("3x8x8", "4x3x3x3", dtype="float32")
    suite = SuiteReport((
        check_layer(SEED_LIKE, zoo.KernelsNotRotated(), name="wrong"),
        check_layer(f32, zoo.KernelGradientInFloat16(), name="fewer bits"),
    ))
    assert [c.status for c in suite.cases] == ["failed", "lost precision"]
    assert render_totals(suite).plain == "FAIL: 1 of 2 cases failed, 1 lost precision (LOST BITS), 0 passed"
    summary = suite_to_dict(suite)["summary"]
    assert (summary["failed"], summary["lost precision"], summary["passed"]) == (1, 1, 0)
    root = ET.fromstring(render_junit(suite))
    assert (root.get("failures"), root.get("errors")) == ("2", "0")  # JUnit knows failures and errors only


def test_line_ends_are_stripped_before_and_between_colour_codes():
    from convgrad.render.console import strip_line_ends

    coloured = "\x1b[1mPASS\x1b[0m  \x1b[2m  \x1b[0m\n   \nkept  inside\x1b[0m \n"
    assert strip_line_ends(coloured) == "\x1b[1mPASS\x1b[0m\x1b[2m\x1b[0m\n\nkept  inside\x1b[0m\n"


def _case(name: str, *, error: str = "", skipped: str | None = None, unfinished: str | None = None) -> CaseReport:
    """A report built by hand: O could not be checked for `error`, the rest not checked after it."""
    rows = () if skipped else (
        TensorComparison.not_checked("O", SEED_LIKE, 1e-8, error or "forward failed", status="error"),
        *(TensorComparison.not_checked(n, SEED_LIKE, 1e-8, "not checked", status="not checked") for n in ("dX", "dK", "db")),
    )
    return CaseReport.build(name=name, geometry=SEED_LIKE, implementation="layer.py", options=CheckOptions(),
                            tensors=rows, skipped=skipped, unfinished=unfinished)


GROUPINGS = [
    # (what the cases say, how many groups, whether the first group's cases read alike)
    (["forward raised TypeError: bad // (at layer.py:3)", "forward raised TypeError: bad + (at layer.py:9)"], 2, True),
    (["forward returned shape 1x3x0x0 for O, expected 1x5x4x4", "forward returned shape 2x2x0x0 for O, expected 2x5x4x4"], 1, False),
    (["skip: layer.py handles 2-D layers only and this case is 1-D", "skip: layer.py handles 2-D layers only and this case is 3-D"], 2, True),
    (["skip: needs dilation 2x1", "skip: needs dilation 2"], 1, False),
    (["timeout: timed out after 2 s in backward of the first call", "timeout: timed out after 2 s in forward of memory layouts 3"], 1, False),
]


@pytest.mark.parametrize("says, groups, alike", GROUPINGS, ids=["raises", "shapes", "dims", "settings", "timeouts"])
def test_cases_group_by_their_cause_with_only_numbers_set_aside(says, groups, alike):
    def case(i: int, text: str) -> CaseReport:
        kind, _, rest = text.partition(": ") if text.startswith(("skip", "timeout")) else ("", "", text)
        return _case(f"case {i}", error=rest, skipped=rest if kind == "skip" else None,
                     unfinished=rest if kind == "timeout" else None)

    suite = SuiteReport(tuple(case(i, text) for i, text in enumerate(says)))
    assert len(suite.groups) == groups
    assert suite.groups[0].alike == alike
