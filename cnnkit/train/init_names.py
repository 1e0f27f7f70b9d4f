"""``--init-from torchvision:NAME[:WEIGHTS]`` and ``timm:NAME[:TAG]``: published weights by name,
read from the local cache only.

cnnkit never downloads at run time: the file must already be where the library caches it
(torch hub's ``checkpoints/`` folder for torchvision and URL-hosted timm weights, the Hugging
Face cache for hub-hosted timm weights); otherwise one line says where it was looked for and
how to pass a file instead. The shipped recipes use torchvision's key layout, so the weights
then load by key like any state_dict file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from cnnkit.errors import CheckpointError, InputError, MissingDependencyError
from cnnkit.train.init_from import Weights, state_dict_of
from cnnkit.validation import did_you_mean

_INSTALL = "pip install 'cnnkit[vision]'"
# torchvision's DenseNet files keep pre-0.3 names (``norm.1.weight``); its loader renames them.
_DENSENET_OLD = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)


def named_weights(spec: str) -> Weights:
    """The cached weights ``spec`` names, as a ``Weights`` of kind torchvision or timm."""
    library, _, rest = spec.partition(":")
    name, _, tag = rest.partition(":")
    if not name:
        raise InputError(f"give a model name, e.g. {library}:resnet18", where=spec)
    if library == "torchvision":
        return _torchvision(spec, name, tag)
    return _timm(spec, name, tag)


def _not_cached(spec: str, file: str) -> CheckpointError:
    return CheckpointError(
        f"the weights are not cached locally (looked for {file}); cnnkit does not download: "
        "fetch them once where there is a network, or pass a state_dict file: --init-from PATH",
        where=spec,
    )


def hub_file(url: str) -> Path:
    """Where ``torch.hub.load_state_dict_from_url`` keeps ``url``'s file."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name


def _torchvision(spec: str, name: str, tag: str) -> Weights:
    try:
        import torchvision.models as models
    except ImportError:
        raise MissingDependencyError(f"{spec}: needs torchvision; run: {_INSTALL}") from None
    try:
        enum: Any = models.get_model_weights(name)
    except (ValueError, KeyError):
        hint = did_you_mean(name, models.list_models())
        raise InputError(f"torchvision has no model {name!r}{hint}", where=spec) from None
    choices = list(enum.__members__)
    if tag and tag != "DEFAULT" and tag not in choices:
        raise InputError(
            f"{name} has no weights {tag!r}; known: {', '.join(choices)}, DEFAULT", where=spec
        )
    weights = enum.DEFAULT if not tag or tag == "DEFAULT" else enum[tag]
    file = hub_file(weights.url)
    if not file.is_file():
        raise _not_cached(spec, str(file))
    from cnnkit.train.checkpoint import read_weights_only

    state = state_dict_of(read_weights_only(file), str(file))
    if name.startswith("densenet"):
        state = {_renamed(k): v for k, v in state.items()}
    return Weights("torchvision", file, state)


def _renamed(key: str) -> str:
    found = _DENSENET_OLD.match(key)
    return found.group(1) + found.group(2) if found else key


def _timm(spec: str, name: str, tag: str) -> Weights:
    try:
        import timm
    except ImportError:
        raise MissingDependencyError(f"{spec}: needs timm; run: {_INSTALL}") from None
    full = f"{name}.{tag}" if tag else name
    try:
        config = timm.models.get_pretrained_cfg(full)
    except (RuntimeError, ValueError, KeyError):
        config = None
    if config is None:
        hint = did_you_mean(full, timm.list_pretrained())
        raise InputError(f"timm has no pretrained weights {full!r}{hint}", where=spec)
    file = _timm_file(spec, config)
    if file.suffix == ".safetensors":
        from cnnkit.train.init_from import read_safetensors

        return Weights("timm", file, read_safetensors(file))
    from cnnkit.train.checkpoint import read_weights_only

    return Weights("timm", file, state_dict_of(read_weights_only(file), str(file)))


def _timm_file(spec: str, config: Any) -> Path:
    """The cached file of a timm pretrained config: Hugging Face hub first, then a URL."""
    hub_id = getattr(config, "hf_hub_id", None)
    if hub_id:
        from huggingface_hub import try_to_load_from_cache

        repo = hub_id.split("@")[0]
        for filename in ("model.safetensors", "pytorch_model.bin"):
            found = try_to_load_from_cache(repo, filename)
            if isinstance(found, str):
                return Path(found)
        if not getattr(config, "url", None):
            raise _not_cached(spec, f"the Hugging Face cache, repo {repo}")
    url = getattr(config, "url", None)
    if not url:
        raise CheckpointError("timm lists no file for these weights", where=spec)
    file = hub_file(url)
    if not file.is_file():
        raise _not_cached(spec, str(file))
    return file
