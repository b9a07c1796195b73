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


def make_console(*, stderr: bool = False, file: Any = None, width: Optional[int] = None) -> Any:
    """A rich Console; rich honours NO_COLOR and writes no colour codes into pipes."""
    from rich.console import Console

    return Console(stderr=stderr, file=file, width=width, highlight=False, soft_wrap=False)


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
        click.option("--in", "in_shape", required=True, metavar="CxHxW",
                     help="Input shape without the batch: CxL (1-D), CxHxW (2-D) or CxDxHxW (3-D)."),
        click.option("--kernels", "kernel_shape", required=True, metavar="FxCxKHxKW",
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
              help="Finite-difference step relative to the perturbed tensor's largest magnitude [default: 0.5].")
@click.option("--method", type=click.Choice(METHODS), default="auto", show_default=True,
              help="auto: every coordinate, cheapest exact way; coloured: every coordinate, "
                   "non-overlapping ones together; dense: one at a time; sample: --samples random "
                   "coordinates; projection: --samples random directions.")
@click.option("--samples", type=click.IntRange(min=1), default=DEFAULT_SAMPLES, show_default=True,
              help="Coordinates (sample) or directions (projection) per tensor.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="Print only the verdict line.")
@click.pass_context
def check(ctx: click.Context, seed: int, rtol: Optional[float], step: Optional[float],
          method: str, samples: int, as_json: bool, quiet: bool, **flags: Any) -> None:
    """Check the analytical dX, dK and db of a conv layer against finite differences.

    Every coordinate of every gradient is compared (unless --method sample or projection), and
    the output against the reference convolution.

    \b
    Examples:
      convgrad check --in 3x20x20 --kernels 5x3x3x3
      convgrad check --in 8x32x32 --kernels 8x3x3 --stride 2 --padding 1 --batch 2
      convgrad check --in 4x16 --kernels 4x1x5 --groups 4 --dtype float32 --json
      convgrad check --in 64x56x56 --kernels 64x3x3 --padding 1 --method projection
    """
    from convgrad.checker import check_layer
    from convgrad.progress import DelayedProgress
    from convgrad.report import SuiteReport
    from convgrad.tolerances import tolerances_for

    geometry = resolve_from_flags(flags)
    tolerances = tolerances_for(geometry.dtype, relative_step=step, rtol=rtol)
    stderr = make_console(stderr=True)
    with DelayedProgress(stderr, enabled=not (as_json or quiet)) as progress:
        case = check_layer(geometry, seed=seed, tolerances=tolerances, progress=progress,
                           method=method, samples=samples)
    suite = SuiteReport(cases=(case,))
    _print_suite(suite, as_json=as_json, quiet=quiet)
    ctx.exit(EXIT_PASSED if suite.passed else EXIT_FAILED)


def _print_suite(suite: Any, *, as_json: bool, quiet: bool) -> None:
    if as_json:
        from convgrad.render_json import render_json

        click.echo(render_json(suite))
        return
    from convgrad.render_table import render_case, render_verdict

    console = make_console()
    for case in suite.cases:
        console.print(render_verdict(case) if quiet else render_case(case))


def main() -> None:
    """Entry point of the `convgrad` console script."""
    cli(prog_name="convgrad")
