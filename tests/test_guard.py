"""The guard's own checks on every call (impl/guard.py, impl/memory.py): fresh inputs that are never
the checker's own memory, writes into them caught bit for bit, NaN and Inf in results caught
without mistaking a large finite result for them."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import ReferenceWith
from convgrad.geometry import resolve_geometry
from convgrad.adapters.failure import ImplementationFailure
from checking import check_layer
from convgrad.harness.guard import INPUTS_SPOT_EVERY, GuardedLayer
from convgrad.adapters.loading import as_implementation
from convgrad.harness.memory import NON_CONTIGUOUS, fresh_copy

LAYOUTS = ("C order", "channels last", "transposed view", "Fortran order", "step slice")


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (2, 1, 4, 4), (4, 3, 3, 1), (4, 1, 1, 1), (1, 1, 1, 1), (3,), (1,)])
def test_a_fresh_copy_is_never_a_view_of_the_original(shape, layout):
    original = np.random.default_rng(0).standard_normal(shape)
    copy = fresh_copy(original, layout)
    assert not np.shares_memory(copy, original)
    assert copy.shape == original.shape and np.array_equal(copy, original)


def _guard(layer, geometry):
    return GuardedLayer(as_implementation(layer), geometry)


def _tensors(geometry, seed=0):
    rng = np.random.default_rng(seed)
    return tuple(rng.standard_normal(s) for s in (geometry.x_shape, geometry.w_shape, geometry.b_shape))


class WritesIntoKernels(ReferenceWith):
    def forward(self, x, w, b, **settings):
        y = super().forward(x, w, b, **settings)
        w[...] = 0.0
        return y


def test_a_write_into_a_one_column_kernel_laid_out_transposed_is_caught():
    # A (4, 3, 3, 1) kernel is already "transposed" in memory: it once went to the layer uncopied.
    geometry = resolve_geometry("3x6x6", "4x3x3x1")
    x, w, b = _tensors(geometry)
    kept = w.copy()
    with pytest.raises(ImplementationFailure, match="forward modified its input w in place"):
        _guard(WritesIntoKernels(), geometry).forward(x, w, b, layouts={"w": "transposed view"})
    assert np.array_equal(w, kept)


def test_an_input_holding_nan_that_the_layer_leaves_alone_is_not_modified():
    geometry = resolve_geometry("3x6x6", "4x3x3x3")
    x, w, b = _tensors(geometry)
    x[0, 0, 0, 0] = np.nan
    guard = _guard(ReferenceWith(), geometry)
    for layouts in (None, *NON_CONTIGUOUS):
        with pytest.raises(ImplementationFailure, match="forward returned NaN in the output"):
            guard.forward(x, w, b, layouts=layouts)


class Returns(ReferenceWith):
    def __init__(self, fill):
        self.fill = fill

    def forward(self, x, w, b, **settings):
        y = np.full(super().forward(x, w, b, **settings).shape, 1e308)
        y.flat[-3:] = self.fill
        return y


def test_a_large_finite_output_passes_the_finite_check():
    geometry = resolve_geometry("3x6x6", "4x3x3x3")
    y = _guard(Returns(1e308), geometry).forward(*_tensors(geometry))
    assert np.isfinite(y).all()


@pytest.mark.parametrize("fill, kind", [(np.inf, "Inf"), (-np.inf, "Inf"), (np.nan, "NaN"), ([np.inf, -np.inf, 0.0], "Inf")])
def test_nan_and_inf_among_large_finite_values_are_caught(fill, kind):
    geometry = resolve_geometry("3x6x6", "4x3x3x3")
    bad = np.size(fill) - (np.asarray(fill) == 0).sum() if np.size(fill) > 1 else 3
    with pytest.raises(ImplementationFailure) as caught:
        _guard(Returns(fill), geometry).forward(*_tensors(geometry))
    size = int(np.prod(geometry.y_shape))
    assert str(caught.value).startswith(f"forward returned {kind} in the output ({bad} of {size} values, first at [")
    assert caught.value.status == "failed"


class NormalisesKernelsOnceTheyChange(ReferenceWith):
    """Weight normalisation written in place, and only when w is not the w it saw first: it
    writes into its input during the coloured dK calls alone, long past a check's first calls."""

    def __init__(self):
        self.first = None

    def forward(self, x, w, b, **settings):
        if self.first is None:
            self.first = w.copy()
        y = super().forward(x, w, b, **settings)
        if not np.array_equal(w, self.first):
            w /= np.linalg.norm(w)
        return y


class ClipsInputFromCall(ReferenceWith):
    """An in-place clip of x that starts at forward call `start`."""

    def __init__(self, start):
        self.start, self.calls = start, 0

    def forward(self, x, w, b, **settings):
        self.calls += 1
        y = super().forward(x, w, b, **settings)
        if self.calls >= self.start:
            np.clip(x, -0.5, 0.5, out=x)
        return y


@pytest.mark.parametrize("start", [1, 9, 10, 30])
def test_a_layer_that_starts_writing_into_x_later_is_caught_within_a_few_calls(start):
    geometry = resolve_geometry("3x6x6", "4x3x3x3")
    x, w, b = _tensors(geometry)
    guard = _guard(ClipsInputFromCall(start), geometry)
    calls = 0
    with pytest.raises(ImplementationFailure, match="forward modified its input x in place"):
        for calls in range(1, 60):
            guard.forward(x, w, b)
    assert start <= calls < start + INPUTS_SPOT_EVERY


def test_a_write_into_the_kernels_during_the_dk_calls_alone_fails_the_check():
    case = check_layer(resolve_geometry("4x8x8", "4x4x3x3", padding=1), NormalisesKernelsOnceTheyChange(),
                       method="coloured")
    rows = {t.name: t for t in case.tensors}
    assert rows["dK"].status == "failed" and rows["dX"].passed
    assert "while computing finite differences for dK, forward modified its input w in place" in rows["dK"].reason
