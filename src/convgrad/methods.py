"""The finite-difference methods a check can use, by name (no NumPy here: the CLI imports it).

auto        every coordinate, by the cheapest exact method (coloured, or dense for tiny tensors)
coloured    every coordinate; coordinates with disjoint receptive fields share a forward call
dense       every coordinate, one at a time (two forward calls each)
sample      --samples random coordinates per tensor, one at a time
projection  --samples random directions v per tensor: dy . (J v) against <analytical, v>
"""

from __future__ import annotations

from convgrad.errors import SettingError

__all__ = ["METHODS", "EXACT_METHODS", "DEFAULT_SAMPLES", "validate_method"]

METHODS = ("auto", "coloured", "dense", "sample", "projection")
EXACT_METHODS = ("auto", "coloured", "dense")  # every coordinate is checked
DEFAULT_SAMPLES = 64  # coordinates (sample) or directions (projection) per tensor


def validate_method(method: str, samples: int) -> None:
    """Raise SettingError for an unknown method or a sample count below 1."""
    if method not in METHODS:
        raise SettingError(f"--method {method!r} is not known; use one of {', '.join(METHODS)}")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise SettingError(f"--samples {samples!r} must be a whole number of 1 or more, such as 64")
