"""`cnnkit conv` sizes, explanations, counts and solving, checked against PyTorch and fvcore."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from cnnkit.arith import sizes
from cnnkit.arith.solve import solve
from tests.clitools import run_cli


def conv_json(*args: str) -> dict:
    r = run_cli("conv", *args, "--json")
    assert r.code == 0, r.err
    return json.loads(r.out)


def test_alexnet_224_warns_that_the_last_column_is_unread():
    doc = conv_json("-i", "3x224x224", "-k", "11", "-s", "4", "-o", "96")
    assert doc["output"] == [96, 54, 54]
    assert len(doc["warnings"]) == 1
    assert "H and W" in doc["warnings"][0] and "227" in doc["warnings"][0]
    # 227 (the paper's real input) fits exactly: no warning.
    assert conv_json("-i", "3x227x227", "-k", "11", "-s", "4")["warnings"] == []


def test_formula_has_the_numbers_put_in():
    doc = conv_json("-i", "224", "-k", "11", "-s", "4", "-p", "2")
    assert doc["axes"][0]["formula"] == (
        "floor((224 + 2*2 - 1*(11-1) - 1) / 4) + 1 = floor(217 / 4) + 1 = 55"
    )
    text = run_cli("conv", "-i", "224", "-k", "11", "-s", "4", "-p", "2").out
    assert "floor(217 / 4) + 1 = 55" in text


def test_ceil_mode_formula_mentions_the_dropped_window():
    # PyTorch: the last window would start in the right padding, so it is dropped.
    pool = torch.nn.MaxPool1d(2, 2, padding=1, ceil_mode=True)
    assert pool(torch.zeros(1, 1, 5)).shape[-1] == 3
    doc = conv_json("-i", "5", "-k", "2", "-s", "2", "-p", "1", "-l", "maxpool", "--ceil-mode")
    assert doc["output"] == [3]
    assert "right padding" in doc["axes"][0]["formula"]


def test_same_even_kernel_states_the_asymmetric_split():
    doc = conv_json("-i", "10", "-k", "4", "-p", "same")
    assert doc["output"] == [10]
    assert doc["axes"][0]["padding"] == [1, 2]
    assert any("asymmetric" in n for n in doc["notes"])


def test_same_with_stride_explains_pytorch_refuses_and_gives_tf_same():
    with pytest.raises(ValueError, match="same"):
        torch.nn.Conv2d(1, 1, 3, stride=2, padding="same")
    doc = conv_json("-i", "7x8", "-k", "3", "-s", "2", "-p", "same")
    assert doc["output"] == [4, 4]
    assert any("PyTorch refuses" in n for n in doc["notes"])


def test_full_and_valid_modes():
    assert conv_json("-i", "10", "-k", "3", "-p", "full")["output"] == [12]
    assert conv_json("-i", "10", "-k", "3", "-p", "wide")["output"] == [12]
    assert conv_json("-i", "10", "-k", "3", "-p", "narrow")["output"] == [8]


@pytest.mark.parametrize("transposed", [False, True])
@given(
    cin=st.integers(1, 4),
    cout_per_group=st.integers(1, 3),
    groups=st.integers(1, 3),
    k=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    s=st.integers(1, 3),
    n=st.integers(4, 9),
)
def test_params_and_macs_match_torch_and_fvcore(transposed, cin, cout_per_group, groups, k, s, n):
    from fvcore.nn import FlopCountAnalysis

    cin *= groups
    cout = cout_per_group * groups
    layer = "deconv" if transposed else "conv"
    args = ["-i", f"{cin}x{n}x{n}", "-k", f"{k[0]}x{k[1]}", "-s", str(s), "-o", str(cout)]
    doc = conv_json(*args, "-g", str(groups), "-l", layer)
    cls = torch.nn.ConvTranspose2d if transposed else torch.nn.Conv2d
    module = cls(cin, cout, k, stride=s, groups=groups)
    assert doc["params"]["total_with_bias"] == sum(p.numel() for p in module.parameters())
    assert doc["params"]["total_without_bias"] == module.weight.numel()
    x = torch.randn(1, cin, n, n)
    flops = FlopCountAnalysis(module, x)
    flops.unsupported_ops_warnings(False)
    assert doc["macs"] == flops.total()  # fvcore counts one multiply-add as one "flop"
    assert doc["flops"] == 2 * doc["macs"]
    assert doc["output"] == list(module(x).shape[1:])


@pytest.mark.parametrize("op", ["conv", "maxpool", "avgpool", "convtranspose"])
@given(
    n=st.integers(1, 30),
    k=st.integers(1, 5),
    d=st.integers(1, 2),
    target=st.integers(1, 35),
    stride=st.one_of(st.none(), st.integers(1, 4)),
)
def test_solve_is_sound_and_complete_in_its_range(op, n, k, d, target, stride):
    if op == "avgpool":
        d = 1
    found = solve(op, n, k, target, stride, d)
    got = {(x.stride_min, x.padding, x.output_padding, x.ceil_mode) for x in found}
    # Every listed setting really gives the target (checked with the size rules, which the
    # property tests above tie to PyTorch) ...
    for x in found:
        kw = {"ceil_mode": x.ceil_mode} if op.endswith("pool") else {}
        if op == "convtranspose":
            kw["output_padding"] = x.output_padding
        assert sizes.layer(op, (n,), k, x.stride_min, (x.padding,), d, **kw).output == (target,)
    # ... and a brute force over the same range finds nothing symmetric that is not listed.
    strides = [stride] if stride else range(1, 5)
    limit = k // 2 if op.endswith("pool") else sizes.span(k, d) - 1
    for s in strides:
        for p in range(limit + 1):
            for cm in [False, True] if op.endswith("pool") else [False]:
                for opad in range(max(s, d)) if op == "convtranspose" else [0]:
                    kw = {"ceil_mode": cm} if op.endswith("pool") else {}
                    if op == "convtranspose":
                        kw["output_padding"] = opad
                    try:
                        out = sizes.layer(op, (n,), k, s, p, d, **kw).output
                    except Exception:
                        continue
                    if out == (target,):
                        assert any(
                            x.padding == (p, p)
                            and x.ceil_mode == cm
                            and x.output_padding == opad
                            and x.stride_min <= s <= (x.stride_max or 10**9)
                            for x in found
                        ), (s, p, cm, opad)
    del got


def test_solve_cli_lists_alexnet_paddings_and_says_when_none():
    doc = conv_json("-i", "224", "-k", "11", "-s", "4", "--target", "55")
    pads = [tuple(s["padding"]) for s in doc["axes"][0]["solutions"]]
    assert (2, 2) in pads
    r = run_cli("conv", "-i", "10", "-k", "3", "-s", "1", "--target", "20")
    assert r.code == 0 and "no padding gives it" in r.out


def test_dilation_gaps_are_not_called_a_floor_division_remainder():
    """Issue example: positions 0, 2, 4, 6 sit between dilated taps (torch: zero gradient)."""
    x = torch.ones(1, 1, 7, requires_grad=True)
    torch.nn.functional.conv1d(
        x, torch.ones(1, 1, 3), stride=2, padding=1, dilation=2
    ).sum().backward()
    unread = int((x.grad == 0).sum())
    doc = conv_json("--input", "7", "-k", "3", "-d", "2", "-s", "2", "-p", "1")
    axis = doc["axes"][0]
    assert (axis["unread"], axis["dropped"]) == (unread, 0)
    (warning,) = doc["warnings"]
    assert "floor division" not in warning and "would fit exactly" not in warning
    assert f"{unread} input position(s)" in warning and "dilat" in warning


def test_target_finds_transposed_paddings_past_the_kernel_span():
    doc = conv_json("--input", "7", "--layer", "deconv", "-k", "4", "-s", "3", "--target", "14")
    pads = [tuple(s["padding"]) for s in doc["axes"][0]["solutions"]]
    assert (4, 4) in pads
    module = torch.nn.ConvTranspose1d(1, 1, 4, stride=3, padding=4)
    assert module(torch.zeros(1, 1, 7)).shape[-1] == 14


def test_target_keeps_a_given_padding_and_lists_asymmetric_ones():
    free = conv_json("-i", "224", "-k", "11", "-s", "4", "--target", "55")["axes"][0]
    pads = {tuple(s["padding"]) for s in free["solutions"]}
    assert {(2, 2), (3, 3), (1, 2), (2, 3)} <= pads  # TF-style splits, shown beside symmetric ones
    x, w = torch.zeros(1, 1, 224), torch.zeros(1, 1, 11)
    for lo, hi in pads:
        y = torch.nn.functional.conv1d(torch.nn.functional.pad(x, (lo, hi)), w, stride=4)
        assert y.shape[-1] == 55
    fixed = conv_json("-i", "224", "-k", "11", "--target", "55", "-p", "3")["axes"][0]
    assert {tuple(s["padding"]) for s in fixed["solutions"]} == {(3, 3)}
    assert fixed["padding"] == 3
    r = run_cli("conv", "-i", "224", "-k", "11", "-s", "4", "--target", "55", "-p", "1")
    assert r.code == 0 and "do not give it" in r.out
    r = run_cli("conv", "-i", "9", "-k", "3", "-l", "maxpool", "--target", "3", "-p", "same")
    assert r.code == 2 and "--padding same" in r.err
