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

 case                               geometry                               verdict  worst   rel err
 ──────────────────────────────────────────────────────────────────────────────────────────────────
 basic 1                            N2 2x6x4 * 4x2x3x2 s2                  PASS     ??     #.##e±##
 basic 2                            3x5x8 * 2x3x1x1 s3 p1                  PASS     ??     #.##e±##
 basic 3                            N2 3x2x2 * 3x3x3x3 p2 float32          PASS     ??     #.##e±##
 basic 4                            N5 3x2x3 * 3x3x1x1 s2 p1 float32       PASS     ??     #.##e±##
 basic 5                            N5 3x4x3 * 2x3x3x2 float32             PASS     ??     #.##e±##
 basic 6                            N5 2x2x2 * 4x2x3x3 s3 p2               PASS     ??     #.##e±##
 basic 7                            3x6x6 * 3x3x3x2 s3 float32             PASS     ??     #.##e±##
 basic 8                            3x2x3 * 2x3x3x3 s2 p2                  PASS     ??     #.##e±##
 basic 9                            2x2x2 * 4x2x1x1 p1 float32             PASS     ??     #.##e±##
 basic 10                           N2 3x4x7 * 3x3x3x3 s3 p1               PASS     ??     #.##e±##
 basic 11                           N2 3x3x5 * 2x3x1x1 s2 p2               PASS     ??     #.##e±##
 basic 12                           2x2x3 * 4x2x2x3 p2                     PASS     ??     #.##e±##
 basic 13                           N5 3x5x5 * 2x3x3x3 s2 float32          PASS     ??     #.##e±##
 basic 14                           N2 3x4x5 * 2x3x1x1 s3 float32          PASS     ??     #.##e±##
 basic 15                           2x3x3 * 4x2x3x2 s2 p1 float32          PASS     ??     #.##e±##
 pairs 1                            N2 4x3x3 * 2x2x3x2 s2 p2 d2x1 g2       PASS     ??     #.##e±##
 pairs 2                            N5 3x2x3 * 2x3x1x1 s1x3 p1 float32     PASS     ??     #.##e±##
 pairs 3                            3x8x8 * 3x3x3x3 s3 p1x0 d2             PASS     ??     #.##e±##
 pairs 4                            N5 3x2x3 * 6x1x3x3 p2 d2 g3 float32    PASS     ??     #.##e±##
 pairs 5                            3x3x2 * 3x1x1x1 s2x1 d2x1 g3           PASS     ??     #.##e±##
 pairs 6                            4x4x3 * 6x2x2x3 s2 p0x2 g2 float32     PASS     ??     #.##e±##
 pairs 7                            N5 3x2x2 * 3x1x3x2 p1 g3               PASS     ??     #.##e±##
 pairs 8                            N2 3x4x7 * 6x1x3x3 s3 p1 d1x2 g3       PASS     ??     #.##e±##
 pairs 9                            N2 3x7x8 * 3x1x3x3 s2 d2 g3 float32    PASS     ??     #.##e±##
 pairs 10                           N2 3x2x3 * 2x3x1x1 p0x2 d1x2 float32   PASS     ??     #.##e±##
 pairs 11                           N5 4x6x6 * 2x2x3x3 s3 g2 float32       PASS     ??     #.##e±##
 pairs 12                           3x2x2 * 6x1x1x1 s1x3 p2 g3 float32     PASS     ??     #.##e±##
 pairs 13                           4x6x2 * 4x2x3x2 s2x1 p1 d2 g2 float32  PASS     ??     #.##e±##
 pairs 14                           3x2x3 * 2x3x1x1 s2 p2 d2               PASS     ??     #.##e±##
 pairs 15                           2x6x6 * 4x2x3x2 d2x1 float32           PASS     ??     #.##e±##
 pairs 16                           N5 3x3x6 * 3x1x1x1 s3 p2 d1x2 g3       PASS     ??     #.##e±##
                                    float32
 pairs 17                           N2 3x3x2 * 6x1x3x2 s2 p1 g3            PASS     ??     #.##e±##
 pairs 18                           N5 3x4x3 * 6x1x3x3 s1x3 p0x2 g3        PASS     ??     #.##e±##
 pairs 19                           N5 4x2x2 * 4x2x1x1 g2                  PASS     ??     #.##e±##
 pairs 20                           N2 3x5x9 * 6x1x2x3 s3 d1x2 g3          PASS     ??     #.##e±##
 pairs 21                           N2 3x3x2 * 3x1x1x1 s2x1 p1x0 d2 g3     PASS     ??     #.##e±##
 pairs 22                           N5 4x3x2 * 4x2x1x1 s2 p0x2 d2 g2       PASS     ??     #.##e±##
 1-D                                N2 4x11 * 6x2x3 s2 p1 g2               PASS     ??     #.##e±##
 1-D dilated, float32               3x12 * 2x3x3 d2 float32                PASS     ??     #.##e±##
 3-D                                N2 2x4x5x6 * 3x2x2x3x2 p1              PASS     ??     #.##e±##
 1-D grouped, batch 5, dilated      N5 4x13 * 4x2x3 p2 d2 g2               PASS     ??     #.##e±##
 3-D grouped, batch 2, float32      N2 4x3x4x5 * 4x2x2x2x2 g2 float32      PASS     ??     #.##e±##
 3-D depthwise x2, strided, padded  2x5x4x6 * 4x1x3x2x3 s2x1x3 p1 g2       PASS     ??     #.##e±##
 3-D strided, dilated per axis      2x5x6x7 * 2x2x2x2x2 s1x2x1 d2x1x1      PASS     ??     #.##e±##
 uneven: 'same' at stride 2         N2 3x6x7 * 4x3x3x3 s2 p0,1x1           PASS     ??     #.##e±##
 sizes 1: C 17, F 17, batch 11      N11 17x9x9 * 17x17x3x3 p1              PASS     ?      #.##e±##
 sizes 2: 4160 outputs, float32     12x64x65 * 1x12x3x3 p1 float32         PASS     ??     #.##e±##
 sizes 3: 5x5, C 17, float32        17x11x10 * 19x17x5x5 p2 float32        PASS     ?      #.##e±##
 sizes 4: 7x7 stem                  3x17x17 * 18x3x7x7 s2 p3               PASS     ?      #.##e±##
 sizes 5: 4x4 patches               N2 3x16x20 * 12x3x4x4 s4               PASS     ??     #.##e±##
 sizes 6: 1x1, s2, padded           10x9x7 * 6x10x1x1 s2 p1                PASS     ??     #.##e±##

                         N batch, s stride, p padding, d dilation, g groups
pairs of settings within the layer's own domain: 367 of 367 covered by 40 2-D cases
PASS: 51 of 51 cases passed
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
