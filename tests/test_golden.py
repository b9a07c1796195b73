"""Golden output: the seed check's table, the standard suite's summary and one mistake on the
standard suite, character for character.

Both come from the command line at a fixed width of 100 columns, without colour. What varies from
run to run or from machine to machine is replaced by a placeholder before comparing: every error
(1.42e-14 becomes #.##e±##), elapsed times (0.25 s becomes #.## s), and in the summary the name of
each case's worst tensor, which on a passing case is the one with the largest rounding error.
Shapes, counts, forward calls, verdicts, wording and layout are compared exactly, and no line may
end in spaces or be wider than the 100 columns.
"""

from __future__ import annotations

import os
import re

import pytest
from click.testing import CliRunner

from convgrad.cli import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STANDARD = os.path.join(ROOT, "configs", "standard.toml")
ZOO_STRIDE_IGNORED_IN_DK = os.path.join("tests", "zoo", "stride_ignored_in_dk.py")

ERROR = re.compile(r"\b\d\.\d{1,2}e[+-]\d\d(?!\d)")  # also 6.49e+04x (times a bound) and 1.8e+04
SECONDS = re.compile(r"\b\d+\.\d\d s\b")
WORST_TENSOR = re.compile(r"\b(?:O|dX|dK|db)(?= +#\.##e±## *$)", re.MULTILINE)


def normalised(text: str) -> str:
    text = ERROR.sub("#.##e±##", text)
    text = SECONDS.sub("#.## s", text)
    text = WORST_TENSOR.sub(lambda name: "?" * len(name[0]), text)
    return "".join(line.rstrip() + "\n" for line in text.splitlines())


def check(*args: str, exit_code: int = 0) -> str:
    result = CliRunner().invoke(cli, ["check", *args], env={"COLUMNS": "100", "NO_COLOR": "1"})
    assert result.exit_code == exit_code, result.output
    lines = result.stdout.splitlines()  # without the progress lines a long run logs on stderr
    assert not [line for line in lines if line != line.rstrip()], "a line ends in spaces"
    assert all(len(line) <= 100 for line in lines)
    return normalised(result.stdout)


SEED_TABLE = """\
convgrad check   implementation: reference
N=1  X 3x20x20  K 5x3x3x3  stride 1  padding 0  dilation 1  groups 1
dtype float64   step 0.5 (relative)   rtol 1e-08 of each tensor's scale   seed 0

 tensor  expected   got         abs err   rel err    tol  checked  status
 ────────────────────────────────────────────────────────────────────────
 O       1x5x18x18  1x5x18x18  #.##e±##  #.##e±##  1e-08     1620  PASS
 dX      1x3x20x20  1x3x20x20  #.##e±##  #.##e±##  1e-08     1200  PASS
 dK      5x3x3x3    5x3x3x3    #.##e±##  #.##e±##  1e-08      135  PASS
 db      5          5          #.##e±##  #.##e±##  1e-08        5  PASS

finite differences: dX coloured, one-sided (10 forward calls), dK coloured, one-sided (33 forward
calls), db dense, one-sided (7 forward calls); O against the reference convolution
later calls: second call PASS, memory layouts 1 PASS, memory layouts 2 PASS, memory layouts 3 PASS,
memory layouts 4 PASS, memory layouts 5 PASS, first call repeated PASS
network scenario: two instances PASS, other settings PASS, recomputed forward PASS, batch sizes
PASS, training steps PASS, activations PASS, max-pool gradient PASS, tiny gradient PASS, large
gradient PASS, pruned filter PASS
PASS: dX, dK and db match finite differences in all 1340 coordinates (76 forward calls, #.## s)
"""

STANDARD_SUMMARY = """\
PASS 51 cases basic 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15; pairs 1, 2, 3, 4, 5, 6, 7, 8,
              9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22; 1-D; 1-D dilated, float32; 3-D;
              1-D grouped, batch 5, dilated; 3-D grouped, batch 2, float32; 3-D depthwise x2,
              strided, padded; 3-D strided, dilated per axis; uneven: 'same' at stride 2; sizes 1: C
              17, F 17, batch 11; 2: 4160 outputs, float32; 3: 5x5, C 17, float32; 4: 7x7 stem; 5:
              4x4 patches; 6: 1x1, s2, padded
pairs of settings within the layer's own domain: 367 of 367 covered by 40 2-D cases
PASS: 51 of 51 cases passed
"""

# One mistake (dK reads the input as if the stride were 1) on the standard suite: the first case of
# each way of failing in full, then one row per status and cause.
GROUPED_FAILURE = """\
basic 1   implementation: tests/zoo/stride_ignored_in_dk.py
N=2  X 2x6x4  K 4x2x3x2  stride 2  padding 0  dilation 1  groups 1
dtype float64   step 0.5 (relative)   rtol 1e-08 of each tensor's scale   seed 0

 tensor  expected  got       abs err   rel err    tol  checked  status
 ─────────────────────────────────────────────────────────────────────
 O       2x4x2x2   2x4x2x2  #.##e±##  #.##e±##  1e-08       32  PASS
 dX      2x2x6x4   2x2x6x4  #.##e±##  #.##e±##  1e-08       96  PASS
 dK      4x2x3x2   4x2x3x2  #.##e±##  #.##e±##  1e-08       48  FAIL
 db      4         4        #.##e±##  #.##e±##  1e-08        4  PASS

finite differences: dX coloured, one-sided (9 forward calls), dK coloured, one-sided (18 forward
calls), db dense, one-sided (6 forward calls); O against the reference convolution
dK: 48 of 48 coordinates differ by more than 1e-08 of the tensor's scale 5.79; worst at [1, 1, 0,
1]: analytical 3.45064, numerical -3.1003
  mismatched coordinates: 48 / 48
  index             analytical       numerical    rel error
  [1, 1, 0, 1]     3.450643405     -3.10029586     #.##e±##
  [2, 1, 0, 1]       2.9427011    -2.645940331     #.##e±##
  [3, 0, 2, 0]     2.507189531    -2.852654953     #.##e±##
  [3, 0, 1, 1]    -2.740467351     2.014029883     #.##e±##
  [2, 0, 2, 1]     2.149785705    -2.476952489     #.##e±##
  where: 48 of 48 coordinates (100.0%) in all 4 kernels
  why: dK matches the numerical gradient once the stride 2x2 is taken into account: dK[f,c,u] sums
  dO[i] * Xp[s*i + d*u], so step through X by the stride.
  error map of dK[f=1, c=1] over kH x kW
      0
    0 ████
    1 ████
    2 ████
  · within tolerance  ░ >1e-08  ▒ >1e-06  ▓ >1e-04  █ >1e-02  (relative error)
later calls: first call repeated PASS; second call: fails as the first call does; memory layouts 1,
memory layouts 2, memory layouts 3, memory layouts 4, memory layouts 5: fail as an earlier call does
FAIL: dK does not match

pairs 12   implementation: tests/zoo/stride_ignored_in_dk.py
N=1  X 3x2x2  K 6x1x1x1  stride 1x3  padding 2  dilation 1  groups 3
dtype float32   step 0.5 (relative)   rtol 0.001 of each tensor's scale   seed 0

 tensor  expected  got       abs err   rel err    tol  bits  checked  against      status
 ────────────────────────────────────────────────────────────────────────────────────────
 O       1x6x6x2   1x6x6x2  #.##e±##  #.##e±##  9e-06    24       72  reference    PASS
 dX      1x3x2x2   1x3x2x2  #.##e±##  #.##e±##  1e-03     -       12  differences  PASS
 dK      6x1x1x1   6x1x1x1  #.##e±##  #.##e±##  1e-03     -        6  differences  FAIL
 db      6         6        #.##e±##  #.##e±##  1e-03     -        6  differences  PASS
 dX      1x3x2x2   1x3x2x2  #.##e±##  #.##e±##  2e-05    24       12  reference    PASS
 dK      6x1x1x1   6x1x1x1  #.##e±##  #.##e±##  2e-05     1        6  reference    FAIL
 db      6         6        #.##e±##  #.##e±##  7e-07    24        6  reference    PASS

finite differences: dX coloured (6 forward calls), dK coloured (6 forward calls), db coloured (6
forward calls); O and dX, dK, db against the float64 reference, each coordinate within 2·√n·u·B (u =
2^-24; bits: significant bits the values carry, of 24)
dK: 6 of 6 coordinates differ by more than 0.001 of the tensor's scale 2.07; worst at [5, 0, 0, 0]:
analytical 0, numerical -2.07237
  mismatched coordinates: 6 / 6
  index           analytical        numerical    rel error
  [5, 0, 0, 0]             0     -2.072368929     #.##e±##
  [3, 0, 0, 0]             0      1.156990247     #.##e±##
  [4, 0, 0, 0]             0     -1.100481554     #.##e±##
  [2, 0, 0, 0]             0     0.6115906653     #.##e±##
  [1, 0, 0, 0]             0    -0.1180370303     #.##e±##
  where: 6 of 6 coordinates (100.0%) in all 6 kernels
  error map of dK[f=5, c=0] over kH x kW
      0
    0 ██
  · within tolerance  ░ >1e-03  ▒ >6e-03  ▓ >3e-02  █ >2e-01  (relative error)
dK vs float64 reference: 6 of 6 coordinates differ from the reference by more than rounding in 24
bits allows (worst #.##e±##x its bound); dK carries about 1 significant bits of 24; worst at [5, 0,
0, 0]: analytical 0, reference -2.0723689
  mismatched coordinates: 6 / 6
  index           analytical        reference    error / bound
  [5, 0, 0, 0]             0     -2.072368895         #.##e±##
  [4, 0, 0, 0]             0     -1.100481565         #.##e±##
  [3, 0, 0, 0]             0      1.156990236         #.##e±##
  [2, 0, 0, 0]             0     0.6115906766          #.##e±##
  [1, 0, 0, 0]             0    -0.1180370307         #.##e±##
later calls: first call repeated PASS; second call: fails as the first call does; memory layouts 1,
memory layouts 2, memory layouts 3, memory layouts 4, memory layouts 5: fail as an earlier call does
warning: forward returned the output as float64 for float32 inputs
warning: backward returned dX as float64 for float32 inputs
warning: backward returned dK as float64 for float32 inputs
FAIL: dK does not match

FAIL 30 cases dK: looks like the stride was ignored
              basic 1, 2, 4, 6, 7, 8, 10, 11, 13, 14, 15; pairs 1, 2, 3, 5, 6, 8, 9, 11, 13, 14, 16,
              17, 18, 20, 21, 22; sizes 4: 7x7 stem; 5: 4x4 patches; 6: 1x1, s2, padded (basic 1 in
              full above)
FAIL  1 case  dK: does not match
              pairs 12 (in full above)
SKIP  3 cases tests/zoo/stride_ignored_in_dk.py handles 2-D layers only (spatial_dims) and this case
              is 1-D
              1-D; 1-D dilated, float32; 1-D grouped, batch 5, dilated
SKIP  4 cases tests/zoo/stride_ignored_in_dk.py handles 2-D layers only (spatial_dims) and this case
              is 3-D
              3-D; 3-D grouped, batch 2, float32; 3-D depthwise x2, strided, padded; 3-D strided,
              dilated per axis
SKIP  1 case  tests/zoo/stride_ignored_in_dk.py takes one padding per axis, and this case pads 0,1x1
              (before,after); declare uneven_padding = true if it takes a (before, after) pair per
              axis
              uneven: 'same' at stride 2
PASS 12 cases basic 3, 5, 9, 12; pairs 4, 7, 10, 15, 19; sizes 1: C 17, F 17, batch 11; 2: 4160
              outputs, float32; 3: 5x5, C 17, float32
pairs of settings within the layer's own domain: 367 of 367 covered by 40 2-D cases
FAIL: 31 of 51 cases failed, 12 passed, 8 skipped (not checked, and not counted as passed)
"""


def test_the_seed_check_prints_this_table():
    assert check("--in", "3x20x20", "--kernels", "5x3x3x3") == SEED_TABLE


@pytest.mark.slow
def test_the_standard_suite_prints_this_summary():
    assert check("--config", STANDARD) == STANDARD_SUMMARY


@pytest.mark.slow
def test_one_mistake_on_the_standard_suite_fits_in_two_screens_cause_first():
    output = check("--impl", ZOO_STRIDE_IGNORED_IN_DK, "--config", STANDARD, exit_code=1)
    assert output == GROUPED_FAILURE
    assert len(output.splitlines()) <= 120


def test_the_placeholders_keep_what_is_pinned():
    line = " dK      5x3x3x3    5x3x3x3    3.20e-14  5.69e-16  1e-08      135  PASS   "
    assert normalised(line) == " dK      5x3x3x3    5x3x3x3    #.##e±##  #.##e±##  1e-08      135  PASS\n"
    assert normalised("all 1340 coordinates (71 forward calls, 12.34 s)") == "all 1340 coordinates (71 forward calls, #.## s)\n"
    assert normalised(" 1-D   3x12 * 4x3x3 s2 p1   PASS     db     2.35e-16 ") == " 1-D   3x12 * 4x3x3 s2 p1   PASS     ??     #.##e±##\n"
