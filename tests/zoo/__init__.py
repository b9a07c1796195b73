"""The zoo: conv layers for testing the checker, every wrong one defined once, in layers.py.

layers.py holds one correct layer written by hand (`TapLoopConv`), each classic mistake as a
subclass of it, and `OneCoordinateOff`, the one way the tests put a single wrong number into a
gradient. Tests import them as `from zoo import layers`.

The other files are for the command line, which loads a layer from a file:

- one file per mistake (kernels_not_rotated.py, ...) exports a layer of layers.py as the module's
  forward and backward, so `convgrad check --impl tests/zoo/kernels_not_rotated.py` checks it. Each
  declares spatial_dims = (2,), as the course layers they stand for do, so that the standard suite
  also shows a 2-D-only layer's 1-D and 3-D cases being skipped, not failed.
- any class of layers.py also loads without a file of its own, as
  `--impl tests/zoo/layers.py:KernelsNotRotated`; `spec` builds that argument.
- student_conv.py is a correct layer in another calling style: plain module functions, 2-D only,
  written the way a course student would. It imports nothing from layers.py on purpose.
- torch_layers.py and jax_layers.py are the frameworks' own styles (an nn.Module, an
  autograd.Function, a custom_vjp), each correct layer next to one mistake made in it; they
  import torch or jax, so only tests that have them load these files.
"""

from __future__ import annotations

import os

FOLDER = os.path.dirname(os.path.abspath(__file__))


def spec(name: str) -> str:
    """The --impl argument for a zoo file ("kernels_not_rotated.py") or a class of layers.py."""
    return os.path.join(FOLDER, name) if name.endswith(".py") else f"{os.path.join(FOLDER, 'layers.py')}:{name}"
