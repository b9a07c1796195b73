"""Mistakes that show only with some settings, for `convgrad fuzz` to shrink down to those settings.

Each is the zoo's tap-loop layer (layers.py) with one mistake that only some settings reach, the
way such code grows: a line copied from elsewhere, or a path written for one case and never
checked against the others.

- `DkPaddedWithEdgeValues`: dK pads the input with its border values (np.pad's mode="edge")
  instead of zeros; forward pads right. Wrong only with padding.
- `StridedPathForgetsDilation`: dX has a separate path for strided layers, written before the
  layer took dilations, which scatters as if there were none. Wrong only when a layer is strided
  and dilated together (a dilated layer with stride 1 takes the general path).
"""

from __future__ import annotations

import numpy as np

from layers import TapLoopConv, _window


class DkPaddedWithEdgeValues(TapLoopConv):
    def padded_for_weight_gradient(self, x, padding):
        return np.pad(x, [(0, 0), (0, 0), *((p, p) for p in padding)], mode="edge")  # forward pads with zeros


class StridedPathForgetsDilation(TapLoopConv):
    def scatter_window(self, tap, out, stride, dilation):
        if any(s > 1 for s in stride):  # the strided path: taps one apart, as before dilations
            return _window(tap, out, stride, [1] * len(tap))
        return _window(tap, out, stride, dilation)
