"""The public API is typed for a user's type checker: `convgrad.<name>` is the real object to mypy
(and loaded on first use at run time), and the pytest helpers take typed keywords, so a misspelt
option is an error before anything runs."""

from __future__ import annotations

import ast
import inspect
import re
import subprocess
import sys
import textwrap
import typing

import pytest

import convgrad
from convgrad import testing
from convgrad.adapters.loading import as_implementation
from convgrad.geometry import resolve_geometry
from convgrad.options import CheckOptions
from processes import convgrad_env

NOT_OFFERED = {"scale"}  # CheckOptions fields the pytest helpers do not take


def _type_checking_names() -> set[str]:
    """The names `convgrad/__init__.py` imports for type checkers."""
    with open(inspect.getfile(convgrad), encoding="utf-8") as source:
        tree = ast.parse(source.read())
    guarded = [n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", None) == "TYPE_CHECKING"]
    return {alias.asname or alias.name for block in guarded for node in ast.walk(block)
            if isinstance(node, ast.ImportFrom) for alias in node.names}


def test_every_public_name_is_imported_for_type_checkers_and_loaded_on_first_use():
    public = set(convgrad.__all__) - {"__version__"}
    assert public == set(convgrad._PUBLIC) == _type_checking_names()
    for name in sorted(public):
        module = sys.modules.get(convgrad._PUBLIC[name]) or __import__(convgrad._PUBLIC[name], fromlist=[name])
        assert getattr(convgrad, name) is getattr(module, name)
    with pytest.raises(AttributeError, match="no attribute 'CheckOption'"):
        convgrad.CheckOption  # type: ignore[attr-defined]


def test_importing_convgrad_and_its_command_line_loads_no_numpy():
    probe = (
        "import sys, convgrad, convgrad.cli\n"
        "print(sorted(m for m in ('numpy', 'rich.console', 'convgrad.report') if m in sys.modules))\n"
        "convgrad.CaseReport\n"
        "print('numpy' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, env=convgrad_env())
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["[]", "True"]  # loaded when a name that needs it is first used


def test_the_helpers_keywords_have_the_types_of_the_settings_they_set():
    """One home per setting: each keyword of `check` is typed as the parameter or field it fills
    (`resolve_geometry`, `CheckOptions`, `as_implementation`), and every CheckOptions field is
    offered unless it is listed as not offered."""
    keywords = typing.get_type_hints(testing.CheckKeywords)
    options = typing.get_type_hints(testing.CaseOptions)
    assert set(options) < set(keywords) and set(keywords) - set(options) == set(testing._GEOMETRY)
    targets = {
        **{key: typing.get_type_hints(resolve_geometry)[key] for key in testing._GEOMETRY},
        **{key: typing.get_type_hints(as_implementation)[parameter] for key, parameter in testing._LOADING.items()},
        "name": typing.Optional[str],
    }
    fields = typing.get_type_hints(CheckOptions)
    renamed = {testing._CHECKING.get(key, key): key for key in set(keywords) - set(targets)}
    assert set(renamed) == set(fields) - NOT_OFFERED
    targets.update({key: fields[field] for field, key in renamed.items()})
    assert {key: keywords[key] for key in targets} == targets


@pytest.mark.parametrize("call", [
    lambda: convgrad.check(in_shape="3x6x6", kernel_shape="4x3x3x3", sed=3),
    lambda: testing.assert_conv_gradients(in_shape="3x6x6", kernel_shape="4x3x3x3", sed=3),
    lambda: testing.assert_case(None, sed=3),
], ids=["check", "assert_conv_gradients", "assert_case"])
def test_an_unknown_keyword_is_refused_before_anything_runs(call):
    with pytest.raises(TypeError, match="unexpected keyword argument 'sed'"):
        call()


RIGHT = """
    import convgrad
    from convgrad.suite import SuiteCase
    from convgrad.testing import assert_case, assert_conv_gradients


    def my_report() -> convgrad.CaseReport:
        options = convgrad.CheckOptions(seed=3, method="dense", rtol=1e-6)
        geometry = convgrad.resolve_geometry("3x6x6", "4x3x3x3", stride=2)
        return convgrad.run_case(geometry, convgrad.as_implementation("reference"), options)


    def test_my_conv() -> None:
        report = convgrad.check("reference", in_shape=(3, 6, 6), kernel_shape="4x3x3x3", padding=1, timeout=60)
        passed: bool = report.passed
        errors: list[float | None] = [t.max_rel_error for t in report.tensors]
        print(passed, errors, report.implementation)
        assert_conv_gradients("my_conv.py", in_shape="3x9x9", kernel_shape=(4, 3, 3, 3), stride=2, method="sample")


    def test_my_case(case: SuiteCase) -> None:
        assert_case(case, "my_conv.py", seed=1, timeout=120, strict=True)
"""

WRONG = """
    import convgrad
    from convgrad.suite import SuiteCase
    from convgrad.testing import assert_case, assert_conv_gradients


    def test_my_conv(case: SuiteCase) -> None:
        convgrad.CheckOptions(sed=3)
        assert_conv_gradients("my_conv.py", in_shape="3x9x9", kernel_shape="4x3x3x3", sed=3)
        assert_case(case, "my_conv.py", sed=3)
        convgrad.check("my_conv.py", in_shape="3x9x9", kernel_shape="4x3x3x3", method="fastest")
"""


@pytest.mark.slow
def test_mypy_strict_accepts_the_public_api_and_rejects_a_misspelt_option(tmp_path):
    """mypy on a user's files, reading the installed convgrad (py.typed) as a user's would."""
    (tmp_path / "right.py").write_text(textwrap.dedent(RIGHT))
    (tmp_path / "wrong.py").write_text(textwrap.dedent(WRONG))
    (tmp_path / "mypy.ini").write_text("[mypy]\n")  # neither this checkout's settings nor the user's
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--config-file", "mypy.ini", "--cache-dir", str(tmp_path / "cache"),
         "--no-error-summary", "right.py", "wrong.py"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    output = done.stdout + done.stderr
    assert "convgrad" not in re.findall(r"Cannot find implementation or library stub for module named \"(\w+)", output)
    errors = [line for line in output.splitlines() if ": error:" in line]
    assert not [line for line in errors if line.startswith("right.py")], output
    reported = {int(line.split(":")[1]): line for line in errors if line.startswith("wrong.py")}
    source = (tmp_path / "wrong.py").read_text().splitlines()
    wrong = {number: text for number, text in enumerate(source, start=1) if "sed=3" in text or "fastest" in text}
    assert sorted(reported) == sorted(wrong), output
    for number, text in wrong.items():
        function = re.findall(r"(\w+)\(", text)[-1]
        mistake = 'keyword argument "sed"' if "sed=3" in text else 'Argument "method" to "check" has incompatible type'
        assert mistake in reported[number] and f'"{function}"' in reported[number], reported[number]
    assert done.returncode == 1
