"""Index formulas as data: printed from the same structure that evaluates them.

A formula defines a tensor entry by entry: `lhs[indices] = Σ_terms Σ_sums Π factors`, every index
an affine combination of variables (`2i+u`, `2−u'`, `3g+f'`), each variable running over
0..extent−1. A read outside a tensor is 0 (the zero padding, the zeros the stride inserts), and so
is an entry the formula never writes. Because `text` and `evaluate` read one structure, a test
that evaluates every printed formula against the reference proves the printed text itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Mapping, Sequence

import numpy as np

__all__ = ["Affine", "Let", "Read", "Derivative", "Term", "Formula", "affine", "variable"]


def _signed(coefficient: int, name: str, first: bool) -> str:
    """'2u', '−u', '+3g' for a coefficient times a name (or a bare number for an empty name)."""
    magnitude = abs(coefficient)
    body = str(magnitude) if not name else (name if magnitude == 1 else f"{magnitude}{name}")
    if coefficient < 0:
        return f"−{body}"
    return body if first else f"+{body}"


@dataclass(frozen=True)
class Affine:
    """Σ coefficient·variable + constants, kept in the order written (`2−u'` reads better than `−u'+2`)."""

    parts: tuple[tuple[str, int], ...]  # (variable, coefficient); variable "" is a constant

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, coefficient in self.parts if name and coefficient)

    def text(self) -> str:
        shown = [(name, c) for name, c in self.parts if c]
        if not shown:
            return "0"
        return "".join(_signed(c, name, first=i == 0) for i, (name, c) in enumerate(shown))

    def substituted(self, values: Mapping[str, int]) -> Affine:
        """Known variables replaced by their values, gathered into one constant where the first
        of them stood: y+u' at y=2 is 2+u'."""
        parts: list[tuple[str, int]] = []
        constant, at = 0, None
        for name, coefficient in self.parts:
            if name and name not in values:
                parts.append((name, coefficient))
                continue
            constant += coefficient * (values[name] if name else 1)
            at = len(parts) if at is None else at
        if at is not None:
            parts.insert(at, ("", constant))
        return Affine(tuple(parts))

    def value(self, values: Mapping[str, np.ndarray]) -> np.ndarray | int:
        total: np.ndarray | int = 0
        for name, coefficient in self.parts:
            total = total + (coefficient * values[name] if name else coefficient)
        return total

    def to_dict(self) -> dict[str, Any]:
        return {
            "terms": [[name, c] for name, c in self.parts if name and c],
            "const": sum(c for name, c in self.parts if not name),
        }


def affine(*parts: tuple[str, int] | str | int) -> Affine:
    """affine("y", ("u'", 2), -1) is y+2u'−1: a name counts once, an int is a constant."""
    return Affine(tuple(
        (part, 1) if isinstance(part, str) else ("", part) if isinstance(part, int) else part for part in parts
    ))


def variable(name: str) -> Affine:
    return Affine(((name, 1),))


@dataclass(frozen=True)
class Let:
    """A value derived from a variable: ⌊of/by⌋ ("div") or of mod by ("mod")."""

    name: str
    of: str
    by: int
    kind: Literal["div", "mod"]
    meaning: str  # "c's group", "c's place in its group"

    def text(self) -> str:
        formula = f"⌊{self.of}/{self.by}⌋" if self.kind == "div" else f"{self.of} mod {self.by}"
        return f"{self.name} = {formula} ({self.meaning})"

    def value(self, values: Mapping[str, np.ndarray]) -> np.ndarray:
        of = values[self.of]
        return of // self.by if self.kind == "div" else of % self.by


@dataclass(frozen=True)
class Read:
    """tensor[index, ...]; 0 outside the tensor."""

    tensor: str
    index: tuple[Affine, ...]

    def text(self) -> str:
        return f"{self.tensor}[{','.join(i.text() for i in self.index)}]"

    def value(self, tensors: Mapping[str, np.ndarray], values: Mapping[str, np.ndarray]) -> np.ndarray:
        return _gather(tensors[self.tensor], [i.value(values) for i in self.index])

    def substituted(self, values: Mapping[str, int]) -> Read:
        return Read(self.tensor, tuple(i.substituted(values) for i in self.index))

    def to_dict(self) -> dict[str, Any]:
        return {"tensor": self.tensor, "index": [i.to_dict() for i in self.index]}


@dataclass(frozen=True)
class Derivative:
    """∂of/∂wrt: one entry of the Jacobian, read from the tensor named '∂O/∂X' (of's indices, then wrt's)."""

    of: Read
    wrt: Read

    @property
    def tensor(self) -> str:
        return f"∂{self.of.tensor}/∂{self.wrt.tensor}"

    def text(self) -> str:
        return f"∂{self.of.text()}/∂{self.wrt.text()}"

    def value(self, tensors: Mapping[str, np.ndarray], values: Mapping[str, np.ndarray]) -> np.ndarray:
        return Read(self.tensor, self.of.index + self.wrt.index).value(tensors, values)

    def substituted(self, values: Mapping[str, int]) -> Derivative:
        return Derivative(self.of.substituted(values), self.wrt.substituted(values))


Factor = Read | Derivative


@dataclass(frozen=True)
class Term:
    """Σ over `sums` (each tuple one Σ sign: Σ_u,v) of the product of `factors`."""

    sums: tuple[tuple[str, ...], ...]
    factors: tuple[Factor, ...]

    @property
    def summed(self) -> tuple[str, ...]:
        return tuple(name for group in self.sums for name in group)

    def text(self) -> str:
        signs = "".join(f"Σ_{','.join(group)} " for group in self.sums)
        return signs + "·".join(f.text() for f in self.factors)

    def substituted(self, values: Mapping[str, int]) -> Term:
        return Term(self.sums, tuple(f.substituted(values) for f in self.factors))


@dataclass(frozen=True)
class Formula:
    """lhs = Σ terms; `extents` gives every variable's range, `lets` the values derived from them."""

    lhs: Read
    terms: tuple[Term, ...]
    extents: tuple[tuple[str, int], ...]
    lets: tuple[Let, ...] = ()

    @property
    def free(self) -> tuple[str, ...]:
        """The variables of the left side, in order: the coordinate the formula is written for."""
        names: list[str] = []
        for index in self.lhs.index:
            names.extend(n for n in index.names if n not in names)
        return tuple(names)

    def text(self) -> str:
        return f"{self.lhs.text()} = {' + '.join(t.text() for t in self.terms)}"

    def coordinate_of(self, index: Sequence[int]) -> dict[str, int]:
        """The free variables' values at an entry of the left side (dK[0,0,1,1] of dK[f,0,u,v] is
        f=0, u=1, v=1). Raises ValueError for an entry the formula does not write that way."""
        values: dict[str, int] = {}
        for position, value in zip(self.lhs.index, index):
            terms = [(name, c) for name, c in position.parts if c]
            if len(terms) == 1 and terms[0][0] and terms[0][1] == 1:
                values[terms[0][0]] = int(value)
            elif position.names or position.value({}) != value:  # a sum of variables, or another constant
                raise ValueError(f"{self.lhs.text()} has no entry {list(index)} by its own variables")
        return values

    def text_at(self, coordinate: Mapping[str, int]) -> str:
        """The formula at one coordinate of its left side, lets worked out: dX[0,0,2,2] = Σ_f ..."""
        values = dict(coordinate)
        for let in self.lets:
            if let.of in values:
                values[let.name] = int(let.value({let.of: np.asarray(values[let.of])}))
        terms = (t.substituted(values) for t in self.terms)
        return f"{self.lhs.substituted(values).text()} = {' + '.join(t.text() for t in terms)}"

    def where(self) -> str:
        """'g = ⌊c/2⌋ (c's group), c' = c mod 2 (c's place in its group)', or ''."""
        return ", ".join(let.text() for let in self.lets)

    def evaluate(self, tensors: Mapping[str, np.ndarray], shape: Sequence[int]) -> np.ndarray:
        """The lhs tensor (of `shape`) as this formula defines it: zero where it writes nothing,
        writes outside `shape` dropped (a crop)."""
        extent = dict(self.extents)
        free = self.free
        rhs = np.zeros([extent[name] for name in free])
        for term in self.terms:
            axes = free + term.summed
            values: dict[str, np.ndarray] = {
                name: np.arange(extent[name]).reshape([-1 if a == i else 1 for a in range(len(axes))])
                for i, name in enumerate(axes)
            }
            for let in self.lets:
                values[let.name] = let.value(values)
            product: np.ndarray = np.ones([1] * len(axes))
            for factor in term.factors:
                product = product * factor.value(tensors, values)
            product = np.broadcast_to(product, [extent[name] for name in axes])
            rhs += product.sum(axis=tuple(range(len(free), len(axes))))
        free_values = {
            name: np.arange(extent[name]).reshape([-1 if a == i else 1 for a in range(len(free))])
            for i, name in enumerate(free)
        }
        out = np.zeros(shape)
        _scatter(out, [np.broadcast_to(i.value(free_values), rhs.shape) for i in self.lhs.index], rhs)
        return out

    def to_dict(self) -> dict[str, Any]:
        """The structure the explain page evaluates in the browser (render/page/explain.js)."""
        return {
            "text": self.text(),
            "lhs": self.lhs.to_dict(),
            "extents": [[name, size] for name, size in self.extents],
            "free": list(self.free),
            "lets": [{"name": let.name, "of": let.of, let.kind: let.by} for let in self.lets],
            "terms": [
                {"sum": list(term.summed), "factors": [_read_of(f).to_dict() for f in term.factors]}
                for term in self.terms
            ],
        }


def _read_of(factor: Factor) -> Read:
    if isinstance(factor, Read):
        return factor
    return Read(factor.tensor, factor.of.index + factor.wrt.index)


def _inside(array: np.ndarray, index: Sequence[np.ndarray | int]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Which index tuples fall inside `array`, and the indices clipped so that every one is valid."""
    arrays = np.broadcast_arrays(*[np.asarray(i) for i in index])
    inside = np.ones(arrays[0].shape, dtype=bool)
    for i, size in zip(arrays, array.shape):
        inside &= (i >= 0) & (i < size)
    return inside, [np.clip(i, 0, size - 1) for i, size in zip(arrays, array.shape)]


def _gather(array: np.ndarray, index: Sequence[np.ndarray | int]) -> np.ndarray:
    inside, clipped = _inside(array, index)
    return np.where(inside, array[tuple(clipped)], 0.0)


def _scatter(out: np.ndarray, index: Sequence[np.ndarray], values: np.ndarray) -> None:
    inside, clipped = _inside(out, index)
    np.add.at(out, tuple(c[inside] for c in clipped), values[inside])
