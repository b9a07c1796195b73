"""The pytest API: convgrad.check returns the report, assert_conv_gradients raises with the table."""

from __future__ import annotations

import os

import numpy as np
import pytest

import convgrad
from convgrad import reference
from convgrad.errors import ConvgradError
from convgrad.testing import assert_conv_gradients

ZOO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "zoo")


def test_check_returns_the_case_report():
    report = convgrad.check(in_shape=(3, 8, 8), kernel_shape=(4, 3, 3, 3), stride=2, padding=1)
    assert isinstance(report, convgrad.CaseReport) and report.passed
    assert [t.name for t in report.tensors] == ["O", "dX", "dK", "db"]


def test_assert_conv_gradients_passes_on_the_reference():
    report = assert_conv_gradients("reference", in_shape=(3, 20, 20), kernel_shape=(5, 3, 3, 3))
    assert report.passed


def test_assert_conv_gradients_raises_with_the_table_naming_dx():
    with pytest.raises(AssertionError) as raised:
        assert_conv_gradients(os.path.join(ZOO, "kernels_not_rotated.py"), in_shape=(3, 6, 6), kernel_shape=(4, 3, 3, 3))
    message = str(raised.value)
    assert message.startswith("convgrad: dX of ")
    first = message.splitlines()[0]  # what pytest shows first: the tensor and the why
    assert first.endswith("does not match: dX: 108 of 108 coordinates differ, looks like the kernels were not rotated 180°; "
                          "later calls fail too: second call, memory layouts 1, memory layouts 2, memory layouts 3, "
                          "memory layouts 4, memory layouts 5")
    assert "tensor  expected" in message and "FAIL: dX does not match" in message
    assert "\x1b[" not in message


def test_assert_names_every_failing_tensor_including_o():
    with pytest.raises(AssertionError, match="convgrad: O of .* does not match"):
        assert_conv_gradients(os.path.join(ZOO, "true_convolution_forward.py"), in_shape="2x5x5", kernel_shape="2x2x3x3")


def test_any_object_with_forward_and_backward_and_bias_shaped_f_by_1():
    class Layer:
        def forward(self, x, w, b, **settings):
            return reference.forward(x, w, b, **settings)

        def backward(self, dy, x, w, b, **settings):
            dx, dw, db = reference.backward(dy, x, w, b, **settings)
            return dx, dw, db.reshape(-1, 1)

    assert assert_conv_gradients(Layer(), in_shape=(2, 5, 5), kernel_shape=(3, 2, 3, 3), batch=2).passed
    assert assert_conv_gradients(Layer, in_shape=(2, 7), kernel_shape=(4, 1, 3), groups=2).passed


def test_a_case_the_layer_cannot_express_is_not_a_pass():
    def forward(x, w, b, *, stride):
        return reference.forward(x, w, b, stride=stride, padding=(0, 0), dilation=(1, 1), groups=1)

    layer = type("NoPadding", (), {"forward": staticmethod(forward), "backward": staticmethod(forward)})
    with pytest.raises(AssertionError, match="do not accept the keyword padding, and this case needs padding 1x1"):
        assert_conv_gradients(layer, in_shape=(2, 5, 5), kernel_shape=(3, 2, 3, 3), padding=1)


def test_bad_geometry_raises_a_convgrad_error():
    with pytest.raises(ConvgradError, match="kernels expect 4 input channels"):
        convgrad.check(in_shape=(3, 8, 8), kernel_shape=(4, 4, 3, 3))


def test_float32_dtype_warning_is_reported_not_failed():
    class Float64Grads:
        def forward(self, x, w, b, **settings):
            return reference.forward(x, w, b, **settings)

        def backward(self, dy, x, w, b, **settings):
            return tuple(g.astype(np.float64) for g in reference.backward(dy, x, w, b, **settings))

    report = assert_conv_gradients(Float64Grads(), in_shape=(2, 5, 5), kernel_shape=(2, 2, 3, 3), dtype="float32")
    assert any("returned dX as float64 for float32 inputs" in w for w in report.warnings)


def test_check_takes_the_method_samples_and_timeout_of_the_command_line():
    from convgrad.testing import check

    sampled = check(in_shape=(3, 8, 8), kernel_shape=(4, 3, 3, 3), method="sample", samples=7, timeout=60)
    assert sampled.passed
    assert {t.name: t.checked for t in sampled.tensors if t.name != "O"} == {"dX": 7, "dK": 7, "db": 4}
    dense = check(in_shape=(3, 8, 8), kernel_shape=(4, 3, 3, 3), method="dense", differences="central")
    assert {t.method for t in dense.tensors if t.name != "O"} == {"dense"}


def test_check_refuses_an_unknown_method():
    from convgrad.errors import ConvgradError
    from convgrad.testing import check

    with pytest.raises(ConvgradError, match="method='fast' is not known"):
        check(in_shape=(3, 8, 8), kernel_shape=(4, 3, 3, 3), method="fast")


def _pytest_output(tmp_path, body: str) -> str:
    """Run a one-test file with pytest in a subprocess, as a user's suite would."""
    import subprocess
    import sys
    import textwrap

    from processes import convgrad_env

    test = tmp_path / "test_user_layer.py"
    test.write_text(textwrap.dedent(body))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env=convgrad_env(COLUMNS="100"),
    )
    assert done.returncode == 1, done.stdout + done.stderr
    return done.stdout


@pytest.mark.slow
def test_a_failing_assertion_shows_the_callers_line_not_convgrads_source(tmp_path):
    output = _pytest_output(tmp_path, f"""
        from convgrad.testing import assert_conv_gradients

        def test_layer():
            assert_conv_gradients({os.path.join(ZOO, "kernels_not_rotated.py")!r}, in_shape="3x6x6", kernel_shape="4x3x3x3")
    """)
    assert "assert_conv_gradients(" in output  # the user's own line is where the failure points
    assert "convgrad: dX of" in output and "FAIL: dX does not match" in output
    assert "testing.py" not in output and "raise AssertionError" not in output and "report = check(" not in output


@pytest.mark.slow
def test_bad_input_in_the_pytest_api_points_at_the_callers_line(tmp_path):
    output = _pytest_output(tmp_path, """
        from convgrad.testing import assert_conv_gradients

        def test_layer():
            assert_conv_gradients("reference", in_shape="3x20x20", kernel_shape="5x4x3x3")
    """)
    assert "GeometryError: kernels expect 4 input channels but in_shape has 3" in output
    assert "geometry.py" not in output and "testing.py" not in output
