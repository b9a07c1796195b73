"""Why a derivative of the backward (`--order 2`) or a forward-mode derivative (`--jvp`) is wrong.

Each reading is tested on the numbers, never assumed: no path at all, a derivative that is zero
where the differences move, one off by a constant factor, one where a convolution has none. Each
is a `Diagnosis` of the row (its label, "dX wrt w"), so the summary, the JSON and the groups of
a suite say it as they say a first-order mistake.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from convgrad.findings.diagnosis import fitted_factor
from convgrad.report import Diagnosis

__all__ = ["gradient_without_history", "second_order_cause", "structural_zero_cause", "together_cause", "together_tangents_cause", "tangent_cause", "failed_call_cause", "no_history"]

# A factor is named when it holds this well at least: the sides come from different computations.
FACTOR_TOLERANCE = 1e-6

# What each gradient is called in a torch backward, and the tensor it must stay attached to.
_BACKWARD_NAMES = {"dX": "grad_input", "dK": "grad_weight", "db": "grad_bias"}
_INPUT_NAMES = {"x": "input", "w": "weight", "b": "bias", "dy": "grad_output"}

def no_history(label: str) -> Diagnosis:
    return Diagnosis(
        label, "backward_not_differentiable",
        "the backward's results carry no autograd history: they are computed outside autograd (NumPy, "
        ".detach(), .data or torch.no_grad()), so nothing can differentiate them; write the backward with "
        "differentiable torch operations on the saved tensors",
        "a backward computed outside autograd",
    )


def gradient_without_history(label: str, output: str) -> Diagnosis:
    """One gradient the backward computes outside autograd, the others within it."""
    name = _BACKWARD_NAMES[output]
    return Diagnosis(
        label, "gradient_not_differentiable",
        f"{output} carries no autograd history while the other gradients do: the backward computes {name} "
        "outside autograd (under torch.no_grad(), from .detach()ed or .data tensors, or in NumPy); compute it "
        "with torch operations on the saved tensors", f"{name} computed outside autograd",
    )


def second_order_cause(label: str, output: str, wrt: str, found: Optional[np.ndarray], differences: np.ndarray,
                       tolerance: float, scale: float) -> Optional[Diagnosis]:
    """Why the framework's derivative of `output` by `wrt` (None: no path) differs from the
    differences, when one reading explains it."""
    fix = (f"{_BACKWARD_NAMES[output]} is computed from a detached {_INPUT_NAMES[wrt]} ({_INPUT_NAMES[wrt]}.detach(), "
           f".data, jax.lax.stop_gradient or NumPy); compute it from the {_INPUT_NAMES[wrt]} itself")
    short = f"{_BACKWARD_NAMES[output]} computed from a detached {_INPUT_NAMES[wrt]}"
    if found is None:
        return Diagnosis(label, "detached_in_backward",
                         f"{output} does not change with {wrt} as autograd sees it (no path from {wrt} to {output}): "
                         f"{fix}", short)
    if float(np.max(np.abs(found), initial=0.0)) <= tolerance * scale:
        return Diagnosis(label, "detached_in_backward",
                         f"{output} does not change with {wrt} in the double backward (its derivative is zero): {fix}",
                         short)
    factor = fitted_factor(found, differences, max(tolerance, FACTOR_TOLERANCE))
    if factor is not None:
        return Diagnosis(label, "second_order_scaled",
                         f"the double backward is off by a factor of {factor:.4g} everywhere: the derivative of "
                         f"{output} by {wrt} is scaled (a custom backward of the backward, or a constant in it)",
                         f"the double backward scaled by {factor:.4g}")
    return Diagnosis(label, "second_order_wrong",
                     f"the layer's backward is right but its derivative of {output} by {wrt} is not: a custom "
                     "backward of the backward (an autograd.Function called inside it, or a custom_vjp's bwd) is wrong",
                     "a wrong backward of the backward")


def structural_zero_cause(label: str, output: str, wrt: str, found_largest: float, moved_largest: float,
                          limit: float) -> Diagnosis:
    """Why a derivative a convolution keeps at zero (dX by x, dK by w, db by anything but dy) is not."""
    never = f"a convolution's {output} does not depend on {wrt}"
    if found_largest > limit:
        return Diagnosis(label, "second_order_not_zero",
                         f"the double backward says {output} changes with {wrt} (up to {found_largest:.3g}), and {never}: "
                         "a custom backward of the backward is wrong", f"{output} depends on {wrt} in the double backward")
    return Diagnosis(label, "backward_depends",
                     f"the layer's backward changes {output} when {wrt} moves (by up to {moved_largest:.3g}), and {never}",
                     f"the backward's {output} depends on {wrt}")


def together_cause(label: str, wrt: str) -> Diagnosis:
    """The double backward right for each gradient alone, wrong when they arrive together."""
    return Diagnosis(
        label, "second_order_together",
        f"the double backward is right for each gradient alone and wrong for them together (by {wrt}): handed "
        "cotangents for several gradients at once, as a penalty on more than one gradient does, it drops or "
        "mixes one (an if/elif over the incoming gradients, or one left None by set_materialize_grads(False))",
        "the double backward drops a gradient when several arrive together",
    )


def together_tangents_cause(label: str) -> Diagnosis:
    """The jvp right along each tensor alone, wrong when x, w and b move together."""
    return Diagnosis(
        label, "jvp_together",
        "the forward-mode derivative is right along x, w and b alone and wrong when they move together, as a jvp "
        "over a network's input and parameters moves them: the rule adds a cross term (conv(x_t, w_t), from "
        "differencing the forward) or drops a tangent (an if/elif over the incoming tangents)",
        "the jvp is wrong when several tangents arrive together",
    )


def tangent_cause(label: str, moved: str, found_none: bool, found: np.ndarray, expected: np.ndarray, tolerance: float,
                  scale: float) -> Optional[Diagnosis]:
    """Why the forward-mode derivative along `moved`'s directions differs from the reference's."""
    if found_none:
        return Diagnosis(label, "jvp_drops_tangent",
                         f"the output carries no tangent when {moved} moves: the forward-mode rule drops {moved}'s "
                         "tangent", f"the jvp drops {moved}'s tangent")
    if float(np.max(np.abs(found), initial=0.0)) <= tolerance * scale:
        return Diagnosis(label, "jvp_drops_tangent",
                         f"the forward-mode derivative does not follow {moved}: the jvp forgets {moved}'s tangent term",
                         f"the jvp forgets {moved}'s tangent")
    factor = fitted_factor(found, expected, max(tolerance, FACTOR_TOLERANCE))
    if factor is not None:
        return Diagnosis(label, "jvp_scaled", f"the jvp is off by a factor of {factor:.4g} everywhere: it scales "
                         f"{moved}'s tangent term", f"the jvp scaled by {factor:.4g}")
    return None


def failed_call_cause(message: str) -> str:
    """A call that could not differentiate, with the fix when the message tells it."""
    if "once_differentiable" in message:
        return (f"{message}, so autograd cannot differentiate it again; drop the decorator and write it with "
                "differentiable torch operations")
    message = message.rstrip(".")
    if "custom_vjp" in message and "jvp" in message:
        return f"{message}: a jax.custom_vjp function has no forward mode; define it with jax.custom_jvp"
    if "implement the jvp" in message or "jvp function" in message:
        return (f"{message}: define the Function's jvp staticmethod (forward mode runs it; save what it needs "
                "with ctx.save_for_forward)")
    return message
