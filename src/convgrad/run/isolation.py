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
"""

from __future__ import annotations

import gc
import multiprocessing
import signal
import threading
import time
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection, wait
from typing import Any, Optional, Sequence

from convgrad.errors import ConvgradError
from convgrad.geometry import GRADIENT_NAMES, LayerGeometry, TensorName
from convgrad.adapters.protocol import Implementation
from convgrad.numerics.gradient import Progress, ProgressFactory
from convgrad.options import CheckOptions
from convgrad.report import CaseReport, TensorComparison
from convgrad.run.case import DEFAULT_CASE_NAME, run_case

__all__ = ["run_case_isolated", "run_cases_isolated", "can_isolate", "IsolatedCase"]

_PROGRESS_INTERVAL_S = 0.1  # how often the child reports progress; a message per call is wasteful
_KILL_GRACE_S = 5.0  # how long to wait for a killed child to be reaped
_POLL_SLICE_S = 60.0  # a huge timeout would overflow wait(); deadlines are re-read anyway


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
) -> CaseReport:
    """`run_case(...)` in a child process that may run at most `options.timeout` seconds.

    A child that runs out of time is killed and the case fails with "timed out after N s"; a child
    that dies (a crash in native code, os._exit) fails the case with how it died. Either way
    every tensor is reported as not checked.
    """
    return run_cases_isolated([IsolatedCase(geometry, name, progress)], implementation, options, jobs=1)[0]


def run_cases_isolated(
    cases: Sequence[IsolatedCase], implementation: Implementation, options: CheckOptions, *, jobs: int,
    fail_fast: bool = False,
) -> list[CaseReport]:
    """Every case in a child of its own, at most `jobs` at a time; reports in the cases' order.
    With `fail_fast`, no case is started once one has failed (those running finish), and only the
    cases that ran are reported.

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
                child = _start(index, case, implementation, options)
                running[child.receiver] = child
            now = time.perf_counter()
            for child in [c for c in running.values() if now >= c.deadline]:
                reason = (
                    f"timed out after {options.timeout:g} s; the implementation may hang, or the layer "
                    "needs more time (raise the timeout)"
                )
                if child.threads > 1:
                    reason += (
                        f"; this process ran {child.threads} threads when the case's process was forked, "
                        "and threads do not survive a fork: a thread pool started at import waits "
                        "forever in the child (start it on first use instead)"
                    )
                reports[child.index] = _stop(child, implementation, options, reason, running)
            if not running:
                continue
            soonest = min(c.deadline for c in running.values())
            for receiver in wait(list(running), timeout=max(0.0, min(soonest - time.perf_counter(), _POLL_SLICE_S))):
                child = running[receiver]  # type: ignore[index]
                outcome = child.read()
                if isinstance(outcome, CaseReport):
                    reports[child.index] = outcome
                    _reap(child, running)
                elif isinstance(outcome, str):
                    reports[child.index] = _stop(child, implementation, options, outcome, running)
    finally:
        for child in list(running.values()):  # an input error, Ctrl-C, a bug here: no child outlives the run
            _reap(child, running)
    return [reports[index] for index in range(len(cases)) if index in reports]


@dataclass
class _Running:
    """A case's child process, the end of its pipe, and where its progress goes."""

    index: int
    case: IsolatedCase
    process: Any
    receiver: Connection
    started: float
    deadline: float
    threads: int  # in this process at the fork: the others are missing in the child
    advance: Optional[Progress] = field(default=None)

    def read(self) -> Optional[object]:
        """The report, a reason the case could not finish (str), or None: only progress so far.

        Reads every message already waiting; raises the ConvgradError a child reports."""
        while self.receiver.poll():
            try:
                message = self.receiver.recv()
            except (EOFError, OSError):  # the pipe closed without a report: the child died
                self.process.join(_KILL_GRACE_S)
                return _how_it_died(self.process.exitcode)
            kind = message[0]
            if kind == "report":
                report: CaseReport = message[1]
                return report
            if kind == "error":
                reason: str = message[1]
                return reason
            if kind == "input error":
                raise message[1]
            if kind == "start" and self.case.progress is not None:
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


def _start(index: int, case: IsolatedCase, implementation: Implementation, options: CheckOptions) -> _Running:
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    # Not a daemon: a daemonic child could not start processes of its own, and an implementation
    # may need to. _reap kills it whatever happens.
    process = context.Process(
        target=_run_child,
        args=(sender, case.geometry, implementation, options, case.name, case.progress is not None),
    )
    threads = threading.active_count()
    started = time.perf_counter()
    # Frozen, the objects the child inherits are left out of its garbage collections, which would
    # otherwise write into every one of them and so copy each page they live on; this process takes
    # them back once the child is forked.
    gc.freeze()
    try:
        process.start()
    finally:
        gc.unfreeze()
    sender.close()  # the child holds the only writing end now, so its death closes the pipe
    return _Running(index, case, process, receiver, started, started + options.timeout, threads)


def _reap(child: _Running, running: dict[Connection, _Running]) -> None:
    running.pop(child.receiver, None)
    child.receiver.close()
    if child.process.is_alive():
        child.process.kill()
    child.process.join(_KILL_GRACE_S)


def _stop(
    child: _Running,
    implementation: Implementation,
    options: CheckOptions,
    reason: str,
    running: dict[Connection, _Running],
) -> CaseReport:
    _reap(child, running)
    return _unfinished_case(
        child.case.geometry, implementation, options, child.case.name, reason, time.perf_counter() - child.started
    )


def _run_child(
    sender: Any,
    geometry: LayerGeometry,
    implementation: Implementation,
    options: CheckOptions,
    name: Optional[str],
    forward_progress: bool,
) -> None:
    try:
        progress = _ProgressSender(sender) if forward_progress else None
        report = run_case(geometry, implementation, options, name=name, progress=progress)
        sender.send(("report", report))
    except ConvgradError as error:  # the user's input: raised again in the parent (exit 2)
        sender.send(("input error", error))
    except BaseException as error:  # a bug or MemoryError in the check itself: report, never hang
        sender.send(("error", f"the check stopped: {type(error).__name__}: {error}".strip()))
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


def _how_it_died(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"the check process was killed by {name}; the implementation crashed (or ran out of memory)"
    return (
        f"the check process exited with code {exitcode} before reporting; the implementation "
        "ended the process (e.g. sys.exit or os._exit)"
    )


def _unfinished_case(
    geometry: LayerGeometry,
    implementation: Implementation,
    options: CheckOptions,
    name: Optional[str],
    reason: str,
    elapsed_s: float,
) -> CaseReport:
    """A case that could not be checked (an error), with the reason the check did not finish."""
    rtol = options.tolerances(geometry.dtype).rtol
    names: tuple[TensorName, ...] = (*(("O",) if options.forward_check else ()), *GRADIENT_NAMES)
    return CaseReport.build(
        name=name or DEFAULT_CASE_NAME,
        geometry=geometry,
        implementation=implementation.name,
        options=options,
        tensors=tuple(
            TensorComparison.not_checked(n, geometry, rtol, "not checked: the check did not finish", status="skipped")
            for n in names
        ),
        elapsed_s=elapsed_s,
        reason=reason,
    )
