"""convgrad's own work per call: a whole check through torch against the time spent in the layer.

    python benchmarks/overhead.py                 # the ResNet-50 3x3 layer and 8x32x32, 3 rounds
    python benchmarks/overhead.py --rounds 5 --layer resnet

Each check is `run_case` in this process, `--impl torch --method coloured` (every coordinate of dX,
dK and db by differences), one torch thread. Every call convgrad makes into torch, forward and
backward, is timed where it enters and leaves torch (`TorchArrays.value` and `.gradients`, which
also hold the conversion of the arrays), so a check splits into:

    layer time   the layer's own forward and backward calls
    own work     everything else: guard and watch, differences, comparisons, reference
                 computations, the call protocol's and the network scenario's bookkeeping

and, measured alternately in the same run, one torch forward of the layer alone (batch 1). Figures:

    check / (forward calls x one forward)   the issue's measure (backward calls and stacked
                                            batches count inside the check, not in the calls)
    own work / layer time                   the overhead of convgrad over the layer's own calls

Medians over the rounds; the before/after figures of RESULTS.md come from running this script on
the two commits one after the other (PYTHONPATH naming the other checkout's src/).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_all import machine  # noqa: E402  (run_all also puts src/ on the path, unless PYTHONPATH wins)

LAYERS = {
    "resnet": ("64x56x56", "64x64x3x3", 1),  # ResNet-50 layer1.0.conv2
    "8x32x32": ("8x32x32", "8x8x3x3", 1),
}


@dataclass
class LayerClock:
    """Seconds spent inside the layer's forward and backward calls, and how many of each."""

    forward_s: float = 0.0
    backward_s: float = 0.0
    forwards: int = 0
    backwards: int = 0

    def install(self) -> None:
        from convgrad.frameworks.tensors import TorchArrays

        clock = self

        def timed_value(arrays: Any, call: Callable[..., Any], tensors: Any) -> Any:
            start = time.perf_counter()
            try:
                return original_value(arrays, call, tensors)
            finally:
                clock.forward_s += time.perf_counter() - start
                clock.forwards += 1

        def timed_gradients(arrays: Any, call: Callable[..., Any], dy: Any, tensors: Any) -> Any:
            start = time.perf_counter()
            try:
                return original_gradients(arrays, call, dy, tensors)
            finally:
                clock.backward_s += time.perf_counter() - start
                clock.backwards += 1

        original_value, original_gradients = TorchArrays.value, TorchArrays.gradients
        TorchArrays.value = timed_value  # type: ignore[method-assign]
        TorchArrays.gradients = timed_gradients  # type: ignore[method-assign]

    def reset(self) -> None:
        self.forward_s = self.backward_s = 0.0
        self.forwards = self.backwards = 0


def one_forward(geometry: Any) -> float:
    """Median seconds of one torch forward of the layer at batch 1, one thread (about 50 ms a sample)."""
    import numpy as np
    import torch

    torch.set_num_threads(1)
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((1, *geometry.in_shape)))
    w = torch.from_numpy(np.random.default_rng(1).standard_normal(geometry.kernel_shape))

    def call() -> None:
        with torch.no_grad():
            torch.nn.functional.conv2d(x, w, None, stride=geometry.stride, padding=geometry.padding,
                                       dilation=geometry.dilation, groups=geometry.groups)

    call()
    start = time.perf_counter()
    call()
    repeat = max(1, int(0.05 / max(time.perf_counter() - start, 1e-6)))
    samples = []
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeat):
            call()
        samples.append((time.perf_counter() - start) / repeat)
    return statistics.median(samples)


def measure(name: str, rounds: int, clock: LayerClock) -> None:
    from convgrad import CheckOptions, resolve_geometry, run_case
    from convgrad.adapters.loading import load_implementation

    shape, kernels, padding = LAYERS[name]
    geometry = resolve_geometry(shape, kernels, padding=padding)
    implementation = load_implementation("torch")
    options = CheckOptions(method="coloured")
    run_case(geometry, implementation, options)  # warm: first-use imports and allocations
    checks, layers, forwards, ratios, owns = [], [], [], [], []
    calls = backwards = 0
    for _ in range(rounds):
        before = one_forward(geometry)
        clock.reset()
        start = time.perf_counter()
        report = run_case(geometry, implementation, options)
        check = time.perf_counter() - start
        forward = statistics.median([before, one_forward(geometry)])
        if not report.passed:
            raise SystemExit(f"{name}: the check did not pass ({report.status})")
        layer = clock.forward_s + clock.backward_s
        calls, backwards = report.forward_calls, clock.backwards
        checks.append(check)
        layers.append(layer)
        forwards.append(forward)
        ratios.append(check / (calls * forward))
        owns.append((check - layer) / layer)
    median = statistics.median
    print(f"{name} ({shape}, {kernels}, padding {padding}, float64, batch 1), median of {rounds}: check "
          f"{median(checks):.3f} s; {calls} forward calls, {backwards} backward calls; one forward alone "
          f"{median(forwards) * 1e3:.3f} ms; layer time {median(layers):.3f} s; own work "
          f"{median(checks) - median(layers):.3f} s")
    print(f"  check / (forward calls x one forward) = {median(ratios):.3f}   "
          f"own work / layer time = {median(owns) * 100:.1f}%   (each round: "
          + ", ".join(f"{r:.3f}/{o * 100:.1f}%" for r, o in zip(ratios, owns)) + ")")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--layer", choices=sorted(LAYERS), action="append")
    arguments = parser.parse_args()
    print(machine())
    import convgrad

    print(f"convgrad from {os.path.dirname(convgrad.__file__)}; load average {os.getloadavg()[0]:.2f}")
    clock = LayerClock()
    clock.install()
    for name in arguments.layer or ("resnet", "8x32x32"):
        measure(name, arguments.rounds, clock)
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
