"""The adapter model at its edges: where a layer keeps a bias under a name convgrad does not know,
takes padding as np.pad pairs, runs one image at a time without a bias, or declares something
that does not fit it. Each edge once went wrong (a pass with db unchecked, a false alarm, a
declaration ignored, the layer blamed for a typo); the layers are in tests/implementations/edge_layers/."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from conftest import assert_bad_input
from convgrad.cli import cli

EDGES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "implementations", "edge_layers")
CASE = ("--in", "2x6x6", "--kernels", "3x2x3x3", "--batch", "2")


def check(spec: str, *args: str):
    return CliRunner().invoke(cli, ["check", "--impl", os.path.join(EDGES, spec), *args], env={"COLUMNS": "120"})


def case_of(spec: str, *args: str) -> tuple[int, dict]:
    result = check(spec, *args, "--json")
    return result.exit_code, json.loads(result.stdout)["cases"][0]


def test_a_bias_convgrad_cannot_find_is_never_taken_for_no_bias():
    code, case = case_of("obj_offset.py:Conv2D", *CASE)  # db returned, and wrong
    assert code == 1
    assert "backward returned a db, but convgrad found no bias to set on Conv2D" in case["reason"]
    assert_bad_input(check("obj_offset_flag.py:Conv2D", *CASE), "takes bias=True but keeps its bias in none of")


@pytest.mark.slow
def test_a_torch_bias_under_another_name_is_checked_as_the_bias():
    pytest.importorskip("torch")
    code, case = case_of("torch_shift.py:MyConv", *CASE)
    assert code == 1 and {t["name"] for t in case["tensors"] if not t["passed"]} == {"db"}


@pytest.mark.parametrize("padding", ["1", "0,1", "2,0x0,1"])
def test_padding_taken_as_np_pad_pairs_gets_pairs_in_every_case(padding):
    code, case = case_of("np_pairs.py", *CASE, "--padding", padding)
    assert code == 0, case["reason"]


def test_one_image_at_a_time_without_a_bias():
    code, case = case_of("single_nobias.py", *CASE, "--stride", "2")
    assert code == 0, case["reason"]
    assert case["tensors"][-1]["absent"] == "no bias"


def test_a_lazy_layer_object_of_one_image_makes_its_weights_from_one_image():
    code, case = case_of("obj_lazy_single.py:Conv2D", *CASE)
    assert code == 0, case["reason"]


def test_a_forward_without_a_bias_parameter_is_a_bias_free_layer():
    code, case = case_of("fn_nobias.py", *CASE)
    assert code == 0, case["reason"]
    assert case["tensors"][-1]["absent"] == "no bias"


def test_a_declared_call_on_a_kwargs_function_still_takes_every_setting():
    code, case = case_of("form_kwargs.py", "--in", "2x7x7", "--kernels", "3x2x3x3", "--stride", "2", "--padding", "1")
    assert code == 0, case["reason"]


def test_one_int_with_padding_words_keeps_uneven_same_cases():
    code, case = case_of("tf_same_oneint.py:Conv2D", "--in", "2x6x7", "--kernels", "3x2x3x3", "--stride", "2",
                         "--padding", "same")
    assert code == 0 and case["skipped"] is None, case["skipped"] or case["reason"]


def test_an_engine_whose_tensors_record_gradients_only_when_asked():
    code, case = case_of("engine_rg.py", *CASE)
    assert code == 0, case["reason"]


def test_a_setter_declared_with_keywords_is_called_as_written():
    code, case = case_of("obj_setter.py:Conv2D", *CASE)
    assert code == 0, case["reason"]


def test_a_parameter_object_is_set_through_its_data():
    code, case = case_of("obj_tensorparam.py:Conv2D", *CASE)
    assert code == 0, case["reason"]


def test_a_toml_declaration_can_set_a_key_back_to_its_default():
    code, case = case_of("decl_override.py", "--in", "2x6x7", "--kernels", "3x2x3x3",
                         "--impl-config", os.path.join(EDGES, "override.toml"))
    assert code == 0 and case["skipped"] is None


def test_a_crash_is_located_in_the_layers_file_never_in_convgrads():
    code, case = case_of("kwonly.py", *CASE)
    assert code == 1
    assert "(at functions.py" not in case["reason"] and "missing 1 required keyword-only argument" in case["reason"]


@pytest.mark.parametrize("spec, message", [
    ("obj_declared_typo.py:Conv2D", "attributes declares weights = 'parms.kernel', and Conv2D holds no array there"),
    ("form_lr.py", "backward = 'conv_back(dy, x, w, lr)' names lr, which convgrad does not hand this backward"),
    ("torch_single.py:SingleImageConv", "declare batched, which cannot apply to a torch layer"),
])
def test_a_declaration_that_does_not_fit_the_layer_is_bad_input(spec, message):
    if spec.startswith("torch"):
        pytest.importorskip("torch")
    assert_bad_input(check(spec, *CASE), message)


def test_a_crash_on_a_setting_per_axis_names_one_int_when_one_value_per_axis_runs():
    code, case = case_of("int_settings.py", "--in", "2x6x5", "--kernels", "3x2x3x2", "--stride", "2x1")
    assert code == 1 and case["reason"].endswith(
        "this case needs stride 2x1: if the layer takes one int for every axis, declare one_int = true and such cases "
        "are skipped")


def test_no_limit_is_suggested_when_the_case_with_the_limit_lifted_fails_too():
    """A dilation bug that fails on a rectangular input fails on the square one too: declaring
    square_only would only hide it."""
    code, case = case_of("int_settings.py:forward_dilated,backward_dilated", "--in", "2x7x8", "--kernels", "3x2x3x3",
                         "--dilation", "2")
    assert code == 1 and "dK" in {t["name"] for t in case["tensors"] if not t["passed"]} or "backward" in case["reason"]
    assert "square_only" not in json.dumps(case) and "declare" not in (case["reason"] or "")


def test_an_autograd_engine_without_its_declaration_is_told_the_declaration(tmp_path):
    path = tmp_path / "engine.py"
    path.write_text("class Tensor:\n    def __init__(self, data):\n        self.data, self.grad = data, None\n"
                    "    def backward(self):\n        pass\n\n\ndef conv2d(x, w, b, stride=1):\n    return x\n")
    for spec in (str(path), f"{path}:conv2d"):
        result = CliRunner().invoke(cli, ["check", "--impl", spec, *CASE])
        assert_bad_input(result, 'declare CONVGRAD = {"tensor": "Tensor", "forward": "conv2d"}')


def test_a_constructor_that_takes_padding_as_a_word_is_told_padding_modes(tmp_path):
    path = tmp_path / "keras_style.py"
    path.write_text(
        "import numpy as np\n\n\nclass Conv2D:\n"
        "    def __init__(self, filters, kernel_size, strides=(1, 1), padding='valid'):\n"
        "        self.padding = padding.lower()\n"
        "        self.kernel = np.zeros((kernel_size, kernel_size, 2, filters))\n\n"
        "    def forward(self, x):\n        return x\n\n    def backward(self, dy):\n        return dy\n")
    assert_bad_input(CliRunner().invoke(cli, ["check", "--impl", f"{path}:Conv2D", *CASE]),
                     'declare padding_modes = ["valid", "same"]: it takes padding as a word')


def test_gradients_named_as_tutorials_name_them_are_found():
    code, case = case_of("obj_dfilters.py:ConvLayer", *CASE, "--stride", "2")
    assert code == 0, case["reason"]


def test_padding_words_go_over_in_the_layers_own_spelling():
    code, case = case_of("tf_same_upper.py:conv2d,conv2d_backward", "--in", "3x7x6", "--kernels", "4x3x2x2",
                         "--stride", "2", "--padding", "same")
    assert code == 0, case["reason"]


def test_gradients_accumulated_until_clear_gradients_are_cleared_as_a_training_loop_does():
    code, case = case_of("clear_gradients.py:AccumConv", *CASE)
    assert code == 0, case["reason"]


def test_weights_kept_in_float32_stay_float32_and_the_layer_is_checked_as_it_runs(tmp_path):
    path = tmp_path / "f32_weights.py"
    path.write_text(
        "import numpy as np\nfrom convgrad import reference\n\n\nclass Conv2D:\n"
        "    def __init__(self, in_channels, out_channels, kernel_size):\n"
        "        self.W = np.zeros((out_channels, in_channels, kernel_size, kernel_size), np.float32)\n"
        "        self.b = np.zeros(out_channels, np.float32)\n\n"
        "    def forward(self, x):\n        self.x = x\n"
        "        return reference.forward(x, self.W, self.b, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1)\n\n"
        "    def backward(self, dy):\n"
        "        dx, self.dW, self.db = reference.backward(dy, self.x, self.W, self.b, stride=(1, 1), padding=(0, 0),\n"
        "                                                  dilation=(1, 1), groups=1)\n        return dx\n")
    code, case = case_of(f"{path}:Conv2D", *CASE)
    assert code == 1  # its float32 weights round the float64 case's: it is no float64 layer
    code, case = case_of(f"{path}:Conv2D", *CASE, "--dtype", "float32")
    assert code == 0, case["reason"]


def test_weights_held_in_another_layout_are_refused_not_reshaped():
    code, case = case_of("matrix_weights.py:Conv", *CASE)
    assert code == 1 and "holds W as 18x3, which is no layout of 3x2x3x3" in case["reason"]


def test_weights_and_gradients_in_lists_are_reached_by_index(tmp_path):
    config = tmp_path / "lists.toml"
    config.write_text('[impl]\nattributes = {weights = "params[0]", bias = "params[1]", grad_weights = "grads[0]", '
                      'grad_bias = "grads[1]"}\n')
    code, case = case_of("list_params.py:Conv", *CASE, "--impl-config", str(config))
    assert code == 1 and {t["name"] for t in case["tensors"] if not t["passed"]} == {"db"}  # db of item 0 only


def test_a_declared_call_names_the_settings_a_function_takes_by_position(tmp_path):
    """conv(inputs, kernel, bias, a, c): the names say nothing, the declared call says which."""
    path = tmp_path / "positional.py"
    path.write_text(
        "from convgrad import reference\n\n"
        'CONVGRAD = {"forward": "conv(x, w, b, stride, padding)", "backward": "conv_grad(dy, x, w, stride, padding)",\n'
        '            "one_int": True}\n\n\n'
        "def conv(inputs, kernel, bias, a, c):\n"
        "    return reference.forward(inputs, kernel, bias, stride=(a, a), padding=(c, c), dilation=(1, 1), groups=1)\n\n\n"
        "def conv_grad(grad, inputs, kernel, a, c):\n"
        "    return reference.backward(grad, inputs, kernel, None, stride=(a, a), padding=(c, c), dilation=(1, 1),\n"
        "                              groups=1)\n")
    code, case = case_of(str(path), *CASE, "--stride", "2", "--padding", "1")
    assert code == 0, case["reason"]
    skipped = CliRunner().invoke(cli, ["check", "--impl", str(path), *CASE, "--dilation", "2", "--json"])
    assert "do not accept the keyword dilation" in json.loads(skipped.stdout)["cases"][0]["skipped"]


def test_a_view_of_the_weights_made_once_is_named_as_such():
    """W_mat = W.reshape(...) in the constructor: assigning new weights (as convgrad and a training
    loop that rebinds W do) leaves the forward on the old ones."""
    code, case = case_of("view_weights.py:Conv2D", *CASE)
    assert code == 1 and "looks like the forward does not read the weights it was given" in case["reason"]
