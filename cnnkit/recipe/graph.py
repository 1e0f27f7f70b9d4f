"""The flat graph every recipe becomes, and its assembly: reference resolution, cycle
detection, automatic residual projections and shape inference, in one topological pass."""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cnnkit.arith.sizes import conv_size
from cnnkit.errors import ShapeError
from cnnkit.layers import LAYERS, ArgError, Shape
from cnnkit.recipe.source import Path, Source, fmt_path

INPUT = "input"


@dataclass(frozen=True)
class Node:
    """One primitive layer: a registry kind with validated args, wired to named inputs.

    ``name`` is hierarchical (``layer3.1.conv2``) and becomes the torch submodule path;
    ``shape`` is the output shape without the batch; ``where`` is ``file:line: key.path``.
    ``trainable`` False (``trainable: false`` in the recipe) freezes its parameters.
    """

    name: str
    kind: str
    args: Mapping[str, Any]
    inputs: tuple[str, ...]
    shape: Shape
    where: str
    init: str | None = None
    trainable: bool = True


@dataclass(frozen=True)
class Graph:
    """A DAG of primitive nodes in topological order; ``"input"`` names the model input."""

    input_shape: Shape
    nodes: tuple[Node, ...]
    output: str
    _index: dict[str, Node] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._index.update((n.name, n) for n in self.nodes)

    def __getitem__(self, name: str) -> Node:
        return self._index[name]

    def shape_of(self, name: str) -> Shape:
        return self.input_shape if name == INPUT else self._index[name].shape

    def input_shapes(self, node: Node) -> tuple[Shape, ...]:
        return tuple(self.shape_of(i) for i in node.inputs)

    @property
    def output_shape(self) -> Shape:
        return self.shape_of(self.output)


@dataclass
class Lookup:
    """A ``from:`` reference, resolved once every name in the recipe is known."""

    word: str
    scope: Scope
    path: Path


@dataclass
class Scope:
    """Names visible to ``from:`` in one sequence; inner scopes see outer ones."""

    parent: Scope | None
    names: dict[str, Ref]

    def find(self, word: str) -> Ref | None:
        scope: Scope | None = self
        while scope is not None:
            if word in scope.names:
                return scope.names[word]
            scope = scope.parent
        return None

    def visible(self) -> set[str]:
        out: set[str] = set()
        scope: Scope | None = self
        while scope is not None:
            out |= set(scope.names)
            scope = scope.parent
        return out


Ref = str | Lookup


@dataclass
class Spec:
    """A node before assembly. ``kind`` ``"shortcut"`` is a residual's automatic shortcut:
    identity when the shapes agree, else a strided 1x1 conv + BN (always with ``force``)."""

    name: str
    kind: str
    args: dict[str, Any]
    inputs: list[Ref]
    path: Path
    init: str | None = None
    context: str = ""
    from_path: Path | None = None
    force: bool = False
    trainable: bool = True
    identity_residual: bool = False  # the add of a residual with ``shortcut: identity``


def assemble(specs: list[Spec], output: Ref, input_shape: Shape, source: Source) -> Graph:
    """Resolve references, order topologically, expand shortcuts and infer every shape."""
    names = {s.name for s in specs}
    by_name = {s.name: s for s in specs}
    inputs = {s.name: [_resolve(r, s, source, names) for r in s.inputs] for s in specs}
    out_name = _resolve(output, None, source, names)
    order = _toposort(specs, inputs, by_name, source)

    alias: dict[str, str] = {}
    shapes: dict[str, Shape] = {INPUT: input_shape}
    nodes: list[Node] = []

    def real(name: str) -> str:
        while name in alias:
            name = alias[name]
        return name

    def add(spec: Spec, ins: list[str]) -> None:
        where = f"{source.locate(spec.path)}: {fmt_path(spec.path)}"
        shape = node_shape(spec, tuple(shapes[i] for i in ins), source)
        shapes[spec.name] = shape
        extra = (spec.init, spec.trainable)
        nodes.append(Node(spec.name, spec.kind, spec.args, tuple(ins), shape, where, *extra))

    for spec in order:
        ins = [real(i) for i in inputs[spec.name]]
        if spec.kind == "shortcut":
            x, body = ins
            if shapes[x] == shapes[body] and not spec.force:
                alias[spec.name] = x
                continue
            conv, bn = _projection(spec, shapes[x], shapes[body], source)
            add(conv, [x])
            add(bn, [conv.name])
            alias[spec.name] = bn.name
        else:
            add(spec, ins)
    _check_group_names(nodes, by_name, source)
    return Graph(input_shape, tuple(nodes), real(out_name))


def node_shape(spec: Spec, in_shapes: tuple[Shape, ...], source: Source) -> Shape:
    """The output shape of a primitive ``spec``, or the error that names it."""
    kind = LAYERS[spec.kind]
    lo, hi = kind.arity
    if len(in_shapes) < lo or (hi is not None and len(in_shapes) > hi):
        want = f"at least {lo}" if hi is None else str(lo) if lo == hi else f"{lo} to {hi}"
        raise source.error(
            spec.from_path or spec.path,
            f"layer {spec.name} ({spec.kind}) takes {want} input(s), got {len(in_shapes)}"
            + ("; list them with from: [a, b]" if hi is None else "")
            + spec.context,
        )
    try:
        return kind.shape(spec.args, in_shapes)
    except ShapeError as err:
        where = f"{source.locate(spec.path)}: {fmt_path(spec.path)}"
        message = f"layer {spec.name} ({spec.kind}): {err.message}"
        if spec.identity_residual:
            body, given = ("x".join(map(str, s)) for s in in_shapes)
            residual = spec.name.rpartition(".")[0] or spec.name
            message = (
                f"residual {residual} (shortcut: identity): the residual body gives {body} but "
                f"its input is {given}; use shortcut: auto or projection"
            )
        raise ShapeError(message + spec.context, where=where) from None


class NotYetKnown(Exception):
    """A shape asked for during expansion that depends on a ``from:`` not resolvable yet."""

    def __init__(self, word: str, path: Path, cycle: bool = False) -> None:
        self.word = word
        self.path = path
        self.cycle = cycle  # the layers before the call wait on each other
        super().__init__(word)


class Shapes:
    """Output shapes of the specs emitted so far, inferred on demand and memoised (each spec
    once, without recursion), so a block can read its input's channel count while the recipe
    is still being expanded (``$in_channels``). Assembly infers them again, in order."""

    def __init__(self, input_shape: Shape, source: Source, specs: dict[str, Spec]) -> None:
        self.source = source
        self.specs = specs  # the expander's name -> spec, growing as it emits
        self.known: dict[str, Shape] = {INPUT: input_shape}

    def now(self, ref: Ref) -> str:
        """The name ``ref`` stands for, if that is already decided."""
        while isinstance(ref, Lookup):
            found = ref.scope.find(ref.word)
            if found is None:
                if ref.word == INPUT or ref.word in self.specs:
                    return ref.word
                raise NotYetKnown(ref.word, ref.path)
            ref = found
        return ref

    def of(self, ref: Ref) -> Shape:
        """The output shape of ``ref``: a depth-first walk whose stack is the current path
        (one unknown input pushed at a time), so a cycle shows as a name met twice on it."""
        root = self.now(ref)
        stack, on_path = [root], {root}
        inputs: dict[str, list[str]] = {}
        done: dict[str, int] = {}  # how many of a name's inputs are known (each checked once)
        while stack:
            name = stack[-1]
            if name not in self.known:
                spec = self.specs[name]
                if name not in inputs:
                    inputs[name], done[name] = [self.now(r) for r in spec.inputs], 0
                ins = inputs[name]
                while done[name] < len(ins) and ins[done[name]] in self.known:
                    done[name] += 1
                if done[name] < len(ins):
                    missing = ins[done[name]]
                    if missing in on_path:
                        raise NotYetKnown(missing, spec.from_path or spec.path, cycle=True)
                    stack.append(missing)
                    on_path.add(missing)
                    continue
                self.known[name] = self._shape(spec, tuple(self.known[i] for i in ins))
            stack.pop()
            on_path.discard(name)
        return self.known[root]

    def _shape(self, spec: Spec, ins: tuple[Shape, ...]) -> Shape:
        if spec.kind != "shortcut":
            return node_shape(spec, ins, self.source)
        x, body = ins
        if x != body or spec.force:
            _projection(spec, x, body, self.source)  # raises when no 1x1 conv can do it
        return body


def _resolve(ref: Ref, spec: Spec | None, source: Source, names: set[str]) -> str:
    if isinstance(ref, str):
        return ref
    found = ref.scope.find(ref.word)
    if found is not None:
        return _resolve(found, spec, source, names)
    if ref.word in names or ref.word == INPUT:
        return ref.word
    from cnnkit.layers import suggest

    hint = suggest(ref.word, sorted(ref.scope.visible() | names))
    raise source.error(ref.path, f"no layer named{hint}")


def _toposort(
    specs: list[Spec], inputs: dict[str, list[str]], by_name: dict[str, Spec], source: Source
) -> list[Spec]:
    """Kahn's algorithm, ties broken by recipe order so names stay in reading order."""
    position = {s.name: i for i, s in enumerate(specs)}
    waiting = {s.name: {i for i in inputs[s.name] if i != INPUT} for s in specs}
    users: dict[str, list[str]] = {}
    for name, deps in waiting.items():
        for d in deps:
            users.setdefault(d, []).append(name)
    ready = [position[n] for n, deps in waiting.items() if not deps]
    heapq.heapify(ready)
    order: list[Spec] = []
    while ready:
        spec = specs[heapq.heappop(ready)]
        order.append(spec)
        for user in users.get(spec.name, ()):
            waiting[user].discard(spec.name)
            if not waiting[user]:
                heapq.heappush(ready, position[user])
    if len(order) < len(specs):
        cycle = _find_cycle({n: d for n, d in waiting.items() if d})
        culprit = next((by_name[n] for n in cycle if by_name[n].from_path), by_name[cycle[0]])
        raise source.error(
            culprit.from_path or culprit.path,
            f"cycle: {' -> '.join([*cycle, cycle[0]])} (each layer needs the next one's output)",
        )
    return order


def _find_cycle(waiting: dict[str, set[str]]) -> list[str]:
    """A cycle among nodes that still wait on each other (every one of them waits)."""
    node = next(iter(waiting))
    seen: list[str] = []
    while node not in seen:
        seen.append(node)
        node = min(waiting[node])
    return seen[seen.index(node) :][::-1]


def _smallest_stride(n: int, m: int) -> int | None:
    """The smallest stride s of a 1x1 conv taking n positions to m: (n-1)//s + 1 == m, in
    closed form (a loop over s would take as long as the input is wide)."""
    if m < 1 or m > n:
        return None
    s = n if m == 1 else (n - 1) // m + 1
    return s if conv_size(n, 1, s) == m else None


def _projection(spec: Spec, x: Shape, body: Shape, source: Source) -> tuple[Spec, Spec]:
    """The strided 1x1 conv + BN that maps the block input's shape to the body's."""
    where = f"{source.locate(spec.path)}: {fmt_path(spec.path)}"
    strides = []
    ok = len(x) == len(body) and len(x) >= 2
    for n, m in zip(x[1:], body[1:]):
        stride = _smallest_stride(n, m)
        ok = ok and stride is not None
        strides.append(stride)
    if not ok:
        raise ShapeError(
            f"layer {spec.name} (residual shortcut): a strided 1x1 conv cannot turn the block "
            f"input {_fmt(x)} into the body output {_fmt(body)}; give 'shortcut:' layers"
            f"{spec.context}",
            where=where,
        )
    try:
        conv_args = LAYERS["conv"].resolve(
            {"out": body[0], "kernel": 1, "stride": strides, "bias": False}
        )
    except ArgError as err:  # pragma: no cover - built from checked shapes
        raise ShapeError(err.message, where=where) from None
    conv = Spec(f"{spec.name}.0", "conv", conv_args, [], spec.path, spec.init, spec.context)
    bn_args = LAYERS["bn"].resolve(spec.args.get("bn") or None)
    bn = Spec(f"{spec.name}.1", "bn", bn_args, [], spec.path, spec.init, spec.context)
    conv.trainable = bn.trainable = spec.trainable
    return conv, bn


def _fmt(shape: Shape) -> str:
    return "x".join(map(str, shape))


def _check_group_names(nodes: list[Node], by_name: dict[str, Spec], source: Source) -> None:
    leaves = {n.name for n in nodes}
    for node in nodes:
        parts = node.name.split(".")
        for end in range(1, len(parts)):
            prefix = ".".join(parts[:end])
            if prefix in leaves:
                spec = by_name.get(node.name) or by_name[prefix]
                raise source.error(
                    spec.path,
                    f"{prefix!r} names a layer and also the group holding {node.name!r}; "
                    "rename one of them",
                )
