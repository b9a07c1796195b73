"""Hints that name the fix, for the ways a real layer most often fails to load or to run:

- a crash under the default layout, when the layer runs with its arrays channels last;
- a crash on a 1-D or 3-D case of a layer that declares no spatial_dims;
- a file without forward, that defines functions or classes that look like a conv layer;
- an import that fails because the layer's repository is not on the import path.
"""

from __future__ import annotations

import inspect
import os
import re
from typing import Any, Callable, Optional

from convgrad.geometry import LayerGeometry

__all__ = ["crash_hint", "conv_like_names", "import_path_hint"]

_FORWARD = re.compile(r"(conv|forward|fwd)", re.IGNORECASE)
_BACKWARD = re.compile(r"(backward|bwd|grad|backprop)", re.IGNORECASE)


def crash_hint(
    geometry: LayerGeometry, what: str, *, declared_dims: bool, default_layout: bool,
    runs_channels_last: Callable[[], Optional[str]],
) -> str:
    """'; ...' to append to "forward raised ...", or '' when no fix is evident.

    `runs_channels_last` tries forward with the arrays channels last and returns the weight
    layout that worked, or None; it is only asked when the other hints do not apply."""
    if geometry.ndim != 2 and not declared_dims:
        return (
            f"; this case is {geometry.ndim}-D: if the layer handles 2-D layers only, declare "
            "spatial_dims = (2,) and such cases are skipped"
        )
    if what == "forward" and default_layout:
        weight_layout = runs_channels_last()
        if weight_layout is not None:
            flags = "--layout nhwc" + (" --weight-layout hwio" if weight_layout == "hwio" else "")
            declared = 'layout = "nhwc"' + ('; weight_layout = "hwio"' if weight_layout == "hwio" else "")
            return f"; it runs with the arrays channels last: add {flags} (or declare {declared})"
    return ""


def conv_like_names(target: Any) -> tuple[list[str], list[str], list[str]]:
    """What `target` defines that looks like a conv layer: forward-like functions, backward-like
    functions (those naming a conv first), and classes with forward and backward methods."""
    forwards: list[str] = []
    backwards: list[str] = []
    classes: list[str] = []
    for name, value in sorted(vars(target).items()) if hasattr(target, "__dict__") else ():
        if name.startswith("_"):
            continue
        if inspect.isclass(value) and callable(getattr(value, "forward", None)) and callable(getattr(value, "backward", None)):
            classes.append(name)
        elif inspect.isfunction(value) and _BACKWARD.search(name):
            backwards.append(name)
        elif inspect.isfunction(value) and _FORWARD.search(name):
            forwards.append(name)

    def conv_first(names: list[str]) -> list[str]:
        return sorted(names, key=lambda n: "conv" not in n.lower())

    return conv_first(forwards), conv_first(backwards), classes


def import_path_hint(missing: Optional[str], path: Optional[str]) -> str:
    """How to make module `missing` importable: the folder above `path` that holds it, if any."""
    if not missing:
        return ""
    top = missing.split(".")[0]
    folder = os.path.dirname(os.path.abspath(path)) if path else os.getcwd()
    while True:
        if os.path.isdir(os.path.join(folder, top)) or os.path.isfile(os.path.join(folder, top + ".py")):
            return (
                f"; {top} is in {folder}: put that folder on the import path with --impl-path {folder} "
                f"(or PYTHONPATH={folder})"
            )
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return (
        f"; install what it imports, or, if {top} belongs to the layer's repository, put the repository's "
        "root on the import path with --impl-path ROOT (or PYTHONPATH=ROOT)"
    )
