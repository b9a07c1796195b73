"""The README opens with the two set-up commands, and CI runs the second one word for word."""

from __future__ import annotations

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _read(*parts: str) -> str:
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as handle:
        return handle.read()


def test_the_readme_starts_with_the_two_set_up_commands():
    blocks = re.findall(r"```bash\n(.*?)\n```", _read("README.md"), re.DOTALL)
    first, second = blocks[0], blocks[1]
    assert first.endswith("convgrad check --in 3x20x20 --kernels 5x3x3x3")
    # xdist on the two cores CI has; the quick subset, so the command stays within a few minutes
    assert "pip install -e '.[test,torch,jax]'" in second and second.endswith('python -m pytest -q -n 2 -m "not slow"')


def test_ci_runs_the_readmes_test_command_then_the_slow_tests():
    second = re.findall(r"```bash\n(.*?)\n```", _read("README.md"), re.DOTALL)[1]
    commands = [line for line in _read(".ci", "run").splitlines() if line and not line.startswith("#")]
    assert commands[-2].replace(" -q -e ", " -e ") == second  # CI installs quietly; otherwise the same words
    assert commands[-1] == "python -m pytest -q -n 2 -m slow"  # together, the full set


def test_the_readmes_table_of_declarations_is_the_one_the_code_reads():
    from convgrad.adapters.declare import KEYS

    section = _read("README.md").split("### Declaring conventions and limits", 1)[1].split("\n### ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \|", section, re.MULTILINE)
    assert rows == list(KEYS)


def test_ci_installs_the_browser_the_page_tests_drive():
    """tests/test_explain_page.py fails rather than skips under CI=true: CI must bring Chromium."""
    lines = _read(".ci", "run").splitlines()
    install = next(i for i, line in enumerate(lines) if "apt-get install" in line)
    assert "chromium" in lines[install] and install < lines.index(next(line for line in lines if "python3 -m venv" in line))
