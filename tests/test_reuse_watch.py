"""The reuse watch (impl/guard.py): every way a layer can hand back a buffer it later overwrites is
reported, with the call that overwrote it, and a layer that only looks similar is not."""

from __future__ import annotations

import math
import weakref

import numpy as np
import pytest

from checking import check_layer
from conftest import ReferenceWith
from convgrad.geometry import resolve_geometry
from convgrad.harness.watch import COMPARED_CALLS, HELD, RING_WINDOW, ReturnWatch
from convgrad.reference import backward as reference_backward

GEOMETRY = resolve_geometry("3x6x6", "4x3x3x3")
SAME_SHAPES = resolve_geometry("4x6x6", "4x4x3x3", padding=1)  # y and dX have the same shape


class Ring(ReferenceWith):
    """Forward writes its output into the next of `size` buffers it keeps, and returns that buffer."""

    def __init__(self, size):
        self.buffers, self.turn = [], 0
        self.size = size

    def forward(self, x, w, b, **settings):
        y = super().forward(x, w, b, **settings)
        if not self.buffers or self.buffers[0].shape != y.shape:
            self.buffers, self.turn = [np.empty_like(y) for _ in range(self.size)], 0
        out = self.buffers[self.turn % self.size]
        self.turn += 1
        out[...] = y
        return out


class BackwardRing(ReferenceWith):
    """Backward writes dX into the next of two buffers it keeps."""

    def __init__(self):
        self.buffers, self.turn = [], 0

    def backward(self, dy, x, w, b, **settings):
        dx, dw, db = super().backward(dy, x, w, b, **settings)
        if not self.buffers:
            self.buffers = [np.empty_like(dx), np.empty_like(dx)]
        out = self.buffers[self.turn % 2]
        self.turn += 1
        out[...] = dx
        return out, dw, db


class SharedWorkspace(ReferenceWith):
    """Backward returns dX in a workspace that forward also uses as scratch (same shape here)."""

    def __init__(self):
        self.workspace = None

    def forward(self, x, w, b, **settings):
        y = super().forward(x, w, b, **settings)
        if self.workspace is not None and self.workspace.shape == y.shape:
            self.workspace[...] = y  # scratch
        return y

    def backward(self, dy, x, w, b, **settings):
        dx, dw, db = super().backward(dy, x, w, b, **settings)
        if self.workspace is None or self.workspace.shape != dx.shape:
            self.workspace = np.empty_like(dx)
        self.workspace[...] = dx
        return self.workspace, dw, db


class WorkspaceTouchedLater(ReferenceWith):
    """Backward returns dX in a workspace that only the fourth forward call after it writes into,
    past the calls right after a result that are compared in full."""

    def __init__(self):
        self.workspace, self.forwards = None, 0

    def forward(self, x, w, b, **settings):
        self.forwards += 1
        if self.workspace is not None and self.forwards == 4:
            self.workspace *= 0.5
        return super().forward(x, w, b, **settings)

    def backward(self, dy, x, w, b, **settings):
        dx, dw, db = super().backward(dy, x, w, b, **settings)
        self.workspace, self.forwards = dx.copy(), 0
        return self.workspace, dw, db


class ScalesPreviousOutput(ReferenceWith):
    """Keeps the output it returned and halves it during the next call."""

    def __init__(self):
        self.previous = None

    def forward(self, x, w, b, **settings):
        if self.previous is not None:
            self.previous *= 0.5
        self.previous = super().forward(x, w, b, **settings)
        return self.previous


class GradientOverwrittenByBackward(ReferenceWith):
    """Returns dK in a buffer the next backward writes into."""

    def __init__(self):
        self.dw = None

    def backward(self, dy, x, w, b, **settings):
        dx, dw, db = super().backward(dy, x, w, b, **settings)
        if self.dw is None:
            self.dw = np.empty_like(dw)
        self.dw[...] = dw
        return dx, self.dw, db


class CachesByInput(ReferenceWith):
    """Returns the very same array again for the same inputs, and never changes it itself: no
    finding of the watch; but a caller that writes into it (an in-place ReLU) changes the memo."""

    def __init__(self):
        self.cache = {}

    def forward(self, x, w, b, **settings):
        key = (x.tobytes(), w.tobytes(), b.tobytes(), x.shape)
        if key not in self.cache:
            self.cache[key] = super().forward(x, w, b, **settings)
        return self.cache[key]


def _reused(case):
    return [c.reason for c in case.calls if c.name == "returned arrays"]


@pytest.mark.parametrize("size", [1, 2, 3, HELD + 1])
def test_a_forward_cycling_through_buffers_is_reported(size):
    case = check_layer(GEOMETRY, Ring(size))
    assert not case.passed
    (reason,) = _reused(case)
    assert "forward returned the output in a buffer that the next forward call overwrote" in reason or (
        size > 1 and "forward returned the output in a buffer that a later forward call overwrote" in reason
    ), reason


def test_a_backward_cycling_through_two_buffers_is_reported():
    (reason,) = _reused(check_layer(GEOMETRY, BackwardRing()))
    assert "backward returned dX in a buffer that a later backward call overwrote" in reason


def test_a_gradient_overwritten_by_the_next_forward_is_reported():
    (reason,) = _reused(check_layer(SAME_SHAPES, SharedWorkspace()))
    assert "backward returned dX in a buffer that the next forward call overwrote" in reason


def test_a_gradient_overwritten_by_a_later_forward_names_forward():
    (reason,) = _reused(check_layer(GEOMETRY, WorkspaceTouchedLater()))
    assert "backward returned dX in a buffer that the next forward call overwrote" in reason


def test_an_output_changed_during_the_next_call_is_reported():
    (reason,) = _reused(check_layer(GEOMETRY, ScalesPreviousOutput()))
    assert "forward returned the output in a buffer that the next forward call overwrote" in reason


def test_a_gradient_overwritten_by_the_next_backward_is_reported():
    (reason,) = _reused(check_layer(GEOMETRY, GradientOverwrittenByBackward()))
    assert "backward returned dK in a buffer that the next backward call overwrote" in reason


def test_returning_the_same_unchanged_array_again_is_no_finding_of_the_watch_but_of_the_network():
    case = check_layer(GEOMETRY, CachesByInput())
    assert not _reused(case) and all(t.passed for t in case.rows)
    (recomputed,) = case.failing_calls
    assert recomputed.name == "recomputed forward"
    assert "the layer hands out an array it keeps (a memo or an output buffer) and returns it again" in recomputed.reason


class CachesCopiesByInput(CachesByInput):
    """The same memo, handing out copies: right whatever the caller does with them."""

    def forward(self, x, w, b, **settings):
        return super().forward(x, w, b, **settings).copy()


def test_a_memo_that_returns_copies_passes():
    case = check_layer(GEOMETRY, CachesCopiesByInput())
    assert case.passed, [c.reason for c in case.failing_calls]


def _kept(values):
    array = np.array(values, dtype=float)
    copy = array.copy()
    copy.flags.writeable = False
    return array, copy


def test_the_watch_names_the_kind_of_call_past_the_calls_compared_in_full():
    watch = ReturnWatch()
    dx, copy = _kept([1.0, 2.0])
    watch.returned("backward", "dX", dx, copy)
    for _ in range(COMPARED_CALLS + 3):
        watch.before_call("forward")
        watch.after_call("forward")
    dx[0] = 5.0  # during the last forward, which was only marked
    watch.before_call("backward")  # settles the forwards first
    watch.after_call("backward")
    assert "a buffer that the next forward call overwrote" in watch.reused()["backward dX"]


def test_the_watch_finds_a_ring_one_longer_than_it_holds():
    watch = ReturnWatch()
    ring = [np.zeros(3) for _ in range(HELD + 1)]
    for turn in range(2 * len(ring)):
        watch.before_call("forward")
        buffer = ring[turn % len(ring)]
        buffer[...] = turn
        watch.after_call("forward")
        watch.returned("forward", "the output", buffer, buffer.copy())
    assert "a later forward call overwrote" in watch.reused()["forward the output"]


def test_the_watch_lets_an_unchanged_array_holding_nan_be():
    watch = ReturnWatch()
    y, copy = _kept([np.nan, 1.0])
    watch.returned("forward", "the output", y, copy)
    for _ in range(2):
        watch.before_call("forward")
        watch.after_call("forward")
        watch.returned("forward", "the output", y, copy)  # the same array again, unchanged
    assert watch.reused() == {}


class TensorWorkspace(ReferenceWith):
    """Writes the output into a torch tensor it keeps, and returns that tensor's memory each call."""

    def __init__(self):
        self.out = None

    def forward(self, x, w, b, **settings):
        import torch

        y = super().forward(x, w, b, **settings)
        if self.out is None or tuple(self.out.shape) != y.shape:
            self.out = torch.empty(y.shape, dtype=torch.float64)
        self.out.copy_(torch.from_numpy(y))
        return self.out.numpy()


def test_memory_a_tensor_owns_is_watched_whoever_holds_it():
    pytest.importorskip("torch")
    (reason,) = _reused(check_layer(GEOMETRY, TensorWorkspace()))
    assert "forward returned the output in a buffer that the next forward call overwrote" in reason


class ViewOfWorkspace(ReferenceWith):
    """Returns its output in one workspace kept for every call: a flat array reshaped, so what it
    returns is a view whose owner nothing but that view refers to."""

    def __init__(self):
        self.out = None

    def forward(self, x, w, b, **settings):
        y = super().forward(x, w, b, **settings)
        if self.out is None or self.out.shape != y.shape:
            self.out = np.empty(math.prod(y.shape)).reshape(y.shape)
        self.out[...] = y
        return self.out


class GradientViews(ReferenceWith):
    """Backward writes dX, dK and db into views of flat buffers it keeps."""

    def __init__(self):
        self.buffers = {}

    def backward(self, dy, x, w, b, **settings):
        grads = super().backward(dy, x, w, b, **settings)
        kept = []
        for name, g in zip("xwb", grads):
            if name not in self.buffers or self.buffers[name].shape != g.shape:
                self.buffers[name] = np.empty(g.size).reshape(g.shape)
            self.buffers[name][...] = g
            kept.append(self.buffers[name])
        return tuple(kept)


class WeakScratch(ReferenceWith):
    """Keeps only a weak reference to the output it returned, and writes the next output into it
    while it is still alive: exactly while a caller still holds it."""

    def __init__(self):
        self.last = None

    def forward(self, x, w, b, **settings):
        y = super().forward(x, w, b, **settings)
        out = self.last() if self.last is not None else None
        if out is None or out.shape != y.shape:
            out = np.empty_like(y)
            self.last = weakref.ref(out)
        out[...] = y
        return out


class ClampsKeptOutput(ReferenceWith):
    """Forward keeps its output for backward; backward clamps it in place (a ReLU mask), so the
    output the caller got from forward changes during backward."""

    def __init__(self):
        self.y = None

    def forward(self, x, w, b, **settings):
        self.y = super().forward(x, w, b, **settings)
        return self.y

    def backward(self, dy, x, w, b, **settings):
        if self.y is not None:
            np.maximum(self.y, 0.0, out=self.y)
        return reference_backward(dy, x, w, b, **settings)


class RecyclesOldOutputs(ReferenceWith):
    """Keeps its last three outputs and reuses the one that falls out as scratch: what it returns
    is new each time, but an output from three calls ago is overwritten."""

    def __init__(self):
        self.history = []

    def forward(self, x, w, b, **settings):
        y = super().forward(x, w, b, **settings)
        if len(self.history) == 3:
            self.history.pop(0)[...] = 0.0
        self.history.append(y)
        return y


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize(
    "layer, reason",
    [
        (ViewOfWorkspace, "forward returned the output in a buffer that the next forward call overwrote"),
        (GradientViews, "backward returned dX in a buffer that the next backward call overwrote"),
        (WeakScratch, "forward returned the output in a buffer that the next forward call overwrote"),
        (ClampsKeptOutput, "forward returned the output in a buffer that the next backward call overwrote"),
        (RecyclesOldOutputs, "forward returned the output in a buffer that a later call overwrote"),
    ],
    ids=["view of a workspace", "gradient views", "weak reference", "kept output clamped", "old outputs recycled"],
)
def test_buffers_a_layer_holds_in_ways_no_reference_count_shows_are_watched(layer, reason, batch):
    geometry = resolve_geometry("3x6x6", "4x3x3x3", batch=batch)
    reasons = _reused(check_layer(geometry, layer()))
    assert len(reasons) == 1 and reason in reasons[0], reasons


def test_past_the_first_calls_no_earlier_result_is_kept():
    watch = ReturnWatch()
    first = np.zeros(4)
    gone = weakref.ref(first)
    watch.returned("forward", "the output", first, first.copy())
    del first
    for turn in range(1, RING_WINDOW + 2):
        watch.before_call("forward")
        watch.after_call("forward")
        y = np.full(4, float(turn))
        watch.returned("forward", "the output", y, y.copy())
        del y
    assert gone() is None  # released once the window closed: the long run of calls keeps nothing extra
    assert watch.reused() == {}


class CentresKeptInput(ReferenceWith):
    """Forward keeps x for backward; backward centres the kept x in place, changing the x its
    caller handed to forward."""

    def __init__(self):
        self.x = None

    def forward(self, x, w, b, **settings):
        self.x = x
        return super().forward(x, w, b, **settings)

    def backward(self, dy, x, w, b, **settings):
        grads = reference_backward(dy, x, w, b, **settings)
        if self.x is not None:
            self.x -= self.x.mean()
        return grads


class ScratchInLastInput(ReferenceWith):
    """Keeps the w of its last forward and uses it as scratch at the next forward."""

    def __init__(self):
        self.w = None

    def forward(self, x, w, b, **settings):
        if self.w is not None:
            self.w[...] = 0.0
        self.w = w
        return super().forward(x, w, b, **settings)


class ReadsKeptInputs(ReferenceWith):
    """Keeps x and w from forward and only reads them in backward: nothing wrong."""

    def forward(self, x, w, b, **settings):
        self.kept = (x, w)
        return super().forward(x, w, b, **settings)

    def backward(self, dy, x, w, b, **settings):
        assert np.array_equal(self.kept[0], x) or self.kept[0].shape != x.shape
        return reference_backward(dy, x, w, b, **settings)


def _kept_inputs(case):
    return [c.reason for c in case.calls if c.name == "inputs kept"]


def test_an_input_kept_and_changed_by_a_later_call_is_reported():
    case = check_layer(GEOMETRY, CentresKeptInput())
    assert not case.passed
    (reason,) = _kept_inputs(case)
    assert "forward kept its input x and the next backward call changed it in place" in reason
    (reason,) = _kept_inputs(check_layer(GEOMETRY, ScratchInLastInput()))
    assert "forward kept its input w and a later forward call changed it in place" in reason


def test_inputs_kept_and_only_read_are_no_finding():
    case = check_layer(GEOMETRY, ReadsKeptInputs())
    assert case.passed and _kept_inputs(case) == []


class ScalesPreviousOutputLate(ScalesPreviousOutput):
    """Halves the output it returned before, from its 40th forward call on: past the calls the
    watch compares in full, while the check's coloured dK calls run."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x, w, b, **settings):
        self.calls += 1
        if self.calls < 40:
            self.previous = None
        return super().forward(x, w, b, **settings)


def test_an_output_changed_only_past_the_first_calls_is_still_reported():
    case = check_layer(resolve_geometry("4x8x8", "4x4x3x3", padding=1), ScalesPreviousOutputLate(), method="coloured")
    (reason,) = _reused(case)
    assert "forward returned the output in a buffer that the next forward call overwrote" in reason
