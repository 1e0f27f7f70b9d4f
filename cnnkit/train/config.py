"""The ``data:`` and ``train:`` sections of a recipe as two typed, validated dataclasses.

Pure Python (no torch): ``cnnkit train --help`` and recipe checks stay fast, and every error
names the file, line and key through the recipe loader's locator, in the house format
``recipes/x.yaml:14: train.lr: expected a positive number, got 'a'``.
Validation is table-driven: each field has one checker in ``_DATA_FIELDS``/``_TRAIN_FIELDS``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Protocol

from cnnkit.errors import RecipeError
from cnnkit.validation import (
    NUMBER_LIMIT,
    SEED_LIMIT,
    boolean,
    did_you_mean,
    integer,
    number,
    optional,
    probability,
    text,
    word,
)
from cnnkit.validation import fail as _fail

KeyPath = tuple[str | int, ...]


class Locator(Protocol):
    """What the recipe loader's ``Source`` offers: an error that names ``file:line: key``."""

    def error(self, path: KeyPath, message: str) -> RecipeError: ...


class NoLocation:
    """A locator for sections that did not come from a file (library callers, tests)."""

    def __init__(self, name: str = "<recipe>") -> None:
        self.name = name

    def error(self, path: KeyPath, message: str) -> RecipeError:
        key = ""
        for part in path:
            key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
        return RecipeError(message, where=f"{self.name}: {key}" if key else self.name)


# The data sources cnnkit reads; ``torchvision:NAME`` is matched by prefix.
DATA_SOURCES = (
    "digits",
    "synthetic",
    "folder",
    "csv",
    "npz",
    "idx",
    "shapes",
    "text",
    "sentiment",
    "waves",
    "dots",
)
# Sources of token-id sequences (a recipe input [L]) and of 1-D signals (an input [C, L]).
TEXT_SOURCES = ("text", "sentiment")
TOKEN_PATTERN = r"\w+(?:'\w+)?"  # a word: letters/digits/_ with one inner apostrophe (don't)
TASKS = ("classify", "regress", "segment")
# What regression targets are: plain numbers, or (x, y) pixel coordinates that move with the
# image (cnnkit.train.data.points: pixel centres, origin top-left, x = column).
TARGET_KINDS = ("values", "points")
AUGMENTS = ("random_crop", "hflip", "random_resized_crop", "alexnet_crop")
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULERS = ("constant", "step", "cosine", "onecycle")
DEVICES = ("auto", "cpu", "cuda", "mps")
AMP_MODES = ("off", "bf16", "fp16")
SAMPLERS = ("shuffle", "balanced")
MONITORS = ("val_loss", "val_accuracy", "train_loss", "train_accuracy", "val_miou")
# Monitors only segmentation computes (the val split's mean IoU, cnnkit.train.segment_eval).
SEGMENT_MONITORS = ("val_miou",)
CACHE_MODES = ("auto", "memory", "stream")  # data.cache (cnnkit.train.data.stream)
STREAM_SOURCES = ("folder", "csv")  # image files decoded per item (csv: a path column)
# Augmentations that move pixels: regression targets such as coordinates do not follow them.
GEOMETRIC = frozenset(AUGMENTS)


@dataclass(frozen=True)
class Augment:
    """One training-time augmentation; ``args`` are checked by ``_AUGMENT_ARGS``."""

    kind: str
    args: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DataConfig:
    """Where the images come from and how they are split, normalised and augmented."""

    name: str = "digits"  # source: images, shapes, text (text, sentiment), signals (waves, npz)
    path: str | Mapping[str, str] | None = None  # a file/folder, or {train:, val:, test:} splits
    task: str = "classify"  # classify: cross-entropy on labels; regress: MSE; segment: per pixel
    val: float = 0.1  # fraction held out for validation (ignored for a given val split)
    test: float = 0.2  # fraction held out for test (ignored for a given test split)
    seed: int = 0  # the split's seed: independent of train.seed, so runs share one test set
    resize: tuple[int, int] | None = None  # store images at HxW; None: the recipe input size
    normalize: bool = True  # per-channel mean/std from the train split only (no test leakage)
    augment: tuple[Augment, ...] = ()  # training only; eval sees centre crops
    label_column: str = "label"  # csv: the label column (MNIST-CSV calls it "label")
    path_column: str = "path"  # csv: a column of image paths makes it a path,label table
    targets: tuple[str, ...] = ()  # regress from csv: the target columns
    classes: int = 10  # synthetic: how many classes; segment: how many the masks index
    samples: int = 1000  # synthetic, shapes: how many images
    limit: int | None = None  # use N samples, drawn with data.seed, stratified by class
    stratify: bool = False  # classify: val/test splits keep the class proportions of the data
    augment_keeps_targets: bool = False  # regress: flips/crops leave the targets true (opt-in)
    ignore_index: int = 255  # segment: the mask value that marks pixels to leave unscored
    text_column: str = "text"  # text: the CSV column of sentences (labels: label_column)
    vocab_size: int | None = None  # text: words kept, <pad> and <unk> included; None: embedding's
    min_freq: int = 1  # text: a word seen fewer times in the train split becomes <unk>
    lowercase: bool = True  # text: lower-case before splitting into words
    token_pattern: str = TOKEN_PATTERN  # text: the regex (re.findall) a word matches
    target_kind: str = "values"  # regress: values | points: [x0, y0, ...] pixel pairs (csv: file's)
    cache: str = "auto"  # memory | stream (folder, csv of paths) | auto: memory if under budget
    memory_budget: int = 2048  # auto: MiB the decoded float32 splits may take in memory
    workers: int | None = None  # stream: DataLoader worker processes; None: min(4, CPUs)
    sample_augment: tuple[Augment, ...] = ()  # stream: per image in the workers (torchvision's)

    @property
    def path_text(self) -> str:
        """The path to name in messages: the file/folder, the train split's, or the source."""
        if isinstance(self.path, Mapping):
            return self.path["train"]
        return self.path or self.name


@dataclass(frozen=True)
class TrainConfig:
    """How to train: optimiser, schedule, precision, device, stopping (``train:``)."""

    epochs: int = 10  # passes over the train split
    batch_size: int = 64  # global batch: under DDP each of N processes takes batch_size / N
    eval_batch_size: int = 512  # evaluation has no gradients, so larger batches are cheap
    seed: int = 0  # data order, augmentation and dropout (weight init uses model.seed)
    optimizer: str = "sgd"  # sgd | adam | adamw
    lr: float = 0.05  # peak learning rate (after warm-up)
    momentum: float = 0.9  # sgd only
    nesterov: bool = False  # sgd only (Sutskever et al. 2013)
    weight_decay: float = 0.0  # L2 for sgd/adam, decoupled for adamw (Loshchilov & Hutter 2019)
    betas: tuple[float, float] = (0.9, 0.999)  # adam/adamw moment decay rates
    scheduler: str = "constant"  # constant | step | cosine | onecycle, stepped once per batch
    step_size: int = 10  # step: epochs between decays
    gamma: float = 0.1  # step: decay factor
    warmup_epochs: float = 0.0  # linear warm-up from 0 to lr (Goyal et al. 2017), fractional ok
    min_lr: float = 0.0  # cosine/onecycle: the floor the schedule decays to
    label_smoothing: float = 0.0  # classify: cross-entropy label smoothing (Szegedy et al. 2016)
    clip_grad_norm: float | None = None  # clip the global gradient L2 norm to this value
    early_stop: int | None = None  # stop after this many epochs without improving `monitor`
    monitor: str = "val_accuracy"  # the metric for best.pt and early stopping (val_miou: segment)
    device: str = "auto"  # auto picks cuda, then mps, then cpu
    amp: str = "off"  # off | bf16 | fp16 autocast (fp16: CUDA only, with a GradScaler)
    channels_last: bool = False  # NHWC memory format on CUDA (faster convs with tensor cores)
    compile: bool = False  # torch.compile the model (opt-in: compiling costs start-up time)
    mixup: float = 0.0  # classify: mixup's Beta(alpha, alpha) (Zhang et al. 2018); 0 = off
    cutmix: float = 0.0  # classify: cutmix's Beta(alpha, alpha) (Yun et al. 2019); 0 = off
    mix_prob: float = 1.0  # mixup/cutmix on: the chance that a batch is mixed
    mix_switch_prob: float = 0.5  # mixup and cutmix both on: the chance a mixed batch cuts
    mix_epochs: int | None = None  # mix in the first N epochs only (timm's mixup_off_epoch)
    class_weights: str | tuple[float, ...] | None = None  # loss weights: balanced, or per class
    sampler: str = "shuffle"  # shuffle: each image once per epoch; balanced: classes equally
    sync_bn: bool = False  # torchrun on CUDA: BatchNorm statistics over all processes
    init_from: str | None = None  # first weights: run, checkpoint, state_dict or torchvision:NAME
    init_partial: bool = False  # init_from: load the tensors that fit, skip the rest
    freeze: tuple[str, ...] = ()  # state_dict key prefixes whose parameters get no gradient
    ema: float | None = None  # decay of an EMA of the weights (e.g. 0.999), scored beside them
    ema_warmup: bool = False  # ema: timm's warm-up, decay of step n = min(ema, 1 - n^(-2/3))
    weight_decay_norm_bias: bool = False  # decay biases and norm weights (ndim <= 1) too
    accumulate: int = 1  # N micro-batches of batch_size per optimiser step (batch N*batch_size)
    checkpoint_every: int | None = None  # also write last.pt every N optimiser steps mid-epoch


# ---- checkers: each returns the clean value or raises ValueError(expected-text). The value
# rules (integers, numbers, words, booleans) are cnnkit.validation's, shared with the layer
# arguments; the section-shaped ones (paths, sizes, pairs) live here.

MAX_IMAGE_SIDE = 8192  # data.resize, and any image a data set holds (checked from its header)
MAX_CLASSES = 100_000  # data.classes, and integer labels (ImageNet-21k has 21,841 classes)
MAX_SAMPLES = 100_000_000  # data.samples of the synthetic set
# lr, weight decay, gamma, warm-up, min_lr and clip norm are held to NUMBER_LIMIT, seeds to
# SEED_LIMIT (both cnnkit.validation's).


def _fraction(value: Any) -> float:
    """val, test, momentum, label smoothing: a number in [0, 1), stopping short of 1."""
    return number(0, 1, open_high=True)(value)


def _path(value: Any) -> str | dict[str, str]:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, dict) and value and set(value) <= {"train", "val", "test"}:
        if "train" not in value:
            raise ValueError(f"a split mapping needs a 'train' entry, got keys {sorted(value)}")
        return {k: text(v) for k, v in value.items()}
    raise _fail("a path, or a mapping of train/val/test to paths", value)


def _size(value: Any) -> tuple[int, int] | None:
    if value is None:
        return None
    sides = [value] if isinstance(value, int) and not isinstance(value, bool) else value
    if (
        isinstance(sides, list | tuple)
        and len(sides) in (1, 2)
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in sides)
    ):
        if max(sides) > MAX_IMAGE_SIDE:
            raise _fail(f"a size of at most {MAX_IMAGE_SIDE} per side", value)
        return (sides[0], sides[-1])
    raise _fail("a size like 32 or [32, 32]", value)


def _texts(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise _fail("a column name or a list of column names", value)
    return tuple(value)


def _prefixes(value: Any) -> tuple[str, ...]:
    """train.freeze: one state_dict key prefix or a list of them (``layer1``, ``stem.conv``)."""
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list | tuple) and all(isinstance(v, str) and v.strip(".") for v in value):
        return tuple(value)
    raise _fail("a state_dict key prefix or a list of them, like [stem, layer1]", value)


def _betas(value: Any) -> tuple[float, float]:
    if (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        and all(0 <= v < 1 for v in value)
    ):
        return (float(value[0]), float(value[1]))
    raise _fail("two numbers in [0, 1) like [0.9, 0.999]", value)


def _area_range(value: Any) -> tuple[float, float]:
    """Area fractions of the image: (0, 1], low <= high; the whole image (1.0) is allowed."""
    if (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        and 0 < value[0] <= value[1] <= 1
    ):
        return (float(value[0]), float(value[1]))
    raise _fail("two area fractions 0 < low <= high <= 1 like [0.08, 1.0]", value)


def _pair_positive(value: Any) -> tuple[float, float]:
    if (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in value)
        and value[0] <= value[1]
    ):
        return (float(value[0]), float(value[1]))
    raise _fail("two positive numbers [low, high]", value)


def _class_weights(value: Any) -> str | tuple[float, ...] | None:
    """``balanced`` (scikit-learn's rule, from the train split) or one weight per class."""
    if value is None or value == "balanced":
        return value
    if (
        isinstance(value, list | tuple)
        and len(value) >= 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        and all(0 <= v <= NUMBER_LIMIT for v in value)
        and any(v > 0 for v in value)
    ):
        return tuple(float(v) for v in value)
    raise _fail("balanced, or a list of weights >= 0 (one per class, not all 0)", value)


def _pattern(value: Any) -> str:
    """A regular expression that compiles and cannot match the empty string (re.findall
    would yield an empty word between every two characters)."""
    import re

    if isinstance(value, str) and value:
        try:
            if re.compile(value).fullmatch("") is None:
                return value
        except re.error:
            pass
    raise _fail("a regular expression that matches at least one character", value)


_DATA_FIELDS: dict[str, Callable[[Any], Any]] = {
    "name": word(DATA_SOURCES, prefix="torchvision:"),
    "path": optional(_path),
    "task": word(TASKS),
    "val": _fraction,
    "test": _fraction,
    "seed": integer(0, SEED_LIMIT),
    "resize": _size,
    "normalize": boolean,
    "augment": lambda v: v,  # checked item by item in _augments, which needs the key path
    "label_column": text,
    "path_column": text,
    "targets": _texts,
    "classes": integer(2, MAX_CLASSES + 1),
    "samples": integer(1, MAX_SAMPLES + 1),
    "limit": optional(integer(1)),
    "stratify": boolean,
    "augment_keeps_targets": boolean,
    "ignore_index": integer(0, 65536),
    "text_column": text,
    "vocab_size": optional(integer(3)),
    "min_freq": integer(1),
    "lowercase": boolean,
    "token_pattern": _pattern,
    "target_kind": word(TARGET_KINDS),
    "cache": word(CACHE_MODES),
    "memory_budget": integer(1),
    "workers": optional(integer(0, 257)),
    "sample_augment": lambda v: v,  # checked item by item in _augments
}

_TRAIN_FIELDS: dict[str, Callable[[Any], Any]] = {
    "epochs": integer(1),
    "batch_size": integer(1),
    "eval_batch_size": integer(1),
    "seed": integer(0, SEED_LIMIT),
    "optimizer": word(OPTIMIZERS),
    "lr": number(0, open_low=True),
    "momentum": _fraction,
    "nesterov": boolean,
    "weight_decay": number(0),
    "betas": _betas,
    "scheduler": word(SCHEDULERS),
    "step_size": integer(1),
    "gamma": number(0, open_low=True),
    "warmup_epochs": number(0),
    "min_lr": number(0),
    "label_smoothing": _fraction,
    "clip_grad_norm": optional(number(0, open_low=True)),
    "early_stop": optional(integer(1)),
    "monitor": word(MONITORS),
    "device": word(DEVICES),
    "amp": word(AMP_MODES),
    "channels_last": boolean,
    "compile": boolean,
    "mixup": number(0),
    "cutmix": number(0),
    "mix_prob": probability,
    "mix_switch_prob": probability,
    "mix_epochs": optional(integer(1)),
    "class_weights": _class_weights,
    "sampler": word(SAMPLERS),
    "sync_bn": boolean,
    "init_from": optional(text),
    "init_partial": boolean,
    "freeze": _prefixes,
    "ema": optional(number(0, 1, open_low=True, open_high=True)),
    "ema_warmup": boolean,
    "weight_decay_norm_bias": boolean,
    "accumulate": integer(1, 65536),
    "checkpoint_every": optional(integer(1)),
}

# Each augmentation's arguments and their checkers; a bare name takes the defaults.
_AUGMENT_ARGS: dict[str, dict[str, Callable[[Any], Any]]] = {
    "random_crop": {"padding": integer(0)},  # pad, then crop back to the input size (CIFAR-style)
    "hflip": {"p": probability},
    "random_resized_crop": {"scale": _area_range, "ratio": _pair_positive},
    "alexnet_crop": {},  # random input-sized crop of a larger stored image + flip (AlexNet 2012)
}
# data.sample_augment: per image, torchvision's algorithms (cnnkit.train.data.transforms).
SAMPLE_AUGMENTS = ("random_resized_crop", "hflip", "colour_jitter")
_JITTER = number(0, 1)  # a factor is drawn from [max(0, 1 - value), 1 + value]; 0 is off
_SAMPLE_ARGS: dict[str, dict[str, Callable[[Any], Any]]] = {
    "random_resized_crop": {"scale": _area_range, "ratio": _pair_positive},
    "hflip": {"p": probability},
    "colour_jitter": {"brightness": _JITTER, "contrast": _JITTER, "saturation": _JITTER},
}
_SAMPLE_DEFAULTS: dict[str, dict[str, Any]] = {
    "random_resized_crop": {"scale": (0.08, 1.0), "ratio": (3 / 4, 4 / 3)},
    "hflip": {"p": 0.5},
    "colour_jitter": {"brightness": 0.4, "contrast": 0.4, "saturation": 0.4},
}
_AUGMENT_DEFAULTS: dict[str, dict[str, Any]] = {
    "random_crop": {"padding": 4},
    "hflip": {"p": 0.5},
    "random_resized_crop": {"scale": (0.08, 1.0), "ratio": (3 / 4, 4 / 3)},
    "alexnet_crop": {},
}


def _section(
    raw: Any, table: dict[str, Callable[[Any], Any]], section: str, where: Locator
) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise where.error((section,), f"expected a mapping of keys, got {raw!r}")
    clean: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in table:
            hint = did_you_mean(str(key), table)
            raise where.error((section, key), f"unknown key{hint}; known: {', '.join(table)}")
        try:
            clean[key] = table[key](value)
        except ValueError as err:
            raise where.error((section, key), str(err)) from None
    return clean


def _augments(raw: Any, where: Locator, key: str = "augment") -> tuple[Augment, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise where.error(("data", key), f"expected a list of augmentations, got {raw!r}")
    table, defaults, known = _AUGMENT_ARGS, _AUGMENT_DEFAULTS, AUGMENTS
    if key == "sample_augment":
        table, defaults, known = _SAMPLE_ARGS, _SAMPLE_DEFAULTS, SAMPLE_AUGMENTS
    out = []
    for i, item in enumerate(raw):
        path: KeyPath = ("data", key, i)
        if isinstance(item, str):
            kind, args = item, {}
        elif isinstance(item, dict) and len(item) == 1:
            kind, args = next(iter(item.items()))
            args = {} if args is None else args
        else:
            raise where.error(path, f"expected a name or {{name: {{args}}}}, got {item!r}")
        if kind not in table:
            hint = did_you_mean(str(kind), known)
            raise where.error(path, f"unknown augmentation {kind!r}{hint}; known: {known}")
        if not isinstance(args, dict):
            raise where.error((*path, kind), f"expected a mapping of arguments, got {args!r}")
        checked = dict(defaults[kind])
        checked.update(_section(args, table[kind], "", _Nested(where, (*path, kind))))
        out.append(Augment(kind, checked))
    return tuple(out)


class _Nested:
    """Re-roots a locator so a sub-mapping's errors keep their full key path."""

    def __init__(self, where: Locator, prefix: KeyPath) -> None:
        self.where, self.prefix = where, prefix

    def error(self, path: KeyPath, message: str) -> RecipeError:
        return self.where.error((*self.prefix, *path[1:]), message)


def parse_data(raw: Any, where: Locator) -> DataConfig:
    """Validate a recipe's ``data:`` mapping (None: all defaults) into a ``DataConfig``."""
    clean = _section(raw, _DATA_FIELDS, "data", where)
    clean["augment"] = _augments(clean.get("augment"), where)
    clean["sample_augment"] = _augments(clean.get("sample_augment"), where, "sample_augment")
    config = DataConfig(**clean)
    needs_path = config.name in ("folder", "csv", "npz", "idx", "text")
    if needs_path and config.path is None:
        raise where.error(("data", "name"), f"data source {config.name!r} needs data.path")
    if config.val + config.test >= 1:
        raise where.error(("data", "test"), "data.val + data.test must leave some train data")
    if config.stratify and config.task != "classify":
        raise where.error(("data", "stratify"), "a stratified split needs class labels")
    config = _check_points(config, raw if isinstance(raw, dict) else {}, where)
    _check_regress_augment(config, where)
    _check_stream(config, where)
    config = _check_segment(config, raw if isinstance(raw, dict) else {}, where)
    if config.task == "regress" and config.name == "csv" and not config.targets:
        raise where.error(("data", "task"), "regress from csv needs data.targets (column names)")
    return config


def _check_regress_augment(config: DataConfig, where: Locator) -> None:
    """Flips and crops move the image but not the targets: coordinate targets would silently
    be wrong. cnnkit cannot tell coordinates from, say, brightness, so the user opts in."""
    moving = [a.kind for a in (*config.augment, *config.sample_augment) if a.kind in GEOMETRIC]
    if config.task != "regress" or config.target_kind == "points":
        return  # points move with the image (cnnkit.train.data.points); _check_stream
    if moving and not config.augment_keeps_targets:
        raise where.error(
            ("data", "augment"),
            f"{moving[0]} moves the image but not the regression targets (coordinates would "
            "be wrong); remove it, set data.target_kind: points if the targets are (x, y) "
            "pixel coordinates, or set data.augment_keeps_targets: true if the targets "
            "do not change when the image is flipped or cropped",
        )


def _check_points(config: DataConfig, raw: Mapping[str, Any], where: Locator) -> DataConfig:
    """``dots`` has coordinate targets (points unless stated); points need task regress and
    say the opposite of ``augment_keeps_targets``, so the two together are refused."""
    if config.name == "dots":
        if config.task != "regress":
            raise where.error(
                ("data", "task"), "the dots data set has coordinate targets: set data.task: regress"
            )
        if "target_kind" not in raw:
            config = replace(config, target_kind="points")
    if config.target_kind != "points":
        return config
    if config.task != "regress":
        raise where.error(("data", "target_kind"), "points are regression targets (task regress)")
    if config.augment_keeps_targets:
        raise where.error(
            ("data", "augment_keeps_targets"),
            "points move with the image; augment_keeps_targets says targets do not: drop one",
        )
    return config


def _check_stream(config: DataConfig, where: Locator) -> None:
    """Only sources of image files can be decoded per item; the rest are read whole."""
    if config.cache == "stream" and config.name not in STREAM_SOURCES:
        raise where.error(
            ("data", "cache"),
            f"only {' and '.join(STREAM_SOURCES)} (image files) can stream; {config.name} is "
            "read into memory whole: use data.cache: memory or auto",
        )
    if config.sample_augment and config.cache != "stream":
        raise where.error(
            ("data", "sample_augment"),
            "per-image augmentation runs in the streaming workers: it needs data.cache: stream",
        )


SEGMENT_SOURCES = ("shapes", "folder", "csv")
# Geometric augmentations that move a mask with its image (cnnkit.train.data.segment_augment);
# any other geometric kind is refused for task segment rather than moving the image alone.
PAIRED_AUGMENTS = ("hflip", "random_crop", "random_resized_crop", "alexnet_crop")
SHAPES_CLASSES = 4  # background, circle, square, triangle


def _check_segment(config: DataConfig, raw: Mapping[str, Any], where: Locator) -> DataConfig:
    """Masks index ``data.classes`` classes: stated for files (so an index past it is found per
    file before training), background plus up to three shapes for ``shapes``."""
    if config.name == "shapes" and config.task != "segment":
        raise where.error(("data", "task"), "the shapes data set has masks: set data.task: segment")
    if config.task != "segment":
        return config
    unpaired = [a.kind for a in config.augment if a.kind in GEOMETRIC - set(PAIRED_AUGMENTS)]
    if unpaired:
        raise where.error(
            ("data", "augment"), f"{unpaired[0]} cannot move the masks with the images yet"
        )
    if config.name not in SEGMENT_SOURCES:
        raise where.error(
            ("data", "name"), f"task segment reads {', '.join(SEGMENT_SOURCES)}, not {config.name}"
        )
    if "classes" not in raw:
        if config.name != "shapes":
            raise where.error(
                ("data", "classes"),
                "task segment needs data.classes: how many classes the masks index, "
                "background included",
            )
        return replace(config, classes=SHAPES_CLASSES)
    if config.name == "shapes" and config.classes > SHAPES_CLASSES:
        raise where.error(
            ("data", "classes"), f"shapes has at most {SHAPES_CLASSES} classes (background + 3)"
        )
    if config.ignore_index < config.classes:
        raise where.error(
            ("data", "ignore_index"),
            f"{config.ignore_index} is a class index (classes: {config.classes})",
        )
    return config


def parse_train(raw: Any, where: Locator) -> TrainConfig:
    """Validate a recipe's ``train:`` mapping (None: all defaults) into a ``TrainConfig``."""
    config = TrainConfig(**_section(raw, _TRAIN_FIELDS, "train", where))
    if config.amp == "fp16" and config.device == "cpu":
        raise where.error(("train", "amp"), "fp16 autocast needs a GPU; use bf16 or off on cpu")
    return config


# train: keys that need class labels, and the tasks each one takes.
_LABEL_KEYS = {
    "mixup": ("classify",),
    "cutmix": ("classify",),
    "sampler": ("classify",),
    "class_weights": ("classify", "segment"),
}


def check_train_task(train: TrainConfig, data: DataConfig, where: Locator) -> None:
    """Refuse a ``train:`` key the data's task cannot use (mixing and a balanced draw need one
    label per image; class weights need classes), naming the key."""
    used = {
        "mixup": train.mixup > 0,
        "cutmix": train.cutmix > 0,
        "sampler": train.sampler != "shuffle",
        "class_weights": train.class_weights is not None,
    }
    for key, tasks in _LABEL_KEYS.items():
        if used[key] and data.task not in tasks:
            raise where.error(
                ("train", key),
                f"needs data.task {' or '.join(tasks)} (class labels), not {data.task}",
            )
    if train.checkpoint_every is not None and (train.mixup > 0 or train.cutmix > 0):
        raise where.error(
            ("train", "checkpoint_every"),
            "a mid-epoch checkpoint does not yet keep mixup/cutmix's random draws, so its "
            "resume would not be exact; remove train.checkpoint_every or the mixing",
        )


def check_monitor(data: DataConfig, train: TrainConfig, where: Locator) -> None:
    """A segmentation score cannot pick the best epoch of a run that has no masks."""
    if train.monitor in SEGMENT_MONITORS and data.task != "segment":
        raise where.error(
            ("train", "monitor"),
            f"{train.monitor} scores segmentation (data.task: segment), not task {data.task}; "
            "use val_loss or val_accuracy",
        )


def to_plain(config: DataConfig | TrainConfig) -> dict[str, Any]:
    """The config as YAML-ready plain data (tuples as lists), for the run's resolved recipe."""

    def plain(value: Any) -> Any:
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    out = {f.name: plain(getattr(config, f.name)) for f in fields(config)}
    if isinstance(config, DataConfig):
        out["augment"] = [{a.kind: plain(dict(a.args))} for a in config.augment]
        out["sample_augment"] = [{a.kind: plain(dict(a.args))} for a in config.sample_augment]
    return out


__all__ = [
    "Augment",
    "DataConfig",
    "TrainConfig",
    "Locator",
    "NoLocation",
    "parse_data",
    "parse_train",
    "check_train_task",
    "to_plain",
]
