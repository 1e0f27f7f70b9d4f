"""The ``cnnkit`` entry point: the Typer app and the one place where errors become exit codes.

Every ``CnnkitError`` becomes one line on stderr and its ``exit_code`` (2 for bad input);
Ctrl-C and SIGTERM become one line and 130/143 (``cnnkit.interrupts``); anything unexpected
becomes one line and exit code 3 (``INTERNAL``), so a CI script can tell a crash from a failed
gate (1) and bad input (2). ``--debug`` (anywhere on the command line) or ``CNNKIT_DEBUG=1``
shows the traceback instead. When the reader of stdout leaves (``| head``), cnnkit stops
quietly with 141.

Start-up: only the invoked sub-command's module is imported (``COMMANDS`` names each one
lazily), and option values are coerced without pydantic (``cnnkit.cli.coercion``).
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand

from cnnkit import __version__
from cnnkit.errors import CnnkitError
from cnnkit.interrupts import Interrupted, handled

PROG = "cnnkit"
INTERNAL = 3  # the exit code of a crash: not bad input (2), not a failed gate (1)

HELP = """\
cnnkit: convolutional-network arithmetic, analysis, training and profiling.

Examples:

\b
  cnnkit conv --input 3x224x224 --kernel 11 --stride 4 --out-channels 96
  cnnkit conv --x "1 2 3; 4 5 6; 7 8 9" --w "1 0; 0 -1" --mode full
  cnnkit recipes
  cnnkit train recipes/lenet.yaml
  cnnkit eval runs/lenet-20250101-120000 --min-accuracy 0.97
  cnnkit predict runs/lenet-20250101-120000 digit.png --top-k 3
  cnnkit export runs/lenet-20250101-120000 --format onnx --out lenet.onnx
  cnnkit params resnet50 --batch 32 --optimizer adam
  cnnkit params recipes/resnet50.yaml --max-params 30M --max-macs 5G --json
  cnnkit rf resnet50 --verify
  cnnkit profile resnet18 --device cpu --batch 1,8 --layers
  cnnkit rf --layers "conv k=11 s=4; maxpool k=3 s=2; conv k=5 p=2" --input 227

Every command takes --json (one JSON document on stdout) and --debug (show tracebacks).
Exit codes: 0 ok, 1 a failed gate or check, 2 bad input, 3 internal error.

Guide: learn CNNs by running cnnkit, from one convolution to DenseNet; `cnnkit --guide`
prints where it is installed (docs/guide.md in a checkout). Every option and rule:
docs/reference/commands.md.
"""


@dataclass(frozen=True)
class CommandSpec:
    """A sub-command, imported only when it runs (or for the overview: ``cnnkit --help``)."""

    module: str
    function: str
    examples: tuple[str, ...]
    no_args_is_help: bool = False


COMMANDS: dict[str, CommandSpec] = {
    "conv": CommandSpec(
        "cnnkit.cli.conv",
        "conv_command",
        (
            "cnnkit conv --input 3x224x224 --kernel 11 --stride 4 --out-channels 96",
            "cnnkit conv --input 28x28 --kernel 5 --target 28",
            'cnnkit conv --x "1 2 3; 4 5 6; 7 8 9" --w "1 0; 0 -1" --xcorr',
        ),
        no_args_is_help=True,
    ),
    "recipes": CommandSpec(
        "cnnkit.cli.recipes",
        "recipes_command",
        (
            "cnnkit recipes",
            "cnnkit recipes --json",
            "cnnkit recipes my.yaml",
            "cnnkit recipes resnet18 --set model.layers[0].conv.out=32",
        ),
    ),
    "rf": CommandSpec(
        "cnnkit.cli.rf",
        "rf_command",
        (
            "cnnkit rf vgg16",
            "cnnkit rf resnet50 --at layer3.5.add --json",
            'cnnkit rf --layers "conv k=3; conv k=3; maxpool k=2" --input 32x32 --verify',
            "cnnkit rf resnet18 --erf erf.png",
        ),
    ),
    "params": CommandSpec(
        "cnnkit.cli.params",
        "params_command",
        (
            "cnnkit params resnet50",
            "cnnkit params vgg16 --depth 1",
            "cnnkit params resnet50 --batch 32 --dtype bf16 --optimizer adam",
            "cnnkit params lenet1998 --verify",
            "cnnkit params recipes/resnet50.yaml --max-params 30M --max-macs 5G --json",
            "cnnkit params densenet121 --csv layers.csv --markdown -",
            "cnnkit params torchvision:resnet50",
        ),
        no_args_is_help=True,
    ),
    "profile": CommandSpec(
        "cnnkit.cli.profiling",
        "profile_command",
        (
            "cnnkit profile resnet18 --batch 1,8,32",
            "cnnkit profile lenet --mode train --layers",
            "cnnkit profile resnet50 --device cuda --batch 256 --dtype bf16 --channels-last --json",
        ),
    ),
    "train": CommandSpec(
        "cnnkit.cli.train",
        "train_command",
        (
            "cnnkit train recipes/lenet.yaml",
            "cnnkit train lenet --set train.epochs=3 --out runs/quick",
            "cnnkit train --resume runs/lenet-20250101-120000",
            "cnnkit train lenet --set train.lr=0.01 --print-config",
            "cnnkit train lenet --sweep train.lr=0.1,0.01 --sweep train.batch_size=32,128 --csv",
            "torchrun --nproc-per-node 2 -m cnnkit train lenet",
        ),
    ),
    "eval": CommandSpec(
        "cnnkit.cli.evaluate",
        "eval_command",
        (
            "cnnkit eval runs/lenet-20250101-120000",
            "cnnkit eval runs/x/best.pt --json",
            "cnnkit eval runs/x --min-accuracy 0.97",
            "cnnkit eval runs/x --data npz:more.npz --csv",
        ),
        no_args_is_help=True,
    ),
    "predict": CommandSpec(
        "cnnkit.cli.predict",
        "predict_command",
        (
            "cnnkit predict runs/x cat.png dog.jpg",
            "cnnkit predict runs/x photos/ --top-k 3 --csv",
            "cnnkit predict runs/x/best.pt files.csv --json",
            "cnnkit predict runs/unet images/ --out masks/",
            'cnnkit predict runs/textcnn "a gripping, clever film" reviews.txt',
        ),
        no_args_is_help=True,
    ),
    "export": CommandSpec(
        "cnnkit.cli.export",
        "export_command",
        (
            "cnnkit export runs/x --format onnx --out model.onnx",
            "cnnkit export runs/x --format torchscript --out model.ts.pt",
            "cnnkit export runs/x/best.pt --format exported --out model.pt2 --json",
            "cnnkit export resnet18 --format onnx --out resnet18.onnx",
        ),
        no_args_is_help=True,
    ),
}

REFERENCE = "docs/reference/commands.md"


class _HelpCommand(TyperCommand):
    """An argument with a metavar (``RECIPE|NAME``) is shown without typer's ``<str>``."""

    def format_options(self, ctx: Any, formatter: Any) -> None:
        for param in self.get_params(ctx):
            if param.param_type_name == "argument" and param.metavar:
                param.display_type_rich = lambda ctx: None  # type: ignore[method-assign]
        super().format_options(ctx, formatter)


def _epilog(examples: tuple[str, ...]) -> str:
    # "\b" keeps click from re-wrapping the examples into one paragraph
    lines = "\n".join(f"  {example}" for example in examples)
    return (
        f"Examples:\n\n\b\n{lines}\n\n"
        f"Details: {REFERENCE} (cnnkit --guide prints where it is installed)."
    )


def installed_docs() -> dict[str, Path]:
    """The guide and the command reference shipped inside the package (symlinks in a
    checkout, copies in a wheel), so a wheel user can open them too."""
    here = Path(__file__).resolve().parent.parent
    return {"guide": here / "guide.md", "reference": here / "commands.md"}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"cnnkit {__version__}")
        raise typer.Exit()


def _guide(value: bool) -> None:
    if value:
        for name, path in installed_docs().items():
            typer.echo(f"{name}: {path.resolve()}")
        raise typer.Exit()


def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
    guide: Annotated[
        bool,
        typer.Option(
            "--guide",
            callback=_guide,
            is_eager=True,
            help="Print where the guide and the command reference are installed.",
        ),
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
) -> None:
    """cnnkit: convolutional-network arithmetic, analysis, training and profiling."""


def _wanted(args: list[str] | None) -> list[str]:
    """The sub-commands to register: only the one invoked (so ``cnnkit conv`` imports none
    of the others), all of them for the overview, a typo's suggestions and shell completion."""
    if args is None or f"_{PROG.upper()}_COMPLETE" in os.environ:
        return list(COMMANDS)
    for arg in args:
        if not arg.startswith("-"):  # the root options take no values: this is the command
            return [arg] if arg in COMMANDS else list(COMMANDS)
    return list(COMMANDS)


def build_app(args: list[str] | None = None) -> typer.Typer:
    """The Typer app with the sub-commands ``args`` needs (all of them when None)."""
    from cnnkit.cli.coercion import install

    install()  # option values without pydantic (see cnnkit.cli.coercion)
    app = typer.Typer(
        name=PROG,
        help=HELP,
        no_args_is_help=True,
        add_completion=True,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(_root)
    for name in _wanted(args):
        spec = COMMANDS[name]
        function = getattr(importlib.import_module(spec.module), spec.function)
        app.command(
            name,
            help=function.__doc__,
            epilog=_epilog(spec.examples),
            no_args_is_help=spec.no_args_is_help,
            cls=_HelpCommand,
        )(function)
    return app


def __getattr__(name: str) -> Any:
    if name == "app":  # the full app, for tests and tools that inspect it
        return build_app()
    raise AttributeError(name)


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
    given = [a for a in args if a in COMMANDS][:1]  # the option parser's errors carry no context
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


PIPE_CLOSED = 141  # 128 + SIGPIPE: what a shell reports for `yes | head`


def _reader_left() -> None:
    """``cnnkit ... | head``: the reader left. Stop at once and quietly: no traceback, no
    "Exception ignored" when Python flushes stdout at exit, and exit code 141, as a program
    killed by SIGPIPE (not 1, which means a failed gate)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the flush at exit goes nowhere, silently
    except (OSError, ValueError):  # stdout has no file descriptor (captured in a test)
        pass
    os._exit(PIPE_CLOSED)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; map errors to one stderr line and an exit code (141 if the reader of
    stdout left)."""
    try:
        _main(argv)
    except BrokenPipeError:
        _reader_left()
    except SystemExit:
        if type(sys.stdout).__name__ == "PacifyFlushWrapper":  # click made a closed pipe exit 1
            _reader_left()
        raise
    finally:
        try:  # the last output is still buffered: write it now, while a closed pipe is ours
            sys.stdout.flush()
        except BrokenPipeError:
            _reader_left()
        except (OSError, ValueError):
            pass


def _main(argv: list[str] | None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = _debug_wanted(args)
    try:
        with handled():
            rc = build_app(args)(args=args, prog_name=PROG, standalone_mode=False)
    except Interrupted as err:  # Ctrl-C or SIGTERM: cleanup has run; say how to go on
        sys.stderr.write(f"interrupted: {err.hint}\n" if err.hint else "interrupted\n")
        sys.exit(err.exit_code)
    except CnnkitError as err:
        if debug:
            raise
        sys.stderr.write(f"error: {one_line(str(err))}\n")
        for line in getattr(err, "details", ()):  # e.g. one line per bad file of a data set
            sys.stderr.write(f"  {one_line(line)}\n")
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    except BrokenPipeError:  # `cnnkit ... | head`: the reader left; main stops quietly
        raise
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
