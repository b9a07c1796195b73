"""Suites of cases, and how they are read from a TOML file: top-level defaults, `[[case]]` tables.

Keys: in, kernels, batch, stride, padding, dilation, groups, dtype, and name (a case's name; at
the top level, the suite's). A file without `[[case]]` tables is one case. At the top level,
`domain_pairs = true` asks for every pair of settings within the layer's own domain: cases are
added where the layer cannot run the file's (run/domain.py). Unknown keys and bad
values are a `ConfigError` naming the file, the key, the case and the closest valid name, in the
file's own words (a geometry error says `kernels = "5x3x3x3"`, not a command-line flag).

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
import json
import os
from dataclasses import dataclass
from typing import Any

from convgrad.errors import Audience, ConfigError, ConvgradError
from convgrad.keys import unknown_key
from convgrad.geometry import DTYPES, LayerGeometry, format_shape, resolve_geometry

__all__ = ["SuiteCase", "Suite", "load_suite", "single_case_suite", "case_table", "GEOMETRY_KEYS", "TOML"]

# Each is a key of a [[case]] table and a top-level default.
GEOMETRY_KEYS = ("in", "kernels", "batch", "stride", "padding", "dilation", "groups", "dtype")
# The file's names for the parameters of resolve_geometry that differ from them.
_KEY_OF = {"in_shape": "in", "kernel_shape": "kernels"}


def _toml_value(value: str) -> str:
    """A value as it would be written in the file: numbers bare, anything else quoted."""
    try:
        float(value)
        return value
    except ValueError:
        return '"' + value.strip("'\"") + '"'


# How errors name parameters for the author of a suite file.
TOML = Audience(
    name=lambda parameter: _KEY_OF.get(parameter, parameter),
    assign=lambda parameter, value: f"{_KEY_OF.get(parameter, parameter)} = {_toml_value(value)}",
)
_CASE_KEYS = ("name", *GEOMETRY_KEYS)
_TOP_KEYS = ("name", "case", "domain_pairs", *GEOMETRY_KEYS)
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
    "stride": '2 or "2x1"', "padding": '1, "1x0", "0,1" (before,after) or "same"', "dilation": '2 or "2x1"', "dtype": '"float64"',
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
    domain_pairs: bool = False  # cover every pair of settings within the layer's own domain


def load_suite(path: str) -> Suite:
    """Read and validate a suite file; every problem is a one-line ConfigError naming the fix."""
    import tomllib

    if os.path.isdir(path):
        raise ConfigError(f"{path} is a folder; give a suite file (.toml), such as configs/standard.toml")
    if not os.path.isfile(path):
        raise ConfigError(f"{path}: no such file; check the path (it is relative to {os.getcwd()})")
    try:
        with open(path, "rb") as handle:
            document = tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML: {error}; fix the file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path} cannot be read: {error}") from None

    _check_keys(document, _TOP_KEYS, path, "at the top level")
    defaults = {k: v for k, v in document.items() if k in GEOMETRY_KEYS}
    for key, value in defaults.items():
        _check_value(key, value, path, "at the top level")
    suite_name = document.get("name", os.path.splitext(os.path.basename(path))[0])
    if not isinstance(suite_name, str):
        raise ConfigError(f"{path}: name at the top level must be text, like name = \"my layers\"")

    domain_pairs = document.get("domain_pairs", False)
    if not isinstance(domain_pairs, bool):
        raise ConfigError(f"{path}: domain_pairs at the top level must be true or false, like domain_pairs = true")

    tables = document.get("case")
    if tables is None:
        tables = [{}]  # a file of top-level settings alone is one case
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ConfigError(f"{path}: 'case' must be a list of [[case]] tables, one per case")
    if not tables:
        raise ConfigError(f"{path} has no cases; add a [[case]] table with in and kernels")

    cases: list[SuiteCase] = []
    for number, table in enumerate(tables, start=1):
        where = f"in case {number}" + (f" ({table['name']!r})" if isinstance(table.get("name"), str) else "")
        _check_keys(table, _CASE_KEYS, path, where)
        for key, value in table.items():
            _check_value(key, value, path, where)
        settings = {**defaults, **{k: v for k, v in table.items() if k != "name"}}
        geometry = _geometry(settings, path, where)
        name = table.get("name") or f"case {number}: {geometry.brief()}"
        earlier = next((n for n, case in enumerate(cases, start=1) if case.name == name), None)
        if earlier is not None:  # reports, groups and JUnit name cases: two of one name cannot be told apart
            raise ConfigError(
                f"{path}: case {number} is named ", repr(name), f" like case {earlier}; give each case its own name"
            )
        cases.append(SuiteCase(name=name, geometry=geometry))
    return Suite(name=suite_name, cases=tuple(cases), domain_pairs=domain_pairs)


def _check_keys(table: dict[str, Any], valid: tuple[str, ...], path: str, where: str) -> None:
    for key in table:
        if key not in valid:
            raise ConfigError(f"{path}: {unknown_key(key, valid, where)}")


def _check_value(key: str, value: Any, path: str, where: str) -> None:
    types = _TYPES[key]
    if isinstance(value, bool) or not isinstance(value, types):
        raise ConfigError(
            f"{path}: {key} = {_toml(value)} {where} is not a valid {key}; "
            f"give e.g. {key} = {_EXAMPLES[key]}"
        )
    if key == "dtype" and value not in DTYPES:
        close = difflib.get_close_matches(str(value), DTYPES, n=1, cutoff=0.3)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(
            f"{path}: dtype = {_toml(value)} {where} is not supported; {hint}use {' or '.join(DTYPES)}"
        )


def _geometry(settings: dict[str, Any], path: str, where: str) -> LayerGeometry:
    for key in ("in", "kernels"):
        if key not in settings:
            raise ConfigError(
                f"{path}: no '{key}' {where}; set {key} = {_EXAMPLES[key]} in the case "
                "or at the top level"
            )
    try:
        return resolve_geometry(
            settings["in"],
            settings["kernels"],
            **{k: settings[k] for k in GEOMETRY_KEYS[2:] if k in settings},
        )
    except ConvgradError as error:  # in the file's own words: keys, not flags or keywords
        raise ConfigError(f"{path} {where}: {error.render(TOML)}", parameter=error.parameter) from None


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if not isinstance(value, str) else f'"{value}"'


def single_case_suite(geometry: LayerGeometry, name: str = "convgrad check") -> Suite:
    """A suite of one case, e.g. the one given on the command line."""
    return Suite(name=name, cases=(SuiteCase(name=name, geometry=geometry),))


def case_table(geometry: LayerGeometry, name: str) -> str:
    """`geometry` as a `[[case]]` table to paste into a suite file; settings at their defaults are left out."""
    lines = ["[[case]]", f"name = {json.dumps(name)}", f'in = "{format_shape(geometry.in_shape)}"',
             f'kernels = "{format_shape(geometry.kernel_shape)}"']
    lines += [f"{key} = {_toml_value(value)}" for key, value in geometry.changed_settings().items()]
    return "\n".join(lines)
