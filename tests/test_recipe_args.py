"""Block arguments from the call's input (``$in_channels``), the ``${...}`` evaluator's
comparisons, conditionals and functions, ``if:`` on items and ``shortcut: none``.

Oracles: torch modules built from the recipe (their real input channel counts, state_dict
keys), Python's own ``eval`` on random whitelisted expressions, and hand-built graphs."""

from __future__ import annotations

import math
import re
import time
from textwrap import dedent

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cnnkit.errors import RecipeError
from cnnkit.recipe import graph as graph_module
from cnnkit.recipe import recipe_from_text
from cnnkit.recipe.expr import FUNCTIONS, ExprError, evaluate, make_divisible


def load(text: str):
    return recipe_from_text(dedent(text), "x.yaml")


def built(recipe) -> nn.Module:
    from cnnkit.model.build import build

    return build(recipe)


def error(text: str) -> str:
    with pytest.raises(RecipeError) as info:
        load(text)
    message = str(info.value)
    assert "\n" not in message
    return message


def real_in_channels(module: nn.Module, x: torch.Tensor) -> dict[str, int]:
    """Each conv's input channel count as torch sees it in a forward pass."""
    seen: dict[str, int] = {}

    def record(name: str):
        def hook(mod, args) -> None:
            seen[name] = args[0].shape[1]

        return hook

    hooks = [
        m.register_forward_pre_hook(record(name))
        for name, m in module.named_modules()
        if isinstance(m, nn.Conv2d)
    ]
    with torch.no_grad():
        module.eval()(x)
    for h in hooks:
        h.remove()
    return seen


DEPTHWISE = """\
input: [3, 16, 16]
model:
  width: WIDTH
  blocks:
    dw:
      args: {mult: 1}
      layers:
        - {conv: {out: "${in_channels * mult}", p: 1, groups: $in_channels}, name: dw}
        - relu
  layers:
    - conv: {out: 8, p: 1}
    - dw
    - {dw: {mult: 2}, name: wide}
    - repeat: {times: 2, layers: {dw: {mult: 1}}}
    - dense: {times: 3, layers: [{conv: {out: 4, k: 1}}, {dw: {mult: 1}}]}
    - gap
    - {linear: 10, name: fc}
"""


@pytest.mark.parametrize("width", [1, 2, 0.5])
def test_in_channels_is_the_real_input_channel_count(width):
    recipe = load(DEPTHWISE.replace("WIDTH", str(width)))
    module = built(recipe)
    seen = real_in_channels(module, torch.zeros(1, 3, 16, 16))
    dws = [n for n in recipe.graph.nodes if n.name.endswith(".dw") or n.name == "wide.dw"]
    assert len(dws) == 1 + 1 + 2 + 3
    for node in dws:
        conv = module.get_submodule(node.name)
        # depthwise: one group per real input channel, as the forward pass shows
        assert conv.groups == seen[node.name] == conv.in_channels
        # computed from the real count, so model.width does not scale it a second time
        assert conv.out_channels == conv.in_channels * (2 if node.name == "wide.dw" else 1)
    assert module.get_submodule("0").out_channels == round(8 * width)  # declared: widened
    # the dense copies see growing inputs: 4 + 4k channels at copy k ... the concat of all
    dense_groups = [module.get_submodule(n.name).groups for n in dws if n.name.startswith("5.")]
    assert len(set(dense_groups)) == 1  # each copy's dw sees its own 1x1 conv's 4 channels


def test_in_channels_in_defaults_and_through_from():
    recipe = load(
        """\
        input: [3, 8, 8]
        model:
          blocks:
            expand:
              args: {t: 2, hidden: "${in_channels * t}"}
              layers: [{conv: {out: $hidden, k: 1}}]
          layers:
            - {conv: {out: 5, k: 1}, name: a}
            - conv: {out: 7, k: 1}
            - {expand: {t: 3}, from: a, name: e}
            - {expand: {hidden: 4}, name: f}
        """
    )
    assert recipe.graph["e.0"].shape[0] == 15  # 3 x the 5 channels of `a`, not of the conv before
    assert recipe.graph["f.0"].shape[0] == 4  # a given argument wins over its default


def test_in_channels_of_nested_calls_is_each_calls_own_input():
    recipe = load(
        """\
        input: [3, 8, 8]
        model:
          blocks:
            double:
              layers: [{conv: {out: "${2 * in_channels}", k: 1}}]
            outer:
              args: {c: "$in_channels"}
              layers: [double, double, {conv: {out: $c, k: 1}}]
          layers:
            - conv: {out: 4, k: 1}
            - outer
        """
    )
    assert [n.shape[0] for n in recipe.graph.nodes] == [4, 8, 16, 4]


@pytest.mark.parametrize(
    ("blocks", "layers", "expected"),
    [
        (
            "    b:\n      args: {in_channels: 3}\n      layers: [relu]\n",
            "    - b\n",
            "x.yaml:5: model.blocks.b.args.in_channels: in_channels is reserved",
        ),
        (
            "    b:\n      args: {k: 3}\n      layers: [relu]\n",
            "    - b: {in_channels: 3}\n",
            "x.yaml:8: model.layers[0].b.in_channels: in_channels is the channel count",
        ),
        (
            "    b:\n      layers: [{conv: {out: $in_channels}}]\n",
            "    - {b, from: later}\n    - {relu, name: later}\n",
            "x.yaml:7: model.layers[0].from: block 'b' uses $in_channels, but its input depends "
            "on 'later', which is not defined before the call",
        ),
        (
            "    b:\n      layers: [{conv: {out: $in_channels}}]\n",
            "    - {relu, name: a, from: c}\n    - {relu, name: c, from: a}\n    - {b, from: a}\n",
            "x.yaml:8: model.layers[1].from: block 'b' uses $in_channels, but its input depends "
            "on a cycle through 'a' (in block 'b' used at x.yaml:9)",
        ),
        (
            "    b:\n      args: {c: '${in_channels + x}'}\n      layers: [{conv: {out: $c}}]\n",
            "    - b\n",
            "x.yaml:5: model.blocks.b.args.c: unknown block argument 'x'",
        ),
    ],
)
def test_in_channels_errors_are_one_line_with_the_key_path(blocks, layers, expected):
    text = "input: [3, 8, 8]\nmodel:\n  blocks:\n" + blocks + "  layers:\n" + layers
    assert error(text).startswith(expected)


def _chain(n: int, uses: bool) -> str:
    out = "'${in_channels}'" if uses else "8"
    return (
        "input: [8, 4, 4]\nmodel:\n  blocks:\n    b:\n      layers:\n"
        f"        - {{conv: {{out: {out}, k: 1}}}}\n"
        f"  layers:\n    - repeat: {{times: {n}, layers: b}}\n"
    )


def test_a_chain_of_in_channels_calls_infers_each_shape_once(monkeypatch):
    calls = []
    real = graph_module.node_shape
    monkeypatch.setattr(graph_module, "node_shape", lambda *a: calls.append(1) or real(*a))
    n = 5000
    start = time.perf_counter()
    load(_chain(n, uses=True))
    with_in = time.perf_counter() - start
    assert len(calls) == 2 * n - 1  # once while expanding (all but the last), once assembling
    start = time.perf_counter()
    load(_chain(n, uses=False))
    without = time.perf_counter() - start
    assert with_in < 3 * without + 0.5  # about as long: no quadratic walk back over the chain


# -- the expression evaluator ----------------------------------------------------------------


def ev(text: str, **values):
    def lookup(name: str):
        if name not in values:
            raise ExprError(f"unknown {name}")
        return values[name]

    return evaluate(text, lookup)


@pytest.mark.parametrize(
    ("text", "values", "expected"),
    [
        ("a == 1", {"a": 1}, True),
        ("1 < a <= 3 != b", {"a": 3, "b": 3}, False),
        ("stride == 1 and cin == out", {"stride": 1, "cin": 8, "out": 8}, True),
        ("not hs or x", {"hs": True, "x": 0}, 0),
        ("'hardswish' if hs else 'relu'", {"hs": False}, "relu"),
        ("act == 'relu'", {"act": "relu"}, True),
        ("make_divisible(c * w, 8)", {"c": 32, "w": 0.75}, 24),
        ("make_divisible(v, 8, min_value=16)", {"v": 3}, 16),
        ("max(16, min(a, 4)) + abs(-2)", {"a": 9}, 18),
        ("int(7 / 2) + round(2.5) + floor(-1.5) + ceil(1.1)", {}, 3 + 2 - 2 + 2),
        ("True + True", {}, 2),
        ("1 if None else 2", {}, 2),
        ("x / 2", {"x": 6}, 3),
    ],
)
def test_expressions(text, values, expected):
    result = ev(text, **values)
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a.b", "only numbers, strings"),
        ("a[0]", "only numbers, strings"),
        ("print(1)", "only the functions make_divisible"),
        ("__import__('os')", "only the functions"),
        ("(1).real", "only numbers"),
        ("max(*a)", "only the functions"),
        ("max(**a)", "no ** arguments"),
        ("[x for x in a]", "only numbers"),
        ("lambda: 1", "only numbers"),
        ("f'{a}'", "only numbers"),
        ("1 in a", "only numbers"),
        ("a is 1", "only numbers"),
        ("~1", "only numbers"),
        ("'a' * 1000000000", "arithmetic needs numbers"),
        ("'a' + 'b'", "arithmetic needs numbers"),
        ("-'a'", "arithmetic needs numbers"),
        ("2 ** 1000", "exponent 1000 is too large"),
        ("int(1e300)", "too large"),
        ("round(1e300)", "too large"),
        ("(-8) ** 0.5", "not a number, text or boolean"),
        ("1 / 0", "cannot evaluate"),
        ("1 < 'a'", "cannot evaluate"),
        ("make_divisible(1)", "cannot evaluate"),
        ("max()", "cannot evaluate"),
        ("1 +", "cannot read"),
        ("1" * 201, "at most 200 characters"),
    ],
)
def test_expressions_outside_the_whitelist_are_refused(text, message):
    with pytest.raises(ExprError, match=re.escape(message)):
        ev(text, a=[1])


# Random well-typed expressions over the whitelist, checked against Python's own eval.
NAMES = {"n": 6, "m": -3, "f": 0.75, "z": 0, "t": True, "s": "relu", "u": "hardswish"}


def _num(depth: int) -> st.SearchStrategy[str]:
    leaf = st.one_of(
        st.integers(-20, 20).map(str),
        st.sampled_from(["0.5", "2.25", "1e3", "n", "m", "f", "z", "t", "True", "False"]),
    )
    if depth == 0:
        return leaf
    sub = _num(depth - 1)
    return st.one_of(
        leaf,
        st.tuples(sub, st.sampled_from(["+", "-", "*", "/", "//", "%", "**"]), sub).map(
            lambda p: f"({p[0]} {p[1]} {p[2]})"
        ),
        st.tuples(st.sampled_from(["-", "+", "not "]), sub).map(lambda p: f"({p[0]}{p[1]})"),
        st.tuples(sub, st.sampled_from(["and", "or"]), sub).map(" ".join).map("({})".format),
        st.tuples(_bool(depth - 1), sub, sub).map(lambda p: f"({p[1]} if {p[0]} else {p[2]})"),
        st.tuples(st.sampled_from(["min", "max"]), st.lists(sub, min_size=1, max_size=3)).map(
            lambda p: f"{p[0]}({', '.join(p[1])})"
        ),
        st.tuples(st.sampled_from(["abs", "int", "round", "floor", "ceil"]), sub).map(
            lambda p: f"{p[0]}({p[1]})"
        ),
        st.tuples(sub, st.sampled_from(["1", "4", "8", "n"])).map(
            lambda p: f"make_divisible({p[0]}, {p[1]})"
        ),
    )


def _bool(depth: int) -> st.SearchStrategy[str]:
    ops = ["==", "!=", "<", "<=", ">", ">="]
    text = st.sampled_from(["s", "u", "'relu'", "'x'"])
    leaf = st.one_of(
        st.sampled_from(["True", "False", "t"]),
        st.tuples(text, st.sampled_from(["==", "!="]), text).map(" ".join),
    )
    if depth == 0:
        return leaf
    num = _num(depth - 1)
    return st.one_of(
        leaf,
        st.tuples(num, st.sampled_from(ops), num, st.sampled_from(ops), num).map(
            lambda p: "(" + " ".join(p) + ")"
        ),
        st.tuples(_bool(depth - 1), st.sampled_from(["and", "or"]), _bool(depth - 1)).map(
            lambda p: f"({p[0]} {p[1]} {p[2]})"
        ),
        _bool(depth - 1).map(lambda b: f"(not {b})"),
    )


def _python(text: str):
    env = {**FUNCTIONS, **NAMES}
    return eval(text, {"__builtins__": {}}, env)  # noqa: S307 - the oracle, on generated text


@settings(max_examples=400, deadline=None)
@given(st.one_of(_num(3), _bool(3)))
def test_the_evaluator_agrees_with_python(text):
    if len(text) > 200:
        return
    try:
        expected = _python(text)
    except (TypeError, ZeroDivisionError, OverflowError, ValueError):
        with pytest.raises(ExprError):
            ev(text, **NAMES)
        return
    try:
        result = ev(text, **NAMES)
    except ExprError as err:
        # only the documented bounds may refuse what Python computes
        big = isinstance(expected, int) and expected.bit_length() > 512
        assert big or isinstance(expected, complex) or "too large" in str(err), (text, err)
        return
    if isinstance(expected, float) and math.isnan(expected):
        assert math.isnan(result)
    else:
        assert result == expected, text
        if isinstance(expected, float) and expected.is_integer():
            assert type(result) is int  # integer-valued floats become ints (channel counts)


@pytest.mark.parametrize("v", [3, 8, 15.9, 16, 17, 31.99, 32 * 0.35, 96 * 1.4, 1280 * 0.75, 4.4])
@pytest.mark.parametrize("divisor", [1, 4, 8])
def test_make_divisible_is_a_multiple_at_least_90_percent(v, divisor):
    got = make_divisible(v, divisor)
    assert got % divisor == 0 and got >= divisor and got >= 0.9 * v
    assert abs(got - v) <= divisor or got == divisor


# -- if: -------------------------------------------------------------------------------------

IFS = """\
input: [3, 8, 8]
model:
  blocks:
    b:
      args: {expand: 1, act: relu, hs: false}
      layers:
        - {conv: {out: 4, k: 1}, if: "${expand != 1}"}
        - {conv: {out: 6, k: 1}, name: dw}
        - "${'hardswish' if hs else act}"
        - {conv: {out: "${12 // (expand - 1)}", k: 1}, if: "${expand > 1}"}
  layers:
    - {b: {expand: 1}, name: one}
    - {b: {expand: 3, hs: true}, name: three}
    - {relu, if: false}
    - {repeat: {times: 2, layers: relu6}, if: false}
    - {residual: {layers: [relu]}, if: false}
    - {sequence: [relu], if: false, name: gone}
    - {b: {expand: 2}, if: false, splice: true}
    - {b: {act: gelu}, splice: true}
    - gap
"""


def test_if_leaves_items_out_and_the_next_takes_their_number():
    graph = load(IFS).graph
    names = [(n.name, n.kind) for n in graph.nodes]
    assert names == [
        ("one.dw", "conv"),
        ("one.1", "relu"),
        ("three.0", "conv"),
        ("three.dw", "conv"),
        ("three.2", "hardswish"),
        ("three.3", "conv"),
        ("dw", "conv"),  # the spliced call's conv is at position 2 of the top level...
        ("3", "gelu"),  # ...numbered on from where the left-out items were not counted
        ("4", "global_avgpool"),
    ]
    # expand 1 never evaluates 12 // (expand - 1): the left-out item's expressions are not filled
    assert graph["three.3"].shape[0] == 6


def test_if_false_body_passes_its_input_through():
    graph = load(
        """\
        input: [3, 8, 8]
        model:
          layers:
            - conv: {out: 4, k: 1}
            - repeat: {times: 2, layers: {relu, if: false}}
            - residual: {layers: [{relu, if: false}], shortcut: identity}
        """
    ).graph
    assert [(n.kind, n.inputs) for n in graph.nodes] == [("conv", ("input",)), ("add", ("0", "0"))]


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("{relu, if: 1}", "x.yaml:4: model.layers[0].if: expected true or false, got 1"),
        ("{relu, if: maybe}", "model.layers[0].if: expected true or false, got 'maybe'"),
        ("{relu, if: '${1}'}", "got '${1}'; ${...} is filled in only inside a block"),
    ],
)
def test_if_must_be_a_boolean(item, expected):
    assert expected in error(f"input: [3, 8, 8]\nmodel:\n  layers:\n    - {item}\n")


def test_if_inside_a_block_must_be_a_boolean_after_substitution():
    message = error(
        "input: [3, 8, 8]\nmodel:\n  blocks:\n    b:\n      args: {e: 2}\n"
        "      layers: [{relu, if: '${e + 1}'}]\n  layers:\n    - b\n"
    )
    assert message.startswith("x.yaml:6: model.blocks.b.layers[0].if: expected true or false")
    assert "in block 'b' used at x.yaml:8" in message


def test_a_dollar_mapping_key_says_to_use_a_text_item():
    message = error(
        "input: [3, 8, 8]\nmodel:\n  blocks:\n    b:\n      args: {act: relu}\n"
        "      layers: [{$act: null}]\n  layers:\n    - b\n"
    )
    assert "x.yaml:6: model.blocks.b.layers[0]: '$act': a mapping key is not substituted" in message
    assert "(- $act)" in message and "if: pair" in message


# -- shortcut: none --------------------------------------------------------------------------

INVERTED = """\
input: [8, 8, 8]
model:
  blocks:
    ir:
      args: {out: ~, stride: 1, expand: 6}
      layers:
        residual:
          layers:
            - sequence:
                - {conv: {out: "${in_channels * expand}", k: 1, bias: false}, if: "${expand != 1}"}
                - conv: {out: "${in_channels * expand}", s: $stride, p: 1, bias: false,
                         groups: "${in_channels * expand}"}
                - {conv: {out: $out, k: 1, bias: false}}
              name: conv
          shortcut: "${'identity' if stride == 1 and in_channels == out else 'none'}"
          after: SHORTCUT_AFTER
  layers:
    - {ir: {out: 8, expand: 1}, name: a}
    - {ir: {out: 8, stride: 2}, name: b}
    - {ir: {out: 16}, name: c}
"""


class _IR(nn.Module):
    """A hand-written inverted residual, torchvision's arrangement."""

    def __init__(self, cin: int, out: int, stride: int, t: int) -> None:
        super().__init__()
        hidden = cin * t
        layers: list[nn.Module] = [] if t == 1 else [nn.Conv2d(cin, hidden, 1, bias=False)]
        layers += [
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.Conv2d(hidden, out, 1, bias=False),
        ]
        self.conv = nn.Sequential(*layers)
        self.res = stride == 1 and cin == out

    def forward(self, x):
        return x + self.conv(x) if self.res else self.conv(x)


def test_shortcut_none_and_the_inverted_residual_pattern_match_torch():
    recipe = load(INVERTED.replace("          after: SHORTCUT_AFTER\n", ""))
    adds = [n.name for n in recipe.graph.nodes if n.kind == "add"]
    assert adds == ["a.add"]  # only the stride-1 block that keeps its channels adds
    ours = built(recipe)
    theirs = nn.Sequential()
    for name, args in {"a": (8, 8, 1, 1), "b": (8, 8, 2, 6), "c": (8, 16, 1, 6)}.items():
        theirs.add_module(name, _IR(*args))
    mine = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    assert mine == {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(2, 8, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x), theirs.eval()(x))


def test_shortcut_none_keeps_after_numbered_on():
    recipe = load(INVERTED.replace("SHORTCUT_AFTER", "relu"))
    kinds = {n.name: (n.kind, n.inputs) for n in recipe.graph.nodes if n.kind == "relu"}
    assert kinds == {
        "a.1": ("relu", ("a.add",)),
        "b.1": ("relu", ("b.conv.2",)),  # no add: after follows the body itself
        "c.1": ("relu", ("c.conv.2",)),
    }


def test_unknown_shortcut_lists_none():
    message = error(
        "input: [3, 8, 8]\nmodel:\n  layers:\n    - residual: {layers: [relu], shortcut: nope}\n"
    )
    assert "expected identity, auto, projection, none or a list of layers, got 'nope'" in message


def test_the_documented_inverted_residual_has_torchvisions_structure():
    from pathlib import Path

    text = Path("docs/recipes.md").read_text(encoding="utf-8")
    (example,) = [
        e for e in re.findall(r"```yaml\n(input:.*?)```", text, re.S) if 'shortcut: "${' in e
    ]
    graph = recipe_from_text(example, "docs/recipes.md").graph
    assert [n.name for n in graph.nodes if n.kind == "add"] == ["0.add", "2.add"]
    depthwise = graph["0.conv.0.0"]
    assert depthwise.args["groups"] == depthwise.args["out"] == 16  # expand 1: no expansion
    assert graph["1.conv.0.0"].args["out"] == 96 and graph["1.conv.1.0"].args["groups"] == 96


def test_under_model_width_a_real_count_is_never_compared_with_a_written_one():
    # in_channels is after model.width, `out: 8` before it: comparing them would silently
    # pick another structure, so it is an error (mobilenet_v2 scales by its width_mult)
    text = INVERTED.replace("          after: SHORTCUT_AFTER\n", "").replace(
        "input: [8, 8, 8]\nmodel:\n", "input: [8, 8, 8]\nmodel:\n  width: 2\n"
    )
    message = error(text.replace("{ir: {out: 8, expand: 1}, name: a}", "{conv: 8, name: a}"))
    assert message.startswith(
        "x.yaml:16: model.blocks.ir.layers.residual.shortcut: "
        "\"'identity' if stride == 1 and in_channels == out else 'none'\" compares the input's "
        "real channel count (after model.width) with a width as written"
    )
    assert "mobilenet_v2" in error_of_builtin_width()
    # counts computed from in_channels on both sides are the same units: allowed
    fine = load(
        "input: [3, 8, 8]\nmodel:\n  width: 2\n  blocks:\n    b:\n"
        "      args: {h: '${in_channels * 2}'}\n"
        "      layers: [{conv: {out: $h, k: 1}, if: '${h == 2 * in_channels}'}]\n"
        "  layers:\n    - conv: {out: 4, k: 1}\n    - b\n"
    )
    assert [n.args["out"] for n in fine.graph.nodes] == [8, 16]


def error_of_builtin_width() -> str:
    from cnnkit.recipe import load_recipe

    with pytest.raises(RecipeError) as info:
        load_recipe("mobilenet_v2", ["model.width=0.5"])
    return str(info.value)


def test_mobilenet_v2_receptive_field_follows_the_papers_table():
    import json

    from tests.clitools import run_cli

    # Independently of the recipe: the stem's 3x3/2 conv, then one 3x3 depthwise conv (padding
    # 1) per block of the paper's table (t, c, n, s); r = 1 + sum (k - 1) x jump, P = sum p x jump.
    table = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1)]
    table += [(6, 160, 3, 2), (6, 320, 1, 1)]
    strides = [2] + [s if i == 0 else 1 for _, _, n, s in table for i in range(n)]
    field, padding, jump = 1, 0, 1
    for stride in strides:
        field, padding, jump = field + 2 * jump, padding + jump, jump * stride
    result = run_cli("rf", "mobilenet_v2", "--json")
    assert result.code == 0, result.err
    doc = json.loads(result.out)
    assert doc["receptive_field"] == [field] * 2 and doc["padding"] == [padding] * 2
    assert doc["stride"] == [jump] * 2 == [32] * 2


def test_an_if_pair_chooses_a_kind_with_its_own_arguments():
    text = (
        "input: [3, 8, 8]\nmodel:\n  blocks:\n    b:\n      args: {hs: ~}\n      layers:\n"
        "        - conv: {out: 4, k: 1}\n"
        "        - {hardswish, name: act, if: '$hs'}\n"
        "        - {leaky_relu: 0.2, name: act, if: '${not hs}'}\n"
        "        - {relu, from: act}\n"
        "  layers:\n    - {b: true, name: x}\n    - {b: false, name: y}\n"
    )
    graph = load(text).graph
    assert [(n.name, n.kind) for n in graph.nodes] == [
        ("x.0", "conv"),
        ("x.act", "hardswish"),
        ("x.2", "relu"),  # the left-out twin took no position
        ("y.0", "conv"),
        ("y.act", "leaky_relu"),
        ("y.2", "relu"),
    ]
    assert graph["y.act"].args["slope"] == 0.2
