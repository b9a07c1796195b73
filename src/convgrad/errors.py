"""The exceptions convgrad raises for input the user has to fix (the CLI exits 2 on them)."""

from __future__ import annotations

__all__ = ["ConvgradError", "GeometryError", "SettingError"]


class ConvgradError(Exception):
    """Input the user has to fix. The message is one line and names the fix."""


class GeometryError(ConvgradError):
    """A layer geometry that cannot exist, or that convgrad refuses to check."""


class SettingError(ConvgradError):
    """A check setting (tolerance, step, method, ...) that is out of range."""
