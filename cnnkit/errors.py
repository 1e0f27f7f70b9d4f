"""The exception family every cnnkit layer raises.

The CLI maps each type to an exit code and a one-line message (see ``cnnkit.cli.app``),
so library code never prints or exits; it raises one of these with a message that names
what is wrong and where.
"""

from __future__ import annotations


class CnnkitError(Exception):
    """Base class: a problem the user can fix. ``exit_code`` is what the CLI returns."""

    exit_code = 2

    def __init__(self, message: str, *, where: str | None = None) -> None:
        self.message = message
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


class InputError(CnnkitError):
    """A command-line argument or value is malformed or out of range (exit code 2)."""


class RecipeError(CnnkitError):
    """A recipe file is malformed; ``where`` is ``file:line: key.path`` (exit code 2)."""


class ShapeError(CnnkitError):
    """Shapes do not fit: a layer cannot take the shape its input has (exit code 2)."""


class DataError(CnnkitError):
    """A data set cannot be read or does not match the recipe (exit code 2)."""


class CheckpointError(CnnkitError):
    """A checkpoint or run folder is missing, corrupt or foreign (exit code 2)."""


class MissingDependencyError(CnnkitError):
    """An optional package is needed but not installed; the message says how to get it."""


class BudgetExceeded(CnnkitError):
    """A CI gate (``--max-params`` and friends) failed: exit code 1, not 2."""

    exit_code = 1
