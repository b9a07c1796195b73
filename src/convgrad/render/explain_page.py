"""`convgrad explain --html`: the derivation as one self-contained HTML page, with an explorer.

Reads the page data of explain (a JSON-able mapping: title, fields, sections, tensors, explorers)
and never computes: the sections are shown as they are, and the explorer (page/explain.js)
evaluates the formulas of the data in the browser. The page needs no network and no server: the
CSS, the script and the data are inlined, so it works opened from disk.
"""

from __future__ import annotations

import html
import json
from importlib.resources import files
from string import Template
from typing import Any, Mapping, Sequence

__all__ = ["render_page"]


def _asset(name: str) -> str:
    return files("convgrad.render").joinpath("page", name).read_text(encoding="utf-8")


def _embedded_json(data: Mapping[str, Any]) -> str:
    """The data as JSON that no string in it can end early: inside a <script> element, '</script>'
    or '<!--' would, so every <, > and & is written as its \\u escape (only strings can hold them)."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _section(section: Mapping[str, str]) -> str:
    return (
        f'<section class="step">\n<h2>{html.escape(section["title"])}</h2>\n'
        f'<pre>{html.escape(section["text"])}</pre>\n</section>'
    )


def _fields(fields: Sequence[str]) -> str:
    return "\n".join(f"<li>{html.escape(field)}</li>" for field in fields)


def render_page(data: Mapping[str, Any]) -> str:
    """One HTML document: the header, the first section (the answer), the explorer, the rest."""
    sections = [_section(section) for section in data["sections"]]
    return Template(_asset("explain.html")).substitute(
        title=html.escape(data["title"]),
        fields=_fields(data["fields"]),
        answer="\n".join(sections[:1]),
        derivation="\n".join(sections[1:]),
        css=_asset("explain.css"),
        data=_embedded_json(data),
        script=_asset("explain.js"),
    )
