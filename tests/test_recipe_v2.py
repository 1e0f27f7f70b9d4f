"""Recipe language features of issue 13 (part 1): trainable, repeat times 0, names, splice.

Oracles are hand-written torch modules (their state_dict keys and shapes) and the built
module's own requires_grad flags."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch import nn

from cnnkit.errors import RecipeError
from cnnkit.recipe import recipe_from_text

HEAD = "input: [3, 16, 16]\nmodel:\n  layers:\n"


def load(layers: str, blocks: str = ""):
    return recipe_from_text(HEAD.replace("  layers:\n", blocks + "  layers:\n") + layers, "x.yaml")


def built(recipe):
    from cnnkit.model.build import build

    return build(recipe)


def keys(module: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def frozen(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if not p.requires_grad)


def rows(recipe):
    from cnnkit.analysis.costs import graph_costs, total

    return total(graph_costs(recipe.graph))


FROZEN = (
    "    - {conv: {out: 8, p: 1}, name: stem, trainable: false}\n"
    "    - bn\n"
    "    - {residual: {layers: [{conv: {out: 16, s: 2, p: 1}}, bn]}, trainable: false}\n"
    "    - {repeat: {times: 2, layers: {conv: {out: 16, p: 1}}}, trainable: false}\n"
    "    - gap\n"
    "    - {linear: 10, name: fc}\n"
)


def test_trainable_false_freezes_exactly_the_counted_parameters():
    r = load(FROZEN)
    m = built(r)
    sums = rows(r)
    assert frozen(m) > 0
    assert sums.params == sum(p.numel() for p in m.parameters())
    assert sums.params - sums.trainable == frozen(m)
    assert sums.trainable == 8 * 2 + 16 * 10 + 10  # the free bn and fc only
    train = [n for n, p in m.named_parameters() if p.requires_grad]
    assert train == ["1.weight", "1.bias", "fc.weight", "fc.bias"]


def test_an_inner_trainable_true_wins_and_the_optimizer_skips_frozen_parameters():
    r = load(
        "    - sequence: [{conv: 4, name: a}, {conv: 4, name: b, trainable: true}]\n"
        "      trainable: false\n"
    )
    m = built(r)
    assert [n for n, p in m.named_parameters() if p.requires_grad] == ["0.b.weight", "0.b.bias"]
    assert rows(r).params - rows(r).trainable == frozen(m) == 3 * 4 * 9 + 4
    from cnnkit.train.config import TrainConfig
    from cnnkit.train.optim import make_optimizer

    optimizer = make_optimizer(m, TrainConfig())
    given = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert given == {id(p) for p in (m.get_submodule("0.b").weight, m.get_submodule("0.b").bias)}


def test_params_json_adds_no_key_and_counts_frozen_as_non_trainable(tmp_path):
    import json

    from tests.clitools import run_cli

    path = tmp_path / "f.yaml"
    path.write_text(HEAD + FROZEN)
    done = run_cli("params", str(path), "--json")
    doc = json.loads(done.out)
    assert list(doc["totals"]) == [
        "params",
        "trainable",
        "buffers",
        "macs",
        "flops",
        "ops",
        "activations",
        "activation_bytes",
    ]
    m = built(load(FROZEN))
    assert doc["totals"]["params"] - doc["totals"]["trainable"] == frozen(m)
    assert doc["memory"]["gradients"] == 4 * doc["totals"]["trainable"]


@pytest.mark.parametrize("bad", ["no", "0", "'false'"])
def test_trainable_must_be_a_boolean(bad):
    with pytest.raises(RecipeError, match=r"x.yaml:4: model.layers\[0\].trainable: expected true"):
        load(
            f"    - {{conv: 4, trainable: {bad}}}\n"
            if bad != "no"
            else "    - {conv: 4, trainable: 3}\n"
        )


def test_repeat_of_zero_passes_its_input_through():
    r = load(
        "    - conv: {out: 4, p: 1}\n"
        "    - repeat: {times: 0, layers: {conv: 99}}\n"
        "    - {repeat: {times: 0, names: 'b{n}', layers: relu}, name: none}\n"
        "    - relu\n"
    )
    # the inline repeat takes no position, the named one keeps its own ('none', position 1)
    assert [n.name for n in r.graph.nodes] == ["0", "2"]
    assert r.graph["2"].inputs == ("0",)
    r = load("    - conv: 4\n    - {repeat: {times: 0, layers: relu}, name: gone}\n")
    assert r.graph.output == "0"


def test_a_model_of_nothing_is_an_error():
    with pytest.raises(RecipeError, match=r"x.yaml:3: model.layers: the model has no layers"):
        load("    - repeat: {times: 0, layers: relu}\n")


def test_repeat_times_below_zero_is_an_error():
    with pytest.raises(RecipeError, match=r"repeat.times: expected a whole number, 0 or more"):
        load("    - repeat: {times: -1, layers: relu}\n")


class RegStage(nn.Module):
    """Hand-written: RegNet-like names with '-' and a 'proj' shortcut."""

    def __init__(self) -> None:
        super().__init__()
        for i in range(2):
            block = nn.Module()
            block.a = nn.Conv2d(3 if i == 0 else 8, 8, 3, 2 if i == 0 else 1, 1, bias=False)
            if i == 0:
                block.proj = nn.Sequential(nn.Conv2d(3, 8, 1, 2, bias=False), nn.BatchNorm2d(8))
            self.add_module(f"block1-{i}", block)


def test_dashes_args_in_names_and_the_shortcut_name_give_torch_keys():
    r = load(
        "    - repeat: {times: 2, names: 'block1-{i}', layers: {unit: {s: 2}}}\n",
        "  blocks:\n"
        "    unit:\n"
        "      args: {s: 1}\n"
        "      layers:\n"
        "        residual:\n"
        "          layers: [{conv: {out: 8, s: $s, p: 1, bias: false}, name: a}]\n"
        "          shortcut_name: proj\n",
    )
    got = keys(built(r))
    want = keys(RegStage())
    # the second copy sees matching shapes only with s: 2 at the first copy, so compare keys
    assert set(want) <= set(got), sorted(set(want) - set(got))


def test_block_arguments_fill_names():
    r = load(
        "    - {stage: {k: 2}}\n    - {stage: {k: 3}}\n",
        "  blocks:\n"
        "    stage:\n"
        "      args: {k: ~}\n"
        "      layers:\n"
        "        - {conv: 4, name: 'c$k-${k * 10}'}\n"
        "        - {repeat: {times: 2, names: 'r${k}_{n}', layers: relu}}\n",
    )
    names = [n.name for n in r.graph.nodes]
    assert names == ["0.c2-20", "0.r2_1", "0.r2_2", "1.c3-30", "1.r3_1", "1.r3_2"]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("'a.b'", r"name: expected a name of letters, digits, _ and -, not starting .*, got 'a.b'"),
        ("'-a'", r"name: expected a name of letters, digits, _ and -, not starting .*, got '-a'"),
    ],
)
def test_names_torch_refuses_are_errors(name, message):
    with pytest.raises(RecipeError, match=r"x.yaml:4: model.layers\[0\]." + message):
        load(f"    - {{conv: 4, name: {name}}}\n")


def test_shortcut_name_is_checked():
    with pytest.raises(RecipeError, match=r"residual.shortcut_name: expected a name"):
        load("    - residual: {layers: [relu], shortcut: projection, shortcut_name: 'a.b'}\n")


def test_an_unknown_argument_in_a_name_is_an_error_with_the_block_path():
    with pytest.raises(RecipeError, match=r"model.blocks.b.layers\[0\].name: unknown block arg"):
        load("    - b\n", "  blocks:\n    b:\n      layers: [{relu: null, name: 'x$nope'}]\n")


class Features(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 16, 1),
        )


def test_splice_writes_flat_torchvision_keys():
    r = load(
        "    - sequence:\n"
        "        - {cbr: 8, splice: true}\n"
        "        - {cbr: 16, splice: true}\n"
        "        - maxpool: 2\n"
        "        - {sequence: [{conv: {out: 16, k: 1}}], splice: true}\n"
        "      name: features\n",
        "  blocks:\n    cbr:\n      args: {out: ~}\n"
        "      layers: [{conv: {out: $out, p: 1}}, bn, relu]\n",
    )
    m = built(r)
    assert keys(m) == keys(Features())
    m.load_state_dict(Features().state_dict(), strict=True)


def test_spliced_names_are_names_of_the_enclosing_sequence_at_any_depth():
    # from: in a nested sequence sees a spliced block's numbered layers (and a splice in a
    # splice), as it sees any other item of that sequence.
    r = load(
        "    - sequence:\n"
        "        - maxpool: 1\n"
        "        - {cb: 4, splice: true}\n"
        "        - {add, from: [1, 2]}\n"
        "        - {sequence: [{cb: 4, splice: true}], splice: true}\n"
        "        - {concat, from: [3, 4, 5]}\n"
        "      name: s\n",
        "  blocks:\n    cb:\n      args: {out: ~}\n"
        "      layers: [{conv: {out: $out, p: 1}}, relu]\n",
    )
    nodes = {n.name: n.inputs for n in r.graph.nodes}
    assert nodes["s.3"] == ("s.1", "s.2")
    assert nodes["s.6"] == ("s.3", "s.4", "s.5")


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("{relu: null, splice: true}", "splice applies to block calls and sequence:"),
        ("{cbr: 8, splice: true, name: a}", "a spliced item has no name of its own"),
        ("{cbr: 8, splice: 1}", "expected true or false, got 1"),
    ],
)
def test_splice_errors(item, message):
    blocks = "  blocks:\n    cbr:\n      args: {out: ~}\n      layers: [{conv: $out}, relu]\n"
    with pytest.raises(RecipeError, match=r"x.yaml:\d+: model.layers\[0\].splice: " + message):
        load(f"    - {item}\n", blocks)


def _doc_examples() -> list[str]:
    text = Path("docs/recipes.md").read_text(encoding="utf-8")
    return re.findall(r"```yaml\n(input:.*?)```", text, re.S)


@pytest.mark.parametrize("example", _doc_examples())
def test_full_recipe_examples_in_the_docs_load_and_build(example):
    r = recipe_from_text(example, "example.yaml")
    m = built(r)
    ids = len(r.input_shape) == 1  # an embedding's input: token ids
    x = torch.randint(0, 10, (1, *r.input_shape)) if ids else torch.randn(1, *r.input_shape)
    assert m(x).shape[1:] == r.graph.output_shape
