"""Expansion of a model section's structures into primitive node specs.

Structures: nested ``sequence``, ``repeat`` (inlined into the enclosing sequence unless it is
named), ``residual`` (identity, automatic projection or given shortcut), ``parallel``
(branches merged by concat or add), ``dense`` (each copy sees the concat of all earlier
outputs) and calls of user-defined ``blocks``. Every node gets a hierarchical name from the
sequence positions and ``name:``/``id:`` keys, so ``layer3.1.conv2`` in a recipe is
``layer3.1.conv2.weight`` in the torch ``state_dict``.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from cnnkit.layers import ALIASES, LAYERS, ArgError, lookup, suggest
from cnnkit.recipe import limits
from cnnkit.recipe.blocks import Real, SubstitutionError, substitute
from cnnkit.recipe.graph import INPUT, Lookup, NotYetKnown, Ref, Scope, Shape, Shapes, Spec
from cnnkit.recipe.source import Path, Source
from cnnkit.recipe.types import Block, check_init

META = ("name", "id", "from", "init", "trainable", "splice", "if")
IN_CHANNELS = "in_channels"  # inside a block: the channel count of the call's input
_USES_IN_CHANNELS = re.compile(r"\$(\{[^}]*\b)?in_channels\b")
# torch refuses "." and "" in module names; "-" is allowed (RegNet's ``block1-0``).
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
# Attributes of torch.nn.Module that a submodule name may not shadow.
RESERVED = frozenset(
    {
        INPUT,
        "forward",
        "training",
        "train",
        "eval",
        "to",
        "cuda",
        "cpu",
        "type",
        "float",
        "double",
        "half",
        "apply",
        "parameters",
        "buffers",
        "modules",
        "children",
        "state_dict",
        "zero_grad",
        "register_buffer",
        "add_module",
        "named_modules",
        "requires_grad_",
    }
)


@dataclass(frozen=True)
class Call:
    block: str
    path: Path


class Expander:
    """Turns recipe items into ``Spec``s; ``fail`` adds file, line, key path and block calls."""

    def __init__(
        self,
        source: Source,
        blocks: dict[str, Block],
        init: str | None,
        depth: float,
        width: float = 1.0,
        input_shape: Shape = (),
    ) -> None:
        self.source = source
        self.blocks = blocks
        self.depth = depth
        self.width = width
        self.specs: list[Spec] = []
        self.by_name: dict[str, Spec] = {}
        self.shapes = Shapes(input_shape, source, self.by_name)
        self.uses_in_channels: dict[str, bool] = {}
        self.real_counts = False  # whether any block has read $in_channels (Real values)
        self.paths: dict[str, Path] = {}
        self.calls: list[Call] = []
        self.inits: list[str | None] = [init]
        self.trainable: list[bool] = [True]  # the nearest ``trainable:`` around a node wins
        self.edges = 0  # layer inputs so far: a dense block's grow with its times squared
        self.next_index = 0  # the position after the last sequence expanded
        self.exports: list[dict[str, Ref]] = []  # scopes a spliced sequence also names into
        self.copies = 1  # how many times the enclosing repeats and dense blocks copy this point
        self.structures: dict[str, Callable[..., Ref]] = {
            "sequence": self._sequence_item,
            "repeat": self._repeat,
            "residual": self._residual,
            "parallel": self._parallel,
            "dense": self._dense,
        }

    # -- errors -----------------------------------------------------------------------------

    @property
    def context(self) -> str:
        return "".join(
            f" (in block {c.block!r} used at {self.source.locate(c.path)})"
            for c in reversed(self.calls)
        )

    def fail(self, path: Path, message: str) -> Exception:
        return self.source.error(path, message + self.context)

    # -- items ------------------------------------------------------------------------------

    def parse(self, raw: Any, path: Path) -> tuple[str, Any, dict[str, Any]]:
        """Split an item into (head word, its value, meta keys)."""
        if isinstance(raw, str):
            return raw, None, {}
        if not isinstance(raw, dict):
            hint = " (a list of items goes in sequence: [...])" if isinstance(raw, list) else ""
            raise self.fail(path, f"expected a layer (a kind name or a mapping), got {raw!r}{hint}")
        meta = {k: v for k, v in raw.items() if k in META}
        heads = [k for k in raw if k not in META]
        if len(heads) != 1:
            self.misplaced_arguments(raw, heads, path)
            found = ", ".join(map(str, heads)) or "none"
            raise self.fail(
                path, f"expected exactly one layer kind or structure per item, found: {found}"
            )
        if "name" in meta and "id" in meta:
            raise self.fail((*path, "id"), "give either name or id (they mean the same)")
        return str(heads[0]), raw[heads[0]], meta

    def misplaced_arguments(self, raw: dict[Any, Any], heads: list[Any], path: Path) -> None:
        """``{conv: 8, stride: 2}``: the extra keys are the kind's (or block's) arguments,
        written beside it instead of in its mapping; say where they go."""
        for head in heads:
            kind = lookup(str(head))
            block = self.blocks.get(str(head))
            accepted = kind.keys if kind is not None else block.args if block else {}
            short = kind.short if kind is not None else _short_argument(block)
            extra = [k for k in heads if k != head]
            if not extra or not all(isinstance(k, str) and k in accepted for k in extra):
                continue
            value = raw[head]
            given = dict(value) if isinstance(value, dict) else {}
            if value is not None and not isinstance(value, dict):
                given = {short or "...": value}
            given.update({k: raw[k] for k in extra})
            what = f"block {head!r}" if kind is None else str(head)
            are = "are arguments" if len(extra) > 1 else "is an argument"
            keys = "meta keys" if len(extra) > 1 else "a meta key"
            raise self.fail(
                (*path, extra[0]),
                f"{_and(extra)} {are} of {what}, not {keys}: write {{{head}: {_flow(given)}}}",
            )

    def included(self, meta: dict[str, Any], path: Path) -> bool:
        """An item's ``if:`` (default true), which must be a boolean once substituted."""
        condition = meta.get("if", True)
        if not isinstance(condition, bool):
            hint = (
                "; ${...} is filled in only inside a block"
                if isinstance(condition, str) and "$" in condition
                else ""
            )
            raise self.fail((*path, "if"), f"expected true or false, got {condition!r}{hint}")
        return condition

    def local_name(self, meta: dict[str, Any], default: str, path: Path) -> str:
        key = "name" if "name" in meta else "id"
        return self.checked_name(meta.get(key, default), (*path, key))

    def checked_name(self, name: Any, path: Path) -> str:
        """``name`` if it can be a torch submodule name (letters, digits, _, -; not reserved)."""
        if not isinstance(name, str | int) or not _NAME.match(str(name)):
            dots = (
                "; '.' separates levels (cnnkit adds it: layer3.1.conv2)"
                if isinstance(name, str) and "." in name
                else ""
            )
            raise self.fail(
                path,
                "expected a name of letters, digits, _ and -, not starting with _ or -, "
                f"got {name!r}{dots}",
            )
        if len(str(name)) > limits.MAX_NAME_CHARS:
            raise self.fail(path, f"a name may have at most {limits.MAX_NAME_CHARS} characters")
        if str(name) in RESERVED:
            raise self.fail(path, f"{name!r} is reserved; choose another name")
        return str(name)

    def sequence(
        self, items: Any, path: Path, prefix: str, input: Ref, outer: Scope | None, start: int = 0
    ) -> Ref:
        """Chain ``items``: each takes the previous output unless it says ``from:``."""
        if not isinstance(items, list) or not items:
            raise self.fail(path, f"expected a non-empty list of layers, got {items!r}")
        scope = Scope(outer, {INPUT: input})
        # A spliced sequence's names belong to the enclosing sequences too (``from: [1, 2]``).
        exports, self.exports = [scope.names, *self.exports], []
        current, index = input, start
        for i, raw in enumerate(items):
            item_path = (*path, i)
            head, value, meta = self.parse(raw, item_path)
            if not self.included(meta, item_path):
                continue  # left out: no node, no position; its input passes on
            if head == "repeat" and "name" not in meta and "id" not in meta:
                current = self.single(self.inputs(meta, item_path, scope, current), item_path)
                names = self.copy_names(value, (*item_path, "repeat"), index, least=0)
                with self.init_of(meta, item_path), self.copying(len(names)):
                    for name in names:
                        body_path = (*item_path, "repeat", "layers")
                        current = self.body(
                            value["layers"], body_path, join(prefix, name), current, scope
                        )
                index += len(names)
                continue
            if meta.get("splice", False) is not False:
                source = self.inputs(meta, item_path, scope, current)
                self.exports = exports
                with self.init_of(meta, item_path):
                    current = self.splice(head, value, meta, item_path, prefix, source, index)
                index = self.next_index
                continue
            local = self.local_name(meta, str(index), item_path)
            index += 1
            source = self.inputs(meta, item_path, scope, current)
            with self.init_of(meta, item_path):
                current = self.dispatch(head, value, item_path, join(prefix, local), source, scope)
            for names in exports:
                names[local] = current
        self.next_index = index  # where a spliced sequence left the enclosing positions
        return current

    def splice(
        self, head: str, value: Any, meta: dict[str, Any], path: Path, prefix: str, input, at: int
    ) -> Ref:
        """A block call's (or a ``sequence:``'s) layers as items of the enclosing sequence,
        numbered on from position ``at`` (``features.0``, ``features.1``, ...)."""
        if meta["splice"] is not True:
            raise self.fail((*path, "splice"), f"expected true or false, got {meta['splice']!r}")
        if "name" in meta or "id" in meta:
            raise self.fail((*path, "splice"), "a spliced item has no name of its own")
        if head not in self.blocks and head != "sequence":
            raise self.fail((*path, "splice"), "splice applies to block calls and sequence:")
        where = (*path, head)
        if head == "sequence":
            return self.sequence(value, where, prefix, self.single(input, where), None, at)
        block = self.blocks[head]
        return self.call(block, value, where, prefix, self.single(input, where), splice_at=at)

    def body(self, raw: Any, path: Path, name: str, input: Ref, scope: Scope | None) -> Ref:
        """A list is a sequence under ``name``; a single item *is* ``name``."""
        if isinstance(raw, list):
            return self.sequence(raw, path, name, input, scope)
        head, value, meta = self.parse(raw, path)
        if not self.included(meta, path):
            return input
        if "name" in meta or "id" in meta:
            name = join(name, self.local_name(meta, "", path))
        source = self.inputs(meta, path, scope or Scope(None, {INPUT: input}), input)
        with self.init_of(meta, path):
            return self.dispatch(head, value, path, name, source, scope)

    def inputs(self, meta: dict[str, Any], path: Path, scope: Scope, current: Ref) -> Any:
        if "from" not in meta:
            return current
        refs = meta["from"]
        words = refs if isinstance(refs, list) else [refs]
        if not words or not all(isinstance(w, str | int) for w in words):
            raise self.fail(
                (*path, "from"), f"expected a layer name or a list of them, got {refs!r}"
            )
        found = [Lookup(str(w), scope, (*path, "from")) for w in words]
        return found if isinstance(refs, list) else found[0]

    @contextmanager
    def init_of(self, meta: dict[str, Any], path: Path) -> Iterator[None]:
        """Within the item, nodes default to its ``init:`` scheme and ``trainable:`` flag."""
        init = check_init(meta["init"], self.source, (*path, "init")) if "init" in meta else None
        frozen = meta.get("trainable", self.trainable[-1])
        if not isinstance(frozen, bool):
            raise self.fail((*path, "trainable"), f"expected true or false, got {frozen!r}")
        self.inits.append(self.inits[-1] if init is None else init)
        self.trainable.append(frozen)
        try:
            yield
        finally:
            self.inits.pop()
            self.trainable.pop()

    def dispatch(
        self, head: str, value: Any, path: Path, name: str, input: Any, scope: Scope | None
    ) -> Ref:
        where = (*path, head)
        if head in self.structures:
            return self.structures[head](value, where, name, self.single(input, where), scope)
        if head in self.blocks:
            return self.call(self.blocks[head], value, where, name, self.single(input, where))
        kind = lookup(head)
        if kind is None and head.startswith("$"):
            raise self.fail(
                path,
                f"{head!r}: a mapping key is not substituted; to choose a kind by an argument "
                f"write the item as text (- {head}) or give each choice with an if: pair",
            )
        if kind is None:
            words = [*self.structures, *self.blocks]
            raise self.fail(path, f"unknown layer kind{suggest(head, words, ALIASES)}")
        self.outside_block(value, where)
        try:
            args = kind.resolve(value)
        except ArgError as err:
            raise self.fail(where if err.key is None else (*where, err.key), err.message) from None
        real = self.real_counts and _real(args)
        if self.width != 1 and kind.widens is not None and not real:
            args = kind.widens(args, self.width)
        if self.real_counts:
            args = {k: _plain(v) for k, v in args.items()}
        inputs = input if isinstance(input, list) else [input]
        return self.emit(
            Spec(
                name,
                kind.name,
                args,
                inputs,
                path,
                self.inits[-1],
                self.context,
                (*path, "from") if isinstance(input, list | Lookup) else None,
            ),
        )

    def outside_block(self, value: Any, path: Path) -> None:
        """A ``$arg`` left in a value outside any block call: nothing will fill it in."""
        if self.calls:
            return
        found = _dollar(value, path)
        if found is not None:
            where, word = found
            what = "a block expression" if word.startswith("${") else "a block argument"
            raise self.fail(
                where, f"{word} is {what}: usable only inside a block's layers (model.blocks)"
            )

    def single(self, input: Any, path: Path) -> Ref:
        if isinstance(input, list):
            if len(input) != 1:
                raise self.fail(
                    input[0].path, "only merge layers (add, concat) take several inputs"
                )
            return input[0]
        return input

    def emit(self, spec: Spec) -> str:
        if spec.name in self.paths:
            first = self.source.locate(self.paths[spec.name])
            raise self.fail(spec.path, f"duplicate layer name {spec.name!r} (also at {first})")
        if len(self.specs) >= limits.MAX_LAYERS:
            raise self.fail(spec.path, f"more than {limits.MAX_LAYERS:,} layers")
        self.edges += len(spec.inputs) if isinstance(spec.inputs, list) else 1
        if self.edges > limits.MAX_EDGES:
            raise self.fail(
                spec.path,
                f"more than {limits.MAX_EDGES:,} layer inputs in all (dense blocks "
                "concatenate every earlier output, so their inputs grow with times squared)",
            )
        self.paths[spec.name] = spec.path
        self.by_name[spec.name] = spec
        spec.trainable = self.trainable[-1]
        self.specs.append(spec)
        return spec.name

    # -- structures -------------------------------------------------------------------------

    def mapping(self, value: Any, path: Path, allowed: dict[str, bool]) -> dict[str, Any]:
        """Check a structure's keys: ``allowed`` maps each key to whether it is required."""
        if not isinstance(value, dict):
            keys = ", ".join(allowed)
            raise self.fail(path, f"expected a mapping with keys {keys}, got {value!r}")
        for key in value:
            if key not in allowed:
                raise self.fail((*path, key), f"unknown key{suggest(str(key), list(allowed))}")
        for key, required in allowed.items():
            if required and key not in value:
                raise self.fail(path, f"missing key {key!r}")
        return value

    def copy_names(self, value: Any, path: Path, start: int, least: int = 1) -> list[str]:
        """Names of a repeat's (``least`` 0: none is allowed) or a dense block's copies."""
        spec = self.mapping(value, path, {"times": True, "layers": True, "names": False})
        times = spec["times"]
        self.outside_block(times, (*path, "times"))
        if isinstance(times, bool) or not isinstance(times, int) or times < least:
            want = "a positive integer" if least else "a whole number, 0 or more"
            raise self.fail((*path, "times"), f"expected {want}, got {times!r}")
        if not times * self.depth * self.copies <= limits.MAX_LAYERS:
            within = f" x {self.copies:,} enclosing copies" if self.copies > 1 else ""
            raise self.fail(
                (*path, "times"),
                f"{times} copies (x model.depth {self.depth:g}{within}) exceed the limit of "
                f"{limits.MAX_LAYERS:,} layers",
            )
        times = max(1, round(times * self.depth)) if times else 0
        if "names" not in spec:
            # Unnamed copies take the next positions of the enclosing sequence (layer3.1 ..).
            return [str(start + t) for t in range(times)]
        pattern = spec["names"]
        where = (*path, "names")
        if not isinstance(pattern, str):
            raise self.fail(where, f"expected a text like 'layer{{n}}', got {pattern!r}")
        if "$" in pattern:
            raise self.fail(
                where,
                f"{pattern!r}: names count copies with {{i}} (from 0) or {{n}} (from 1); "
                "$arg fills block arguments only inside a block that has that argument",
            )
        _check_template(pattern, lambda message: self.fail(where, message))
        try:
            names = [pattern.format(i=t, n=t + 1) for t in range(times)]
        except (KeyError, IndexError, ValueError):
            raise self.fail(where, f"use {{i}} (from 0) or {{n}} (from 1) in {pattern!r}") from None
        if len(set(names)) < len(names):
            raise self.fail(
                where,
                f"{pattern!r} names every copy alike: a names: template needs {{i}} or {{n}} "
                "to tell the copies apart",
            )
        return [self.checked_name(name, where) for name in names]

    def _sequence_item(self, value: Any, path: Path, name: str, input: Ref, scope) -> Ref:
        return self.sequence(value, path, name, input, scope)

    def _repeat(self, value: Any, path: Path, name: str, input: Ref, scope) -> Ref:
        current = input
        copies = self.copy_names(value, path, 0, least=0)
        with self.copying(len(copies)):
            for copy in copies:
                current = self.body(
                    value["layers"], (*path, "layers"), join(name, copy), current, scope
                )
        return current

    @contextmanager
    def copying(self, times: int) -> Iterator[None]:
        """Count the copies a nested repeat makes, so ``times`` is checked against the layer
        limit as a product before any layer is made (1000 x 1000 fails at once, not at 100,000)."""
        times = max(times, 1)  # no copies (times: 0) multiply nothing
        self.copies *= times
        try:
            yield
        finally:
            self.copies //= times

    def _residual(self, value: Any, path: Path, name: str, input: Ref, scope) -> Ref:
        spec = self.mapping(
            value, path, {"layers": True, "shortcut": False, "after": False, "shortcut_name": False}
        )
        body_out = self.sequence(as_list(spec["layers"]), (*path, "layers"), name, input, scope)
        after_at = self.next_index  # ``after`` numbers on from the body's last position
        shortcut = spec.get("shortcut", "auto")
        if isinstance(shortcut, str):
            self.outside_block(shortcut, (*path, "shortcut"))
        short_local = spec.get("shortcut_name", "downsample")
        short_name = join(name, self.checked_name(short_local, (*path, "shortcut_name")))
        if shortcut == "none":
            return self._after(spec, path, name, body_out, scope, after_at)
        if shortcut == "identity":
            short: Ref = input
        elif shortcut in ("auto", "projection"):
            short = self.emit(
                Spec(
                    short_name,
                    "shortcut",
                    {},
                    [input, body_out],
                    (*path, "shortcut") if "shortcut" in spec else path,
                    self.inits[-1],
                    self.context,
                    force=shortcut == "projection",
                )
            )
        elif isinstance(shortcut, list | dict):
            short = self.body(shortcut, (*path, "shortcut"), short_name, input, scope)
        else:
            raise self.fail(
                (*path, "shortcut"),
                f"expected identity, auto, projection, none or a list of layers, got {shortcut!r}",
            )
        add = Spec(
            join(name, "add"), "add", {}, [body_out, short], path, self.inits[-1], self.context
        )
        add.identity_residual = shortcut == "identity"
        out = self.emit(add)
        return self._after(spec, path, name, out, scope, after_at)

    def _after(self, spec: dict, path: Path, name: str, out: Ref, scope, at: int) -> Ref:
        if "after" not in spec:
            return out
        return self.sequence(as_list(spec["after"]), (*path, "after"), name, out, scope, at)

    def _parallel(self, value: Any, path: Path, name: str, input: Ref, scope) -> Ref:
        spec = self.mapping(value, path, {"branches": True, "merge": False})
        branches = spec["branches"]
        if isinstance(branches, list):
            named = [(str(i), b) for i, b in enumerate(branches)]
        elif isinstance(branches, dict):
            named = [(str(k), b) for k, b in branches.items()]
        else:
            named = []
        if len(named) < 2:
            raise self.fail(
                (*path, "branches"), "expected two or more branches (a list or a mapping)"
            )
        merge = spec.get("merge", "concat")
        self.outside_block(merge, (*path, "merge"))
        if merge not in ("concat", "add"):
            raise self.fail((*path, "merge"), f"expected concat or add, got {merge!r}")
        outs: list[Ref] = []
        for key, branch in named:
            bpath = (*path, "branches", int(key) if isinstance(branches, list) else key)
            if not isinstance(branches, list):
                self.local_name({"name": key}, key, bpath)
            outs.append(self.body(branch, bpath, join(name, key), input, scope))
        return self.emit(
            Spec(join(name, merge), merge, {}, outs, path, self.inits[-1], self.context)
        )

    def _dense(self, value: Any, path: Path, name: str, input: Ref, scope) -> Ref:
        linear = LAYERS["linear"].keys
        if isinstance(value, int) or (isinstance(value, dict) and set(value) & set(linear)):
            raise self.fail(
                path,
                "dense is the DenseNet structure (dense: {times: n, layers: ...}); "
                "for a fully connected layer write linear (or fc)",
            )
        copies = self.copy_names(value, path, 0)
        with self.copying(len(copies)):
            return self._dense_copies(value, path, name, input, scope, copies)

    def _dense_copies(
        self, value: Any, path: Path, name: str, input: Ref, scope, copies: list[str]
    ) -> Ref:
        features: list[Ref] = [input]
        for t, copy in enumerate(copies):
            source = features[0]
            if t:
                source = self.emit(
                    Spec(
                        join(name, f"cat{t}"),
                        "concat",
                        {},
                        list(features),
                        path,
                        self.inits[-1],
                        self.context,
                    )
                )
            features.append(
                self.body(value["layers"], (*path, "layers"), join(name, copy), source, scope)
            )
        return self.emit(
            Spec(join(name, "cat"), "concat", {}, features, path, self.inits[-1], self.context)
        )

    # -- blocks -----------------------------------------------------------------------------

    def arguments(
        self, block: Block, given: dict[str, Any], path: Path, input: Ref
    ) -> dict[str, Any]:
        """The block's argument values: the given ones, then the defaults in order (a default
        may use ``$in_channels`` and the arguments before it), plus ``in_channels``."""
        values: dict[str, Any] = {}
        if self.reads_in_channels(block):
            values[IN_CHANNELS] = Real(self.in_channels(block, input))
            self.real_counts = True
        args_path = (*block.path[:-1], "args")
        for key, default in block.args.items():
            if key in given:
                values[key] = given[key]
                continue
            try:
                values[key] = substitute(
                    default, {**values, **given}, (*args_path, key), self.width
                )
            except SubstitutionError as err:
                raise self.fail(err.path, str(err)) from None
        return values

    def check_given(self, block: Block, given: dict[str, Any], path: Path) -> None:
        for key in given:
            if key == IN_CHANNELS:
                raise self.fail(
                    (*path, key),
                    "in_channels is the channel count of the block's input; it cannot be given",
                )
            if key not in block.args:
                raise self.fail(
                    (*path, key), f"unknown block argument{suggest(str(key), block.args)}"
                )
        missing = [k for k, v in block.args.items() if given.get(k, v) is None]
        if missing:
            raise self.fail(path, f"block {block.name!r} needs {', '.join(map(repr, missing))}")

    def reads_in_channels(self, block: Block) -> bool:
        if block.name not in self.uses_in_channels:
            self.uses_in_channels[block.name] = _mentions(
                (block.args, block.body), _USES_IN_CHANNELS
            )
        return self.uses_in_channels[block.name]

    def in_channels(self, block: Block, input: Ref) -> int:
        """The channel count (first axis) of the call's input, inferred from the layers
        emitted so far (memoised: a chain of such calls stays linear)."""
        try:
            shape = self.shapes.of(input)
        except NotYetKnown as err:
            why = (
                f"a cycle through {err.word!r}"
                if err.cycle
                else f"{err.word!r}, which is not defined before the call; move the call after it"
            )
            raise self.fail(
                err.path, f"block {block.name!r} uses $in_channels, but its input depends on {why}"
            ) from None
        return shape[0]  # every shape has its channels first (the input's are checked)

    def call(
        self, block: Block, value: Any, path: Path, name: str, input: Ref, splice_at: int = -1
    ) -> Ref:
        if any(c.block == block.name for c in self.calls):
            raise self.fail(path, f"block {block.name!r} uses itself")
        if len(self.calls) >= limits.MAX_CALL_DEPTH:
            raise self.fail(path, f"blocks call blocks more than {limits.MAX_CALL_DEPTH} deep")
        if value is None:
            given: dict[str, Any] = {}
        elif isinstance(value, dict):
            given = value
        elif (short := _short_argument(block)) is not None:
            given = {short: value}  # short form: the one required (or only) argument
        else:
            raise self.fail(path, _short_form_message(block, value))
        self.outside_block(given, path)
        self.check_given(block, given, path)
        self.calls.append(Call(block.name, path))
        try:
            values = self.arguments(block, given, path, input)
            try:
                body = substitute(block.body, values, width=self.width)
            except SubstitutionError as err:
                raise self.fail((*block.path, *err.path), str(err)) from None
            scope = Scope(None, {INPUT: input})
            if splice_at >= 0:
                return self.sequence(as_list(body), block.path, name, input, scope, splice_at)
            return self.body(body, block.path, name, input, scope)
        finally:
            self.calls.pop()


_DOLLAR = re.compile(r"\$\{?\s*([A-Za-z_]\w*)")
_EXPRESSION = re.compile(r"\$\{[^}]*\}")


def _dollar(value: Any, path: Path) -> tuple[Path, str] | None:
    """The key path and ``$name`` of the first ``$`` argument in ``value``, if any."""
    stack = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str) and (match := _EXPRESSION.search(item)):
            return where, match.group(0)
        if isinstance(item, str) and (match := _DOLLAR.search(item)):
            return where, f"${match.group(1)}"
        if isinstance(item, dict):
            stack.extend((v, (*where, k)) for k, v in reversed(item.items()))
        elif isinstance(item, list):
            stack.extend((v, (*where, i)) for i, v in reversed(list(enumerate(item))))
    return None


def _short_argument(block: Block | None) -> str | None:
    """The argument a block call's short form (``- b: 8``) fills: the one required argument,
    or the only one."""
    if block is None:
        return None
    required = [k for k, v in block.args.items() if v is None] or list(block.args)
    return required[0] if len(required) == 1 else None


def _short_form_message(block: Block, value: Any) -> str:
    required = [k for k, v in block.args.items() if v is None]
    names = required or list(block.args)
    if not names:
        return f"block {block.name!r} takes no arguments, got {value!r}"
    example = _flow({names[0]: value, **{k: "..." for k in required[1:]}})
    need = f"needs {_and(names)}" if required else f"has arguments {_and(names)} (all optional)"
    return (
        f"block {block.name!r} {need}; the short form fills one argument: "
        f"write {{{block.name}: {example}}}"
    )


def _and(words: list[str]) -> str:
    words = [str(w) for w in words]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def _flow(value: Any) -> str:
    """``value`` in YAML flow style, for an example in a message: ``{out: 8, k: ...}``."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    if value is None:
        return "~"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _check_template(pattern: str, fail: Callable[[str], Exception]) -> None:
    """Refuse a names template that could build huge names (``{n:>300000000}``) before
    any name is formatted."""
    if len(pattern) > limits.MAX_NAME_CHARS:
        raise fail(f"a names template may have at most {limits.MAX_NAME_CHARS} characters")
    try:
        specs = [spec or "" for _, _, spec, _ in string.Formatter().parse(pattern)]
    except ValueError:
        return  # format() reports the unreadable template
    if any(int(width) > limits.MAX_NAME_CHARS for s in specs for width in re.findall(r"\d+", s)):
        raise fail(f"a width in {pattern!r} exceeds {limits.MAX_NAME_CHARS} characters")


def _real(args: dict[str, Any]) -> bool:
    """Whether a conv's width follows its input already (``out`` or ``groups`` computed from
    ``$in_channels``): ``model.width`` scaled that input, so it is not scaled twice."""
    return isinstance(args.get("out"), Real) or isinstance(args.get("groups"), Real)


def _plain(value: Any) -> Any:
    if isinstance(value, Real):
        return int(value)
    if isinstance(value, list | tuple):
        return type(value)(_plain(v) for v in value)
    return value


def _mentions(data: Any, pattern: re.Pattern[str]) -> bool:
    """Whether any text in ``data`` (nested lists and mappings, keys too) matches."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if pattern.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


def join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def as_list(value: Any) -> Any:
    return value if isinstance(value, list) else [value]


__all__ = ["LAYERS", "Block", "Expander"]
