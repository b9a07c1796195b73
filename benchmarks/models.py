"""Every coordinate of every conv layer of ResNet-50, MobileNetV2 and ConvNeXt-T, through torch in
float64; prints the figures of benchmarks/RESULTS.md's model-suite section.

    python benchmarks/models.py                                   # the three models
    python benchmarks/models.py --model mobilenet_v2 --cases 3    # the first 3 cases of one model
    python benchmarks/models.py --estimate layer4.0.conv2         # cases estimated, not run

Each float64 case of configs/models/<model>.toml is checked in a process of its own through the
command line (`--impl torch --method coloured --jobs 1 --json`: every coordinate of dX, dK and db by
finite differences, whatever the layer's size; the default `auto` method would check a large layer
against the reference and a few directions instead), under /usr/bin/time for its peak RSS. Between
the checks, this process times one torch forward of the layer (batch 1, float64, one thread), so
the forward-equivalents (check time / one forward) come from the same run, under the same load.

Per case: the forward calls against the floor, the fewest an exact black-box check of every
coordinate needs:

    colours of x   (C/groups) * prod(kernel): the coordinates one output reads pairwise conflict,
                   so no two of them can share a call
    kernel slots   (C/groups) * prod(kernel): dK, one slot of every filter per call
    db             1
    base call      1

and torch.autograd.gradcheck's exact mode for the same layer, estimated from its sizes, not run:
2 * (|x| + |w| + |b|) forward calls (each coordinate perturbed both ways), |y| backward calls (its
analytical Jacobian, a row per output coordinate), and two dense float64 Jacobians of
(|x| + |w| + |b|) x |y| each.

The floor leaves out what convgrad adds on purpose: the extra colours that hold its colouring's
holes (the locality check), the linearity tests and spot checks, and the later calls (the call
protocol and the network scenario), which check other things than the gradients; the tables show
the differences' calls and all calls against it.

A case given to --estimate is not run: its forward calls are its floor and hole colours plus the
medians of what the measured cases of this run made beyond those, and its time is those calls times
one forward: a lower bound, without convgrad's own work.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Optional, Sequence

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_all import ENV, ROOT, machine, timed  # noqa: E402  (run_all also puts src/ on the path)

from convgrad.geometry import LayerGeometry  # noqa: E402
from convgrad.numerics.colouring import input_colouring  # noqa: E402
from convgrad.suite import load_suite  # noqa: E402

MODELS = ("resnet50", "mobilenet_v2", "convnext_tiny")
CHECK = ["check", "--impl", "torch", "--method", "coloured", "--jobs", "1", "--json",
         "--timeout", "3600"]  # the largest layers take minutes; the default 600 s is a guard, not a limit
FLOAT64_BYTES = 8
SAMPLE_S = 0.05  # one timing sample of the forward: repeated calls of about this long in all
SAMPLES = 3  # samples before and after each check


@dataclass(frozen=True)
class Floor:
    """The fewest forward calls an exact black-box check of every coordinate needs, and convgrad's colouring."""

    receptive_field: int  # (C/groups) * prod(kernel): colours of x, and slots of the kernel
    colours: int  # the colours of x convgrad's colouring uses: the receptive field and its holes' extra colours

    @property
    def calls(self) -> int:
        return 2 * self.receptive_field + 2  # x's colours, the kernel's slots, db, the base call

    @property
    def hole_colours(self) -> int:
        return self.colours - self.receptive_field


@dataclass(frozen=True)
class Gradcheck:
    """torch.autograd.gradcheck's exact mode on one layer, from the sizes alone."""

    inputs: int  # |x| + |w| + |b|
    outputs: int  # |y|

    @property
    def forward_calls(self) -> int:
        return 2 * self.inputs

    @property
    def backward_calls(self) -> int:
        return self.outputs

    @property
    def jacobian_bytes(self) -> int:  # numerical and analytical
        return 2 * self.inputs * self.outputs * FLOAT64_BYTES


@dataclass(frozen=True)
class Check:
    """What one check's process reported and measured."""

    status: str  # the report's: passed, failed, error, ...; "crashed" when it printed no report
    reason: str
    every_coordinate: bool  # dX, dK and db each checked in full by coloured differences
    elapsed_s: float  # the report's own
    process_s: float  # the process's wall time, start-up included
    calls: int
    tensor_calls: dict[str, int]  # dX, dK, db: their differences; later: the call protocol and the scenario
    peak_bytes: int


@dataclass(frozen=True)
class Case:
    model: str
    name: str
    geometry: LayerGeometry
    floor: Floor
    gradcheck: Gradcheck
    forward_s: float  # one torch forward, median of the samples around the check
    check: Optional[Check]  # None: estimated


def floor_of(geometry: LayerGeometry) -> Floor:
    field = geometry.channels // geometry.groups * math.prod(geometry.kernel_size)
    colouring = input_colouring(geometry)
    grid = [c for c in colouring.used() if c < colouring.depth * colouring.spatial_count]
    assert len(grid) == field, "convgrad's grid of colours is the least: one colour per coordinate of a field"
    return Floor(receptive_field=field, colours=len(colouring.used()))


def gradcheck_of(geometry: LayerGeometry) -> Gradcheck:
    inputs = sum(math.prod(s) for s in (geometry.x_shape, geometry.w_shape, geometry.b_shape))
    return Gradcheck(inputs=inputs, outputs=math.prod(geometry.y_shape))


def forward_samples(geometry: LayerGeometry) -> list[float]:
    """Seconds of one torch forward of the layer (batch 1, float64, one thread), SAMPLES times."""
    import numpy as np
    import torch

    torch.set_num_threads(1)  # as the check's process runs (OMP_NUM_THREADS=1, from run_all's ENV)
    assert not geometry.uneven_padding, "torch's conv takes one padding per axis"
    rng = np.random.default_rng(0)
    x, w, b = (torch.from_numpy(rng.standard_normal(s)) for s in (geometry.x_shape, geometry.w_shape, geometry.b_shape))
    conv = getattr(torch.nn.functional, f"conv{geometry.ndim}d")

    def forward() -> None:
        with torch.no_grad():
            conv(x, w, b, stride=geometry.stride, padding=geometry.padding, dilation=geometry.dilation,
                 groups=geometry.groups)

    repeat = max(1, int(SAMPLE_S / timed(forward)[0]))  # the first call also warms torch's paths
    samples = []
    for _ in range(SAMPLES):
        start = time.perf_counter()
        for _ in range(repeat):
            forward()
        samples.append((time.perf_counter() - start) / repeat)
    return samples


def run_check(geometry: LayerGeometry) -> Check:
    """One check through the command line in a process of its own, under /usr/bin/time."""
    args = ["/usr/bin/time", "-f", "%M", sys.executable, "-m", "convgrad", *CHECK, *geometry.check_flags()]
    process_s, done = timed(lambda: subprocess.run(args, env=ENV, capture_output=True, text=True, cwd=ROOT))
    peak_bytes = int(done.stderr.strip().splitlines()[-1]) * 1024  # /usr/bin/time's last line, in KiB
    try:
        case = json.loads(done.stdout)["cases"][0]
    except (ValueError, LookupError):
        tail = " | ".join(done.stderr.strip().splitlines()[-4:-1])
        return Check("crashed", f"exit status {done.returncode}: {tail}", False, math.nan, process_s, 0, {}, peak_bytes)
    gradients = case["tensors"][1:]
    tensor_calls = {t["name"]: t["forward_calls"] for t in gradients}
    tensor_calls["later"] = sum(c["forward_calls"] for c in case["calls"])
    every = all(t["checked"] == t["total"] and t["method"].startswith("coloured") for t in gradients)
    return Check(case["status"], case["reason"] or "", every, case["elapsed_s"], process_s, case["forward_calls"],
                 tensor_calls, peak_bytes)


def float64_cases(model: str, count: Optional[int]) -> list[tuple[str, LayerGeometry]]:
    suite = load_suite(os.path.join(ROOT, "configs", "models", f"{model}.toml"))
    cases = [(c.name.removesuffix(" float64"), c.geometry) for c in suite.cases if c.geometry.dtype == "float64"]
    return cases[:count]


def measure(model: str, name: str, geometry: LayerGeometry, estimated: bool) -> Case:
    """The forward timed before and after the check, so both see the same load."""
    samples = forward_samples(geometry)
    check = None if estimated else run_check(geometry)
    if check is not None:
        samples += forward_samples(geometry)
    return Case(model, name, geometry, floor_of(geometry), gradcheck_of(geometry), statistics.median(samples), check)


@dataclass(frozen=True)
class Typical:
    """Medians over the measured checks of this run: what an estimated case is taken to cost."""

    # Calls of the differences beyond the floor and the hole colours: linearity tests, spot checks,
    # x alone beside a stacked batch.
    differences: float
    later: float  # calls of the call protocol and the network scenario


@dataclass(frozen=True)
class Calls:
    differences: float  # dX, dK, db and the base call: what the floor counts
    later: float

    @property
    def total(self) -> float:
        return self.differences + self.later


def typical(cases: Sequence[Case]) -> Typical:
    measured = [c for c in cases if c.check is not None and c.check.calls]
    beyond = [calls_of(c, Typical(0, 0)).differences - c.floor.calls - c.floor.hole_colours for c in measured]
    later = [calls_of(c, Typical(0, 0)).later for c in measured]
    return Typical(statistics.median(beyond), statistics.median(later)) if measured else Typical(math.nan, math.nan)


def calls_of(case: Case, usual: Typical) -> Calls:
    if case.check is not None:
        later = case.check.tensor_calls.get("later", 0)
        return Calls(case.check.calls - later, later)
    return Calls(case.floor.calls + case.floor.hole_colours + usual.differences, usual.later)


def seconds_of(case: Case, usual: Typical) -> float:
    return case.check.elapsed_s if case.check is not None else calls_of(case, usual).total * case.forward_s


def passed(case: Case) -> bool:
    return case.check is None or (case.check.status == "passed" and case.check.every_coordinate)


def _ratio(a: float, b: float) -> float:
    return a / b if b else math.nan  # a check that crashed made no calls and has no peak


def _size(n_bytes: float) -> str:
    for unit, size in (("PiB", 2**50), ("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if n_bytes >= size:
            return f"{n_bytes / size:.2f} {unit}"
    return f"{n_bytes / 2**10:.0f} KiB"


CASE_HEADER = (
    "| case | layer | verdict | check s | process s | forward calls: differences (dX/dK/db) + later | floor "
    "| colours of x: field + holes | calls / floor: differences, all | one forward ms | forward-equivalents "
    "| check / (calls x forward) | peak RSS | gradcheck calls: forward + backward; its Jacobians |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def case_row(case: Case, usual: Typical) -> str:
    floor, check = case.floor, case.check
    seconds, calls = seconds_of(case, usual), calls_of(case, usual)
    colours = f"{floor.receptive_field} + {floor.hole_colours}"
    ratios = f"{calls.differences / floor.calls:.3f}, {calls.total / floor.calls:.2f}"
    gradcheck = (f"{case.gradcheck.forward_calls:.3g} + {case.gradcheck.backward_calls:.3g}; "
                 f"{_size(case.gradcheck.jacobian_bytes)}")
    forward = f"{case.forward_s * 1e3:.2f}"
    if check is None:
        return (f"| {case.name} | {case.geometry.brief()} | **estimated** | ~{seconds:.1f} | - | "
                f"~{calls.differences:.0f} + ~{calls.later:.0f} | {floor.calls} | {colours} | {ratios} | {forward} | "
                f"~{seconds / case.forward_s:.0f} | - | - | {gradcheck} |")
    verdict = check.status if check.every_coordinate or check.status != "passed" else "passed, NOT every coordinate"
    if not passed(case):
        verdict = f"**{verdict.upper()}**: {check.reason}"
    split = "/".join(str(check.tensor_calls.get(k, "-")) for k in ("dX", "dK", "db"))
    return (f"| {case.name} | {case.geometry.brief()} | {verdict} | {check.elapsed_s:.1f} | {check.process_s:.1f} | "
            f"{calls.differences:.0f} ({split}) + {calls.later:.0f} | {floor.calls} | {colours} | {ratios} | {forward} | "
            f"{seconds / case.forward_s:.0f} | {_ratio(seconds, calls.total * case.forward_s):.2f} | "
            f"{_size(check.peak_bytes)} | {gradcheck} |")


MODEL_HEADER = (
    "| model | cases run / estimated | all passed | check s (process s of the run ones) "
    "| forward calls / floor: differences; all | forward-equivalents | check / (floor x forward) "
    "| check / (calls x forward) | largest peak RSS | gradcheck calls (forward + backward) / convgrad's "
    "| gradcheck's Jacobians: total; largest / convgrad's largest peak RSS |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|"
)


def model_row(model: str, cases: Sequence[Case], usual: Typical) -> str:
    run = [c.check for c in cases if c.check is not None]
    mark = " (with estimates)" if len(run) < len(cases) else ""
    seconds = sum(seconds_of(c, usual) for c in cases)
    calls = [calls_of(c, usual) for c in cases]
    differences, total = sum(c.differences for c in calls), sum(c.total for c in calls)
    floors = sum(c.floor.calls for c in cases)
    equivalents = sum(seconds_of(c, usual) / c.forward_s for c in cases)
    at_floor = sum(c.floor.calls * c.forward_s for c in cases)
    at_calls = sum(n.total * c.forward_s for n, c in zip(calls, cases))
    peak = max((r.peak_bytes for r in run), default=0)
    theirs = sum(c.gradcheck.forward_calls + c.gradcheck.backward_calls for c in cases)
    jacobians = [c.gradcheck.jacobian_bytes for c in cases]
    failed = [c.name for c in cases if not passed(c)]
    verdict = "yes" if not failed else f"**NO: {len(failed)} failed** ({', '.join(failed)})"
    return (f"| {model} | {len(run)} / {len(cases) - len(run)} | {verdict} | {seconds:.0f}{mark} "
            f"({sum(r.process_s for r in run):.0f}) | {differences:.0f} / {floors} = **{differences / floors:.3f}**; "
            f"{total:.0f} / {floors} = {total / floors:.3f}{mark} | {equivalents:.0f}{mark} | "
            f"{_ratio(seconds, at_floor):.2f}{mark} | {_ratio(seconds, at_calls):.2f}{mark} | {_size(peak)} | "
            f"{theirs:.3g} / {total:.0f} = **{_ratio(theirs, total):.0f}x** | {_size(sum(jacobians))}; "
            f"{_size(max(jacobians))} / {_size(peak)} = **{_ratio(max(jacobians), peak):.3g}x** |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=MODELS, action="append", help="a model (repeatable; default: all three)")
    parser.add_argument("--cases", type=int, help="only the first N float64 cases of each model")
    parser.add_argument("--estimate", action="append", default=[], metavar="NAME",
                        help="estimate, not run, the cases whose name contains NAME (repeatable)")
    arguments = parser.parse_args()
    if not os.path.exists("/usr/bin/time"):
        parser.error("needs /usr/bin/time for each check's peak memory")
    print(machine())
    print(f"checks: python -m convgrad {' '.join(CHECK)} <the case's flags>, one case per process, "
          f"OMP_NUM_THREADS={ENV['OMP_NUM_THREADS']}; forward: torch, one thread, {SAMPLES} samples before and "
          f"{SAMPLES} after each check, median", flush=True)
    start = time.perf_counter()
    results: dict[str, list[Case]] = {}
    for model in arguments.model or MODELS:
        results[model] = []
        for name, geometry in float64_cases(model, arguments.cases):
            estimated = any(part in name for part in arguments.estimate)
            case = measure(model, name, geometry, estimated)
            results[model].append(case)
            check = case.check
            done = "estimated" if check is None else (
                f"{check.status}{'' if check.every_coordinate else ' (not every coordinate)'}, check "
                f"{check.elapsed_s:.1f} s, process {check.process_s:.1f} s, {check.calls} calls {check.tensor_calls}, "
                f"peak {_size(check.peak_bytes)}{'' if passed(case) else ' FAILED: ' + check.reason}")
            print(f"{model} {name}: {geometry.brief()}: floor {case.floor.calls}, forward {case.forward_s * 1e3:.2f} ms; "
                  f"{done}", flush=True)
    usual = typical([c for cases in results.values() for c in cases])
    print(f"\nwhole run {time.perf_counter() - start:.0f} s; load average {os.getloadavg()[0]:.2f} at the end; "
          f"medians of the measured cases: {usual.differences:.0f} calls of the differences beyond the floor and "
          f"the hole colours, {usual.later:.0f} later calls\n")
    for model, cases in results.items():
        print(f"{model}\n\n{CASE_HEADER}")
        for case in cases:
            print(case_row(case, usual))
        print()
    print(MODEL_HEADER)
    for model, cases in results.items():
        print(model_row(model, cases, usual))
    failed = [f"{c.model} {c.name}" for cases in results.values() for c in cases if not passed(c)]
    if failed:
        print(f"\nFAILED: {len(failed)} case(s): {'; '.join(failed)}")


if __name__ == "__main__":
    main()
