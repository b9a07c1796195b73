"""Suites of cases in a TOML file (`--config`): top-level defaults, then `[[case]]` tables.

Keys are the CLI's own names: in, kernels, batch, stride, padding, dilation, groups, dtype, and
name (a case's name; at the top level, the suite's). A file without `[[case]]` tables is one case.
Unknown keys and bad values are a `ConfigError` naming the key, the case and the closest valid name.

    name = "my layers"
    dtype = "float64"          # a default for every case below
    [[case]]
    name = "strided"
    in = "3x9x9"
    kernels = "4x3x3x3"
    stride = 2
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from typing import Any, Optional

from convgrad.errors import ConfigError, ConvgradError
from convgrad.geometry import DTYPES, LayerGeometry, resolve_geometry

__all__ = ["SuiteCase", "Suite", "load_suite", "suite_from_geometry", "GEOMETRY_KEYS", "describe_settings"]

# In the order of the CLI's flags; each is also a key of a [[case]] table and a top-level default.
GEOMETRY_KEYS = ("in", "kernels", "batch", "stride", "padding", "dilation", "groups", "dtype")
_CASE_KEYS = ("name", *GEOMETRY_KEYS)
_TOP_KEYS = ("name", "case", *GEOMETRY_KEYS)
_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "in": (str, list),
    "kernels": (str, list),
    "batch": (int,),
    "groups": (int,),
    "stride": (int, str, list),
    "padding": (int, str, list),
    "dilation": (int, str, list),
    "dtype": (str,),
}
_EXAMPLES = {
    "name": '"strided"', "in": '"3x20x20"', "kernels": '"5x3x3x3"', "batch": "2", "groups": "1",
    "stride": '2 or "2x1"', "padding": '1, "1x0" or "same"', "dilation": '2 or "2x1"', "dtype": '"float64"',
}


@dataclass(frozen=True)
class SuiteCase:
    """One named layer to check."""

    name: str
    geometry: LayerGeometry


@dataclass(frozen=True)
class Suite:
    name: str
    cases: tuple[SuiteCase, ...]


def load_suite(path: str) -> Suite:
    """Read and validate a suite file; every problem is a one-line ConfigError naming the fix."""
    try:
        import tomllib
    except ImportError:  # pragma: no cover - Python 3.10
        raise ConfigError("--config needs Python 3.11 or newer (tomllib)") from None
    if os.path.isdir(path):
        raise ConfigError(f"--config {path} is a folder; give a .toml file, such as configs/standard.toml")
    if not os.path.isfile(path):
        raise ConfigError(f"--config {path}: no such file; check the path (it is relative to {os.getcwd()})")
    try:
        with open(path, "rb") as handle:
            document = tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"--config {path} is not valid TOML: {error}; fix the file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"--config {path} cannot be read: {error}") from None

    _check_keys(document, _TOP_KEYS, path, "at the top level")
    defaults = {k: v for k, v in document.items() if k in GEOMETRY_KEYS}
    for key, value in defaults.items():
        _check_value(key, value, path, "at the top level")
    suite_name = document.get("name", os.path.splitext(os.path.basename(path))[0])
    if not isinstance(suite_name, str):
        raise ConfigError(f"--config {path}: name at the top level must be text, like name = \"my layers\"")

    tables = document.get("case")
    if tables is None:
        tables = [{}]  # a file of top-level settings alone is one case
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ConfigError(f"--config {path}: 'case' must be a list of [[case]] tables, one per case")
    if not tables:
        raise ConfigError(f"--config {path} has no cases; add a [[case]] table with in and kernels")

    cases = []
    for number, table in enumerate(tables, start=1):
        where = f"in case {number}" + (f" ({table['name']!r})" if isinstance(table.get("name"), str) else "")
        _check_keys(table, _CASE_KEYS, path, where)
        for key, value in table.items():
            _check_value(key, value, path, where)
        settings = {**defaults, **{k: v for k, v in table.items() if k != "name"}}
        geometry = _geometry(settings, path, where)
        cases.append(SuiteCase(name=table.get("name") or _default_name(number, geometry), geometry=geometry))
    return Suite(name=suite_name, cases=tuple(cases))


def _check_keys(table: dict[str, Any], valid: tuple[str, ...], path: str, where: str) -> None:
    for key in table:
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(
                f"--config {path}: unknown key {key!r} {where}; {hint}valid keys: {', '.join(valid)}"
            )


def _check_value(key: str, value: Any, path: str, where: str) -> None:
    types = _TYPES[key]
    if isinstance(value, bool) or not isinstance(value, types):
        raise ConfigError(
            f"--config {path}: {key} = {_toml(value)} {where} is not a valid {key}; give e.g. "
            f"{key} = {_EXAMPLES[key]}"
        )
    if key == "dtype" and value not in DTYPES:
        close = difflib.get_close_matches(value, DTYPES, n=1, cutoff=0.3)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(
            f"--config {path}: dtype = {_toml(value)} {where} is not supported; {hint}use {' or '.join(DTYPES)}"
        )


def _geometry(settings: dict[str, Any], path: str, where: str) -> LayerGeometry:
    for key in ("in", "kernels"):
        if key not in settings:
            raise ConfigError(
                f"--config {path}: no '{key}' {where}; set {key} = {_EXAMPLES[key]} in the case or at the top level"
            )
    try:
        return resolve_geometry(
            settings["in"],
            settings["kernels"],
            **{k: settings[k] for k in GEOMETRY_KEYS[2:] if k in settings},
        )
    except ConvgradError as error:
        raise ConfigError(f"--config {path} {where}: {error}") from None


def describe_settings(geometry: LayerGeometry) -> str:
    """Compact and one line, e.g. 'N2 3x6x7 * 4x3x3x3 s2 p1' (stride, padding, dilation, groups).

    Settings at their defaults are left out.
    """
    parts = [f"N{geometry.batch}" if geometry.batch > 1 else "", _joined(geometry.in_shape), "*", _joined(geometry.kernel_shape)]
    for label, values, neutral in (
        ("s", geometry.stride, 1),
        ("p", geometry.padding, 0),
        ("d", geometry.dilation, 1),
    ):
        if any(v != neutral for v in values):
            parts.append(f"{label}{values[0] if len(set(values)) == 1 else _joined(values)}")
    if geometry.groups > 1:
        parts.append(f"g{geometry.groups}")
    if geometry.dtype != "float64":
        parts.append(geometry.dtype)
    return " ".join(p for p in parts if p)


def _default_name(number: int, geometry: LayerGeometry) -> str:
    return f"case {number}: {describe_settings(geometry)}"


def _joined(values: tuple[int, ...]) -> str:
    return "x".join(str(v) for v in values)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if not isinstance(value, str) else f'"{value}"'


def suite_from_geometry(geometry: LayerGeometry, name: Optional[str] = None) -> Suite:
    """A suite of the one case given on the command line."""
    case = SuiteCase(name=name or "convgrad check", geometry=geometry)
    return Suite(name="convgrad check", cases=(case,))
