"""Running one measurement in a fresh Python process (`python -m qwen_pipe.measure.process JOB RESULT`),
watched from the parent: the memory of the child's whole process tree (host RSS; GPU memory through NVML)
is sampled while it runs, and every process of the tree is remembered for the cleanup check.

The child's output (the engine's own logs) goes to a log file, and to our stderr as well with
QWEN_PIPE_VERBOSE=1; when the child fails, the end of its log is printed to stderr.
"""

from __future__ import annotations

import collections
import contextlib
import importlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from qwen_pipe.measure.gpu import Gpu

TIMEOUT_S = 3600.0
SAMPLE_INTERVAL_S = 0.1
LOG_TAIL_LINES = 200  # printed to stderr when the child fails


def tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


class TreeMonitor:
    """Samples, in the parent, the RSS of a process tree and the GPU memory it holds, until stopped."""

    def __init__(
        self, pid: int, gpu: Gpu | None, gpu_baseline: int | None, interval_s: float = SAMPLE_INTERVAL_S
    ):
        self.pid, self.gpu, self.gpu_baseline, self.interval_s = pid, gpu, gpu_baseline, interval_s
        self.peak_rss = 0
        self.peak_gpu_process = 0  # NVML per-process memory of the tree
        self.peak_gpu_device = 0  # device used memory above the baseline
        self.seen: dict[int, float] = {}  # pid -> create_time of every process of the tree
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        rss = 0
        for process in tree(self.pid):
            with contextlib.suppress(psutil.Error):
                rss += process.memory_info().rss
                self.seen.setdefault(process.pid, process.create_time())
        self.peak_rss = max(self.peak_rss, rss)
        if self.gpu:
            with contextlib.suppress(Exception):
                self.peak_gpu_process = max(self.peak_gpu_process, self.gpu.process_memory(set(self.seen)))
                self.peak_gpu_device = max(
                    self.peak_gpu_device, self.gpu.memory()[0] - (self.gpu_baseline or 0)
                )

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval_s)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def survivors(self) -> list[int]:
        alive = []
        for pid, created in self.seen.items():
            with contextlib.suppress(psutil.Error):
                process = psutil.Process(pid)
                if process.create_time() == created and process.status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
        return alive


@dataclass
class Isolated:
    """What one fresh-process run returned, and what the parent saw of it."""

    status: str  # "ok" | "error"
    payload: dict
    exitcode: int | None
    wall_seconds: float
    startup_seconds: float | None  # process spawn to the first line of the target (interpreter, imports)
    peak_rss: int
    peak_gpu_process: int
    peak_gpu_device: int
    monitor: TreeMonitor
    log_tail: list[str] = field(default_factory=list)
    log: Path | None = None


def run_in_fresh_process(
    target: str | Callable[..., dict],
    args: dict,
    gpu: Gpu | None,
    gpu_baseline: int | None = None,
    timeout_s: float = TIMEOUT_S,
    log: Path | None = None,
) -> Isolated:
    """Run `target(**args)` (a function, or "module:function") in a fresh interpreter. Its output goes to
    `log` (rewritten; also to our stderr when verbose), or to our stderr without a log. Pass the function
    itself where you can: the import shows dvc.yaml's code deps that the child runs it (codedeps.py)."""
    if callable(target):
        target = f"{target.__module__}:{target.__qualname__}"
    echo = log is None
    if log is not None:
        from qwen_pipe.console import verbose  # imported here: it needs typer, which gpu_check.sh may lack

        echo = verbose()
        log.parent.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix="qwen-pipe-child-") as folder,
        open(log or os.devnull, "w", encoding="utf-8", buffering=1) as log_file,
    ):
        job, result = Path(folder) / "job.json", Path(folder) / "result.json"
        spawned = time.time()
        job.write_text(json.dumps({"target": target, "args": args, "spawned": spawned}), encoding="utf-8")
        env = {**os.environ, "QWEN_PIPE_PROGRESS": os.environ.get("QWEN_PIPE_PROGRESS", "0")}
        started = time.perf_counter()
        child = subprocess.Popen(
            [sys.executable, "-m", "qwen_pipe.measure.process", str(job), str(result)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            env=env,
        )
        tail: collections.deque[str] = collections.deque(maxlen=40)

        def forward() -> None:
            assert child.stdout is not None
            for line in child.stdout:
                tail.append(line.rstrip())
                log_file.write(line)
                if echo:
                    sys.stderr.write(line)

        reader = threading.Thread(target=forward, daemon=True)
        reader.start()
        monitor = TreeMonitor(child.pid, gpu, gpu_baseline)
        monitor.start()
        try:
            child.wait(timeout=timeout_s)
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
            for process in reversed(tree(child.pid)):
                with contextlib.suppress(psutil.Error):
                    process.kill()
            child.wait()
        wall = time.perf_counter() - started
        monitor.stop()
        reader.join(timeout=5)
        if result.is_file():
            answer = json.loads(result.read_text(encoding="utf-8"))
            status, payload = answer["status"], answer["payload"]
            startup = answer.get("entered", spawned) - spawned
        else:
            why = f"timed out after {timeout_s:.0f} s" if timed_out else f"exit code {child.returncode}"
            status, payload, startup = (
                "error",
                {
                    "type": "ChildDied",
                    "message": f"the measuring process ended ({why}) without a result",
                    "log_tail": list(tail)[-15:],
                },
                None,
            )
    if status != "ok" and not echo:
        show_log(log)
    return Isolated(
        status,
        payload,
        child.returncode,
        wall,
        startup,
        monitor.peak_rss,
        monitor.peak_gpu_process,
        monitor.peak_gpu_device,
        monitor,
        list(tail),
        log,
    )


def show_log(path: Path, lines: int = LOG_TAIL_LINES) -> None:
    """The end of a failed child's log on stderr, so that the failure explains itself."""
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    what = f"the last {lines} of {len(text)} lines of {path}" if len(text) > lines else str(path)
    print(f"--- {what} ---", *text[-lines:], f"--- end of {path} ---", sep="\n", file=sys.stderr)


def _child_main(job_path: str, result_path: str) -> int:
    entered = time.time()
    job = json.loads(Path(job_path).read_text(encoding="utf-8"))
    module, function = job["target"].split(":")
    try:
        payload = getattr(importlib.import_module(module), function)(**job["args"])
        answer = {"status": "ok", "payload": payload, "entered": entered}
        code = 0
    except BaseException as error:  # noqa: BLE001 - every failure is reported to the parent
        traceback.print_exc()  # into the log, next to the engine's own lines
        answer = {
            "status": "error",
            "entered": entered,
            "payload": {
                "type": type(error).__name__,
                "message": str(error)[:500],
                "trace": traceback.format_exc()[-2000:],
            },
        }
        code = 1
    Path(result_path).write_text(json.dumps(answer), encoding="utf-8")
    return code


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1], sys.argv[2]))
