"""Bad input never gives a traceback: exit 2 and one line that names the fix.

CASES is a catalogue: one row per kind of bad input, with the words the line must contain. Add
rows for new flags (--impl, --config, --method, ...) here. The fuzz test below throws random
strings at every flag of `convgrad check` and asserts the same contract.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from convgrad.cli import cli
from layer_strategies import PROFILE

LAYER = ["--in", "3x8x8", "--kernels", "2x3x3x3"]


def check(*flags: str) -> list[str]:
    """`convgrad check` on a small valid layer with `flags` added (a later flag wins)."""
    return ["check", *LAYER, *flags]


def case(args: list[str], *words: str, id: str):
    return pytest.param(args, words, id=id)


CASES = [
    # --in: malformed shapes
    case(["check", "--in", "3xax20", "--kernels", "2x3x3x3"], "'a' is not a whole number", "like --in 3x20x20", id="in-not-a-number"),
    case(["check", "--in", "3x20.5x20", "--kernels", "2x3x3x3"], "'20.5' is not a whole number", id="in-fraction"),
    case(["check", "--in", "", "--kernels", "2x3x3x3"], "--in is empty", "give sizes like", id="in-empty"),
    case(["check", "--in", "3x8x", "--kernels", "2x3x3x3"], "is not a whole number", id="in-trailing-separator"),
    case(["check", "--in", "3x0x8", "--kernels", "2x3x3x3"], "every size must be a positive whole number", id="in-zero-size"),
    case(["check", "--in", "3x-4x8", "--kernels", "2x3x3x3"], "has a size of -4", "positive", id="in-negative-size"),
    case(["check", "--in", "3", "--kernels", "2x3x3x3"], "give channels then 1 to 3 spatial sizes", id="in-no-spatial-axes"),
    case(["check", "--in", "3x4x4x4x4", "--kernels", "2x3x3x3"], "has 5 sizes", "CxDxHxW", id="in-four-spatial-axes"),
    # --kernels and the geometry as a whole
    case(["check", "--in", "3x8x8", "--kernels", "2x4x3x3"], "kernels expect 4 input channels but --in has 3", "use --kernels 2x3x3x3", id="kernels-wrong-depth"),
    case(["check", "--in", "3x20", "--kernels", "5x3x3x3"], "has 4 sizes but --in 3x20 is 1-D", id="kernels-wrong-rank"),
    case(["check", "--in", "3x8x8", "--kernels", "0x3x3x3"], "every size must be a positive whole number", id="kernels-zero-filters"),
    case(["check", "--in", "3x4x4", "--kernels", "2x3x5x5"], "larger than the padded input along H", "more --padding", id="kernel-larger-than-input"),
    case(check("--dilation", "4"), "dilated kernel (3 with dilation 4 spans 9)", id="dilated-kernel-too-large"),
    case(["check", "--in", "6x8x8", "--kernels", "4x2x3x3", "--groups", "4"], "--groups 4 does not divide the 6 input channels C", "divisors of 6", id="groups-not-dividing-channels"),
    case(["check", "--in", "4x8x8", "--kernels", "6x1x3x3", "--groups", "4"], "does not divide the 6 kernels F", id="groups-not-dividing-filters"),
    case(check("--groups", "0"), "groups must be a whole number of 1 or more", id="groups-zero"),
    case(check("--groups", "two"), "'two' is not a valid integer", id="groups-not-a-number"),
    # per-axis settings
    case(check("--stride", "0"), "--stride 0 has 0", "1 or more", id="stride-zero"),
    case(check("--stride", "2x2x2"), "has 3 values but the input has 2 spatial axes", "like --stride 1x1", id="stride-wrong-count"),
    case(check("--stride", "fast"), "--stride 'fast' is not understood", "one per axis like 2x1", id="stride-a-word"),
    case(check("--padding", "-1"), "each value must be zero or more", id="padding-negative"),
    case(check("--padding", "0,1,2"), "--padding 0,1,2 has 3 numbers for one axis", "before,after like 0,1", id="padding-three-sides"),
    case(["check", "--in", "3x8x8", "--kernels", "2x3x4x4", "--padding", "same"], "cannot be split evenly", "odd kernel size", id="padding-same-even-kernel"),
    case(check("--dilation", "0"), "--dilation 0 has 0", "1 or more", id="dilation-zero"),
    # batch and absurd sizes
    case(check("--batch", "0"), "batch size must be a whole number of 1 or more", id="batch-zero"),
    case(check("--batch", "1.5"), "'1.5' is not a valid integer", id="batch-fraction"),
    case(check("--batch", "1000000000000"), "GiB of memory", "use a smaller --in, --batch or --kernels", id="batch-absurd"),
    case(["check", "--in", "512x4000x4000", "--kernels", "512x512x3x3"], "use a smaller --in, --batch or --kernels", id="layer-absurd"),
    case(["check", "--in", "3x99999999999999999999x8", "--kernels", "2x3x3x3"], "use a smaller --in", id="size-beyond-64-bits"),
    # check settings
    case(check("--dtype", "float16"), "'float16' is not one of 'float64', 'float32'", id="dtype-unknown"),
    case(check("--seed", "-1"), "--seed -1 must be a whole number of 0 or more", id="seed-negative"),
    case(check("--seed", "abc"), "'abc' is not a valid integer", id="seed-not-a-number"),
    case(check("--rtol", "nan"), "--rtol nan must be a finite number greater than 0", id="rtol-nan"),
    case(check("--rtol", "0"), "must be a finite number greater than 0", id="rtol-zero"),
    case(check("--rtol", "-1e-8"), "must be a finite number greater than 0", id="rtol-negative"),
    case(check("--rtol", "1"), "would accept gradients that are entirely wrong", "below 1", id="rtol-one"),
    case(check("--rtol", "tight"), "'tight' is not a valid float", id="rtol-not-a-number"),
    case(check("--step", "0"), "--step 0.0 must be a finite number greater than 0", id="step-zero"),
    case(check("--step", "inf"), "must be a finite number", id="step-inf"),
    case(check("--step", "1e-300"), "is outside 1e-06..1000", "like --step 0.5", id="step-rounds-away"),
    case(check("--step", "1e9"), "is outside 1e-06..1000", id="step-absurd"),
    case(check("--step", "1e-5", "--dtype", "float32"), "too small for float32 with --rtol 0.001", "use --step 0.0012 or larger", id="step-below-float32-rounding"),
    case(check("--timeout", "0"), "--timeout 0.0 must be a number of seconds greater than 0", id="timeout-zero"),
    case(check("--timeout", "-5"), "greater than 0", id="timeout-negative"),
    case(check("--timeout", "nan"), "greater than 0", id="timeout-nan"),
    case(check("--timeout", "soon"), "'soon' is not a valid float", id="timeout-not-a-number"),
    # the implementation under test (files in tests/bad_inputs/)
    case(check("--impl", "nosuch.py"), "--impl nosuch.py: no such file", "check the path", id="impl-missing-file"),
    case(check("--impl", "torchh"), "is not a built-in", "did you mean --impl torch?", id="impl-unknown-builtin"),
    case(check("--impl", "tests/bad_inputs/syntax_error.py"), "has a syntax error at line 1", "fix the file", id="impl-syntax-error"),
    case(check("--impl", "tests/bad_inputs/import_error.py"), "ModuleNotFoundError", "install what it imports", id="impl-import-error"),
    case(check("--impl", "tests/bad_inputs/no_backward.py"), "has no backward function", "define forward", id="impl-no-backward"),
    case(check("--impl", "tests/zoo/student_conv.py:Nope"), "there is no 'Nope'", "it defines", id="impl-unknown-name"),
    case(check("--impl", "tests/bad_inputs/needs_arguments.py:Layer"), "class Layer needs arguments (size)", "create an instance", id="impl-class-needs-arguments"),
    case(check("--impl", "tests/bad_inputs/hangs_at_import.py", "--timeout", "1"), "did not finish importing within 1 s", "raise --timeout", id="impl-hangs-at-import"),
    case(check("--impl", "tests/zoo/student_conv.py:"), "ends with ':' but names no object", id="impl-trailing-colon"),
    case(check("--impl", "tests"), "--impl tests is a folder", "name the .py file", id="impl-a-folder"),
    case(check("--impl", "."), "--impl . is a folder", "name the .py file", id="impl-dot"),
    case(check("--samples", "10"), "--samples only applies to --method sample or projection", id="samples-without-sampling"),
    case(check("--layout", "nchwc"), "'nchwc' is not one of 'nchw', 'nhwc'", id="layout-unknown"),
    case(check("--weight-layout", "ohwi"), "'ohwi' is not one of 'oihw', 'hwio'", id="weight-layout-unknown"),
    # suite files
    case(["check", "--config", "nosuch.toml"], "'--config': File 'nosuch.toml' does not exist", id="config-missing-file"),
    case(["check", "--config", "configs"], "'--config': File 'configs' is a directory", id="config-a-folder"),
    case(["check", "--config", "tests/bad_inputs/not_toml.toml"], "is not valid TOML", "at line 1", id="config-not-toml"),
    case(["check", "--config", "tests/bad_inputs/unknown_key.toml"], "unknown key 'kernel' in case 1", "did you mean 'kernels'?", id="config-unknown-key"),
    case(["check", "--config", "tests/bad_inputs/bad_value.toml"], "bad_value.toml in case 1: stride = \"fast\" is not understood", id="config-bad-value"),
    case(["check", "--config", "tests/bad_inputs/missing_kernels.toml"], "no 'kernels' in case 1", 'set kernels = "5x3x3x3"', id="config-missing-kernels"),
    case(["check", "--config", "configs/seed.toml", "--batch", "2"], "--batch cannot be combined with --config", "put batch = ... in the file", id="config-with-geometry-flag"),
    # output files
    case(check("--junit", "/nonexistent/report.xml"), "'--junit': the folder /nonexistent does not exist", id="junit-missing-folder"),
    case(check("--junit", "."), "'--junit': File '.' is a directory", id="junit-a-folder"),
    case(check("--svg", "/nonexistent/report.svg"), "'--svg': the folder /nonexistent does not exist", id="svg-missing-folder"),
    # the command line itself
    case(check("--inn", "3"), "No such option '--inn'", "Did you mean '--in'", id="unknown-option"),
    case(["check", "--in", "3x8x8"], "Missing option '--kernels'", id="missing-kernels"),
    case(["check", "--in", "3x8x8", "--kernels"], "Option '--kernels' requires an argument", id="option-without-value"),
    case(check("extra"), "Got unexpected extra argument (extra)", "--help", id="extra-argument"),
    case(check("--json=yes"), "Option '--json' does not take a value", id="flag-given-a-value"),
    case(["chek"], "No such command 'chek'", "Did you mean 'check'", id="unknown-command"),
]


def run(args: list[str]):
    return CliRunner().invoke(cli, args, env={"COLUMNS": "80"})


def assert_one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    return lines[0]


def test_the_catalogue_has_at_least_25_kinds():
    assert len(CASES) >= 25
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("args, words", CASES)
def test_bad_input_is_exit_2_with_one_line_naming_the_fix(args, words):
    line = assert_one_line_error(run(args))
    assert line.startswith("Error: ")
    for word in words:
        assert word in line, line


# --- fuzz: random strings at every flag ------------------------------------------------------

FLAGS = ["--in", "--kernels", "--batch", "--stride", "--padding", "--dilation", "--groups",
         "--dtype", "--seed", "--rtol", "--step", "--timeout"]
SWITCHES = ["--json", "--quiet"]

# Small numbers only, so a string that happens to describe a valid layer is cheap to check; large
# ones come whole (they are refused before anything is allocated).
TOKENS = ["0", "1", "2", "3", "-1", "+2", "1.5", "1e3", "1e-300", "1e309", "nan", "-inf", "inf",
          "99999999999999999999", "0x10", "٣", "same", "valid", "float32", "", " "]
SEPARATORS = ["x", "×", ",", "X", " x ", "xx", ";"]

joined = st.tuples(st.lists(st.sampled_from(TOKENS), max_size=5), st.sampled_from(SEPARATORS)).map(
    lambda parts: parts[1].join(parts[0])
)
values = st.one_of(st.text(max_size=12), st.sampled_from(TOKENS), joined, st.sampled_from([*FLAGS, *SWITCHES, "-q", "--"]))


@settings(max_examples=150 if PROFILE == "ci" else 3000)
@given(flags=st.dictionaries(st.sampled_from(FLAGS), values, min_size=1, max_size=3),
       switches=st.lists(st.sampled_from(SWITCHES), max_size=2))
@pytest.mark.slow
def test_random_strings_at_every_flag_never_crash(flags, switches):
    args = ["check", "--in", "2x6", "--kernels", "2x2x3", "--timeout", "20"]
    for flag, value in flags.items():
        args += [flag, value]
    result = run(args + switches)
    assert result.exit_code in (0, 1, 2), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        assert len(result.output.strip().splitlines()) == 1, result.output
