"""Hints that name the fix, for the ways a real layer most often fails to load or to run:

- a crash under the default layout, when the layer runs with its arrays channels last;
- a crash on a 1-D or 3-D case of a layer that declares no spatial_dims;
- a crash on a rectangular kernel (a case with one reaches the layer only when it declares no square_kernels);
- a file without forward, that defines functions or classes that look like a conv layer;
- an import that fails because the layer's repository is not on the import path.
"""

from __future__ import annotations

import inspect
import os
import re
from typing import Any, Callable, Optional

import numpy as np

from convgrad.errors import GeometryError
from convgrad.geometry import LayerGeometry, format_shape, resolve_geometry

# Layouts nobody has to name: what convgrad passes unless told otherwise.
LAYOUT_DEFAULTS = ("nchw", "oihw")

__all__ = ["crash_hint", "plain_case", "trial_runs", "refuses_rank", "conv_like_names", "import_path_hint"]

_FORWARD = re.compile(r"(conv|forward|fwd)", re.IGNORECASE)
_BACKWARD = re.compile(r"(backward|bwd|grad|backprop)", re.IGNORECASE)


def crash_hint(
    geometry: LayerGeometry, what: str, *, declared_dims: bool, error: BaseException,
    runs: Optional[Callable[[LayerGeometry], bool]] = None,
    other_layouts: Callable[[], Optional[tuple[str, str]]] = lambda: None,
) -> str:
    """'; ...' to append to "forward raised ...", or '' when no fix is evident.

    A limit to declare (2-D only, square kernels, square inputs) is named only when the layer
    `runs` the plain case (plain_case: 2-D, square, unstrided) and, for the rank, when `error`
    reads as a refusal of the rank: a layer that handles a case and crashes on it anyway has a bug
    that declaring the case away would hide. `other_layouts` tries forward in the other layouts and
    returns the (layout, weight layout) that worked; it is asked before the square hints."""
    plain = plain_case(geometry)
    plain_runs = plain is not None and runs is not None and runs(plain)
    if geometry.ndim != 2 and not declared_dims and refuses_rank(error) and (runs is None or plain_runs):
        return (
            f"; this case is {geometry.ndim}-D: if the layer handles 2-D layers only, declare "
            "spatial_dims = (2,) and such cases are skipped"
        )
    if what == "forward":
        layouts = other_layouts()
        if layouts is not None:
            layout, weight_layout = layouts
            flags = " ".join(f"--{flag} {value}" for flag, value in (("layout", layout), ("weight-layout", weight_layout))
                             if value not in LAYOUT_DEFAULTS)
            declared = "; ".join(f'{key} = "{value}"' for key, value in (("layout", layout), ("weight_layout", weight_layout))
                                 if value not in LAYOUT_DEFAULTS)
            held = "the arrays channels last" if layout == "nhwc" else f"the kernels in weight layout {weight_layout}"
            return f"; it runs with {held}: add {flags} (or declare {declared})"
    if not plain_runs:
        return ""
    if len(set(geometry.kernel_size)) > 1:
        return (
            f"; this kernel is {format_shape(geometry.kernel_size)}: if the layer takes square kernels only, "
            "declare square_kernels = true and such cases are skipped"
        )
    if len(set(geometry.spatial)) > 1:
        return (
            f"; this input is {format_shape(geometry.spatial)}: if the layer takes square inputs only, "
            "declare square_only = true and such cases are skipped"
        )
    return ""


def plain_case(geometry: LayerGeometry) -> Optional[LayerGeometry]:
    """The 2-D case with square input and kernel, one image, stride 1, no padding or dilation, the
    channels and groups of `geometry`; None when `geometry` is that shape already."""
    if geometry.ndim == 2 and len(set(geometry.kernel_size)) == 1 and len(set(geometry.spatial)) == 1:
        return None
    kernel = min(geometry.kernel_size)
    size = max(*geometry.spatial, kernel)
    try:
        return resolve_geometry((geometry.channels, size, size), (geometry.filters, geometry.kernel_shape[1], kernel, kernel),
                                groups=geometry.groups, dtype=geometry.dtype)
    except GeometryError:
        return None


def trial_runs(layer: Any, what: str, geometry: LayerGeometry) -> bool:
    """Whether `layer` (an Implementation) runs forward, and backward for a backward, on
    `geometry` without raising."""
    if layer.unsupported(geometry) is not None:
        return False
    rng = np.random.default_rng(0)
    x, w, b, dy = (rng.standard_normal(shape).astype(geometry.dtype)
                   for shape in (geometry.x_shape, geometry.w_shape, geometry.b_shape, geometry.y_shape))
    settings = geometry.conv_settings()
    try:
        layer.forward(x, w, b, **settings)
        if what == "backward":
            layer.backward(dy, x, w, b, **settings)
    except Exception:
        return False
    return True


# A refusal of the rank names it: an unpacked shape, ndim, "4D", "expected ... dimensions"; a
# crash that merely mentions dimensions ("more dimensions than subscripts") does not.
_RANK_WORDS = re.compile(
    r"(values to unpack|ndim|\b[1-5]-?d\b|tuple index out of range|expected .{0,60}dimension|match the \w+ dimensions)",
    re.IGNORECASE)


def refuses_rank(error: BaseException) -> bool:
    """Whether an exception reads as a layer refusing arrays of another rank."""
    if isinstance(error, (AssertionError, NotImplementedError)):
        return True
    return bool(_RANK_WORDS.search(str(error)))


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
