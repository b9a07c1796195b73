"""Each classic mistake is named on the layer that makes it, and never on a correct layer."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import ReferenceWith
from convgrad.options import CheckOptions
from convgrad import reference
from checking import check_layer
from convgrad.run.case import random_tensors
from convgrad.findings.bias_axes import KINDS as BIAS_KINDS
from convgrad.findings.diagnosis import dk_as_if, dx_as_if
from convgrad.geometry import resolve_geometry
from zoo import layers as zoo

# Small cases with what a CI suite covers: batch > 1, stride > 1 (and > kernel), padding,
# dilation, groups incl. depthwise, C == F, rectangular, 1x1 kernels, 1-D and 3-D.
GEOMETRIES = {
    "seed-like": dict(in_shape="3x6x6", kernel_shape="4x3x3x3"),
    "batch-stride-padding-rectangular": dict(in_shape="2x7x6", kernel_shape="4x2x3x2", batch=2, stride=2, padding=1),
    "stride-larger-than-kernel": dict(in_shape="2x9x9", kernel_shape="3x2x2x2", stride=3),
    "dilation-c-equals-f": dict(in_shape="2x8x7", kernel_shape="2x2x3x3", dilation=2, padding=2),
    "groups": dict(in_shape="4x6x6", kernel_shape="6x2x3x3", groups=2, padding=1),
    "depthwise": dict(in_shape="3x7x7", kernel_shape="3x1x3x3", groups=3, padding=1),
    "1x1-kernels": dict(in_shape="3x5x5", kernel_shape="2x3x1x1", batch=2),
    "1d": dict(in_shape="2x13", kernel_shape="3x2x3", stride=2, padding=1, dilation=2, batch=2),
    "3d": dict(in_shape="2x4x5x4", kernel_shape="4x1x2x3x2", groups=2, batch=2, padding=1),
}


def _cases(layer_class, dtype="float64"):
    for name, settings in GEOMETRIES.items():
        geometry = resolve_geometry(**settings, dtype=dtype)
        yield name, geometry, check_layer(geometry, layer_class())


@pytest.mark.parametrize("layer_class", list(zoo.EXPECTED), ids=lambda c: c.__name__)
def test_each_mistake_is_named_whenever_its_tensor_fails(layer_class):
    expected = zoo.EXPECTED[layer_class]
    failed_somewhere = False
    for name, geometry, case in _cases(layer_class):
        if case.reason is not None:  # the layer raised for this geometry: a reason, not a diagnosis
            continue
        if layer_class is zoo.DxDepthF and geometry.channels == geometry.filters:
            continue  # with C == F the depth is right: the mistake is not a shape any more
        given = {}
        for d in case.diagnoses:
            given.setdefault(d.tensor, set()).add(d.kind)
        for tensor in case.failing:
            if tensor.name != "O" and "backward_of_true_convolution" in given.get("O", set()):
                continue  # the whole backward is right for the convolution: the forward is named instead
            if tensor.name in expected:
                failed_somewhere = True
                assert given.get(tensor.name, set()) & expected[tensor.name], (name, tensor.name, case.diagnoses)
        for d in case.diagnoses:  # nothing is said about tensors that passed
            assert not case.tensor(d.tensor).passed, (name, d)
    assert failed_somewhere, "the mistake never showed: the geometries do not exercise it"


@pytest.mark.parametrize("layer_class", [*zoo.CORRECT, None], ids=["tap-loop", "textbook", "reference"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_correct_layers_pass_with_no_diagnosis(layer_class, dtype):
    for name, geometry in ((n, resolve_geometry(**s, dtype=dtype)) for n, s in GEOMETRIES.items()):
        case = check_layer(geometry, layer_class() if layer_class else None)
        assert case.passed, (name, [t.reason for t in case.failing])
        assert case.diagnoses == () and all(t.location is None for t in case.tensors), name


def test_the_seed_question_gets_the_rotation_sentence_with_the_fix():
    case = check_layer(resolve_geometry("3x8x8", "5x3x3x3"), zoo.KernelsNotRotated())
    (diagnosis,) = case.diagnoses
    assert diagnosis.tensor == "dX" and diagnosis.message.startswith(
        "dX matches the numerical gradient once the kernels are rotated 180°: the full "
        "correlation of dO needs each kernel flipped along every spatial axis, once."
    )
    # A scatter-style backward that flipped the kernel gets the same finding: the fix is the removal.
    assert "remove the one it has" in diagnosis.message


def test_a_one_coordinate_tensor_gets_no_constant_factor():
    class FirstImageBias(zoo.TapLoopConv):
        def bias_gradient(self, dy, w):
            return dy[:1].sum(axis=(0, *range(2, dy.ndim)))  # the first image only

    case = check_layer(resolve_geometry("1x3x3", "1x1x2x2", batch=2), FirstImageBias())
    assert [t.name for t in case.wrong] == ["db"]
    assert all(d.kind != "constant_factor" for d in case.diagnoses), case.diagnoses


def test_depth_f_is_named_from_the_shape_with_both_depths():
    case = check_layer(resolve_geometry("3x8x8", "5x3x3x3"), zoo.DxDepthF())
    assert case.tensor("dX").shape == (1, 5, 8, 8)
    (diagnosis,) = case.diagnoses
    assert diagnosis.kind == "dx_depth_f"
    assert "depth F = 5 where the input has C = 3" in diagnosis.message
    assert "5 kernels of depth 3 become 3 kernels of depth 5" in diagnosis.message


def test_constant_factors_are_named_as_the_count_they_are():
    averaged = check_layer(resolve_geometry("2x6x6", "3x2x3x3", batch=4), zoo.BatchAveraged())
    by_tensor = {d.tensor: d.message for d in averaged.diagnoses}
    assert set(by_tensor) == {"dK", "db"}
    assert "1/N = 1/4, an average over the batch: sum over the batch" in by_tensor["db"]
    per_tap = check_layer(resolve_geometry("2x6x6", "3x2x3x2"), zoo.BiasOncePerKernelElement())
    (diagnosis,) = per_tap.diagnoses
    assert diagnosis.message.startswith("db is 6 times the numerical gradient everywhere: 6, the number of kernel elements (3x2)")


def test_an_unnamed_factor_is_still_given_as_a_number():
    class Scaled(ReferenceWith):
        def backward(self, dy, x, w, b, **settings):
            dx, dw, db = reference.backward(dy, x, w, b, **settings)
            return dx, dw * 1.37, db

    (diagnosis,) = check_layer(resolve_geometry("2x6x6", "3x2x3x3"), Scaled()).diagnoses
    assert diagnosis.kind == "constant_factor" and "factor of 1.37" in diagnosis.message


def test_a_forward_that_is_not_a_convolution_with_a_matching_backward():
    case = check_layer(resolve_geometry("2x6x6", "3x2x3x3"), zoo.TrueConvolution())
    assert [t.name for t in case.failing] == ["O"]
    kinds = {d.kind for d in case.diagnoses}
    assert kinds == {"forward_flips_kernels", "forward_not_convolution"}
    message = next(d.message for d in case.diagnoses if d.kind == "forward_not_convolution")
    assert "backward is the exact gradient of that wrong forward" in message


def test_a_wrong_forward_with_the_convolution_backward():
    case = check_layer(resolve_geometry("2x6x6", "3x2x3x3"), zoo.ForwardFlipsKernels())
    kinds = {d.kind for d in case.diagnoses}
    assert kinds == {"forward_flips_kernels", "backward_of_true_convolution"}
    assert all(d.tensor == "O" for d in case.diagnoses)  # gradients are not blamed for the forward


def test_one_wrong_element_gets_a_location_but_no_invented_mistake():
    # 2 from the top, 3 from the left: interior of 6x6 with reach 2
    case = check_layer(resolve_geometry("2x6x6", "3x2x3x3"), zoo.OneCoordinateOff("dX", (0, 1, 2, 3), relative=1e-3))
    assert case.diagnoses == ()
    location = case.tensor("dX").location
    assert location.wrong == 1 and location.channels == (1,) and location.region == "interior"


@pytest.mark.parametrize("settings", list(GEOMETRIES.values()), ids=list(GEOMETRIES))
def test_the_hypothesis_machinery_reproduces_the_reference_without_a_mistake(settings):
    geometry = resolve_geometry(**settings)
    x, w, b, dy = random_tensors(geometry, CheckOptions(seed=1))
    kw = dict(stride=geometry.stride, padding=geometry.padding, dilation=geometry.dilation, groups=geometry.groups)
    dx, dw, _ = reference.backward(dy, x, w, b, **kw)
    np.testing.assert_allclose(dx_as_if(dy, reference.rotate_and_swap(w, geometry.groups), geometry), dx, atol=1e-12)
    np.testing.assert_allclose(dk_as_if(dy, x, geometry), dw, atol=1e-12)


def test_dk_in_the_wrong_layout_is_named_from_the_shape():
    class KernelGradientTransposed(ReferenceWith):
        def backward(self, dy, x, w, b, **settings):
            dx, dw, db = reference.backward(dy, x, w, b, **settings)
            return dx, dw.swapaxes(0, 1), db

    case = check_layer(resolve_geometry("3x6x6", "5x3x3x3"), KernelGradientTransposed())
    (diagnosis,) = case.diagnoses
    assert diagnosis.kind == "dk_axes_swapped" and "dK has shape 3x5x3x3 but the kernels are 5x3x3x3" in diagnosis.message


def test_diagnoses_hold_in_float32_too():
    geometry = resolve_geometry("2x7x6", "4x2x3x2", batch=2, stride=2, padding=1, dtype="float32")
    for layer, kind in ((zoo.KernelsNotRotated(), "kernels_not_rotated"), (zoo.StrideIgnoredInDx(), "stride_ignored")):
        case = check_layer(geometry, layer)
        assert [(d.tensor, d.kind) for d in case.diagnoses] == [("dX", kind)]


# The kinds added for the im2col order, the bias in the window sum, a gradient checked against a
# wrong forward, and db over the wrong axes or values: given only to the layers that make those mistakes.
LATER_KINDS = {"kernel_element_order", "bias_per_window_element", "gradient_of_convolution", *BIAS_KINDS}


@pytest.mark.parametrize("layer_class", list(zoo.EXPECTED), ids=lambda c: c.__name__)
def test_the_newer_hypotheses_do_not_fire_on_other_mistakes(layer_class):
    allowed = set().union(*zoo.EXPECTED[layer_class].values())
    for name, geometry, case in _cases(layer_class):
        given = {d.kind for d in case.diagnoses} & LATER_KINDS
        assert given <= allowed, (name, case.diagnoses)


def test_a_layer_with_two_bugs_gets_both_findings():
    # The forward leaves out the bias and dX uses unrotated kernels: O, dX and db fail.
    case = check_layer(resolve_geometry("3x6x6", "4x3x3x3", batch=2), zoo.ForgetsBiasAndRotation())
    assert {(d.tensor, d.kind) for d in case.diagnoses} == {
        ("O", "forward_without_bias"), ("dX", "kernels_not_rotated"), ("db", "gradient_of_convolution"),
    }
    assert case.failure_summary == (
        "O: 128 of 128 coordinates differ, looks like the forward leaves out the bias; "
        "dX: 216 of 216 coordinates differ, looks like the kernels were not rotated 180°; "
        "db: 4 of 4 coordinates differ, looks like the convolution's own gradient, checked against a wrong forward (see O); "
        "later calls fail too: second call, memory layouts 1, memory layouts 2, memory layouts 3, memory layouts 4, "
        "memory layouts 5"
    )


def test_an_im2col_forward_in_another_order_is_named_with_both_orders():
    case = check_layer(resolve_geometry("3x6x6", "4x3x3x2"), zoo.Im2colKernelOrder())
    assert [t.name for t in case.failing] == ["O"]  # its backward is the exact gradient of that forward
    (order,) = [d for d in case.diagnoses if d.kind == "kernel_element_order"]
    assert order.tensor == "O"
    assert order.message.startswith(
        "O matches the convolution with each kernel's elements read in (kh, kw, C) order while the "
        "kernels are laid out (C, kh, kw): the forward's patches (im2col columns) list each window in "
        "(kh, kw, C) order, but the kernels are flattened as laid out (w.reshape(F, -1))"
    )
    assert "flatten the kernels as w.transpose(0, 2, 3, 1).reshape(F, -1)" in order.message
    one_d = check_layer(resolve_geometry("2x9", "3x2x3"), zoo.Im2colKernelOrder())
    assert "read in (kl, C) order while the kernels are laid out (C, kl)" in one_d.diagnoses[0].message


def test_dk_from_patches_in_another_order_is_named():
    case = check_layer(resolve_geometry("3x6x6", "4x3x3x2", batch=2), zoo.Im2colKernelOrderInDk())
    (diagnosis,) = case.diagnoses
    assert (diagnosis.tensor, diagnosis.kind) == ("dK", "kernel_element_order")
    assert "computed from patches (im2col columns) in (kh, kw, C) order and reshaped as if it were (C, kh, kw)" in diagnosis.message


def test_the_bias_in_the_window_sum_is_named_with_the_window_size():
    window_in_forward = check_layer(resolve_geometry("3x6x6", "4x3x3x3"), zoo.BiasInsideWindowSum())
    kinds = {(d.tensor, d.kind) for d in window_in_forward.diagnoses}
    assert kinds == {("O", "bias_per_window_element"), ("O", "backward_of_true_convolution")}
    message = next(d.message for d in window_in_forward.diagnoses if d.kind == "bias_per_window_element")
    assert message.startswith("O matches the convolution with the bias added 27 times, once per element of the window (C/g x 3x3 = 27)")
    window_in_db = check_layer(resolve_geometry("3x6x6", "4x3x3x3"), zoo.BiasGradientPerWindowElement())
    (diagnosis,) = window_in_db.diagnoses
    assert diagnosis.kind == "bias_per_window_element" and diagnosis.message.startswith("db is 27 times the gradient of the bias")


def test_a_correct_im2col_layer_passes_with_no_diagnosis():
    for name, settings in GEOMETRIES.items():
        case = check_layer(resolve_geometry(**settings), zoo.Im2colConv())
        assert case.passed and case.diagnoses == (), name


def test_the_newer_diagnoses_hold_in_float32_too():
    geometry = resolve_geometry("2x7x6", "4x2x3x2", batch=2, stride=2, padding=1, dtype="float32")
    for layer, expected in (
        (zoo.Im2colKernelOrder(), {("O", "kernel_element_order"), ("O", "forward_not_convolution")}),
        (zoo.Im2colKernelOrderInDk(), {("dK", "kernel_element_order")}),
        (zoo.BiasGradientPerWindowElement(), {("db", "bias_per_window_element")}),
        (zoo.ForgetsBiasAndRotation(), {("O", "forward_without_bias"), ("dX", "kernels_not_rotated"), ("db", "gradient_of_convolution")}),
    ):
        assert {(d.tensor, d.kind) for d in check_layer(geometry, layer).diagnoses} == expected, type(layer).__name__


class PaddedInputCachedByShape(ReferenceWith):
    """Saves np.pad calls: the padded x is kept per shape, so a new x of the same shape (a finite
    difference, the next batch) is computed with the first one."""

    def __init__(self):
        self._padded = {}

    def forward(self, x, w, b, **settings):
        kept = self._padded.setdefault(x.shape, x.copy())
        return reference.forward(kept, w, b, **settings)


def test_a_forward_that_keeps_its_first_x_is_named_not_blamed_on_dx():
    case = check_layer(resolve_geometry("3x6x6", "4x3x3x3", padding=1), PaddedInputCachedByShape())
    assert case.tensor("O").passed and not case.tensor("dX").passed  # the first call's x is the one kept
    (found,) = [d for d in case.diagnoses if d.tensor == "dX"]
    assert found.kind == "input_not_read" and "computes with an x it kept" in case.cause
    assert "forward on new x of the same shape computed with the previous x" in case.failure_summary
