"""A headless Chromium for the page tests: the OS package's browser, driven by playwright.

Playwright cannot download its own browsers here, so it launches the one the OS installed
(`chromium` on the PATH, or CONVGRAD_CHROMIUM). Locally a missing library or browser skips the
tests with what to install; on CI (CI=true) it fails them, since CI installs both and a broken
install must not pass silently.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import pytest

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]
_INSTALL = {
    "playwright": "pip install playwright",
    "chromium": "apt-get install chromium, or set CONVGRAD_CHROMIUM to a Chromium binary",
}


def _unavailable(what: str, *, module_level: bool = False) -> NoReturn:
    message = f"the browser tests need {what}: {_INSTALL[what]}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (CI installs it, so this is a broken install)", pytrace=False)
    pytest.skip(message, allow_module_level=module_level)


def sync_api() -> ModuleType:
    """playwright.sync_api, or the module's tests skipped (failed on CI)."""
    try:
        import playwright.sync_api as api
    except ImportError:
        _unavailable("playwright", module_level=True)
    return api


def chromium_path() -> str:
    path = os.environ.get("CONVGRAD_CHROMIUM") or shutil.which("chromium")
    if not path:
        _unavailable("chromium")
    return path


@dataclass
class WatchedPage:
    """A page opened from a file, and every request it made for anything else, and every error."""

    page: Any
    problems: list[str] = field(default_factory=list)


def open_file(context: Any, path: Path, hash_: str = "") -> WatchedPage:
    """Open `path` in a new page of `context`; any other request is refused and recorded."""
    url = path.as_uri()
    watched = WatchedPage(context.new_page())

    def refuse(route: Any) -> None:
        if route.request.url.split("#")[0] == url:
            route.continue_()
        else:
            watched.problems.append(f"request refused: {route.request.url}")
            route.abort()

    def request(request: Any) -> None:
        if request.url.split("#")[0] != url:
            watched.problems.append(f"request: {request.url}")

    def console(message: Any) -> None:
        if message.type == "error":
            watched.problems.append(f"console error: {message.text}")

    context.route("**/*", refuse)
    watched.page.on("request", request)
    watched.page.on("console", console)
    watched.page.on("pageerror", lambda error: watched.problems.append(f"page error: {error}"))
    watched.page.goto(url + hash_)
    return watched
