"""Where a tensor is wrong: how many coordinates, which channels, border or interior, stride phases.

Also cuts out the error map of the worst channel (shrunk by taking the maximum over blocks so it
fits a terminal), so the renderer draws it without computing anything.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from convgrad.geometry import LayerGeometry
from convgrad.report import Location, TensorComparison

__all__ = ["Location", "locate", "MAP_COLUMNS", "MAP_ROWS"]

MAP_COLUMNS = 36  # two characters per cell, plus row labels, fit 80 columns
MAP_ROWS = 24


def locate(tensor: TensorComparison, geometry: LayerGeometry) -> Optional[Location]:
    """Where `tensor` is wrong, or None when it passed or has no comparable values."""
    if tensor.passed or tensor.analytical is None or tensor.numerical is None:
        return None
    analytical, numerical = tensor.analytical, tensor.numerical
    if analytical.shape != numerical.shape or tensor.scale is None or tensor.scale == 0.0:
        return None
    computed = ~np.isnan(numerical)
    rel = np.where(computed, np.abs(analytical - np.where(computed, numerical, 0.0)), 0.0) / tensor.scale
    wrong = rel > tensor.tolerance
    compared = np.where(computed, rel, np.nan)  # NaN: not compared (sampled checks), drawn blank
    wrong_count, checked = int(wrong.sum()), int(computed.sum())
    if tensor.name == "db":
        return Location(
            tensor=tensor.name, tolerance=tensor.tolerance, wrong=wrong_count, checked=checked,
            channel_label="kernels", channels=_indices(wrong, 0), channel_count=wrong.shape[0],
        )
    if tensor.name == "dK":
        title, axes, block, values = _error_map(compared, "dK", ("f", "c"), _tap_names(geometry))
        return Location(
            tensor=tensor.name, tolerance=tensor.tolerance, wrong=wrong_count, checked=checked,
            channel_label="kernels", channels=_indices(wrong, 0), channel_count=wrong.shape[0],
            map_title=title, map_axes=axes, map_block=block, error_map=values,
        )
    reach = _reach(tensor.name, geometry)
    border = _border_mask(wrong.shape[2:], reach)
    phases, phase_count = None, None
    if tensor.name == "dX" and any(s > 1 for s in geometry.stride):
        phases, phase_count = _phases(wrong, geometry), math.prod(geometry.stride)
    leading = ("n", "c" if tensor.name == "dX" else "f")
    title, axes, block, values = _error_map(compared, tensor.name, leading, geometry.axis_names)
    return Location(
        tensor=tensor.name, tolerance=tensor.tolerance, wrong=wrong_count, checked=checked,
        channel_label="channels",
        channels=_indices(wrong, 1),
        channel_count=wrong.shape[1],
        samples=_indices(wrong, 0),
        batch=wrong.shape[0],
        reach=reach,
        border_wrong=int(wrong[..., border].sum()),
        # Totals count compared coordinates only: a sampled check says nothing about the rest.
        border_total=int(computed[..., border].sum()),
        interior_wrong=int(wrong[..., ~border].sum()),
        interior_total=int(computed[..., ~border].sum()),
        phases=phases,
        phase_count=phase_count,
        map_title=title, map_axes=axes, map_block=block, error_map=values,
    )


def _indices(wrong: np.ndarray, axis: int) -> tuple[int, ...]:
    others = tuple(a for a in range(wrong.ndim) if a != axis)
    return tuple(int(i) for i in np.flatnonzero(wrong.any(axis=others)))


def _tap_names(geometry: LayerGeometry) -> tuple[str, ...]:
    return tuple(f"k{name}" for name in geometry.axis_names)


def _reach(name: str, geometry: LayerGeometry) -> tuple[int, ...]:
    """How far from each edge a position counts as border."""
    pads = [max(pair) for pair in geometry.padding_pairs]  # the wider side, where padding differs
    if name == "O":  # outputs whose window reaches into the padding
        return tuple(math.ceil(p / s) for p, s in zip(pads, geometry.stride))
    return tuple(max(p, d * (k - 1)) for p, d, k in zip(pads, geometry.dilation, geometry.kernel_size))


def _border_mask(spatial: tuple[int, ...], reach: tuple[int, ...]) -> np.ndarray:
    mask = np.zeros(spatial, dtype=bool)
    for axis, (size, r) in enumerate(zip(spatial, reach)):
        position = np.arange(size)
        near = (position < r) | (position >= size - r)
        mask |= near.reshape([-1 if a == axis else 1 for a in range(len(spatial))])
    return mask


def _phases(wrong: np.ndarray, geometry: LayerGeometry) -> tuple[tuple[int, ...], ...]:
    """Which stride phases (position in the padded input mod stride) hold the errors of dX."""
    spatial = wrong.shape[2:]
    any_wrong = wrong.any(axis=(0, 1))
    grids = np.meshgrid(*[(np.arange(n) + p) % s for n, p, s in zip(spatial, geometry.padding, geometry.stride)], indexing="ij")
    return tuple(sorted({tuple(int(g[idx]) for g in grids) for idx in zip(*np.nonzero(any_wrong))}))


def _error_map(
    rel: np.ndarray, name: str, leading: tuple[str, str], spatial_names: tuple[str, ...]
) -> tuple[str, tuple[str, str], tuple[int, int], np.ndarray]:
    """The relative error over the spatial positions of the slice holding the worst coordinate:
    (title, names of the rows and columns, positions per cell, the map).

    `rel` is NaN where a coordinate was not compared; a cell is NaN only if none of it was."""
    worst = np.unravel_index(int(np.nanargmax(rel)), rel.shape)
    plane = rel[worst[0], worst[1]]
    labels = [f"{leading[0]}={worst[0]}", f"{leading[1]}={worst[1]}"]
    names = list(spatial_names)
    if plane.ndim == 3:  # 3-D: the depth slice holding the worst coordinate
        labels.append(f"{names[0]}={worst[2]}")
        plane, names = plane[worst[2]], names[1:]
    if plane.ndim == 1:
        plane, names = plane[None, :], ["", names[0]]
    block = (math.ceil(plane.shape[0] / MAP_ROWS), math.ceil(plane.shape[1] / MAP_COLUMNS))
    return f"{name}[{', '.join(labels)}]", (names[0], names[1]), block, _block_max(plane, block)


def _block_max(plane: np.ndarray, block: tuple[int, int]) -> np.ndarray:
    rows, cols = plane.shape
    br, bc = block
    padded = np.full((math.ceil(rows / br) * br, math.ceil(cols / bc) * bc), np.nan)
    padded[:rows, :cols] = plane
    blocks = padded.reshape(padded.shape[0] // br, br, padded.shape[1] // bc, bc)
    return np.fmax.reduce(np.fmax.reduce(blocks, axis=3), axis=1)  # fmax skips NaN
