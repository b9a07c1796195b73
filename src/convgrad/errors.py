"""The exceptions convgrad raises for input the user has to fix (the CLI exits 2 on them).

A message names the parameter it is about as a field, `{step}` or `{step:-1}` (the parameter and
the value it was given), not as a flag. Each audience renders it in its own words: the Python API
as `step=-1`, the command line as `--step -1`, a suite file as `step = -1`. So a Python caller never
reads about a flag it did not type, and a suite file's author reads the keys of the file.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Any, Callable, Mapping

__all__ = [
    "ConvgradError",
    "GeometryError",
    "SettingError",
    "ImplementationError",
    "ConfigError",
    "Audience",
    "PYTHON",
    "literal",
    "named",
]


@dataclass(frozen=True)
class Audience:
    """How one audience spells a parameter alone (`name`) and with its value (`assign`)."""

    name: Callable[[str], str]
    assign: Callable[[str, str], str]


# Python callers read the keyword arguments they pass.
PYTHON = Audience(name=lambda parameter: parameter, assign=lambda parameter, value: f"{parameter}={value}")


def literal(text: object) -> str:
    """`text` for use inside a message template, where braces would otherwise start a field."""
    return str(text).replace("{", "{{").replace("}", "}}")


def named(parameter: str, value: object = None) -> str:
    """The field for `parameter` in a message template, with `value` if one is given."""
    if value is None:
        return "{" + parameter + "}"
    text = str(value).replace("{", "(").replace("}", ")")  # a value cannot hold braces
    return "{" + parameter + ":" + text + "}"


class _ParameterFormatter(string.Formatter):
    def __init__(self, audience: Audience) -> None:
        self._audience = audience

    def get_value(self, key: int | str, args: Any, kwargs: Mapping[str, Any]) -> Any:
        return str(key)

    def format_field(self, value: Any, format_spec: str) -> str:
        if format_spec:
            return self._audience.assign(value, format_spec)
        return self._audience.name(value)


class ConvgradError(Exception):
    """Input the user has to fix. The message is one line, names the parameter and the fix."""

    def __init__(self, template: str, *, parameter: str | None = None) -> None:
        super().__init__(template)
        self.template = template
        self._parameter = parameter

    def __reduce__(self) -> tuple[Any, ...]:  # keep `parameter` across processes
        return (_rebuild, (type(self), self.template, self._parameter))

    @property
    def parameters(self) -> tuple[str, ...]:
        """The parameters the message names, in order."""
        fields = (name for _, name, _, _ in string.Formatter().parse(self.template) if name)
        return tuple(dict.fromkeys(fields))

    @property
    def parameter(self) -> str | None:
        """The parameter at fault: the one given, else the first the message names."""
        return self._parameter or (self.parameters[0] if self.parameters else None)

    def render(self, audience: Audience = PYTHON) -> str:
        """The message in `audience`'s words, on one line whatever text the user gave."""
        return " ".join(_ParameterFormatter(audience).format(self.template).split())

    def __str__(self) -> str:
        return self.render(PYTHON)


def _rebuild(kind: type[ConvgradError], template: str, parameter: str | None) -> ConvgradError:
    return kind(template, parameter=parameter)


class GeometryError(ConvgradError):
    """A layer geometry that cannot exist, or that convgrad refuses to check."""


class SettingError(ConvgradError):
    """A check setting (tolerance, step, method, ...) that is out of range."""


class ImplementationError(ConvgradError):
    """An implementation that could not be loaded or does not have forward and backward."""


class ConfigError(ConvgradError):
    """A suite file that cannot be read or holds an unknown key or a bad value."""
