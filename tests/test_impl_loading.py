"""--impl: built-ins, files, modules and :NAME; every bad spec is one line and exit 2; adapters."""

from __future__ import annotations

import json
import os
import sys
import textwrap

import pytest
from click.testing import CliRunner

from conftest import assert_bad_input
from convgrad.cli import cli
from convgrad.suite import load_suite

HERE = os.path.dirname(os.path.abspath(__file__))
CHANNELS_LAST = os.path.join(HERE, "implementations", "channels_last.py")
LAYER = ["--in", "3x6x6", "--kernels", "4x3x3x3"]


def run(args: list[str]):
    return CliRunner().invoke(cli, ["check", *args], env={"COLUMNS": "100"})


def write(tmp_path, name: str, source: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return str(path)


def test_missing_file(tmp_path):
    assert_bad_input(run(["--impl", str(tmp_path / "nope.py"), *LAYER]), "nope.py: no such file; check the path")


def test_syntax_error_in_file(tmp_path):
    path = write(tmp_path, "broken.py", "def forward(x, w, b:\n    pass\n")
    assert_bad_input(run(["--impl", path, *LAYER]), "broken.py has a syntax error at line 1")


def test_import_error_inside_file_names_the_line(tmp_path):
    path = write(tmp_path, "needs_dep.py", "import os\nimport no_such_dependency_xyz\n")
    assert_bad_input(
        run(["--impl", path, *LAYER]),
        "failed while importing: ModuleNotFoundError: No module named 'no_such_dependency_xyz' (at needs_dep.py:2)",
    )


def test_missing_backward(tmp_path):
    path = write(tmp_path, "half.py", "def forward(x, w, b, **settings):\n    return x\n")
    assert_bad_input(run(["--impl", path, *LAYER]), "half.py has no backward function; define forward(x, w, b, *,")


def test_name_not_found_suggests_the_closest(tmp_path):
    assert_bad_input(run(["--impl", f"{CHANNELS_LAST}:layr", *LAYER]), "there is no 'layr' in")
    assert "did you mean :layer?" in run(["--impl", f"{CHANNELS_LAST}:layr", *LAYER]).output


def test_class_that_needs_arguments():
    assert_bad_input(
        run(["--impl", f"{CHANNELS_LAST}:NeedsArguments", *LAYER]),
        "class NeedsArguments needs arguments (scale); create an instance in the file",
    )


def test_unknown_builtin_suggests_the_closest():
    result = run(["--impl", "torh", *LAYER])
    assert_bad_input(result, "--impl 'torh' is not a built-in (reference, torch, jax), a .py file or an importable module")
    assert "did you mean --impl torch?" in result.output


def test_not_a_python_file(tmp_path):
    assert_bad_input(run(["--impl", str(tmp_path / "layer.txt"), *LAYER]), "give a .py file or a dotted module name")


@pytest.mark.parametrize("builtin, module", [("torch", "torch"), ("jax", "jax")])
def test_missing_extra_names_the_pip_command(monkeypatch, builtin, module):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import torch` fail like a missing package
    assert_bad_input(run(["--impl", builtin, *LAYER]), f"pip install 'convgrad[{builtin}]'")


def test_dotted_module_and_class_name():
    result = run(["--impl", "convgrad.adapters.protocol:ReferenceLayer", *LAYER, "--quiet"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("name", ["layer", "ChannelsLastConv"])
def test_instance_or_class_by_name(name):
    result = run(["--impl", f"{CHANNELS_LAST}:{name}", "--layout", "nhwc", "--weight-layout", "hwio", *LAYER, "--quiet"])
    assert result.exit_code == 0, result.output


def test_channels_last_without_layout_flags_fails_with_shapes_not_a_crash():
    result = run(["--impl", CHANNELS_LAST, *LAYER, "--json"])
    assert result.exit_code == 1, result.output
    case = json.loads(result.output)["cases"][0]
    assert case["passed"] is False and case["reason"].startswith("forward raised")


def test_channels_last_wrong_output_shape_is_named_in_its_own_layout(tmp_path):
    path = write(
        tmp_path,
        "nhwc_bad.py",
        """
        import numpy as np

        def forward(x, w, b, **settings):
            return np.zeros((x.shape[0], 4, 4, 4))  # channels first by mistake: (N, F, Ho, Wo)

        def backward(dy, x, w, b, **settings):
            return np.zeros_like(x), np.zeros_like(w), np.zeros(w.shape[-1])
        """,
    )
    result = run(["--impl", path, "--layout", "nhwc", "--in", "3x6x7", "--kernels", "4x3x3x3", "--json"])
    assert result.exit_code == 1
    case = json.loads(result.output)["cases"][0]
    assert "forward returned shape 1x4x4x4 for the output, expected 1x4x5x4 (N, *spatial, C in layout nhwc)" in case["reason"]


@pytest.mark.slow
def test_keywords_a_layer_does_not_accept_skip_the_cases_that_need_them(tmp_path):
    path = write(
        tmp_path,
        "no_dilation.py",
        """
        from convgrad import reference

        def forward(x, w, b, *, stride, padding):
            return reference.forward(x, w, b, stride=stride, padding=padding, dilation=(1,) * (x.ndim - 2), groups=1)

        def backward(dy, x, w, b, *, stride, padding):
            return reference.backward(dy, x, w, b, stride=stride, padding=padding, dilation=(1,) * (x.ndim - 2), groups=1)
        """,
    )
    standard = os.path.join(os.path.dirname(HERE), "configs", "standard.toml")
    result = run(["--impl", path, "--config", standard, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    skipped = {c["name"]: c["skipped"] for c in report["cases"] if c["skipped"] is not None}
    suite = load_suite(standard)
    needs = {c.name for c in suite.cases
             if c.geometry.groups > 1 or any(d > 1 for d in c.geometry.dilation) or c.geometry.uneven_padding}
    assert set(skipped) == needs
    assert skipped["pairs 3"] == "forward and backward do not accept the keyword dilation, and this case needs dilation 2x2"
    added = report["domain_pairs"]["added"]  # cases that cover the pairs the skipped ones held
    assert added > 0 and all(c["name"].startswith("domain ") for c in report["cases"][len(suite.cases):])
    assert report["summary"] == {
        "passed": len(suite.cases) - len(needs) + added, "failed": 0, "error": 0, "skipped": len(needs),
        "lost precision": 0, "not checked": 0,
    }

    single = run(["--impl", path, *LAYER, "--dilation", "2"])
    assert single.exit_code == 1  # nothing was checked: never a pass
    assert "SKIP: forward and backward do not accept the keyword dilation" in single.output


def test_cache_style_forward_that_returns_no_cache(tmp_path):
    path = write(
        tmp_path,
        "course.py",
        """
        import numpy as np

        def conv_forward(x, w, b, conv_param):
            return np.zeros((x.shape[0], w.shape[0], 4, 4))

        def conv_backward(dout, cache):
            return None

        forward, backward = conv_forward, conv_backward
        """,
    )
    result = run(["--impl", path, *LAYER, "--json"])
    case = json.loads(result.output)["cases"][0]
    assert result.exit_code == 1
    assert case["reason"] == "forward returned a ndarray; a cache-style forward returns the tuple (out, cache)"


def test_exception_in_an_implementation_names_the_users_line(tmp_path):
    path = write(
        tmp_path,
        "raises.py",
        """
        from convgrad import reference
        forward = reference.forward

        def backward(dy, x, w, b, **settings):
            raise IndexError("index 7 is out of bounds")
        """,
    )
    result = run(["--impl", path, *LAYER, "--json"])
    assert result.exit_code == 1
    case = json.loads(result.output)["cases"][0]
    assert case["reason"] == "backward raised IndexError: index 7 is out of bounds (at raises.py:6)"


def test_what_an_implementation_prints_does_not_corrupt_json():
    impl = os.path.join(os.path.dirname(__file__), "implementations", "prints_while_working.py")
    result = CliRunner().invoke(cli, ["check", "--impl", impl, "--in", "3x8x8", "--kernels", "4x3x3x3", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["passed"] is True  # the prints went to stderr
    assert "importing my conv layer" in result.stderr


def test_a_folder_is_refused_naming_the_files_in_it(tmp_path, monkeypatch):
    write(tmp_path, "my_conv.py", "def forward(x, w, b, **s):\n    return x\n")
    monkeypatch.chdir(tmp_path)
    assert_bad_input(
        run(["--impl", ".", *LAYER]),
        "--impl . is a folder (it holds my_conv.py); name the .py file that defines forward and backward, "
        f"like --impl {os.path.join('.', 'my_conv.py')}",
    )


@pytest.mark.parametrize("spec", [".conv", "a..b", "..."])
def test_a_relative_module_name_is_refused_in_one_line(spec):
    assert_bad_input(run(["--impl", spec, *LAYER]), "is neither a .py file nor a dotted module name")


def test_a_package_folder_is_still_a_module(tmp_path, monkeypatch):
    (tmp_path / "conv_pkg").mkdir()
    write(tmp_path, "conv_pkg/__init__.py", "from convgrad.reference import forward, backward\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    result = run(["--impl", "conv_pkg", *LAYER, "--quiet"])
    assert result.exit_code == 0, result.output
