"""The reuse watch: did an array the layer returned change during one of its later calls?

A caller that keeps a result must not see it change, so every array forward and backward return is
kept (as returned, and as a copy of what it held) and compared again later. Comparing every kept
array after every call would cost passes over activations on every finite-difference call, so:

- what each kind of call returned last is compared after the next `COMPARED_CALLS` calls of each
  kind; past those, calls only mark it unverified, and it is compared once more before a call of
  the other kind, when it is replaced, and at the end. A change is so still named by the kind of
  call that made it, as when it was compared after every call. That holds for the first
  `RING_WINDOW` results of each name and every `SPOT_EVERY`-th after; the others are compared
  only when a new result shares their memory (a buffer handed out again), before a call of the
  other kind and at the end: a layer that writes into what it returned before does it from its
  first calls, and a pass over every output of a thousand-call check cost a tenth of a second.
- for the first `RING_WINDOW` results of each name, the `HELD` results before the latest are kept
  too: each new result is tested for sharing memory with them (an O(1) test on their bounds), which
  shows a layer handing out a ring of buffers in turn, and each is compared once more when it leaves
  (a layer that keeps its earlier outputs and later writes into them). A ring or a recycling layer
  shows from its first calls; past the window nothing earlier is kept, so the thousands of calls
  of a check do not keep extra arrays alive.

Nothing is let go early on the grounds that only the watch still refers to a result: a layer can
hold its buffer through a view, a weak reference or a pointer that no reference count shows.

Inputs go the other way (`KeptInputs`): a layer that keeps the x it was given and changes it during
a later call (forward keeps x, backward centres it in place) changes its caller's x. The guard
compares each input right after its own call; the inputs of the first `LENDING_CALLS` calls are
kept and compared again after each of the next `COMPARED_LATER` calls. A layer that does this does
it from its first calls, so the thousands of calls after those cost nothing.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Literal, Optional

import numpy as np

__all__ = ["CallKind", "ReturnWatch", "KeptInputs", "same_bits", "COMPARED_CALLS", "HELD", "RING_WINDOW",
           "SPOT_EVERY", "LENDING_CALLS", "COMPARED_LATER"]

CallKind = Literal["forward", "backward"]
COMPARED_CALLS = 2  # calls of each kind after which a latest result is compared in full
HELD = 4  # earlier results kept per name: rings of up to HELD + 1 buffers
RING_WINDOW = 3 * (HELD + 1)  # results of a name during which earlier ones are kept
SPOT_EVERY = 8  # past the window, every this many results of a name are compared after the next calls
LENDING_CALLS = 6  # the first calls whose inputs are kept and compared again later
COMPARED_LATER = 4  # calls after its own during which a kept input is compared


@dataclass
class _Returned:
    """One returned array: the layer's own buffer, and a read-only copy of what it held."""

    original: np.ndarray
    copy: np.ndarray
    calls_since: dict[str, int] = field(default_factory=dict)  # kind -> calls since it was returned
    unverified: Optional[CallKind] = None  # the kind of the calls since it was last compared
    watched: bool = True  # compared after the next calls and when replaced (the module docstring)

    def changed(self) -> bool:
        # Plain equality first: one pass, and all it takes unless the array holds NaN.
        return not (
            np.array_equal(self.original, self.copy) or np.array_equal(self.original, self.copy, equal_nan=True)
        )


@dataclass
class ReturnWatch:
    """Kept results of forward and backward, by (call, name), and what overwrote which."""

    _reused: dict[str, str] = field(default_factory=dict)  # "call name" -> why it is a failure
    _latest: dict[tuple[CallKind, str], _Returned] = field(default_factory=dict)
    _earlier: dict[tuple[CallKind, str], deque[_Returned]] = field(default_factory=dict)
    _results: dict[tuple[CallKind, str], int] = field(default_factory=dict)  # how many each name returned

    def before_call(self, caller: CallKind) -> None:
        """Settle what calls of the other kind left unverified, so a change is blamed on them."""
        for key, kept in self._latest.items():
            if kept.unverified != caller:
                self._settle(key, kept)

    def after_call(self, caller: CallKind) -> None:
        """Compare the latest results the next few calls of each kind; past those, only mark them."""
        for key, kept in self._latest.items():
            seen = kept.calls_since.get(caller, 0)
            kept.calls_since[caller] = seen + 1
            if kept.watched and seen < COMPARED_CALLS:
                self._verify(key, kept, f"the next {caller} call")
            else:
                kept.unverified = caller

    def returned(self, caller: CallKind, name: str, original: np.ndarray, copy: np.ndarray) -> None:
        """A call returned `original` (kept as `copy`): test it against the results still kept, and
        keep it as the latest of its name."""
        for key, kept in self._latest.items():
            if np.may_share_memory(original, kept.original):
                self._settle(key, kept)
        for key, earlier in self._earlier.items():
            for kept in earlier:
                if np.may_share_memory(original, kept.original):
                    self._verify(key, kept, f"a later {caller} call")
        key = (caller, name)
        count = self._results[key] = self._results.get(key, 0) + 1
        replaced = self._latest.get(key)
        if replaced is not None:
            if replaced.watched:
                self._settle(key, replaced)
            self._keep_earlier(key, replaced, open_window=count <= RING_WINDOW)
        self._latest[key] = _Returned(original, copy, watched=count <= RING_WINDOW or count % SPOT_EVERY == 0)

    def skip_ahead(self, caller: CallKind, name: str, results: int) -> None:
        """Count `results` of a name as returned elsewhere (in other processes), for the schedule."""
        key = (caller, name)
        self._results[key] = self._results.get(key, 0) + results

    def record(self, found: dict[str, str]) -> None:
        """Reasons found by a copy of this watch (in a worker process), added to its own."""
        for label, why in found.items():
            self._reused.setdefault(label, why)

    def reused(self) -> dict[str, str]:
        """One reason per (call, name) whose result some later call overwrote, all calls so far."""
        for key, kept in self._latest.items():
            self._settle(key, kept)
        for key, earlier in self._earlier.items():
            for kept in earlier:
                self._verify(key, kept, "a later call")
        return self._reused

    def _settle(self, key: tuple[CallKind, str], kept: _Returned) -> None:
        """Compare a latest result that calls since its last comparison left unverified."""
        if kept.unverified is not None:
            self._verify(key, kept, f"the next {kept.unverified} call")

    def _keep_earlier(self, key: tuple[CallKind, str], replaced: _Returned, open_window: bool) -> None:
        """Keep a replaced result while the window is open; compare what leaves it once more
        (long after it was returned: any call since may have changed it)."""
        earlier = self._earlier.setdefault(key, deque())
        if open_window:
            earlier.append(replaced)
        while earlier and (len(earlier) > HELD or not open_window):
            self._verify(key, earlier.popleft(), "a later call")

    def _verify(self, key: tuple[CallKind, str], kept: _Returned, which: str) -> None:
        """Compare a kept result with its copy; `which`: the call(s) a change is put down to."""
        kept.unverified = None
        what, name = key
        label = f"{what} {name}"
        if label in self._reused or not kept.changed():
            return
        self._reused[label] = (
            f"{what} returned {name} in a buffer that {which} overwrote: a caller "
            f"that keeps {name} sees it change; return a new array (or a copy) from every call"
        )


@dataclass
class _Lent:
    """An input handed to a call: the array the layer got, and a copy of what it held."""

    caller: CallKind
    name: str
    given: np.ndarray
    copy: np.ndarray
    calls_since: int = 0


@dataclass
class KeptInputs:
    """Inputs of the first calls, compared again after the calls that follow (module docstring)."""

    changed: dict[str, str] = field(default_factory=dict)  # "call name" -> why it is a failure
    _lent: list[_Lent] = field(default_factory=list)
    _calls: int = 0

    def lent(self, caller: CallKind, inputs: dict[str, np.ndarray]) -> None:
        """A call finished with these inputs unchanged: keep them if it is one of the first."""
        self._calls += 1
        if self._calls <= LENDING_CALLS:
            self._lent.extend(_Lent(caller, name, given, given.copy()) for name, given in inputs.items())

    def after_call(self, caller: CallKind) -> None:
        """Compare what earlier calls were given; let go of what has been compared long enough."""
        still = []
        for lent in self._lent:
            label = f"{lent.caller} {lent.name}"
            if label not in self.changed and not same_bits(lent.given, lent.copy):
                which = "the next" if lent.calls_since == 0 else "a later"
                self.changed[label] = (
                    f"{lent.caller} kept its input {lent.name} and {which} {caller} call changed it in "
                    f"place: the caller's {lent.name} changes too; keep a copy ({lent.name}.copy()) instead"
                )
            lent.calls_since += 1
            if lent.calls_since < COMPARED_LATER:
                still.append(lent)
        self._lent = still


_UNSIGNED = {size: np.dtype(f"u{size}") for size in (1, 2, 4, 8)}


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two arrays of one shape hold the same values bit for bit: one pass, and NaN is
    equal to itself."""
    bits = _UNSIGNED.get(a.dtype.itemsize)
    if bits is None or a.dtype != b.dtype:
        return bool(np.array_equal(a, b, equal_nan=True))
    return bool((a.view(bits) == b.view(bits)).all())
