"""The exceptions convgrad raises for input the user has to fix (the CLI exits 2 on them).

A message is data: a sequence of parts, each plain text (shown as it is, never parsed, so a
user's braces, quotes or brackets need no escaping) or a `Parameter`, the parameter it is about
and maybe the value it was given. Each audience renders a parameter in its own words, by one
function, `render_message`: the Python API as `step=-1`, the command line as `--step -1`, a suite
file as `step = -1`. So a Python caller never reads about a flag it did not type, and a suite
file's author reads the keys of the file.

    SettingError(Parameter("step", -1), " must be greater than 0; use ", Parameter("step", 0.5))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Union

__all__ = [
    "ConvgradError",
    "GeometryError",
    "SettingError",
    "ImplementationError",
    "ConfigError",
    "Parameter",
    "Part",
    "Audience",
    "PYTHON",
    "render_message",
]


@dataclass(frozen=True)
class Parameter:
    """A parameter a message names (`step`), with the value it was given when there is one (-1).

    The value is kept as text (`str(value)`), so an error travels between processes whatever
    object it was made from."""

    name: str
    value: object = None

    def __post_init__(self) -> None:
        if self.value is not None and not isinstance(self.value, str):
            object.__setattr__(self, "value", str(self.value))


# One part of a message: plain text, or a parameter its audience names.
Part = Union[str, Parameter]


@dataclass(frozen=True)
class Audience:
    """How one audience spells a parameter alone (`name`) and with its value (`assign`)."""

    name: Callable[[str], str]
    assign: Callable[[str, str], str]


# Python callers read the keyword arguments they pass.
PYTHON = Audience(name=lambda parameter: parameter, assign=lambda parameter, value: f"{parameter}={value}")


def render_message(parts: Iterable[Part], audience: Audience) -> str:
    """The parts in `audience`'s words, on one line (whitespace collapsed) whatever text they hold."""
    words = (
        part if isinstance(part, str)
        else audience.name(part.name) if part.value is None
        else audience.assign(part.name, str(part.value))
        for part in parts
    )
    return " ".join("".join(words).split())


class ConvgradError(Exception):
    """Input the user has to fix. The message is one line, names the parameter and the fix."""

    def __init__(self, *parts: Part, parameter: str | None = None) -> None:
        self.parts: tuple[Part, ...] = tuple(p if isinstance(p, Parameter) else str(p) for p in parts)
        self._parameter = parameter
        super().__init__(self.render(PYTHON))

    def __reduce__(self) -> tuple[Any, ...]:  # keep the parts and `parameter` across processes
        return (_rebuild, (type(self), self.parts, self._parameter))

    @property
    def parameters(self) -> tuple[str, ...]:
        """The parameters the message names, in order."""
        return tuple(dict.fromkeys(part.name for part in self.parts if isinstance(part, Parameter)))

    @property
    def parameter(self) -> str | None:
        """The parameter at fault: the one given, else the first the message names."""
        return self._parameter or (self.parameters[0] if self.parameters else None)

    def render(self, audience: Audience = PYTHON) -> str:
        """The message in `audience`'s words, on one line whatever text the user gave."""
        return render_message(self.parts, audience)

    def __str__(self) -> str:
        return self.render(PYTHON)


def _rebuild(kind: type[ConvgradError], parts: tuple[Part, ...], parameter: str | None) -> ConvgradError:
    return kind(*parts, parameter=parameter)


class GeometryError(ConvgradError):
    """A layer geometry that cannot exist, or that convgrad refuses to check."""


class SettingError(ConvgradError):
    """A check setting (tolerance, step, method, ...) that is out of range."""


class ImplementationError(ConvgradError):
    """An implementation that could not be loaded or does not have forward and backward."""


class ConfigError(ConvgradError):
    """A suite file that cannot be read or holds an unknown key or a bad value."""
