"""Worker processes a tensor's coloured calls are shared out over (`--jobs`, numerics/coloured.py).

Each worker is forked from the case's process when its share starts, so it has the layer as
loaded and built, the guard, the inputs and everything the first calls made, without importing
anything again. It makes its share's calls through its copy of the guard and sends back its
result, the forward calls it made and what its guard found (warnings, reused buffers, inputs kept
and changed); this process adds those to its own guard in the order of the shares, as if it had
made every call itself.

What one process would have done decides what is reported: a share that raised is raised here,
the first in order (what the shares after it found is dropped, as one process would never have
made those calls); a worker that died without a word (a crash in native code) has its share run
again here, so the crash happens where the case's isolation sees it, as with one job. A worker
dies with the process that forked it, so a case stopped for its timeout leaves none behind.

Forking needs a framework that survives it: a process in which jax has started its runtime
(whose threads may deadlock a forked child) makes its calls itself, as do platforms without fork.

Each process counts only its own calls: a layer whose results depend on how many calls it has
made (wrong from its thousandth call on) goes wrong at other calls than in one process, or not at
all. Sharing out is therefore asked for (`--jobs N`); by default a case's calls stay in one
process, as a training loop makes them.
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import os
import pickle
import signal
import sys
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence, TypeVar

from convgrad.adapters.failure import ImplementationFailure
from convgrad.harness.guard import GuardedLayer, GuardFindings
from convgrad.harness.stages import not_listening
from convgrad.numerics.gradient import Progress, Share

__all__ = ["ForkedWorkers", "can_share_out"]

Result = TypeVar("Result")
_COUNTER_BYTES = 8  # per worker: the forward calls it has made so far, for the progress bar here
_PR_SET_PDEATHSIG = 1


def can_share_out() -> bool:
    """Whether calls can be shared out over forked workers in this process (the module docstring)."""
    return hasattr(os, "fork") and sys.platform.startswith("linux") and not _jax_started()


def _jax_started() -> bool:
    """Whether jax has started its runtime in this process (imported alone, it has not)."""
    if "jax" not in sys.modules:
        return False
    try:
        from jax._src import xla_bridge  # no public way to ask

        return bool(xla_bridge.backends_are_initialized())
    except Exception:  # noqa: BLE001 - another jax: assume it has
        return True


@dataclass
class _Worker:
    pid: int
    reader: int  # the pipe its outcome comes down


@dataclass
class ForkedWorkers:
    """Up to `count` processes in all (this one included) for one case's coloured calls."""

    guard: GuardedLayer
    count: int

    def run(
        self, shares: Sequence[Share[Result]], progress: Optional[Progress], made_elsewhere: Callable[[int], None],
        calls_before: Sequence[int],
    ) -> list[Result]:
        if len(shares) < 2 or not can_share_out():
            return [share(progress) for share in shares]
        counters = mmap.mmap(-1, _COUNTER_BYTES * len(shares))
        workers = [
            self._fork(share, counters, slot, calls_before[slot]) for slot, share in enumerate(shares[1:], start=1)
        ]
        try:
            seen = [0] * len(shares)
            polled = _polling(progress, counters, seen)
            results = [shares[0](polled)]
            for slot, (share, worker) in enumerate(zip(shares[1:], workers), start=1):
                outcome = _outcome(worker)
                if outcome is None:  # died without a word: its calls again here, as one process would
                    results.append(share(progress))
                    continue
                status, value, before, after = outcome
                self.guard.absorb(before, after)
                made_elsewhere(after.forward_calls - before.forward_calls)
                _advance(progress, counters, seen, slot)
                if status == "raised":
                    raise value
                results.append(value)
            return results
        finally:
            for worker in workers:
                _end(worker)
            counters.close()

    def _fork(self, share: Share[Any], counters: mmap.mmap, slot: int, ahead: int) -> _Worker:
        reader, writer = os.pipe()
        pid = os.fork()
        if pid:
            os.close(writer)
            return _Worker(pid, reader)
        # The worker: its share, its outcome down the pipe, and out without running anything of
        # the parent's (atexit handlers, buffered output).
        code = 0
        try:
            os.close(reader)
            _die_with_parent()
            self.guard.skip_ahead(ahead)
            before = self.guard.findings()
            with not_listening():
                try:
                    outcome: tuple[Any, ...] = ("returned", share(_into_counter(counters, slot)))
                except BaseException as error:  # whatever the share raised is the parent's to raise
                    outcome = ("raised", _picklable(error))
            payload = pickle.dumps((*outcome, before, self.guard.findings()), protocol=pickle.HIGHEST_PROTOCOL)
            with os.fdopen(writer, "wb") as pipe:
                pipe.write(payload)
        except BaseException:  # noqa: BLE001 - nothing may escape a forked child
            code = 1
        finally:
            os._exit(code)


def _into_counter(counters: mmap.mmap, slot: int) -> Progress:
    """A worker's progress: the calls it made so far, into its slot of memory shared with the parent."""
    made = 0

    def advance(calls: int) -> None:
        nonlocal made
        made += calls
        counters[slot * _COUNTER_BYTES : (slot + 1) * _COUNTER_BYTES] = made.to_bytes(_COUNTER_BYTES, "little")

    return advance


def _polling(progress: Optional[Progress], counters: mmap.mmap, seen: list[int]) -> Progress:
    """This process's progress: its own calls, and each time the workers' calls since."""

    def advance(calls: int) -> None:
        if progress is None:
            return
        progress(calls)
        for slot in range(1, len(seen)):
            _advance(progress, counters, seen, slot)

    return advance


def _advance(progress: Optional[Progress], counters: mmap.mmap, seen: list[int], slot: int) -> None:
    made = int.from_bytes(counters[slot * _COUNTER_BYTES : (slot + 1) * _COUNTER_BYTES], "little")
    if progress is not None and made > seen[slot]:
        progress(made - seen[slot])
    seen[slot] = max(seen[slot], made)


def _outcome(worker: _Worker) -> Optional[tuple[str, Any, GuardFindings, GuardFindings]]:
    """What the worker sent once it ended, or None if it sent nothing whole."""
    with os.fdopen(worker.reader, "rb") as pipe:
        worker.reader = -1
        data = pipe.read()
    with contextlib.suppress(ChildProcessError):
        os.waitpid(worker.pid, 0)
    worker.pid = 0
    try:
        return pickle.loads(data) if data else None
    except Exception:  # noqa: BLE001 - cut short: treated as sending nothing
        return None


def _end(worker: _Worker) -> None:
    """A worker not waited for (this process raised first): stopped and reaped."""
    if worker.pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(worker.pid, 0)
        worker.pid = 0
    if worker.reader >= 0:
        os.close(worker.reader)
        worker.reader = -1


def _die_with_parent() -> None:
    """Linux's parent-death signal: the worker is killed when the process that forked it ends."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _picklable(error: BaseException) -> BaseException:
    """`error` if it survives pickling, else an ImplementationFailure with its one line."""
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:  # noqa: BLE001 - an exception of the layer's own that cannot be rebuilt
        from convgrad.adapters.failure import describe_exception

        return ImplementationFailure(f"forward raised {describe_exception(error)}")
