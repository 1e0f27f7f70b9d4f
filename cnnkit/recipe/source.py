"""Reading YAML safely while remembering where every key came from.

``yaml.SafeLoader`` builds the data (so tags such as ``!!python/object`` are refused, exactly
as ``yaml.safe_load`` refuses them); a walk over the same composed node tree records the
line of every key path, so errors can say ``recipes/x.yaml:14: model.layers[3].conv.kernel``.

One number rule for every section: PyYAML implements YAML 1.1, where a float needs a dot and a
signed exponent, so ``1e-4`` (the form everyone writes, and YAML 1.2's) would be the string
``'1e-4'``. ``loader()`` adds YAML 1.2's float forms (``1e-4``, ``1E5``, ``1.0e5``, ``-1e-3``)
to the safe loader; files, ``--set`` values and ``--layers`` values all go through it.

Every text is held to ``cnnkit.recipe.limits`` while it is read: its size, its nesting, its
node count once aliases are expanded (a 600-byte alias bomb would otherwise expand to hundreds
of millions of values) and the digits of its integers, each refused as a one-line YAML error.

Speed: where PyYAML has libyaml, its C parser turns the text into events (about half the time
of reading a big recipe) while the Python composer above still builds the nodes, so the depth
limit, the line marks and the resolver are the same code. Any text the fast path refuses is read
again by the pure-Python loader, so every error message, and its line, is the pure loader's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from cnnkit.errors import RecipeError
from cnnkit.recipe import limits

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
def loader(fast: bool = True) -> type:
    """The recipe loader: ``yaml.SafeLoader`` that also reads exponent floats (``1e-4``) as
    floats and refuses nesting deeper than ``limits.MAX_NESTING`` before the recursive composer
    overflows. ``fast`` puts libyaml's parser under it where PyYAML was built with it."""
    import yaml

    class RecipeComposer(yaml.composer.Composer):
        nesting = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.nesting >= limits.MAX_NESTING:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"nested deeper than {limits.MAX_NESTING} levels",
                    self.peek_event().start_mark,
                )
            self.nesting += 1
            try:
                return super().compose_node(parent, index)
            finally:
                self.nesting -= 1

    parser = _c_parser() if fast else None
    if parser is None:

        class RecipeLoader(RecipeComposer, yaml.SafeLoader):
            pass

    else:

        class RecipeLoader(  # type: ignore[no-redef]
            RecipeComposer, parser, yaml.constructor.SafeConstructor, yaml.resolver.Resolver
        ):
            """libyaml's events under the Python composer: CParser's own (C) composer is
            shadowed, so nodes, marks and the depth limit come from the code above."""

            get_single_node = yaml.composer.Composer.get_single_node

            def __init__(self, stream: str) -> None:
                parser.__init__(self, stream)
                RecipeComposer.__init__(self)
                yaml.constructor.SafeConstructor.__init__(self)
                yaml.resolver.Resolver.__init__(self)

    RecipeLoader.add_implicit_resolver(
        "tag:yaml.org,2002:float", _EXPONENT_FLOAT, list("-+0123456789.")
    )
    return RecipeLoader


def _c_parser() -> type | None:
    """libyaml's parser class, or None where PyYAML was installed without libyaml."""
    import yaml

    if not getattr(yaml, "__with_libyaml__", False) or not hasattr(yaml, "CSafeLoader"):
        return None
    try:
        from yaml._yaml import CParser
    except ImportError:
        return None
    return CParser


def _compose(text: str, fast: bool = True) -> tuple[Any, Any]:
    """(loader, checked root node or None) of ``text``; limit breaches are YAML errors."""
    import yaml

    if len(text) > limits.MAX_FILE_BYTES:
        raise yaml.YAMLError(
            f"{len(text):,} characters; a recipe may have at most {limits.MAX_FILE_BYTES:,}"
        )
    loader_ = loader(fast)(text)
    try:
        node = loader_.get_single_node()
        if node is not None:
            _count(node, {}, set())
    except BaseException:
        loader_.dispose()
        raise
    return loader_, node


def _count(node: Any, sizes: dict[int, int], open_nodes: set[int]) -> int:
    """Values under ``node`` with aliases expanded (memoised, so linear in the text), refusing
    more than ``limits.MAX_YAML_NODES`` and integers longer than ``limits.MAX_INT_DIGITS``."""
    import yaml

    if id(node) in sizes or id(node) in open_nodes:  # open: recursive, which _walk reports
        return sizes.get(id(node), 0)
    if isinstance(node, yaml.ScalarNode):
        digits = sum(c.isdigit() for c in node.value[: limits.MAX_INT_DIGITS + 40])
        if node.tag == "tag:yaml.org,2002:int" and digits > limits.MAX_INT_DIGITS:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"integer of more than {limits.MAX_INT_DIGITS} digits",
                node.start_mark,
            )
        size = 1
    else:
        open_nodes.add(id(node))
        children = node.value if isinstance(node, yaml.SequenceNode) else _pairs(node)
        size = 1 + sum(_count(child, sizes, open_nodes) for child in children)
        open_nodes.discard(id(node))
        if size > limits.MAX_YAML_NODES:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"expands to more than {limits.MAX_YAML_NODES:,} values (through aliases?)",
                node.start_mark,
            )
    sizes[id(node)] = size
    return size


def _pairs(node: Any) -> list[Any]:
    return [part for pair in node.value for part in pair]


def load_value(text: str, fast: bool = True) -> Any:
    """One YAML value (a ``--set`` or ``--layers`` value), read by the recipe loader; a value
    the fast path refuses is read again by the pure one, whose error is the one raised."""
    if fast and _c_parser() is not None:
        try:
            return _load_value(text, True)
        except Exception:  # noqa: BLE001 - the pure loader below gives the error
            pass
    return _load_value(text, False)


def _load_value(text: str, fast: bool) -> Any:
    loader_, node = _compose(text, fast)
    try:
        return None if node is None else loader_.construct_document(node)
    finally:
        loader_.dispose()


def read_yaml(text: str, name: str, fast: bool = True) -> tuple[Any, Source]:
    """Parse ``text`` with the safe loader; return the data and its line map. A text the fast
    (libyaml) path refuses is read again by the pure-Python loader, whose error is raised, so
    messages and lines never depend on how PyYAML was installed."""
    if fast and _c_parser() is not None:
        try:
            return _read_yaml(text, name, True)
        except Exception:  # noqa: BLE001 - the pure loader below gives the error
            pass
    return _read_yaml(text, name, False)


def _read_yaml(text: str, name: str, fast: bool) -> tuple[Any, Source]:
    import yaml

    source = Source(name)
    loader_ = None
    try:
        loader_, node = _compose(text, fast)
        if node is None:
            return None, source
        _walk(node, (), source, name, set())
        data = loader_.construct_document(node)
    except yaml.MarkedYAMLError as err:
        raise RecipeError(f"YAML error: {_problem(err)}", where=f"{name}{_line(err)}") from None
    except yaml.reader.ReaderError as err:
        line = text.count("\n", 0, err.position) + 1
        raise RecipeError(f"YAML error: {describe(err)}", where=f"{name}:{line}") from None
    except yaml.YAMLError as err:
        raise RecipeError(f"YAML error: {describe(err)}", where=name) from None
    finally:
        if loader_ is not None:
            loader_.dispose()
    return data, source


def describe(err: Any) -> str:
    """One line for any PyYAML error: its own text runs over several lines (the reader's names
    ``"<unicode string>", position 0``), and every cnnkit error is one line."""
    import yaml

    if isinstance(err, yaml.reader.ReaderError):
        if isinstance(err.character, int) and err.encoding == "unicode":
            return f"unacceptable character #x{err.character:04x}"
        return f"cannot decode the text ({err.reason})"
    if isinstance(err, yaml.MarkedYAMLError):
        return _problem(err)
    return " ".join(str(err).split())


def _line(err: Any) -> str:
    mark = err.problem_mark or err.context_mark
    return f":{mark.line + 1}" if mark is not None else ""


def _problem(err: Any) -> str:
    problem = str(err.problem or err.context or "unreadable YAML")
    if err.context and err.problem:
        started = f" at line {err.context_mark.line + 1}" if err.context_mark else ""
        problem += f" ({err.context}{started})"
    if "could not determine a constructor" in problem:
        problem = f"unsafe or unknown YAML tag refused ({problem})"
    return problem


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
