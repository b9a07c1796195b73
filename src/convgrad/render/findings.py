"""Where and why, for people: the location summary, the diagnoses and the heatmap of one tensor.

Reads `Location` and `Diagnosis` objects only (render/json.py gives the same data to machines).
"""

from __future__ import annotations

from typing import Sequence

from rich.console import RenderableType
from rich.padding import Padding
from rich.text import Text

from convgrad.findings.diagnosis import Diagnosis
from convgrad.findings.locate import Location
from convgrad.render.heatmap import render_heatmap

__all__ = ["render_findings", "describe_location"]


def _which(values: Sequence[int], count: int, label: str) -> str:
    """'in all 5 kernels', or 'in channels 0, 2-4 of 6' (consecutive runs collapsed)."""
    if len(values) == count:
        return f"in all {count} {label}" if count > 1 else f"in the single {label[:-1]}"
    runs: list[list[int]] = []
    for v in values:
        if runs and v == runs[-1][-1] + 1:
            runs[-1].append(v)
        else:
            runs.append([v])
    parts = [f"{r[0]}-{r[-1]}" if len(r) > 2 else ", ".join(map(str, r)) for r in runs]
    shown = ", ".join(parts[:8]) + (", ..." if len(parts) > 8 else "")
    return f"in {label} {shown} of {count}"


def describe_location(location: Location) -> str:
    """One sentence: how many, which channels, border or interior, stride phases."""
    parts = [
        f"{location.wrong} of {location.checked} coordinates ({100 * location.fraction:.1f}%) "
        + _which(location.channels, location.channel_count, location.channel_label)
    ]
    if location.batch > 1:
        parts.append(_which(location.samples, location.batch, "samples"))
    region = location.region
    if region is not None and location.reach is not None:
        reach = "x".join(map(str, location.reach)) if len(set(location.reach)) > 1 else str(location.reach[0])
        counts = (
            f"{location.border_wrong} of {location.border_total} border, "
            f"{location.interior_wrong} of {location.interior_total} interior"
        )
        if not any(location.reach):
            parts.append("no border (the kernel and padding reach 0)")
        elif region == "border":
            parts.append(f"only on the border (within {reach} of an edge: {counts})")
        elif region == "interior":
            parts.append(f"only in the interior (more than {reach} from every edge: {counts})")
        else:
            parts.append(f"border and interior ({counts})")
    if location.phases is not None and location.phase_count:
        phases = ", ".join("(" + ",".join(map(str, p)) + ")" for p in location.phases)
        if len(location.phases) < location.phase_count:
            parts.append(f"only on stride phases {phases} of {location.phase_count}")
        else:
            parts.append(f"on all {location.phase_count} stride phases")
    return "; ".join(parts)


def _indented(text: Text) -> Padding:
    return Padding(text, (0, 0, 0, 2))


def render_findings(name: str, location: Location | None, diagnoses: Sequence[Diagnosis]) -> list[RenderableType]:
    """Where (a sentence and, for dX and dK, a heatmap) and why (the diagnoses) for one tensor."""
    parts: list[RenderableType] = []
    if location is not None:
        parts.append(_indented(Text.assemble(("where: ", "bold"), describe_location(location))))
    for diagnosis in diagnoses:
        if diagnosis.tensor == name:
            parts.append(_indented(Text.assemble(("why: ", "bold magenta"), diagnosis.message)))
    if location is not None and location.error_map is not None and name in ("dX", "dK"):
        parts.append(_indented(render_heatmap(location)))
    return parts
