"""The network scenario: layers right in a unit test and wrong in a network are caught by the
standard suite with the right cause, and their correct twins pass it (tests/zoo/network.py)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from checking import check_layer
from convgrad import reference
from convgrad.cli import cli
from convgrad.geometry import resolve_geometry
from convgrad.adapters.live import Variant
from convgrad.adapters.loading import as_implementation
from convgrad.run.scenario import other_settings
from zoo import FOLDER as ZOO
from zoo import layers as zoo

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STANDARD = os.path.join(ROOT, "configs", "standard.toml")
NUMPY_LAYERS = os.path.join(ZOO, "network.py")
TORCH_LAYERS = os.path.join(ZOO, "network_torch.py")

# wrong layer -> (its correct twin, the check that fails first, a phrase of its cause)
WRONG = {
    # 1. state shared across layers or instances
    "ShapeKeyedColumnCache": ("ColumnCacheCheckedAgainstInput", "two instances",
                              "it is what layer A's weights give for the batch layer A2 was given in between"),
    "ClassAttributeCache": ("PerInstanceCache", "two instances", "shared between instances of the layer"),
    "ShapeKeyedIndexTable": ("SettingsKeyedIndexTable", "other settings",
                             "state keyed on shapes alone (an index table, a plan, im2col columns) is shared"),
    # 2. training steps
    "GrowOnlyWorkspace": ("SlicedWorkspace", "batch sizes", "state sized for the largest batch is kept and read whole"),
    "IdentityKeyedWeightCache": ("ValueCheckedWeightCache", "training steps",
                                 "it is what the weights before the optimiser's step give"),
    "StepsBeforeInputGradient": ("StepsAfterInputGradient", "learning rate",
                                 "dx was computed with the weights after the SGD step"),
    # 3. activations and gradients a network produces
    "PositiveOnlySparseGradient": ("SparseGradient", "max-pool gradient", "a sparse path keeps dy > 0"),
    "DeadPlaneSkipping": ("ZeroPlaneSkipping", "activations", "planes were skipped as dead by a test of max <= 0"),
    "PrunedFilterSkipsBias": ("PrunedFilterKeepsBias", "pruned filter",
                              "a pruned filter was skipped together with its bias"),
    "FlushesTinyGradients": ("KeepsTinyGradients", "tiny gradient", "small values of dy are flushed to zero"),
    "CompactsZeroGradientItems": ("SelectsNonZeroGradientItems", "max-pool gradient",
                                  "compacted by position (x[:k]) instead of by index (x[keep])"),
    # 4. variants a network uses
    "BiasNoneWrongPath": ("BiasNoneRightPath", "no bias", "with b = None the layer takes another path"),
    # 5. aliasing through returned arrays
    "MemoReturnsItsOwnArray": ("ExactBytesMemo", "recomputed forward",
                               "the layer hands out an array it keeps (a memo or an output buffer)"),
    # 6. memory layout a network produces
    "AssumesPackedBatchStride": ("UsesBatchStride", "memory layouts 4", "with x as a channel slice of a wider array"),
}
CORRECT_ON_PURPOSE = ["ThreadPoolPartialSums", "SortsBatchInternally"]
# One pair of each class runs the whole standard suite; the others run on two geometries, in-process.
ON_THE_SUITE = ["ClassAttributeCache", "IdentityKeyedWeightCache", "PositiveOnlySparseGradient", "BiasNoneWrongPath",
                "MemoReturnsItsOwnArray", "AssumesPackedBatchStride"]
GEOMETRIES = (resolve_geometry("3x6x6", "4x3x3x3", batch=2), resolve_geometry("4x7x6", "5x4x3x2", batch=3, stride=2, padding=1))


def suite(spec: str, *flags: str) -> tuple[int, dict]:
    result = CliRunner().invoke(cli, ["check", "--impl", spec, "--config", STANDARD, "--json", *flags])
    return result.exit_code, json.loads(result.output)


def first_failures(report: dict) -> list[tuple[str, str]]:
    """(check, reason) of the first failing check of every failing case."""
    found = []
    for case in report["cases"]:
        failing = [c for c in case["calls"] if not c["passed"]]
        if failing:
            found.append((failing[0]["name"], failing[0]["reason"] or ""))
    return found


@pytest.mark.parametrize("wrong", ON_THE_SUITE)
def test_a_layer_wrong_in_a_network_fails_the_standard_suite_with_its_cause(wrong):
    _, step, cause = WRONG[wrong]
    code, report = suite(f"{NUMPY_LAYERS}:{wrong}", "--fail-fast")  # a gate's answer: the first failing case
    assert code == 1 and report["summary"]["failed"] + report["summary"]["error"] > 0
    # Right in a unit test: every failing case's first call (O, dX, dK, db) holds.
    assert all(t["passed"] for case in report["cases"] for t in case["tensors"] if case["status"] != "skipped")
    failures = first_failures(report)
    assert any(name == step and cause in reason for name, reason in failures), failures[:3]


@pytest.mark.parametrize("wrong", [w for w in WRONG if w not in ON_THE_SUITE])
def test_the_other_wrong_layers_fail_with_their_cause_and_their_twins_pass(wrong):
    twin, step, cause = WRONG[wrong]
    found = []
    for geometry in GEOMETRIES:  # in a child each: module-level caches must not outlive the case
        case = check_layer(geometry, f"{NUMPY_LAYERS}:{wrong}", isolated=True, timeout=120)
        assert all(t.passed for t in case.rows)  # right in a unit test
        found += [(c.name, c.reason or "") for c in case.failing_calls[:1]]
        assert check_layer(geometry, f"{NUMPY_LAYERS}:{twin}", isolated=True, timeout=120).passed
    assert any(name == step and cause in reason for name, reason in found), found


@pytest.mark.parametrize("wrong", ON_THE_SUITE)
@pytest.mark.slow
def test_its_correct_twin_passes_the_standard_suite(wrong):
    twin = WRONG[wrong][0]
    code, report = suite(f"{NUMPY_LAYERS}:{twin}")
    assert code == 0, first_failures(report)[:3]
    assert report["summary"]["passed"] > 0


@pytest.mark.parametrize("layer", CORRECT_ON_PURPOSE)
@pytest.mark.slow
def test_correct_layers_that_look_suspicious_pass(layer):
    code, report = suite(f"{NUMPY_LAYERS}:{layer}")
    assert code == 0, first_failures(report)[:3]


@pytest.mark.slow
def test_every_step_of_the_scenario_runs_on_a_layer_object_that_trains_itself():
    code, report = suite(f"{NUMPY_LAYERS}:StepsAfterInputGradient")
    assert code == 0
    case = next(c for c in report["cases"] if c["status"] == "passed")
    steps = [c["name"] for c in case["calls"] if c["part"] == "network scenario"]
    assert steps == [
        "two instances", "other settings", "recomputed forward", "batch sizes", "training steps", "learning rate",
        "activations", "max-pool gradient", "tiny gradient", "large gradient", "pruned filter",
    ]
    two = next(c for c in case["calls"] if c["name"] == "two instances")
    assert [(t["call"], t["name"]) for t in two["tensors"]] == [
        ("forward of layer A", "O"), ("forward of layer A2", "O"),
        *(("backward of layer A2", n) for n in ("dX", "dK", "db")), *(("backward of layer A", n) for n in ("dX", "dK", "db")),
    ]


class SkipsStep:
    """A layer object whose backward(dout, lr) forgets to take the step."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
        k = kernel_size if isinstance(kernel_size, tuple) else (kernel_size, kernel_size)
        self.W = np.zeros((out_channels, in_channels, *k))
        self.b = np.zeros(out_channels)
        self.stride, self.padding = stride, padding

    def _settings(self):
        pair = lambda v: v if isinstance(v, tuple) else (v, v)  # noqa: E731
        return dict(stride=pair(self.stride), padding=pair(self.padding), dilation=(1, 1), groups=1)

    def forward(self, x):
        self.x = x
        return reference.forward(x, self.W, self.b, **self._settings())

    def backward(self, dout, lr):
        dx, self.dW, self.db = reference.backward(dout, self.x, self.W, self.b, **self._settings())
        return dx

    spatial_dims = (2,)


def test_a_backward_that_takes_no_step_is_caught_with_what_it_left():
    case = check_layer(resolve_geometry("2x6x6", "3x2x3x3"), SkipsStep)
    (failing,) = case.failing_calls
    assert failing.name == "learning rate"
    assert failing.reason == "backward(dout, lr=0.01) left W unchanged: the SGD step W -= lr * dW was not taken"


def test_a_suite_shows_the_worst_of_a_failing_later_call_when_the_first_call_passed():
    case = check_layer(SEED_LIKE, f"{NUMPY_LAYERS}:ClassAttributeCache", isolated=True, timeout=120)
    assert all(t.passed for t in case.rows) and not case.passed
    worst = case.worst_tensor
    assert worst is not None and not worst.passed and worst.call == "backward of layer A"
    assert worst.max_rel_error is not None and worst.max_rel_error > 0.5


def test_the_other_layer_has_the_same_output_shape_where_the_layer_takes_it():
    # ASPP's branches: 3x3 kernels, dilation d and padding d keep the output size.
    geometry = resolve_geometry("2x9x9", "3x2x3x3", padding=1)
    aspp, padded = other_settings(geometry, as_implementation(zoo.TapLoopConv()))
    assert (aspp.dilation, aspp.padding) == ((2, 2), (2, 2)) and aspp.y_shape == geometry.y_shape
    assert (padded.dilation, padded.padding, padded.stride) == ((1, 1), (2, 2), (1, 1))  # padding alone
    # An even kernel keeps its output shape with dilation + 2; a layer that takes no dilation
    # (a layer object of stride and padding) gets other padding and other stride instead.
    two_d = resolve_geometry("2x9x9", "3x2x2x2")
    assert other_settings(two_d, as_implementation(zoo.TapLoopConv()))[0].dilation == (3, 3)
    objects = other_settings(geometry, as_implementation(f"{NUMPY_LAYERS}:PerInstanceCache"))
    assert [(o.padding, o.stride) for o in objects] == [((2, 2), (1, 1)), ((0, 0), (1, 1))]
    unpadded = other_settings(resolve_geometry("2x9x9", "3x2x3x3"), as_implementation(f"{NUMPY_LAYERS}:PerInstanceCache"))
    assert [(o.padding, o.stride) for o in unpadded] == [((1, 1), (1, 1)), ((0, 0), (2, 2))]  # stride last


def test_without_the_forward_check_each_call_is_compared_with_the_layer_called_plainly():
    case = check_layer(resolve_geometry("3x8x8", "4x3x3x3", batch=2), zoo.WeightStandardised(), forward_check=False)
    assert case.passed, case.failure_summary
    scenario = [c for c in case.calls if c.part == "network scenario"]
    assert scenario and all(t.method == "plain call" for c in scenario for t in c.tensors)
    assert all(c.compared_with.startswith("the same layer called plainly") for c in scenario)
    broken = check_layer(resolve_geometry("3x8x8", "4x3x3x3", batch=2), f"{NUMPY_LAYERS}:ClassAttributeCache",
                         forward_check=False)
    assert "two instances" in [c.name for c in broken.failing_calls]


def test_a_function_pair_gets_one_object_per_layer_when_convgrad_builds_it():
    # forward keeps x on the object, as layer objects do: right when each layer has its own object.
    case = check_layer(resolve_geometry("3x6x6", "4x3x3x3"), zoo.KeepsInputsForBackward)
    assert case.passed, case.failure_summary


def test_the_instances_are_built_with_their_own_weights():
    implementation = as_implementation(f"{NUMPY_LAYERS}:PerInstanceCache")
    geometry = resolve_geometry("2x6x6", "3x2x3x3")
    w, b = np.ones(geometry.w_shape), np.ones(geometry.b_shape)
    live = implementation.live(geometry, w, b, Variant())
    w[...] = 7  # the caller's arrays are not the layer's
    held_w, held_b = live.held()
    assert np.all(np.asarray(held_w) == 1) and np.all(np.asarray(held_b) == 1)


# --- torch: the training path, frozen inputs, evaluation mode ------------------------------------


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


@pytest.mark.slow
def test_a_weight_gradient_gated_on_the_bias_flag_is_dropped_and_caught(torch):
    code, report = suite(f"{TORCH_LAYERS}:BiasFlagGatesWeightGradient", "--fail-fast")
    assert code == 1
    failures = first_failures(report)
    assert failures and all(name == "b frozen" for name, _ in failures)
    assert all(reason.startswith("backward returned no dK although w requires a gradient (b frozen)") for _, reason in failures)
    code, report = suite(f"{TORCH_LAYERS}:NeedsInputGradFlags")
    assert code == 0, first_failures(report)[:3]


@pytest.mark.slow
def test_a_training_path_that_adds_the_bias_twice_is_caught_on_the_recording_forward(torch):
    code, report = suite(f"{TORCH_LAYERS}:TrainingPathBiasTwice", "--fail-fast")
    assert code == 1
    for name, reason in first_failures(report):
        assert name == "two instances" and reason.startswith("forward of layer A: O differs")
        assert "here it records a backward (training mode, gradients enabled): the training path computes" in reason
    # The first call's O row (no_grad) holds: only the path a training step takes is wrong.
    assert all(t["passed"] for case in report["cases"] for t in case["tensors"])
    code, report = suite(f"{TORCH_LAYERS}:TrainingPathBiasOnce")
    assert code == 0, first_failures(report)[:3]


def test_an_evaluation_path_that_differs_is_caught(torch):
    class EvalDrops(torch.nn.Module):
        spatial_dims = (2,)

        def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
            super().__init__()
            self.conv = torch.nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding)

        def forward(self, x):
            y = self.conv(x)
            return y if self.training else y * 0.9  # an inference-only rescale left in

    case = check_layer(resolve_geometry("2x6x6", "3x2x3x3"), EvalDrops)
    assert [c.name for c in case.failing_calls] == ["evaluation mode"]
    assert case.failing_calls[0].reason.startswith("forward of layer A in evaluation mode: O differs")


def test_frozen_inputs_and_no_bias_run_for_a_torch_module_class(torch):
    case = check_layer(resolve_geometry("2x6x6", "3x2x3x3"), torch.nn.Conv2d)
    assert case.passed, case.failure_summary
    names = [c.name for c in case.calls if c.part == "network scenario"]
    assert {"no bias", "x frozen", "w frozen", "b frozen", "x and b frozen", "x and w frozen", "w and b frozen",
            "evaluation mode"} <= set(names)
    frozen = next(c for c in case.calls if c.name == "x frozen")
    assert {t.name for t in frozen.tensors} == {"O", "dK", "db"}  # dX is not asked for


# --- a second set, written independently: one geometry each, in-process -------------------------

REVIEW_LAYERS = os.path.join(ZOO, "network_review.py")
REVIEW_TORCH = os.path.join(ZOO, "network_review_torch.py")
SEED_LIKE = resolve_geometry("3x6x6", "4x3x3x3", batch=2)

# wrong layer -> (the row or later check that fails, a phrase of its reason)
REVIEW_WRONG = {
    "IdentityColumnReuse": ("training steps", "it is what the previous batch gives"),
    "FingerprintMemo": ("dX", "coordinates differ"),
    "StepSliceRowsAssumed": ("memory layouts 5", "with x as a step slice"),
    "ChannelsLastFollowsX": ("memory layouts 3", "with x channels last"),
    # id(x) without a reference: caught wherever an id first comes back for another array, which
    # the allocator decides (the differences, the layout calls, a refilled batch buffer).
    "IdKeyedColumnMemo": ("anywhere", ""),
    "IndexTableKeyMissingPadding": ("other settings", "state keyed on shapes alone"),
    "SharedWeightMatrixByShape": ("two instances", "is what layer A2's weights give"),
    "CornerKeyedWeightCache": ("dK", "coordinates differ"),
    "LazyWeightView": ("dK", "coordinates differ"),
    "EveryOtherCallGradient": ("second call", "returned the first call's dK again"),
}
REVIEW_CORRECT = ["ExactBytesColumnCache", "TapLoopReversed", "PowerOfTwoRescaled", "OwnWorkspaceInPlace"]
REVIEW_TORCH_WRONG = {
    "EvalWeightSnapshot": ("evaluation mode", "the evaluation path uses a copy of the weights made once"),
    "EvalModeDetachedWeight": ("evaluation mode", "backward in evaluation mode returned no dK"),
    "FrozenInputDividesByBatch": ("x frozen", "wrong when x does not require a gradient"),
    "FrozenWeightConstantFolded": ("dK", "coordinates differ"),
    "DataPtrKeyedWeightCache": ("dK", "coordinates differ"),
}
REVIEW_TORCH_CORRECT = ["ValueCheckedWeightCache", "Float64InternalFunction"]


def failing_where(case) -> dict[str, str]:
    """Every failing row and later check of a case, with its reason."""
    found = {t.name: t.reason or "" for t in case.tensors if not t.passed}
    found.update({c.name: c.reason or "" for c in case.failing_calls})
    return found


def assert_caught(case, *expected) -> None:
    """Caught where expected with a phrase of its reason: (where, phrase), or several such pairs."""
    found = failing_where(case)
    alternatives = expected if isinstance(expected[0], tuple) else (expected,)
    assert any((where in found or where == "anywhere" and found) and phrase in found.get(where, "")
               for where, phrase in alternatives), found


@pytest.mark.parametrize("wrong", list(REVIEW_WRONG))
def test_the_second_set_of_wrong_layers_is_caught(wrong):
    assert_caught(check_layer(SEED_LIKE, f"{REVIEW_LAYERS}:{wrong}", isolated=True, timeout=120), *REVIEW_WRONG[wrong])


@pytest.mark.parametrize("layer", REVIEW_CORRECT)
def test_the_second_set_of_correct_layers_passes(layer):
    for geometry in (SEED_LIKE, resolve_geometry("4x7x6", "6x2x3x2", batch=3, stride=2, padding=1, groups=2)):
        case = check_layer(geometry, f"{REVIEW_LAYERS}:{layer}")
        assert case.passed or case.skipped, case.failure_summary


@pytest.mark.parametrize("wrong", list(REVIEW_TORCH_WRONG))
def test_the_second_set_of_wrong_torch_layers_is_caught(torch, wrong):
    assert_caught(check_layer(SEED_LIKE, f"{REVIEW_TORCH}:{wrong}"), *REVIEW_TORCH_WRONG[wrong])


def test_a_cache_keyed_on_the_tensor_version_misses_updates_through_data(torch):
    # Keyed on (data_ptr, _version): right under torch.optim, stale after p.data updates.
    case = check_layer(SEED_LIKE, f"{REVIEW_TORCH}:VersionKeyedWeightCache")
    assert not case.passed and {"training steps", "second call"} & set(failing_where(case))


@pytest.mark.parametrize("layer", REVIEW_TORCH_CORRECT)
def test_the_second_set_of_correct_torch_layers_passes(torch, layer):
    case = check_layer(SEED_LIKE, f"{REVIEW_TORCH}:{layer}")
    assert case.passed, case.failure_summary


# --- correct layers the scenario must not fail --------------------------------------------------


class _LayerObject:
    """A correct layer object on the reference: forward keeps x, backward leaves dW and db."""

    spatial_dims = (2,)

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=None):
        k = kernel_size if isinstance(kernel_size, tuple) else (kernel_size, kernel_size)
        self.W = np.zeros((out_channels, in_channels, *k))
        # `bias` is a starting value here, not a switch: no layer without bias can be built
        self.b = np.zeros(out_channels) if bias is None else np.array(bias, float).reshape(out_channels)
        self.stride, self.padding = stride, padding

    def _settings(self):
        pair = lambda v: v if isinstance(v, tuple) else (v, v)  # noqa: E731
        return dict(stride=pair(self.stride), padding=pair(self.padding), dilation=(1, 1), groups=1)

    def forward(self, x):
        self.x = x
        return reference.forward(x, self.W, self.b, **self._settings())

    def backward(self, dout):
        dx, self.dW, self.db = reference.backward(dout, self.x, self.W, self.b, **self._settings())
        return dx


class MomentumSteps(_LayerObject):
    """Trains itself with momentum SGD: its first step is plain SGD, the later ones are not."""

    def backward(self, dout, lr):
        dx = super().backward(dout)
        self.v = 0.9 * getattr(self, "v", 0.0) + self.dW
        self.vb = 0.9 * getattr(self, "vb", 0.0) + self.db
        self.W = self.W - lr * self.v
        self.b = self.b - lr * self.vb
        return dx


class TrainsWithADefaultRate(_LayerObject):
    """backward(dout, lr=0.01): called without a rate it would train; convgrad passes one."""

    def backward(self, dout, lr=0.01):
        dx = super().backward(dout)
        self.W = self.W - lr * self.dW
        self.b = self.b - lr * self.db
        return dx


class AtMostTwoItems:
    """Correct keyword functions that take batches of at most two, and say so."""

    spatial_dims = (2,)

    def supports(self, geometry):
        return geometry.batch <= 2 or "batches of at most 2"

    def forward(self, x, w, b, **settings):
        assert x.shape[0] <= 2, "batch too large"
        return reference.forward(x, w, b, **settings)

    def backward(self, dy, x, w, b, **settings):
        assert x.shape[0] <= 2, "batch too large"
        return reference.backward(dy, x, w, b, **settings)


@pytest.mark.parametrize("layer", [_LayerObject, MomentumSteps, TrainsWithADefaultRate, AtMostTwoItems],
                         ids=["bias a starting value", "momentum", "a default learning rate", "declared batch limit"])
def test_correct_layers_with_conventions_of_their_own_pass(layer):
    case = check_layer(resolve_geometry("3x6x6", "4x3x3x3", batch=2), layer)
    assert case.passed, case.failure_summary
    names = [c.name for c in case.calls]
    assert "no bias" not in names  # a bias parameter that is a value is no switch
    if layer in (MomentumSteps, TrainsWithADefaultRate):
        assert "learning rate" in names
    if layer is AtMostTwoItems:  # the larger batches are left out, and the stacked one is no failure
        sizes = next(c for c in case.calls if c.name == "batch sizes")
        assert "at batch 2, then 1" in sizes.called_with


def test_a_stateless_layer_wrong_at_other_settings_is_not_blamed_on_shared_state(reference_with):
    class WrongWhenPadded(reference_with):  # no state at all: dX is wrong whenever the input is padded
        def backward(self, dy, x, w, b, **settings):
            dx, dw, db = super().backward(dy, x, w, b, **settings)
            return (dx * 1.01 if any(settings["padding"]) else dx), dw, db

    case = check_layer(resolve_geometry("2x6x4", "4x2x3x2", batch=2, stride=2), WrongWhenPadded())
    assert all(t.passed for t in case.rows)
    (other,) = [c for c in case.failing_calls if c.name == "other settings"]
    assert "has other settings than the case: it is wrong at those settings themselves" in other.reason
    assert "check it alone: convgrad check --impl YOUR_LAYER --in 2x6x4 --kernels 4x2x3x2 --batch 2 --stride 2 --padding" in other.reason
