"""Optional frameworks behind the built-in implementations, imported only when asked for."""

from __future__ import annotations

from typing import Any

from convgrad.errors import ImplementationError, Parameter

__all__ = ["require"]


def require(module: str, extra: str) -> Any:
    """Import an optional framework, or say which extra installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImplementationError(
            Parameter("impl", extra), f" needs {module}, which is not installed ({error}); install it "
            f"with pip install 'convgrad[{extra}]'"
        ) from None
