"""The float32 precision table of benchmarks/RESULTS.md: largest error / rounding bound, per tensor.

    python benchmarks/precision.py            # correct layers, then the layers that keep fewer bits
    python benchmarks/precision.py --quick    # without the two largest layers

For each layer and tensor (O, dX, dK, db) it prints max_i |value_i - reference_i| / bound_i, where
bound_i = LAMBDA * u * (sqrt(n_i) * B_i + term) is convgrad's rounding model
(src/convgrad/numerics/rounding.py), and the effective precision in bits. A correct float32 layer
must stay below 1 everywhere; the margin below 1 is what LAMBDA leaves. Run from the repository root.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "src"))
sys.path.insert(0, os.path.join(ROOT, "tests"))

import numpy as np  # noqa: E402

from convgrad import reference  # noqa: E402
from convgrad.compare import compare_bounded  # noqa: E402
from convgrad.geometry import LayerGeometry, resolve_geometry  # noqa: E402
from convgrad.numerics.rounding import LAMBDA, rounding_bounds  # noqa: E402
from convgrad.options import CheckOptions  # noqa: E402
from convgrad.run.case import random_tensors  # noqa: E402
from convgrad.suite import load_suite  # noqa: E402

LARGE = {"64x28x28, 128x64x3x3, batch 8", "ResNet-50 3x3: 64x56x56, 64x64x3x3, padding 1"}


def geometries(quick: bool) -> list[tuple[str, LayerGeometry]]:
    chosen = [("seed: 3x20x20, 5x3x3x3", resolve_geometry("3x20x20", "5x3x3x3", dtype="float32"))]
    suite = load_suite(os.path.join(ROOT, "configs", "standard.toml"))
    chosen += [(f"standard: {c.name}", c.geometry) for c in suite.cases if c.geometry.dtype == "float32"]
    chosen += [
        ("32x28x28, 64x32x3x3, batch 2", resolve_geometry("32x28x28", "64x32x3x3", batch=2, padding=1, dtype="float32")),
        ("64x28x28, 128x64x3x3, batch 8", resolve_geometry("64x28x28", "128x64x3x3", batch=8, padding=1, dtype="float32")),
        ("ResNet-50 3x3: 64x56x56, 64x64x3x3, padding 1",
         resolve_geometry("64x56x56", "64x64x3x3", padding=1, dtype="float32")),
    ]
    return [(name, g) for name, g in chosen if not (quick and name in LARGE)]


def layers(wrong: bool) -> list[tuple[str, Any]]:
    from zoo import layers as zoo

    if wrong:
        return [(cls.__name__, cls()) for cls in (zoo.KernelGradientInFloat16, zoo.InputGradientInFloat16,
                                                  zoo.TF32Products, zoo.ForwardThroughFloat16)]
    from convgrad.impl.torch_layer import TorchLayer

    return [("torch", TorchLayer()), *((cls.name, cls()) for cls in zoo.FLOAT32_CORRECT)]


def ratios(layer: Any, geometry: LayerGeometry) -> dict[str, tuple[float, int]]:
    """Per tensor: largest error / bound, and the effective bits."""
    x, w, b, dy = random_tensors(geometry, CheckOptions())
    settings = geometry.conv_settings()
    wide = [t.astype(np.float64) for t in (x, w, b, dy)]
    expected = {"O": reference.forward(*wide[:3], **settings)}
    expected.update(zip(("dX", "dK", "db"), reference.backward(wide[3], *wide[:3], **settings)))
    got = {"O": layer.forward(x, w, b, **settings)}
    got.update(zip(("dX", "dK", "db"), layer.backward(dy, x, w, b, **settings)))
    bounds = rounding_bounds(x, w, b, dy, geometry)
    assert bounds is not None
    result = {}
    for name, value in got.items():
        precision = compare_bounded(name, value, expected[name], bounds, method="float64 reference").precision
        assert precision is not None
        result[name] = (precision.largest_ratio, precision.bits)
    return result


def table(wrong: bool, quick: bool) -> float:
    largest = 0.0
    print("| layer | implementation | O | dX | dK | db |\n|---|---|---|---|---|---|")
    for where, geometry in geometries(quick):
        for name, layer in layers(wrong):
            found = ratios(layer, geometry)
            largest = max(largest, *(r for r, _ in found.values()))
            cells = " | ".join(f"{r:.3f} ({bits} bits)" for r, bits in found.values())
            print(f"| {where} | {name} | {cells} |", flush=True)
    return largest


def random_layers(count: int) -> None:
    """The largest ratio over `count` random float32 layers (tests/layer_strategies.py), per layer."""
    from hypothesis import given, settings

    from layer_strategies import layers as random_geometry

    largest: dict[str, float] = {}
    implementations = layers(wrong=False)

    @settings(max_examples=count, deadline=None, database=None)
    @given(geometry=random_geometry("float32"))
    def measure(geometry: LayerGeometry) -> None:
        for name, layer in implementations:
            found = ratios(layer, geometry)
            largest[name] = max(largest.get(name, 0.0), *(r for r, _ in found.values()))

    measure()
    for name, ratio in largest.items():
        print(f"{count} random float32 layers, {name}: largest error / bound {ratio:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="leave out the two largest layers")
    parser.add_argument("--random", type=int, default=0, metavar="N", help="only: N random small float32 layers")
    options = parser.parse_args()
    if options.random:
        random_layers(options.random)
        return
    print(f"LAMBDA = {LAMBDA:g}; each cell: largest error / bound (effective significant bits)\n")
    print("Correct float32 layers:\n")
    correct = table(wrong=False, quick=options.quick)
    print(f"\nlargest ratio over correct layers: {correct:.3f}\n\nLayers that keep fewer bits:\n")
    wrong = table(wrong=True, quick=options.quick)
    print(f"\nlargest ratio over these layers: {wrong:.1f}")


if __name__ == "__main__":
    main()
