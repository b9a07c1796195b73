"""The call protocol: layers that pass one fresh call but keep state, read their inputs by shape,
reuse their output buffers, go wrong only where two settings meet, or whose forward and backward
disagree about the settings, all fail, with the cause named in every report."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner
from hypothesis import given, settings

from checking import check_layer, skipped_for_uneven_padding
from convgrad.cli import cli
from convgrad.geometry import resolve_geometry
from convgrad.suite import load_suite
from layer_strategies import layers, seeds
from test_zoo import STANDARD
from zoo import layers as zoo
from zoo import spec

SEED_LIKE = resolve_geometry("3x8x8", "4x3x3x3")


def run(args):
    return CliRunner().invoke(cli, ["check", *args], env={"COLUMNS": "100", "NO_COLOR": "1"})


# (layer, a geometry that shows it, the failing later call, a phrase of its cause)
STATEFUL = [
    (zoo.AccumulatesKernelGradient, SEED_LIKE, "second call", "the second backward returned dK plus the first call's dK: gradients accumulate across calls"),
    (zoo.CachesPaddedInput, resolve_geometry("3x8x8", "4x3x3x3", padding=1), "second call", "forward on new x of the same shape computed with the previous x"),
    (zoo.WindowsFromShape, SEED_LIKE, "memory layouts 1", "results depend on the memory layout of the inputs: with x channels last"),
    (zoo.ReturnsWorkspace, SEED_LIKE, "returned arrays", "forward returned the output in a buffer that the next forward call overwrote"),
    (zoo.RavelsInOrderA, SEED_LIKE, "memory layouts 2", "results depend on the memory layout of the inputs: with x in Fortran order"),
    (zoo.ChannelsLastFastPath, SEED_LIKE, "memory layouts 1", "results depend on the memory layout of the inputs: with x channels last"),
]


@pytest.mark.parametrize("layer, geometry, call, cause", STATEFUL, ids=[s[0].__name__ for s in STATEFUL])
def test_a_layer_wrong_after_its_first_call_fails_with_the_cause(layer, geometry, call, cause):
    case = check_layer(geometry, layer())
    assert not case.passed
    failing = {c.name: c for c in case.failing_calls}
    assert call in failing, [(c.name, c.reason) for c in case.failing_calls]
    assert cause in failing[call].reason


def test_the_accumulating_layer_passes_its_first_call_alone():
    # What a single fresh call sees: every row of the first call passes.
    case = check_layer(SEED_LIKE, zoo.AccumulatesKernelGradient())
    assert all(t.passed for t in case.tensors)
    assert "the first call matches, but not the later calls" in case.failure_summary or case.failing_calls


def _flags(geometry):
    g = geometry
    return ["--in", "x".join(map(str, g.in_shape)), "--kernels", "x".join(map(str, g.kernel_shape)),
            "--padding", "x".join(map(str, g.padding)), "--batch", str(g.batch)]


@pytest.mark.parametrize("layer, geometry, call, cause", STATEFUL, ids=[s[0].__name__ for s in STATEFUL])
def test_the_cause_reaches_the_table_the_summary_json_and_junit(tmp_path, layer, geometry, call, cause):
    impl = spec(layer.__name__)
    table = run(["--impl", impl, *_flags(geometry)])
    assert table.exit_code == 1
    # below the table, with the later calls that fail for the same reason
    assert re.search(rf"{call}(, [\w ]+ \d)*: {re.escape(cause)}", " ".join(table.output.split()))
    report = json.loads(run(["--impl", impl, *_flags(geometry), "--json"]).output)
    reasons = [c["reason"] for case in report["cases"] for c in case["calls"] if not c["passed"]]
    assert any(cause in r for r in reasons)
    suite = tmp_path / "suite.toml"
    g = geometry
    suite.write_text(
        f'[[case]]\nname = "shows it"\nin = "{"x".join(map(str, g.in_shape))}"\n'
        f'kernels = "{"x".join(map(str, g.kernel_shape))}"\npadding = {g.padding[0]}\n'
    )
    path = tmp_path / "report.xml"
    summary = run(["--impl", impl, "--config", str(suite), "--junit", str(path), "--quiet"])
    assert re.search(rf"FAIL 1 case .*{call}(, [\w ]+ \d)*: {re.escape(cause)}", " ".join(summary.output.split()))
    messages = [f.get("message") for f in ET.parse(path).getroot().iter("failure")]
    assert any(f"{call}: {cause}" in m for m in messages)


COMBINATIONS = [zoo.GroupsStackedWithoutTranspose, zoo.PaddingWithBatchShifted, zoo.DepthwiseMultiplierMixed,
                zoo.FirstDilationForEveryAxis, zoo.ChunkedBatch]


@pytest.mark.parametrize("layer", COMBINATIONS, ids=[c.__name__ for c in COMBINATIONS])
@pytest.mark.slow
def test_settings_wrong_only_together_pass_alone_and_fail_on_the_standard_suite(layer):
    for alone in (SEED_LIKE, resolve_geometry("4x6x6", "4x2x3x3", groups=2), resolve_geometry("3x6x6", "3x3x3x3", padding=1),
                  resolve_geometry("2x5x5", "3x2x3x3", batch=3)):
        case = check_layer(alone, layer())
        # The first call's gradients and the protocol pass; other batch sizes (a stacked batch while
        # differencing, the network scenario's) may show the layer wrong.
        assert all(t.passed for t in case.rows if t.name != "O"), alone.describe()
        assert all(c.passed for c in case.calls if c.part == "call protocol"), alone.describe()
    report = json.loads(run(["--impl", spec(layer.__name__), "--config", STANDARD, "--json", "--fail-fast"]).output)
    assert report["summary"]["failed"] + report["summary"]["error"] >= 1


@pytest.mark.slow
def test_forward_and_backward_that_disagree_on_a_setting_fail_instead_of_skipping():
    result = run(["--impl", spec("BackwardWithoutDilation"), "--in", "2x9x9", "--kernels", "3x2x3x3", "--dilation", "2"])
    assert result.exit_code == 1
    assert "forward accepts the keyword dilation but backward does not" in " ".join(result.output.split())
    report = json.loads(run(["--impl", spec("BackwardWithoutDilation"), "--config", STANDARD, "--json"]).output)
    # The layer cannot be called as declared: not checked (an error), never skipped as a pass.
    skipped = [c for c in report["cases"] if c["skipped"] is not None]
    assert all(skipped_for_uneven_padding(c) for c in skipped) and report["summary"]["error"] >= 1


@pytest.mark.slow
def test_strict_turns_every_skip_into_a_failure():
    impl = spec("student_conv.py")
    plain = json.loads(run(["--impl", impl, "--config", STANDARD, "--json"]).output)
    assert plain["passed"] is True and plain["summary"]["skipped"] > 0
    strict = run(["--impl", impl, "--config", STANDARD, "--json", "--strict"])
    assert strict.exit_code == 1
    report = json.loads(strict.output)
    assert report["summary"]["skipped"] == 0 and report["summary"]["error"] == plain["summary"]["skipped"]
    reasons = [c["reason"] for c in report["cases"] if not c["passed"]]
    assert all(r.startswith("not checked under strict checking: ") for r in reasons)


def test_later_calls_cost_one_forward_call_each():
    first_only = check_layer(SEED_LIKE)
    protocol = [c for c in first_only.calls if c.part == "call protocol"]
    assert [c.name for c in protocol] == [
        "second call", "memory layouts 1", "memory layouts 2", "memory layouts 3", "memory layouts 4",
        "memory layouts 5", "first call repeated",
    ]
    assert [c.forward_calls for c in protocol] == [1, 1, 1, 1, 1, 1, 1]
    scenario = {c.name: c.forward_calls for c in first_only.calls if c.part == "network scenario"}
    assert scenario == {
        "two instances": 2, "other settings": 3, "recomputed forward": 3, "batch sizes": 3, "training steps": 2,
        "activations": 1, "max-pool gradient": 1, "tiny gradient": 1, "large gradient": 1, "pruned filter": 1,
    }
    assert all(c.passed for c in first_only.calls)


def test_a_layout_call_returning_the_second_calls_arrays_is_judged_as_the_second_call_was():
    case = check_layer(SEED_LIKE)
    second, *layouts = case.calls[:3]
    reused = 0
    for laid_out in layouts:
        for row, earlier in zip(laid_out.tensors, second.tensors):
            same = row.analytical.tobytes() == earlier.analytical.tobytes()
            assert (row is earlier) == same  # another summation order (db here) is judged anew
            reused += same
    assert reused >= 4


def test_only_bit_identical_results_count_as_the_same():
    import numpy as np

    from convgrad.run.calls import _identical

    values = np.array([0.0, 1.5, -2.0])
    assert _identical(values, values.copy())
    assert not _identical(values, np.array([-0.0, 1.5, -2.0]))  # a report prints -0 as -0
    assert not _identical(values, values[::-1].copy()) and not _identical(None, values)
    assert not _identical(values, values.astype(np.float32))


@settings(max_examples=30)
@given(geometry=layers("float64"), seed=seeds)
@pytest.mark.slow
def test_no_false_alarm_on_correct_layers_under_the_protocol(geometry, seed):
    for layer in (None, zoo.TapLoopConv(), zoo.KeepsInputsForBackward()):
        case = check_layer(geometry, layer, seed=seed)
        assert case.passed, (geometry.describe(), [(t.name, t.reason) for t in case.failing],
                             [(c.name, c.reason) for c in case.failing_calls])


@settings(max_examples=15)
@given(geometry=layers("float32"), seed=seeds)
def test_no_false_alarm_in_float32_under_the_protocol(geometry, seed):
    case = check_layer(geometry, zoo.KeepsInputsForBackward(), seed=seed)
    assert case.passed, [(c.name, c.reason) for c in case.failing_calls]


@pytest.mark.slow
def test_torch_passes_the_standard_suite_under_the_protocol():
    pytest.importorskip("torch")
    result = run(["--impl", "torch", "--config", STANDARD, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["summary"] == {"passed": len(load_suite(STANDARD).cases), "failed": 0, "error": 0, "skipped": 0, "lost precision": 0, "not checked": 0}
    assert all(c["passed"] for case in report["cases"] for c in case["calls"])


@pytest.mark.slow
def test_jax_passes_the_protocol_in_1d_2d_and_3d(tmp_path):
    # jax compiles every new shape (about a second each), so a few cases rather than the suite.
    pytest.importorskip("jax")
    cases = [c for c in load_suite(STANDARD).cases if c.name in ("1-D", "basic 4", "pairs 1", "3-D")]
    config = tmp_path / "few.toml"
    config.write_text("".join(
        f'[[case]]\nname = "{c.name}"\nin = "{"x".join(map(str, c.geometry.in_shape))}"\n'
        f'kernels = "{"x".join(map(str, c.geometry.kernel_shape))}"\nbatch = {c.geometry.batch}\n'
        f'stride = "{"x".join(map(str, c.geometry.stride))}"\npadding = "{"x".join(map(str, c.geometry.padding))}"\n'
        f'dilation = "{"x".join(map(str, c.geometry.dilation))}"\ngroups = {c.geometry.groups}\n'
        f'dtype = "{c.geometry.dtype}"\n'
        for c in cases
    ))
    result = run(["--impl", "jax", "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["summary"] == {"passed": 4, "failed": 0, "error": 0, "skipped": 0, "lost precision": 0, "not checked": 0}
    assert all(c["passed"] for case in report["cases"] for c in case["calls"])


@pytest.mark.slow
def test_gradients_correct_to_rounding_are_no_false_alarm_on_the_standard_suite():
    # Where no window reaches, the true gradient is exactly zero and an FFT conv's is rounding:
    # every call, not just the first, measures that against one product term.
    result = run(["--impl", spec("RoundingNoise"), "--config", STANDARD, "--json"])
    assert result.exit_code == 0, [(c["name"], c["reason"], [k["reason"] for k in c["calls"]])
                                   for c in json.loads(result.output)["cases"] if not c["passed"]]
