"""A small terminal map of the error over the spatial positions of one channel (rich Text).

Each cell is two characters wide so the map looks square; the glyph carries the level as well as
the colour, so the map still reads with NO_COLOR or in a pipe.
"""

from __future__ import annotations

import math

import numpy as np
from rich.text import Text

from convgrad.findings.locate import Location

__all__ = ["render_heatmap", "GLYPHS", "OK_GLYPH"]

OK_GLYPH = "·"
GLYPHS = ("░", "▒", "▓", "█")  # increasing error
_STYLES = ("yellow", "dark_orange", "red", "bold red")
_LABEL_WIDTH = 3


def _thresholds(tolerance: float) -> list[float]:
    """Upper bounds of the first three levels: the decades between the tolerance and 1, in four."""
    low = math.log10(tolerance) if tolerance > 0 else -16.0
    return [10 ** (low * (1 - i / 4)) for i in (1, 2, 3)]


def render_heatmap(location: Location) -> Text:
    """The error map of `location` with a title and a legend (empty Text when there is no map)."""
    error_map = location.error_map
    if error_map is None:
        return Text()
    bounds = _thresholds(location.tolerance)
    rows_name, cols_name = location.map_axes
    block_rows, block_cols = location.map_block
    text = Text()
    over = f"{rows_name} x {cols_name}" if rows_name else cols_name
    per_cell = "" if location.map_block == (1, 1) else f", each cell the worst of {block_rows}x{block_cols} positions"
    text.append(f"error map of {location.map_title} over {over}{per_cell}\n", style="bold")
    header = " " * (_LABEL_WIDTH + 1) + "".join(
        f"{(j * block_cols) % 100:<2d}" if j % 5 == 0 else "  " for j in range(error_map.shape[1])
    )
    text.append(f"{header.rstrip()}\n", style="dim")
    for i, row in enumerate(error_map):
        label = f"{i * block_rows}" if rows_name else ""
        text.append(f"{label:>{_LABEL_WIDTH}} ", style="dim")
        for value in row:
            if np.isnan(value):  # not compared (a sampled check)
                text.append("  ")
                continue
            if value <= location.tolerance:
                text.append(OK_GLYPH + " ", style="dim")
                continue
            level = sum(value > b for b in bounds)
            text.append(GLYPHS[level] * 2, style=_STYLES[level])
        text.append("\n")
    if np.isnan(error_map).any():
        text.append("blank not compared  ", style="dim")
    text.append(f"{OK_GLYPH} within tolerance", style="dim")
    for glyph, style, lower in zip(GLYPHS, _STYLES, [location.tolerance, *bounds]):
        text.append("  ")
        text.append(glyph, style=style)
        text.append(f" >{lower:.0e}", style="dim")
    text.append("  (relative error)", style="dim")
    return text
