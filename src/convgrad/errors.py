"""The exceptions convgrad raises for input the user has to fix (the CLI exits 2 on them)."""

from __future__ import annotations

__all__ = ["ConvgradError", "GeometryError", "SettingError", "ImplementationError", "ConfigError"]


class ConvgradError(Exception):
    """Input the user has to fix. The message is one line and names the fix."""


class GeometryError(ConvgradError):
    """A layer geometry that cannot exist, or that convgrad refuses to check."""


class SettingError(ConvgradError):
    """A check setting (tolerance, step, method, ...) that is out of range."""


class ImplementationError(ConvgradError):
    """An implementation (--impl) that could not be loaded or does not have forward and backward."""


class ConfigError(ConvgradError):
    """A suite file (--config) that cannot be read or holds an unknown key or a bad value."""
