"""The pure count rules against PyTorch and fvcore: parameters and buffers against the built
module, conv/linear MACs against fvcore's FlopCountAnalysis of the same module and input.

fvcore counts one multiply-add as one "flop"; its conv handle is batch * prod(weight shape) *
prod(output spatial) with weight (out, in/groups, *k), so grouped and depthwise convolutions
agree with cnnkit; for a transposed conv it uses the input spatial size, which is cnnkit's
per-input-pixel rule; linear/addmm count in * out, bias ignored. So conv + linear counts
compare like with like. The three LeNet-1998 kinds count differently on purpose; their
fvcore value is computed independently below instead of being skipped.
"""

from __future__ import annotations

from collections import Counter
from math import prod

import pytest
import torch
import yaml
from hypothesis import event, given, settings
from hypothesis import strategies as st

from cnnkit.analysis.costs import graph_costs
from cnnkit.errors import CnnkitError
from cnnkit.measure.verify import EXPLAINED, counting_module, flop_analysis, mac_count, verify
from cnnkit.model.build import example_input
from cnnkit.recipe import builtin_recipes, load_recipe, recipe_from_text
from tests.test_recipe_fuzz import items, tails

torch.set_num_threads(2)


def _fvcore_dense_partial_conv(recipe, node) -> int:
    """What fvcore sees for partial_conv: the full (out, in, *k) convolution."""
    cin = recipe.graph.input_shapes(node)[0][0]
    k = node.args["kernel"]
    k = (k,) * (len(node.shape) - 1) if isinstance(k, int) else tuple(k)
    return node.shape[0] * cin * prod(k) * prod(node.shape[1:])


FVCORE_SEES = {  # kinds whose MACs fvcore counts differently (see EXPLAINED for why)
    "partial_conv": _fvcore_dense_partial_conv,
    "subsample": lambda recipe, node: 0,  # avg_pool + mul + add: no handle
    "rbf": lambda recipe, node: 0,  # sub, pow, sum: no handle
}


def check_against_torch(recipe) -> None:
    model = counting_module(recipe)
    rows = graph_costs(recipe.graph)
    assert sum(r.params for r in rows) == sum(p.numel() for p in model.parameters())
    assert sum(r.buffers for r in rows) == sum(b.numel() for b in model.buffers())
    per_module = flop_analysis(model, example_input(recipe)).by_module_and_operator()
    for row in rows:
        node = recipe.graph[row.name]
        module = model.get_submodule(row.name)
        assert row.params == sum(p.numel() for p in module.parameters()), row.name
        assert row.buffers == sum(b.numel() for b in module.buffers()), row.name
        theirs = mac_count(per_module.get(row.name, Counter()))
        expected = FVCORE_SEES[row.kind](recipe, node) if row.kind in FVCORE_SEES else row.macs
        assert theirs == expected, (row.name, row.kind, row.macs, theirs)


@pytest.mark.parametrize("name", list(builtin_recipes()))
def test_builtin_recipe_counts_match_module_and_fvcore(name):
    check_against_torch(load_recipe(name))


def test_explained_kinds_are_exactly_the_ones_counted_differently():
    assert set(EXPLAINED) == set(FVCORE_SEES)


def test_verify_passes_with_only_explained_differences_on_lenet1998():
    recipe = load_recipe("lenet1998")
    checked = verify(recipe, graph_costs(recipe.graph))
    assert checked.ok
    assert checked.params == (60_000, 60_000) and checked.buffers == (840, 840)
    assert {d.kind for d in checked.differences} == {"partial_conv", "subsample", "rbf"}
    assert "aten::sub" in checked.unsupported  # fvcore's zero is shown, not hidden


ints = st.integers


def grouped_conv():
    """Convolutions fvcore may get wrong if handled carelessly: grouped, depthwise, no bias."""
    return st.fixed_dictionaries(
        {"out": st.sampled_from([2, 4, 8]), "k": ints(1, 3), "groups": st.sampled_from([1, 2])},
        optional={"s": ints(1, 2), "p": ints(0, 1), "d": ints(1, 2), "bias": st.booleans()},
    ).map(lambda a: {"conv": a})


def transposed_conv():
    return st.fixed_dictionaries(
        {"out": st.sampled_from([2, 4]), "k": ints(1, 4), "s": ints(1, 3)},
        optional={"p": ints(0, 1), "groups": st.sampled_from([1, 2]), "bias": st.booleans()},
    ).map(lambda a: {"convtranspose": a})


layer = st.one_of(items(1), grouped_conv(), transposed_conv())


@settings(max_examples=100, deadline=None)
@given(
    shape=st.tuples(st.sampled_from([2, 4]), ints(3, 10), ints(3, 10))
    | st.tuples(st.sampled_from([2, 4]), ints(3, 16)),
    layers=st.lists(layer, min_size=1, max_size=4),
    tail=tails,
    bias=st.booleans(),
)
def test_random_recipe_counts_match_module_and_fvcore(shape, layers, tail, bias):
    tail = [({"linear": {"out": 3, "bias": bias}} if t == {"linear": 3} else t) for t in tail]
    text = yaml.safe_dump({"input": list(shape), "model": {"layers": layers + tail}})
    try:
        recipe = recipe_from_text(text, "random.yaml")
    except CnnkitError:
        event("refused by the recipe checks")
        return
    event("counted")
    check_against_torch(recipe)
