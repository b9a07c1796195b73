"""What the page of `convgrad explain --html` shows, as JSON-able data: the explanation's text by
section, every tensor the explorer reads, and the formulas it evaluates (formula.to_dict).

The explorer of dX evaluates the last step of the derivation itself (with padding, its shortcut,
whose left side is dX rather than dXp), dK and O their formulas, on the derivation's own tensors:
what the page shows is what the text printed and the tests evaluated.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np

from convgrad.explain import Derivation
from convgrad.explain.formula import Formula
from convgrad.render.console import make_console
from convgrad.render.explain import SECTION_TITLES, render_explain

__all__ = ["page_data", "PAGE_WIDTH"]

PAGE_WIDTH = 100  # columns of the text sections


def _sections(d: Derivation) -> list[dict[str, str]]:
    """The plain text of `convgrad explain`, cut where each section's title starts a line."""
    console = make_console(file=io.StringIO(), width=PAGE_WIDTH, record=True)
    console.print(render_explain(d))
    lines = console.export_text(styles=False).splitlines()
    sections: list[dict[str, str]] = [{"title": "Layer", "text": ""}]
    body: list[str] = []
    for line in lines:
        title = next((t for t in SECTION_TITLES if line.startswith(t)), None)
        if title is not None:
            sections[-1]["text"] = "\n".join(body).strip("\n")
            sections.append({"title": line, "text": ""})
            body = []
        else:
            body.append(line)
    sections[-1]["text"] = "\n".join(body).strip("\n")
    return sections[1:]


def _tensor(array: np.ndarray) -> dict[str, Any]:
    data = np.ascontiguousarray(array, dtype="<f8").tobytes()
    return {"shape": list(array.shape), "data": base64.b64encode(data).decode("ascii")}


def _explorer(tensor: str, label: str, note: str, formula: Formula) -> dict[str, Any]:
    return {"tensor": tensor, "label": label, "note": note, "formula": formula.to_dict()}


def page_data(d: Derivation) -> dict[str, Any]:
    fs = d.formulas
    padded = fs.shortcut is not None
    dx_formula = fs.shortcut if fs.shortcut is not None else fs.swapped
    source = "Q (dO spread by the stride and padded by dilation·(kernel−1) − padding)" if padded else "P (dO padded)"
    explorers = [
        _explorer("dX", "dX = ∂E/∂X", f"The window of {source} under the rotated, swapped kernel K', times its taps.",
                  dx_formula),
        _explorer("dK", "dK = ∂E/∂K", "dO of the kernel's filter, slid over the input shifted by the tap.", fs.weights),
        _explorer("O", "O, the forward", "The window of the input under kernel f, times its taps, plus b[f].", fs.forward),
    ]
    read = {f.lhs.tensor for f in (dx_formula, fs.weights, fs.forward)} | {
        factor.tensor for f in (dx_formula, fs.weights, fs.forward) for term in f.terms for factor in term.factors
    }
    return {
        "title": f"convgrad explain: {d.geometry.describe()}",
        "fields": list(d.geometry.describe_fields()),
        "sections": _sections(d),
        "tensors": {name: _tensor(d.tensors[name]) for name in sorted(read)},
        "explorers": explorers,
    }
