"""db summed over the wrong axes is named: by its shape, each size read as the layer's own (5 is the
batch size N), every reading given when sizes coincide; by its values when the shape comes out
right all the same (N == F). A correct db and a bias-free layer's are never diagnosed.

The layers are tests/implementations/bias_gradients.py: one course layer, its db computed the
right ways and the classic wrong ways. Each check is one case: 3x6x6 inputs and 4x3x3x3 kernels,
so F = H' = W' = 4, with a batch of 5 (N != F) or of 4 (N == F == H' == W')."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from convgrad.cli import cli
from convgrad.findings.bias_axes import shape_message, shape_readings
from convgrad.geometry import resolve_geometry
from zoo import spec

LAYERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "implementations")
CASE = ["--in", "3x6x6", "--kernels", "4x3x3x3"]


def check(impl: str, batch: int) -> tuple[int, dict]:
    result = CliRunner().invoke(cli, ["check", "--impl", impl, *CASE, "--batch", str(batch), "--json"])
    return result.exit_code, json.loads(result.stdout)["cases"][0]


def bias_layer(backward: str) -> str:
    return os.path.join(LAYERS, f"bias_gradients.py:conv_forward,{backward}")


def failing(case: dict) -> set[str]:
    return {t["name"] for t in case["tensors"] if not t["passed"]}


# backward, batch -> the row's status, the diagnosis kind, words of its message
WRONG = {
    # N = 5 != F = 4: the shape says which axes were kept
    ("conv_backward_per_image", 5): (
        "error", "db_per_image", ["db has shape 5 where the bias has 4 values", "5 is the batch size N",
                                  "dO.sum(axis=(1, 2, 3))", "db = dO.sum(axis=(0, 2, 3))"]),
    ("conv_backward_per_image_keepdims", 5): (
        "error", "db_per_image", ["shape 5x1x1x1", "5 is the batch size N", "kept by keepdims=True",
                                  "dO.sum(axis=(1, 2, 3), keepdims=True)"]),
    ("conv_backward_not_over_batch", 5): (
        "error", "db_per_image_and_kernel", ["5 is the batch size N, 4 the number of kernels F",
                                             "not over the batch", "dO.sum(axis=(2, 3))"]),
    ("conv_backward_not_over_positions", 5): (
        "error", "db_per_kernel_and_position", ["4 is the number of kernels F, 4 the output height H', 4 the "
                                                "output width W'", "dO.sum(axis=0)"]),
    ("conv_backward_total", 5): ("error", "db_total", ["db is a scalar", "dO summed over every axis"]),
    # the shape is right (W' == F, or sums of the right axes of the wrong values): the values say it
    ("conv_backward_channels_last_axes", 5): (
        "failed", "db_channels_last_axes", ["dO.sum(axis=(0, 1, 2))", "keeps W', whose size 4 happens to be"]),
    ("conv_backward_first_image", 5): ("failed", "db_first_image", ["dO[0].sum(axis=(1, 2))", "all 5 images"]),
    ("conv_backward_loop_assigns", 5): (
        "failed", "db_last_image", ["dO[-1].sum(axis=(1, 2))", "instead of adding to it (db += ...)"]),
    ("conv_backward_mean", 5): (
        "failed", "constant_factor", ["1/80", "an average over the batch and the output positions"]),
    # N == F == H' == W' = 4
    ("conv_backward_per_image", 4): (
        "failed", "db_per_image", ["dO.sum(axis=(1, 2, 3))",
                                   "only because the batch size N = 4 equals the number of kernels F"]),
    ("conv_backward_per_image_keepdims", 4): ("failed", "db_per_image", ["only because the batch size N = 4"]),
    ("conv_backward_not_over_batch", 4): (
        "error", "db_wrong_axes", ["shape 4x4", "fit 2 readings", "as N x F (4 is the batch size N, 4 the number of "
                                   "kernels F)", "or as H' x W'"]),
    ("conv_backward_not_over_positions", 4): ("error", "db_wrong_axes", ["as F x H' x W'", "or as N x H' x W'"]),
    ("conv_backward_first_image", 4): ("failed", "db_first_image", ["all 4 images"]),
    ("conv_backward_mean", 4): ("failed", "constant_factor", ["1/64"]),
}


@pytest.mark.parametrize("backward, batch", list(WRONG), ids=[f"{b}-N{n}" for b, n in WRONG])
def test_a_db_over_the_wrong_axes_is_named(backward, batch):
    status, kind, words = WRONG[backward, batch]
    code, case = check(bias_layer(backward), batch)
    assert code == 1 and failing(case) == {"db"}, case["reason"]
    row = next(t for t in case["tensors"] if t["name"] == "db")
    assert row["status"] == status
    diagnoses = [d for d in case["diagnosis"] if d["tensor"] == "db"]
    assert [d["kind"] for d in diagnoses] == [kind], case["diagnosis"]
    for phrase in words:
        assert phrase in diagnoses[0]["message"], (phrase, diagnoses[0]["message"])
    assert diagnoses[0]["short"] in case["reason"]  # the one-line summary says it too


@pytest.mark.parametrize("batch", [5, 4])
@pytest.mark.parametrize("backward", ["conv_backward", "conv_backward_keepdims"])
def test_a_right_db_passes_with_no_diagnosis(backward, batch):
    code, case = check(bias_layer(backward), batch)
    assert code == 0 and case["status"] == "passed" and case["diagnosis"] == [], case["reason"]


def test_a_bias_free_layer_gets_no_db_diagnosis_when_every_size_is_4():
    code, case = check(os.path.join(LAYERS, "no_bias.py:ConvNoBias"), 4)
    assert code == 0 and case["diagnosis"] == []
    assert next(t for t in case["tensors"] if t["name"] == "db")["absent"] == "no bias"
    code, case = check(os.path.join(LAYERS, "no_bias.py:ConvNoBiasTransposedGrad"), 4)  # dK wrong, no bias
    assert code == 1 and failing(case) == {"dK"}
    assert {d["tensor"] for d in case["diagnosis"]} == {"dK"}


def test_a_right_db_next_to_a_wrong_dx_is_not_diagnosed_when_every_size_is_4():
    code, case = check(spec("KernelsNotRotated"), 4)
    assert code == 1 and failing(case) == {"dX"}
    assert [d["kind"] for d in case["diagnosis"]] == ["kernels_not_rotated"]


# --- shapes no layer above returns ------------------------------------------------------------


def readings(shape, in_shape="3x6x6", kernels="2x3x3x3", batch=5):
    geometry = resolve_geometry(in_shape, kernels, batch=batch)
    found = shape_readings(geometry, shape)
    return [r.kind for r in found], (shape_message(geometry, shape, found) if found else None)


def test_the_shape_of_the_issue_reads_as_the_batch_with_an_axis_of_size_1():
    kinds, (kind, message, short) = readings((5, 1))
    assert kinds == [kind] == ["db_per_image"]
    assert "db has shape 5x1 where the bias has 2 values, one per kernel: 5 is the batch size N; the 1 is an " \
           "axis of size 1" in message
    assert short == "db was summed over the kernels instead of the batch (shape N)"


def test_right_sums_in_a_kept_shape_and_a_lone_kernel_are_not_called_wrong_axes():
    assert readings((1, 2, 1, 1))[0] == ["db_shape"]
    kinds, (_, message, _) = readings((), kernels="1x3x3x3")  # F = 1: the sum of everything is db
    assert kinds == ["db_shape"] and "db is a scalar where the bias has one value" in message


def test_every_reading_is_given_when_sizes_coincide_and_none_when_no_size_fits():
    kinds, (kind, message, short) = readings((4, 4), in_shape="3x6", kernels="4x3x3", batch=4)  # N == F == L'
    assert kinds == ["db_per_image_and_kernel", "db_per_kernel_and_position", "db_per_image_and_position"]
    assert kind == "db_wrong_axes" and short == "db was summed over the wrong axes (shape N x F or F x L' or N x L')"
    assert readings((7,)) == ([], None)
    assert readings((4, 4, 2))[0] == ["db_per_kernel_and_position"]  # channels last: H' x W' x F
