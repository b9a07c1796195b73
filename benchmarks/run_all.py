"""Benchmarks of convgrad's gradient checks; prints every figure of benchmarks/RESULTS.md.

    python benchmarks/run_all.py                 # everything (torch needed for the gradcheck figure)
    python benchmarks/run_all.py --only resnet   # one figure: startup, seed, gradcheck, resnet,
                                                 # protocol, suite, equivalents, split, scenario,
                                                 # large

Each comparison is measured side by side in the same run (alternating the two sides) and the
medians are reported. Run from the repository root; uses src/ when convgrad is not installed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from typing import Any, Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "src")
sys.path.insert(0, SRC)
ENV = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
# One BLAS/OpenMP thread, as the command line runs (cli.py): a check and the forward it is
# measured against then use the same threads, in this process and in a child.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
    ENV.setdefault(_variable, "1")


def machine() -> str:
    import numpy

    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:
        torch_version = "not installed"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"CPU {cpu}, {os.cpu_count()} cores, {ram:.1f} GiB RAM, load average {load:.2f} at start; "
        f"Python {platform.python_version()}, numpy {numpy.__version__}, torch {torch_version}"
    )


def timed(function: Callable[[], Any], clock: Callable[[], float] = time.perf_counter) -> tuple[float, Any]:
    start = clock()
    result = function()
    return clock() - start, result


def side_by_side(a: Callable[[], Any], b: Callable[[], Any], runs_a: int, runs_b: int,
                 clock: Callable[[], float] = time.perf_counter):
    """Alternate the two sides so both see the same machine load; medians and last results."""
    times_a, times_b, result_a, result_b = [], [], None, None
    for i in range(max(runs_a, runs_b)):
        if i < runs_a:
            t, result_a = timed(a, clock)
            times_a.append(t)
        if i < runs_b:
            t, result_b = timed(b, clock)
            times_b.append(t)
    return statistics.median(times_a), statistics.median(times_b), result_a, result_b


def startup() -> None:
    def run(args: list[str]) -> Callable[[], Any]:
        return lambda: subprocess.run(args, env=ENV, check=True, stdout=subprocess.DEVNULL)

    bare, helped, _, _ = side_by_side(
        run([sys.executable, "-c", "pass"]), run([sys.executable, "-m", "convgrad", "--help"]), 9, 9
    )
    print(f"startup: python -c pass {bare:.3f} s, convgrad --help {helped:.3f} s (median of 9), "
          f"difference {helped - bare:+.3f} s (target <= +0.300 s)")


def seed_case() -> None:
    from convgrad import CheckOptions, as_implementation, resolve_geometry, run_case

    geometry = resolve_geometry("3x20x20", "5x3x3x3")
    reference = as_implementation("reference")
    coloured, dense, c_case, d_case = side_by_side(
        lambda: run_case(geometry, reference, CheckOptions(method="coloured")),
        lambda: run_case(geometry, reference, CheckOptions(method="dense")),
        5,
        5,
    )
    print(f"seed 3x20x20, 5x3x3x3: coloured {coloured:.3f} s ({c_case.forward_calls} forward calls), "
          f"dense {dense:.3f} s ({d_case.forward_calls} forward calls), median of 5 each; "
          f"coloured is {dense / coloured:.0f}x faster; verdicts {c_case.passed} / {d_case.passed}")


class TorchConv:
    """torch.nn.functional.conv2d as a convgrad implementation: forward, and backward by autograd."""

    name = "torch conv2d"

    def forward(self, x, w, b, *, stride, padding, dilation, groups):
        import torch

        with torch.no_grad():
            y = torch.nn.functional.conv2d(
                torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b),
                stride=stride, padding=padding, dilation=dilation, groups=groups,
            )
        return y.numpy()

    def backward(self, dy, x, w, b, *, stride, padding, dilation, groups):
        import torch

        tensors = [torch.from_numpy(a).requires_grad_() for a in (x, w, b)]
        y = torch.nn.functional.conv2d(*tensors, stride=stride, padding=padding, dilation=dilation, groups=groups)
        y.backward(torch.from_numpy(dy))
        return tuple(t.grad.numpy() for t in tensors)


GRADCHECK_LAYER = ("8x32x32", "8x3x3")


def gradcheck_side(side: str, runs: int) -> None:
    """One side of the gradcheck comparison, in a process of its own: a warm-up, then `runs` timed
    checks; prints {"wall": [...], "cpu": [...], "passed": ..., "calls": ...} as JSON."""
    import numpy as np
    import torch

    from convgrad import CheckOptions, as_implementation, resolve_geometry, run_case

    # One torch thread on both sides: on a shared 2-core machine, spinning worker threads made a
    # 50 microsecond conv take milliseconds whenever another job ran.
    torch.set_num_threads(1)
    geometry = resolve_geometry(*GRADCHECK_LAYER)
    rng = np.random.default_rng(0)
    inputs = tuple(
        torch.from_numpy(rng.standard_normal(shape)).requires_grad_()
        for shape in (geometry.x_shape, geometry.w_shape, geometry.b_shape)
    )

    def theirs() -> tuple[bool, str]:
        return torch.autograd.gradcheck(torch.nn.functional.conv2d, inputs, fast_mode=False), ""

    def ours() -> tuple[bool, str]:
        case = run_case(geometry, as_implementation(TorchConv()), CheckOptions())
        return case.passed, _methods(case)

    check = ours if side == "ours" else theirs
    if side == "ours":
        check()  # warm-up: imports, caches
    else:
        torch.nn.functional.conv2d(*inputs).sum().backward()  # warm-up of torch's own paths
    wall, cpu, passed, calls = [], [], True, ""
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        ok, calls = check()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        passed = passed and ok
    print(json.dumps({"wall": wall, "cpu": cpu, "passed": passed, "calls": calls}))


def gradcheck(rounds: int = 3) -> None:
    """convgrad against torch.autograd.gradcheck (slow mode, every coordinate too) on 8x32x32 with
    8 kernels 8x3x3, both checking torch's conv2d. Each side runs in a fresh process of its own,
    warmed up, and the two alternate: in one process, a check that follows a 15-second gradcheck
    starts on a heap that gradcheck's 500 MB Jacobian left behind, which no user's run does."""
    def side(name: str, runs: int) -> dict[str, Any]:
        done = subprocess.run([sys.executable, __file__, "--side", name, "--runs", str(runs)], env=ENV,
                              capture_output=True, text=True, check=True)
        return json.loads(done.stdout.strip().splitlines()[-1])

    ours: list[dict[str, Any]] = []
    theirs: list[dict[str, Any]] = []
    for _ in range(rounds):
        ours.append(side("ours", 7))
        theirs.append(side("theirs", 1))
    ours_wall = statistics.median(statistics.median(o["wall"]) for o in ours)
    ours_cpu = statistics.median(statistics.median(o["cpu"]) for o in ours)
    theirs_wall = statistics.median(t["wall"][0] for t in theirs)
    theirs_cpu = statistics.median(t["cpu"][0] for t in theirs)
    passed = all(o["passed"] for o in ours), all(t["passed"] for t in theirs)
    print(f"8x32x32, 8x8x3x3 float64 (torch conv2d both sides, 1 torch thread, each side in its own warmed-up "
          f"process, {rounds} rounds alternating): convgrad auto {ours_wall * 1e3:.1f} ms (median of {rounds} "
          f"medians of 7; forward calls {ours[0]['calls']}), torch.autograd.gradcheck fast_mode=False "
          f"{theirs_wall:.1f} s (median of {rounds}); convgrad is {theirs_wall / ours_wall:.0f}x faster "
          f"(target >= 250x); by CPU time {ours_cpu * 1e3:.1f} ms vs {theirs_cpu:.1f} s: "
          f"{theirs_cpu / ours_cpu:.0f}x; verdicts: convgrad {'pass' if passed[0] else 'fail'}, "
          f"gradcheck {'pass' if passed[1] else 'fail'}")


def resnet(runs: int = 1) -> None:
    args = [sys.executable, "-m", "convgrad", "check", "--in", "64x56x56", "--kernels", "64x3x3",
            "--padding", "1", "--json"]
    # /usr/bin/time measures the check's own process; getrusage(RUSAGE_CHILDREN) would also count
    # the pages a fork of this (possibly large) process shares before it execs.
    timer = ["/usr/bin/time", "-f", "%M"] if os.path.exists("/usr/bin/time") else []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        wall, done = timed(lambda: subprocess.run(timer + args, env=ENV, capture_output=True, text=True))
        if timer:
            peak = int(done.stderr.strip().splitlines()[-1])  # KiB
        else:
            peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
        case = json.loads(done.stdout)["cases"][0]
        calls = ", ".join(f"{t['name']} {t['method']} {t['forward_calls']}" for t in case["tensors"][1:])
        checked = sum(t["checked"] for t in case["tensors"][1:])
        print(f"ResNet-50 3x3 layer 64x56x56, 64x64x3x3, padding 1, float64: {checked} coordinates, "
              f"{'pass' if case['passed'] else 'FAIL'}; check {case['elapsed_s']:.1f} s, process "
              f"{wall:.1f} s (target <= 30 s); peak RSS {peak / 2**20:.2f} GiB"
              f"{'' if peak > before else ' (not above an earlier child)'} (target <= 2 GiB); "
              f"forward calls {case['forward_calls']} ({calls})")


def protocol() -> None:
    """What the later calls (the call protocol and the network scenario) add to a check, in forward calls and time."""
    from convgrad import CheckOptions, as_implementation, resolve_geometry, run_case

    reference = as_implementation("reference")
    layers = [
        ("seed 3x20x20, 5x3x3x3", resolve_geometry("3x20x20", "5x3x3x3")),
        ("8x32x32, 8x8x3x3", resolve_geometry("8x32x32", "8x3x3")),
        ("ResNet-50 3x3 64x56x56, 64x64x3x3, padding 1", resolve_geometry("64x56x56", "64x3x3", padding=1)),
    ]
    for label, geometry in layers:
        wall, case = timed(lambda: run_case(geometry, reference, CheckOptions()))
        later = sum(c.forward_calls for c in case.calls)
        first = case.forward_calls - later  # what the check cost before the protocol: one call and its differences
        print(f"{label}: forward calls {first} for the first call (the check before the protocol) + {later} "
              f"for the later calls = {case.forward_calls}: +{100 * later / first:.1f}% (target <= 25%); "
              f"check {wall:.2f} s, {'pass' if case.passed else 'FAIL'}")


def suite(runs: int = 5) -> None:
    """The standard suite against one seed check, both through the command line, side by side."""
    def command(*args: str) -> Callable[[], Any]:
        full = [sys.executable, "-m", "convgrad", "check", "--quiet", *args]
        return lambda: subprocess.run(full, env=ENV, check=True, stdout=subprocess.DEVNULL)

    standard = os.path.join(ROOT, "configs", "standard.toml")
    seed_s, suite_s, _, _ = side_by_side(command("--in", "3x20x20", "--kernels", "5x3x3x3"), command("--config", standard), runs, runs)
    print(f"standard suite ({standard_cases(standard)} cases) {suite_s:.2f} s vs one seed check {seed_s:.2f} s through "
          f"the command line (median of {runs} each, alternating): {suite_s / seed_s:.1f}x (target at most 5x)")
    # A layer that cannot run every case gets cases for the pairs of its own domain (run/domain.py).
    same_only = os.path.join(ROOT, "tests", "zoo", "same_only.py") + ":SameOrValidConv"
    seed_s, suite_s, _, _ = side_by_side(command("--impl", same_only, "--in", "3x20x20", "--kernels", "5x3x3x3"),
                                         command("--impl", same_only, "--config", standard), runs, runs)
    print(f"a layer of 'valid'/'same' padding only: standard suite with its domain's pairs {suite_s:.2f} s vs its seed "
          f"check {seed_s:.2f} s (median of {runs} each, alternating): {suite_s / seed_s:.1f}x")


def large(runs: int = 3) -> None:
    """The large-case method (every coordinate against the reference, 8 directions per gradient)
    against coloured differences of every coordinate, on the ResNet-50 3x3 layer, in-process,
    alternating, medians; and a coordinate off by 1e-5 of its scale, which must still fail."""
    from convgrad import CheckOptions, as_implementation, resolve_geometry, run_case

    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from zoo.layers import OneCoordinateOff

    geometry = resolve_geometry("64x56x56", "64x3x3", padding=1)
    reference = as_implementation("reference")

    def check(method: str) -> Callable[[], Any]:
        return lambda: run_case(geometry, reference, CheckOptions(method=method))  # type: ignore[arg-type]

    full_s, large_s, full, fast = side_by_side(check("coloured"), check("auto"), max(1, runs // 2), runs)

    def differences(case: Any) -> int:
        return sum(t.forward_calls for t in case.gradients)

    print(f"ResNet-50 3x3 layer, float64: coloured differences of every coordinate {differences(full)} forward calls "
          f"({full.forward_calls} with the later calls), {full_s:.1f} s; large-case method {differences(fast)} forward "
          f"calls ({fast.forward_calls} with the later calls), {large_s:.2f} s (medians, alternating): "
          f"{full_s / large_s:.0f}x faster; both pass: {full.passed and fast.passed}")
    off = run_case(geometry, as_implementation(OneCoordinateOff("dX", 12345, 1e-5)), CheckOptions())
    row = off.tensor("dX")
    print(f"one dX coordinate off by 1e-5 of the scale: {'caught' if not row.passed else 'MISSED'}, "
          f"{row.mismatches} mismatch at {list(row.worst[0].index)}")


def scenario(runs: int = 5) -> None:
    """What the network scenario adds, in forward calls and time: the seed check and every case of
    the standard suite run in-process with the scenario and without it (its steps replaced by
    none), alternating, medians; the reference layer and a torch module class."""
    import convgrad.run.case as case_module
    from convgrad import CheckOptions, as_implementation, resolve_geometry, run_case
    from convgrad.suite import load_suite

    real = case_module.network_scenario

    def without(*_: Any, **__: Any) -> Any:
        return (), 0, ()

    standard = load_suite(os.path.join(ROOT, "configs", "standard.toml")).cases
    seed = resolve_geometry("3x20x20", "5x3x3x3")
    layers = [("reference", as_implementation("reference"))]
    try:
        import torch

        layers.append(("torch.nn.Conv2d class", as_implementation(torch.nn.Conv2d)))
    except ImportError:
        pass
    for label, implementation in layers:
        def seed_check(scenario: Any) -> Callable[[], Any]:
            def run() -> Any:
                case_module.network_scenario = scenario
                try:
                    return run_case(seed, implementation, CheckOptions())
                finally:
                    case_module.network_scenario = real
            return run

        def whole_suite(scenario: Any) -> Callable[[], Any]:
            def run() -> Any:
                case_module.network_scenario = scenario
                try:
                    return [run_case(c.geometry, implementation, CheckOptions()) for c in standard]
                finally:
                    case_module.network_scenario = real
            return run

        plain_s, with_s, plain, checked = side_by_side(seed_check(without), seed_check(real), runs, runs)
        print(f"{label}, seed check: {plain.forward_calls} forward calls without the scenario, {checked.forward_calls} "
              f"with it; {plain_s * 1e3:.1f} ms vs {with_s * 1e3:.1f} ms (median of {runs}, alternating): "
              f"{with_s / plain_s:.2f}x")
        plain_s, with_s, plain, checked = side_by_side(whole_suite(without), whole_suite(real), max(1, runs // 2),
                                                       max(1, runs // 2))
        ran = [c for c in checked if c.skipped is None]
        print(f"{label}, standard suite in one process ({len(ran)} of {len(standard)} cases run): "
              f"{sum(c.forward_calls for c in plain)} forward calls without the scenario, "
              f"{sum(c.forward_calls for c in checked)} with it; {plain_s:.2f} s vs {with_s:.2f} s "
              f"(median of {max(1, runs // 2)}): {with_s / plain_s:.2f}x; all passed: {all(c.passed for c in ran)}")


def standard_cases(path: str) -> int:
    from convgrad.suite import load_suite

    return len(load_suite(path).cases)


def forward_time(geometry, runs: int = 5, clock: Callable[[], float] = time.perf_counter) -> float:
    """Median seconds of one im2col forward (convgrad's reference) of `geometry` in its dtype,
    by `clock` (wall time, or this process's CPU time)."""
    from convgrad import CheckOptions
    from convgrad.reference import forward
    from convgrad.run.case import random_tensors

    x, w, b, _ = random_tensors(geometry, CheckOptions())
    settings = geometry.conv_settings()
    repeat = max(1, int(0.05 / timed(lambda: forward(x, w, b, **settings))[0]))  # about 50 ms per sample
    samples = []
    for _ in range(runs):
        start = clock()
        for _ in range(repeat):
            forward(x, w, b, **settings)
        samples.append((clock() - start) / repeat)
    return statistics.median(samples)


def equivalents(runs: int = 3) -> None:
    """Forward-equivalents: a whole default check (every round of the call protocol included)
    divided by one im2col forward of the same layer, both measured in this run."""
    from convgrad import CheckOptions, as_implementation, resolve_geometry, run_case

    reference = as_implementation("reference")
    layers = [
        ("seed 3x20x20, 5x3x3x3", resolve_geometry("3x20x20", "5x3x3x3")),
        ("8x32x32, 8x8x3x3", resolve_geometry("8x32x32", "8x3x3")),
        ("float32 16x28x28, 16x16x3x3, padding 1", resolve_geometry("16x28x28", "16x3x3", padding=1, dtype="float32")),
    ]
    for label, geometry in layers:
        checks, forwards = [], []
        for _ in range(5):  # alternating, so both see the same load
            check_s, case = timed(lambda: run_case(geometry, reference, CheckOptions()))
            checks.append(check_s)
            forwards.append(forward_time(geometry, runs=1))
        check_s, forward_s = statistics.median(checks), statistics.median(forwards)
        print(f"{label}: check {check_s * 1e3:.1f} ms / forward {forward_s * 1e3:.3f} ms = "
              f"{check_s / forward_s:.0f} forward-equivalents (median of 5 each, alternating); "
              f"{case.forward_calls} forward calls ({_methods(case)}); {'pass' if case.passed else 'FAIL'}")
    # The ResNet layer through the command line, so /usr/bin/time measures its peak memory alone;
    # the forward before and after each check, and the check's own elapsed time from its report.
    # On a shared machine the load changes between the two sides; CPU time (the check's process,
    # from /usr/bin/time, against this process's forward) is the steadier of the two ratios.
    geometry = resolve_geometry("64x56x56", "64x3x3", padding=1)
    args = [sys.executable, "-m", "convgrad", "check", "--in", "64x56x56", "--kernels", "64x3x3", "--padding", "1",
            "--json"]
    timer = ["/usr/bin/time", "-f", "%M %U %S"] if os.path.exists("/usr/bin/time") else []
    walls, cpus, forwards, forwards_cpu, peaks = [], [], [forward_time(geometry)], [forward_time(geometry, clock=time.process_time)], []
    for _ in range(runs):
        done = subprocess.run(timer + args, env=ENV, capture_output=True, text=True)
        forwards.append(forward_time(geometry))
        forwards_cpu.append(forward_time(geometry, clock=time.process_time))
        case = json.loads(done.stdout)["cases"][0]
        walls.append(case["elapsed_s"])
        if timer:
            kib, user, system = done.stderr.strip().splitlines()[-1].split()
            peaks.append(int(kib) / 2**20)
            cpus.append(float(user) + float(system))
    check_s, forward_s = statistics.median(walls), statistics.median(forwards)
    peak, cpu = "not measured", ""
    if timer:
        peak = f"{max(peaks):.2f} GiB"
        check_cpu, forward_cpu = statistics.median(cpus), statistics.median(forwards_cpu)
        cpu = (f"; by CPU time: check {check_cpu:.1f} s / forward {forward_cpu * 1e3:.2f} ms = "
               f"{check_cpu / forward_cpu:.0f} forward-equivalents")
    calls = ", ".join(f"{t['name']} {t['method']} {t['forward_calls']}" for t in case["tensors"][1:])
    print(f"ResNet-50 3x3 64x56x56, 64x64x3x3, padding 1: check {check_s:.1f} s (median of {runs}: "
          f"{', '.join(f'{w:.1f}' for w in walls)}) / forward {forward_s * 1e3:.2f} ms (median of {len(forwards)}, "
          f"one before and one after each check) = {check_s / forward_s:.0f} forward-equivalents{cpu} "
          f"(target <= 1200); peak RSS {peak} (target <= 1 GiB); {case['forward_calls']} forward calls ({calls}); "
          f"{'pass' if case['passed'] else 'FAIL'}")


class TimedReference:
    """convgrad's reference layer, timing its own forward and backward calls."""

    name = "reference (timed)"

    def __init__(self) -> None:
        self.forward_s = self.backward_s = 0.0
        self.forward_calls = 0

    def forward(self, x, w, b, *, stride, padding, dilation, groups):
        from convgrad import reference

        start = time.perf_counter()
        y = reference.forward(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
        self.forward_s += time.perf_counter() - start
        self.forward_calls += 1
        return y

    def backward(self, dy, x, w, b, *, stride, padding, dilation, groups):
        from convgrad import reference

        start = time.perf_counter()
        grads = reference.backward(dy, x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
        self.backward_s += time.perf_counter() - start
        return grads


def split() -> None:
    """Where the ResNet-50 3x3 check's time goes, in forward-equivalents: the layer's own forward
    and backward calls, and everything else (convgrad's reference computations, guard,
    differences, comparisons), measured in one process against a forward timed alone."""
    from convgrad import CheckOptions, as_implementation, resolve_geometry, run_case

    geometry = resolve_geometry("64x56x56", "64x3x3", padding=1)
    alone = forward_time(geometry)
    layer = TimedReference()
    start = time.perf_counter()
    case = run_case(geometry, as_implementation(layer), CheckOptions())
    total = time.perf_counter() - start
    alone = statistics.median([alone, forward_time(geometry)])
    rest = total - layer.forward_s - layer.backward_s
    print(f"ResNet-50 3x3, where the time goes (one forward alone {alone * 1e3:.2f} ms): whole check "
          f"{total:.1f} s = {total / alone:.0f} forward-equivalents; the layer's {layer.forward_calls} forward calls "
          f"{layer.forward_s:.1f} s = {layer.forward_s / alone:.0f} ({layer.forward_s / layer.forward_calls * 1e3:.2f} ms "
          f"a call, {layer.forward_s / layer.forward_calls / alone:.2f}x one alone); its backward calls "
          f"{layer.backward_s:.2f} s = {layer.backward_s / alone:.0f}; everything else {rest:.2f} s = "
          f"{rest / alone:.0f}; {'pass' if case.passed else 'FAIL'}")


def _methods(case: Any) -> str:
    return ", ".join(f"{t.name} {t.method} {t.forward_calls}" for t in case.tensors[1:])


FIGURES = {"startup": startup, "seed": seed_case, "gradcheck": gradcheck, "resnet": resnet, "protocol": protocol,
           "suite": suite, "equivalents": equivalents, "split": split, "scenario": scenario, "large": large}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=sorted(FIGURES), action="append")
    parser.add_argument("--side", choices=("ours", "theirs"), help=argparse.SUPPRESS)  # gradcheck's child
    parser.add_argument("--runs", type=int, default=7, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.side:
        gradcheck_side(arguments.side, arguments.runs)
        return
    chosen = arguments.only or list(FIGURES)
    print(machine())
    for name in chosen:
        FIGURES[name]()


if __name__ == "__main__":
    main()
