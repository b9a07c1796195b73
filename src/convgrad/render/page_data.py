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


def _explorer(tensor: str, label: str, note: str, formula: Formula, computed_by: str) -> dict[str, Any]:
    return {"tensor": tensor, "label": label, "note": note, "formula": formula.to_dict(), "computed_by": computed_by}


def page_data(d: Derivation) -> dict[str, Any]:
    fs = d.formulas
    dx_formula = fs.shortcut if fs.shortcut is not None else fs.swapped
    spread = "spread by the stride and " if d.spread is not None else ""
    source = (f"Q ({d.source_name} padded by dilation·(kernel−1) − padding)" if fs.shortcut is not None
              else f"P (dO {spread}padded by dilation·(kernel−1))")
    explorers = [
        _explorer("dX", "dX = ∂E/∂X", f"The window of {source} under the rotated, swapped kernels K', times their taps.",
                  dx_formula, "the steps"),
        _explorer("dK", "dK = ∂E/∂K", f"dO of the kernel's filter, slid over {d.input_name} shifted by dilation·tap.",
                  fs.weights, "the reference layer"),
        _explorer("O", "O, the forward", f"The window of {d.input_name} under kernel f, times its taps, plus b[f].",
                  fs.forward, "the reference forward"),
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
