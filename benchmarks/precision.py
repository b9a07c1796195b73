"""The float32 precision table of benchmarks/RESULTS.md: largest error / rounding bound, per tensor.

    python benchmarks/precision.py            # correct layers, then the layers that keep fewer bits
    python benchmarks/precision.py --quick    # without the two largest layers
    python benchmarks/precision.py --transforms   # FFT and Winograd layers on a network's data

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
from convgrad.numerics.rounding import LAMBDA, SPREAD, rounding_bounds  # noqa: E402
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
    from convgrad.frameworks.torch_layer import TorchLayer

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


TRANSFORM_GEOMETRIES = [
    ("5x19x17, 7x5x3x3, batch 2", resolve_geometry("5x19x17", "7x5x3x3", padding=1, batch=2, dtype="float32")),
    ("10x12x11, depthwise x2, batch 2", resolve_geometry("10x12x11", "10x2x3x3", padding=1, groups=5, batch=2, dtype="float32")),
    ("4x14x13, 6x4x5x5", resolve_geometry("4x14x13", "6x4x5x5", padding=2, dtype="float32")),
    ("3x16x15, stride 2", resolve_geometry("3x16x15", "4x3x3x3", padding=1, stride=2, dtype="float32")),
    ("seed 3x20x20, 5x3x3x3", resolve_geometry("3x20x20", "5x3x3x3", dtype="float32")),
    ("16x20x20 depthwise", resolve_geometry("16x20x20", "16x1x3x3", groups=16, padding=1, dtype="float32")),
    ("32x28x28, 64x32x3x3, batch 2", resolve_geometry("32x28x28", "64x32x3x3", batch=2, padding=1, dtype="float32")),
    ("3x9x9 dilated", resolve_geometry("3x9x9", "4x3x3x3", padding=2, dilation=2, dtype="float32")),
]
DATA = ("normal", "relu", "max-pool gradient", "zero planes", "tiny gradient")


def network_data(geometry: LayerGeometry, kind: str, seed: int) -> list[np.ndarray]:
    """x, w, b, dy as a network feeds them: standard normal, ReLU'd x, 3/4 of dy zero, every other
    plane zero, or dy of 1e-8."""
    rng = np.random.default_rng(seed)
    x, w, b, dy = (rng.standard_normal(shape) for shape in (geometry.x_shape, geometry.w_shape, geometry.b_shape, geometry.y_shape))
    if kind == "relu":
        x = np.maximum(x, 0)
    elif kind == "max-pool gradient":
        dy = dy * (rng.random(dy.shape) < 0.25)
    elif kind == "zero planes":
        x[:, ::2], dy[:, 1::2] = 0, 0
    elif kind == "tiny gradient":
        dy = dy * 1e-8
    return [t.astype(np.float32) for t in (x, w, b, dy)]


def transforms_table() -> None:
    """Largest error / bound of transform layers (and of layers with fewer bits), over every float32
    case of the standard suite and TRANSFORM_GEOMETRIES, each with every kind of DATA."""
    from zoo import transforms

    names = ("DirectConv", "FFTConv", "Winograd23Conv", "Winograd43Conv", "Float16Sums", "Bfloat16Sums", "TF32Operands")
    suite = load_suite(os.path.join(ROOT, "configs", "standard.toml"))
    cases = TRANSFORM_GEOMETRIES + [(c.name, c.geometry) for c in suite.cases if c.geometry.dtype == "float32"]
    worst: dict[str, float] = {}
    least: dict[str, float] = {}  # over cases, of the largest ratio: how clearly a wrong layer is caught everywhere
    for index, (_, geometry) in enumerate(cases):
        settings = geometry.conv_settings()
        for kind_index, kind in enumerate(DATA):
            x, w, b, dy = network_data(geometry, kind, seed=100 * index + kind_index)
            wide = [t.astype(np.float64) for t in (x, w, b, dy)]
            expected = {"O": reference.forward(*wide[:3], **settings)}
            expected.update(zip(("dX", "dK", "db"), reference.backward(wide[3], *wide[:3], **settings)))
            bounds = rounding_bounds(x, w, b, dy, geometry)
            assert bounds is not None
            for name in names:
                layer = getattr(transforms, name)()
                got = {"O": layer.forward(x, w, b, **settings)}
                got.update(zip(("dX", "dK", "db"), layer.backward(dy, x, w, b, **settings)))
                ratio = max(float(np.max(np.abs(got[t].astype(np.float64) - expected[t]) / bounds.bound[t])) for t in got)
                worst[name] = max(worst.get(name, 0.0), ratio)
                least[name] = min(least.get(name, np.inf), ratio)
    print(f"SPREAD = {SPREAD:g}; {len(cases)} float32 geometries x {len(DATA)} kinds of data ({', '.join(DATA)})\n")
    print("| layer | largest error / bound | smallest, over cases, of a case's largest |\n|---|---|---|")
    for name in names:
        print(f"| {name} | {worst[name]:.3g} | {least[name]:.3g} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="leave out the two largest layers")
    parser.add_argument("--random", type=int, default=0, metavar="N", help="only: N random small float32 layers")
    parser.add_argument("--transforms", action="store_true", help="only: FFT and Winograd layers on a network's data")
    options = parser.parse_args()
    if options.transforms:
        transforms_table()
        return
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
