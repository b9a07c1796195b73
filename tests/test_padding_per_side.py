"""Padding that differs before and after an axis: TensorFlow's 'SAME' at a stride (the odd pixel
after), or given per side as before,after ('0,1', '0,1x1,2', [[0, 1], [1, 2]]).

The geometry holds it (padding before, padding_after), the reference layer and every step explain
shows compute with it (against a direct loop convolution, and torch's F.pad + conv), layers get it
as the word 'same' or as (before, after) pairs, and a layer that takes one int per axis is skipped
rather than handed something it misreads. Test layers: tests/implementations/tf_same.py (a
Keras-style Conv2D) and tests/implementations/pad_widths.py (np.pad-style widths)."""

from __future__ import annotations

import itertools
import json
import math
import os
import textwrap
from dataclasses import replace

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import assert_bad_input
from convgrad import reference
from convgrad.cli import cli
from convgrad.errors import GeometryError
from convgrad.geometry import LayerGeometry, memory_estimate_bytes, resolve_geometry
from convgrad.suite import load_suite

HERE = os.path.dirname(os.path.abspath(__file__))
TF_SAME = os.path.join(HERE, "implementations", "tf_same.py")
PAD_WIDTHS = os.path.join(HERE, "implementations", "pad_widths.py")


def run(*args: str):
    return CliRunner().invoke(cli, list(args), env={"COLUMNS": "120"})


def check_json(*args: str) -> tuple[int, dict]:
    result = run("check", *args, "--json")
    return result.exit_code, json.loads(result.stdout)["cases"][0]


def failing(case: dict) -> set[str]:
    return {t["name"] for t in case["tensors"] if not t["passed"]}


# The geometry ---------------------------------------------------------------------------------


def tensorflow_same(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """tf.nn.convolution's 'SAME', as its documentation states it."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + dilation * (kernel - 1) + 1 - size, 0)
    return total // 2, total - total // 2


@pytest.mark.parametrize("size, kernel, stride, dilation", [
    (6, 3, 2, 1), (7, 3, 2, 1), (8, 4, 3, 1), (5, 5, 2, 1), (9, 2, 2, 1), (10, 3, 3, 2), (4, 1, 2, 1), (3, 3, 4, 1),
])
def test_same_at_a_stride_is_tensorflows_padding(size, kernel, stride, dilation):
    g = resolve_geometry(f"2x{size}", f"3x2x{kernel}", stride=stride, dilation=dilation, padding="same")
    assert g.padding_pairs == (tensorflow_same(size, kernel, stride, dilation),)
    assert g.out_spatial == (math.ceil(size / stride),)


def test_same_at_stride_1_is_unchanged():
    assert resolve_geometry("2x7x7", "3x2x3x5", padding="same").padding_pairs == ((1, 1), (2, 2))
    with pytest.raises(GeometryError, match=r"cannot be split evenly.*per side like padding=0,1x1,2 \(before,after\)"):
        resolve_geometry("2x6x7", "3x2x2x4", padding="same")


def test_padding_per_side_is_read_kept_and_written_back():
    g = resolve_geometry("3x6x7", "4x3x3x2", stride=2, padding="0,1x1,0")
    assert (g.padding, g.padding_after, g.padding_end) == ((0, 1), (1, 0), (1, 0))
    assert g.uneven_padding and g.padding_totals == (1, 1) and g.padded_spatial == (7, 8)
    assert g.out_spatial == ((6 + 1 - 3) // 2 + 1, (7 + 1 - 2) // 2 + 1)
    assert g.conv_settings()["padding"] == ((0, 1), (1, 0))
    assert "padding 0,1x1,0" in g.describe() and g.brief() == "3x6x7 * 4x3x3x2 s2 p0,1x1,0"
    assert g.settings()["padding"] == [[0, 1], [1, 0]]
    assert g.changed_settings()["padding"] == "0,1x1,0"
    # Every way of writing it gives the same layer back.
    for written in (g.padding_text, g.settings()["padding"], ((0, 1), (1, 0)), np.array([[0, 1], [1, 0]]), "0 , 1 X 1 , 0"):
        assert resolve_geometry("3x6x7", "4x3x3x2", stride=2, padding=written) == g
    assert resolve_geometry("3x6x7", "4x3x3x2", padding="0,1").padding_pairs == ((0, 1), (0, 1))
    assert resolve_geometry("3x6x7", "4x3x3x2", padding="2,1x0").padding_text == "2,1x0"
    assert resolve_geometry("3x6x7", "4x3x3x2", padding=[[1, 1], [2, 2]]).padding_after is None


def test_equal_layers_compare_and_hash_equal_however_they_were_made():
    even = resolve_geometry("3x6x7", "4x3x3x3", padding=1)
    spelled = LayerGeometry(in_shape=(3, 6, 7), kernel_shape=(4, 3, 3, 3), batch=1, stride=(1, 1), padding=(1, 1),
                            dilation=(1, 1), groups=1, dtype="float64", padding_after=(1, 1))
    assert spelled == even and hash(spelled) == hash(even) and spelled.padding_after is None
    assert replace(even, padding=(2, 2)).padding_pairs == ((2, 2), (2, 2))  # even stays even
    uneven = replace(even, padding_after=(2, 1))
    assert uneven != even and uneven.out_spatial == (7, 7) and uneven.y_shape == (1, 4, 7, 7)
    assert memory_estimate_bytes(uneven) > memory_estimate_bytes(even)


@pytest.mark.parametrize("padding, words", [
    (",1", ["--padding ,1 leaves a side empty", "before,after like 0,1"]),
    ("1,", ["--padding 1, leaves a side empty"]),
    ("0,1,2", ["--padding 0,1,2 has 3 numbers for one axis", "before,after"]),
    ("0,1x0,1x0,1", ["--padding 0,1x0,1x0,1 has 3 axes but the input has 2 spatial axes", "like --padding 0,1x0,1"]),
    ("0,-1", ["--padding 0,-1 has -1; each value must be zero or more"]),
    ("0,a", ["'a' is not a whole number", "0,1x1,2 (axis by axis)"]),
])
def test_bad_padding_per_side_is_one_line_naming_the_fix(padding, words):
    result = run("check", "--in", "3x6x6", "--kernels", "4x3x3x3", "--padding", padding)
    for word in words:
        assert_bad_input(result, word)


# The reference --------------------------------------------------------------------------------


def loop_forward(x, w, b, stride, pairs, dilation, groups):
    """O by the definition, one product at a time: Xp[n,c, s*o + d*u - before] (0 outside X)."""
    n, c, *spatial = x.shape
    f, depth, *kernel = w.shape
    out = [(h + bf + af - d * (k - 1) - 1) // s + 1 for h, k, s, (bf, af), d in zip(spatial, kernel, stride, pairs, dilation)]
    y = np.zeros((n, f, *out))
    for i, kk, o in itertools.product(range(n), range(f), np.ndindex(*out)):
        group = kk // (f // groups)
        total = b[kk]
        for cc, u in itertools.product(range(depth), np.ndindex(*kernel)):
            position = [s * oo + d * uu - bf for s, oo, d, uu, (bf, _) in zip(stride, o, dilation, u, pairs)]
            if all(0 <= p < h for p, h in zip(position, spatial)):
                total += x[(i, group * depth + cc, *position)] * w[(kk, cc, *u)]
        y[(i, kk, *o)] = total
    return y


def loop_backward(dy, x, w, stride, pairs, dilation, groups):
    """dX and dK by sending each dO entry back along the products it summed."""
    n, c, *spatial = x.shape
    f, depth, *kernel = w.shape
    dx, dw = np.zeros_like(x), np.zeros_like(w)
    for i, kk, o in itertools.product(range(n), range(f), np.ndindex(*dy.shape[2:])):
        group = kk // (f // groups)
        for cc, u in itertools.product(range(depth), np.ndindex(*kernel)):
            position = [s * oo + d * uu - bf for s, oo, d, uu, (bf, _) in zip(stride, o, dilation, u, pairs)]
            if all(0 <= p < h for p, h in zip(position, spatial)):
                dx[(i, group * depth + cc, *position)] += dy[(i, kk, *o)] * w[(kk, cc, *u)]
                dw[(kk, cc, *u)] += dy[(i, kk, *o)] * x[(i, group * depth + cc, *position)]
    return dx, dw


CASES = [  # in, kernels, stride, padding, dilation, groups
    ("2x6x6", "4x2x3x3", 2, "same", 1, 1),
    ("2x5x6", "2x1x2x3", "2x1", "0,2x1,0", 1, 2),
    ("3x7", "2x3x3", 3, "1,2", 2, 1),
    ("2x4x5x4", "2x2x2x3x2", "1x2x2", "same", 1, 1),
    ("4x6x5", "4x1x3x3", 1, "0,1x2,1", "2x1", 4),
]


@pytest.mark.parametrize("in_shape, kernels, stride, padding, dilation, groups", CASES)
def test_the_reference_pads_each_side_as_asked(in_shape, kernels, stride, padding, dilation, groups):
    g = resolve_geometry(in_shape, kernels, batch=2, stride=stride, padding=padding, dilation=dilation, groups=groups)
    assert g.uneven_padding
    rng = np.random.default_rng(7)
    x, w, b, dy = (rng.standard_normal(shape) for shape in (g.x_shape, g.w_shape, g.b_shape, g.y_shape))
    settings = g.conv_settings()
    expected = loop_forward(x, w, b, g.stride, g.padding_pairs, g.dilation, g.groups)
    assert expected.shape == g.y_shape
    np.testing.assert_allclose(reference.forward(x, w, b, **settings), expected, rtol=1e-12, atol=1e-12)
    dx, dw, db = reference.backward(dy, x, w, b, **settings)
    loop_dx, loop_dw = loop_backward(dy, x, w, g.stride, g.padding_pairs, g.dilation, g.groups)
    np.testing.assert_allclose(dx, loop_dx, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dw, loop_dw, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(db, dy.sum(axis=(0, *range(2, dy.ndim))))
    # pad and crop, the steps explain shows, undo each other side by side
    padded = reference.pad(x, g.padding_pairs)
    assert padded.shape[2:] == g.padded_spatial
    np.testing.assert_array_equal(reference.crop(padded, g.padding_pairs), x)


@pytest.mark.parametrize("in_shape, kernels, stride, padding, dilation, groups", CASES)
@pytest.mark.slow
def test_the_reference_agrees_with_torch_pad_then_conv(in_shape, kernels, stride, padding, dilation, groups):
    torch = pytest.importorskip("torch")
    g = resolve_geometry(in_shape, kernels, stride=stride, padding=padding, dilation=dilation, groups=groups)
    rng = np.random.default_rng(3)
    x, w, b, dy = (rng.standard_normal(shape) for shape in (g.x_shape, g.w_shape, g.b_shape, g.y_shape))
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    conv = getattr(torch.nn.functional, f"conv{g.ndim}d")
    widths = [side for pair in reversed(g.padding_pairs) for side in pair]  # F.pad: last axis first
    y = conv(torch.nn.functional.pad(tx, widths), tw, tb, stride=g.stride, dilation=g.dilation, groups=g.groups)
    y.backward(torch.tensor(dy))
    settings = g.conv_settings()
    np.testing.assert_allclose(reference.forward(x, w, b, **settings), y.detach().numpy(), rtol=1e-10, atol=1e-12)
    for mine, theirs in zip(reference.backward(dy, x, w, b, **settings), (tx.grad, tw.grad, tb.grad)):
        np.testing.assert_allclose(mine, theirs.numpy(), rtol=1e-10, atol=1e-12)


# Layers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("args, padding", [
    (["--in", "3x6x6", "--kernels", "4x3x3x3", "--stride", "2", "--padding", "same"], [[0, 1], [0, 1]]),
    (["--in", "3x6x8", "--kernels", "4x3x5x3", "--stride", "3x2", "--padding", "same"], [[1, 1], [0, 1]]),
    (["--in", "2x6x7", "--kernels", "3x2x2x4", "--padding", "0,1x1,2", "--batch", "2"], [[0, 1], [1, 2]]),
])
def test_a_keras_style_layer_gets_same_at_a_stride_and_passes(args, padding):
    code, case = check_json("--impl", f"{TF_SAME}:Conv2D", *args)
    assert code == 0, case
    assert case["status"] == "passed" and case["settings"]["padding"] == padding
    assert not failing(case)


def test_a_keras_style_layer_that_pads_evenly_fails_on_the_output():
    code, case = check_json("--impl", f"{TF_SAME}:Conv2DEvenPads", "--in", "3x6x6", "--kernels", "4x3x3x3",
                            "--stride", "2", "--padding", "same")
    assert code == 1 and case["status"] == "failed"
    assert "O" in failing(case) and case["reason"].startswith("O:")
    assert "The forward is not a convolution" in run(
        "check", "--impl", f"{TF_SAME}:Conv2DEvenPads", "--in", "3x6x6", "--kernels", "4x3x3x3", "--stride", "2",
        "--padding", "same").output
    # Where TensorFlow's padding is even (7 rows at stride 2), the even layer is right.
    code, case = check_json("--impl", f"{TF_SAME}:Conv2DEvenPads", "--in", "3x7x7", "--kernels", "4x3x3x3",
                            "--stride", "2", "--padding", "same")
    assert code == 0 and case["settings"]["padding"] == [1, 1]


def test_a_keras_style_layer_skips_padding_that_is_no_word_of_its():
    code, case = check_json("--impl", f"{TF_SAME}:Conv2D", "--in", "3x6x6", "--kernels", "4x3x3x3", "--padding", "1,0")
    assert code == 1 and case["status"] == "skipped"  # nothing was checked
    assert "takes padding 'valid' or 'same' only (padding_modes) and this case needs padding 1,0" in case["skipped"]


def test_a_layer_taking_pad_widths_gets_pairs_only_where_the_sides_differ():
    for padding in ("0,1x1,0", "1x2"):
        code, case = check_json("--impl", f"{PAD_WIDTHS}:conv_forward,conv_backward", "--in", "3x6x7",
                                "--kernels", "4x3x3x2", "--stride", "2", "--padding", padding)
        assert code == 0 and case["status"] == "passed", case
    code, case = check_json("--impl", f"{PAD_WIDTHS}:conv_forward,conv_backward_centre_crop", "--in", "3x6x7",
                            "--kernels", "4x3x3x2", "--stride", "2", "--padding", "0,1x1,0")
    assert code == 1 and failing(case) == {"dX"}
    assert "looks like the padding was cropped one pixel off" in case["reason"]


def test_a_layer_that_does_not_declare_padding_pairs_is_skipped_on_uneven_cases(tmp_path):
    path = tmp_path / "int_padding.py"
    path.write_text(textwrap.dedent("""\
        from numpy.lib.stride_tricks import sliding_window_view
        import numpy as np

        def forward(x, w, b, stride=1, padding=0):
            xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
            view = sliding_window_view(xp, w.shape[2:], axis=(2, 3))[:, :, ::stride, ::stride]
            return np.einsum("nchwij,fcij->nfhw", view, w) + b.reshape(1, -1, 1, 1)

        def backward(dy, x, w, b, stride=1, padding=0):
            raise NotImplementedError
    """))
    code, case = check_json("--impl", str(path), "--in", "3x6x6", "--kernels", "4x3x3x3", "--stride", "2",
                            "--padding", "same")
    assert code == 1 and case["status"] == "skipped"  # nothing was checked
    assert ("takes one padding per axis, and this case pads 0,1 (before,after); declare uneven_padding = true if it "
            "takes a (before, after) pair per axis") in case["skipped"]


@pytest.mark.parametrize("impl", ["torch", "jax"])
@pytest.mark.slow
def test_the_framework_built_ins_pad_each_side(impl):
    pytest.importorskip(impl)
    code, case = check_json("--impl", impl, "--in", "2x6x7", "--kernels", "3x2x3x2", "--stride", "2",
                            "--padding", "0,2x1,0")
    assert code == 0 and case["status"] == "passed", case


def test_a_suite_file_takes_padding_per_side(tmp_path):
    path = tmp_path / "uneven.toml"
    path.write_text('in = "2x6x6"\nkernels = "3x2x3x3"\n[[case]]\npadding = "0,1x0,1"\nstride = 2\n'
                    '[[case]]\npadding = [[1, 0], [0, 2]]\n[[case]]\npadding = "same"\nstride = 2\n')
    cases = load_suite(str(path)).cases
    assert [c.geometry.padding_text for c in cases] == ["0,1", "1,0x0,2", "0,1"]
    assert cases[0].name == "case 1: 2x6x6 * 3x2x3x3 s2 p0,1"
    result = run("check", "--config", str(path), "-q")
    assert result.exit_code == 0, result.output


# explain --------------------------------------------------------------------------------------


def test_explain_shows_same_at_a_stride():
    symmetric = run("explain", "--in", "3x7x7", "--kernels", "2x3x3x3", "--stride", "2", "--padding", "same")
    assert symmetric.exit_code == 0, symmetric.output
    assert "padding 1  dilation 1" in symmetric.output  # 7 rows at stride 2: TensorFlow pads 1 on each side
    result = run("explain", "--in", "3x6x6", "--kernels", "2x3x3x3", "--stride", "2", "--padding", "same")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "stride 2 padding 0,1 dilation 1" in text
    assert "Xp is X with the padding 0,1 (0 zeros before, 1 zero after): 3x7x7 per sample" in text
    assert "H: ⌊(6 + 0 + 1 − 1·(3−1) − 1) / 2⌋ + 1 = 3" in text
    assert "crop the padding 0,1 (0 zeros before, 1 zero after) off 3x6x6" in text
    assert "HOLDS" in text
    derivation = json.loads(run("explain", "--in", "3x6x6", "--kernels", "2x3x3x3", "--stride", "2",
                                "--padding", "same", "--json").stdout)
    assert derivation["settings"]["padding"] == [[0, 1], [0, 1]]
