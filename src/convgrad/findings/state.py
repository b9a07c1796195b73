"""Why a later call of the protocol failed: state kept between calls, memory layout, or noise.

Each cause is a hypothesis tested against the numbers the calls produced, like diagnosis.py does
for the first call: what would the second call have returned if the layer accumulated its
gradients, cached its input, or returned its previous result? Only a match is named.
"""

from __future__ import annotations

from typing import Callable, Mapping, Optional, Protocol, Sequence

import numpy as np

from convgrad import reference
from convgrad.findings.diagnosis import matches
from convgrad.geometry import GRADIENT_NAMES, LayerGeometry, TensorName
from convgrad.report import TensorComparison

__all__ = ["Call", "second_call_cause", "layout_cause", "first_repeat_cause"]

_MATCH_FLOOR = 1e-10  # hypotheses are computed in float64, in another summation order


class Call(Protocol):
    """What a hypothesis reads of one forward and backward call (run/calls.py: `CallResult`)."""

    @property
    def tensors(self) -> tuple[np.ndarray, ...]:
        """x, w, b, dy as the call was given them."""

    @property
    def outputs(self) -> Mapping[TensorName, Optional[np.ndarray]]:
        """O, dX, dK, db as the call returned them (None: not returned or unusable)."""


def _differ(rows: Sequence[TensorComparison], what: str) -> str:
    """'dK differs from <what> by up to 0.9 of its scale' for the failing rows."""
    failing = [t for t in rows if not t.passed]
    worst = max(failing, key=lambda t: t.max_rel_error or 0.0)
    verb = "differs" if len(failing) == 1 else "differ"
    return f"{', '.join(t.name for t in failing)} {verb} from {what} by up to {worst.max_rel_error or 0.0:.2g} of the scale"


def second_call_cause(
    first: Call, second: Call, geometry: LayerGeometry, rtol: float, first_held: tuple[bool, bool]
) -> Optional[str]:
    """The state that explains a second call that differs from the convolution, or None.

    `first_held`: (the first call's output matched the convolution, every row of it passed). With
    a wrong first output nothing here can be told; without a named cause, that the layer keeps
    state is only said when the whole first call held."""
    output_held, all_held = first_held
    if not output_held:
        return None
    tolerance = max(rtol, _MATCH_FLOOR)
    x1, w1, b1, dy1 = (t.astype(np.float64) for t in first.tensors)
    x2, w2, b2, dy2 = (t.astype(np.float64) for t in second.tensors)
    settings = geometry.conv_settings()
    right = dict(zip(("O", *GRADIENT_NAMES), (reference.forward(x2, w2, b2, **settings),
                                               *reference.backward(dy2, x2, w2, b2, **settings))))
    got, before = second.outputs, first.outputs
    y2, y1 = got["O"], before["O"]
    if y2 is not None and not matches(y2, right["O"], tolerance):
        forward_hypotheses: list[tuple[Callable[[], Optional[np.ndarray]], str]] = [
            (lambda: y1, "forward on new x of the same shape returned the output of the previous x: "
                         "a result is cached and reused while the shape stays the same"),
            (lambda: reference.forward(x1, w2, b2, **settings),
             "forward on new x of the same shape computed with the previous x: something made from x "
             "(a padded copy, im2col columns) is cached and refreshed only when the shape changes"),
            (lambda: reference.forward(x2, w1, b1, **settings),
             "forward used the previous call's kernels and bias: the weights are cached between calls"),
        ]
        for candidate, cause in forward_hypotheses:
            values = candidate()
            if values is not None and matches(y2, values, tolerance):
                return cause
    for name in GRADIENT_NAMES:
        value, earlier = got[name], before[name]
        if value is None or matches(value, right[name], tolerance):
            continue
        if earlier is not None and matches(value, right[name] + earlier, tolerance):
            return (
                f"the second backward returned {name} plus the first call's {name}: gradients "
                "accumulate across calls; start from zeros (or assign, not +=) on every call"
            )
        if earlier is not None and matches(value, earlier, tolerance):
            return f"the second backward returned the first call's {name} again: a result is cached between calls"
        stale = {
            "dK": lambda: reference.weight_gradient(dy2, x1, geometry.kernel_size, **settings),
            "dX": lambda: reference.input_gradient(dy2, w1, geometry.spatial, **settings),
        }.get(name)
        if stale is not None and matches(value, stale(), tolerance):
            what = "x" if name == "dK" else "kernels"
            return (
                f"the second backward computed {name} with the previous call's {what}: it is cached "
                "between calls and refreshed only when the shape changes"
            )
    if not all_held:
        return None
    return (
        "the second call, on new tensors of the same shape, does not match the convolution although "
        "the first did: the layer keeps state between calls"
    )


def layout_cause(name: str, how: str, rows: Sequence[TensorComparison], failure: Optional[str]) -> str:
    """The results change when input `name` arrives as `how` says ("x channels last"): say so, and
    how to fix it."""
    if failure is not None:
        return f"fails when {how} (not C-contiguous): {failure}"
    return (
        f"results depend on the memory layout of the inputs: with {how} (not C-contiguous), "
        f"{_differ(rows, 'the results in C order')}; index by shape, not by strides, or take "
        f"np.ascontiguousarray({name})"
    )


def first_repeat_cause(rows: Sequence[TensorComparison]) -> str:
    return (
        f"the same call twice gave different results: {_differ(rows, 'the first time')}; the "
        "layer is nondeterministic or keeps state between calls"
    )
