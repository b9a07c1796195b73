"""Writes the model suites beside this file: every distinct conv geometry of ResNet-50,
MobileNetV2 and ConvNeXt-T on one 224x224 image, in float64 and in float32.

People who write conv kernels test them on the layers of real models, so each network is written
here as its definition reads (torchvision's resnet.py, mobilenetv2.py and convnext.py), over shapes
instead of tensors: a conv is fed the shape the layer before it returns, asserts that shape has the
channels the definition says it takes, and returns its own output shape; a residual sum asserts its
two branches agree. A file's in shapes therefore chain the way the network's do.

Many layers share a geometry (the blocks of a stage repeat), and checking one twice finds nothing
new, so a suite has one case per distinct geometry (in shape, kernel shape, stride, padding,
dilation, groups), named after the layers that have it, in the order a forward pass first runs it.
tests/test_model_suites.py proves the shipped files are what this writes.

    python configs/models/generate.py
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

from convgrad.geometry import output_size

Shape = tuple[int, int, int]  # channels, height, width of one image
IMAGE: Shape = (3, 224, 224)
DTYPES = ("float64", "float32")
DEFAULTS = {"stride": 1, "padding": 0, "groups": 1}  # a suite file's, left out of a case


@dataclass(frozen=True)
class Conv:
    """One conv layer as a network calls it (dilation is 1 in all three networks)."""

    name: str
    in_shape: Shape
    kernels: tuple[int, int, int, int]  # F, C/groups, kh, kw
    stride: int
    padding: int
    groups: int

    @property
    def out_shape(self) -> Shape:
        filters, _, kernel, _ = self.kernels
        return slide(self.in_shape, filters, kernel, self.stride, self.padding)

    @property
    def geometry(self) -> tuple[Shape, tuple[int, int, int, int], int, int, int]:
        return self.in_shape, self.kernels, self.stride, self.padding, self.groups


class Network:
    """The conv layers of a network, in the order a forward pass runs them."""

    def __init__(self) -> None:
        self.convs: list[Conv] = []

    def conv(self, name: str, x: Shape, in_channels: int, out_channels: int, kernel: int,
             stride: int = 1, padding: int = 0, groups: int = 1) -> Shape:
        """nn.Conv2d(in_channels, out_channels, kernel, stride, padding, groups=groups) applied to x."""
        assert x[0] == in_channels, f"{name} takes {in_channels} channels but the layer before it returns {x}"
        layer = Conv(name, x, (out_channels, in_channels // groups, kernel, kernel), stride, padding, groups)
        self.convs.append(layer)
        return layer.out_shape

    def distinct(self) -> dict[tuple[object, ...], list[Conv]]:
        """The layers grouped by geometry, groups in the order their first layer runs."""
        by_geometry: dict[tuple[object, ...], list[Conv]] = {}
        for layer in self.convs:
            by_geometry.setdefault(layer.geometry, []).append(layer)
        return by_geometry


def residual(branch: Shape, shortcut: Shape) -> Shape:
    """branch + shortcut: the sum exists only if the two shapes agree."""
    assert branch == shortcut, f"a residual sum of {branch} and {shortcut}"
    return branch


def max_pool(x: Shape, kernel: int, stride: int, padding: int) -> Shape:
    return slide(x, x[0], kernel, stride, padding)


def slide(x: Shape, channels: int, kernel: int, stride: int, padding: int) -> Shape:
    """The shape a square window (a conv's or a pool's) returns, with `channels` channels."""
    _, height, width = x
    return channels, output_size(height, kernel, stride, padding, 1), output_size(width, kernel, stride, padding, 1)


# ResNet-50 (He et al. 2015), as torchvision builds it (v1.5: the stride on the 3x3 of a bottleneck).
BOTTLENECK_EXPANSION = 4
RESNET50_STAGES = ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2))  # planes, blocks, stride


def resnet50() -> Network:
    net = Network()
    x = net.conv("conv1", IMAGE, 3, 64, 7, stride=2, padding=3)
    x = max_pool(x, 3, stride=2, padding=1)
    inplanes = 64
    for stage, (planes, blocks, stride) in enumerate(RESNET50_STAGES, start=1):
        for block in range(blocks):
            x = bottleneck(net, f"layer{stage}.{block}", x, inplanes, planes, stride if block == 0 else 1)
            inplanes = planes * BOTTLENECK_EXPANSION
    return net


def bottleneck(net: Network, name: str, x: Shape, inplanes: int, planes: int, stride: int) -> Shape:
    out = net.conv(f"{name}.conv1", x, inplanes, planes, 1)
    out = net.conv(f"{name}.conv2", out, planes, planes, 3, stride=stride, padding=1)
    out = net.conv(f"{name}.conv3", out, planes, planes * BOTTLENECK_EXPANSION, 1)
    shortcut = x
    if stride != 1 or inplanes != planes * BOTTLENECK_EXPANSION:  # a 1x1 projection where the shape changes
        shortcut = net.conv(f"{name}.downsample.0", x, inplanes, planes * BOTTLENECK_EXPANSION, 1, stride=stride)
    return residual(out, shortcut)


# MobileNetV2 (Sandler et al. 2018) at width 1.0, where every channel count is already a multiple of 8.
INVERTED_RESIDUAL_SETTING = (  # t (expansion), c (channels), n (blocks), s (stride of the first)
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
)


def mobilenet_v2() -> Network:
    net = Network()
    input_channel, last_channel = 32, 1280
    x = net.conv("features.0.0", IMAGE, 3, input_channel, 3, stride=2, padding=1)
    index = 1
    for t, c, n, s in INVERTED_RESIDUAL_SETTING:
        for block in range(n):
            x = inverted_residual(net, f"features.{index}", x, input_channel, c, s if block == 0 else 1, t)
            input_channel = c
            index += 1
    net.conv(f"features.{index}.0", x, input_channel, last_channel, 1)
    return net


def inverted_residual(net: Network, name: str, x: Shape, inp: int, oup: int, stride: int,
                      expand_ratio: int) -> Shape:
    hidden = inp * expand_ratio
    out, layer = x, 0
    if expand_ratio != 1:  # a block that does not widen has no 1x1 expansion
        out = net.conv(f"{name}.conv.0.0", out, inp, hidden, 1)
        layer = 1
    out = net.conv(f"{name}.conv.{layer}.0", out, hidden, hidden, 3, stride=stride, padding=1, groups=hidden)
    out = net.conv(f"{name}.conv.{layer + 1}", out, hidden, oup, 1)
    return residual(out, x) if stride == 1 and inp == oup else out


# ConvNeXt-T (Liu et al. 2022). A block's MLP is Linear layers over channels, not convs: only its
# 7x7 depthwise conv is here.
CONVNEXT_TINY_STAGES = ((96, 3), (192, 3), (384, 9), (768, 3))  # dim, depth


def convnext_tiny() -> Network:
    net = Network()
    x = net.conv("features.0.0", IMAGE, 3, CONVNEXT_TINY_STAGES[0][0], 4, stride=4)  # 4x4 patches
    index = 1
    for stage, (dim, depth) in enumerate(CONVNEXT_TINY_STAGES):
        if stage > 0:  # LayerNorm, then a 2x2 stride-2 conv between stages
            x = net.conv(f"features.{index}.1", x, CONVNEXT_TINY_STAGES[stage - 1][0], dim, 2, stride=2)
            index += 1
        for block in range(depth):
            # LayerNorm, the MLP and the layer scale after the depthwise conv keep its shape
            x = residual(net.conv(f"features.{index}.{block}.block.0", x, dim, dim, 7, padding=3, groups=dim), x)
        index += 1
    return net


@dataclass(frozen=True)
class Model:
    file: str
    title: str  # what the network is, for the header
    bias: str  # whether its convs have a bias, for the header
    build: Callable[[], Network]


MODELS = (
    Model("resnet50.toml", "ResNet-50 (torchvision's v1.5: the stride on the 3x3 of each bottleneck)",
          "Its convs have no bias (batch norm follows each); convgrad checks a bias all the same.", resnet50),
    Model("mobilenet_v2.toml", "MobileNetV2 at width 1.0 (1x1 expansions, 3x3 depthwise, 1x1 projections)",
          "Its convs have no bias (batch norm follows each); convgrad checks a bias all the same.", mobilenet_v2),
    Model("convnext_tiny.toml", "ConvNeXt-T (4x4 patchify stem, 7x7 depthwise, 2x2 downsampling; the MLPs are not convs)",
          "Its convs have a bias, as convgrad checks.", convnext_tiny),
)


def compact(names: list[str]) -> str:
    """'layer2.1.conv3, layer2.2.conv3, layer2.3.conv3' as 'layer2.1-3.conv3': a run of names that
    count up in one place is written as a range."""
    runs: list[list[list[str]]] = []  # runs of names, each name split at its dots
    for parts in (name.split(".") for name in names):
        if runs and _counts_on(runs[-1], parts):
            runs[-1].append(parts)
        else:
            runs.append([parts])
    return ", ".join(_range(run) for run in runs)


def _step(before: list[str], after: list[str]) -> int | None:
    """The place where `after` counts one up from `before`, if they differ there and nowhere else."""
    differ = [i for i, (a, b) in enumerate(zip(before, after)) if a != b]
    if len(before) != len(after) or len(differ) != 1:
        return None
    place = differ[0]
    return place if before[place].isdigit() and after[place] == str(int(before[place]) + 1) else None


def _counts_on(run: list[list[str]], parts: list[str]) -> bool:
    place = _step(run[-1], parts)
    return place is not None and (len(run) == 1 or place == _step(run[0], run[1]))


def _range(run: list[list[str]]) -> str:
    place = _step(run[0], run[1]) if len(run) > 1 else None
    return ".".join(f"{part}-{run[-1][i]}" if i == place else part for i, part in enumerate(run[0]))


def case_name(layers: list[Conv]) -> str:
    first, *rest = (layer.name for layer in layers)
    return f"{first} (and {len(rest)} more: {compact(rest)})" if rest else first


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def render(model: Model) -> str:
    net = model.build()
    distinct = net.distinct()
    lines = [
        f"# Every conv layer of {model.title}",
        f"# on one {_shape(IMAGE)} image: {len(net.convs)} layers, {len(distinct)} distinct geometries, each a case in float64",
        "# and one in float32, at batch 1. A case is named after the layers that have its geometry (torchvision's",
        "# names), in the order a forward pass first runs it; a layer's in shape is the output of the layer feeding it.",
        f"# {model.bias}",
        "# These layers are large: checking every coordinate of every layer through torch takes minutes",
        "# (the benchmarks measure it), not a CI job.",
        "# Generated from the architecture's definition; python configs/models/generate.py writes all three.",
        f'name = "{model.file.removesuffix(".toml")}"',
        "",
    ]
    for layers in distinct.values():
        layer = layers[0]
        for dtype in DTYPES:
            lines += ["[[case]]", f'name = "{case_name(layers)} {dtype}"']
            if dtype == DTYPES[0]:
                lines.append(f"# output {_shape(layer.out_shape)}")
            lines += [f'in = "{_shape(layer.in_shape)}"', f'kernels = "{_shape(layer.kernels)}"']
            settings = {"stride": layer.stride, "padding": layer.padding, "groups": layer.groups}
            lines += [f"{key} = {value}" for key, value in settings.items() if value != DEFAULTS[key]]
            lines += [f'dtype = "{dtype}"', ""]
    return "\n".join(lines)


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    for model in MODELS:
        with open(os.path.join(here, model.file), "w", encoding="utf-8") as handle:
            handle.write(render(model))


if __name__ == "__main__":
    main()
