"""What convgrad does with its streams and signals in a shell: pipes cut short, CI logs, Ctrl-C."""

from __future__ import annotations

import re
import subprocess

import pytest

from processes import CONVGRAD, REPO, convgrad_env

STANDARD = ["check", "--config", "configs/standard.toml"]
SEED_SUITE = ["check", "--config", "configs/seed.toml"]  # a suite file's output, in a fraction of the time
ZOO_WRONG = "tests/zoo/kernels_not_rotated.py"
PROGRESS_LINE = re.compile(r"^\[\d+ s\] .*\n?", re.MULTILINE)


def without_progress(stderr: str) -> str:
    """stderr less the plain progress lines a slow run (a loaded machine) may log every few seconds."""
    return PROGRESS_LINE.sub("", stderr)


@pytest.mark.slow
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
    assert without_progress(stderr.read_text()) == ""


@pytest.mark.parametrize(
    "args, status",
    [
        (SEED_SUITE, 0),
        ([*SEED_SUITE, "--json"], 0),
        ([*SEED_SUITE, "--impl", ZOO_WRONG], 1),
        ([*SEED_SUITE, "--impl", ZOO_WRONG, "--json"], 1),
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
    assert without_progress(stderr) == ""


def _children(pid: int) -> list[str]:
    return subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()


@pytest.mark.parametrize("whole_group", [True, False], ids=["ctrl-c", "kill-int"])
def test_ctrl_c_during_a_check_exits_130_and_leaves_no_process(whole_group):
    import os
    import signal
    import time

    # A dense check of this layer runs for minutes: it is certainly still running when interrupted.
    child = subprocess.Popen(
        [*CONVGRAD, "check", "--in", "16x40x40", "--kernels", "16x16x3x3", "--method", "dense"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO, env=convgrad_env(), start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not _children(child.pid):  # the case's worker is forked: the check has started
            assert child.poll() is None and time.monotonic() < deadline, "the check never started"
            time.sleep(0.05)
        # Ctrl-C signals the terminal's whole foreground group (worker included); kill -INT only convgrad.
        if whole_group:
            os.killpg(child.pid, signal.SIGINT)
        else:
            child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=60)
        assert child.returncode == 130
        assert stderr.decode() == "Interrupted.\n"
        time.sleep(0.2)  # let the kernel finish reaping
        survivors = subprocess.run(["pgrep", "-s", str(child.pid)], capture_output=True, text=True).stdout.split()
        assert survivors == []
    finally:  # a failed assertion must not leave the check or its worker running
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        child.wait()


SEED_CHECK = ["check", "--in", "3x20x20", "--kernels", "5x3x3x3"]


@pytest.fixture
def log_every_advance(monkeypatch):
    """Progress lines at every advance the worker forwards, so a short check shows them."""
    import convgrad.render.progress as progress
    import convgrad.run.isolation as isolation

    monkeypatch.setattr(progress, "LOG_INTERVAL_S", 0.0)
    monkeypatch.setattr(isolation, "_PROGRESS_INTERVAL_S", 0.0)


def _invoke(args: list[str]):
    from click.testing import CliRunner

    from convgrad.cli import cli

    return CliRunner().invoke(cli, args, env={"COLUMNS": "80"})  # CliRunner's stderr is not a terminal


def test_outside_a_terminal_progress_is_plain_lines_on_stderr(log_every_advance):
    result = _invoke(SEED_CHECK)
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert lines and all(
        re.fullmatch(r"\[\d+ s\] convgrad check: ((dX|dK|db) (coloured|dense|base and linearity test)|later calls|network scenario) \d+/\d+ forward calls", line)
        for line in lines
    ), lines
    assert any(line.endswith("later calls 7/7 forward calls") for line in lines)
    assert re.search(r"network scenario (\d+)/\1 forward calls$", lines[-1])
    assert "\x1b[" not in result.stderr  # plain text: no bar, no cursor movement
    assert not re.search(r"^\[\d+ s\]", result.stdout, re.MULTILINE)  # stdout holds the report alone


@pytest.mark.slow
def test_progress_lines_name_the_case_of_a_suite(log_every_advance):
    result = _invoke(STANDARD)
    assert result.exit_code == 0, result.output
    assert "] pairs 1: dK coloured " in result.stderr


@pytest.mark.parametrize("flag", ["--quiet", "--json"])
def test_quiet_and_json_print_no_progress(log_every_advance, flag):
    result = _invoke([*SEED_CHECK, flag])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""


def test_a_short_check_logs_nothing(monkeypatch):
    # The first line comes only after LOG_INTERVAL_S: a check shorter than that leaves the log
    # clean. The interval is stretched so that a loaded machine cannot make the check "long".
    from convgrad.render import progress

    monkeypatch.setattr(progress, "LOG_INTERVAL_S", 3600.0)
    result = _invoke(SEED_CHECK)
    assert result.exit_code == 0 and result.stderr == ""


@pytest.mark.slow
def test_no_line_ends_in_spaces_in_colour_or_piped():
    """rich pads table cells and wrapped text to the full width; the console strips what a line
    ends in, before and between its colour codes, so no line ends in spaces in a terminal either."""
    args = [*CONVGRAD, "check", "--impl", ZOO_WRONG, "--in", "3x6x6", "--kernels", "4x3x3x3"]
    for colour in ({"FORCE_COLOR": "1"}, {}):
        env = {k: v for k, v in convgrad_env(COLUMNS="100", **colour).items()
               if k not in (("NO_COLOR",) if colour else ("FORCE_COLOR",))}
        done = subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=REPO, env=env)
        assert done.returncode == 1
        assert ("\x1b[" in done.stdout) == bool(colour)
        visible = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in done.stdout.splitlines()]
        assert visible and not [line for line in visible if line != line.rstrip()]
