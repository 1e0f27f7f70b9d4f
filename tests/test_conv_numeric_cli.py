"""``cnnkit conv --x ... --w ...`` end to end: worked examples, --json, --explain, bad input.

Expected numbers come from the textbook definitions written out below, not from cnnkit:
true convolution z[p,q] = sum_{a,b} x[a,b] w[p-a, q-b] (its valid part), cross-correlation
c[i,j] = sum_{m,n} x[i+m, j+n] w[m,n].
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cnnkit.cli.app import main

X = "1 2 3; 4 5 6; 7 8 9"
W = "1 0; 0 -1"
XS = [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
WS = [[1, 0], [0, -1]]
KEYS = {
    "operation",
    "input_shape",
    "kernel_shape",
    "bias",
    "padding",
    "stride",
    "dilation",
    "output_shape",
    "output",
    "explain",
}


def convolution_valid(x, w):
    """Valid part of the full convolution z[p,q] = sum_{a,b} x[a,b] w[p-a, q-b]."""
    kh, kw = len(w), len(w[0])
    full = [
        [
            sum(
                x[a][b] * w[p - a][q - b]
                for a in range(len(x))
                for b in range(len(x[0]))
                if 0 <= p - a < kh and 0 <= q - b < kw
            )
            for q in range(len(x[0]) + kw - 1)
        ]
        for p in range(len(x) + kh - 1)
    ]
    return [row[kw - 1 : len(x[0])] for row in full[kh - 1 : len(x)]]


def cross_correlation_valid(x, w):
    kh, kw = len(w), len(w[0])
    return [
        [
            sum(x[i + m][j + n] * w[m][n] for m in range(kh) for n in range(kw))
            for j in range(len(x[0]) - kw + 1)
        ]
        for i in range(len(x) - kh + 1)
    ]


def run(capsys, *args: str) -> tuple[int, str, str]:
    try:
        main(["conv", *args])
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *args: str) -> dict:
    code, out, err = run(capsys, *args, "--json")
    assert code == 0 and err == ""
    return json.loads(out)  # the whole of stdout is one JSON document


def test_worked_example_convolution_vs_cross_correlation(capsys):
    conv = run_json(capsys, "--x", X, "--w", W)
    xcorr = run_json(capsys, "--x", X, "--w", W, "--xcorr")
    # By hand: the flipped kernel is [[-1, 0], [0, 1]], so every valid output is
    # x[i+1][j+1] - x[i][j] = 4; unflipped it is x[i][j] - x[i+1][j+1] = -4.
    assert conv["output"] == convolution_valid(XS, WS) == [[4, 4], [4, 4]]
    assert xcorr["output"] == cross_correlation_valid(XS, WS) == [[-4, -4], [-4, -4]]
    assert conv["operation"] == "convolution"
    assert xcorr["operation"] == "cross-correlation"


def test_json_document_has_the_documented_keys(capsys):
    doc = run_json(capsys, "--x", X, "--w", W, "--mode", "full", "--explain", "0,0")
    assert set(doc) >= KEYS
    assert doc["input_shape"] == [3, 3] and doc["kernel_shape"] == [2, 2]
    assert doc["padding"] == [[1, 1], [1, 1]]
    assert doc["stride"] == [1, 1] and doc["dilation"] == [1, 1]
    assert doc["output_shape"] == [4, 4] and doc["bias"] is None
    explain = doc["explain"]
    assert set(explain) >= {"index", "terms", "bias", "value"}
    assert explain["index"] == [0, 0]
    assert explain["terms"] == [
        {"input_index": [0, 0], "input": 1, "weight_index": [0, 0], "weight": 1, "product": 1}
    ]
    assert explain["value"] == doc["output"][0][0] == 1


def test_text_output_shows_operation_grid_and_padding(capsys):
    code, out, err = run(capsys, "--x", X, "--w", W)
    assert code == 0 and err == ""
    assert "true convolution (kernel flipped" in out
    assert "padding H 0+0, W 0+0" in out
    assert "output 2x2" in out
    assert out.count(" 4 ") >= 4 and "4.0" not in out
    code, out, _ = run(capsys, "--x", X, "--w", W, "--xcorr", "--mode", "same")
    assert "cross-correlation" in out and "-4" in out
    assert "extra zero goes after" in out  # the even-kernel split is stated
    code, out, _ = run(capsys, "--x", X, "--w", W, "--mode", "same")
    assert "extra zero goes before" in out and "scipy.signal.convolve" in out


def test_explain_prints_the_products(capsys):
    code, out, _ = run(capsys, "--x", X, "--w", W, "--explain", "1,1", "--bias", "0.5")
    assert code == 0
    # y[1,1] = x[1,1]*w[1,1] + x[1,2]*w[1,0] + x[2,1]*w[0,1] + x[2,2]*w[0,0] + b
    assert "y[1,1] = x[1,1]*w[1,1] + x[1,2]*w[1,0] + x[2,1]*w[0,1] + x[2,2]*w[0,0] + b[0]" in out
    assert "= 5*(-1) + 6*0 + 8*0 + 9*1 + 0.5" in out
    assert out.rstrip().endswith(f"= {5 * -1 + 9 * 1 + 0.5}")


def test_1d_full_with_stride(capsys):
    doc = run_json(capsys, "--x", "1 2 3 4", "--w", "1,2,3", "--mode", "full", "--stride", "2")
    x, w = [1, 2, 3, 4], [1, 2, 3]
    full = [
        sum(x[a] * w[n - a] for a in range(len(x)) if 0 <= n - a < len(w))
        for n in range(len(x) + len(w) - 1)
    ]
    assert doc["output"] == full[::2]
    assert doc["padding"] == [[2, 2]] and doc["output_shape"] == [3]


def test_filters_channels_and_bias(capsys):
    x = "1 2; 3 4 | 5 6; 7 8"
    w = "1 0; 0 1 | 1 1; 1 1 || 0 1; 1 0 | 2 0; 0 2"
    doc = run_json(capsys, "--x", x, "--w", w, "--bias", "1 -1", "--explain", "1,0,0")
    xs = [[[1, 2], [3, 4]], [[5, 6], [7, 8]]]
    ws = [[[[1, 0], [0, 1]], [[1, 1], [1, 1]]], [[[0, 1], [1, 0]], [[2, 0], [0, 2]]]]
    # Z^p = sum_d W^{p,d} (*) X^d + b^p, one valid position per filter
    z0 = sum(convolution_valid(xs[d], ws[0][d])[0][0] for d in range(2)) + 1
    z1 = sum(convolution_valid(xs[d], ws[1][d])[0][0] for d in range(2)) - 1
    assert (z0, z1) == (5 + 26 + 1, 5 + 26 - 1)
    assert doc["output_shape"] == [2, 1, 1]
    assert doc["output"] == [[[z0]], [[z1]]]
    assert doc["bias"] == [1, -1]
    assert doc["explain"]["value"] == z1
    assert sum(t["product"] for t in doc["explain"]["terms"]) + doc["explain"]["bias"] == z1


def test_csv_input(tmp_path, capsys):
    path = tmp_path / "x.csv"
    path.write_text("1,2,3\n4,5,6\n7,8,9\n")
    assert run_json(capsys, "--x", str(path), "--w", W)["output"] == [[4, 4], [4, 4]]


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--x", "1 2 a", "--w", W], "--x"),
        (["--x", "1 2 3; 4 5", "--w", W], "--x"),
        (["--x", X, "--w", "1 2; 3"], "--w"),
        (["--x", "1 2; 3 4", "--w", "1 2 3; 4 5 6; 7 8 9"], "--w"),
        (["--x", "1 2", "--w", "1 2 3", "--mode", "valid"], "--w"),
        (["--x", X, "--w", W, "--stride", "0"], "--stride"),
        (["--x", X, "--w", W, "--stride", "-1"], "--stride"),
        (["--x", X, "--w", W, "--dilation", "0"], "--dilation"),
        (["--x", X, "--w", W, "--padding", "-1"], "--padding"),
        (["--x", "", "--w", W], "--x"),
        (["--x", "1 2; 3 4 | 5 6; 7 8", "--w", W], "--w/--x"),
        (["--x", X, "--w", W, "--bias", "1 2"], "--bias"),
        (["--x", X, "--w", W, "--explain", "2,0"], "--explain"),
        (["--x", X, "--w", W, "--explain", "1"], "--explain"),
        (["--x", "missing.npy", "--w", W], "--x"),
        (["--x", X], "--w"),
    ],
)
def test_bad_input_is_one_line_exit_2(capsys, args, option):
    code, out, err = run(capsys, *args)
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert option in lines[0]
    assert "Traceback" not in err


def test_literal_inputs_do_not_import_torch_or_numpy():
    code = (
        "import sys; from cnnkit.cli.app import main; "
        f"main(['conv', '--x', {X!r}, '--w', {W!r}, '--explain', '0,0']); "
        "print(sorted(m for m in ('torch', 'numpy', 'pandas', 'fvcore') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"
