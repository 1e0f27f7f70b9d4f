"""Reading YAML safely while remembering where every key came from.

``yaml.SafeLoader`` builds the data (so tags such as ``!!python/object`` are refused, exactly
as ``yaml.safe_load`` refuses them); a walk over the same composed node tree records the
line of every key path, so errors can say ``recipes/x.yaml:14: model.layers[3].conv.kernel``.

One number rule for every section: PyYAML implements YAML 1.1, where a float needs a dot and a
signed exponent, so ``1e-4`` (the form everyone writes, and YAML 1.2's) would be the string
``'1e-4'``. ``loader()`` adds YAML 1.2's float forms (``1e-4``, ``1E5``, ``1.0e5``, ``-1e-3``)
to the safe loader; files, ``--set`` values and ``--layers`` values all go through it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from cnnkit.errors import RecipeError

Path = tuple[str | int, ...]


def fmt_path(path: Path) -> str:
    """``("model", "layers", 3, "conv")`` -> ``model.layers[3].conv``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


@dataclass
class Source:
    """Where a recipe came from: its file name and the line (or ``--set`` text) of each path."""

    name: str
    lines: dict[Path, int | str] = field(default_factory=dict)

    def locate(self, path: Path) -> str:
        """``file:line`` of the nearest recorded ancestor of ``path`` (or its ``--set``)."""
        for end in range(len(path), -1, -1):
            where = self.lines.get(tuple(path[:end]))
            if isinstance(where, str):
                return where
            if where is not None:
                return f"{self.name}:{where}"
        return self.name

    def error(self, path: Path, message: str) -> RecipeError:
        """A ``RecipeError`` whose text is ``file:line: key.path: message``."""
        where = self.locate(path)
        return RecipeError(message, where=f"{where}: {fmt_path(path)}" if path else where)


# A decimal float with an exponent whose sign, or whose dot, YAML 1.1 insists on. Digits may
# be grouped by ``_`` as YAML 1.1 allows; forms with a dot and a signed exponent already match.
_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)[eE][-+]?[0-9]+$")


@cache
def loader() -> type:
    """``yaml.SafeLoader`` that also reads exponent floats (``1e-4``) as floats."""
    import yaml

    class RecipeLoader(yaml.SafeLoader):
        pass

    RecipeLoader.add_implicit_resolver(
        "tag:yaml.org,2002:float", _EXPONENT_FLOAT, list("-+0123456789.")
    )
    return RecipeLoader


def load_value(text: str) -> Any:
    """One YAML value (a ``--set`` or ``--layers`` value), read by the recipe loader."""
    import yaml

    return yaml.load(text, Loader=loader())  # a SafeLoader subclass: no tags run code


def read_yaml(text: str, name: str) -> tuple[Any, Source]:
    """Parse ``text`` with the safe loader; return the data and its line map."""
    import yaml

    source = Source(name)
    loader_ = loader()(text)
    try:
        node = loader_.get_single_node()
        if node is None:
            return None, source
        _walk(node, (), source, name, set())
        data = loader_.construct_document(node)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = str(err.problem or err.context or "unreadable YAML")
        if err.context and err.problem:
            started = f" at line {err.context_mark.line + 1}" if err.context_mark else ""
            problem += f" ({err.context}{started})"
        if "could not determine a constructor" in problem:
            problem = f"unsafe or unknown YAML tag refused ({problem})"
        raise RecipeError(f"YAML error: {problem}", where=f"{name}{line}") from None
    except yaml.YAMLError as err:
        raise RecipeError(f"YAML error: {err}", where=name) from None
    finally:
        loader_.dispose()
    return data, source


def _walk(node: Any, path: Path, source: Source, name: str, open_nodes: set[int]) -> None:
    import yaml

    if id(node) in open_nodes:
        raise RecipeError(
            "a YAML alias refers to a node that contains it (recursive data)",
            where=f"{name}:{node.start_mark.line + 1}: {fmt_path(path)}",
        )
    open_nodes = open_nodes | {id(node)}

    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise RecipeError(
                    "keys must be plain words",
                    where=f"{name}:{key_node.start_mark.line + 1}: {fmt_path(path)}",
                )
            key = key_node.value
            if key == "<<":  # merge key: the constructor flattens it
                continue
            line = key_node.start_mark.line + 1
            child = (*path, key)
            if key in seen:
                raise RecipeError(
                    f"duplicate key {key!r} (first at line {seen[key]})",
                    where=f"{name}:{line}: {fmt_path(child)}",
                )
            seen[key] = line
            source.lines[child] = line
            _walk(value_node, child, source, name, open_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            child = (*path, i)
            source.lines[child] = item.start_mark.line + 1
            _walk(item, child, source, name, open_nodes)
    if path == ():
        source.lines[()] = node.start_mark.line + 1
