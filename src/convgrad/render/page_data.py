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
from rich.console import Group

from convgrad.explain import Derivation
from convgrad.explain.formula import Formula
from convgrad.render.console import make_console
from convgrad.render.explain import explain_sections

__all__ = ["page_data", "PAGE_WIDTH"]

PAGE_WIDTH = 100  # columns of the text sections


def _sections(d: Derivation) -> list[dict[str, str]]:
    """Each section of `convgrad explain` as its heading and its body in plain text."""
    sections = []
    for heading, body in explain_sections(d):
        console = make_console(file=io.StringIO(), width=PAGE_WIDTH, record=True)
        console.print(Group(*body))
        sections.append({"title": heading, "text": console.export_text(styles=False).strip("\n")})
    return sections


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
