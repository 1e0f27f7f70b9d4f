"""Random well-formed recipes either build and run, or are refused with a CnnkitError."""

from __future__ import annotations

import pytest
import torch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import cnnkit
from cnnkit.errors import CnnkitError
from cnnkit.recipe import recipe_from_text

ints = st.integers


def conv():
    return st.fixed_dictionaries(
        {"out": ints(1, 6), "k": ints(1, 5)},
        optional={
            "s": ints(1, 3),
            "p": st.one_of(ints(0, 3), st.sampled_from(["same", "valid", "full"])),
            "d": ints(1, 2),
            "bias": st.booleans(),
        },
    ).map(lambda a: {"conv": a})


def pool():
    kind = st.sampled_from(["maxpool", "avgpool"])
    args = st.fixed_dictionaries(
        {"k": ints(1, 4)}, optional={"s": ints(1, 3), "p": ints(0, 2), "ceil_mode": st.booleans()}
    )
    return st.tuples(kind, args).map(lambda t: {t[0]: t[1]})


SIMPLE = st.sampled_from(
    [
        "relu",
        "tanh",
        "sigmoid",
        "bn",
        "dropout",
        "elu",
        "leaky_relu",
        "identity",
        "prelu",
        {"maxout": 2},
        {"lrn": 3},
        "softmax",
        {"adaptive_avgpool": 2},
    ]
)


def items(depth: int):
    base = st.one_of(conv(), pool(), SIMPLE)
    if depth == 0:
        return base
    inner = st.lists(items(depth - 1), min_size=1, max_size=3)
    return st.one_of(
        base,
        base,
        inner.map(lambda layers: {"residual": {"layers": layers}}),
        st.tuples(inner, inner, st.sampled_from(["concat", "add"])).map(
            lambda t: {"parallel": {"branches": [t[0], t[1]], "merge": t[2]}}
        ),
        inner.map(lambda layers: {"repeat": {"times": 2, "layers": layers}}),
        inner.map(lambda layers: {"dense": {"times": 2, "layers": layers}}),
    )


tails = st.sampled_from([[], ["flatten", {"linear": 3}], ["global_avgpool", {"linear": 2}]])


@settings(max_examples=200, deadline=None)
@given(
    shape=st.tuples(ints(1, 4), ints(1, 12), ints(1, 12)) | st.tuples(ints(1, 4), ints(1, 20)),
    layers=st.lists(items(2), min_size=1, max_size=5),
    tail=tails,
)
def test_random_recipes_build_and_run_or_raise_a_cnnkit_error(shape, layers, tail):
    text = yaml.safe_dump({"input": list(shape), "model": {"layers": layers + tail}})
    try:
        recipe = recipe_from_text(text, "random.yaml")
    except CnnkitError:
        return
    model = cnnkit.build(recipe).eval()
    with torch.no_grad():
        out = model(torch.randn(2, *shape))
    assert tuple(out.shape[1:]) == recipe.graph.output_shape


@pytest.mark.parametrize(
    "bad",
    [
        "input: [1, 8, 8]\nmodel:\n  layers: 3\n",
        "input: [1, 8, 8]\nmodel:\n  layers: [[relu]]\n",
        "input: [1, 8, 8]\nmodel:\n  layers: [{conv: 3, relu: null}]\n",
        "input: [1, 8, 8]\nmodel:\n  layers: [{conv: {out: true}}]\n",
        "input: [1, 8, 8]\nmodel:\n  layers: [{residual: [relu]}]\n",
        "input: [1, 8, 8]\nmodel:\n  layers: [{repeat: {times: -1, layers: relu}}]\n",
        "- a\n- b\n",
        "",
        "input: &a [*a]\nmodel: {layers: [relu]}\n",
    ],
)
def test_malformed_recipes_raise_cnnkit_errors(bad):
    with pytest.raises(CnnkitError):
        recipe_from_text(bad, "bad.yaml")
