"""``--init-from`` against torchvision and timm themselves: a state_dict saved from their
resnet18 (seeded random init; nothing is downloaded) loads into the built-in ``resnet18``
recipe with every tensor landing, and the two models give the same outputs. The by-name
sources read the libraries' caches, which these tests fill with that file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cnnkit.errors import CheckpointError
from cnnkit.model.build import build
from cnnkit.recipe import load_recipe
from cnnkit.train.init_from import apply_init


def _loads_exactly(spec: str, theirs: torch.nn.Module, kind: str) -> None:
    ours = build(load_recipe("resnet18"))
    record = apply_init(ours, spec, partial=False)
    assert record["kind"] == kind
    assert record["loaded"] == record["tensors"] == len(theirs.state_dict())
    assert record["reinitialised"] == record["missing"] == record["unexpected"] == []
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x), theirs.eval()(x), atol=1e-5, rtol=0)


def _torchvision_resnet18(torchvision) -> torch.nn.Module:
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None)


def test_a_torchvision_state_dict_file_lands_whole(torchvision, tmp_path):
    theirs = _torchvision_resnet18(torchvision)
    torch.save(theirs.state_dict(), tmp_path / "resnet18.pth")
    _loads_exactly(str(tmp_path / "resnet18.pth"), theirs, "state_dict")


def test_torchvision_names_read_the_hub_cache_only(torchvision, tmp_path, monkeypatch):
    from cnnkit.train.init_names import hub_file

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    spec = "torchvision:resnet18:IMAGENET1K_V1"
    with pytest.raises(CheckpointError, match="not cached locally"):
        apply_init(build(load_recipe("resnet18")), spec, partial=False)
    theirs = _torchvision_resnet18(torchvision)
    file = hub_file(torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url)
    assert file.parent == tmp_path / "hub" / "checkpoints"
    file.parent.mkdir(parents=True)
    torch.save(theirs.state_dict(), file)
    _loads_exactly(spec, theirs, "torchvision")
    with pytest.raises(Exception, match="has no weights 'IMAGENET9'"):
        apply_init(build(load_recipe("resnet18")), "torchvision:resnet18:IMAGENET9", False)


def test_timm_names_read_the_hugging_face_cache_only(timm, tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    spec = "timm:resnet18.a1_in1k"
    with pytest.raises(CheckpointError, match="not cached locally"):
        apply_init(build(load_recipe("resnet18")), spec, partial=False)
    torch.manual_seed(0)
    theirs = timm.create_model("resnet18", pretrained=False)
    repo = timm.models.get_pretrained_cfg("resnet18.a1_in1k").hf_hub_id
    folder = tmp_path / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("0" * 40)
    snapshot = folder / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    torch.save(theirs.state_dict(), snapshot / "pytorch_model.bin")
    _loads_exactly(spec, theirs, "timm")


def test_another_class_count_re_initialises_torchvisions_head(torchvision, tmp_path):
    theirs = _torchvision_resnet18(torchvision)
    torch.save(theirs.state_dict(), tmp_path / "r.pth")
    recipe = load_recipe("resnet18", ["model.layers[9].linear=7"])
    ours, fresh = build(recipe), build(recipe).state_dict()
    record = apply_init(ours, str(tmp_path / "r.pth"), partial=False)
    assert [r["key"] for r in record["reinitialised"]] == ["fc.weight", "fc.bias"]
    assert record["reinitialised"][0] == {
        "key": "fc.weight",
        "file": [1000, 512],
        "model": [7, 512],
    }
    assert torch.equal(ours.state_dict()["fc.weight"], fresh["fc.weight"])
    assert torch.equal(
        ours.state_dict()["layer4.1.conv2.weight"], theirs.state_dict()["layer4.1.conv2.weight"]
    )
    assert Path(record["file"]).name == "r.pth"
