"""`convgrad explain`: the derivation of a layer's gradients with its own numbers, its formulas as
data that evaluates, and the proof that it holds."""

from convgrad.explain.derivation import (
    GRID_CAP,
    MAP_CAP,
    PROOF_TOLERANCE,
    WORKED_FILTERS,
    Derivation,
    FilterTerms,
    KernelGrid,
    PlaneMap,
    Proof,
    Shortcut,
    Term,
    WeightCoordinate,
    WeightTerm,
    WorkedCoordinate,
    explain,
)

__all__ = [
    "Derivation",
    "Proof",
    "Term",
    "FilterTerms",
    "WorkedCoordinate",
    "WeightCoordinate",
    "WeightTerm",
    "Shortcut",
    "KernelGrid",
    "PlaneMap",
    "explain",
    "PROOF_TOLERANCE",
    "GRID_CAP",
    "MAP_CAP",
    "WORKED_FILTERS",
]
