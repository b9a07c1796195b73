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
import contextlib
from contextvars import ContextVar
from dataclasses import replace
from typing import Any, Callable, Iterator, Optional, TypeVar

import numpy as np

from convgrad.geometry import LayerGeometry, format_shape
from convgrad.adapters.declare import Declarations
from convgrad.adapters.failure import ImplementationFailure, describe_exception
from convgrad.adapters.protocol import Unsupported

# Layouts nobody has to name: what convgrad passes unless told otherwise.
LAYOUT_DEFAULTS = ("nchw", "oihw")

__all__ = ["crash_hint", "with_crash_reason", "as_2d", "trial_runs", "refuses_rank", "conv_like_names", "import_path_hint"]

_FORWARD = re.compile(r"(conv|forward|fwd)", re.IGNORECASE)
_BACKWARD = re.compile(r"(backward|bwd|grad|backprop)", re.IGNORECASE)


def crash_hint(
    geometry: LayerGeometry, what: str, *, declared_dims: bool, error: BaseException,
    runs: Optional[Callable[[LayerGeometry], bool]] = None,
    other_layouts: Callable[[], Optional[tuple[str, str]]] = lambda: None,
) -> str:
    """'; ...' to append to "forward raised ...", or '' when no fix is evident.

    A limit to declare is named only when the layer `runs` the same case with just that limit
    lifted (the kernel made square, every axis given the first axis's stride and padding, ...): a
    layer that crashes on that case too has a bug that declaring the limit would hide. The rank
    also needs `error` to read as a refusal of it. Without `runs` (nothing can be tried), only the
    rank is named. `other_layouts` tries forward in the other layouts and returns the (layout,
    weight layout) that worked."""
    if _TRYING.get():  # a trial call of another hint: its crash needs no hint of its own
        return ""

    def lifted(variant: Optional[LayerGeometry]) -> bool:
        with _trial():
            return variant is not None and runs is not None and runs(variant)

    if geometry.ndim != 2 and not declared_dims and refuses_rank(error) and (runs is None or lifted(as_2d(geometry))):
        return (
            f"; this case is {geometry.ndim}-D: if the layer handles 2-D layers only, declare "
            "spatial_dims = (2,) and such cases are skipped"
        )
    if what == "forward":
        with _trial():
            layouts = other_layouts()
        if layouts is not None:
            layout, weight_layout = layouts
            flags = " ".join(f"--{flag} {value}" for flag, value in (("layout", layout), ("weight-layout", weight_layout))
                             if value not in LAYOUT_DEFAULTS)
            declared = "; ".join(f'{key} = "{value}"' for key, value in (("layout", layout), ("weight_layout", weight_layout))
                                 if value not in LAYOUT_DEFAULTS)
            held = "the arrays channels last" if layout == "nhwc" else f"the kernels in weight layout {weight_layout}"
            return f"; it runs with {held}: add {flags} (or declare {declared})"
    per_axis = [(name, values) for name, values in (("stride", geometry.stride), ("padding", geometry.padding),
                                                    ("dilation", geometry.dilation)) if len(set(values)) > 1]
    if per_axis and lifted(_one_value_per_setting(geometry)):
        name, values = per_axis[0]
        return (
            f"; this case needs {name} {format_shape(values)}: if the layer takes one int for every axis, declare "
            "one_int = true and such cases are skipped"
        )
    if any(geometry.left_over) and lifted(_tiled(geometry)):
        return (
            "; the stride does not tile the padded input here: if the layer needs it to, declare stride_tiles = true "
            "and such cases are skipped"
        )
    if len(set(geometry.kernel_size)) > 1 and lifted(_variant(geometry, kernel_size=(min(geometry.kernel_size),) * geometry.ndim)):
        return (
            f"; this kernel is {format_shape(geometry.kernel_size)}: if the layer takes square kernels only, "
            "declare square_kernels = true and such cases are skipped"
        )
    if len(set(geometry.spatial)) > 1 and lifted(_variant(geometry, spatial=(max(geometry.spatial),) * geometry.ndim)):
        return (
            f"; this input is {format_shape(geometry.spatial)}: if the layer takes square inputs only, "
            "declare square_only = true and such cases are skipped"
        )
    return ""


_TRYING: ContextVar[bool] = ContextVar("convgrad_trying_a_hint", default=False)


@contextlib.contextmanager
def _trial() -> Iterator[None]:
    """Calls made to test a hint: whatever they raise is not hinted at again (no recursion)."""
    token = _TRYING.set(True)
    try:
        yield
    finally:
        _TRYING.reset(token)


Result = TypeVar("Result")


def with_crash_reason(
    what: str, geometry: LayerGeometry, declared: Declarations, call: Callable[[], Result],
    runs: Callable[[LayerGeometry], bool],
    other_layouts: Callable[[], Optional[tuple[str, str]]] = lambda: None, asked: Optional[str] = None,
) -> Result:
    """call(), whatever it raises an ImplementationFailure "forward raised ..." (or backward, or
    `what` else), with a hint when `runs` (the layer's forward, and backward for a backward) works
    on the plain case. `asked` is the call the hint names, when not `what` ("creating")."""
    try:
        return call()
    except (ImplementationFailure, Unsupported):  # a reason already, or a case the layer refuses
        raise
    except Exception as error:
        hint = crash_hint(geometry, asked or what, declared_dims=declared.spatial_dims is not None, error=error,
                          runs=runs, other_layouts=other_layouts)
        raise ImplementationFailure(f"{what} raised {describe_exception(error)}{hint}") from error


def _variant(geometry: LayerGeometry, *, spatial: Optional[tuple[int, ...]] = None,
             kernel_size: Optional[tuple[int, ...]] = None, **settings: Any) -> Optional[LayerGeometry]:
    """`geometry` with some of its shapes or settings changed, or None if no such layer exists."""
    spatial = geometry.spatial if spatial is None else spatial
    kernel = geometry.kernel_size if kernel_size is None else kernel_size
    try:
        variant = replace(geometry, in_shape=(geometry.channels, *spatial),
                          kernel_shape=(*geometry.kernel_shape[:2], *kernel), **settings)
    except (TypeError, ValueError):
        return None
    return variant if all(o > 0 for o in variant.out_spatial) else None


def _one_value_per_setting(geometry: LayerGeometry) -> Optional[LayerGeometry]:
    """Every axis given the first axis's stride, padding and dilation."""
    n = geometry.ndim
    return _variant(geometry, padding_after=None, stride=(geometry.stride[0],) * n, padding=(geometry.padding[0],) * n,
                    dilation=(geometry.dilation[0],) * n)


def _tiled(geometry: LayerGeometry) -> Optional[LayerGeometry]:
    """The input cut to the largest size the stride tiles."""
    return _variant(geometry, spatial=tuple(h - over for h, over in zip(geometry.spatial, geometry.left_over)))


def as_2d(geometry: LayerGeometry) -> Optional[LayerGeometry]:
    """The case as a 2-D one: a square input and kernel, the first axis's settings on both axes."""
    kernel = min(geometry.kernel_size)
    size = max(*geometry.spatial, kernel)
    return _variant(geometry, spatial=(size, size), kernel_size=(kernel, kernel), padding_after=None,
                    stride=(geometry.stride[0],) * 2, padding=(geometry.padding[0],) * 2,
                    dilation=(geometry.dilation[0],) * 2)


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
