"""Imports run one way, in the order a case flows (docs/ARCHITECTURE.md): a module imports only
modules of its own stage or an earlier one, no type is imported under TYPE_CHECKING to hide a
cycle, and no modules import each other when they load. Read from the sources with `ast`."""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass

import convgrad

PACKAGE_DIR = os.path.dirname(os.path.abspath(convgrad.__file__))

# Earliest first. A module belongs to the stage of the longest name here that starts it.
STAGES: tuple[tuple[str, ...], ...] = (
    ("convgrad.errors", "convgrad.keys"),
    ("convgrad.geometry",),
    ("convgrad.options", "convgrad.reference", "convgrad.covering", "convgrad.suite"),
    ("convgrad.adapters", "convgrad.frameworks"),  # the layer under test, and what it raises
    ("convgrad.numerics",),
    ("convgrad.report",),  # the data a check produces, with diagnoses and locations
    ("convgrad.compare",),
    ("convgrad.findings",),
    ("convgrad.harness",),  # what every call goes through, used by run/ alone
    ("convgrad.run",),
    ("convgrad.explain",),
    ("convgrad.render", "convgrad.testing"),
    ("convgrad.cli", "convgrad.__main__"),
)

# TYPE_CHECKING imports of convgrad's own modules that hide no cycle, and why they are there.
TYPES_ONLY: dict[tuple[str, str], str] = {
    ("convgrad.cli", "convgrad.geometry"): "`convgrad --help` imports no more than it needs",
    ("convgrad.cli", "convgrad.report"): "`convgrad --help` does not import NumPy",
    ("convgrad.cli", "convgrad.explain"): "`convgrad --help` does not import NumPy",
    ("convgrad.render.json", "convgrad.render.fuzz"): "a check's --json does not load fuzz's live display",
    ("convgrad.render.json", "convgrad.run.fuzz"): "a check's --json does not load the fuzz loop",
}
# The package's public names: real types for type checkers, imported on first use at run time.
PUBLIC_NAMES = "convgrad"


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int
    type_checking: bool  # under `if TYPE_CHECKING:`
    at_load: bool  # runs when the importer loads (not inside a function, not for type checkers)


def _module_name(path: str) -> str:
    relative = os.path.relpath(path, os.path.dirname(PACKAGE_DIR))[: -len(".py")].split(os.sep)
    return ".".join(relative[:-1] if relative[-1] == "__init__" else relative)


def _modules() -> dict[str, ast.Module]:
    found = {}
    for directory, _, files in os.walk(PACKAGE_DIR):
        for file in files:
            if file.endswith(".py"):
                path = os.path.join(directory, file)
                with open(path, encoding="utf-8") as source:
                    found[_module_name(path)] = ast.parse(source.read(), path)
    return found


MODULES = _modules()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _targets(node: ast.Import | ast.ImportFrom) -> list[str]:
    """The convgrad modules an import statement loads (a name from a module: that module)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name.split(".")[0] == "convgrad"]
    assert node.level == 0, "convgrad imports its modules by absolute name"
    if node.module is None or node.module.split(".")[0] != "convgrad":
        return []
    submodules = [f"{node.module}.{alias.name}" for alias in node.names if f"{node.module}.{alias.name}" in MODULES]
    return submodules or [node.module]


def _imports() -> list[Import]:
    found: list[Import] = []

    def visit(module: str, nodes: list[ast.stmt], type_checking: bool, at_load: bool) -> None:
        for node in nodes:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                found.extend(Import(module, target, node.lineno, type_checking, at_load and not type_checking)
                             for target in _targets(node))
            elif isinstance(node, ast.If) and _is_type_checking(node.test):
                visit(module, node.body, True, at_load)
                visit(module, node.orelse, type_checking, at_load)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(module, node.body, type_checking, False)
            else:
                for field in ("body", "orelse", "finalbody", "handlers"):
                    visit(module, getattr(node, field, []), type_checking, at_load)

    for module, tree in MODULES.items():
        visit(module, tree.body, False, True)
    return found


IMPORTS = _imports()


def _stage(module: str) -> int:
    matches = [
        (len(prefix), index) for index, names in enumerate(STAGES) for prefix in names
        if module == prefix or module.startswith(prefix + ".")
    ]
    assert matches, f"{module} belongs to no stage: add it to STAGES in {__file__}"
    return max(matches)[1]


def test_the_sources_are_read_and_their_imports_found():
    # What the tests below would pass vacuously without.
    assert {"convgrad.report", "convgrad.findings.locate", "convgrad.adapters.failure"} <= set(MODULES)
    assert any(i.importer == "convgrad.findings.locate" and i.imported == "convgrad.report" and i.at_load for i in IMPORTS)
    assert any(i.importer == "convgrad.cli" and i.type_checking for i in IMPORTS)
    assert any(i.importer == "convgrad.run.case" and i.imported == "convgrad.harness.guard" for i in IMPORTS)
    assert any(i.importer == "convgrad.cli" and not i.at_load for i in IMPORTS)  # inside its commands


def test_every_module_imports_only_its_own_stage_or_earlier_ones():
    backwards = [
        f"{i.importer} (line {i.line}) imports {i.imported}, a later stage"
        for i in IMPORTS
        if i.importer != PUBLIC_NAMES and i.imported != "convgrad" and _stage(i.imported) > _stage(i.importer)
    ]
    assert not backwards, "\n".join(backwards)


def test_the_stages_the_layer_under_test_and_the_findings_depend_on():
    def imported_by(package: str) -> set[str]:
        return {i.imported for i in IMPORTS if i.importer.startswith(package + ".")}

    for package in ("convgrad.numerics", "convgrad.findings", "convgrad.adapters", "convgrad.frameworks"):
        assert not {m for m in imported_by(package) if m.startswith(("convgrad.harness", "convgrad.run"))}, package
    report = {i.imported for i in IMPORTS if i.importer == "convgrad.report"}
    assert not {m for m in report if m.startswith(("convgrad.findings", "convgrad.run", "convgrad.render"))}


def test_no_convgrad_module_is_imported_for_type_checkers_only_to_hide_a_cycle():
    hidden = [
        f"{i.importer} (line {i.line}) imports {i.imported} under TYPE_CHECKING"
        for i in IMPORTS
        if i.type_checking and i.importer != PUBLIC_NAMES and (i.importer, i.imported) not in TYPES_ONLY
    ]
    assert not hidden, "\n".join(hidden) + "\nimport it at run time (move the shared type down a stage)"
    stale = set(TYPES_ONLY) - {(i.importer, i.imported) for i in IMPORTS if i.type_checking}
    assert not stale, f"allowed TYPE_CHECKING imports that no longer exist: {sorted(stale)}"


def test_no_modules_import_each_other_when_they_load():
    graph: dict[str, set[str]] = {}
    for i in IMPORTS:
        if i.at_load and i.imported in MODULES and i.imported != "convgrad":
            graph.setdefault(i.importer, set()).add(i.imported)
    cycles = []
    visiting: list[str] = []
    done: set[str] = set()

    def walk(module: str) -> None:
        if module in visiting:
            cycles.append(" -> ".join(visiting[visiting.index(module):] + [module]))
            return
        if module in done:
            return
        visiting.append(module)
        for imported in sorted(graph.get(module, ())):
            walk(imported)
        visiting.pop()
        done.add(module)

    for module in sorted(graph):
        walk(module)
    assert not cycles, "\n".join(cycles)
