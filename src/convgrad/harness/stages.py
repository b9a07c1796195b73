"""Which call of the layer a case is making, and what it has finished, told to whoever listens.

A case run in a child process (run/isolation.py) listens: when the child hangs or dies, its
parent can say in which call ("backward of the first call", "forward of memory layouts 3",
"backward of layer B in the network scenario's step 'other settings'") and keep the verdicts of
what finished before it. Run in this process, nobody listens and nothing is recorded.

The parts of a case say where they are (`enter`, one line before their calls), every call of the
layer says what it is (`layer_call`, in the guard), and finished rows and later calls are handed
on as they are made (`finished`): no stage needs to know who listens, or whether anyone does.
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Iterator, Optional, Protocol

__all__ = ["Stage", "Listener", "SCENARIO_PART", "enter", "layer_call", "finished", "listening", "not_listening"]


# The part the network scenario names its calls in, while it builds its layers and in each step
# ("... in the network scenario's step 'other settings'"): how a call's description says it
# belongs to the scenario.
SCENARIO_PART = "the network scenario"


@dataclass(frozen=True)
class Stage:
    """A part of a case: `call` names its calls after "forward of" ("the first call", "memory
    layouts 3", "layer B"), `part` the larger part they belong to, if any ("the network
    scenario's step 'other settings'")."""

    call: str
    part: Optional[str] = None

    def where(self, what: str) -> str:
        """'backward of the first call'; a call other than forward or backward ('building layer A')
        says what it is itself."""
        text = f"{what} of {self.call}" if what in ("forward", "backward") else what
        return text if self.part is None else f"{text} in {self.part}"


class Listener(Protocol):
    """What a listener is told: each call of the layer as it starts and returns, and each result
    (a row of the first call, a later call's check) once it is final."""

    def calling(self, where: str) -> None: ...

    def returned(self) -> None: ...

    def finished(self, result: object) -> None: ...


_BEFORE_ANY_CALL = Stage("the case")
_stage: ContextVar[Stage] = ContextVar("convgrad_stage", default=_BEFORE_ANY_CALL)
_listener: ContextVar[Optional[Listener]] = ContextVar("convgrad_listener", default=None)


def enter(stage: Stage) -> None:
    """The case moves on to `stage`: the calls from here on are its calls."""
    if _listener.get() is not None:
        _stage.set(stage)


@contextlib.contextmanager
def layer_call(what: str) -> Iterator[None]:
    """Around one call of the layer ("forward", "backward", "building layer A")."""
    listener = _listener.get()
    if listener is None:
        yield
        return
    listener.calling(_stage.get().where(what))
    try:
        yield
    except Exception:  # raised, the call is over; SystemExit and the like end the case in it
        listener.returned()
        raise
    listener.returned()


def finished(*results: object) -> None:
    """Results that are final (a row that is not changed again, a later call's check); handing
    one on again, unchanged or replaced by a new version, is allowed."""
    listener = _listener.get()
    if listener is not None:
        for result in results:
            listener.finished(result)


@contextlib.contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """Tell `listener` where the case is, and what it finished, until the block ends."""
    stage, told = _stage.set(_BEFORE_ANY_CALL), _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(told)
        _stage.reset(stage)


@contextlib.contextmanager
def not_listening() -> Iterator[None]:
    """Tell nobody until the block ends: a worker process (harness/workers.py) makes calls on the
    case's behalf, and the case's own process says where the case is."""
    told = _listener.set(None)
    try:
        yield
    finally:
        _listener.reset(told)
