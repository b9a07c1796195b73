"""The one way an unknown key is reported, wherever keys are read (declarations, suite files)."""

from __future__ import annotations

import difflib
from typing import Iterable

__all__ = ["unknown_key", "suggestion"]


def suggestion(key: str, known: Iterable[str]) -> str:
    """ "did you mean 'stride'? " for the closest known name, else nothing."""
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.5)
    return f"did you mean {close[0]!r}? " if close else ""


def unknown_key(key: str, known: Iterable[str], where: str = "") -> str:
    """ "unknown key 'stirde' in case 2; did you mean 'stride'? known keys: ..." (plain text)."""
    names = list(known)
    return f"unknown key {key!r}{' ' + where if where else ''}; {suggestion(key, names)}known keys: {', '.join(names)}"
