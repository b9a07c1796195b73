"""The report as JUnit XML for CI systems: one testcase per case, the why as the message.

A case that failed gets <failure>, one that could not be checked (the layer raised, returned the
wrong shape, hung or died) <error>, a skipped one <skipped>; the message names each wrong tensor
and its diagnosis.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET

from convgrad.render.table import STATUS_TEXT
from convgrad.report import CaseReport, SuiteReport

__all__ = ["render_junit"]


def _details(case: CaseReport) -> str:
    lines = [case.geometry.describe(), f"dtype {case.geometry.dtype}  seed {case.seed}  rtol {case.tolerances.rtol:g}"]
    for t in case.rows:
        status = t.absent or STATUS_TEXT[t.status][0]
        error = "-" if t.max_rel_error is None else f"{t.max_rel_error:.3e}"
        lines.append(f"{t.label}: {status}  max rel error {error}" + (f"  {t.reason}" if t.reason else ""))
    lines.extend(f"why ({d.tensor}): {d.message}" for d in case.diagnoses)
    for check in case.calls:
        lines.append(f"{check.name}: {STATUS_TEXT[check.status][0]}" + (f"  {check.reason}" if check.reason else ""))
    lines.extend(f"warning: {w}" for w in case.warnings)
    return "\n".join(lines)


def render_junit(suite: SuiteReport, suite_name: str = "convgrad") -> str:
    """A <testsuites> document with one <testsuite>; skipped cases get <skipped message=...>."""
    counts = {
        "tests": str(len(suite.cases)),
        "failures": str(sum(1 for case in suite.cases if case.failed and case.status != "error")),
        "errors": str(suite.count("error")),
        "skipped": str(suite.count("skipped")),
        "time": f"{suite.elapsed_s:.3f}",
    }
    root = ET.Element("testsuites", {"name": "convgrad", **counts})
    testsuite = ET.SubElement(root, "testsuite", {"name": suite_name, **counts})
    for case in suite.cases:
        element = ET.SubElement(
            testsuite,
            "testcase",
            {"classname": _classname(case.implementation), "name": case.name, "time": f"{case.elapsed_s:.3f}"},
        )
        if case.skipped is not None:
            ET.SubElement(element, "skipped", {"message": case.skipped})
        elif case.status == "error":
            error = ET.SubElement(element, "error", {"message": case.failure_summary, "type": "ImplementationError"})
            error.text = _details(case)
        elif not case.passed:
            failure = ET.SubElement(element, "failure", {"message": case.failure_summary, "type": "GradientCheckFailure"})
            failure.text = _details(case)
        if case.warnings:
            ET.SubElement(element, "system-out").text = "\n".join(f"warning: {w}" for w in case.warnings)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _classname(implementation: str) -> str:
    """'convgrad.my_conv' for tests/my_conv.py: CI test views split class names on dots."""
    source, _, name = implementation.partition(":")
    if source.endswith(".py"):  # a file: its name without folders or suffix
        source = os.path.basename(source)[: -len(".py")]
    parts = [re.sub(r"[^\w.]", "_", p) for p in (source, name) if p]
    return ".".join(["convgrad", *parts])
