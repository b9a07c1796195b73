"""The reuse watch: did an array the layer returned change during one of its later calls?

A caller that keeps a result must not see it change, so every array forward and backward return is
kept (as returned, and as a copy of what it held) and compared again later. Comparing every kept
array after every call would cost four passes over activations per finite-difference call, so:

- a result whose memory nothing but the watch holds any longer (a NumPy array the layer let go)
  cannot be written into by a later call, and is let go of in turn: a layer that returns new
  arrays costs no comparison at all. Memory owned by something else (a tensor, a C library) is
  watched whoever holds it.
- what each kind of call returned last is compared after the next `COMPARED_CALLS` calls of each
  kind; past those, calls only mark it unverified, and it is compared once more before a call of
  the other kind, when it is replaced, and at the end. A change is so still named by the kind of
  call that made it, as when it was compared after every call.
- what was returned before that (the last `HELD` arrays of each name) is kept while the layer is
  known to hold it, and tested for sharing memory with each new result, an O(1) test on their
  bounds: a layer cycling through a ring of NumPy buffers hands one back, and only then are the
  contents compared. Memory whose holders cannot be told (a tensor's) is not kept past its
  replacement: keeping every earlier result slowed the layer itself down (memory traffic) by more
  than the comparisons saved.
"""

from __future__ import annotations

import sys
from collections import deque
from dataclasses import dataclass, field
from typing import Literal, Optional

import numpy as np

__all__ = ["CallKind", "ReturnWatch", "COMPARED_CALLS", "HELD"]

CallKind = Literal["forward", "backward"]
COMPARED_CALLS = 2  # calls of each kind after which a latest result is compared in full
HELD = 2  # earlier results kept per name for the overlap test: rings of up to HELD + 1 buffers


@dataclass
class _Returned:
    """One returned array: the layer's own buffer, and a read-only copy of what it held."""

    original: np.ndarray
    copy: np.ndarray
    calls_since: dict[str, int] = field(default_factory=dict)  # kind -> calls since it was returned
    unverified: Optional[CallKind] = None  # the kind of the calls since it was last compared
    let_go: bool = False  # only the watch holds its memory: nothing can change it any more

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

    def before_call(self, caller: CallKind) -> None:
        """Settle what calls of the other kind left unverified, so a change is blamed on them, and
        let go of the results the layer let go of."""
        for key, kept in self._held():
            let_go = _only_watched(kept)
            if kept.unverified is not None and (kept.unverified != caller or let_go):
                self._verify(key, kept, kept.unverified)
            kept.let_go = let_go

    def after_call(self, caller: CallKind) -> None:
        """Compare the latest results the next few calls of each kind; past those, only mark them."""
        for key, kept in self._held():
            seen = kept.calls_since.get(caller, 0)
            kept.calls_since[caller] = seen + 1
            if seen < COMPARED_CALLS:
                self._verify(key, kept, caller)
            else:
                kept.unverified = caller

    def returned(self, caller: CallKind, name: str, original: np.ndarray, copy: np.ndarray) -> None:
        """A call returned `original` (kept as `copy`): test it against the results still held, and
        keep it as the latest of its name."""
        for key, kept in self._held():
            if kept.unverified is not None and np.may_share_memory(original, kept.original):
                self._verify(key, kept, kept.unverified)
        for key, earlier in self._earlier.items():
            for kept in earlier:
                if np.may_share_memory(original, kept.original):
                    self._verify(key, kept, caller, later=True)
        key = (caller, name)
        replaced = self._latest.get(key)
        if replaced is not None and not replaced.let_go:
            if replaced.unverified is not None:
                self._verify(key, replaced, replaced.unverified)
            if _held_by_layer(replaced):  # it may write into it again
                self._earlier.setdefault(key, deque(maxlen=HELD)).append(replaced)
        self._latest[key] = _Returned(original, copy)

    def reused(self) -> dict[str, str]:
        """One reason per (call, name) whose result some later call overwrote, all calls so far."""
        for key, kept in self._held():
            if kept.unverified is not None:
                self._verify(key, kept, kept.unverified)
        return self._reused

    def _held(self) -> list[tuple[tuple[CallKind, str], _Returned]]:
        """The latest results that a later call could still change."""
        return [(key, kept) for key, kept in self._latest.items() if not kept.let_go]

    def _verify(self, key: tuple[CallKind, str], kept: _Returned, caller: CallKind, later: bool = False) -> None:
        kept.unverified = None
        what, name = key
        label = f"{what} {name}"
        if label in self._reused or not kept.changed():
            return
        which = f"a later {caller} call" if later else f"the next {caller} call"
        self._reused[label] = (
            f"{what} returned {name} in a buffer that {which} overwrote: a caller "
            f"that keeps {name} sees it change; return a new array (or a copy) from every call"
        )


def _references(kept: _Returned) -> Optional[int]:
    """References to the NumPy array that owns the memory of a kept result (the result itself, or
    the end of its .base chain), None when something else owns it (a tensor, a C library)."""
    owner = kept.original
    while isinstance(owner.base, np.ndarray):
        owner = owner.base
    if owner.base is not None or not owner.flags.owndata:
        return None
    return sys.getrefcount(owner)


def _only_watched(kept: _Returned) -> bool:
    return _references(kept) == _UNSHARED


def _held_by_layer(kept: _Returned) -> bool:
    references = _references(kept)
    return references is not None and references > _UNSHARED


def _unshared() -> int:
    """What a result that only the watch holds counts, measured rather than assumed (CPython's own
    references differ between versions); an array the layer returned and let go has no more."""
    counted = _references(_Returned(np.zeros(1), np.zeros(1)))
    assert counted is not None  # an array of its own
    return counted


_UNSHARED = _unshared()
