"""The command line: parses flags, runs checks, renders reports. No numerics here.

Errors reach the user in one place, `ConvgradCommand.invoke` (and `make_context` for click's own
parse errors): one line on stderr naming the fix in the command line's words (`--kernels`, not
`kernel_shape`), exit code 2. Heavy modules (NumPy, the pipeline) are imported inside commands so
`convgrad --help` starts fast.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, Callable, Optional, TypeVar

import click

from convgrad import __version__
from convgrad.adapters.vocabulary import LAYOUTS, WEIGHT_LAYOUTS
from convgrad.errors import Audience, ConvgradError
from convgrad.options import (
    DEFAULT_BUDGET_S, DEFAULT_FUZZ_TIMEOUT_S, DEFAULT_SAMPLES, DEFAULT_TIMEOUT_S, DIFFERENCES, METHODS, SAMPLING_METHODS,
)

if TYPE_CHECKING:  # types only, not a cycle: `convgrad --help` loads neither rich's console nor NumPy
    from rich.console import Console

    from convgrad.explain import Derivation
    from convgrad.geometry import Dtype, LayerGeometry
    from convgrad.report import SuiteReport

__all__ = ["cli", "main", "CLI", "EXIT_PASSED", "EXIT_FAILED", "EXIT_BAD_INPUT", "EXIT_INTERRUPTED"]

F = TypeVar("F", bound=Callable[..., Any])

EXIT_PASSED, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130

# The flag of every parameter whose name differs from its flag's (others are --name-with-dashes).
_FLAGS = {"in_shape": "--in", "kernel_shape": "--kernels", "relative_step": "--step", "config": "--config"}


def _flag(parameter: str) -> str:
    return _FLAGS.get(parameter, "--" + parameter.replace("_", "-"))


# How errors name parameters on the command line: `--kernels 5x3x3x3`.
CLI = Audience(name=_flag, assign=lambda parameter, value: f"{_flag(parameter)} {value}")


class BadInput(click.ClickException):
    """Input the user has to fix: 'Error: <one line>' on stderr, exit 2."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


def _usage_line(error: click.UsageError) -> BadInput:
    command = error.ctx.command_path if error.ctx else "convgrad"
    return BadInput(f"{error.format_message()} (see '{command} --help')")


class ConvgradCommand(click.Command):
    """A command whose bad input is one line and exit 2, and whose Ctrl-C is exit 130."""

    def make_context(self, info_name: Optional[str], args: list[str], parent: Optional[click.Context] = None,
                     **extra: Any) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as error:
            raise _usage_line(error) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConvgradError as error:
            raise BadInput(error.render(CLI)) from None
        except click.UsageError as error:
            raise _usage_line(error) from None
        except KeyboardInterrupt:  # child processes are ended by the isolation's own cleanup
            click.echo("Interrupted.", err=True)
            ctx.exit(EXIT_INTERRUPTED)


class ConvgradGroup(click.Group):
    """The `convgrad` group: its commands are ConvgradCommands, an unknown command is one line."""

    command_class = ConvgradCommand

    def make_context(self, info_name: Optional[str], args: list[str], parent: Optional[click.Context] = None,
                     **extra: Any) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as error:
            raise _usage_line(error) from None

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[Optional[str], Optional[click.Command], list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as error:
            raise _usage_line(error) from None


@click.group(cls=ConvgradGroup, invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="convgrad")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Check the backward pass of convolution layers against finite differences.

    \b
    Exit codes: 0 every check passed, 1 a check failed or the layer could not be
    checked (it raised, returned the wrong shape), 2 the input was wrong.
    Start with:  convgrad check --in 3x20x20 --kernels 5x3x3x3
    """
    if ctx.invoked_subcommand is None:  # bare `convgrad`: the help, as a success
        click.echo(ctx.get_help())


def _existing_folder(ctx: click.Context, param: click.Parameter, value: Optional[str]) -> Optional[str]:
    """An output file must be a path into a folder that exists: refused before any check runs."""
    if value == "-":  # not standard output: that is where the text goes
        raise click.BadParameter("needs a file path, such as out.html; '-' would be a file named '-'", ctx, param)
    if value is not None:
        folder = os.path.dirname(os.path.abspath(value))
        if not os.path.isdir(folder):
            raise click.BadParameter(f"the folder {folder} does not exist; create it or write elsewhere", ctx, param)
    return value


def geometry_options(function: F, *, dtype_help: str = "Floating-point type of the check.") -> F:
    """The flags that describe one layer, shared by every command that builds one."""
    options = [
        click.option("--in", "in_shape", metavar="CxHxW",
                     help="Input shape without the batch: CxL (1-D), CxHxW (2-D) or CxDxHxW (3-D)."),
        click.option("--kernels", "kernel_shape", metavar="FxCxKHxKW",
                     help="Kernel tensor shape Fx(C/groups)xk... (e.g. 5x3x3x3), or Fxk... to take "
                          "the depth from --in and --groups."),
        click.option("--batch", default=1, show_default=True, type=int, help="Batch size N."),
        click.option("--stride", default="1", show_default=True, help="An int, or one per axis like 2x1."),
        click.option("--padding", default="0", show_default=True,
                     help="An int, one per axis like 1x0, before,after like 0,1 (or per axis 0,1x1,2), "
                          "'valid' (0) or 'same' (TensorFlow's: the output is ceil(H / stride); at a "
                          "stride the odd pixel goes after)."),
        click.option("--dilation", default="1", show_default=True, help="An int, or one per axis like 2x1."),
        click.option("--groups", default=1, show_default=True, type=int,
                     help="Groups; C and F must both be divisible by it (groups = C is depthwise)."),
        click.option("--dtype", default="float64", show_default=True,
                     type=click.Choice(["float64", "float32"]), help=dtype_help),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def implementation_options(function: F) -> F:
    """--impl and the layouts: which layer is under test, shared by every command that checks one."""
    options = [
        click.option("--impl", default="reference", show_default=True, metavar="SPEC",
                     help="Implementation under test: reference, torch, jax, a FILE.py or a dotted module, "
                          "optionally :NAME of the object holding forward and backward."),
        click.option("--layout", type=click.Choice(LAYOUTS), default=None,
                     help="Array layout the implementation takes: channels first (N, C, *spatial) or last "
                          "[default: as declared, else nchw]."),
        click.option("--weight-layout", type=click.Choice(WEIGHT_LAYOUTS), default=None,
                     help="Kernel layout: (F, C/groups, *k), (*k, C/groups, F) or (C/groups, F, *k) "
                          "[default: as declared, else oihw]."),
        click.option("--impl-config", metavar="FILE.toml", default=None,
                     help="Declarations of the implementation (layout, limits, constructor, ...; see README)."),
        click.option("--impl-path", metavar="FOLDER", multiple=True,
                     help="Put FOLDER first on the import path, e.g. the root of the layer's repository."),
        click.option("--device", default="cpu", show_default=True, metavar="DEVICE",
                     help="Where a torch or jax layer runs: cpu, cuda, cuda:1, mps, ..."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _geometry(flags: dict[str, Any]) -> "LayerGeometry":
    from convgrad.geometry import resolve_geometry

    for name in ("in_shape", "kernel_shape"):
        if flags.get(name) is None:  # not click's required=True: --config may give the geometry instead
            raise click.MissingParameter(param_hint=f"'{_flag(name)}'", param_type="option")
    return resolve_geometry(
        flags["in_shape"], flags["kernel_shape"], batch=flags["batch"], stride=flags["stride"],
        padding=flags["padding"], dilation=flags["dilation"], groups=flags["groups"], dtype=flags["dtype"],
    )


@cli.command()
@geometry_options
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the random layer and upstream gradient.")
@click.option("--rtol", type=float, default=None,
              help="Tolerance relative to each tensor's scale [default: 1e-8 float64, 1e-3 float32].")
@click.option("--step", type=float, default=None,
              help="Finite-difference step relative to the perturbed tensor's scale S(T) (see README) [default: 0.5].")
@click.option("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="SECONDS",
              help=f"Fail a case that has not finished after this many seconds [default: {DEFAULT_TIMEOUT_S:g}].")
@click.option("--method", type=click.Choice(METHODS), default="auto", show_default=True,
              help="auto: every coordinate, cheapest exact way; coloured: every coordinate, "
                   "non-overlapping ones together; dense: one at a time; sample: --samples random "
                   "coordinates; projection: --samples random directions.")
@click.option("--samples", type=click.IntRange(min=1), default=DEFAULT_SAMPLES, show_default=True,
              help="Coordinates (sample) or directions (projection) per tensor.")
@click.option("--differences", type=click.Choice(DIFFERENCES), default="auto", show_default=True,
              help="auto: one-sided for each tensor the forward is verified to be linear in, central "
                   "for the others; central: always; one-sided: always, trusting the forward to be linear.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@click.option("--quiet", "-q", is_flag=True,
              help="Print only the verdict line (with --config: one line per way the cases ended).")
@click.option("--verbose", "-v", is_flag=True,
              help="With --config: print every case in full and a table of every case (default: the first "
                   "case of each way of failing in full, the rest grouped by cause).")
@implementation_options
@click.option("--no-forward-check", is_flag=True,
              help="Do not compare the output with the reference convolution (row O).")
@click.option("--jobs", type=click.IntRange(min=1), default=None, metavar="N",
              help="Processes: cases run side by side, each in its own process, and when there are fewer "
                   "cases than N, each case's coloured calls are shared out over the rest [default: one "
                   "case per core, each case's calls in one process].")
@click.option("--strict", is_flag=True,
              help="A case the implementation cannot express fails instead of being skipped.")
@click.option("--order", type=click.IntRange(min=1, max=2), default=1, show_default=True,
              help="2: also the double backward (torch and jax layers): autograd's derivatives of the layer's "
                   "own backward against differences of it, every coordinate.")
@click.option("--jvp", is_flag=True,
              help="Also the forward-mode derivative (torch forward AD, jax.jvp) along every colour of x, w "
                   "and b, against the reference convolution's.")
@click.option("--fail-fast", is_flag=True,
              help="With --config: start no case once one has failed (those running finish).")
@click.option("--config", "config_path", metavar="FILE.toml", type=click.Path(exists=True, dir_okay=False),
              help="Run every case of a suite file (see configs/); the geometry flags are then refused.")
@click.option("--junit", "junit_path", metavar="FILE", type=click.Path(dir_okay=False, writable=True),
              callback=_existing_folder, help="Also write the report as JUnit XML to FILE.")
@click.option("--svg", "svg_path", type=click.Path(dir_okay=False, writable=True), callback=_existing_folder,
              help="Also save the printed report (table, where, why, heatmaps) as an SVG picture.")
@click.pass_context
def check(ctx: click.Context, /, seed: int, rtol: Optional[float], step: Optional[float],
          as_json: bool, quiet: bool, verbose: bool, impl: str, layout: Optional[str], weight_layout: Optional[str],
          impl_config: Optional[str], impl_path: tuple[str, ...], device: str,
          no_forward_check: bool, jobs: Optional[int], strict: bool, order: int, jvp: bool, fail_fast: bool,
          config_path: Optional[str],
          junit_path: Optional[str],
          svg_path: Optional[str], timeout: float, method: Any, samples: int, differences: Any,
          **flags: Any) -> None:
    """Check the analytical dX, dK and db of a conv layer against finite differences.

    Every coordinate of every gradient is compared (unless --method sample or projection), and
    the output against the reference convolution.

    \b
    Examples:
      convgrad check --in 3x20x20 --kernels 5x3x3x3
      convgrad check --in 8x32x32 --kernels 8x3x3 --stride 2 --padding 1 --batch 2
      convgrad check --in 4x16 --kernels 4x1x5 --groups 4 --dtype float32 --json
      convgrad check --impl my_conv.py --config configs/standard.toml --junit report.xml
      convgrad check --impl my_conv.py:Layer --layout nhwc --weight-layout hwio --in 3x8x8 --kernels 4x3x3x3
      convgrad check --in 64x56x56 --kernels 64x3x3 --padding 1 --method projection
    """
    _one_thread_per_library()
    from convgrad.adapters.loading import load_implementation
    from convgrad.frameworks.recognise import refuse_undifferentiable
    from convgrad.options import CheckOptions
    from convgrad.render.console import make_console
    from convgrad.render.progress import DelayedProgress
    from convgrad.run.suite import default_jobs, run_suite
    from convgrad.suite import load_suite, single_case_suite

    if config_path is not None:
        _refuse_geometry_flags(ctx, flags)
        suite_spec = load_suite(config_path)
    else:
        suite_spec = single_case_suite(_geometry(flags))
    _refuse_unused_samples(ctx, method)
    if quiet and verbose:
        raise click.UsageError("--quiet and --verbose ask for opposite amounts of output; give one of them", ctx)
    options = CheckOptions(
        seed=seed, relative_step=step, rtol=rtol, method=method, samples=samples,
        forward_check=not no_forward_check, timeout=timeout, strict=strict, differences=differences, order=order,
        jvp=jvp,
    )
    implementation = load_implementation(impl, layout=layout, weight_layout=weight_layout, timeout=options.timeout,
                                         config=impl_config, paths=impl_path, device=device)
    refuse_undifferentiable(implementation, options)
    with DelayedProgress(make_console(stderr=True), enabled=not (as_json or quiet)) as progress:
        suite = run_suite(
            suite_spec.cases, implementation, options, progress, jobs=jobs or default_jobs(), fail_fast=fail_fast,
            share_out=jobs is not None,
        )
        # Under --strict a case it cannot run fails already; after --fail-fast stopped, the gate has its answer.
        stopped = fail_fast and any(case.failed for case in suite.cases)
        if suite_spec.domain_pairs and not options.strict and not stopped:
            from convgrad.run.domain import cover_domain

            suite = cover_domain(suite, implementation, options, progress, jobs=jobs or default_jobs(),
                                 fail_fast=fail_fast, share_out=jobs is not None)
    if junit_path is not None:
        from convgrad.render.junit import render_junit

        _write(junit_path, render_junit(suite, suite_spec.name))
    if config_path is not None and not as_json:
        _print_suite_summary(suite, quiet=quiet, verbose=verbose, svg_path=svg_path)
    else:
        _print_suite(suite, as_json=as_json, quiet=quiet, svg_path=svg_path)
    ctx.exit(EXIT_PASSED if suite.passed else EXIT_FAILED)


def _one_thread_per_library() -> None:
    """Before NumPy, torch or the implementation is imported: one BLAS/OpenMP thread each.

    A check makes thousands of calls on small arrays, where worker threads only spin; on a busy
    2-core machine they made the test suite many times slower (tests/conftest.py sets the same).
    A pool started before a case's child is forked also has no threads in the child. A value
    already set wins.
    """
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, "1")


def _refuse_geometry_flags(ctx: click.Context, flags: dict[str, Any]) -> None:
    """A suite file sets every case's geometry; a flag beside it would be silently overridden."""
    from click.core import ParameterSource

    for param in ctx.command.params:
        if param.name in flags and ctx.get_parameter_source(param.name) in (
            ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT
        ):
            flag = param.opts[0]
            raise click.UsageError(
                f"{flag} cannot be combined with --config: the suite file sets the geometry of every "
                f"case; put {flag.lstrip('-')} = ... in the file instead (at the top level for all cases)",
                ctx,
            )


def _refuse_unused_samples(ctx: click.Context, method: str) -> None:
    """--samples with a method that checks every coordinate would be silently ignored."""
    from click.core import ParameterSource

    if method not in SAMPLING_METHODS and ctx.get_parameter_source("samples") is ParameterSource.COMMANDLINE:
        raise click.UsageError(
            f"--samples only applies to --method sample or projection (this is --method {method}, "
            "which checks every coordinate); drop --samples or add --method sample",
            ctx,
        )


def _echo(text: str) -> None:
    """Print to stdout; a reader that stopped early (`| head`) is not a failure of the check."""
    from convgrad.render.console import discard_rest

    try:
        click.echo(text)
    except BrokenPipeError:
        discard_rest(sys.stdout)


def _write(path: str, text: str) -> None:
    try:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as error:
        raise click.FileError(path, hint=error.strerror or str(error)) from None


def _print_suite_summary(
    suite: "SuiteReport", *, quiet: bool, verbose: bool = False, svg_path: Optional[str] = None
) -> None:
    """The cause first: the first case of each way of failing in full, then one row per status
    and cause with the cases counted. --verbose: every case in full and a table of every case;
    --quiet: the rows alone."""
    from convgrad.render.summary import render_domain, render_groups, render_skipped, render_summary, render_totals
    from convgrad.render.table import render_case

    console = _output_console(offscreen=False, svg_path=svg_path)
    shown = list(suite.cases) if verbose else [] if quiet else [
        group.first for group in suite.groups if group.first.failed
    ]
    for case in shown:
        console.print(render_skipped(case) if case.skipped is not None else render_case(case))
        console.print()
    console.print(render_summary(suite) if verbose else render_groups(suite, shown))
    domain = render_domain(suite)
    if domain is not None:
        console.print(domain)
    console.print(render_totals(suite))
    _save_svg(console, svg_path)


def _print_suite(suite: "SuiteReport", *, as_json: bool, quiet: bool, svg_path: Optional[str] = None) -> None:
    if as_json:
        from convgrad.render.json import render_json

        _echo(render_json(suite))
    if as_json and not svg_path:
        return
    from convgrad.render.summary import render_skipped
    from convgrad.render.table import render_brief, render_case

    console = _output_console(offscreen=as_json, svg_path=svg_path)
    for case in suite.cases:
        if case.skipped is not None:  # nothing was run: no table to show
            console.print(render_skipped(case))
            continue
        console.print(render_brief(case) if quiet else render_case(case))
    _save_svg(console, svg_path)


def _output_console(*, offscreen: bool, svg_path: Optional[str]) -> "Console":
    """stdout, or with --json a console that only records (stdout then holds the JSON alone)."""
    import io

    from convgrad.render.console import make_console

    if offscreen:
        return make_console(file=io.StringIO(), width=80, record=True)
    return make_console(record=svg_path is not None)


def _save_svg(console: "Console", svg_path: Optional[str]) -> None:
    if not svg_path:
        return
    try:
        console.save_svg(svg_path, title="convgrad")
    except OSError as error:
        raise click.FileError(svg_path, hint=error.strerror or str(error)) from None


def _save_page(derivation: "Derivation", html_path: str) -> None:
    from convgrad.render.explain_page import render_page
    from convgrad.render.page_data import page_data

    try:
        with open(html_path, "w", encoding="utf-8") as handle:
            handle.write(render_page(page_data(derivation)))
    except OSError as error:
        raise click.FileError(html_path, hint=error.strerror or str(error)) from None
    click.echo(f"Page written to {html_path}: open it in a browser.", err=True)


def _explain_geometry_options(function: F) -> F:
    return geometry_options(
        function, dtype_help="Only float64: the derivation is proved exactly, and float32 is refused (check it with convgrad check)."
    )


@cli.command()
@_explain_geometry_options
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the random layer used for the proof.")
@click.option("--json", "as_json", is_flag=True, help="Print the derivation's shapes and proof as JSON.")
@click.option("--svg", "svg_path", type=click.Path(dir_okay=False, writable=True), callback=_existing_folder,
              help="Also save the printed explanation as an SVG picture.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, writable=True), callback=_existing_folder,
              help="Also write one self-contained page (opens from disk, no network): the explanation and an "
                   "explorer of every coordinate of dX, dK and O with its window, taps, products and sum.")
def explain(seed: int, as_json: bool, svg_path: Optional[str], html_path: Optional[str], **flags: Any) -> None:
    """Derive dX, dK and db for this layer with its own numbers, and prove it numerically.

    Says what correlation and convolution mean here, then shows the forward pass, db as a sum, dK
    as a correlation and dX as a full correlation of dO with the kernels rotated 180 degrees and
    swapped (a full convolution with the kernels as they are): derived index by index, as
    tensors with the shape after every step, pictured, and worked out at one coordinate. Then it
    computes dX by exactly those steps and compares it with finite differences at every
    coordinate, in float64 (--dtype float32 is refused).

    \b
    Examples:
      convgrad explain --in 3x20x20 --kernels 5x3x3x3
      convgrad explain --in 4x9x9 --kernels 6x2x3x3 --stride 2 --padding 1 --groups 2
      convgrad explain --in 3x20x20 --kernels 5x3x3x3 --html seed.html
    """
    from convgrad.explain import explain as derive
    from convgrad.render.console import make_console
    from convgrad.render.progress import DelayedProgress

    geometry = _geometry(flags)
    with DelayedProgress(make_console(stderr=True), enabled=not as_json) as progress:
        derivation = derive(geometry, seed=seed, progress=progress)
    if as_json:
        from convgrad.render.json import derivation_to_json

        _echo(derivation_to_json(derivation))
    if not as_json or svg_path:
        from convgrad.render.explain import render_explain

        console = _output_console(offscreen=as_json, svg_path=svg_path)
        console.print(render_explain(derivation))
        _save_svg(console, svg_path)
    if html_path:
        _save_page(derivation, html_path)
    if not derivation.holds:  # pragma: no cover - the reference layer's own derivation
        sys.exit(EXIT_FAILED)


# fuzz --dtype: the dtypes of the layers drawn.
_FUZZ_DTYPES: dict[str, tuple[Dtype, ...]] = {
    "float64": ("float64",), "float32": ("float32",), "both": ("float64", "float32"),
}


@cli.command()
@implementation_options
@click.option("--budget", type=float, default=DEFAULT_BUDGET_S, show_default=True, metavar="SECONDS",
              help="Search (and shrink) for this long; no new layer is started after it.")
@click.option("--seed", default=0, show_default=True, type=int,
              help="Seed of the random layers (the same seed draws the same layers) and of their tensors.")
@click.option("--dtype", type=click.Choice(list(_FUZZ_DTYPES)), default="both", show_default=True,
              help="Floating-point type of the layers drawn; both: each layer one or the other.")
@click.option("--timeout", type=float, default=DEFAULT_FUZZ_TIMEOUT_S, show_default=True, metavar="SECONDS",
              help="Fail a layer whose check has not finished after this many seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@click.pass_context
def fuzz(ctx: click.Context, /, impl: str, layout: Optional[str], weight_layout: Optional[str],
         impl_config: Optional[str], impl_path: tuple[str, ...], device: str, budget: float, seed: int, dtype: str,
         timeout: float, as_json: bool) -> None:
    """Check random layers until one fails, then shrink it to the simplest layer that fails.

    Layers are 1-D, 2-D and 3-D, float64 and float32, with batches of 1 to 6, groups, depthwise
    kernels (also with two kernels per channel), strides, padding and dilations (also different
    per axis), inputs the stride does not tile, rectangular and 1x1 kernels; one in four is past a
    size where fast kernels change path (17 to 40 channels, batches of 9 to 13, over 4096 outputs,
    odd outputs of 9 and more, 5x5 and 7x7 kernels, 4x4 and 5x5 patches, a padded strided 1x1).
    Each is checked as `convgrad check` checks it. Layers the implementation cannot run are skipped and counted. A failure is
    printed with its report, a `convgrad check` command line and a suite case that reproduce it.
    Exit 0: no layer failed within the budget; 1: one did (or nothing was checked); 2: bad input.

    \b
    Examples:
      convgrad fuzz --impl my_conv.py
      convgrad fuzz --impl my_conv.py:Layer --budget 300 --dtype both --seed 7
      convgrad fuzz --impl my_conv.py --layout nhwc --weight-layout hwio --json
    """
    _one_thread_per_library()
    from convgrad.adapters.loading import load_implementation
    from convgrad.options import CheckOptions, FuzzOptions
    from convgrad.render.console import make_console
    from convgrad.render.fuzz import FuzzProgress, Reproduction, render_fuzz
    from convgrad.run.fuzz import run_fuzz
    from convgrad.suite import case_table

    fuzz_options = FuzzOptions(budget_s=budget, dtypes=_FUZZ_DTYPES[dtype])
    options = CheckOptions(seed=seed, timeout=timeout)
    implementation = load_implementation(impl, layout=layout, weight_layout=weight_layout, timeout=options.timeout,
                                         config=impl_config, paths=impl_path, device=device)
    with FuzzProgress(make_console(stderr=True), enabled=not as_json) as progress:
        result = run_fuzz(implementation, options, fuzz_options, status=progress)
    reproduction = None
    if result.failure is not None:
        shrunk = result.failure.shrunk.geometry
        reproduction = Reproduction(
            command=_check_command(shrunk, impl.strip(), layout=layout or "nchw", weight_layout=weight_layout or "oihw",
                                   seed=seed, timeout=timeout, impl_config=impl_config, impl_path=impl_path,
                                   device=device),
            toml=case_table(shrunk, f"fuzz: {shrunk.brief()}"),
        )
    if as_json:
        from convgrad.render.json import fuzz_to_json

        _echo(fuzz_to_json(result, reproduction))
    else:
        make_console().print(render_fuzz(result, reproduction), crop=False)  # the command line is never cut
    ctx.exit(EXIT_PASSED if result.passed else EXIT_FAILED)


def _check_command(geometry: "LayerGeometry", impl: str, *, layout: str = "nchw", weight_layout: str = "oihw",
                  seed: int = 0, timeout: float = DEFAULT_TIMEOUT_S, impl_config: Optional[str] = None,
                  impl_path: tuple[str, ...] = (), device: str = "cpu") -> str:
    """The `convgrad check` command line that checks `geometry` as it was checked, quoted for the
    shell; flags at check's defaults are left out."""
    import shlex

    words = ["convgrad", "check", "--impl", impl]
    words += [w for folder in impl_path for w in ("--impl-path", folder)]
    words += ["--impl-config", impl_config] if impl_config else []
    for flag, value, default in (("--layout", layout, "nchw"), ("--weight-layout", weight_layout, "oihw"),
                                 ("--device", device, "cpu")):
        if value != default:
            words += [flag, value]
    words += geometry.check_flags()
    if seed != 0:
        words += ["--seed", str(seed)]
    if timeout != DEFAULT_TIMEOUT_S:
        words += ["--timeout", f"{timeout:g}"]
    return shlex.join(words)


def main() -> None:
    """Entry point of the `convgrad` console script."""
    cli(prog_name="convgrad")
