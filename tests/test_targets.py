"""cnnkit.targets: every kind of target resolves to what its old loader returned, and a kind
a command does not take is one line naming what was given and what is accepted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cnnkit import targets
from cnnkit.errors import CheckpointError, InputError, RecipeError
from cnnkit.recipe import builtin_recipes, load_recipe
from cnnkit.targets import MODELS, RECIPES, TRAINED, resolve

LENET = builtin_recipes()["lenet"]


def _run_folder(root: Path, *files: str) -> Path:
    root.mkdir()
    for name in files:
        (root / name).write_text(LENET.read_text() if name.endswith(".yaml") else "x")
    return root


def test_a_builtin_name_is_the_builtin_recipe():
    target = resolve("lenet")
    assert (target.kind, target.path, target.name) == ("builtin", None, "lenet")
    assert target.recipe.raw == load_recipe(LENET).raw
    assert target.external is None


def test_a_recipe_file_is_read_with_overrides_and_input(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(LENET.read_text())
    target = resolve(str(path), overrides=["model.layers[0].conv.out=4"], input_text="40")
    assert (target.kind, target.path, target.name) == ("recipe", path, "mine")
    assert target.recipe.input_shape == (1, 40, 40)  # one size: every spatial axis
    assert target.recipe.graph.nodes[0].args["out"] == 4


def test_input_keeps_the_recipes_channels_and_refuses_others():
    assert resolve("lenet", input_text="1x20x24").recipe.input_shape == (1, 20, 24)
    with pytest.raises(InputError, match="--input"):
        resolve("lenet", input_text="abc")


def test_an_external_name_is_a_one_line_recipe_at_224():
    target = resolve("torchvision:resnet18")
    ext = target.external
    assert (target.kind, target.name, ext.library, ext.name) == (
        "external",
        "torchvision:resnet18",
        "torchvision",
        "resnet18",
    )
    assert target.recipe.input_shape == (3, 224, 224) and target.recipe.graph is None
    assert resolve("timm:vit_tiny.x", input_text="3x32x32").recipe.input_shape == (3, 32, 32)
    assert resolve("timm:vit_tiny.x").name == "timm:vit_tiny.x"  # not the path stem


def test_a_file_named_like_an_external_model_is_a_recipe_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("torchvision:x").write_text(LENET.read_text())
    assert resolve("torchvision:x").kind == "recipe"


def test_a_run_folder_has_its_recipe_and_its_best_checkpoint(tmp_path):
    run = _run_folder(tmp_path / "run1", "recipe.yaml", "last.pt", "best.pt")
    target = resolve(str(run), input_text="28")
    assert (target.kind, target.path, target.name) == ("run", run, "run1")
    assert target.checkpoint == run / "best.pt"
    assert target.recipe.input_shape == (1, 28, 28)


def test_a_run_folder_without_best_offers_last_and_may_lack_a_recipe(tmp_path):
    run = _run_folder(tmp_path / "run2", "last.pt")
    target = resolve(str(run))
    assert (target.checkpoint, target.recipe) == (run / "last.pt", None)
    with pytest.raises(InputError, match=r"run2: a folder, but no recipe.yaml in it"):
        target.require_recipe()


def test_an_unread_run_recipe_is_not_parsed(tmp_path):
    run = tmp_path / "broken"
    run.mkdir()
    (run / "recipe.yaml").write_text("input: [")
    (run / "best.pt").write_text("x")
    assert resolve(str(run), accept=TRAINED, with_recipe=False).recipe is None
    with pytest.raises(RecipeError):
        resolve(str(run))


def test_a_run_folder_without_weights_says_so(tmp_path):
    run = _run_folder(tmp_path / "empty")
    with pytest.raises(CheckpointError, match="no best.pt or last.pt in this folder"):
        resolve(str(run), accept=TRAINED).load_checkpoint()


def test_a_checkpoint_file_loads_with_the_recipe_inside_it(tmp_path):
    from cnnkit.train.checkpoint import save_atomic
    from tests.test_checkpoints import GOOD

    path = tmp_path / "model.pt"
    save_atomic(
        {**GOOD, "recipe": LENET.read_text(), "name": "x", "input_shape": [1, 32, 32]}, path
    )
    target = resolve(str(path))
    assert (target.kind, target.checkpoint, target.recipe) == ("checkpoint", path, None)
    checkpoint, recipe = target.load_checkpoint()
    assert checkpoint["epoch"] == 1 and recipe.raw == load_recipe(LENET).raw


def test_trained_targets_take_any_file_and_name_a_missing_one(tmp_path):
    other = tmp_path / "weights.bin"
    other.write_text("x")
    assert resolve(str(other), accept=TRAINED).kind == "checkpoint"
    with pytest.raises(CheckpointError, match="nothing: no such checkpoint file"):
        resolve("nothing", accept=TRAINED)
    with pytest.raises(CheckpointError, match="nothing: not a run folder: no such folder"):
        resolve("nothing", accept={"run"})


def test_an_unknown_name_keeps_the_recipe_loaders_message():
    with pytest.raises(RecipeError, match="no recipe file or built-in recipe named 'nope'"):
        resolve("nope", accept=MODELS)


@pytest.mark.parametrize(
    ("spec", "accept", "given", "takes"),
    [
        ("torchvision:resnet18", RECIPES, "a torchvision/timm model",
         "a recipe file or a built-in recipe name"),
        ("{run}", MODELS, "a folder",
         "a recipe file, a built-in recipe name or torchvision:NAME / timm:NAME"),
        ("{pt}", RECIPES, "a checkpoint file", "a recipe file or a built-in recipe name"),
        ("lenet", TRAINED, "a built-in recipe name", "a run folder or a checkpoint file"),
        ("lenet", {"run"}, "a built-in recipe name", "a run folder"),
    ],
)  # fmt: skip
def test_a_kind_not_taken_is_one_line_naming_both(tmp_path, spec, accept, given, takes):
    run = _run_folder(tmp_path / "run", "recipe.yaml")
    (tmp_path / "w.pt").write_text("x")
    spec = spec.format(run=run, pt=tmp_path / "w.pt")
    with pytest.raises(InputError) as caught:
        resolve(spec, accept=accept)
    assert str(caught.value) == f"{spec}: {given}, but this command takes {takes}"


@pytest.mark.parametrize("spec", ["", " "])
def test_an_empty_name_is_not_the_current_folder(spec):
    with pytest.raises(InputError, match="an empty name; give a run folder or a checkpoint"):
        resolve(spec, accept=TRAINED)


def test_unknown_kinds_in_accept_are_a_programming_error():
    with pytest.raises(ValueError, match="unknown target kinds"):
        resolve("lenet", accept={"recipes"})


def test_layers_build_a_recipe_whose_shapes_match_torch():
    torch = pytest.importorskip("torch")
    recipe = targets.layers_recipe("conv k=3 s=2; maxpool k=3x2; conv k=5 out=4 p=2", "3x33x40")
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 3, 3, stride=2),
        torch.nn.MaxPool2d((3, 2)),
        torch.nn.Conv2d(3, 4, 5, padding=2),
    )
    expected = tuple(net(torch.zeros(1, 3, 33, 40)).shape[1:])
    assert recipe.graph.output_shape == expected
    assert targets.layers_recipe("conv k=3", None).input_shape == (1, 224, 224)
    with pytest.raises(InputError, match="does not fit 3-D layers"):
        targets.layers_recipe("conv k=3x3x3", "8x8")


def test_resolving_recipes_externals_and_runs_imports_no_torch(tmp_path):
    run = _run_folder(tmp_path / "run", "recipe.yaml", "best.pt")
    code = (
        "import sys, json\nfrom cnnkit.targets import resolve, layers_recipe\n"
        f"for spec in ('resnet50', 'torchvision:resnet18', {str(run)!r}):\n"
        "    resolve(spec)\n"
        "layers_recipe('conv k=3; maxpool k=2', None)\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert not [m for m in loaded if m.split(".")[0] in ("torch", "pandas", "numpy", "fvcore")]
