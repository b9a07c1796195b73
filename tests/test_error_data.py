"""A user's text reaches an error message as data: braces, quotes, brackets, percent signs and
newlines in a flag, a file name, a suite file, a declaration or a layer's own exception are shown
as typed (whitespace collapsed to one line), never read as a format field or as rich markup.

Every CLI row is bad input: exit 2 and one line naming the flag; through the API, `str(error)`
names the keyword instead.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Callable

import pytest
from click.testing import CliRunner, Result
from hypothesis import given
from hypothesis import strategies as st

from convgrad import check
from convgrad.cli import CLI, cli
from convgrad.errors import PYTHON, ConvgradError, Parameter, SettingError, render_message
from convgrad.options import CheckOptions, FuzzOptions
from convgrad.suite import TOML, load_suite

# Shown as typed, or inside repr() (no single quote: repr would escape it).
TEXT = '{x}}{ {0} {step:-1} [bold]b[/bold] [/y] 50% %s %(a)s "dq"'
# Shown as typed: also a single quote and a newline (collapsed to a space).
FULL = TEXT + " it's\nnext line"
# In a file name given to --impl (where a colon would start the name of an object in the file).
PATH = FULL.replace(":", "=")
# A layer's own exception: its first line is shown.
RAISED = TEXT + " it's"
LAYER = ["--in", "3x8x8", "--kernels", "2x3x3x3"]


def one_line(text: str) -> str:
    return " ".join(text.split())


def _files(folder: Path) -> dict[str, str]:
    """The layers, declarations and suite files the rows name, written into `folder`."""
    layer = "def forward(x, w, b):\n    pass\n\n\ndef backward(dy, x, w, b):\n    pass\n"
    written = {
        "layer": ("layer.py", layer),
        "raises": ("raises_at_import.py", f"raise RuntimeError({RAISED!r})\n"),
        "constructor": ("raises_in_init.py", "class Layer:\n    def __init__(self):\n"
                        f"        raise ValueError({TEXT!r})\n\n    def forward(self, x, w, b):\n        pass\n\n"
                        "    def backward(self, dy, x, w, b):\n        pass\n"),
        "declared_layout": ("declares_layout.py", f"CONVGRAD = {{'layout': {TEXT!r}}}\n\n" + layer),
        "declared_key": ("declares_key.py", f"CONVGRAD = {{{TEXT!r}: 1}}\n\n" + layer),
        "impl_config": ("decl{1}[bold]%s.toml", f"layout = {json.dumps(TEXT)}\n"),
        "suite_key": ("suite{1}[bold]%s.toml", f'[[case]]\nname = {json.dumps(TEXT)}\nin = "3x8x8"\n'
                      f'kernels = "2x3x3x3"\n{json.dumps(TEXT)} = 2\n'),
        "suite_stride": ("stride{1}.toml", f'[[case]]\nin = "3x8x8"\nkernels = "2x3x3x3"\nstride = {json.dumps(FULL)}\n'),
        "suite_dtype": ("dtype{1}.toml", f'dtype = {json.dumps(FULL)}\n[[case]]\nin = "3x8x8"\nkernels = "2x3x3x3"\n'),
    }
    paths = {}
    for key, (name, text) in written.items():
        (folder / name).write_text(text)
        paths[key] = str(folder / name)
    return paths


Row = Callable[[dict[str, str]], tuple[list[str], list[str]]]

# id -> the arguments (given the files) and what the one line must hold.
ROWS: dict[str, Row] = {
    "impl-attribute": lambda f: (["check", *LAYER, "--impl", f"{f['layer']}:{FULL}"],
                                 [f"--impl {f['layer']}:{one_line(FULL)}: there is no "]),
    "impl-missing-file": lambda f: (["check", *LAYER, "--impl", f"{f['layer']}{PATH}.py"],
                                    [f"--impl {one_line(f['layer'] + PATH)}.py: no such file"]),
    "impl-not-a-py-file": lambda f: (["check", *LAYER, "--impl", PATH], [f"--impl {one_line(PATH)}: give a .py file"]),
    "impl-raises-at-import": lambda f: (["check", *LAYER, "--impl", f["raises"]],
                                        [f"--impl {f['raises']} failed while importing: RuntimeError: {RAISED}"]),
    "impl-constructor-raises": lambda f: (["check", *LAYER, "--impl", f"{f['constructor']}:Layer"],
                                          [f"creating Layer() raised ValueError: {TEXT}", "point --impl at an instance"]),
    "declared-layout": lambda f: (["check", *LAYER, "--impl", f["declared_layout"]],
                                  [f"declares layout = {TEXT!r}", "CONVGRAD in declares_layout.py"]),
    "declared-unknown-key": lambda f: (["check", *LAYER, "--impl", f["declared_key"]], [f"has an unknown key {TEXT!r}"]),
    "impl-config-value": lambda f: (["check", *LAYER, "--impl", f["layer"], "--impl-config", f["impl_config"]],
                                    [f"{f['impl_config']} declares layout = {TEXT!r}"]),
    "impl-config-missing": lambda f: (["check", *LAYER, "--impl", f["layer"], "--impl-config", f["layer"] + FULL],
                                      [f"{one_line(f['layer'] + FULL)}: no such file; check --impl-config"]),
    "impl-path-missing": lambda f: (["check", *LAYER, "--impl", f["layer"], "--impl-path", "/nonexistent/" + FULL],
                                    [f"--impl-path /nonexistent/{one_line(FULL)}: no such folder"]),
    "device": lambda f: (["check", *LAYER, "--impl", f["layer"], "--device", FULL],
                         [f"--device {one_line(FULL)} applies to torch and jax layers", "drop --device"]),
    "in": lambda f: (["check", "--in", "3x" + FULL, "--kernels", "2x3x3x3"], [f"--in 3x{one_line(FULL)}: "]),
    "in-newline": lambda f: (["check", "--in", "3x8\n" + FULL, "--kernels", "2x3x3x3"], [f"--in 3x8 {one_line(FULL)}: "]),
    "kernels": lambda f: (["check", "--in", "3x8x8", "--kernels", "2x" + FULL], [f"--kernels 2x{one_line(FULL)}: "]),
    "stride": lambda f: (["check", *LAYER, "--stride", FULL], [f"--stride {one_line(FULL)}: ", "like --stride"]),
    "padding-per-side": lambda f: (["check", *LAYER, "--padding", "0," + FULL], [f"--padding 0,{one_line(FULL)}: "]),
    "padding": lambda f: (["check", *LAYER, "--padding", FULL], [f"--padding {one_line(FULL)}: "]),
    "dilation": lambda f: (["check", *LAYER, "--dilation", "1x" + FULL], [f"--dilation 1x{one_line(FULL)}: "]),
    "suite-unknown-key": lambda f: (["check", "--config", f["suite_key"]],
                                    [f"{f['suite_key']}: unknown key {TEXT!r} in case 1 ({TEXT!r})"]),
    "suite-stride": lambda f: (["check", "--config", f["suite_stride"]],
                               [f'{f["suite_stride"]} in case 1: stride = "{one_line(FULL)}": ',
                                'like stride = 2 or stride = "2x1"']),
    "suite-dtype": lambda f: (["check", "--config", f["suite_dtype"]],
                              [f'dtype = "{one_line(FULL)}" at the top level is not supported']),
    "explain-stride": lambda f: (["explain", *LAYER, "--stride", FULL], [f"--stride {one_line(FULL)}: "]),
    "fuzz-impl": lambda f: (["fuzz", "--budget", "1", "--impl", f"{f['layer']}:{FULL}"],
                            [f"--impl {f['layer']}:{one_line(FULL)}: there is no "]),
}


def assert_one_line_error(result: Result) -> str:
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: ") and "Traceback" not in lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return _files(tmp_path_factory.mktemp("error{data}[bold]%s"))


@pytest.mark.parametrize("row", list(ROWS), ids=list(ROWS))
def test_user_text_is_shown_as_typed_on_one_line_with_exit_2(row: str, files: dict[str, str]) -> None:
    args, expected = ROWS[row](files)
    line = assert_one_line_error(CliRunner().invoke(cli, args, env={"COLUMNS": "80"}))
    for text in expected:
        assert text in line, line


def test_a_case_name_in_rich_markup_is_printed_as_typed(tmp_path: Path) -> None:
    suite = tmp_path / "markup.toml"
    suite.write_text(f'[[case]]\nname = {json.dumps("[/x] [bold]b{1}% %s")}\nin = "1x4x4"\nkernels = "1x1x2x2"\n')
    result = CliRunner().invoke(cli, ["check", "--config", str(suite)], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    assert "[/x] [bold]b{1}% %s" in result.output


# --- the API: keywords, not flags ------------------------------------------------------------

API = {
    "step": (lambda: check(in_shape=(3, 8, 8), kernel_shape=(4, 3, 3, 3), step=-1), "step=-1", "--step -1"),
    "method": (lambda: CheckOptions(method=TEXT), f"method={TEXT!r}", f"--method {TEXT!r}"),
    "seed": (lambda: CheckOptions(seed=TEXT), f"seed={TEXT!r}", f"--seed {TEXT!r}"),
    "stride": (lambda: check(in_shape="3x8x8", kernel_shape="2x3x3x3", stride=FULL),
               f"stride={one_line(FULL)}", f"--stride {one_line(FULL)}"),
    "in_shape": (lambda: check(in_shape="3x" + FULL, kernel_shape="2x3x3x3"),
                 f"in_shape=3x{one_line(FULL)}", f"--in 3x{one_line(FULL)}"),
    "layout": (lambda: check("reference", in_shape="3x8x8", kernel_shape="2x3x3x3", layout=TEXT),
               f"layout={TEXT!r}", f"--layout {TEXT!r}"),
    "budget": (lambda: FuzzOptions(budget_s=TEXT), f"budget={TEXT!r}", f"--budget {TEXT!r}"),
}


@pytest.mark.parametrize("keyword", list(API), ids=list(API))
def test_python_callers_read_the_keyword_and_the_value(keyword: str) -> None:
    make, python, flag = API[keyword]
    with pytest.raises(ConvgradError) as info:
        make()
    error = info.value
    assert python in str(error) and "--" not in str(error)
    assert flag in error.render(CLI)
    assert error.parameter == keyword
    back = pickle.loads(pickle.dumps(error))  # as a case's child process hands it back
    assert type(back) is type(error) and str(back) == str(error) and back.render(CLI) == error.render(CLI)


def test_an_implementation_spec_names_impl(files: dict[str, str]) -> None:
    with pytest.raises(ConvgradError) as info:
        check(f"{files['layer']}:{FULL}", in_shape="3x8x8", kernel_shape="2x3x3x3")
    assert str(info.value).startswith(f"impl={files['layer']}:{one_line(FULL)}: there is no ")


def test_a_suite_file_reads_its_own_keys(files: dict[str, str]) -> None:
    with pytest.raises(ConvgradError) as info:
        load_suite(files["suite_stride"])
    assert f'stride = "{one_line(FULL)}"' in str(info.value) and "--stride" not in str(info.value)


@given(st.text(max_size=30), st.text(max_size=30))
def test_any_text_renders_as_given_for_every_audience(plain: str, value: str) -> None:
    error = SettingError(plain, " ", Parameter("step", value or None), ": ", value)
    for audience in (PYTHON, CLI, TOML):
        shown = error.render(audience)
        assert shown == render_message(error.parts, audience) and "\n" not in shown
        assert one_line(value) in shown and one_line(plain) in shown
    assert str(pickle.loads(pickle.dumps(error))) == str(error)
