"""Every recipe error names the file, the line and the key path, in the library and the CLI."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cnnkit.cli.app import main
from cnnkit.errors import RecipeError, ShapeError
from cnnkit.recipe import apply_overrides, recipe_from_text

HEAD = "input: [1, 8, 8]\nmodel:\n  layers:\n"

# name: (recipe text, error type, expected message prefix "file:line: key.path", then a part)
CASES = {
    "bad type": (
        HEAD + "    - relu\n    - conv: {out: 4, kernel: a}\n",
        RecipeError,
        "recipes/x.yaml:5: model.layers[1].conv.kernel: expected a positive integer",
        "got 'a'",
    ),
    "unknown argument": (
        HEAD + "    - conv: {out: 4, kernal: 3}\n",
        RecipeError,
        "recipes/x.yaml:4: model.layers[0].conv.kernal: unknown argument",
        "did you mean 'kernel'?",
    ),
    "unknown kind": (
        HEAD + "    - conv: 4\n    - rellu\n",
        RecipeError,
        "recipes/x.yaml:5: model.layers[1]: unknown layer kind 'rellu'",
        "did you mean 'relu'?",
    ),
    "bad reference": (
        HEAD + "    - {conv: 4, id: stem}\n    - {conv: 4, from: stme}\n",
        RecipeError,
        "recipes/x.yaml:5: model.layers[1].from: no layer named 'stme'",
        "did you mean 'stem'?",
    ),
    "cycle": (
        HEAD
        + "    - {conv: {out: 1, p: 1}, id: a, from: b}\n    - {conv: {out: 1, p: 1}, id: b}\n",
        RecipeError,
        "recipes/x.yaml:4: model.layers[0].from: cycle: b -> a -> b",
        "cycle",
    ),
    "shape mismatch": (
        HEAD + "    - conv: 4\n    - flatten\n    - {linear: {out: 10, in: 100}}\n",
        ShapeError,
        "recipes/x.yaml:6: model.layers[2]: layer 2 (linear): input has 144 features",
        "in_features is 100",
    ),
    "missing flatten": (
        HEAD + "    - conv: 4\n    - linear: 10\n",
        ShapeError,
        "recipes/x.yaml:5: model.layers[1]: layer 1 (linear): input has shape 4x6x6",
        "add a flatten",
    ),
    "add of different shapes": (
        HEAD + "    - {conv: 4, id: a}\n    - {conv: 3, id: b, from: input}\n"
        "    - {add, from: [a, b]}\n",
        ShapeError,
        "recipes/x.yaml:6: model.layers[2]: layer 2 (add): cannot add inputs",
        "4x6x6, 3x6x6",
    ),
    "yaml syntax": (
        HEAD + "    - conv: {out: 4\n    - relu\n",
        RecipeError,
        "recipes/x.yaml:6: YAML error:",
        "flow mapping at line 4",
    ),
    "unknown section": (
        HEAD + "    - relu\ntrian: {}\n",
        RecipeError,
        "recipes/x.yaml:5: trian: unknown section 'trian'",
        "did you mean 'train'?",
    ),
    "unknown model key": (
        "input: [1, 8, 8]\nmodel:\n  layer: [relu]\n",
        RecipeError,
        "recipes/x.yaml:3: model.layer: unknown key 'layer'",
        "did you mean 'layers'?",
    ),
    "duplicate key": (
        HEAD + "    - relu\n  layers: [relu]\n",
        RecipeError,
        "recipes/x.yaml:5: model.layers: duplicate key 'layers'",
        "first at line 3",
    ),
    "unsafe tag": (
        "input: !!python/object/apply:os.system ['echo pwned']\nmodel:\n  layers: [relu]\n",
        RecipeError,
        "recipes/x.yaml:1: YAML error: unsafe or unknown YAML tag refused",
        "python/object",
    ),
    "block argument": (
        "input: [1, 8, 8]\nmodel:\n  blocks:\n    cb:\n      args: {out: ~}\n      layers:\n"
        "        - conv: {out: $out}\n  layers:\n    - relu\n    - cb: {out: a}\n",
        RecipeError,
        "recipes/x.yaml:7: model.blocks.cb.layers[0].conv.out: expected a positive integer",
        "in block 'cb' used at recipes/x.yaml:10",
    ),
    "unknown block argument": (
        "input: [1, 8, 8]\nmodel:\n  blocks:\n    cb:\n      args: {out: ~}\n      layers:\n"
        "        - conv: {out: $out}\n  layers:\n    - cb: {outt: 3}\n",
        RecipeError,
        "recipes/x.yaml:9: model.layers[0].cb.outt: unknown block argument 'outt'",
        "did you mean 'out'?",
    ),
    "structure key": (
        HEAD + "    - residual: {layers: [relu], shortcutt: identity}\n",
        RecipeError,
        "recipes/x.yaml:4: model.layers[0].residual.shortcutt: unknown key",
        "did you mean 'shortcut'?",
    ),
    "merge arity": (
        HEAD + "    - relu\n    - add\n",
        RecipeError,
        "recipes/x.yaml:5: model.layers[1]: layer 1 (add) takes at least 2 input(s)",
        "from: [a, b]",
    ),
    "bad input": (
        "input: [1, 0]\nmodel:\n  layers: [relu]\n",
        RecipeError,
        "recipes/x.yaml:1: input: expected a shape like [1, 32, 32]",
        "got [1, 0]",
    ),
    "missing section": (
        "input: [1, 8, 8]\n",
        RecipeError,
        "recipes/x.yaml:1: missing section 'model'",
        "model",
    ),
    # Messages that lead to the fix (what a user writing from docs/recipes.md alone hit):
    "model key at the top level": (
        "input: [1, 8, 8]\nmodel:\n  layers: [relu]\nblocks:\n  b: {layers: [relu]}\n",
        RecipeError,
        "recipes/x.yaml:4: blocks: unknown section 'blocks': it goes under model: (model.blocks)",
        "the sections are input, model, data, train",
    ),
    "short form of a block with two required arguments": (
        "input: [1, 8, 8]\nmodel:\n  blocks:\n    b:\n      args: {out: ~, k: ~}\n"
        "      layers:\n        - conv: {out: $out, k: $k}\n  layers:\n    - b: 8\n",
        RecipeError,
        "recipes/x.yaml:9: model.layers[0].b: block 'b' needs out and k; the short form fills "
        "one argument: write {b: {out: 8, k: ...}}",
        "{b: {out: 8, k: ...}}",
    ),
    "identity shortcut on a shape change": (
        HEAD + "    - residual:\n        layers: [{conv: {out: 16, k: 3, p: 1}}]\n"
        "        shortcut: identity\n",
        ShapeError,
        "recipes/x.yaml:4: model.layers[0].residual: residual 0 (shortcut: identity): the "
        "residual body gives 16x8x8 but its input is 1x8x8; use shortcut: auto or projection",
        "use shortcut: auto or projection",
    ),
    "kind argument beside the kind": (
        HEAD + "    - {conv: 8, stride: 2}\n",
        RecipeError,
        "recipes/x.yaml:4: model.layers[0].stride: stride is an argument of conv, not a meta "
        "key: write {conv: {out: 8, stride: 2}}",
        "{conv: {out: 8, stride: 2}}",
    ),
    "block argument outside a block": (
        HEAD + "    - conv: $out\n",
        RecipeError,
        "recipes/x.yaml:4: model.layers[0].conv: $out is a block argument: usable only inside "
        "a block's layers (model.blocks)",
        "(model.blocks)",
    ),
    "dotted name": (
        HEAD + "    - {conv: 4, id: a.b}\n",
        RecipeError,
        "recipes/x.yaml:4: model.layers[0].id: expected a name of letters, digits, _ and -, "
        "not starting with _ or -, got 'a.b'",
        "'.' separates levels (cnnkit adds it: layer3.1.conv2)",
    ),
    "nested list": (
        HEAD + "    - [relu, relu]\n",
        RecipeError,
        "recipes/x.yaml:4: model.layers[0]: expected a layer (a kind name or a mapping), got "
        "['relu', 'relu']",
        "(a list of items goes in sequence: [...])",
    ),
    "repeat names without a counter": (
        HEAD + "    - repeat: {times: 2, names: x, layers: [relu]}\n",
        RecipeError,
        "recipes/x.yaml:4: model.layers[0].repeat.names: 'x' names every copy alike",
        "a names: template needs {i} or {n} to tell the copies apart",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_error_names_file_line_and_path(case):
    text, kind, prefix, part = CASES[case]
    with pytest.raises(kind) as info:
        recipe_from_text(text, "recipes/x.yaml")
    message = str(info.value)
    assert message.startswith(prefix), message
    assert part in message


@pytest.mark.parametrize("case", sorted(CASES))
def test_cli_reports_one_line_and_exit_code_2(case, tmp_path, capsys, monkeypatch):
    text, _, prefix, part = CASES[case]
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "x.yaml").write_text(text)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(["recipes", "recipes/x.yaml"])
    assert info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"error: {captured.err[7:]}"
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert captured.err.startswith(f"error: {prefix}") and part in captured.err


@pytest.mark.parametrize("key", ["layers", "init", "seed", "depth", "width"])
def test_a_model_key_at_the_top_level_says_it_goes_under_model(key, tmp_path):
    from tests.clitools import run_cli

    path = tmp_path / "x.yaml"
    path.write_text(f"input: [1, 8, 8]\nmodel:\n  layers: [relu]\n{key}: 1\n")
    r = run_cli("recipes", str(path))
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1, r.err
    assert f"{path}:4: {key}: unknown section '{key}': it goes under model: (model.{key})" in r.err


@pytest.mark.parametrize(
    ("item", "message"),
    [
        # an alias, two arguments, a mapping already, a block's own argument
        (
            "{conv: 8, s: 2}",
            "s is an argument of conv, not a meta key: write {conv: {out: 8, s: 2}}",
        ),
        (
            "{conv: {out: 8}, k: 3, p: 1}",
            "k and p are arguments of conv, not meta keys: write {conv: {out: 8, k: 3, p: 1}}",
        ),
        (
            "{cb: 4, k: 5}",
            "k is an argument of block 'cb', not a meta key: write {cb: {out: 4, k: 5}}",
        ),
        ("{conv: 8, relu: ~}", "expected exactly one layer kind or structure per item, found: "),
    ],
)
def test_arguments_beside_the_kind_say_where_they_go(item, message):
    text = (
        "input: [1, 8, 8]\nmodel:\n  blocks:\n    cb:\n      args: {out: ~, k: 3}\n"
        f"      layers:\n        - conv: {{out: $out, k: $k}}\n  layers:\n    - {item}\n"
    )
    with pytest.raises(RecipeError) as info:
        recipe_from_text(text, "recipes/x.yaml")
    assert message in str(info.value), str(info.value)


def test_the_short_form_of_a_block_whose_arguments_all_have_defaults():
    text = (
        "input: [1, 8, 8]\nmodel:\n  blocks:\n    b:\n      args: {out: 4, k: 3}\n"
        "      layers:\n        - conv: {out: $out, k: $k}\n  layers:\n    - b: 8\n"
    )
    with pytest.raises(RecipeError) as info:
        recipe_from_text(text, "recipes/x.yaml")
    assert str(info.value).startswith(
        "recipes/x.yaml:9: model.layers[0].b: block 'b' has arguments out and k (all optional); "
        "the short form fills one argument: write {b: {out: 8}}"
    ), str(info.value)


@pytest.mark.parametrize(
    ("item", "where", "word"),
    [
        ("conv: {out: 4, k: '${k * 2}'}", "model.layers[0].conv.k", "${k * 2}"),
        ("repeat: {times: $n, layers: relu}", "model.layers[0].repeat.times", "$n"),
        ("conv: {out: $in_channels}", "model.layers[0].conv.out", "$in_channels"),
        ("conv: '${4 * 2}'", "model.layers[0].conv", "${4 * 2}"),
        (
            "residual: {layers: [conv: 3], shortcut: \"${'none'}\"}",
            "model.layers[0].residual.shortcut",
            "${'none'}",
        ),
        (
            "parallel: {branches: [relu, relu], merge: '${m}'}",
            "model.layers[0].parallel.merge",
            "${m}",
        ),
    ],
)
def test_block_arguments_outside_a_block_name_the_value(item, where, word):
    with pytest.raises(RecipeError) as info:
        recipe_from_text(HEAD + f"    - {item}\n", "recipes/x.yaml")
    what = "a block expression" if word.startswith("${") else "a block argument"
    assert f"{where}: {word} is {what}: usable only inside" in str(info.value)


def test_a_layer_taking_one_or_two_inputs_says_so():
    with pytest.raises(RecipeError, match=r"\(upsample\) takes 1 to 2 input\(s\), got 3"):
        recipe_from_text(
            HEAD + "    - {conv: 4, name: a}\n    - {upsample: {scale: 2}, from: [a, a, a]}\n",
            "recipes/x.yaml",
        )


def test_repeat_names_that_count_are_still_fine_and_one_copy_needs_no_counter():
    recipe = recipe_from_text(
        HEAD + "    - repeat: {times: 1, names: x, layers: relu}\n"
        "    - repeat: {times: 2, names: 'r{n}', layers: relu}\n",
        "recipes/x.yaml",
    )
    assert [n.name for n in recipe.graph.nodes] == ["x", "r1", "r2"]


VALID = HEAD + "    - {conv: {out: 4, k: 3}, name: c1}\n    - relu\n"

OVERRIDE_CASES = {
    "bad value type": (
        "model.layers[0].conv.out=a",
        "--set model.layers[0].conv.out=a: model.layers[0].conv.out: expected a positive integer",
    ),
    "unknown key in path": (
        "model.layres[0]=relu",
        "--set model.layres[0]=relu: model.layres: no key 'layres' (did you mean 'layers'?)",
    ),
    "index out of range": (
        "model.layers[5]=relu",
        "--set model.layers[5]=relu: model.layers[5]: index out of range",
    ),
    "no equals sign": ("model.layers", "--set model.layers: expected KEY.PATH=VALUE"),
    "yaml value": ("train.lr=[1,", "--set train.lr=[1,: cannot read the value as YAML"),
    "unknown argument": (
        "model.layers[0].conv.outt=3",
        "--set model.layers[0].conv.outt=3: model.layers[0].conv.outt: unknown argument",
    ),
    "unknown section": (
        "trian.lr=0.1",
        "--set trian.lr=0.1: trian: unknown section 'trian' (did you mean 'train'?)",
    ),
}


@pytest.mark.parametrize("case", sorted(OVERRIDE_CASES))
def test_override_errors_name_the_set(case):
    override, prefix = OVERRIDE_CASES[case]
    recipe = recipe_from_text(VALID, "recipes/x.yaml")
    with pytest.raises(RecipeError) as info:
        apply_overrides(recipe, [override])
    assert str(info.value).startswith(prefix), str(info.value)


def test_override_cli_error_is_one_line(capsys):
    with pytest.raises(SystemExit) as info:
        main(["recipes", "lenet", "--set", "model.layers[0].conv.k=a"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --set model.layers[0].conv.k=a: model.layers[0].conv.k: ")
    assert err.count("\n") == 1


def test_errors_after_an_override_keep_file_lines_elsewhere():
    recipe = recipe_from_text(VALID, "recipes/x.yaml")
    with pytest.raises(ShapeError, match=r"^recipes/x.yaml:4: model.layers\[0\]: layer c1"):
        apply_overrides(recipe, ["input=[1, 2, 2]"])
    changed = apply_overrides(recipe, ["model.layers[0].conv.out=7", "train.lr=0.01"])
    assert changed.graph["c1"].shape == (7, 6, 6)
    assert changed.train == {"lr": 0.01}
    assert recipe.graph["c1"].shape == (4, 6, 6)  # the original is untouched


def test_unknown_recipe_name_suggests_a_builtin():
    from cnnkit.recipe import load_recipe

    with pytest.raises(RecipeError, match="did you mean 'lenet'"):
        load_recipe("lenett")


def test_recipes_check_validates_data_and_train_sections(tmp_path):
    from tests.clitools import run_cli

    path = tmp_path / "bad_train.yaml"
    path.write_text(
        "input: [1, 8, 8]\nmodel:\n  layers:\n    - flatten\n    - linear: 10\n"
        "train:\n  epochs: 2\n  lr: fast\n"
    )
    r = run_cli("recipes", str(path))
    assert r.code == 2 and "Traceback" not in r.err
    assert f"{path}:8: train.lr" in r.err and len(r.err.strip().splitlines()) == 1


# -- numbers: one float rule for every section (YAML 1.1 would read 1e-4 as a string) ----------

_FLOAT_FORMS = st.sampled_from(["{:e}", "{:E}", "{:.0e}", "{:.3e}", "{!r}", "{:g}", "{:.2f}"])


@given(value=st.floats(allow_nan=False, allow_infinity=False), form=_FLOAT_FORMS)
def test_every_decimal_float_form_reads_as_python_float_reads_it(value, form):
    from cnnkit.recipe.source import load_value, read_yaml

    text = form.format(value)
    for variant in {text, text.replace("e+", "e"), text.replace("e-0", "e-"), "+" + text}:
        if variant.startswith("+-"):
            continue
        kind = float if set(variant) & set(".eE") else int  # "{:g}" writes 0.0 as "0"
        data, _ = read_yaml(f"v: {variant}\n", "x.yaml")
        assert type(data["v"]) is kind and data["v"] == kind(variant), variant
        assert load_value(variant) == kind(variant)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1e-4", 1e-4),
        ("1E5", 1e5),
        (".5", 0.5),
        ("-1e-3", -1e-3),
        ("1.e3", 1e3),
        ("5e-324", 5e-324),
        (".5e1", 5.0),
        ("1_000", 1000),
        ("1_000.5e1", 10005.0),
        ("12", 12),
    ],
)
def test_number_forms(text, value):
    from cnnkit.recipe.source import load_value

    got = load_value(text)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize("text", ["1e", "e5", "1e-4x", "1.2.3", "--1e3", "1e4.5", "0x1p3", "e"])
def test_words_that_merely_look_numeric_stay_text(text):
    from cnnkit.recipe.source import load_value

    assert load_value(text) == text


def test_documented_lrn_default_alpha_loads_in_a_file_a_set_and_a_layer_list():
    """docs/recipes.md gives lrn's alpha as 1e-4; the model, --set and --layers all take it."""
    import re
    from pathlib import Path

    row = next(line for line in Path("docs/recipes.md").read_text().splitlines() if "`lrn`" in line)
    alpha = re.search(r"`alpha`=([^ ,]+)", row).group(1)
    assert alpha == "1e-4"
    text = HEAD.replace("[1, 8, 8]", "[3, 8, 8]") + f"    - lrn: {{alpha: {alpha}}}\n"
    text += "train:\n  lr: 1e-3\n  weight_decay: 5E-4\n"
    recipe = recipe_from_text(text, "recipes/x.yaml")
    assert recipe.graph.nodes[0].args["alpha"] == float(alpha)
    assert recipe.train == {"lr": 1e-3, "weight_decay": 5e-4}
    changed = apply_overrides(recipe, ["model.layers[0].lrn.beta=7.5e-1"])
    assert changed.graph.nodes[0].args["beta"] == 0.75

    import torch

    import cnnkit

    module = cnnkit.build(recipe)
    lrn = next(m for m in module.modules() if isinstance(m, torch.nn.LocalResponseNorm))
    assert lrn.alpha == float(alpha)

    from cnnkit.cli.rf import layers_recipe

    listed = layers_recipe(f"conv k=3; lrn alpha={alpha}", "3x8x8")
    assert [n.args.get("alpha") for n in listed.graph.nodes if n.kind == "lrn"] == [1e-4]


# -- did you mean: canonical kinds, ranked by edit distance, never an opposite ------------------


def _unknown_kind(word: str) -> str:
    with pytest.raises(RecipeError) as info:
        recipe_from_text(HEAD + f"    - {word}\n", "recipes/x.yaml")
    return str(info.value)


@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("maxpol", "maxpool"),
        ("avgpool2", "avgpool"),
        ("convolutoin", "convolution"),
        ("rleu", "relu"),
        ("tahn", "tanh"),
        ("batchnorm2d", "batchnorm"),
        ("sofmax", "softmax"),
        ("mxpool", "maxpool"),
    ],
)
def test_typos_get_the_kind_they_miss(typo, meant):
    from cnnkit.layers import lookup

    assert lookup(meant) is not None
    assert f"(did you mean {meant!r}?)" in _unknown_kind(typo)


@pytest.mark.parametrize(
    "word", ["unpool", "minpool", "adaptive_minpool", "global_minpool", "pooling", "poool"]
)
def test_no_opposite_is_suggested_and_the_list_is_the_canonical_kinds(word):
    from cnnkit.layers import LAYERS

    message = _unknown_kind(word)
    assert "did you mean" not in message, message
    listed = message.split("expected one of: ")[1].split(", ")
    structures = {"sequence", "repeat", "residual", "parallel", "dense"}
    assert sorted(listed) == sorted(set(LAYERS) | structures)  # one name per kind, no aliases


def _osa(a: str, b: str) -> int:
    """Optimal string alignment distance, by plain recursion (the oracle)."""
    from functools import cache

    @cache
    def go(i: int, j: int) -> int:
        if not i or not j:
            return i + j
        best = min(go(i - 1, j) + 1, go(i, j - 1) + 1, go(i - 1, j - 1) + (a[i - 1] != b[j - 1]))
        if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
            best = min(best, go(i - 2, j - 2) + 1)
        return best

    return go(len(a), len(b))


@given(a=st.text("abcx_", max_size=8), b=st.text("abcx_", max_size=8))
def test_typo_distance_is_the_edit_distance_when_offered(a, b):
    from cnnkit.layers._suggest import typo_distance

    got = typo_distance(a, b)
    assert got is None or got == _osa(a, b)
    if a and b and a[0] == b[0] and _osa(a, b) <= 1:
        assert got == _osa(a, b)
