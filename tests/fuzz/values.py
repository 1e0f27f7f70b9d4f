"""Hostile and plausible command-line values, and random argument lists for every command.

Each option has a *kind*; a value of that kind is plausible half of the time (so a case gets
past the first check and reaches deeper code) and hostile the other half: negative, zero,
huge, ``1e9``, NaN, inf, empty, unicode, control characters, paths that do not exist,
directories where files belong. Values that would only ask for long but legitimate work
(``--iters 1e9``, a trillion epochs) are left out: a long run on request is not a hang.
"""

from __future__ import annotations

import random

# Tokens that are wrong for almost every option.
JUNK = (
    "", " ", "-1", "0", "-0", "1e9", "1e20", "1e309", "-1e309", "nan", "NaN", "inf", "-inf",
    "9" * 80, "0x10", "1_000", "+3", " 8 ", "8\n", "٣", "３", "é", "\u202e3", "\x07", "\x1b[31m",
    "\t", "a" * 5000, "[1, 2]", "{", "}", "~", "null", "true", "%s%n", "$(touch pwned)", "-",
    "--", "--json", "nope", "ñ/../..", "/", "/dev/null",
)  # fmt: skip
PATHS = (
    "missing.yaml", "dir", "dir/", "", "/", "/dev/null", "/dev/zero", "file.txt", "..", "~",
    "missing/deep/x.pt", "tiny.yaml", "a\nb", "é.yaml", "x" * 300,
)  # fmt: skip
SIZES = ("8", "28", "3x8x8", "1x16x16", "32x32", "5x5", "3x224x224", "1x28", "2x2x2x2")
HUGE_SIZES = (
    "1000000000", "1e9", "3x1000000000", "100000x100000", "2147483648", "9223372036854775808",
    "3x0x8", "0x0", "x", "3x", "x3", "3xx3", "1.5", "3x" * 30 + "3", "3X3", "3*3", "3 x 3",
)  # fmt: skip
TARGETS_PURE = (
    "lenet", "lenet1998", "deepconv", "textcnn", "alexnet", "vgg16", "resnet18", "LENET",
    "lenet ", "lenet.yaml", "nosuchnet", "torchvision:resnet18", "torchvision:", "timm:x",
    "tiny.yaml", "bad.yaml", "text.yaml", "/dev/zero", "/dev/null", "dir", "file.txt", "",
    "/proc/self/status", "x.npy",
)  # fmt: skip
SET_KEYS = (
    "input", "model.layers[0].conv.out", "model.layers[0]", "model.layers[0].conv.k",
    "model.layers[99]", "model.layers[-1]", "model.depth", "model.width", "model", "train.lr",
    "train.batch_size", "train.optimizer", "train.device", "data.name", "data.path", "data.val",
    "", "a..b", "x[", "[0]", "train.lr.x", "model.layers", "é", "train", "data",
)  # fmt: skip
SET_VALUES = (
    "1e20", "-1", ".nan", "nan", "[", "{a: *b}", "&a [*a]", "!!python/object/apply:os.system "
    "['touch pwned']", "~", "[1, 2]", "{}", "'", "0", "4", "[1, 8, 8]", "[1, 1000000000, 1e9]",
    "relu", "{conv: 1e10}", "{conv: {out: 1e20, k: 3}}", "1" * 100, "\x07", "${1/0}", "sgd",
)  # fmt: skip


def pick(
    rng: random.Random, plausible: tuple[str, ...], hostile: tuple[str, ...] = (), junk: bool = True
) -> str:
    """Half plausible, half hostile (the kind's own hostile values or the common junk)."""
    if rng.random() < 0.5:
        return rng.choice(plausible)
    if hostile and (not junk or rng.random() < 0.6):
        return rng.choice(hostile)
    return rng.choice(JUNK)


def set_value(rng: random.Random) -> str:
    """One ``--set KEY=VALUE`` (sometimes without ``=``)."""
    key, value = rng.choice(SET_KEYS), rng.choice(SET_VALUES)
    return key if rng.random() < 0.1 else f"{key}={value}"


def matrix(rng: random.Random) -> str:
    """A numeric matrix for ``conv --x/--w``: small ones, malformed ones and large ones."""
    return pick(
        rng,
        ("1 2 3; 4 5 6; 7 8 9", "1 0; 0 -1", "1 2 3", "1 2; 3 4 |5 6; 7 8", "1 || 2", "1;"),
        (
            ";", "|", "||", "1 2; 3", "nan inf", "1e308 1e308; 1e308 1e308", "x.csv", "x.npy",
            "1 " * 3000, "; ".join(["1 " * 60] * 60), "1,2", "[1 2]", "1e400", "0x1",
        ),
    )  # fmt: skip


KINDS = {
    "size": lambda r: pick(r, SIZES, HUGE_SIZES),
    "int": lambda r: pick(r, ("1", "2", "3"), ("-1", "0", "99999999999999999999", "1e3", "")),
    "pad": lambda r: pick(r, ("0", "1", "same", "valid", "full", "1x2"), ("-1", "1e9", "SAME")),
    "layer": lambda r: pick(r, ("conv", "convtranspose", "deconv", "maxpool", "avgpool")),
    "matrix": matrix,
    "pair": lambda r: pick(r, ("0,0", "1,1", "0 0"), ("-1,-1", "99,99", "1e9,0", "0")),
    "numlist": lambda r: pick(r, ("0", "1", "0.5 1"), ("nan", "1 2 3 4 5 6 7 8", "x")),
    "path": lambda r: rng_path(r),
    "set": set_value,
    "device": lambda r: pick(r, ("cpu", "auto"), ("cuda", "mps", "fp8", "cuda:99", "cpu:0")),
    "dtype": lambda r: pick(r, ("fp32", "fp16", "bf16", "fp64"), ("fp8", "int8", "FP32")),
    "optimizer": lambda r: pick(r, ("sgd", "adam", "sgd-nomomentum"), ("adamw2", "SGD")),
    "amount": lambda r: pick(r, ("5e6", "5M", "1.2G", "512MiB", "1.5GB"), ("5X", "M", "1e400")),
    "batches": lambda r: pick(r, ("1", "1,2", "2"), ("1e9", "1,,2", ",", "2147483648", "0")),
    # no junk: --iters 10**80 is a long run on request, not a hang
    "small": lambda r: pick(r, ("0", "1", "2"), ("-1", "x", "", "1.5", "nan", "-0"), junk=False),
    "accuracy": lambda r: pick(r, ("0.5", "97%", "0"), ("150%", "%", "-1", "2")),
    "split": lambda r: pick(r, ("train", "val", "test"), ("all", "TEST")),
    "data": lambda r: pick(
        r, ("synthetic", "digits"), ("npz:nope.npz", "npz:", ":", "csv:dir", "idx:/dev/null")
    ),
    "mode": lambda r: pick(r, ("infer", "train"), ("both", "eval")),
    "sweep": lambda r: pick(r, ("train.lr=0.1,0.01",), ("train.lr=", "=1", "x", "a=b,c")),
    "out": lambda r: pick(r, ("out", "runs/x"), ("", "dir", "file.txt", "/dev/null", "/proc/x")),
    "name": lambda r: pick(r, ("c1", "output", "layer3.5.add"), ("nope", "")),
    "depth": lambda r: pick(r, ("1", "2"), ("-1", "0", "1e9", "x")),
}


def rng_path(rng: random.Random) -> str:
    return rng.choice(PATHS)


# (flag, kind); kind None is a flag that takes no value.
FLAGS: dict[str, tuple[tuple[str, str | None], ...]] = {
    "conv": (
        ("--input", "size"), ("--kernel", "size"), ("--stride", "size"), ("--padding", "pad"),
        ("--dilation", "size"), ("--layer", "layer"), ("--output-padding", "size"),
        ("--ceil-mode", None), ("--no-count-include-pad", None), ("--dims", "int"),
        ("--out-channels", "int"), ("--groups", "int"), ("--target", "size"), ("--x", "matrix"),
        ("--w", "matrix"), ("--bias", "numlist"), ("--xcorr", None), ("--explain", "pair"),
        ("--json", None), ("-k", "size"), ("-i", "size"),
    ),
    "rf": (
        ("--layers", "rflayers"), ("--input", "size"), ("--at", "name"), ("--set", "set"),
        ("--all", None), ("--json", None), ("--verify", None),
    ),
    "params": (
        ("--set", "set"), ("--input", "size"), ("--batch", "int"), ("--dtype", "dtype"),
        ("--optimizer", "optimizer"), ("--depth", "depth"), ("--max-params", "amount"),
        ("--max-macs", "amount"), ("--max-memory", "amount"), ("--csv", "out"),
        ("--markdown", "out"), ("--json", None),
    ),
    "recipes": (("--set", "set"), ("--json", None)),
    "train": (
        ("--set", "set"), ("--out", "out"), ("--overwrite", None), ("--runs", "out"),
        ("--resume", "out"), ("--grad-stats", None), ("--json", None), ("--sweep", "sweep"),
        ("--print-config", None), ("--tensorboard", None),
    ),
    "eval": (
        ("--data", "data"), ("--split", "split"), ("--set", "set"), ("--top-k", "int"),
        ("--device", "device"), ("--min-accuracy", "accuracy"), ("--csv", None),
        ("--json", None),
    ),
    "profile": (
        ("--device", "device"), ("--batch", "batches"), ("--mode", "mode"), ("--dtype", "dtype"),
        ("--channels-last", None), ("--warmup", "small"), ("--iters", "small"),
        ("--layers", None), ("--set", "set"), ("--json", None),
    ),
}  # fmt: skip
POSITIONAL = {
    "rf": TARGETS_PURE + ("run", "run/best.pt"),
    "params": TARGETS_PURE + ("run", "run/best.pt", "run/recipe.yaml"),
    "recipes": TARGETS_PURE + ("run",),
    "train": ("tiny.yaml", "bad.yaml", "text.yaml", "missing.yaml", "dir", "", "/dev/zero"),
    "eval": ("run", "run/best.pt", "run/last.pt", "tiny.yaml", "dir", "missing.pt", ""),
    # small models only: profiling a mutated AlexNet at batch 32 is slow, not stuck
    "profile": ("tiny.yaml", "run", "lenet", "deepconv", "text.yaml", "missing.yaml", ""),
}
RF_LAYERS = (
    "conv k=3; conv k=3; maxpool k=2", "conv k=11 s=4; maxpool k=3 s=2; conv k=5 p=2",
    "conv k=1000000000", "conv k=3 d=1000000000", "conv k=3 s=0", "conv", ";", "", "pool k=2",
    "conv k=3 p=-1", "conv k=nan", "conv k=3 s=2; " * 200, "conv k=3 x=1", "conv k==3",
)  # fmt: skip
KINDS["rflayers"] = lambda r: r.choice(RF_LAYERS)
# Each train case trains a 1x8x8 model on 60 synthetic images for one epoch at most.
TRAIN_TAIL = ("--set", "train.epochs=1", "--set", "data.samples=60")


def value(rng: random.Random, kind: str) -> str:
    return KINDS[kind](rng)


def argv(rng: random.Random) -> list[str]:
    """A random command line: a command, maybe a target, a few options, maybe junk."""
    command = rng.choice([*FLAGS, *FLAGS, "top"])
    if command == "top":
        return rng.choice(
            [[], ["--version"], ["--help"], ["nope"], ["-x"], ["conv", "--help"], ["\x07"]]
        )
    args = [command]
    if command in POSITIONAL and rng.random() < 0.85:
        args.append(rng.choice(POSITIONAL[command]))
    for _ in range(rng.randint(0, 5)):
        flag, kind = rng.choice(FLAGS[command])
        args += [flag] if kind is None else [flag, value(rng, kind)]
    if rng.random() < 0.1:
        args.insert(rng.randint(1, len(args)), rng.choice(("--nope", "-z", "--json=1", "extra")))
    if command == "train" and "--resume" not in args:
        args += TRAIN_TAIL
    return args
