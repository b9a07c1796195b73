"""Running cases in child processes, so an implementation that hangs or dies cannot take the
gate down with it: after `options.timeout` seconds a case's child is killed and the case fails
with a reason. `run_case_isolated` has the signature of `run_case` and runs it; `run_cases_isolated`
runs many, up to `jobs` children at a time, and returns the reports in the order of the cases.

Every case gets a child of its own, forked from this process: it inherits the implementation
under test (even one defined in a test or loaded from a file, without pickling it) exactly as it
was before any case ran, so what one case does to a stateful layer cannot leak into another and
the reports do not depend on how cases were spread over children. The child sends back the
finished `CaseReport`, a picklable frozen dataclass, and forwards progress. Where fork is not
available the cases run in this process, one by one, and the timeout cannot be enforced (a warning
says so).

The child listens to its case (harness/stages.py): which call of the layer it is in goes to
memory it shares with this process (a write per call, no message), each row of the first call and
each later call's check down the pipe once final. A child that times out or dies is reported from
those: the call it was in named in the reason ("timed out after 2 s in backward of the first
call"), the rows and later calls it finished with their verdicts, the first call's other rows not
checked (an error), the later calls it never reached not listed.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import mmap
import multiprocessing
import signal
import threading
import time
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Iterator, Optional, Sequence, Union

from convgrad.errors import ConvgradError
from convgrad.geometry import GRADIENT_NAMES, LayerGeometry, TensorName
from convgrad.adapters.protocol import Implementation
from convgrad.numerics.gradient import Progress, ProgressFactory
from convgrad.options import CheckOptions
from convgrad.harness.stages import SCENARIO_PART, listening
from convgrad.report import CallCheck, CaseReport, Diagnosis, TensorComparison
from convgrad.run.case import DEFAULT_CASE_NAME, run_case

__all__ = ["run_case_isolated", "run_cases_isolated", "can_isolate", "IsolatedCase"]

_PROGRESS_INTERVAL_S = 0.1  # how often the child reports progress; a message per call is wasteful
_KILL_GRACE_S = 5.0  # how long to wait for a killed child to be reaped
_POLL_SLICE_S = 60.0  # a huge timeout would overflow wait(); deadlines are re-read anyway
_WHERE_BYTES = 1024  # the shared memory for the call the child is in; a longer description is cut

# Why a child ended without its report, from where it was: " in backward of the first call",
# ", after forward of memory layouts 3 returned", or "" before any call of the layer.
_Ended = Callable[[str], str]
_Finished = Union[TensorComparison, CallCheck, Diagnosis]


def can_isolate() -> bool:
    """Whether checks can run in a forked child (POSIX); elsewhere they run in this process."""
    return "fork" in multiprocessing.get_all_start_methods()


@dataclass(frozen=True)
class IsolatedCase:
    """One case to run in a child: its geometry, its name, and the progress factory for it."""

    geometry: LayerGeometry
    name: Optional[str] = None
    progress: Optional[ProgressFactory] = None


def run_case_isolated(
    geometry: LayerGeometry,
    implementation: Implementation,
    options: CheckOptions,
    *,
    name: Optional[str] = None,
    progress: Optional[ProgressFactory] = None,
    workers: int = 1,
) -> CaseReport:
    """`run_case(...)` in a child process that may run at most `options.timeout` seconds.

    A child that runs out of time is killed and the case fails with "timed out after N s in" the
    call it was in; a child that dies (a crash in native code, os._exit) fails the case with how
    it died and in which call. Either way what finished before keeps its verdicts (see above).
    """
    return run_cases_isolated(
        [IsolatedCase(geometry, name, progress)], implementation, options, jobs=workers, share_out=True
    )[0]


def run_cases_isolated(
    cases: Sequence[IsolatedCase], implementation: Implementation, options: CheckOptions, *, jobs: int,
    fail_fast: bool = False, share_out: bool = False,
) -> list[CaseReport]:
    """Every case in a child of its own, at most `jobs` at a time; reports in the cases' order.
    With `fail_fast`, no case is started once one has failed (those running finish), and only the
    cases that ran are reported. With `share_out`, the jobs the cases leave idle share out each
    case's coloured calls (harness/workers.py).

    A case whose input turns out bad in its child (a ConvgradError) ends the run: every child is
    killed and the error is raised here, as it would be without isolation.
    """
    if not can_isolate():
        warning = "the timeout is not enforced: this platform cannot fork"
        ran: list[CaseReport] = []
        for c in cases:
            report = run_case(c.geometry, implementation, options, name=c.name, progress=c.progress)
            ran.append(replace(report, warnings=(*report.warnings, warning)))
            if fail_fast and report.failed:
                break
        return ran
    _import_what_every_child_would()
    # Jobs the cases leave idle go to each case's coloured calls: one case with two jobs shares
    # its calls over two processes, a suite of many runs its cases side by side.
    workers = max(1, jobs // max(1, min(jobs, len(cases)))) if share_out else 1
    reports: dict[int, CaseReport] = {}
    waiting = list(enumerate(cases))
    if not fail_fast:  # the largest first, so that no core idles on one large case at the end
        waiting.sort(key=lambda item: item[1].geometry.multiply_adds)
    else:  # in the suite's order: the first failure is the suite's first
        waiting.reverse()  # popped from the end
    running: dict[Connection, _Running] = {}
    try:
        while waiting or running:
            if fail_fast and any(report.failed for report in reports.values()):
                waiting.clear()  # the running cases finish; no new one starts
            while waiting and len(running) < max(1, jobs):
                index, case = waiting.pop()
                child = _start(index, case, implementation, options, workers)
                running[child.receiver] = child
            now = time.perf_counter()
            for child in [c for c in running.values() if now >= c.deadline]:
                timed_out = functools.partial(_timed_out, options.timeout, child.threads)
                reports[child.index] = _stop(child, implementation, options, timed_out, running)
            if not running:
                continue
            soonest = min(c.deadline for c in running.values())
            for receiver in wait(list(running), timeout=max(0.0, min(soonest - time.perf_counter(), _POLL_SLICE_S))):
                child = running[receiver]  # type: ignore[index]
                outcome = child.read()
                if isinstance(outcome, CaseReport):
                    reports[child.index] = outcome
                    _reap(child, running)
                elif outcome is not None:
                    reports[child.index] = _stop(child, implementation, options, outcome, running)
    finally:
        for child in list(running.values()):  # an input error, Ctrl-C, a bug here: no child outlives the run
            _reap(child, running)
    return [reports[index] for index in range(len(cases)) if index in reports]


class _Whereabouts:
    """Which call of the layer a child is in, or returned from last: written by the child into
    memory shared with this process, read here once the child has ended."""

    _IN_CALL, _RETURNED = 1, 2  # the first byte; 0 before any call

    def __init__(self) -> None:
        self._memory = mmap.mmap(-1, _WHERE_BYTES)  # anonymous and shared: the forked child writes into it
        self._text = ""  # the child's last description, so that a call like the one before writes one byte

    def calling(self, where: str) -> None:
        memory = self._memory
        if where != self._text:
            text = where.encode()[: _WHERE_BYTES - 3]
            memory[0] = 0  # a description half written is never read as whole
            memory[1:3] = len(text).to_bytes(2, "little")
            memory[3 : 3 + len(text)] = text
            self._text = where
        memory[0] = self._IN_CALL

    def returned(self) -> None:
        if self._memory[0]:
            self._memory[0] = self._RETURNED

    def last(self) -> str:
        """' in backward of the first call', ', after forward of memory layouts 3 returned', or ''."""
        state = self._memory[0]
        if not state:
            return ""
        text = self._memory[3 : 3 + int.from_bytes(self._memory[1:3], "little")].decode(errors="ignore")
        return f" in {text}" if state == self._IN_CALL else f", after {text} returned"

    def close(self) -> None:
        self._memory.close()


def _key(result: _Finished) -> tuple[str, str]:
    """What a newer version of a finished result replaces: a row by its label, a check by its name."""
    if isinstance(result, TensorComparison):
        return "row", result.label
    if isinstance(result, Diagnosis):
        return "diagnosis", f"{result.tensor} {result.kind}"
    return result.part, result.name


class _Listener:
    """The child's listener (harness/stages.py): where it is to the shared memory, each finished
    row and check down the pipe, once per version."""

    def __init__(self, sender: Any, whereabouts: _Whereabouts) -> None:
        self._sender, self._whereabouts = sender, whereabouts
        self._sent: dict[tuple[str, str], object] = {}

    def calling(self, where: str) -> None:
        self._whereabouts.calling(where)

    def returned(self) -> None:
        self._whereabouts.returned()

    def finished(self, result: object) -> None:
        if isinstance(result, (TensorComparison, CallCheck, Diagnosis)) and self._sent.get(_key(result)) is not result:
            self._sent[_key(result)] = result
            self._sender.send(("finished", _without_arrays(result)))


def _without_arrays(result: _Finished) -> _Finished:
    """`result` without the compared values: only the child works with them (locations and
    diagnoses are found there); the final report carries them, and a partial one needs none."""
    if isinstance(result, TensorComparison):
        return replace(result, analytical=None, numerical=None)
    if isinstance(result, CallCheck):
        return replace(result, tensors=tuple(replace(t, analytical=None, numerical=None) for t in result.tensors))
    return result


@dataclass
class _Running:
    """A case's child process, the end of its pipe, where its progress goes, and what it finished."""

    index: int
    case: IsolatedCase
    process: Any
    receiver: Connection
    started: float
    deadline: float
    threads: int  # in this process at the fork: the others are missing in the child
    whereabouts: _Whereabouts
    advance: Optional[Progress] = field(default=None)
    finished: dict[tuple[str, str], _Finished] = field(default_factory=dict)  # in the order they finished

    def read(self) -> Union[CaseReport, _Ended, None]:
        """The report, why the case could not finish (from where the child was), or None: only
        progress so far.

        Reads every message already waiting; raises the ConvgradError a child reports."""
        while self.receiver.poll():
            try:
                message = self.receiver.recv()
            except (EOFError, OSError):  # the pipe closed without a report: the child died
                self.process.join(_KILL_GRACE_S)
                return functools.partial(_how_it_died, self.process.exitcode)
            kind = message[0]
            if kind == "report":
                report: CaseReport = message[1]
                return report
            if kind == "error":
                error: str = message[1]
                return lambda at: f"the check stopped{at}: {error}"
            if kind == "input error":
                raise message[1]
            if kind == "finished":
                self.finished[_key(message[1])] = message[1]
            elif kind == "start" and self.case.progress is not None:
                self.advance = self.case.progress(message[1], message[2])
            elif kind == "advance" and self.advance is not None:
                self.advance(message[1])
        return None


def _import_what_every_child_would() -> None:
    """NumPy imports numpy.random and numpy.ma on first use (a check draws its tensors, and
    np.unique asks numpy.ma); imported once here, before any fork, every child inherits them
    instead of spending tens of milliseconds importing them again."""
    import numpy.ma  # noqa: F401
    import numpy.random  # noqa: F401


def _start(
    index: int, case: IsolatedCase, implementation: Implementation, options: CheckOptions, workers: int
) -> _Running:
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    whereabouts = _Whereabouts()
    # Not a daemon: a daemonic child could not start processes of its own, and an implementation
    # may need to. _reap kills it whatever happens.
    process = context.Process(
        target=_run_child,
        args=(sender, whereabouts, case.geometry, implementation, options, case.name, case.progress is not None, workers),
    )
    threads = threading.active_count()
    started = time.perf_counter()
    # Frozen, the objects the child inherits are left out of its garbage collections, which would
    # otherwise write into every one of them and so copy each page they live on; this process takes
    # them back once the child is forked.
    gc.freeze()
    try:
        with _interrupts_left_to_this_process():
            process.start()
    finally:
        gc.unfreeze()
    sender.close()  # the child holds the only writing end now, so its death closes the pipe
    return _Running(index, case, process, receiver, started, started + options.timeout, threads, whereabouts)


@contextlib.contextmanager
def _interrupts_left_to_this_process() -> Iterator[None]:
    """The child is born ignoring Ctrl-C: this process takes the KeyboardInterrupt and ends every
    child (`_reap`). A child that took it too would print multiprocessing's 'Process ForkProcess-1:'
    into the one line convgrad prints when interrupted, should it arrive before the case starts."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


def _end(child: _Running) -> None:
    if child.process.is_alive():
        child.process.kill()
    child.process.join(_KILL_GRACE_S)


def _reap(child: _Running, running: dict[Connection, _Running]) -> None:
    running.pop(child.receiver, None)
    child.receiver.close()
    _end(child)
    child.whereabouts.close()


def _stop(
    child: _Running,
    implementation: Implementation,
    options: CheckOptions,
    ended: _Ended,
    running: dict[Connection, _Running],
) -> CaseReport:
    """The case of a child that ended without its report (or is ended here), from what it sent."""
    elapsed_s = time.perf_counter() - child.started
    _end(child)
    late = child.read()  # what it sent before it ended: the rows and checks it finished
    where = child.whereabouts.last()
    reason = ended(where)
    _reap(child, running)
    if isinstance(late, CaseReport):  # it finished after all, as it was stopped
        return late
    return _unfinished_case(
        child.case, list(child.finished.values()), implementation, options, reason, elapsed_s,
        in_scenario=SCENARIO_PART in where,
    )


def _run_child(
    sender: Any,
    whereabouts: _Whereabouts,
    geometry: LayerGeometry,
    implementation: Implementation,
    options: CheckOptions,
    name: Optional[str],
    forward_progress: bool,
    workers: int,
) -> None:
    try:
        progress = _ProgressSender(sender) if forward_progress else None
        with listening(_Listener(sender, whereabouts)):
            report = run_case(geometry, implementation, options, name=name, progress=progress, workers=workers)
        sender.send(("report", report))
    except ConvgradError as error:  # the user's input: raised again in the parent (exit 2)
        sender.send(("input error", error))
    except BaseException as error:  # a bug or MemoryError in the check itself: report, never hang
        sender.send(("error", f"{type(error).__name__}: {error}".strip()))
    finally:
        sender.close()


class _ProgressSender:
    """The child's progress factory: forwards (description, total) and batched advances."""

    def __init__(self, sender: Any) -> None:
        self._sender = sender

    def __call__(self, description: str, total: int) -> Progress:
        self._sender.send(("start", description, total))
        pending = 0
        last = time.perf_counter()

        def advance(calls: int) -> None:
            nonlocal pending, last
            pending += calls
            now = time.perf_counter()
            if now - last >= _PROGRESS_INTERVAL_S:
                self._sender.send(("advance", pending))
                pending, last = 0, now

        return advance


def _timed_out(timeout: float, threads: int, at: str) -> str:
    reason = (
        f"timed out after {timeout:g} s{at}; the implementation may hang, or the layer needs more time "
        "(raise the timeout)"
    )
    if threads > 1:
        reason += (
            f"; this process ran {threads} threads when the case's process was forked, and threads do "
            "not survive a fork: a thread pool started at import waits forever in the child (start it "
            "on first use instead)"
        )
    return reason


def _how_it_died(exitcode: int | None, at: str) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"the check process was killed by {name}{at}; the implementation crashed (or ran out of memory)"
    return (
        f"the check process exited with code {exitcode}{at}, before reporting; the implementation "
        "ended the process (e.g. sys.exit or os._exit)"
    )


def _unfinished_case(
    case: IsolatedCase,
    finished: list[_Finished],
    implementation: Implementation,
    options: CheckOptions,
    reason: str,
    elapsed_s: float,
    in_scenario: bool = False,
) -> CaseReport:
    """A case whose child ended before its report: the rows and later calls it finished, the first
    call's other rows not checked for `reason` (an error), and the reason."""
    geometry = case.geometry
    rtol = options.tolerances(geometry.dtype).rtol
    rows = [r for r in finished if isinstance(r, TensorComparison)]
    own = {r.name: r for r in rows if not r.reference_gradient}

    def unfinished(name: TensorName) -> TensorComparison:
        if name == "db" and not implementation.has_bias:
            return TensorComparison.not_in_layer("db", geometry, rtol, "no bias")
        return TensorComparison.not_checked(name, geometry, rtol, reason, status="error")

    names: tuple[TensorName, ...] = (*(("O",) if options.forward_check else ()), *GRADIENT_NAMES)
    calls = tuple(c for c in finished if isinstance(c, CallCheck))
    if all(n in own for n in names):  # the first call finished: a later call did not, and is listed
        part = "network scenario" if in_scenario else "call protocol"
        calls += (CallCheck("unfinished", "the next call of the case", "nothing: it did not finish", "error",
                            cause=reason, part=part),)
    return CaseReport.build(
        name=case.name or DEFAULT_CASE_NAME,
        geometry=geometry,
        implementation=implementation.name,
        options=options,
        tensors=tuple(own[n] if n in own else unfinished(n) for n in names),
        reference_gradients=tuple(r for r in rows if r.reference_gradient),
        calls=calls,
        diagnoses=tuple(d for d in finished if isinstance(d, Diagnosis)),
        elapsed_s=elapsed_s,
        unfinished=reason,  # whatever its finished parts found, it could not be checked: an error
    )
