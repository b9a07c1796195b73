"""The double backward, every coordinate: convgrad `--order 2` against torch.autograd.gradgradcheck.

    python benchmarks/second_order.py                   # 3 rounds, alternating; cap 1800 s a process
    python benchmarks/second_order.py --rounds 5 --cap 600
    python benchmarks/second_order.py --dense-rounds 1  # gradgradcheck's dense mode once, the rest 3 times

Two layers, float64, torch's conv2d with a bias:

    A  x 1x8x32x32, w 8x8x3x3, stride 1, padding 1
    B  the ResNet-50 3x3 layer: x 1x64x56x56, w 64x64x3x3, padding 1

Each measurement is a fresh process started by this script and reaped with os.wait4, which gives
its wall time and its peak RSS (the larger of the process's own and that of the case child it
forks). In every round the sides run one after the other, so they see the same load:

    convgrad order 1     python -m convgrad check --in ... --kernels ... --padding 1 --impl torch --json
    convgrad --order 2   the same with --order 2: also the derivatives of the backward (13 calls of the layer)
    gradgradcheck dense  torch.autograd.gradgradcheck(lambda x, w, b: F.conv2d(x, w, b, padding=1), (x, w, b)),
                         fast_mode=False (the default): the whole Jacobian of the backward map, two ways
    gradgradcheck fast   the same with fast_mode=True: random projections of it
    import torch         a process that imports torch and exits (what every side pays before it starts)

The convgrad processes are `python -m convgrad` started through this file, which first puts a
clock around three functions (two clock reads a call, written to a file, since the case runs in a
child the command line forks): the derivative rows (run.derivatives.second_order_rows), and inside
them the one double-backward call (GuardedLayer.backward_derivatives) and the 12 calls of
differences (numerics.second_order.backward_changes). The check's own time is the report's
elapsed_s; gradgradcheck's is the call itself, timed in its process (one torch thread, as the
command line runs). gradgradcheck's dense mode is not run on layer B: the size of its Jacobians is
computed and printed instead. A process that runs past --cap seconds is killed and reported so.

What is compared: convgrad's five rows (dX wrt w, dX wrt dy, dK wrt x, dK wrt dy, db wrt dy) are
every coordinate of H t, H the Hessian of E = <dy, O(x, w, b)>, for t = the random cotangents u, v,
c of dX, dK, db moved one at a time; the seven zero blocks are held to zero besides. gradgradcheck
differentiates (x, w, b, dy) -> (dX, dK, db): dense, every entry of that n_out x n_in Jacobian
(numerically 2 evaluations a column, analytically one vector-Jacobian product a row, done twice
to check reentrancy); fast, v_j . J_ji u_i for each of the 4 x 3 (input, output) pairs: 12 scalars.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Callable, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_all import ENV, ROOT, machine  # noqa: E402

LAYERS = {  # name: (label, input, kernels, channels)
    "A": ("8x32x32, 8x8x3x3, padding 1", "8x32x32", "8x8x3x3", (8, 32, 32), (8, 8, 3, 3)),
    "B": ("ResNet-50 3x3: 64x56x56, 64x64x3x3, padding 1", "64x56x56", "64x64x3x3", (64, 56, 56), (64, 64, 3, 3)),
}
TIMERS_ENV = "CONVGRAD_SECOND_ORDER_TIMERS"  # the file the convgrad child's clocks append to
GIB = 2**30


# ---------------------------------------------------------------- children (each a fresh process)


def convgrad_child(arguments: list[str]) -> None:
    """`python -m convgrad <arguments>` with a clock around the derivative rows and their parts."""
    import runpy

    import convgrad.harness.guard as guard
    import convgrad.run.case as case
    import convgrad.run.derivatives as derivatives

    path = os.environ[TIMERS_ENV]

    def clocked(name: str, function: Any) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                with open(path, "a") as timers:
                    timers.write(json.dumps({name: time.perf_counter() - start}) + "\n")
        return timed

    for owner, attribute, name in ((case, "second_order_rows", "rows"),
                                   (derivatives, "backward_changes", "differences"),
                                   (guard.GuardedLayer, "backward_derivatives", "double_backward")):
        setattr(owner, attribute, clocked(name, getattr(owner, attribute)))
    sys.argv = ["convgrad", *arguments]
    runpy.run_module("convgrad", run_name="__main__", alter_sys=True)


def gradgradcheck_child(layer: str, mode: str) -> None:
    """torch.autograd.gradgradcheck on the layer; prints its time and verdict as JSON."""
    import resource

    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    _, _, _, x_shape, w_shape = LAYERS[layer]
    generator = torch.Generator().manual_seed(0)
    x, w, b = (torch.randn(shape, dtype=torch.float64, generator=generator, requires_grad=True)
               for shape in ((1, *x_shape), w_shape, (w_shape[0],)))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB
    result: dict[str, Any] = {"rss_before_gib": before}
    start = time.perf_counter()
    try:
        result["passed"] = bool(torch.autograd.gradgradcheck(
            lambda x, w, b: F.conv2d(x, w, b, padding=1), (x, w, b), fast_mode=(mode == "fast")))
    except (MemoryError, RuntimeError) as error:  # torch's allocator says "out of memory" as a RuntimeError
        result["error"] = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
    result["call_s"] = time.perf_counter() - start
    print(json.dumps(result))


# ---------------------------------------------------------------- the parent


def run(command: list[str], cap: float, extra_env: Optional[dict[str, str]] = None) -> dict[str, Any]:
    """One fresh process: wall time, peak RSS (os.wait4), exit, stdout; killed (its whole process
    group, which this script started) after `cap` seconds."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=ROOT, env={**ENV, **(extra_env or {})}, stdout=out, stderr=err,
                                   start_new_session=True)
        over = threading.Event()

        def kill() -> None:
            over.set()
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        timer = threading.Timer(cap, kill)
        timer.start()
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        timer.cancel()
        process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        err.seek(0)
        return {"wall_s": wall, "peak_gib": usage.ru_maxrss * 1024 / GIB, "exit": process.returncode,
                "over_cap": over.is_set(), "stdout": out.read().decode(), "stderr": err.read().decode()}


def convgrad_side(layer: str, order: int, cap: float) -> dict[str, Any]:
    _, shape, kernels, _, _ = LAYERS[layer]
    arguments = ["check", "--in", shape, "--kernels", kernels, "--padding", "1", "--impl", "torch", "--json"]
    arguments += ["--order", "2"] if order == 2 else []
    with tempfile.NamedTemporaryFile("r", suffix=".jsonl") as timers:
        done = run([sys.executable, os.path.abspath(__file__), "--convgrad-child", "--", *arguments], cap,
                   {TIMERS_ENV: timers.name})
        clocks: dict[str, float] = {}
        for line in timers.read().splitlines():
            for name, seconds in json.loads(line).items():
                clocks[name] = clocks.get(name, 0.0) + seconds
    if done["over_cap"] or done["exit"] not in (0, 1):
        return {**done, "failed": _why(done)}
    case = json.loads(done["stdout"])["cases"][0]
    rows = case.get("derivatives") or []
    return {**done, "case_s": case["elapsed_s"], "passed": case["passed"], "clocks": clocks,
            "rows": [(r["label"], r["checked"], r["total"], r["passed"], r["max_rel_error"]) for r in rows],
            "methods": "; ".join(sorted({t["method"] for t in case["tensors"] if t["name"] != "O"}))}


def gradgradcheck_side(layer: str, mode: str, cap: float) -> dict[str, Any]:
    done = run([sys.executable, os.path.abspath(__file__), "--gradgradcheck-child", layer, mode], cap)
    if done["over_cap"] or done["exit"] != 0:
        return {**done, "failed": _why(done)}
    result = json.loads(done["stdout"].strip().splitlines()[-1])
    if "error" in result:
        return {**done, **result, "failed": result["error"]}
    return {**done, **result}


def import_torch(cap: float) -> dict[str, Any]:
    return run([sys.executable, "-c", "import torch"], cap)


def _why(done: dict[str, Any]) -> str:
    if done["over_cap"]:
        return f"over the cap, killed after {done['wall_s']:.0f} s"
    if done["exit"] == -signal.SIGKILL:
        return f"killed by SIGKILL at peak RSS {done['peak_gib']:.1f} GiB (out of memory?)"
    return f"exited {done['exit']}: {done['stderr'].strip().splitlines()[-1][:200] if done['stderr'].strip() else ''}"


def sizes(layer: str) -> dict[str, int]:
    """The backward map gradgradcheck differentiates: inputs x, w, b, dy; outputs dX, dK, db."""
    _, _, _, x_shape, w_shape = LAYERS[layer]
    x = 1
    for n in x_shape:
        x *= n
    w = 1
    for n in w_shape:
        w *= n
    b = w_shape[0]
    y = x  # stride 1, padding 1, as many kernels as channels: O has x's size
    return {"x": x, "w": w, "b": b, "dy": y, "n_in": x + w + b + y, "n_out": x + w + b}


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dense-rounds", type=int, default=None,
                        help="rounds that also run gradgradcheck's dense mode on layer A (default: every round)")
    parser.add_argument("--cap", type=float, default=1800.0, help="seconds a process may run before it is killed")
    parser.add_argument("--convgrad-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--gradgradcheck-child", nargs=2, metavar=("LAYER", "MODE"), help=argparse.SUPPRESS)
    parser.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.convgrad_child:
        convgrad_child(arguments.rest)
        return
    if arguments.gradgradcheck_child:
        gradgradcheck_child(*arguments.gradgradcheck_child)
        return
    rounds, cap = arguments.rounds, arguments.cap
    dense_rounds = rounds if arguments.dense_rounds is None else min(rounds, arguments.dense_rounds)
    print(machine())
    sides: list[tuple[str, Callable[[], dict[str, Any]]]] = [("import torch", lambda: import_torch(cap)),
             ("A convgrad order 1", lambda: convgrad_side("A", 1, cap)),
             ("A convgrad --order 2", lambda: convgrad_side("A", 2, cap)),
             ("A gradgradcheck fast", lambda: gradgradcheck_side("A", "fast", cap)),
             ("A gradgradcheck dense", lambda: gradgradcheck_side("A", "dense", cap)),
             ("B convgrad order 1", lambda: convgrad_side("B", 1, cap)),
             ("B convgrad --order 2", lambda: convgrad_side("B", 2, cap)),
             ("B gradgradcheck fast", lambda: gradgradcheck_side("B", "fast", cap))]
    found: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in sides}
    for index in range(rounds):
        for name, side in sides:
            if name == "A gradgradcheck dense" and index >= dense_rounds:
                continue
            found[name].append(side())
            if "failed" in found[name][-1]:
                print(f"  round {index + 1}, {name}: {found[name][-1]['failed']}", flush=True)
    print(f"load average {os.getloadavg()[0]:.2f} at the end; {rounds} rounds"
          + (f" (gradgradcheck dense on A: {dense_rounds})" if dense_rounds != rounds else ""))
    report(found, cap)


def report(found: dict[str, list[dict[str, Any]]], cap: float) -> None:
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")

    def ok(name: str) -> list[dict[str, Any]]:
        return [r for r in found.get(name, []) if "failed" not in r]

    def wall(name: str) -> float:
        return median([r["wall_s"] for r in ok(name)])

    def inner(name: str) -> float:
        return median([r.get("case_s", r.get("call_s", float("nan"))) for r in ok(name)])

    def peak(name: str) -> float:
        return max([r["peak_gib"] for r in found.get(name, [])], default=float("nan"))

    def clock(name: str, which: str) -> float:
        return median([r["clocks"].get(which, 0.0) for r in ok(name)])

    torch_wall, torch_peak = wall("import torch"), peak("import torch")
    print(f"\nimport torch alone: process {torch_wall:.2f} s, peak RSS {torch_peak:.2f} GiB (median of "
          f"{len(found['import torch'])})")
    for layer in ("A", "B"):
        label = LAYERS[layer][0]
        size = sizes(layer)
        n_in, n_out = size["n_in"], size["n_out"]
        entries = n_in * n_out
        first, second = f"{layer} convgrad order 1", f"{layer} convgrad --order 2"
        fast, dense = f"{layer} gradgradcheck fast", f"{layer} gradgradcheck dense"
        rows = ok(second)[-1]["rows"] if ok(second) else []
        covered = sum(r[1] for r in rows)
        print(f"\nLayer {layer}: {label}, float64, torch; medians (process = whole process, start to exit; "
              f"check = the report's elapsed_s or the gradgradcheck call; peak RSS = largest of the rounds)")
        print(f"  {'side':<32} {'process s':>10} {'check s':>10} {'peak RSS GiB':>13}  {'runs':>4}  compared; verdict")
        table = [(first, "dX, dK, db: " + (ok(first)[-1]["methods"] if ok(first) else "")),
                 (second, f"+ {covered:,} coordinates of H t in {len(rows)} rows"),
                 (fast, "12 scalars v_j . J_ji u_i (4 inputs x 3 outputs)")]
        if found.get(dense):
            table.append((dense, f"{entries:,} Jacobian entries (n_out {n_out:,} x n_in {n_in:,})"))
        for name, what in table:
            runs = found[name]
            if not ok(name):
                print(f"  {name:<32} {'-':>10} {'-':>10} {peak(name):>13.2f}  {len(runs):>4}  {what}; "
                      f"{runs[-1]['failed'] if runs else 'not run'}")
                continue
            verdict = "pass" if all(r.get("passed") for r in ok(name)) else "FAIL"
            failed = len(runs) - len(ok(name))
            print(f"  {name:<32} {wall(name):>10.2f} {inner(name):>10.3f} {peak(name):>13.2f}  {len(runs):>4}  "
                  f"{what}; {verdict}" + (f" ({failed} runs failed: {runs[-1].get('failed')})" if failed else ""))
        if rows:
            print("  convgrad --order 2 rows: " + "; ".join(
                f"{r[0]} {r[1]:,}/{r[2]:,} {'pass' if r[3] else 'FAIL'} (max rel {r[4]:.1e})" for r in rows))
            runs = sorted(ok(second), key=lambda r: r["clocks"].get("rows", 0.0))
            middle = runs[len(runs) // 2]["clocks"]  # the run of the median rows time, its parts from the same run
            print(f"  inside the --order 2 check (the run of median row time): derivative rows "
                  f"{middle.get('rows', 0.0) * 1e3:.1f} ms = one double-backward call "
                  f"{middle.get('double_backward', 0.0) * 1e3:.1f} ms + 12 calls of differences "
                  f"{middle.get('differences', 0.0) * 1e3:.1f} ms + the comparisons; rows in each run "
                  + ", ".join(f"{r['clocks'].get('rows', 0.0) * 1e3:.1f}" for r in ok(second)) + " ms")
        if ok(first) and ok(second):
            print(f"  --order 2 / order 1: process {wall(second) / wall(first):.3f}x "
                  f"({wall(second) - wall(first):+.2f} s), check {inner(second) / inner(first):.3f}x "
                  f"({inner(second) - inner(first):+.3f} s); rounds (order 1/order 2, process s) "
                  + ", ".join(f"{a['wall_s']:.2f}/{b['wall_s']:.2f}" for a, b in zip(found[first], found[second])))
            for name in (fast, dense):
                if ok(name):
                    print(f"  {name.split(' ', 1)[1]} / convgrad --order 2: process {wall(name) / wall(second):.2f}x, "
                          f"check {inner(name) / inner(second):.2f}x, against the derivative rows alone "
                          f"{inner(name) / clock(second, 'rows'):.0f}x; peak RSS {peak(name) / peak(second):.2f}x")
        numerical = 2 * n_in
        print(f"  gradgradcheck's backward map: n_in = x {size['x']:,} + w {size['w']:,} + b {size['b']:,} + dy "
              f"{size['dy']:,} = {n_in:,}; n_out = dX + dK + db = {n_out:,}; dense: {numerical:,} evaluations of "
              f"the backward map for the numerical Jacobian, {2 * n_out:,} double-backward products for the "
              f"analytical one (twice, for reentrancy); fast: 8 evaluations and 6 products")
        jacobian = entries * 8
        print(f"  one float64 n_out x n_in Jacobian: {jacobian / GIB:,.2f} GiB; numerical + analytical "
              f"{2 * jacobian / GIB:,.2f} GiB = {2 * jacobian / ram:,.2f}x this machine's {ram / GIB:.1f} GiB"
              + ("" if found.get(dense) else " (not run" + (": it cannot fit)" if 2 * jacobian > ram else ")")))


if __name__ == "__main__":
    main()
