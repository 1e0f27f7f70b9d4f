"""The ``cnnkit`` entry point: the Typer app and the one place where errors become exit codes.

Every ``CnnkitError`` becomes one line on stderr and its ``exit_code`` (2 for bad input);
Ctrl-C and SIGTERM become one line and 130/143 (``cnnkit.interrupts``); anything unexpected
becomes one line and exit code 3 (``INTERNAL``), so a CI script can tell a crash from a failed
gate (1) and bad input (2). ``--debug`` (anywhere on the command line) or ``CNNKIT_DEBUG=1``
shows the traceback instead.
"""

from __future__ import annotations

import os
import sys

import typer

from cnnkit import __version__
from cnnkit.cli.conv import conv_command
from cnnkit.cli.evaluate import eval_command
from cnnkit.cli.params import ParamsCommand, params_command
from cnnkit.cli.profiling import profile_command
from cnnkit.cli.recipes import recipes_command
from cnnkit.cli.rf import rf_command
from cnnkit.cli.train import train_command
from cnnkit.errors import CnnkitError
from cnnkit.interrupts import Interrupted, handled

INTERNAL = 3  # the exit code of a crash: not bad input (2), not a failed gate (1)

HELP = """\
cnnkit: convolutional-network arithmetic, analysis, training and profiling.

Examples:

  cnnkit conv --input 3x224x224 --kernel 11 --stride 4 --out-channels 96

  cnnkit conv --x "1 2 3; 4 5 6; 7 8 9" --w "1 0; 0 -1" --mode full

  cnnkit recipes

  cnnkit train recipes/lenet.yaml

  cnnkit eval runs/lenet-20250101-120000 --min-accuracy 0.97

  cnnkit params resnet50 --batch 32 --optimizer adam

  cnnkit params recipes/resnet50.yaml --max-params 30M --max-macs 5G --json

  cnnkit rf resnet50 --verify

  cnnkit profile resnet18 --device cpu --batch 1,8 --layers

  cnnkit rf --layers "conv k=11 s=4; maxpool k=3 s=2; conv k=5 p=2" --input 227

Every command takes --json (one JSON document on stdout) and --debug (show tracebacks).

Guide: docs/guide.md, learn CNNs by running cnnkit, from one convolution to DenseNet.
"""

app = typer.Typer(
    name="cnnkit",
    help=HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"cnnkit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
) -> None:
    """cnnkit: convolutional-network arithmetic, analysis, training and profiling."""


app.command(
    "conv",
    help=conv_command.__doc__,
    epilog=(
        "Examples: cnnkit conv --input 3x224x224 --kernel 11 --stride 4 --out-channels 96 | "
        "cnnkit conv --input 28x28 --kernel 5 --target 28 | "
        'cnnkit conv --x "1 2 3; 4 5 6; 7 8 9" --w "1 0; 0 -1" --xcorr'
    ),
    no_args_is_help=True,
)(conv_command)


app.command(
    "recipes",
    help=recipes_command.__doc__,
    epilog=(
        "Examples: cnnkit recipes | cnnkit recipes --json | cnnkit recipes my.yaml | "
        "cnnkit recipes resnet18 --set model.layers[0].conv.out=32"
    ),
)(recipes_command)


app.command(
    "rf",
    help=rf_command.__doc__,
    epilog=(
        "Examples: cnnkit rf vgg16 | cnnkit rf resnet50 --at layer3.5.add --json | "
        'cnnkit rf --layers "conv k=3; conv k=3; maxpool k=2" --input 32x32 --verify | '
        "cnnkit rf resnet18 --erf erf.png"
    ),
)(rf_command)


app.command(
    "params",
    cls=ParamsCommand,
    help=params_command.__doc__,
    epilog=(
        "Examples: cnnkit params resnet50 | cnnkit params vgg16 --depth 1 | "
        "cnnkit params resnet50 --batch 32 --dtype bf16 --optimizer adam | "
        "cnnkit params lenet1998 --verify | "
        "cnnkit params recipes/resnet50.yaml --max-params 30M --max-macs 5G --json | "
        "cnnkit params densenet121 --csv layers.csv --markdown - | "
        "cnnkit params torchvision:resnet50"
    ),
    no_args_is_help=True,
)(params_command)


app.command(
    "profile",
    help=profile_command.__doc__,
    epilog=(
        "Examples: cnnkit profile resnet18 --batch 1,8,32 | "
        "cnnkit profile lenet --mode train --layers | "
        "cnnkit profile resnet50 --device cuda --batch 256 --dtype bf16 --channels-last --json"
    ),
)(profile_command)


app.command(
    "train",
    help=train_command.__doc__,
    epilog=(
        "Examples: cnnkit train recipes/lenet.yaml | "
        "cnnkit train lenet --set train.epochs=3 --out runs/quick | "
        "cnnkit train --resume runs/lenet-20250101-120000 | "
        "cnnkit train lenet --sweep train.lr=0.1,0.01 --sweep train.batch_size=32,128 --csv | "
        "torchrun --nproc-per-node 2 -m cnnkit train lenet"
    ),
)(train_command)


app.command(
    "eval",
    help=eval_command.__doc__,
    epilog=(
        "Examples: cnnkit eval runs/lenet-20250101-120000 | "
        "cnnkit eval runs/x/best.pt --json | cnnkit eval runs/x --min-accuracy 0.97 | "
        "cnnkit eval runs/x --data npz:more.npz --csv"
    ),
    no_args_is_help=True,
)(eval_command)


def _debug_wanted(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get("CNNKIT_DEBUG", "") not in ("", "0")


def _click_error(err: Exception, args: list[str]) -> None:
    """Click's own errors (an unknown option, a missing argument) as one line like ours;
    a command given no arguments still shows its help."""
    code = getattr(err, "exit_code", 2)
    if type(err).__name__ == "NoArgsIsHelpError":
        err.show()  # type: ignore[attr-defined]
        sys.exit(code)
    ctx = getattr(err, "ctx", None)
    names = {command.name for command in app.registered_commands}
    given = [a for a in args if a in names][:1]  # the option parser's errors carry no context
    path = ctx.command_path if ctx is not None else " ".join(["cnnkit", *given])
    sys.stderr.write(f"error: {one_line(f'{path}: {_click_message(err)}')}\n")
    sys.exit(code)


def _click_message(err: Exception) -> str:
    if type(err).__name__ == "NoSuchOption":
        options = getattr(err, "possibilities", None) or []
        hint = f" (did you mean {' or '.join(options)}?)" if options else ""
        return f"no such option {err.option_name}{hint}"  # type: ignore[attr-defined]
    message = " ".join(err.format_message().split()).rstrip(".")  # type: ignore[attr-defined]
    return message[:1].lower() + message[1:]


def one_line(text: str) -> str:
    """A message as one terminal line: control characters the user typed (a newline in a
    --set value, an escape sequence in a path) are shown escaped (\\n, \\x1b), not obeyed."""
    return "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text
    )


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; map errors to one stderr line and an exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = _debug_wanted(args)
    try:
        with handled():
            rc = app(args=args, prog_name="cnnkit", standalone_mode=False)
    except Interrupted as err:  # Ctrl-C or SIGTERM: cleanup has run; say how to go on
        sys.stderr.write(f"interrupted: {err.hint}\n" if err.hint else "interrupted\n")
        sys.exit(err.exit_code)
    except CnnkitError as err:
        if debug:
            raise
        sys.stderr.write(f"error: {one_line(str(err))}\n")
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    except BrokenPipeError:  # `cnnkit ... | head`: the reader left; stop quietly, as on SIGPIPE
        sys.stderr.close()
        os._exit(141)
    except OSError as err:  # a folder that does not exist, no permission, a full disk
        if debug:
            raise
        where = f"{err.filename}: " if err.filename else ""
        sys.stderr.write(f"error: {one_line(f'{where}{err.strerror or err}')}\n")
        sys.exit(2)
    except Exception as err:  # the boundary: no traceback unless --debug
        # Typer vendors click in recent releases, so match click's exceptions by shape.
        if hasattr(err, "show") and hasattr(err, "exit_code"):  # click UsageError & co.
            _click_error(err, args)
        if type(err).__name__ == "Abort":
            if not isinstance(err.__context__, EOFError):
                sys.stderr.write("aborted\n")
                sys.exit(1)
            err = err.__context__  # click turns any EOFError into Abort: a reader's, not ours
        if debug:
            raise
        sys.stderr.write(
            f"internal error: {type(err).__name__}: {one_line(str(err))} "
            "(run with --debug for the traceback)\n"
        )
        sys.exit(INTERNAL)
    if isinstance(rc, int) and rc:
        sys.exit(rc)
