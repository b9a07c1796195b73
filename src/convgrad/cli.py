"""The command line: parses flags, runs checks, renders reports. No numerics here.

Heavy modules (NumPy, the checker) are imported inside commands so `convgrad --help` starts fast.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, Optional, TypeVar

import click

from convgrad import __version__
from convgrad.errors import ConvgradError
from convgrad.methods import DEFAULT_SAMPLES, METHODS

__all__ = ["cli", "main", "geometry_options", "make_console"]

F = TypeVar("F", bound=Callable[..., Any])

EXIT_PASSED, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
_NO_ARGS_IS_HELP: Any = getattr(click.exceptions, "NoArgsIsHelpError", ())  # click >= 8.2


def make_console(*, stderr: bool = False, file: Any = None, width: Optional[int] = None, record: bool = False) -> Any:
    """A rich Console; rich honours NO_COLOR and writes no colour codes into pipes.

    `record` keeps what was printed so --svg can save it.
    """
    from rich.console import Console

    return Console(stderr=stderr, file=file, width=width, highlight=False, soft_wrap=False, record=record)


def _one_line(message: str) -> str:
    return " ".join(message.split())


class ConvgradGroup(click.Group):
    """Turns every input error into one line on stderr and exit code 2, never a traceback."""

    def main(self, args: Any = None, prog_name: Optional[str] = None, complete_var: Optional[str] = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except _NO_ARGS_IS_HELP as error:  # bare `convgrad`: show the help, not an error
            click.echo(error.ctx.get_help() if error.ctx else "", err=False)
            sys.exit(EXIT_PASSED)
        except click.UsageError as error:
            command = error.ctx.command_path if error.ctx else "convgrad"
            click.echo(
                f"Error: {_one_line(error.format_message())} (see '{command} --help')", err=True
            )
            sys.exit(EXIT_BAD_INPUT)
        except click.ClickException as error:
            click.echo(f"Error: {_one_line(error.format_message())}", err=True)
            sys.exit(EXIT_BAD_INPUT)
        except ConvgradError as error:
            click.echo(f"Error: {_one_line(str(error))}", err=True)
            sys.exit(EXIT_BAD_INPUT)
        except click.exceptions.Abort:
            click.echo("Aborted.", err=True)
            sys.exit(EXIT_FAILED)
        sys.exit(code if isinstance(code, int) else EXIT_PASSED)


@click.group(cls=ConvgradGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="convgrad")
def cli() -> None:
    """Check the backward pass of convolution layers against finite differences.

    \b
    Exit codes: 0 every check passed, 1 a check failed, 2 the input was wrong.
    Start with:  convgrad check --in 3x20x20 --kernels 5x3x3x3
    """


def geometry_options(function: F) -> F:
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
                     help="An int, one per axis like 1x0, 'valid' (0) or 'same' (stride 1, symmetric)."),
        click.option("--dilation", default="1", show_default=True, help="An int, or one per axis like 2x1."),
        click.option("--groups", default=1, show_default=True, type=int,
                     help="Groups; C and F must both be divisible by it (groups = C is depthwise)."),
        click.option("--dtype", default="float64", show_default=True,
                     type=click.Choice(["float64", "float32"]), help="Floating-point type of the check."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def resolve_from_flags(flags: dict[str, Any]) -> Any:
    from convgrad.geometry import resolve_geometry

    for name, flag in (("in_shape", "--in"), ("kernel_shape", "--kernels")):
        if flags.get(name) is None:  # not click's required=True: --config may give the geometry instead
            raise click.MissingParameter(param_hint=f"'{flag}'", param_type="option")

    return resolve_geometry(
        flags["in_shape"],
        flags["kernel_shape"],
        batch=flags["batch"],
        stride=flags["stride"],
        padding=flags["padding"],
        dilation=flags["dilation"],
        groups=flags["groups"],
        dtype=flags["dtype"],
    )


@cli.command()
@geometry_options
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the random layer and upstream gradient.")
@click.option("--rtol", type=float, default=None,
              help="Tolerance relative to each tensor's scale [default: 1e-8 float64, 1e-3 float32].")
@click.option("--step", type=float, default=None,
              help="Finite-difference step relative to the perturbed tensor's scale S(T) (see README) [default: 0.5].")
@click.option("--timeout", type=float, default=None, metavar="SECONDS",
              help="Fail a case that has not finished after this many seconds [default: 600].")
@click.option("--method", type=click.Choice(METHODS), default="auto", show_default=True,
              help="auto: every coordinate, cheapest exact way; coloured: every coordinate, "
                   "non-overlapping ones together; dense: one at a time; sample: --samples random "
                   "coordinates; projection: --samples random directions.")
@click.option("--samples", type=click.IntRange(min=1), default=DEFAULT_SAMPLES, show_default=True,
              help="Coordinates (sample) or directions (projection) per tensor.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="Print only the verdict line (with --config: only the summary).")
@click.option("--impl", default="reference", show_default=True, metavar="SPEC",
              help="Implementation under test: reference, torch, jax, a FILE.py or a dotted module, "
                   "optionally :NAME of the object holding forward and backward.")
@click.option("--layout", type=click.Choice(["nchw", "nhwc"]), default="nchw", show_default=True,
              help="Array layout the implementation takes: channels first (N, C, *spatial) or last.")
@click.option("--weight-layout", type=click.Choice(["oihw", "hwio"]), default="oihw", show_default=True,
              help="Kernel layout: (F, C/groups, *k) or (*k, C/groups, F).")
@click.option("--no-forward-check", is_flag=True,
              help="Do not compare the output with the reference convolution (row O).")
@click.option("--config", "config_path", metavar="FILE.toml",
              help="Run every case of a suite file (see configs/); the geometry flags are then refused.")
@click.option("--junit", "junit_path", metavar="FILE", help="Also write the report as JUnit XML to FILE.")
@click.option("--svg", "svg_path", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Also save the printed report (table, where, why, heatmaps) as an SVG picture.")
@click.pass_context
def check(ctx: click.Context, seed: int, rtol: Optional[float], step: Optional[float],
          as_json: bool, quiet: bool, impl: str, layout: str, weight_layout: str,
          no_forward_check: bool, config_path: Optional[str], junit_path: Optional[str],
          svg_path: Optional[str], timeout: Optional[float], method: str, samples: int,
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
    from convgrad.isolation import DEFAULT_TIMEOUT_S
    from convgrad.loading import load_implementation
    from convgrad.options import CheckOptions
    from convgrad.progress import DelayedProgress
    from convgrad.runner import run_suite
    from convgrad.suite import load_suite, suite_from_geometry

    if config_path is not None:
        _refuse_geometry_flags(ctx, flags)
        suite_spec = load_suite(config_path)
    else:
        suite_spec = suite_from_geometry(resolve_from_flags(flags))
    _check_writable(junit_path)
    _check_svg_target(svg_path)
    _refuse_unused_samples(ctx, method)
    options = CheckOptions(
        seed=seed, relative_step=step, rtol=rtol, method=method, samples=samples,
        forward_check=not no_forward_check, timeout=DEFAULT_TIMEOUT_S if timeout is None else timeout,
    )
    implementation = load_implementation(impl, layout=layout, weight_layout=weight_layout, timeout=options.timeout)
    stderr = make_console(stderr=True)
    with DelayedProgress(stderr, enabled=not (as_json or quiet)) as progress:
        suite = run_suite(suite_spec.cases, implementation, options, progress)
    if junit_path is not None:
        from convgrad.render_junit import render_junit

        with open(junit_path, "w", encoding="utf-8") as handle:
            handle.write(render_junit(suite, suite_spec.name))
    if config_path is not None and not as_json:
        _print_suite_summary(suite, quiet=quiet, svg_path=svg_path)
    else:
        _print_suite(suite, as_json=as_json, quiet=quiet, svg_path=svg_path)
    ctx.exit(EXIT_PASSED if suite.passed else EXIT_FAILED)


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

    if method not in ("sample", "projection") and ctx.get_parameter_source("samples") is ParameterSource.COMMANDLINE:
        raise click.UsageError(
            f"--samples only applies to --method sample or projection (this is --method {method}, "
            "which checks every coordinate); drop --samples or add --method sample",
            ctx,
        )


def _check_writable(path: Optional[str]) -> None:
    """Fail on a bad --junit path before spending time on the checks."""
    if path is None:
        return
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder) or os.path.isdir(path):
        raise click.BadParameter(f"cannot write {path}: {folder} is not a folder; give a file path in an existing folder",
                                 param_hint="'--junit'")


def _print_suite_summary(suite: Any, *, quiet: bool, svg_path: Optional[str] = None) -> None:
    """Each failing case's table, then a summary of every case; only the summary with --quiet."""
    from convgrad.render_summary import render_summary, render_totals
    from convgrad.render_table import render_case

    console = _output_console(offscreen=False, svg_path=svg_path)
    if not quiet:
        for case in suite.cases:
            if case.failed:
                console.print(render_case(case))
                console.print()
    console.print(render_summary(suite))
    console.print(render_totals(suite))
    _save_svg(console, svg_path)


def _print_suite(suite: Any, *, as_json: bool, quiet: bool, svg_path: Optional[str] = None) -> None:
    if as_json:
        from convgrad.render_json import render_json

        click.echo(render_json(suite))
    from convgrad.render_table import render_brief, render_case

    if as_json and not svg_path:
        return
    console = _output_console(offscreen=as_json, svg_path=svg_path)
    for case in suite.cases:
        if case.skipped is not None:  # nothing was run: no table to show
            from convgrad.render_summary import render_skipped

            console.print(render_skipped(case))
            continue
        console.print(render_brief(case) if quiet else render_case(case))
    _save_svg(console, svg_path)


def _output_console(*, offscreen: bool, svg_path: Optional[str]) -> Any:
    """stdout, or with --json a console that only records (stdout then holds the JSON alone)."""
    import io

    if offscreen:
        return make_console(file=io.StringIO(), width=80, record=True)
    return make_console(record=svg_path is not None)


def _check_svg_target(svg_path: Optional[str]) -> None:
    """Refuse an --svg path that cannot be written before any work is done."""
    if not svg_path:
        return
    folder = os.path.dirname(os.path.abspath(svg_path))
    if not os.path.isdir(folder):
        raise click.BadParameter(f"folder {folder} does not exist; create it or save elsewhere", param_hint="--svg")
    if not os.access(folder, os.W_OK):
        raise click.BadParameter(f"folder {folder} is not writable; save elsewhere", param_hint="--svg")


def _save_svg(console: Any, svg_path: Optional[str]) -> None:
    if not svg_path:
        return
    try:
        console.save_svg(svg_path, title="convgrad")
    except OSError as error:
        raise click.FileError(svg_path, hint=error.strerror or str(error)) from None


@cli.command()
@geometry_options
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the random layer used for the proof.")
@click.option("--json", "as_json", is_flag=True, help="Print the derivation's shapes and proof as JSON.")
@click.option("--svg", "svg_path", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Also save the printed explanation as an SVG picture.")
def explain(seed: int, as_json: bool, svg_path: Optional[str], **flags: Any) -> None:
    """Derive dX, dK and db for this layer with its own shapes, and prove it numerically.

    Shows the forward pass, db as a sum, dK as a correlation and dX as a full convolution with the
    kernels rotated 180 degrees and swapped, with the shape after every step; then computes dX by
    exactly those steps and compares it with finite differences at every coordinate.

    \b
    Examples:
      convgrad explain --in 3x20x20 --kernels 5x3x3x3
      convgrad explain --in 4x9x9 --kernels 6x2x3x3 --stride 2 --padding 1 --groups 2
    """
    from convgrad.explain import explain as derive
    from convgrad.progress import DelayedProgress

    geometry = resolve_from_flags(flags)
    _check_svg_target(svg_path)
    with DelayedProgress(make_console(stderr=True), enabled=not as_json) as progress:
        derivation = derive(geometry, seed=seed, progress=progress)
    if as_json:
        from convgrad.render_json import derivation_to_json

        click.echo(derivation_to_json(derivation))
    if not as_json or svg_path:
        from convgrad.render_explain import render_explain

        console = _output_console(offscreen=as_json, svg_path=svg_path)
        console.print(render_explain(derivation))
        _save_svg(console, svg_path)
    if not derivation.holds:  # pragma: no cover - the reference layer's own derivation
        sys.exit(EXIT_FAILED)


def main() -> None:
    """Entry point of the `convgrad` console script."""
    cli(prog_name="convgrad")
