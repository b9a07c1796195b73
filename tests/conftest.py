"""Shared fixtures and small deliberately wrong layers for testing the checker."""

from __future__ import annotations

import numpy as np
import pytest

from convgrad import reference


class ReferenceWith:
    """The reference layer with one gradient replaced: a way to build broken implementations."""

    name = "broken"

    def forward(self, x, w, b, **settings):
        return reference.forward(x, w, b, **settings)

    def backward(self, dy, x, w, b, **settings):
        return reference.backward(dy, x, w, b, **settings)


@pytest.fixture
def reference_with():
    return ReferenceWith
