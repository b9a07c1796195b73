"""Parsing and validating a conv layer's geometry: what is accepted, and how refusals read."""

from __future__ import annotations

import dataclasses
import tracemalloc

import numpy as np
import pytest

from convgrad.cli import CLI
from convgrad.errors import PYTHON, Audience, ConvgradError, GeometryError
from convgrad.geometry import LayerGeometry, parse_axes, parse_shape, resolve_geometry

SEED_IN = "3x20x20"
SEED_KERNELS = "5x3x3x3"


def refusal(*args, **kwargs) -> str:
    """The message of the GeometryError that resolve_geometry raises, in the command line's words
    (the catalogue below names flags); it must be one line."""
    with pytest.raises(GeometryError) as info:
        resolve_geometry(*args, **kwargs)
    return one_line(info.value, CLI)


def python_refusal(*args, **kwargs) -> GeometryError:
    with pytest.raises(GeometryError) as info:
        resolve_geometry(*args, **kwargs)
    return info.value


def one_line(error: ConvgradError, audience: Audience = PYTHON) -> str:
    message = error.render(audience)
    assert message, "refusal with an empty message"
    assert "\n" not in message and "\r" not in message, f"message is not one line: {message!r}"
    return message


def assert_mentions(message: str, *words: str) -> None:
    missing = [w for w in words if w not in message]
    assert not missing, f"{missing} not in {message!r}"


# --------------------------------------------------------------------------------------------
# parse_shape / parse_axes
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["3x20x20", "3×20×20", "3X20X20", "3,20,20", "3 x 20 x 20", " 3x20x20 ", "3, 20, 20"],
    ids=["x", "times-sign", "capital-X", "comma", "spaced", "padded", "comma-space"],
)
def test_parse_shape_separators(text):
    assert parse_shape(text, "--in") == (3, 20, 20)


@pytest.mark.parametrize(
    "value",
    [(3, 20, 20), [3, 20, 20], np.array([3, 20, 20]), (np.int64(3), 20, np.int32(20))],
    ids=["tuple", "list", "ndarray", "numpy-ints"],
)
def test_parse_shape_sequences(value):
    shape = parse_shape(value, "--in")
    assert shape == (3, 20, 20)
    assert all(type(v) is int for v in shape)


@pytest.mark.parametrize(
    "value, words, expected",
    [
        (2, (), (2,)),
        ("2", (), (2,)),
        ("2x1", (), (2, 1)),
        ("2×1", (), (2, 1)),
        ("2, 1", (), (2, 1)),
        ((2, 1), (), (2, 1)),
        ([1, 2, 3], (), (1, 2, 3)),
        ("same", ("valid", "same"), "same"),
        (" SAME ", ("valid", "same"), "same"),
        ("Valid", ("valid", "same"), "valid"),
    ],
    ids=[
        "int",
        "text-int",
        "per-axis-2x1",
        "per-axis-times-sign",
        "per-axis-comma",
        "tuple",
        "list-3d",
        "word-same",
        "word-case-and-space",
        "word-valid",
    ],
)
def test_parse_axes(value, words, expected):
    assert parse_axes(value, "--padding", words=words) == expected


@pytest.mark.parametrize(
    "text",
    ["3xa", "", "   ", "3x", "3x2.5", "0x20", "3x-1"],
    ids=["letter", "empty", "blank", "trailing-x", "fraction", "zero", "negative"],
)
def test_parse_shape_refusals(text):
    with pytest.raises(GeometryError) as info:
        parse_shape(text, "--in")
    message = one_line(info.value)
    assert_mentions(message, "--in", "3x20x20")


@pytest.mark.parametrize(
    "value",
    [(), [3, "20"], [3, 2.5], [3, True]],
    ids=["empty-sequence", "text-item", "float-item", "bool-item"],
)
def test_parse_shape_refuses_bad_sequences(value):
    with pytest.raises(GeometryError) as info:
        parse_shape(value, "--in")
    assert_mentions(one_line(info.value), "--in", "3x20x20")


@pytest.mark.parametrize(
    "value, words, key",
    [
        ("full", ("valid", "same"), "valid, same"),
        ("same", (), "2x1"),
        ("2xa", (), "whole number"),
        ("", (), "empty"),
        (True, (), "whole number"),
        (1.5, (), "whole number"),
        ([2, 1.5], (), "whole number"),
    ],
    ids=["unknown-word", "word-not-allowed", "letter", "empty", "bool", "float", "float-item"],
)
def test_parse_axes_refusals(value, words, key):
    with pytest.raises(GeometryError) as info:
        parse_axes(value, "--stride", words=words)
    assert_mentions(one_line(info.value), "--stride", key)


# --------------------------------------------------------------------------------------------
# resolve_geometry: accepted layers
# --------------------------------------------------------------------------------------------


def test_seed_layer():
    geometry = resolve_geometry(SEED_IN, SEED_KERNELS)
    assert isinstance(geometry, LayerGeometry)
    assert geometry.in_shape == (3, 20, 20)
    assert geometry.kernel_shape == (5, 3, 3, 3)
    assert (geometry.batch, geometry.groups, geometry.dtype) == (1, 1, "float64")
    assert (geometry.stride, geometry.padding, geometry.dilation) == ((1, 1), (0, 0), (1, 1))
    assert geometry.ndim == 2
    assert (geometry.channels, geometry.filters) == (3, 5)
    assert geometry.spatial == (20, 20)
    assert geometry.kernel_size == (3, 3)
    assert geometry.axis_names == ("H", "W")
    assert geometry.out_spatial == (18, 18)
    assert geometry.x_shape == (1, 3, 20, 20)
    assert geometry.w_shape == (5, 3, 3, 3)
    assert geometry.b_shape == (5,)
    assert geometry.y_shape == (1, 5, 18, 18)
    assert geometry.y_shape[1:] == (5, 18, 18)


def test_geometry_is_frozen():
    geometry = resolve_geometry(SEED_IN, SEED_KERNELS)
    with pytest.raises(dataclasses.FrozenInstanceError):
        geometry.batch = 2  # type: ignore[misc]


@pytest.mark.parametrize(
    "in_shape, kernels",
    [
        ("3x20x20", "5x3x3x3"),
        ("3×20×20", "5×3×3×3"),
        ("3,20,20", "5,3,3,3"),
        ("3 x 20 x 20", "5 x 3 x 3 x 3"),
        ((3, 20, 20), (5, 3, 3, 3)),
        ([3, 20, 20], [5, 3, 3]),
        ("3x20x20", "5x3x3"),
    ],
    ids=["x", "times-sign", "comma", "spaced", "tuples", "lists-short-kernels", "short-kernels"],
)
def test_seed_layer_in_every_spelling(in_shape, kernels):
    geometry = resolve_geometry(in_shape, kernels)
    assert geometry.kernel_shape == (5, 3, 3, 3)
    assert geometry.y_shape == (1, 5, 18, 18)


@pytest.mark.parametrize(
    "in_shape, kernels, groups, expected",
    [
        ("3x20", "5x3", 1, (5, 3, 3)),
        ("3x20x20", "5x3x3", 1, (5, 3, 3, 3)),
        ("4x20x20", "6x3x3", 2, (6, 2, 3, 3)),
        ("4x20x20", "8x5x3", 4, (8, 1, 5, 3)),
        ("2x8x8x8", "4x3x3x3", 1, (4, 2, 3, 3, 3)),
        ("2x8x8x8", "4x3x3x3", 2, (4, 1, 3, 3, 3)),
    ],
    ids=["1d", "2d", "2d-groups2", "2d-depthwise-rect", "3d", "3d-groups2"],
)
def test_short_kernels_take_depth_from_in_and_groups(in_shape, kernels, groups, expected):
    assert resolve_geometry(in_shape, kernels, groups=groups).kernel_shape == expected


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        (dict(in_shape="3x20", kernel_shape="5x3x3"), dict(axis_names=("L",), y_shape=(1, 5, 18))),
        (
            dict(in_shape="2x9x8x7", kernel_shape="4x2x3x3x3"),
            dict(axis_names=("D", "H", "W"), y_shape=(1, 4, 7, 6, 5)),
        ),
        (
            dict(in_shape="2x9x8x7", kernel_shape="4x2x3x3x3", stride="2x1x3", padding=1),
            dict(stride=(2, 1, 3), padding=(1, 1, 1), y_shape=(1, 4, 5, 8, 3)),
        ),
        (
            dict(in_shape="3x20", kernel_shape="6x1x4", groups=3, dilation=2, batch=4),
            dict(dilation=(2,), y_shape=(4, 6, 14)),
        ),
    ],
    ids=["1d", "3d", "3d-per-axis-stride", "1d-depthwise-dilated-batch4"],
)
def test_1d_and_3d_layers(kwargs, expected):
    geometry = resolve_geometry(**kwargs)
    for name, value in expected.items():
        assert getattr(geometry, name) == value, name


@pytest.mark.parametrize(
    "setting, value, expected",
    [
        ("stride", 2, (2, 2)),
        ("stride", "2x1", (2, 1)),
        ("stride", (1, 3), (1, 3)),
        ("padding", "2x1", (2, 1)),
        ("padding", [0, 2], (0, 2)),
        ("padding", "valid", (0, 0)),
        ("dilation", "1x2", (1, 2)),
        ("dilation", 2, (2, 2)),
    ],
    ids=lambda v: str(v).replace(" ", ""),
)
def test_per_axis_settings(setting, value, expected):
    geometry = resolve_geometry(SEED_IN, SEED_KERNELS, **{setting: value})
    assert getattr(geometry, setting) == expected


@pytest.mark.parametrize(
    "in_shape, kernels, dilation, expected_padding",
    [
        ("3x20x20", "5x3x3x3", 1, (1, 1)),
        ("3x20x20", "5x3x5x3", 1, (2, 1)),
        ("3x20x20", "5x3x3x3", 2, (2, 2)),
        ("3x20x20", "5x3x2x2", 2, (1, 1)),  # even kernel, but dilation 2 spreads it to odd
        ("3x20", "5x3x7", 1, (3,)),
        ("2x6x7x8", "4x2x3x1x5", 1, (1, 0, 2)),
    ],
    ids=["3x3", "5x3", "3x3-dilation2", "2x2-dilation2", "1d-7", "3d-3x1x5"],
)
def test_padding_same_keeps_the_size(in_shape, kernels, dilation, expected_padding):
    geometry = resolve_geometry(in_shape, kernels, padding="same", dilation=dilation)
    assert geometry.padding == expected_padding
    assert geometry.out_spatial == geometry.spatial


@pytest.mark.parametrize(
    "spatial, kernel, stride, padding, dilation",
    [
        (20, 3, 1, 0, 1),
        (20, 3, 2, 1, 1),
        (7, 2, 3, 0, 1),
        (8, 3, 2, 0, 1),
        (5, 5, 1, 0, 1),
        (3, 5, 1, 1, 1),
        (9, 3, 1, 2, 2),
        (10, 3, 4, 1, 3),
        (1, 1, 5, 0, 1),
    ],
    ids=[
        "seed",
        "stride2-pad1",
        "stride3-kernel2",
        "stride-remainder",
        "kernel-equals-input",
        "kernel-larger-padded",
        "dilation2-pad2",
        "everything",
        "single-pixel",
    ],
)
def test_out_spatial_counts_the_windows_that_fit(spatial, kernel, stride, padding, dilation):
    geometry = resolve_geometry(
        f"1x{spatial}", f"1x1x{kernel}", stride=stride, padding=padding, dilation=dilation
    )
    extent = dilation * (kernel - 1) + 1
    starts = [o for o in range(0, spatial + 2 * padding, stride) if o + extent <= spatial + 2 * padding]
    assert geometry.out_spatial == (len(starts),)


def test_settings_are_json_ready_and_use_cli_names():
    geometry = resolve_geometry(
        "4x9x10", "6x3x3", batch=2, stride="2x1", padding=1, dilation="1x2", groups=2, dtype="float32"
    )
    assert geometry.settings() == {
        "in": [4, 9, 10],
        "kernels": [6, 2, 3, 3],
        "batch": 2,
        "stride": [2, 1],
        "padding": [1, 1],
        "dilation": [1, 2],
        "groups": 2,
        "dtype": "float32",
    }


def test_settings_round_trip_through_resolve_geometry():
    geometry = resolve_geometry("4x9x10x5", "6x2x3x1x2", batch=3, stride="2x1x1", groups=2)
    s = geometry.settings()
    again = resolve_geometry(
        s["in"],
        s["kernels"],
        batch=s["batch"],
        stride=s["stride"],
        padding=s["padding"],
        dilation=s["dilation"],
        groups=s["groups"],
        dtype=s["dtype"],
    )
    assert again == geometry


def test_describe_seed():
    assert resolve_geometry(SEED_IN, SEED_KERNELS).describe() == (
        "N=1  X 3x20x20  K 5x3x3x3  stride 1  padding 0  dilation 1  groups 1"
    )


def test_describe_shows_per_axis_values_only_when_they_differ():
    text = resolve_geometry(
        "4x9x10", "6x2x3x3", batch=3, stride="2x1", padding="1x1", dilation=2, groups=2
    ).describe()
    assert "\n" not in text
    assert text == "N=3  X 4x9x10  K 6x2x3x3  stride 2x1  padding 1  dilation 2  groups 2"


def test_float32_dtype_is_accepted():
    assert resolve_geometry(SEED_IN, SEED_KERNELS, dtype="float32").dtype == "float32"


# --------------------------------------------------------------------------------------------
# resolve_geometry: refusals
# --------------------------------------------------------------------------------------------

REFUSALS = [
    # rank
    ("in-1-size", dict(in_shape="3"), ["--in", "1 sizes", "CxHxW", "3x20x20"]),
    ("in-5-sizes", dict(in_shape="1x3x20x20x2"), ["--in", "5 sizes", "CxHxW", "CxDxHxW"]),
    ("kernels-too-few", dict(kernel_shape="5x3"), ["--kernels 5x3", "2-D", "5x3x3x3"]),
    ("kernels-too-many", dict(kernel_shape="5x3x3x3x3"), ["--kernels", "5 sizes", "5x3x3x3"]),
    ("kernels-too-few-1d", dict(in_shape="3x20", kernel_shape="5"), ["--kernels", "1-D", "5x3x3"]),
    # channels against kernels
    (
        "depth-mismatch-groups-fixes",
        dict(in_shape="4x20x20", kernel_shape="4x2x3x3"),
        ["expect 2 input channels", "--in has 4", "--kernels 4x4x3x3", "--groups 2"],
    ),
    (
        "depth-mismatch-with-groups",
        dict(in_shape="4x20x20", kernel_shape="4x1x3x3", groups=2),
        ["expect 2 input channels", "--kernels 4x2x3x3", "--groups"],
    ),
    (
        "depth-mismatch-seed",
        dict(kernel_shape="5x1x3x3"),
        ["expect 1 input channels", "--in has 3", "--kernels 5x3x3x3"],
    ),
    # groups
    ("groups-not-dividing-C", dict(groups=2), ["--groups 2", "3 input channels C", "divisors of 3: 1, 3"]),
    (
        "groups-not-dividing-F",
        dict(in_shape="4x20x20", kernel_shape="5x2x3x3", groups=2),
        ["--groups 2", "5 kernels F", "divisors of 5: 1, 5"],
    ),
    (
        "groups-not-dividing-C-short-kernels",
        dict(kernel_shape="6x3x3", groups=2),
        ["--groups 2", "input channels C"],
    ),
    ("groups-0", dict(groups=0), ["--groups 0", "1 or more"]),
    ("groups-negative", dict(groups=-2), ["--groups -2", "1 or more"]),
    # sizes
    ("in-zero", dict(in_shape="0x20x20"), ["--in 0x20x20", "positive whole number", "3x20x20"]),
    ("in-negative", dict(in_shape="3x-2x20"), ["--in", "-2", "positive whole number"]),
    ("kernel-zero", dict(kernel_shape="5x3x0x3"), ["--kernels", "positive whole number", "5x3x3x3"]),
    ("kernel-negative-seq", dict(kernel_shape=(5, 3, -3, 3)), ["--kernels", "positive whole number"]),
    ("in-letter", dict(in_shape="3xa"), ["--in", "'a'", "whole number", "3x20x20"]),
    ("kernels-letter", dict(kernel_shape="5x3x3xb"), ["--kernels", "'b'", "5x3x3x3"]),
    ("in-empty", dict(in_shape=""), ["--in is empty", "3x20x20"]),
    ("kernels-empty", dict(kernel_shape=""), ["--kernels is empty", "5x3x3x3"]),
    ("in-empty-sequence", dict(in_shape=()), ["--in is empty"]),
    # stride, padding, dilation
    ("stride-0", dict(stride=0), ["--stride", "1 or more"]),
    ("stride-per-axis-0", dict(stride="2x0"), ["--stride 2x0", "1 or more"]),
    ("padding-negative", dict(padding=-1), ["--padding", "zero or more"]),
    ("padding-negative-text", dict(padding="1x-1"), ["--padding 1x-1", "zero or more"]),
    ("dilation-0", dict(dilation=0), ["--dilation", "1 or more"]),
    ("stride-3-values", dict(stride="2x1x1"), ["--stride 2x1x1", "3 values", "2 spatial axes", "1x1"]),
    ("padding-3-values", dict(padding=(1, 1, 1)), ["--padding", "3 values", "1x1"]),
    ("dilation-3-values", dict(dilation="1x2x3"), ["--dilation", "3 values", "1x1"]),
    (
        "stride-2-values-1d",
        dict(in_shape="3x20", kernel_shape="5x3x3", stride="2x1"),
        ["--stride", "2 values", "1 spatial axis"],
    ),
    ("stride-letter", dict(stride="2xa"), ["--stride", "'a'", "whole number"]),
    ("stride-empty", dict(stride=""), ["--stride is empty"]),
    ("stride-word", dict(stride="same"), ["--stride", "not understood", "2x1"]),
    ("stride-float", dict(stride=1.5), ["--stride", "whole number"]),
    ("padding-unknown-word", dict(padding="full"), ["--padding 'full'", "valid", "same"]),
    ("padding-empty", dict(padding=""), ["--padding is empty"]),
    # padding same
    # padding per side (before,after); 'same' at a stride is TensorFlow's, so no refusal
    ("padding-side-empty", dict(padding=",1"), ["--padding ,1", "side empty", "before,after", "--padding 0,1"]),
    ("padding-three-sides", dict(padding="0,1,2"), ["--padding 0,1,2", "3 numbers", "before,after"]),
    ("padding-sides-3-axes", dict(padding="0,1x0,1x0,1"), ["--padding 0,1x0,1x0,1", "3 axes", "2 spatial axes"]),
    ("padding-side-negative", dict(padding="0,-1"), ["--padding 0,-1", "zero or more"]),
    (
        "same-even-kernel",
        dict(kernel_shape="5x3x2x2", padding="same"),
        ["--padding same", "kernel 2", "odd kernel", "numbers"],
    ),
    (
        "same-even-kernel-second-axis",
        dict(kernel_shape="5x3x3x4", padding="same"),
        ["--padding same", "along W", "kernel 4"],
    ),
    # kernel larger than the padded input
    (
        "dilated-kernel-too-large",
        dict(in_shape="3x5x5", dilation=3),
        ["dilation 3 spans 7", "along H", "5 + 2*0 = 5", "smaller --kernels", "--padding"],
    ),
    (
        "kernel-too-large",
        dict(in_shape="3x5x5", kernel_shape="5x3x3x7"),
        ["kernel (7)", "along W", "larger --in", "--padding"],
    ),
    (
        "kernel-too-large-with-padding",
        dict(in_shape="3x4x4", kernel_shape="5x3x7x3", padding=1),
        ["kernel (7)", "4 + 2*1 = 6"],
    ),
    (
        "dilated-kernel-too-large-3d",
        dict(in_shape="1x9x9x4", kernel_shape="1x1x3x3x3", dilation="1x1x2"),
        ["spans 5", "along W"],
    ),
    # batch and dtype
    ("batch-0", dict(batch=0), ["--batch 0", "1 or more"]),
    ("batch-negative", dict(batch=-1), ["--batch -1", "1 or more"]),
    ("batch-bool", dict(batch=True), ["--batch", "whole number"]),
    ("dtype-float16", dict(dtype="float16"), ["--dtype 'float16'", "float64", "float32"]),
    ("dtype-unknown", dict(dtype="double"), ["--dtype", "float64 or float32"]),
]


@pytest.mark.parametrize(
    "overrides, words", [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
def test_refusals_are_one_line_geometry_errors_naming_the_fix(overrides, words):
    kwargs = {"in_shape": SEED_IN, "kernel_shape": SEED_KERNELS, **overrides}
    message = refusal(**kwargs)
    assert_mentions(message, *words)


PYTHON_NAMES = {"--in": "in_shape", "--kernels": "kernel_shape"}


@pytest.mark.parametrize(
    "overrides, words", [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
def test_python_callers_read_keyword_arguments_not_flags(overrides, words):
    error = python_refusal(**{"in_shape": SEED_IN, "kernel_shape": SEED_KERNELS, **overrides})
    message = one_line(error)
    assert "--" not in message, message
    assert error.parameter is not None and error.parameter in message
    for word in words:  # the same facts, with each flag spelled as its keyword argument
        with_value, alone = word, word
        for flag in ("--in", "--kernels", "--stride", "--padding", "--dilation", "--groups", "--batch", "--dtype"):
            keyword = PYTHON_NAMES.get(flag, flag[2:])
            with_value = with_value.replace(f"{flag} ", keyword + "=").replace(flag, keyword)
            alone = alone.replace(flag, keyword)
        assert with_value in message or alone in message, (word, message)


def test_geometry_error_is_a_convgrad_error():
    with pytest.raises(ConvgradError):
        resolve_geometry(SEED_IN, SEED_KERNELS, stride=0)


def test_channel_mismatch_mentions_kernels_and_groups():
    message = refusal("4x20x20", "4x2x3x3")
    assert_mentions(message, "--kernels", "--groups")
    message = refusal("6x20x20", "6x2x3x3", groups=2)
    assert_mentions(message, "--kernels", "--groups")


# --------------------------------------------------------------------------------------------
# Memory refusal
# --------------------------------------------------------------------------------------------


def test_memory_refusal_with_a_small_limit():
    message = refusal(SEED_IN, SEED_KERNELS, memory_limit_bytes=1024)
    assert_mentions(message, "KiB", "limit 1.0 KiB", "smaller --in", "--batch")
    assert_mentions(one_line(python_refusal(SEED_IN, SEED_KERNELS, memory_limit_bytes=1024)), "smaller in_shape, batch")


def test_memory_limit_above_the_estimate_passes():
    geometry = resolve_geometry(SEED_IN, SEED_KERNELS, memory_limit_bytes=2**30)
    assert geometry.y_shape == (1, 5, 18, 18)


def test_memory_refusal_happens_before_allocating_anything():
    # A layer whose tensors alone would be hundreds of GiB is refused from its sizes, quickly and
    # without allocating more than a few kilobytes.
    tracemalloc.start()
    try:
        with pytest.raises(GeometryError) as info:
            resolve_geometry(
                "64x100000x100000", "64x64x3x3", batch=16, memory_limit_bytes=1024
            )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = one_line(info.value, CLI)
    assert_mentions(message, "GiB", "smaller --in", "--batch")
    assert peak < 1_000_000, f"refusal allocated {peak} bytes"


def test_huge_layer_refused_under_the_default_limit():
    message = refusal("64x100000x100000", "64x64x3x3", batch=16)
    assert_mentions(message, "GiB", "smaller --in", "--batch")


@pytest.mark.parametrize("value", [20, None], ids=["bare-int", "none"])
def test_non_sequence_shape_is_a_geometry_error(value):
    message = refusal(value, SEED_KERNELS)
    assert_mentions(message, "--in", "3x20x20")
