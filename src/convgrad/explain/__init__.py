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
    PaddedMap,
    Proof,
    Term,
    WorkedCoordinate,
    explain,
)

__all__ = [
    "Derivation",
    "Proof",
    "Term",
    "FilterTerms",
    "WorkedCoordinate",
    "KernelGrid",
    "PaddedMap",
    "explain",
    "PROOF_TOLERANCE",
    "GRID_CAP",
    "MAP_CAP",
    "WORKED_FILTERS",
]
