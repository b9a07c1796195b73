"""The reference conv layer against a plain-loop forward pass and dense finite differences.

`loop_forward` below is the formula written out with nested loops and nothing else:

    O[n,f,o] = b[f] + sum_{c in group(f)} sum_u Xp[n,c, s*o + d*u] * K[f,c',u]

with Xp the zero-padded input. The layer is linear in each of X, K and b separately, so a central
difference with step h=1 has no truncation error and only rounding separates it from the
analytic gradient.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pytest

from convgrad.reference import backward, crop, forward, forward_by_channel, pad, rotate_and_swap, zero_insert


# --------------------------------------------------------------------------------------------
# The sweep of layers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    x_shape: tuple[int, ...]  # (N, C, *S)
    w_shape: tuple[int, ...]  # (F, C/groups, *k)
    stride: int | tuple[int, ...] = 1
    padding: int | tuple[int, ...] = 0
    dilation: int | tuple[int, ...] = 1
    groups: int = 1

    @property
    def ndim(self) -> int:
        return len(self.x_shape) - 2

    def settings(self) -> dict[str, object]:
        """Keyword arguments for `forward` / `backward`, with every per-axis value expanded."""

        def per_axis(value: int | tuple[int, ...]) -> tuple[int, ...]:
            return (value,) * self.ndim if isinstance(value, int) else tuple(value)

        return dict(
            stride=per_axis(self.stride),
            padding=per_axis(self.padding),
            dilation=per_axis(self.dilation),
            groups=self.groups,
        )


CASES = [
    # 1-D
    Case("1d-basic", (1, 2, 7), (3, 2, 3)),
    Case("1d-batch3-stride2-pad1", (3, 2, 8), (2, 2, 3), stride=2, padding=1),
    Case("1d-stride3-larger-than-kernel2", (1, 1, 11), (2, 1, 2), stride=3),
    Case("1d-dilation2-pad2", (1, 2, 9), (2, 2, 3), padding=2, dilation=2),
    Case("1d-groups2", (2, 4, 6), (4, 2, 3), groups=2),
    Case("1d-depthwise", (2, 3, 6), (3, 1, 3), groups=3),
    Case("1d-1x1-kernel", (2, 3, 4), (4, 3, 1)),
    Case("1d-kernel-as-large-as-input", (1, 2, 5), (3, 2, 5)),
    Case("1d-kernel-larger-than-input-padded", (1, 1, 3), (2, 1, 5), padding=1),
    # 2-D
    Case("2d-basic", (1, 3, 5, 5), (2, 3, 3, 3)),
    Case("2d-batch3-stride2-pad1", (3, 2, 6, 5), (2, 2, 3, 3), stride=2, padding=1),
    Case("2d-stride3-larger-than-kernel2", (1, 2, 7, 8), (2, 2, 2, 2), stride=3),
    Case("2d-stride-per-axis-2x1", (1, 2, 6, 5), (2, 2, 3, 3), stride=(2, 1)),
    Case("2d-padding2", (1, 1, 4, 4), (2, 1, 3, 3), padding=2),
    Case("2d-padding-per-axis-2x0", (1, 2, 4, 5), (2, 2, 3, 2), padding=(2, 0)),
    Case("2d-padding-wider-than-1x1-kernel", (1, 1, 3, 3), (1, 1, 1, 1), padding=2),
    Case("2d-dilation2", (1, 2, 6, 6), (2, 2, 3, 3), dilation=2),
    Case("2d-dilation-per-axis-1x2", (1, 2, 5, 6), (2, 2, 3, 3), padding=(0, 1), dilation=(1, 2)),
    Case("2d-groups2", (1, 4, 5, 5), (6, 2, 3, 3), groups=2),
    Case("2d-depthwise", (2, 3, 5, 4), (3, 1, 3, 3), groups=3),
    Case("2d-depthwise-multiplier2", (1, 2, 4, 4), (4, 1, 3, 3), groups=2),
    Case("2d-1x1-kernel", (1, 3, 4, 3), (4, 3, 1, 1)),
    Case("2d-1x1-kernel-stride2", (1, 3, 5, 4), (2, 3, 1, 1), stride=2),
    Case("2d-kernel-as-large-as-input", (1, 2, 4, 3), (3, 2, 4, 3)),
    Case(
        "2d-rectangular-mixed",
        (1, 2, 4, 7),
        (2, 2, 2, 3),
        stride=(1, 2),
        padding=(1, 0),
        dilation=(2, 1),
    ),
    Case(
        "2d-batch3-everything",
        (3, 4, 6, 7),
        (2, 2, 2, 3),
        stride=(2, 3),
        padding=(1, 2),
        dilation=(2, 1),
        groups=2,
    ),
    # 3-D
    Case("3d-basic", (1, 2, 3, 4, 3), (2, 2, 2, 2, 2)),
    Case("3d-batch3-stride2-pad1", (3, 1, 4, 4, 4), (2, 1, 3, 3, 3), stride=2, padding=1),
    Case(
        "3d-per-axis-groups2",
        (1, 2, 5, 3, 4),
        (2, 1, 3, 1, 2),
        stride=(1, 2, 1),
        padding=(0, 1, 0),
        dilation=(2, 1, 1),
        groups=2,
    ),
    Case("3d-depthwise", (1, 2, 3, 3, 3), (2, 1, 2, 2, 2), groups=2),
    Case("3d-1x1x1-kernel", (2, 2, 2, 3, 2), (3, 2, 1, 1, 1)),
    Case("3d-kernel-as-large-as-input", (1, 1, 2, 3, 2), (2, 1, 2, 3, 2)),
    Case("3d-dilation2-pad2", (1, 1, 3, 3, 3), (1, 1, 2, 2, 2), padding=2, dilation=2),
]

by_case = pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)


def make_layer(case: Case, seed: int = 0, dtype: type = np.float64):
    """Random x, w, b for a case, plus a random upstream gradient G of the output's shape."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(case.x_shape).astype(dtype)
    w = rng.standard_normal(case.w_shape).astype(dtype)
    b = rng.standard_normal(case.w_shape[0]).astype(dtype)
    out_shape = loop_output_shape(case.x_shape, case.w_shape, **case.settings())
    g = rng.standard_normal(out_shape).astype(dtype)
    return x, w, b, g


# --------------------------------------------------------------------------------------------
# The plain-loop reference for the reference
# --------------------------------------------------------------------------------------------


def loop_output_shape(x_shape, w_shape, *, stride, padding, dilation, groups):
    out = tuple(
        (h + 2 * p - d * (k - 1) - 1) // s + 1
        for h, k, s, p, d in zip(x_shape[2:], w_shape[2:], stride, padding, dilation)
    )
    return (x_shape[0], w_shape[0], *out)


def loop_forward(x, w, b, *, stride, padding, dilation, groups):
    n_batch, channels = x.shape[:2]
    filters, depth = w.shape[:2]
    kernel = w.shape[2:]
    assert channels == depth * groups and filters % groups == 0
    filters_per_group = filters // groups

    # Xp: x written into the middle of a zero array, padding[i] zeros on both sides.
    xp = np.zeros((n_batch, channels, *(h + 2 * p for h, p in zip(x.shape[2:], padding))))
    for n in range(n_batch):
        for c in range(channels):
            for pos in itertools.product(*(range(h) for h in x.shape[2:])):
                xp[(n, c, *(i + p for i, p in zip(pos, padding)))] = x[(n, c, *pos)]

    out_shape = loop_output_shape(
        x.shape, w.shape, stride=stride, padding=padding, dilation=dilation, groups=groups
    )
    y = np.zeros(out_shape)
    for n in range(n_batch):
        for f in range(filters):
            group = f // filters_per_group
            for o in itertools.product(*(range(size) for size in out_shape[2:])):
                total = float(b[f])
                for c_in_group in range(depth):
                    c = group * depth + c_in_group
                    for u in itertools.product(*(range(k) for k in kernel)):
                        tap = tuple(s * oi + d * ui for s, oi, d, ui in zip(stride, o, dilation, u))
                        total += float(xp[(n, c, *tap)]) * float(w[(f, c_in_group, *u)])
                y[(n, f, *o)] = total
    return y


def central_difference(energy, arr: np.ndarray, h: float = 1.0) -> np.ndarray:
    """dE/d arr at every coordinate, perturbing `arr` in place (and restoring it)."""
    grad = np.zeros(arr.shape)
    for idx in np.ndindex(arr.shape):
        original = arr[idx]
        arr[idx] = original + h
        e_plus = energy()
        arr[idx] = original - h
        e_minus = energy()
        arr[idx] = original
        grad[idx] = (e_plus - e_minus) / (2 * h)
    return grad


def assert_close(actual: np.ndarray, expected: np.ndarray, scale: float, what: str) -> None:
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    error = float(np.max(np.abs(actual - expected))) if expected.size else 0.0
    assert error < 1e-10 * scale, f"{what}: max abs error {error:.3e} (scale {scale:.3e})"


# --------------------------------------------------------------------------------------------
# forward and backward over the sweep
# --------------------------------------------------------------------------------------------


@by_case
def test_forward_matches_plain_loops(case: Case):
    x, w, b, _ = make_layer(case)
    settings = case.settings()
    y = forward(x, w, b, **settings)
    expected = loop_forward(x, w, b, **settings)
    scale = 1.0 + float(np.max(np.abs(expected)))
    assert_close(y, expected, scale, "forward")


@by_case
def test_backward_matches_central_differences(case: Case):
    x, w, b, g = make_layer(case, seed=1)
    settings = case.settings()

    def energy() -> float:
        return float(np.sum(g * forward(x, w, b, **settings)))

    # Rounding in E is relative to the size of its terms, so that sets the scale.
    scale = 1.0 + float(np.sum(np.abs(g * forward(x, w, b, **settings))))
    dx, dw, db = backward(g, x, w, b, **settings)

    assert_close(dx, central_difference(energy, x), scale, "dx")
    assert_close(dw, central_difference(energy, w), scale, "dw")
    assert_close(db, central_difference(energy, b), scale, "db")


@by_case
def test_backward_does_not_modify_its_inputs(case: Case):
    x, w, b, g = make_layer(case, seed=2)
    copies = [a.copy() for a in (g, x, w, b)]
    backward(g, x, w, b, **case.settings())
    for before, after in zip(copies, (g, x, w, b)):
        np.testing.assert_array_equal(before, after)


@pytest.mark.parametrize(
    "case",
    [case for case in CASES if case.id in {"1d-basic", "2d-batch3-everything", "3d-per-axis-groups2"}],
    ids=lambda case: case.id,
)
def test_float32_inputs_give_consistent_shapes_and_dtypes(case: Case):
    x, w, b, g = make_layer(case, seed=3, dtype=np.float32)
    settings = case.settings()
    allowed = {np.dtype(np.float32), np.dtype(np.float64)}

    y = forward(x, w, b, **settings)
    assert y.shape == g.shape
    assert y.dtype in allowed

    dx, dw, db = backward(g, x, w, b, **settings)
    assert (dx.shape, dw.shape, db.shape) == (x.shape, w.shape, b.shape)
    assert {dx.dtype, dw.dtype, db.dtype} <= allowed
    assert len({dx.dtype, dw.dtype, db.dtype}) == 1, "dx, dw, db come back in different dtypes"

    # Same numbers as the float64 layer, up to float32 rounding.
    x64, w64, b64, g64 = (a.astype(np.float64) for a in (x, w, b, g))
    np.testing.assert_allclose(y, forward(x64, w64, b64, **settings), rtol=1e-4, atol=1e-4)
    for got, want in zip((dx, dw, db), backward(g64, x64, w64, b64, **settings)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------------------------
# Specific shapes and helpers
# --------------------------------------------------------------------------------------------

SEED_SETTINGS = dict(stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1)


def test_seed_layer_shapes():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 3, 20, 20))
    w = rng.standard_normal((5, 3, 3, 3))
    b = rng.standard_normal(5)
    y = forward(x, w, b, **SEED_SETTINGS)
    assert y.shape == (1, 5, 18, 18)

    dx, dw, db = backward(np.ones_like(y), x, w, b, **SEED_SETTINGS)
    assert (dx.shape, dw.shape, db.shape) == ((1, 3, 20, 20), (5, 3, 3, 3), (5,))
    # With G = 1 every bias sees all 18*18 outputs.
    np.testing.assert_array_equal(db, np.full(5, 18.0 * 18.0))


def test_seed_layer_one_output_by_hand():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 3, 20, 20))
    w = rng.standard_normal((5, 3, 3, 3))
    b = rng.standard_normal(5)
    y = forward(x, w, b, **SEED_SETTINGS)
    # O[0, 4, 7, 11] = b[4] + sum over the 3x3x3 window whose top-left corner is (7, 11).
    expected = b[4] + np.sum(x[0, :, 7:10, 11:14] * w[4])
    assert abs(y[0, 4, 7, 11] - expected) < 1e-12


def rotated(kernel: np.ndarray) -> np.ndarray:
    """A 2-D kernel turned by 180 degrees."""
    return kernel[::-1, ::-1]


def test_rotate_and_swap_groups1_seed_kernels():
    w = np.arange(5 * 3 * 3 * 3, dtype=float).reshape(5, 3, 3, 3)
    swapped = rotate_and_swap(w, groups=1)
    assert swapped.shape == (3, 5, 3, 3)
    for c, f, i, j in np.ndindex(swapped.shape):
        assert swapped[c, f, i, j] == w[f, c, 2 - i, 2 - j]


def test_rotate_and_swap_groups2_depth1():
    # 4 kernels of depth 1 in 2 groups: group 0 holds kernels 0, 1 (channel 0), group 1 holds
    # kernels 2, 3 (channel 1). Each channel becomes one kernel whose depth is its group's filters.
    w = np.arange(4 * 1 * 3 * 3, dtype=float).reshape(4, 1, 3, 3)
    swapped = rotate_and_swap(w, groups=2)
    expected = np.array(
        [
            [rotated(w[0, 0]), rotated(w[1, 0])],
            [rotated(w[2, 0]), rotated(w[3, 0])],
        ]
    )
    assert swapped.shape == (2, 2, 3, 3)
    np.testing.assert_array_equal(swapped, expected)


def test_rotate_and_swap_groups2_depth2():
    # (F=6, C/g=2) in 2 groups -> (C=4, F/g=3): new[g*2 + c, j] = rotated(w[g*3 + j, c]).
    w = np.arange(6 * 2 * 2 * 3, dtype=float).reshape(6, 2, 2, 3)
    swapped = rotate_and_swap(w, groups=2)
    assert swapped.shape == (4, 3, 2, 3)
    for group in range(2):
        for c in range(2):
            for j in range(3):
                np.testing.assert_array_equal(
                    swapped[group * 2 + c, j], rotated(w[group * 3 + j, c])
                )


def test_zero_insert_stride2_puts_zeros_between():
    dy = np.array([[[1.0, 2.0, 3.0]]])
    spread = zero_insert(dy, stride=(2,), size=(5,))
    np.testing.assert_array_equal(spread, [[[1.0, 0.0, 2.0, 0.0, 3.0]]])


def test_zero_insert_fills_the_remainder_with_zeros():
    dy = np.array([[[1.0, 2.0, 3.0]]])
    spread = zero_insert(dy, stride=(2,), size=(6,))
    np.testing.assert_array_equal(spread, [[[1.0, 0.0, 2.0, 0.0, 3.0, 0.0]]])


def test_zero_insert_per_axis_2d():
    dy = np.arange(1.0, 7.0).reshape(1, 1, 2, 3)
    spread = zero_insert(dy, stride=(3, 2), size=(4, 6))
    expected = np.zeros((1, 1, 4, 6))
    expected[0, 0, 0, [0, 2, 4]] = [1.0, 2.0, 3.0]
    expected[0, 0, 3, [0, 2, 4]] = [4.0, 5.0, 6.0]
    np.testing.assert_array_equal(spread, expected)


def test_zero_insert_stride1_changes_nothing():
    dy = np.arange(6.0).reshape(1, 2, 3)
    np.testing.assert_array_equal(zero_insert(dy, stride=(1,), size=(3,)), dy)


@pytest.mark.parametrize(
    "shape, padding",
    [
        ((1, 1, 4), (0,)),
        ((2, 1, 4), (2,)),
        ((1, 2, 3, 4), (1, 1)),
        ((1, 2, 3, 4), (2, 0)),
        ((2, 1, 2, 3, 2), (0, 1, 2)),
    ],
    ids=["1d-p0", "1d-p2", "2d-p1", "2d-p2x0", "3d-p0x1x2"],
)
def test_pad_and_crop_are_inverses(shape, padding):
    x = np.random.default_rng(6).standard_normal(shape)
    padded = pad(x, padding)
    assert padded.shape == (*shape[:2], *(h + 2 * p for h, p in zip(shape[2:], padding)))
    # Everything outside the original block is zero.
    border = padded.copy()
    border[(slice(None), slice(None), *(slice(p, p + h) for p, h in zip(padding, shape[2:])))] = 0
    assert not border.any()
    np.testing.assert_array_equal(crop(padded, padding), x)


def _by_the_steps(dy, w, in_spatial, *, stride, padding, dilation, groups):
    """dX by the steps `convgrad explain` shows: spread dO by the stride, pad it by the dilated
    kernel's reach, correlate with the rotated, swapped, dilated kernels, crop the padding."""
    from convgrad.geometry import as_padding_pairs
    from convgrad.reference import correlate, dilate

    kernel = w.shape[2:]
    reach = [d * (k - 1) for k, d in zip(kernel, dilation)]
    padded = [h + b + a for h, (b, a) in zip(in_spatial, as_padding_pairs(padding))]
    full = pad(zero_insert(dy, stride, [p - r for p, r in zip(padded, reach)]), reach)
    one = [1] * len(kernel)
    return crop(correlate(full, dilate(rotate_and_swap(w, groups), dilation), stride=one, dilation=one, groups=groups),
                padding)


@by_case
@pytest.mark.parametrize("padding_after", [0, 1])
def test_dx_tap_by_tap_is_dx_by_the_explained_steps(case: Case, padding_after: int):
    """The reference computes dX tap by tap (no im2col of the padded image); explain computes it by
    the steps it shows. Both are the same sums, also with more padding after than before."""
    from convgrad.reference import input_gradient

    rng = np.random.default_rng(3)
    x = rng.standard_normal(case.x_shape)
    w = rng.standard_normal(case.w_shape)
    settings = case.settings()
    settings["padding"] = [(p, p + padding_after) for p in settings["padding"]]  # type: ignore[attr-defined]
    dy = rng.standard_normal(forward(x, w, np.zeros(case.w_shape[0]), **settings).shape)
    np.testing.assert_allclose(input_gradient(dy, w, case.x_shape[2:], **settings),
                               _by_the_steps(dy, w, case.x_shape[2:], **settings), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("groups, channels, filters", [(1, 4, 6), (2, 4, 6), (4, 4, 8)])
def test_forward_by_channel_is_the_forward_without_bias(groups, channels, filters):
    """What --jvp compares a tangent's output with: the same sums, a channel of each group at a time."""
    rng = np.random.default_rng(groups)
    x = rng.standard_normal((2, channels, 9, 8))
    w = rng.standard_normal((filters, channels // groups, 3, 2))
    x[:, 1::channels // groups] = 0  # a channel the tangent does not move is left out
    settings = dict(stride=(2, 1), padding=((1, 0), (2, 1)), dilation=(1, 2), groups=groups)
    expected = forward(x, w, np.zeros(filters), **settings)
    np.testing.assert_allclose(forward_by_channel(x, w, **settings), expected, rtol=0, atol=1e-13)
