"""Resolve an implementation spec to the object under test, behind the protocol adapter.

SPEC is `reference`, `torch` or `jax`, a path to a .py file, or a dotted module name, optionally
followed by `:NAME` of an object in it (a module, an instance, a class taking no arguments, or a
layer class built per geometry, see layer_objects.py) holding `forward` and `backward`, or by
`:FORWARD,BACKWARD`, the names of the two functions (`layers.py:conv_forward_naive,conv_backward_naive`).
What the layer declares about itself (declare.py) is read from the file, the object, and a TOML
file given as `config`. Anything that keeps the implementation from loading is an
`ImplementationError` whose message names the fix: the user has to change their input.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import functools
import importlib
import importlib.util
import inspect
import os
import signal
import sys
import threading
from typing import Any, Callable, Iterator, Optional, Sequence, cast

from convgrad.errors import ImplementationError, Parameter, Part
from convgrad.adapters.adapter import Adapter, adapt
from convgrad.adapters.declare import Declarations, own_supports, parse_declarations, read_declarations
from convgrad.frameworks.recognise import framework_implementation, refuse_device
from convgrad.adapters.protocol import Implementation
from convgrad.frameworks.tensors import DEFAULT_DEVICE
from convgrad.adapters.failure import describe_exception
from convgrad.adapters.hints import import_path_hint
from convgrad.adapters.layer_objects import is_layer_class

__all__ = ["BUILTINS", "load_implementation", "as_implementation"]


def _reference(device: str) -> Any:
    from convgrad.adapters.protocol import ReferenceLayer

    refuse_device(device, "reference")
    return ReferenceLayer()


def _torch(device: str) -> Any:
    from convgrad.frameworks.torch_layer import TorchLayer

    return TorchLayer(device)


def _jax(device: str) -> Any:
    from convgrad.frameworks.jax_layer import JaxLayer

    return JaxLayer(device)


# Each is made for the device the layer runs on (--device).
BUILTINS: dict[str, Callable[[str], Any]] = {"reference": _reference, "torch": _torch, "jax": _jax}


def load_implementation(
    spec: str, *, layout: Optional[str] = None, weight_layout: Optional[str] = None, timeout: float | None = None,
    config: Optional[str] = None, paths: Sequence[str] = (), device: str = DEFAULT_DEVICE,
) -> Implementation:
    """The implementation SPEC names, behind the protocol adapter; raises ImplementationError.

    Importing runs the user's file in this process; `timeout` seconds bound it (where the platform
    allows), so a file that hangs at import cannot hang the gate. `paths` go first on the import
    path (a layer that imports its own repository's packages); `config` is a TOML file of
    declarations. Layouts given here win over declared ones.
    """
    spec = spec.strip()
    for folder in reversed(paths):
        if not os.path.isdir(folder):
            raise ImplementationError(Parameter("impl_path", folder), ": no such folder; give the repository's root folder")
        sys.path.insert(0, os.path.abspath(folder))
    if spec in BUILTINS:
        target = BUILTINS[spec](device)
        return adapt(target, spec, layout=layout, weight_layout=weight_layout,
                     declared=read_declarations(target, config=config))
    source, _, attribute = spec.partition(":") if not _is_windows_drive(spec) else _split_drive(spec)
    if not source:
        raise ImplementationError(
            Parameter("impl", repr(spec)), " names no file or module; use e.g. ", Parameter("impl", "my_conv.py"), " or ",
            Parameter("impl", "my_pkg.conv:Layer"),
        )
    if spec.endswith(":"):
        raise ImplementationError(
            Parameter("impl", repr(spec)), " ends with ':' but names no object; give ", Parameter("impl", source + ":NAME"),
            " or just ", Parameter("impl", source),
        )
    if os.path.isdir(source) and not (_is_module_name(source) and os.path.isfile(os.path.join(source, "__init__.py"))):
        raise ImplementationError(*_folder_message(source))
    if not _looks_like_file(source) and not _is_module_name(source):
        raise ImplementationError(
            Parameter("impl", repr(source)), " is neither a .py file nor a dotted module name; use e.g. ",
            Parameter("impl", "my_conv.py"), " or ", Parameter("impl", "my_pkg.conv"),
        )
    with contextlib.redirect_stdout(sys.stderr), _deadline(timeout, spec):  # prints must not corrupt --json
        module = _import_file(source) if _looks_like_file(source) else _import_module(source)
    if "," in attribute:  # :FORWARD,BACKWARD names the two functions
        return adapt(module, spec, layout=layout, weight_layout=weight_layout,
                     declared=read_declarations(module, config=config).merged(_function_pair(module, attribute, spec)))
    target = _attribute(module, attribute, spec) if attribute else module
    declared = read_declarations(module, target, config=config)
    if declared.tensor is not None and inspect.isfunction(target):  # :conv2d of an autograd library
        target, declared = module, declared.merged(parse_declarations({"forward": attribute}, spec))
    return _behind_protocol(target, spec, layout=layout, weight_layout=weight_layout, device=device, declared=declared)


def _function_pair(module: Any, attribute: str, spec: str) -> Declarations:
    names = [n.strip() for n in attribute.split(",")]
    if len(names) != 2 or not all(names):
        raise ImplementationError(
            Parameter("impl", spec), f" names {len(names)} functions; name forward and backward, like ",
            Parameter("impl", spec.rsplit(":", 1)[0] + ":conv_forward_naive,conv_backward_naive"),
        )
    for name in names:
        _attribute(module, name, spec)  # a missing name says so, with the closest one
    return parse_declarations({"forward": names[0], "backward": names[1]}, spec)


class _ImportTimedOut(BaseException):
    """Raised by the alarm inside a hanging import; BaseException so user code cannot swallow it."""


@contextlib.contextmanager
def _deadline(timeout: float | None, spec: str) -> Iterator[None]:
    """Interrupt the block after `timeout` seconds (POSIX main thread; elsewhere no bound)."""
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if timeout is None or not usable:
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise _ImportTimedOut()

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        yield
    except _ImportTimedOut:
        raise ImplementationError(
            Parameter("impl", spec), f" did not finish importing within {timeout:g} s; make the file import "
            "without long work at the top level, or raise ", Parameter("timeout"),
        ) from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def as_implementation(
    impl: Any, *, layout: Optional[str] = None, weight_layout: Optional[str] = None, config: Optional[str] = None,
    device: str = DEFAULT_DEVICE,
) -> Implementation:
    """A spec string, an Adapter, or any object (module, instance, class) with forward/backward:
    the one place an object becomes an Implementation.

    An object is named by its own `name` (a string), else its `__name__`, else its class."""
    if isinstance(impl, Adapter):
        return impl
    if isinstance(impl, (str, os.PathLike)):
        return load_implementation(
            os.fspath(impl), layout=layout, weight_layout=weight_layout, config=config, device=device
        )
    own = getattr(impl, "name", None)
    name = own if isinstance(own, str) else getattr(impl, "__name__", None) or type(impl).__name__
    declared = read_declarations(_module_of(impl), impl, config=config)
    return _behind_protocol(impl, name, layout=layout, weight_layout=weight_layout, device=device, declared=declared)


def _module_of(impl: Any) -> Any:
    """The module a class or function was defined in (its declarations apply), else the object itself."""
    defined_in = getattr(impl, "__module__", None) if (inspect.isclass(impl) or inspect.isfunction(impl)) else None
    return sys.modules.get(defined_in, impl) if isinstance(defined_in, str) else impl


def _behind_protocol(
    target: Any, name: str, *, layout: Optional[str], weight_layout: Optional[str], device: str,
    declared: Declarations,
) -> Implementation:
    """A torch or jax layer through its framework (frameworks/recognise.py); anything else through the adapter."""
    framework = framework_implementation(target, name, layout=layout, weight_layout=weight_layout, device=device,
                                         declared=declared)
    if framework is not None:
        return framework
    refuse_device(device, name)
    made = _instantiate(target, name, declared)
    supports = own_supports(made) if made is not target else None
    if supports is not None:  # an instance method, callable now that there is an instance
        declared = declared.merged(Declarations(supports=supports, source=declared.source))
    return adapt(made, name, layout=layout, weight_layout=weight_layout, declared=declared,
                 factory=_one_per_layer(target, made))


def _one_per_layer(target: Any, made: Any) -> Optional[Callable[[], Any]]:
    """How a network gets an object of its own for each layer: the class convgrad instantiated, or
    a copy of an object handed over (its class's and module's state stay shared, as in a network).
    None for module functions, which every layer shares."""
    if made is not target:
        return cast(Callable[[], Any], target)
    if inspect.ismodule(made) or inspect.isroutine(made) or inspect.isclass(made):
        return None
    return functools.partial(_copy_or_same, made)


def _copy_or_same(made: Any) -> Any:
    """A deep copy, or the object itself when it cannot be copied (it holds a module, a lock)."""
    try:
        return copy.deepcopy(made)
    except Exception:
        return made


def _is_windows_drive(spec: str) -> bool:
    return len(spec) > 2 and spec[1] == ":" and spec[0].isalpha() and spec[2] in "\\/"


def _split_drive(spec: str) -> tuple[str, str, str]:
    drive, rest = spec[:2], spec[2:]
    source, sep, attribute = rest.partition(":")
    return drive + source, sep, attribute


def _is_module_name(source: str) -> bool:
    """'my_pkg.conv' yes; '.', '.conv' or 'a..b' no (importlib raises TypeError on relative names)."""
    return all(part.isidentifier() for part in source.split("."))


def _folder_message(folder: str) -> tuple[Part, ...]:
    """A folder is not a layer: name the .py files in it that could be."""
    try:
        candidates = sorted(n for n in os.listdir(folder) if n.endswith(".py") and not n.startswith("_"))
    except OSError:
        candidates = []
    example = os.path.join(folder, candidates[0]) if candidates else os.path.join(folder, "my_conv.py")
    holds = f" (it holds {', '.join(candidates[:3])}{', ...' if len(candidates) > 3 else ''})" if candidates else ""
    return (
        Parameter("impl", folder), f" is a folder{holds}; name the .py file that defines forward and backward, like ",
        Parameter("impl", example),
    )


def _looks_like_file(source: str) -> bool:
    return source.endswith(".py") or os.sep in source or "/" in source


def _import_file(path: str) -> Any:
    if not path.endswith(".py"):
        raise ImplementationError(Parameter("impl", path), ": give a .py file or a dotted module name like my_pkg.conv")
    if not os.path.isfile(path):
        raise ImplementationError(
            Parameter("impl", path), f": no such file; check the path (it is relative to {os.getcwd()})"
        )
    absolute = os.path.abspath(path)
    stem = os.path.splitext(os.path.basename(absolute))[0]
    module_name = f"convgrad_impl_{stem}_{abs(hash(absolute)):x}"
    spec = importlib.util.spec_from_file_location(module_name, absolute)
    if spec is None or spec.loader is None:  # pragma: no cover - a .py file always has a loader
        raise ImplementationError(Parameter("impl", path), ": Python cannot load this file")
    module = importlib.util.module_from_spec(spec)
    # The file's own folder goes first on the path, so it can import its sibling modules.
    sys.path.insert(0, os.path.dirname(absolute))
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as error:
        sys.modules.pop(module_name, None)
        raise ImplementationError(
            Parameter("impl", path), f" has a syntax error at line {error.lineno}: {error.msg}; fix the file"
        ) from None
    except _ImportTimedOut:
        sys.modules.pop(module_name, None)
        raise
    except BaseException as error:  # anything at import time, even SystemExit, is the file's problem
        sys.modules.pop(module_name, None)
        shadowed = sys.modules.get(stem)
        if isinstance(error, ImportError) and (error.name or "").split(".")[0] == stem:
            if getattr(shadowed, "__file__", None) == absolute:
                sys.modules.pop(stem, None)  # the file imported as the package it meant to import
            raise ImplementationError(
                Parameter("impl", path), f" failed while importing: {describe_exception(error)}; the file is "
                f"named like the package it imports ({stem}), so Python imports the file itself: "
                f"rename it, e.g. to check_{stem}.py"
            ) from None
        if isinstance(error, ModuleNotFoundError):
            raise ImplementationError(
                Parameter("impl", path),
                f" failed while importing: {describe_exception(error)}{import_path_hint(error.name, path)}",
            ) from None
        raise ImplementationError(
            Parameter("impl", path), f" failed while importing: {describe_exception(error)}; fix "
            "the file or install what it imports"
        ) from None
    finally:
        folder = os.path.dirname(absolute)
        if folder in sys.path:  # the imported file may have changed sys.path itself
            sys.path.remove(folder)
    return module


def _import_module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name and (name == error.name or name.startswith(error.name + ".")):
            close = difflib.get_close_matches(name, BUILTINS, n=1)
            hint: tuple[Part, ...] = ("did you mean ", Parameter("impl", close[0]), "? ") if close else ()
            if os.path.isfile(name.replace(".", os.sep) + ".py"):
                hint = ("did you mean the file ", Parameter("impl", name.replace(".", os.sep) + ".py"), "? ")
            raise ImplementationError(
                Parameter("impl", repr(name)), f" is not a built-in ({', '.join(BUILTINS)}), a .py file or an "
                "importable module; ", *hint, "give a path like my_conv.py or a module on PYTHONPATH",
            ) from None
        raise ImplementationError(
            Parameter("impl", name), f" failed while importing: {describe_exception(error)}; install what it imports"
        ) from None
    except SyntaxError as error:
        raise ImplementationError(
            Parameter("impl", name), f" has a syntax error in {os.path.basename(error.filename or '?')} "
            f"at line {error.lineno}: {error.msg}; fix the file"
        ) from None
    except _ImportTimedOut:
        raise
    except BaseException as error:
        raise ImplementationError(
            Parameter("impl", name), f" failed while importing: {describe_exception(error)}; fix the module"
        ) from None


def _attribute(module: Any, attribute: str, spec: str) -> Any:
    target = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            # What the file defines, not the modules it imported (np, torch)
            names = [n for n in dir(target) if not n.startswith("_") and not inspect.ismodule(getattr(target, n, None))]
            close = difflib.get_close_matches(part, names, n=1)
            hint = f"did you mean :{close[0]}?" if close else f"it defines: {', '.join(names[:10]) or 'nothing public'}"
            raise ImplementationError(
                Parameter("impl", spec), f": there is no {part!r} in {spec.rsplit(':', 1)[0]}; {hint}"
            )
        target = getattr(target, part)
    return target


def _instantiate(target: Any, spec: str, declared: Declarations) -> Any:
    """A class is instantiated without arguments, unless it is a layer class (built per geometry,
    layer_objects.py); anything else is used as it is."""
    if not inspect.isclass(target) or is_layer_class(target, declared):
        return target
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        signature = None
    if signature is not None:
        required = [
            n for n, p in signature.parameters.items()
            if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        if required:
            raise ImplementationError(
                Parameter("impl", spec), f": class {target.__name__} needs arguments ({', '.join(required)}); create "
                f"an instance in the file, e.g. layer = {target.__name__}(...), and use ", Parameter("impl", "FILE.py:layer"),
            )
    try:
        return target()
    except Exception as error:
        raise ImplementationError(
            Parameter("impl", spec), f": creating {target.__name__}() raised {describe_exception(error)}; "
            "fix the class or point ", Parameter("impl"), " at an instance",
        ) from None
