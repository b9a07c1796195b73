"""What convgrad does with its streams and signals in a shell: pipes cut short, CI logs, Ctrl-C."""

from __future__ import annotations

import subprocess

import pytest

from processes import CONVGRAD, REPO, convgrad_env

STANDARD = ["check", "--config", "configs/standard.toml"]
ZOO_WRONG = "tests/zoo/kernels_not_rotated.py"


def test_head_reading_one_line_is_not_a_failure(tmp_path):
    # The shell line from the issue: the check's exit status through the pipe is its own.
    stderr = tmp_path / "stderr.txt"
    done = subprocess.run(
        ["bash", "-c", 'set -o pipefail; "$@" 2>"$STDERR" | head -1; echo "status ${PIPESTATUS[0]}"',
         "bash", *CONVGRAD, *STANDARD],
        capture_output=True, text=True, timeout=300, cwd=REPO, env=convgrad_env(STDERR=str(stderr)),
    )
    lines = done.stdout.splitlines()
    assert len(lines) == 2 and lines[-1] == "status 0", done.stdout
    assert stderr.read_text() == ""


@pytest.mark.parametrize(
    "args, status",
    [
        (STANDARD, 0),
        ([*STANDARD, "--json"], 0),
        ([*STANDARD, "--impl", ZOO_WRONG], 1),
        ([*STANDARD, "--impl", ZOO_WRONG, "--json"], 1),
        (["explain", "--in", "3x8x8", "--kernels", "2x3x3x3"], 0),
    ],
    ids=["table", "json", "failing", "failing-json", "explain"],
)
def test_a_reader_that_is_gone_before_the_first_line_keeps_the_checks_exit_code(args, status):
    # The reader closes its end before convgrad writes anything, so every write meets a broken pipe.
    child = subprocess.Popen(
        [*CONVGRAD, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO, env=convgrad_env()
    )
    assert child.stdout is not None and child.stderr is not None
    child.stdout.close()
    stderr = child.stderr.read().decode()
    assert child.wait(timeout=300) == status
    assert stderr == ""
