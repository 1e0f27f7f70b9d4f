"""Receptive fields of random chains and random multi-path recipes against a brute-force
gradient measured in PyTorch (the test's own probe, not cnnkit's)."""

from __future__ import annotations

import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import cnnkit
from cnnkit.analysis.receptive import receptive_fields
from cnnkit.errors import CnnkitError
from cnnkit.recipe.model import validate
from cnnkit.recipe.source import Source

ints = st.integers


def window():
    """A sliding window with real (non-max) arithmetic, so gradients reach every tap."""
    conv = st.fixed_dictionaries(
        {"out": ints(1, 3), "k": ints(1, 4)},
        optional={"s": ints(1, 2), "p": ints(0, 2), "d": ints(1, 2)},
    ).map(lambda a: {"conv": a})
    avg = st.fixed_dictionaries({"k": ints(1, 3)}, optional={"s": ints(1, 2), "p": ints(0, 1)})
    return st.one_of(conv, conv, avg.map(lambda a: {"avgpool": a}))


def same_size():
    """Stride-1 layers that keep the spatial size, so branches can be merged."""
    return st.one_of(
        st.tuples(ints(1, 4), ints(1, 2)).map(
            lambda t: {"conv": {"out": 2, "k": t[0], "d": t[1], "p": "same"}}
        ),
        st.just({"avgpool": {"k": 3, "s": 1, "p": 1}}),
        st.just("relu"),
    )


def items():
    branch = st.lists(same_size(), min_size=1, max_size=3)
    return st.one_of(
        window(),
        window(),
        st.tuples(branch, branch, st.sampled_from(["concat", "add"])).map(
            lambda t: {"parallel": {"branches": [t[0], t[1]], "merge": t[2]}}
        ),
        branch.map(lambda layers: {"residual": {"layers": layers, "shortcut": "projection"}}),
    )


def _positive(model: torch.nn.Module) -> None:
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("weight") and p.dim() > 1:
                p.uniform_(0.5, 1.5).div_(p[0].numel())
            else:
                p.fill_(0.05 if not name.endswith("weight") else 1.0)


@settings(max_examples=120, deadline=None)
@given(n=st.tuples(ints(12, 40), ints(12, 40)), layers=st.lists(items(), min_size=1, max_size=5))
def test_random_graph_fields_equal_gradient_extent(n, layers):
    data = {"input": [2, *n], "model": {"layers": layers}}
    try:
        recipe = validate(data, Source("<random>"))
    except CnnkitError:
        assume(False)
    graph = recipe.graph
    last = graph.nodes[-1]
    fields = {f.name: f for f in receptive_fields(graph)}[last.name].fields
    model = cnnkit.build(recipe).double().eval()
    _positive(model)
    x = (torch.rand(1, *recipe.input_shape, dtype=torch.float64) + 0.5).requires_grad_(True)
    y = model(x)
    unit = tuple(s // 2 for s in y.shape[2:])
    y[(0, slice(None), *unit)].sum().backward()
    grad = x.grad[0].abs().sum(0)
    assume(bool(grad.sum() > 0))
    for axis in range(2):
        other = 1 - axis
        hit = (grad.sum(other) > 0).nonzero().flatten()
        measured = (int(hit.min()), int(hit.max()))
        # Every path's field of this unit; the union is what the unit can see.
        starts = [unit[axis] * f.stride[axis] - f.padding[axis] for f in fields.paths]
        ends = [s + f.size[axis] - 1 for s, f in zip(starts, fields.paths)]
        lo, hi = min(starts), max(ends)
        if lo >= 0 and hi < n[axis]:
            assert measured == (lo, hi), (layers, axis)
            if fields.aligned:
                # Aligned paths share a centre: the widest path spans the union.
                assert hi - lo + 1 == fields.largest[axis]
        else:
            assert max(lo, 0) <= measured[0] <= measured[1] <= min(hi, n[axis] - 1)


def test_unaligned_paths_are_reported():
    # Branch a: 3x3 same (centred); branch b: 2x2 same pads the extra pixel after: the centre
    # moves by half a pixel, so the two paths are not aligned.
    data = {
        "input": [1, 16, 16],
        "model": {
            "layers": [
                {
                    "parallel": {
                        "branches": [
                            [{"conv": {"out": 1, "k": 3, "p": "same"}}],
                            [{"conv": {"out": 1, "k": 2, "p": "same"}}],
                        ],
                        "merge": "add",
                    }
                }
            ]
        },
    }
    fields = receptive_fields(validate(data, Source("<t>")).graph)[-1].fields
    assert not fields.aligned
    assert fields.largest == (3, 3) and fields.smallest == (2, 2)
