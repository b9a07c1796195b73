"""One case on two cores: `--jobs 1` against `--jobs 2` on the ResNet-50 3x3 layer, side by side.

    python benchmarks/jobs.py              # 3 rounds, alternating
    python benchmarks/jobs.py --rounds 5

Each side is one `python -m convgrad check --in 64x56x56 --kernels 64x3x3 --padding 1 --impl torch
--method coloured --json` process (every coordinate of dX, dK and db by differences), timed from
start to exit; the two sides alternate so they see the same load. Prints the medians, their
ratio, and whether the two reports are the same apart from timings (they must be, bit for bit).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_all import ENV, ROOT, machine  # noqa: E402

CHECK = [sys.executable, "-m", "convgrad", "check", "--in", "64x56x56", "--kernels", "64x3x3", "--padding", "1",
         "--impl", "torch", "--method", "coloured", "--json"]


def without_timings(value):
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if not k.endswith("_s")}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


def one(jobs: int) -> tuple[float, dict]:
    start = time.perf_counter()
    done = subprocess.run([*CHECK, "--jobs", str(jobs)], cwd=ROOT, env=ENV, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"--jobs {jobs} exited {done.returncode}: {done.stderr[-400:]}")
    return elapsed, without_timings(json.loads(done.stdout))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds
    print(machine())
    times: dict[int, list[float]] = {1: [], 2: []}
    reports: dict[int, list[dict]] = {1: [], 2: []}
    for _ in range(rounds):
        for jobs in (1, 2):
            elapsed, report = one(jobs)
            times[jobs].append(elapsed)
            reports[jobs].append(report)
    one_job, two_jobs = (statistics.median(times[j]) for j in (1, 2))
    same = all(r == reports[1][0] for r in reports[1] + reports[2])
    print(f"ResNet-50 3x3 (64x56x56, 64x3x3, padding 1), torch, coloured, median of {rounds}: --jobs 1 "
          f"{one_job:.2f} s, --jobs 2 {two_jobs:.2f} s: {two_jobs / one_job:.2f}x (target <= 0.6x); rounds "
          + ", ".join(f"{a:.2f}/{b:.2f}" for a, b in zip(times[1], times[2]))
          + f"; reports identical apart from timings: {'yes' if same else 'NO'}; load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
