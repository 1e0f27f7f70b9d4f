"""A fork server that runs ``cnnkit`` cases in child processes with the imports done once.

``python -m tests.fuzz.worker`` imports cnnkit and torch (about 3 s), then reads one JSON case
per line on stdin and answers one JSON result per line on stdout. Each case runs in a fresh
``fork()`` child, so it is a real process with its own exit code, memory and CPU time, but it
starts in milliseconds instead of paying the torch import again. The child calls
``cnnkit.cli.app.main`` exactly as the console script does; the server watches it and kills it
past its CPU, wall-clock or memory limit.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import resource
import signal
import sys
import time
import traceback

PRELOAD = (
    "cnnkit.cli.app",
    "torch",
    "torch._dynamo",
    "numpy",
    "yaml",
    "PIL.Image",
    "pandas",
    "rich.progress",
    "cnnkit.train.plan",
    "cnnkit.train.experiment",
    "cnnkit.train.evaluate",
    "cnnkit.measure.profiling",
)
WARM_UP = (
    ("conv", "--input", "3x32x32", "--kernel", "3", "--out-channels", "4"),
    ("conv", "--input", "8", "--kernel", "3", "--target", "8", "--json"),
    ("conv", "--x", "1 2; 3 4", "--w", "1"),
    ("rf", "--layers", "conv k=3; maxpool k=2", "--input", "32", "--json"),
    ("params", "lenet", "--json"),
    ("recipes", "resnet18"),
    ("recipes",),
    ("nosuchcommand",),
)
POLL_S = 0.01
OUTPUT_BYTES = 32 << 20  # stdout read back whole up to this (a --json document is checked)


def _preload() -> None:
    """Import what most cases need once, before any fork (never run a torch op here:
    OpenMP pools created before fork() do not survive into the child)."""
    import importlib

    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def _warm_up() -> None:
    """Run a few pure commands once so that the children start with their lazy imports and
    caches done (each case then costs tens of milliseconds, not a third of a second)."""
    import contextlib
    import io

    from cnnkit.cli.app import main

    for argv in WARM_UP:
        quiet = contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO())
        with quiet[0], quiet[1], contextlib.suppress(SystemExit):
            main(list(argv))


def _rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` in MiB (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return 0.0


def _child(case: dict) -> None:
    """In the forked child: redirect, limit, run the CLI and leave with its exit code."""
    os.setsid()  # its own process group, so the server can kill data-loader workers too
    sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    os.chdir(case["dir"])
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    for fd, name in ((1, "stdout"), (2, "stderr")):
        os.dup2(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
    cpu = int(case["cpu_s"])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 2))
    limit = int(case["as_mb"]) << 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    os.environ.update(case.get("env", {}))
    if case.get("spawn"):  # a fresh interpreter, exactly as a user runs it
        os.execv(sys.executable, [sys.executable, "-m", "cnnkit", *case["argv"]])
    sys.argv = ["cnnkit", *case["argv"]]
    code = 0
    try:
        if case.get("python"):  # preparing an input that needs torch (a crafted checkpoint)
            exec(compile(case["python"], "<case>", "exec"), {"__name__": "__case__"})
        else:
            from cnnkit.cli.app import main

            main(list(case["argv"]))
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        if isinstance(done.code, str):
            sys.stderr.write(done.code + "\n")
    except BaseException:  # what Python itself would do with an uncaught exception
        traceback.print_exc()
        code = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code & 0xFF)


def _watch(pid: int, case: dict) -> dict:
    """Wait for the child; kill its group past the wall-clock or memory limit."""
    start = time.monotonic()
    peak, killed = 0.0, None
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            break
        peak = max(peak, _rss_mb(pid))
        if killed is None and peak > case["rss_mb"]:
            killed = "memory"
        elif killed is None and time.monotonic() - start > case["wall_s"]:
            killed = "hang"
        if killed:
            os.killpg(pid, signal.SIGKILL)
            _, status, usage = os.wait4(pid, 0)
            break
        time.sleep(POLL_S)
    wall = time.monotonic() - start
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)  # stray grandchildren (data-loader workers)
    sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0
    if sig == signal.SIGXCPU and killed is None:
        killed = "hang"
    return {
        "code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else -sig,
        "signal": sig,
        "killed": killed,
        "wall_s": round(wall, 3),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
        "maxrss_mb": round(max(peak, usage.ru_maxrss / 1024), 1),
    }


def _read(path: str, limit: int) -> str:
    try:
        with open(path, "rb") as file:
            return file.read(limit).decode("utf-8", "replace")
    except OSError:
        return ""


def run_case(case: dict) -> dict:
    """Fork, run ``case`` in the child, and describe what happened."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        _child(case)
    result = _watch(pid, case)
    for name, limit in (("stdout", OUTPUT_BYTES), ("stderr", 64_000)):
        result[name] = _read(os.path.join(case["dir"], name), limit)
    result["stdout_cut"] = os.path.getsize(os.path.join(case["dir"], "stdout")) > OUTPUT_BYTES
    return result


def serve() -> None:
    """One JSON case per stdin line -> one JSON result per stdout line."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")
    os.environ.pop("CNNKIT_DEBUG", None)
    os.environ["COLUMNS"] = "120"
    _preload()
    _warm_up()
    gc.freeze()  # children then share the preloaded objects instead of copying their pages
    channel = sys.stdout
    sys.stdout = sys.stderr  # nothing but results may reach the channel
    channel.write(json.dumps({"ready": True}) + "\n")
    channel.flush()
    for line in sys.stdin:
        if line.strip():
            channel.write(json.dumps(run_case(json.loads(line))) + "\n")
            channel.flush()


if __name__ == "__main__":
    serve()
