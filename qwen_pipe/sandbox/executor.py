"""Run model-written programs against their tests in the sandbox, many workers at a time.

A `Program` is the untrusted `source` plus, usually, trusted `test` code. With a test, the test runs in
the judge (outside the sandbox) against the functions the source defines, and the program passes only
if the test runs to completion. Without one, the source itself is the whole program and passes if it
loads without an exception (a weaker, in-process verdict: it resists exits, prints and atexit tricks,
but not code that impersonates the wire protocol).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from qwen_pipe.sandbox import isolation as iso
from qwen_pipe.sandbox.runner import FrameError, FrameReader, send_frame

JUDGE_SLACK_S = 120.0  # past a program's timeout: starting a sandbox, its exit report, slack
_BOOT = "import sys; sys.path.insert(0, sys.argv[2]); from qwen_pipe.sandbox.judge import main; main(int(sys.argv[1]))"


@dataclass(frozen=True)
class Program:
    id: str
    source: str  # the model's code: runs in the sandbox
    timeout_s: float = 10.0  # wall clock for loading the source and running every test
    test: str | None = None  # trusted test code, run by the judge against the source's names
    context: str = ""  # trusted code run in the judge before the test (e.g. a prompt's helper functions)
    entry_point: str | None = None  # the name under test: always the candidate's (over context, builtins)
    setup: str = ""  # code run in the sandbox after the source (e.g. MBPP's test_setup_code)
    prefetch: str = ""  # the test's variable listing, in order, the argument lists it calls entry_point with
    memoize: tuple[str, ...] = ()  # pure functions the test defines whose results may be cached on disk


@dataclass
class ProgramResult:
    id: str
    status: str  # pass | fail | error | timeout | crash
    passed: bool
    duration_s: float
    output: str = ""  # what the program printed (stdout and stderr): its first bytes and a short tail
    detail: str = ""  # why it did not pass: the assertion, the exception, the limit reached
    timeout_s: float = 0.0
    cpu_s: float | None = None
    isolation: str = ""
    output_bytes: int = 0  # how much it printed in all


@dataclass(frozen=True)
class SandboxConfig:
    """The limits every program runs under."""

    isolation: str = "auto"  # auto | bwrap | unshare | none
    memory_bytes: int = 4 << 30  # address space of each process (RLIMIT_AS)
    total_memory_bytes: int = 4 << 30  # all of a program's processes together (see docs/sandbox.md)
    memory_control: str = "auto"  # auto | cgroup | watchdog: how the total is enforced
    processes: int = 64  # processes of a program (cgroup pids.max; also RLIMIT_NPROC of the candidates' uid)
    file_bytes: int = 64 << 20  # largest file a program may write
    open_files: int = 256
    output_bytes: int = 8192  # of stdout+stderr kept per program: the first bytes and a short tail
    tmpfs_bytes: int = 512 << 20  # the sandbox's writable /tmp
    uid: int = 65534  # the uid candidates run as when the scorer is root
    cache_dir: str | None = None  # the judge's cache: `memoize` results, compiled tests (None: no cache)

    def resolved(self) -> iso.Isolation:
        return iso.resolve(self.isolation)


def isolation_mode(config: SandboxConfig | None = None) -> dict:
    """What the sandbox guarantees on this machine, for the metrics (probes the isolation once)."""
    config = config or SandboxConfig()
    control = iso.memory_control(config.memory_control)
    memory = iso.memory_bound(control, config.total_memory_bytes, config.memory_bytes, config.processes)
    return iso.describe(config.resolved(), config.uid, memory)


class _JudgeProcess:
    """A judge subprocess and the socket the scorer talks to it over."""

    def __init__(self, isolation: iso.Isolation, config: SandboxConfig):
        self.link, theirs = socket.socketpair()
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - the judge's stderr, kept while it runs
        root = str(Path(__file__).resolve().parents[2])
        self.process = subprocess.Popen(
            [sys.executable, "-c", _BOOT, str(theirs.fileno()), root],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
            start_new_session=True,
        )
        theirs.close()
        self.reader = FrameReader(self.link)
        send_frame(self.link, pickle.dumps((isolation, asdict(config))))

    def run(self, job: dict) -> dict:
        send_frame(self.link, pickle.dumps(job))
        body = self.reader.read(time.monotonic() + job["timeout_s"] + JUDGE_SLACK_S)
        if body is None:
            raise FrameError("the judge exited")
        return pickle.loads(body)

    def log_tail(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-1000:]

    def close(self) -> None:
        self.link.close()  # the judge sees EOF, stops its sandbox and exits
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.log.close()


def _result(program: Program, outcome: dict, mode: str) -> ProgramResult:
    return ProgramResult(
        id=program.id,
        status=outcome["status"],
        passed=outcome["status"] == "pass",
        duration_s=outcome.get("duration_s", 0.0),
        output=outcome.get("output", ""),
        detail=outcome.get("detail", ""),
        timeout_s=program.timeout_s,
        cpu_s=outcome.get("cpu_s"),
        isolation=mode,
        output_bytes=outcome.get("output_bytes", 0),
    )


_idle: dict[tuple, list[_JudgeProcess]] = {}  # judges kept between calls inside `keep_judges()`
_kept = 0
_lock = threading.Lock()


@contextlib.contextmanager
def keep_judges() -> Iterator[None]:
    """Within this block, run_programs reuses its judges and their warm sandboxes across calls.

    Outside any such block every call starts its own and stops them before it returns, so no process
    outlives it. Use it around many small calls (a score stage scoring in chunks, calibrate then run).
    """
    global _kept
    with _lock:
        _kept += 1
    try:
        yield
    finally:
        with _lock:
            _kept -= 1
            closing = [j for judges in _idle.values() for j in judges] if _kept == 0 else []
            if _kept == 0:
                _idle.clear()
        for judge in closing:
            judge.close()


def _borrow(key: tuple) -> _JudgeProcess | None:
    with _lock:
        judges = _idle.get(key)
        return judges.pop() if judges else None


def _give_back(key: tuple, judge: _JudgeProcess) -> None:
    with _lock:
        if _kept:
            _idle.setdefault(key, []).append(judge)
            return
    judge.close()


def _worker(jobs: queue.Queue, results: list, isolation: iso.Isolation, config: SandboxConfig) -> None:
    key = (isolation, config)
    judge: _JudgeProcess | None = None
    try:
        while True:
            try:
                index, program = jobs.get_nowait()
            except queue.Empty:
                return
            judge = judge or _borrow(key) or _JudgeProcess(isolation, config)
            job = {**asdict(program), "seed": 0}
            try:
                outcome = judge.run(job)
            except (OSError, FrameError, EOFError, pickle.UnpicklingError) as error:
                detail = f"judge failed ({type(error).__name__}: {error}); {judge.log_tail()}"
                judge.close()
                judge = None
                outcome = {"status": "error", "detail": detail}
            results[index] = _result(program, outcome, isolation.mode)
    finally:
        if judge is not None:
            _give_back(key, judge)


def run_programs(
    programs: Sequence[Program], workers: int | None = None, config: SandboxConfig | None = None
) -> list[ProgramResult]:
    """Run every program in the sandbox; one result per program, in input order.

    Programs start in order of their time limits, longest first (with calibrated limits, that is the
    order of their expected runtimes), so the workers finish together.
    """
    config = config or SandboxConfig()
    isolation = config.resolved()
    jobs: queue.Queue = queue.Queue()
    for index in sorted(range(len(programs)), key=lambda i: -programs[i].timeout_s):
        jobs.put((index, programs[index]))  # longest limits first: the slow ones do not finish last
    results: list = [None] * len(programs)
    count = max(1, min(workers or os.cpu_count() or 1, len(programs)))
    threads = [
        threading.Thread(target=_worker, args=(jobs, results, isolation, config), daemon=True)
        for _ in range(count)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
