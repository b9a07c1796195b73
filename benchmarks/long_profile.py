"""The reliability measurement recorded in the README: convgrad on random valid layers.

    python benchmarks/long_profile.py            # 500 float64 + 200 float32 layers per property

Draws the same layers as tests/test_properties.py under its "long" hypothesis profile, but counts
outcomes instead of stopping at the first failure, and prints: examples run, false alarms (a
correct layer failed), missed bugs (a layer with one coordinate wrong by 1e-5 of the scale in
float64, 1e-2 in float32, was not failed on exactly that gradient), and disagreements between
methods. Exits 1 if any count but the first is not zero.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "src"), os.path.join(ROOT, "tests")]

import conftest  # noqa: E402,F401  (registers the hypothesis profiles)
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from checking import check_layer  # noqa: E402
from convgrad.options import METHODS  # noqa: E402
from layer_strategies import (  # noqa: E402
    EXAMPLES,
    INJECTED_ERROR,
    OneCoordinateWrong,
    coordinates,
    false_alarm,
    injected_errors,
    layers,
    magnitudes,
    methods_disagreeing,
    missed_bug,
    seeds,
)


def measure(dtype: str, examples: int) -> Counter:
    """Run both properties on `examples` layers of `dtype`; count outcomes, keep the first few failures."""
    counts: Counter = Counter()
    failures: list[str] = []

    @settings(settings.get_profile("long"), max_examples=examples)
    @given(geometry=layers(dtype), seed=seeds, scale=magnitudes)
    def correct_layers(geometry, seed, scale):
        counts["examples"] += 1
        counts["coordinates"] += coordinates(geometry)
        counts["extreme magnitudes"] += any(v != 1.0 for v in scale.values())
        problem = false_alarm(check_layer(geometry, seed=seed, scale=scale))
        if problem:
            counts["false alarms"] += 1
            failures.append(f"false alarm: {geometry.describe()} {dtype} seed {seed} {scale}: {problem}")
        disagreeing = methods_disagreeing(geometry, seed, scale)
        if disagreeing:
            counts["disagreements"] += 1
            failures.append(f"disagreement: {geometry.describe()} {dtype} seed {seed} {scale}: {disagreeing}")

    @settings(settings.get_profile("long"), max_examples=examples)
    @given(data=st.data(), geometry=layers(dtype), seed=seeds, scale=magnitudes)
    def wrong_layers(data, geometry, seed, scale):
        error = data.draw(injected_errors(geometry))
        counts["wrong layers"] += 1
        problem = missed_bug(check_layer(geometry, OneCoordinateWrong(error), seed=seed, scale=scale), error)
        if problem:
            counts["missed bugs"] += 1
            failures.append(f"missed bug: {geometry.describe()} {dtype} seed {seed} {scale} {error}: {problem}")

    correct_layers()
    wrong_layers()
    for failure in failures[:10]:
        print("  " + failure)
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--float64", type=int, default=EXAMPLES["long"]["float64"], help="layers per property")
    parser.add_argument("--float32", type=int, default=EXAMPLES["long"]["float32"], help="layers per property")
    args = parser.parse_args()
    compared = [m for m in METHODS if m != "dense"]
    print(f"methods: {', '.join(METHODS)}" + ("" if compared else " (no second method to compare with dense)"))
    total: Counter = Counter()
    start = time.perf_counter()
    for dtype, examples in (("float64", args.float64), ("float32", args.float32)):
        started = time.perf_counter()
        counts = measure(dtype, examples)
        total.update(counts)
        print(
            f"{dtype}: {counts['examples']} correct layers (mean {counts['coordinates'] / max(counts['examples'], 1):.0f} "
            f"coordinates, {counts['extreme magnitudes']} with some tensor scaled by 1e-6..1e6), false alarms {counts['false alarms']}, disagreements {counts['disagreements']}; "
            f"{counts['wrong layers']} layers with one coordinate off by {INJECTED_ERROR[dtype]:g} of the scale, "
            f"missed bugs {counts['missed bugs']}  ({time.perf_counter() - started:.0f} s)"
        )
    print(
        f"total: examples run {total['examples'] + total['wrong layers']}, false alarms {total['false alarms']}, "
        f"missed bugs {total['missed bugs']}, disagreements between methods {total['disagreements']}  "
        f"({time.perf_counter() - start:.0f} s)"
    )
    return 1 if total["false alarms"] or total["missed bugs"] or total["disagreements"] else 0


if __name__ == "__main__":
    sys.exit(main())
