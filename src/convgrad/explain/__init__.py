"""`convgrad explain`: the derivation of a layer's gradients with its own numbers, its formulas as
data that evaluates, and the proof that it holds. The parts a derivation is made of (worked
coordinates, maps, grids) live in explain/derivation.py."""

from convgrad.explain.derivation import PROOF_TOLERANCE, Derivation, Proof, explain

__all__ = ["Derivation", "Proof", "explain", "PROOF_TOLERANCE"]
