"""The model suites in configs/models/: what configs/models/generate.py writes, every conv layer of
each network named once, the landmark layers, and in shapes that chain the way the networks do.

The counts, landmarks and chains are written here from the papers and torchvision's definitions,
and read back from the shipped files' case names and geometries, not from the generator: an edit
that drops, repeats or misshapes a layer fails here.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from types import ModuleType
from typing import Any, Callable

import pytest

from convgrad.geometry import LayerGeometry
from convgrad.suite import Suite, load_suite

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.path.join(ROOT, "configs", "models")
Shape = tuple[int, ...]


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_model_suites", os.path.join(MODELS, "generate.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


GENERATOR = _generator()
SUITES: dict[str, Suite] = {name: load_suite(os.path.join(MODELS, f"{name}.toml"))
                            for name in ("resnet50", "mobilenet_v2", "convnext_tiny")}
# Conv layers and distinct geometries (in shape, kernel shape, stride, padding, dilation, groups).
# ResNet-50: the stem, 16 bottlenecks of three convs, 4 projections; MobileNetV2: the stem, a first
# block of two, 16 of three, the last 1x1; ConvNeXt-T: the stem, 18 depthwise, 3 downsampling.
COUNTS = {"resnet50": (53, 23), "mobilenet_v2": (52, 30), "convnext_tiny": (22, 8)}

# "layer3.0.conv3 (and 5 more: layer3.1-5.conv3) float64": the layers that have the case's geometry.
CASE_NAME = re.compile(r"(?P<first>\S+)(?: \(and (?P<more>\d+) more: (?P<rest>.+)\))? (?P<dtype>float64|float32)")


def _expand(entry: str) -> list[str]:
    """'layer2.1-3.conv3' as layer2.1.conv3, layer2.2.conv3 and layer2.3.conv3."""
    parts = entry.split(".")
    for place, part in enumerate(parts):
        if "-" in part:
            low, high = map(int, part.split("-"))
            return [".".join([*parts[:place], str(n), *parts[place + 1:]]) for n in range(low, high + 1)]
    return [entry]


def layer_names(case_name: str) -> list[str]:
    match = CASE_NAME.fullmatch(case_name)
    assert match, case_name
    rest = [name for entry in match["rest"].split(", ") for name in _expand(entry)] if match["rest"] else []
    assert len(rest) == int(match["more"] or 0), case_name
    return [match["first"], *rest]


def layers(suite: str) -> dict[str, LayerGeometry]:
    """Every layer the float64 cases name, with its geometry."""
    named = [(name, case.geometry) for case in SUITES[suite].cases if case.geometry.dtype == "float64"
             for name in layer_names(case.name)]
    assert len({name for name, _ in named}) == len(named), "a layer named in two cases"
    return dict(named)


def _key(g: LayerGeometry) -> tuple[object, ...]:
    return g.in_shape, g.kernel_shape, g.stride, g.padding, g.padding_end, g.dilation, g.groups


def out_shape(g: LayerGeometry) -> Shape:
    return (g.filters, *g.out_spatial)


@pytest.mark.parametrize("model", GENERATOR.MODELS, ids=lambda model: model.file)
def test_the_shipped_file_is_what_the_generator_writes(model: Any) -> None:
    with open(os.path.join(MODELS, model.file), encoding="utf-8") as handle:
        assert handle.read() == GENERATOR.render(model), "regenerate: python configs/models/generate.py"


@pytest.mark.parametrize("suite", SUITES)
def test_every_layer_is_named_once_and_each_geometry_is_a_case_in_both_dtypes(suite: str) -> None:
    layer_count, geometry_count = COUNTS[suite]
    cases = SUITES[suite].cases
    assert len(layers(suite)) == layer_count
    assert len({case.name for case in cases}) == len(cases) == 2 * geometry_count
    by_dtype = {dtype: [_key(c.geometry) for c in cases if c.geometry.dtype == dtype] for dtype in ("float64", "float32")}
    assert by_dtype["float64"] == by_dtype["float32"]  # each geometry twice, in the same order
    assert len(set(by_dtype["float64"])) == geometry_count
    for case in cases:
        assert case.name.endswith(" " + case.geometry.dtype) and case.geometry.batch == 1, case.name
    with open(os.path.join(MODELS, f"{suite}.toml"), encoding="utf-8") as handle:
        assert f"{layer_count} layers, {geometry_count} distinct geometries" in handle.read()


# (suite, layer, in, kernels, stride, padding, groups), from the papers and torchvision.
LANDMARKS = [
    ("resnet50", "conv1", (3, 224, 224), (64, 3, 7, 7), 2, 3, 1),  # the stem
    ("resnet50", "layer2.0.conv1", (256, 56, 56), (128, 256, 1, 1), 1, 0, 1),  # v1.5: not strided ...
    ("resnet50", "layer2.0.conv2", (128, 56, 56), (128, 128, 3, 3), 2, 1, 1),  # ... the 3x3 is
    ("resnet50", "layer2.0.downsample.0", (256, 56, 56), (512, 256, 1, 1), 2, 0, 1),  # a projection shortcut
    ("resnet50", "layer1.0.downsample.0", (64, 56, 56), (256, 64, 1, 1), 1, 0, 1),
    ("resnet50", "layer4.2.conv3", (512, 7, 7), (2048, 512, 1, 1), 1, 0, 1),
    ("mobilenet_v2", "features.0.0", (3, 224, 224), (32, 3, 3, 3), 2, 1, 1),
    ("mobilenet_v2", "features.1.conv.0.0", (32, 112, 112), (32, 1, 3, 3), 1, 1, 32),  # t = 1: no expansion
    ("mobilenet_v2", "features.2.conv.0.0", (16, 112, 112), (96, 16, 1, 1), 1, 0, 1),  # a 1x1 expansion, t = 6
    ("mobilenet_v2", "features.2.conv.1.0", (96, 112, 112), (96, 1, 3, 3), 2, 1, 96),  # depthwise, stride 2
    ("mobilenet_v2", "features.17.conv.2", (960, 7, 7), (320, 960, 1, 1), 1, 0, 1),  # a 1x1 projection
    ("mobilenet_v2", "features.18.0", (320, 7, 7), (1280, 320, 1, 1), 1, 0, 1),
    ("convnext_tiny", "features.0.0", (3, 224, 224), (96, 3, 4, 4), 4, 0, 1),  # 4x4 patchify
    ("convnext_tiny", "features.1.0.block.0", (96, 56, 56), (96, 1, 7, 7), 1, 3, 96),  # 7x7 depthwise
    ("convnext_tiny", "features.5.8.block.0", (384, 14, 14), (384, 1, 7, 7), 1, 3, 384),
    ("convnext_tiny", "features.2.1", (96, 56, 56), (192, 96, 2, 2), 2, 0, 1),  # 2x2 downsampling
    ("convnext_tiny", "features.6.1", (384, 14, 14), (768, 384, 2, 2), 2, 0, 1),
]


@pytest.mark.parametrize("suite, layer, in_shape, kernels, stride, padding, groups", LANDMARKS,
                         ids=[f"{suite} {layer}" for suite, layer, *_ in LANDMARKS])
def test_the_landmark_layers_have_their_geometry(suite: str, layer: str, in_shape: Shape, kernels: Shape,
                                                 stride: int, padding: int, groups: int) -> None:
    g = layers(suite)[layer]
    assert (g.in_shape, g.kernel_shape, g.stride, g.padding, g.padding_end, g.dilation, g.groups) == (
        in_shape, kernels, (stride, stride), (padding, padding), (padding, padding), (1, 1), groups)


def test_the_first_mobilenet_block_has_no_expansion() -> None:
    assert "features.1.conv.2" not in layers("mobilenet_v2")
    assert layers("mobilenet_v2")["features.1.conv.1"].kernel_shape == (16, 32, 1, 1)


def _max_pool_3x3_s2_p1(shape: Shape) -> Shape:
    channels, *spatial = shape
    return (channels, *((size + 2 - 3) // 2 + 1 for size in spatial))


def _same(shape: Shape) -> Shape:
    return shape


# (suite, the layer that feeds, what lies between, the layer fed): its output becomes the fed one's input.
CHAINS: list[tuple[str, str, Callable[[Shape], Shape], str]] = [
    ("resnet50", "conv1", _max_pool_3x3_s2_p1, "layer1.0.conv1"),
    ("resnet50", "layer2.0.conv2", _same, "layer2.0.conv3"),
    ("resnet50", "layer3.5.conv3", _same, "layer4.0.conv1"),
    ("resnet50", "layer3.5.conv3", _same, "layer4.0.downsample.0"),
    ("mobilenet_v2", "features.0.0", _same, "features.1.conv.0.0"),
    ("mobilenet_v2", "features.2.conv.1.0", _same, "features.2.conv.2"),
    ("mobilenet_v2", "features.17.conv.2", _same, "features.18.0"),
    ("convnext_tiny", "features.0.0", _same, "features.1.0.block.0"),
    ("convnext_tiny", "features.1.2.block.0", _same, "features.2.1"),
    ("convnext_tiny", "features.6.1", _same, "features.7.0.block.0"),
]


@pytest.mark.parametrize("suite, feeder, between, fed", CHAINS, ids=[f"{s} {a} -> {b}" for s, a, _, b in CHAINS])
def test_a_layer_is_fed_the_output_of_the_layer_before_it(suite: str, feeder: str, between: Callable[[Shape], Shape],
                                                          fed: str) -> None:
    named = layers(suite)
    assert between(out_shape(named[feeder])) == named[fed].in_shape


# (suite, the last layer of a branch, the layer whose output is the other): a residual sum adds them.
RESIDUALS = [
    ("resnet50", "layer2.0.conv3", "layer2.0.downsample.0"),  # a projection shortcut
    ("resnet50", "layer1.1.conv3", "layer1.0.conv3"),  # the identity: block 1 is fed block 0's sum
    ("mobilenet_v2", "features.3.conv.2", "features.2.conv.2"),
    ("convnext_tiny", "features.5.3.block.0", "features.5.2.block.0"),  # the rest of a block keeps the shape
]


@pytest.mark.parametrize("suite, branch, shortcut", RESIDUALS, ids=[f"{s} {a} + {b}" for s, a, b in RESIDUALS])
def test_residual_branches_return_one_shape(suite: str, branch: str, shortcut: str) -> None:
    named = layers(suite)
    assert out_shape(named[branch]) == out_shape(named[shortcut])


def test_the_generator_refuses_a_layer_fed_the_wrong_channels_or_a_sum_of_two_shapes() -> None:
    with pytest.raises(AssertionError, match="layer1.0.conv1 takes 256 channels but the layer before it returns"):
        GENERATOR.Network().conv("layer1.0.conv1", (64, 56, 56), 256, 64, 1)
    with pytest.raises(AssertionError, match="a residual sum of"):
        GENERATOR.residual((256, 28, 28), (256, 56, 56))


def test_case_names_compact_runs_of_layers_that_count_up() -> None:
    names = ["layer1.0.conv3", "layer1.0.downsample.0", "layer1.1.conv3", "layer1.2.conv3", "features.5.1.block.0"]
    assert GENERATOR.compact(names) == "layer1.0.conv3, layer1.0.downsample.0, layer1.1-2.conv3, features.5.1.block.0"
    assert [n for entry in GENERATOR.compact(names).split(", ") for n in _expand(entry)] == names
