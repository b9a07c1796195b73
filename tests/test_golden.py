"""Golden output: the seed check's table and the standard suite's summary, character for character.

Both come from the command line at a fixed width of 100 columns, without colour. What varies from
run to run or from machine to machine is replaced by a placeholder before comparing: every error
(1.42e-14 becomes #.##e±##), elapsed times (0.25 s becomes #.## s), and in the summary the name of
each case's worst tensor, which on a passing case is the one with the largest rounding error.
Shapes, counts, forward calls, verdicts, wording and layout are compared exactly; trailing spaces
are not, since rich pads every line of a table to the table's width.
"""

from __future__ import annotations

import os
import re

from click.testing import CliRunner

from convgrad.cli import cli

STANDARD = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "standard.toml")

ERROR = re.compile(r"\b\d\.\d\de[+-]\d\d\b")
SECONDS = re.compile(r"\b\d+\.\d\d s\b")
WORST_TENSOR = re.compile(r"\b(?:O|dX|dK|db)(?= +#\.##e±## *$)", re.MULTILINE)


def normalised(text: str) -> str:
    text = ERROR.sub("#.##e±##", text)
    text = SECONDS.sub("#.## s", text)
    text = WORST_TENSOR.sub(lambda name: "?" * len(name[0]), text)
    return "".join(line.rstrip() + "\n" for line in text.splitlines())


def check(*args: str) -> str:
    result = CliRunner().invoke(cli, ["check", *args], env={"COLUMNS": "100", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    return normalised(result.output)


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

finite differences: dX coloured (6 forward calls), dK coloured (58 forward calls), db coloured (6
forward calls); O against the reference convolution
PASS: dX, dK and db match finite differences in all 1340 coordinates (71 forward calls, #.## s)
"""

STANDARD_SUMMARY = """\

 case                                 geometry                    verdict  worst   rel err
 ─────────────────────────────────────────────────────────────────────────────────────────
 plain, C != F                        3x6x7 * 4x3x3x3             PASS     ??     #.##e±##
 batch 3                              N3 2x5x6 * 3x2x3x3          PASS     ??     #.##e±##
 C == F, batch 2                      N2 4x6x7 * 4x4x3x3          PASS     ??     #.##e±##
 stride 2, padding 1                  3x7x8 * 4x3x3x3 s2 p1       PASS     ??     #.##e±##
 stride larger than kernel            2x9x10 * 3x2x2x2 s3         PASS     ??     #.##e±##
 padding 2                            2x5x6 * 3x2x3x3 p2          PASS     ??     #.##e±##
 rectangular kernel, per-axis stride  3x7x9 * 2x3x2x3 s2x1 p1x0   PASS     ??     #.##e±##
 dilation 2                           2x8x9 * 3x2x3x3 p1 d2       PASS     ??     #.##e±##
 groups 2                             4x6x7 * 6x2x3x3 g2          PASS     ??     #.##e±##
 depthwise                            3x6x7 * 3x1x3x3 g3          PASS     ??     #.##e±##
 1x1 kernels                          N2 3x5x6 * 4x3x1x1          PASS     ??     #.##e±##
 1-D                                  3x12 * 4x3x3 s2 p1          PASS     ??     #.##e±##
 3-D                                  2x4x5x6 * 3x2x2x3x2 p1      PASS     ??     #.##e±##
 float32                              3x6x7 * 4x3x3x3 p1 float32  PASS     ??     #.##e±##

                    N batch, s stride, p padding, d dilation, g groups
PASS: 14 of 14 cases passed
"""


def test_the_seed_check_prints_this_table():
    assert check("--in", "3x20x20", "--kernels", "5x3x3x3") == SEED_TABLE


def test_the_standard_suite_prints_this_summary():
    assert check("--config", STANDARD, "--quiet") == STANDARD_SUMMARY


def test_the_placeholders_keep_what_is_pinned():
    line = " dK      5x3x3x3    5x3x3x3    3.20e-14  5.69e-16  1e-08      135  PASS   "
    assert normalised(line) == " dK      5x3x3x3    5x3x3x3    #.##e±##  #.##e±##  1e-08      135  PASS\n"
    assert normalised("all 1340 coordinates (71 forward calls, 12.34 s)") == "all 1340 coordinates (71 forward calls, #.## s)\n"
    assert normalised(" 1-D   3x12 * 4x3x3 s2 p1   PASS     db     2.35e-16 ") == " 1-D   3x12 * 4x3x3 s2 p1   PASS     ??     #.##e±##\n"
