"""NumPy arrays across the boundary to torch and jax: onto the device in the same dtype, and back.

Every layer written in a framework (the built-ins `--impl torch` and `--impl jax`, a user's
`torch.nn.Module`, `torch.autograd.Function` or jax function) is called through one of these, so
the conversion, the device and the way gradients are taken are the same for all of them. The
frameworks are imported only when one of these is made.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np

from convgrad.errors import Parameter, SettingError
from convgrad.adapters.protocol import DoubleBackward
from convgrad.frameworks.extras import require

__all__ = ["DEFAULT_DEVICE", "TorchArrays", "JaxArrays", "Cotangents", "Tangents"]

DEFAULT_DEVICE = "cpu"
# A cotangent for each of dX, dK and db (None: that gradient is left out).
Cotangents = Sequence[Optional[np.ndarray]]
Tangents = Sequence[Optional[np.ndarray]]  # a tangent for each of x, w and b (None: not moved)


class TorchArrays:
    """Tensors on `device` (e.g. "cpu", "cuda", "cuda:1", "mps") in the arrays' own dtype."""

    def __init__(self, device: str = DEFAULT_DEVICE) -> None:
        torch = require("torch", "torch")
        self.torch = torch
        self.device = _torch_device(torch, device)
        # torch imports much of itself on the first backward; done here, in the process that
        # forks every case's child, instead of once per case (0.6 s each).
        one = np.ones((1, 1, 1))
        self.gradients(torch.nn.functional.conv1d, one, (one, one))

    def tensor(self, array: np.ndarray, *, grad: bool = False) -> Any:
        tensor = self.torch.from_numpy(array).to(self.device)  # strided views as they are
        return tensor.requires_grad_(True) if grad else tensor

    def numpy(self, tensor: Any) -> Any:
        """A tensor as a NumPy array; anything else (None, a wrong type) as it is, for the guard to name."""
        if isinstance(tensor, self.torch.Tensor):
            return tensor.detach().cpu().numpy()
        return tensor

    def value(self, call: Callable[..., Any], arrays: Sequence[np.ndarray]) -> Any:
        """call(*tensors) without autograd, as NumPy."""
        with self.torch.no_grad(), self.one_thread():
            return self.numpy(call(*(self.tensor(a) for a in arrays)))

    def gradients(self, call: Callable[..., Any], dy: np.ndarray, arrays: Sequence[np.ndarray]) -> tuple[Any, ...]:
        """The gradients of sum(dy * call(*arrays)) with respect to each array, by autograd: the
        backward the layer defines, not convgrad's. A gradient autograd never reached is None."""
        leaves = [self.tensor(a, grad=True) for a in arrays]
        with self.one_thread():
            y = call(*leaves)
            if not isinstance(y, self.torch.Tensor):
                return (self.numpy(y),) * len(leaves)  # the guard names what came back instead
            y.backward(self.tensor(dy))
        return tuple(self.numpy(leaf.grad) for leaf in leaves)

    def backward_derivatives(
        self, call: Callable[..., Any], dy: np.ndarray, arrays: Sequence[np.ndarray], cotangents: Cotangents
    ) -> Any:
        """The layer's backward differentiated by autograd (create_graph): a DoubleBackward. A
        gradient that carries no autograd history (computed outside autograd) has no path at all."""
        torch = self.torch
        leaves = [self.tensor(a, grad=True) for a in arrays]
        upstream = self.tensor(dy, grad=True)
        inputs = [*leaves, upstream]
        with self.one_thread(), torch.enable_grad():
            y = call(*leaves)
            if not isinstance(y, torch.Tensor):
                return self.numpy(y)  # the guard names what came back instead
            gradients = torch.autograd.grad(y, leaves, upstream, create_graph=True, allow_unused=True)
            connected = []  # (gradient, its cotangent) autograd can differentiate
            per_gradient: list[Optional[tuple[Any, ...]]] = []
            for gradient, cotangent in zip(gradients, cotangents):
                if cotangent is None:
                    per_gradient.append(None)
                elif gradient is None or not gradient.requires_grad:
                    per_gradient.append((None,) * len(inputs))
                elif type(gradient.grad_fn).__name__ in ("Error", "DelayedError"):  # what once_differentiable leaves
                    raise RuntimeError("the backward is marked @once_differentiable")
                else:
                    connected.append((gradient, self.tensor(cotangent)))
                    found = torch.autograd.grad(gradient, inputs, connected[-1][1], retain_graph=True, allow_unused=True)
                    per_gradient.append(tuple(None if d is None else self.numpy(d) for d in found))
            together: tuple[Any, ...] = (None,) * len(inputs)
            if connected:
                found = torch.autograd.grad([g for g, _ in connected], inputs, [t for _, t in connected], allow_unused=True)
                together = tuple(None if d is None else self.numpy(d) for d in found)
        recorded = tuple(None if g is None else self.numpy(g) for g in gradients)
        return DoubleBackward(recorded, tuple(per_gradient), together)

    def jvp(self, call: Callable[..., Any], arrays: Sequence[np.ndarray], tangents: Tangents) -> Any:
        """(the output, its forward-mode derivative along `tangents`; None when it carries none), by
        torch's forward AD (dual tensors), which runs an autograd.Function's own jvp."""
        forward_ad = self.torch.autograd.forward_ad
        with self.one_thread(), forward_ad.dual_level():
            duals = [
                self.tensor(a) if t is None else forward_ad.make_dual(self.tensor(a), self.tensor(t))
                for a, t in zip(arrays, tangents)
            ]
            y = call(*duals)
            if not isinstance(y, self.torch.Tensor):
                return y
            primal, tangent = forward_ad.unpack_dual(y)
            return self.numpy(primal), None if tangent is None else self.numpy(tangent)

    @contextlib.contextmanager
    def one_thread(self) -> Iterator[None]:
        """A check makes thousands of calls on small tensors, where torch's worker threads only spin:
        on two cores they made the standard suite 12x slower. The caller's setting is restored."""
        before = self.torch.get_num_threads()
        self.torch.set_num_threads(1)
        try:
            yield
        finally:
            self.torch.set_num_threads(before)


class JaxArrays:
    """jax arrays on `device` ("cpu", "cuda", "gpu", "tpu"), with float64 enabled so float64 checks mean it.

    jax starts its backend's threads when it first looks at a device, and a process forked after
    that may deadlock: the device is found on first use, in the case's own process. Only a device
    other than the CPU is looked up beforehand, in a throwaway process, so a missing GPU is bad input."""

    def __init__(self, device: str = DEFAULT_DEVICE) -> None:
        jax = require("jax", "jax")
        # Without x64, jax silently computes float64 inputs in float32 and every check would fail.
        jax.config.update("jax_enable_x64", True)
        self.jax = jax
        self._device_name = device
        self._device: Any = None
        if device.partition(":")[0] != "cpu":
            _check_jax_device(device)

    @property
    def device(self) -> Any:
        if self._device is None:
            platform, _, index = self._device_name.partition(":")
            self._device = self.jax.devices(platform)[int(index or 0)]
        return self._device

    def array(self, array: np.ndarray) -> Any:
        return self.jax.device_put(np.ascontiguousarray(array), self.device)

    def numpy(self, value: Any) -> Any:
        """A jax array as a NumPy array; anything else as it is, for the guard to name."""
        return np.asarray(value) if isinstance(value, self.jax.Array) else value

    def value(self, function: Callable[..., Any], arrays: Sequence[np.ndarray]) -> Any:
        return self.numpy(function(*(self.array(a) for a in arrays)))

    def gradients(self, function: Callable[..., Any], dy: np.ndarray, arrays: Sequence[np.ndarray]) -> tuple[Any, ...]:
        """The vjp of `function` at `arrays` applied to dy: a custom_vjp's own bwd, or jax's derivative."""
        y, pullback = self.jax.vjp(function, *(self.array(a) for a in arrays))
        if not isinstance(y, self.jax.Array):
            return (self.numpy(y),) * len(arrays)
        return tuple(self.numpy(g) for g in pullback(self.array(dy)))

    def backward_derivatives(
        self, function: Callable[..., Any], dy: np.ndarray, arrays: Sequence[np.ndarray], cotangents: Cotangents
    ) -> Any:
        """As TorchArrays.backward_derivatives, by jax.vjp of the vjp: a custom_vjp's bwd is
        differentiated as it is written (always a path: jax gives zeros where nothing depends)."""
        jax = self.jax

        def backward(x: Any, w: Any, b: Any, upstream: Any) -> Any:
            y, pullback = jax.vjp(function, x, w, b)
            return pullback(upstream) if isinstance(y, jax.Array) else y

        primals = [self.array(a) for a in (*arrays, dy)]
        gradients, pullback = jax.vjp(backward, *primals)
        if not isinstance(gradients, tuple):
            return self.numpy(gradients)

        def derivatives(chosen: Sequence[int]) -> tuple[Any, ...]:
            moved = tuple(
                jax.numpy.zeros_like(g) if i not in chosen or t is None else self.array(t)
                for i, (g, t) in enumerate(zip(gradients, cotangents))
            )
            return tuple(self.numpy(d) for d in pullback(moved))

        given = [i for i, t in enumerate(cotangents) if t is not None]
        per_gradient = tuple(derivatives([i]) if i in given else None for i in range(len(gradients)))
        return DoubleBackward(tuple(self.numpy(g) for g in gradients), per_gradient, derivatives(given))

    def jvp(self, function: Callable[..., Any], arrays: Sequence[np.ndarray], tangents: Tangents) -> Any:
        """(the output, its forward-mode derivative along `tangents`; None: zero), by jax.jvp, which
        runs a custom_jvp's own rule."""
        primals = tuple(self.array(a) for a in arrays)
        moved = tuple(
            self.jax.numpy.zeros_like(p) if t is None else self.array(np.asarray(t, dtype=a.dtype))
            for p, a, t in zip(primals, arrays, tangents)
        )
        output, tangent = self.jax.jvp(function, primals, moved)
        return self.numpy(output), self.numpy(tangent)


def _torch_device(torch: Any, device: str) -> Any:
    try:
        placed = torch.device(device)
        torch.empty(0, device=placed)
    except (RuntimeError, AssertionError, ValueError) as error:
        raise SettingError(
            Parameter("device", device), f" is not available to torch here ({_first_line(error)}); use ",
            Parameter("device", "cpu"), " or a device this machine has",
        ) from None
    return placed


def _check_jax_device(device: str) -> None:
    import subprocess
    import sys

    platform, _, index = device.partition(":")
    probe = f"import jax; jax.devices({platform!r})[{int(index or 0) if index.isdigit() else -1}]"
    found = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    if found.returncode != 0 or not index.isdigit() and index:
        lines = [line for line in found.stderr.strip().splitlines() if line.strip()] or ["no such device"]
        raise SettingError(
            Parameter("device", device), f" is not available to jax here ({lines[-1]}); use ",
            Parameter("device", "cpu"), " or a device this machine has",
        )


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
