"""The console a person reads: an engine child's output goes to its log file (every way a process can write),
its progress reaches the parent as it happens, a failure shows the log's end, and each stage says what it
did in one line."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time

import pytest

from qwen_pipe.cells import Cell
from qwen_pipe.console import BatchedProgress, LiveBar, Progress, start_log
from qwen_pipe.generate import generate_line
from qwen_pipe.isolation import run_isolated
from qwen_pipe.score import score_line

# --- targets run in the child ---


def chatty(progress=None) -> str:
    print("python print on stdout")
    print("python print on stderr", file=sys.stderr)
    logging.getLogger("engine").warning("a logging warning")
    os.write(1, b"raw write on fd 1\n")  # what a C extension does
    subprocess.run(["sh", "-c", "echo from a worker process; echo worker stderr >&2"], check=True)
    for done in range(3):
        progress(Progress("gsm8k", total=3 if done == 0 else 0, done=1, tokens=10))
    return "result"


def crash() -> None:
    print("about to die", flush=True)
    os._exit(7)


# ---


def test_child_output_goes_to_the_log_and_progress_to_the_parent(tmp_path, capfd, monkeypatch):
    monkeypatch.delenv("QWEN_PIPE_VERBOSE", raising=False)
    monkeypatch.setenv("QWEN_PIPE_LOG_DIR", str(tmp_path / "logs"))
    log = start_log("generate@tiny_small-balanced-gsm8k")
    assert log == tmp_path / "logs" / "generate@tiny_small-balanced-gsm8k.log"
    events = []
    outcome = run_isolated(chatty, log=log, on_progress=events.append)
    assert outcome.ok and outcome.value == "result"
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    text = log.read_text()
    for line in (
        "python print on stdout",
        "python print on stderr",
        "a logging warning",
        "raw write on fd 1",
        "from a worker process",
        "worker stderr",
    ):
        assert line in text, line
    received = [e for e in events if e is not None]
    assert received == [Progress("gsm8k", 3, 1, 10), Progress("gsm8k", 0, 1, 10), Progress("gsm8k", 0, 1, 10)]


def test_verbose_shows_the_child_output_on_stderr_and_keeps_stdout_clean(tmp_path, capfd, monkeypatch):
    monkeypatch.setenv("QWEN_PIPE_VERBOSE", "1")
    monkeypatch.setenv("QWEN_PIPE_LOG_DIR", str(tmp_path))
    log = start_log("eval")
    assert run_isolated(chatty, log=log, on_progress=lambda _: None).ok
    deadline = time.monotonic() + 10  # `tee` copies the output on its own time and ends after the child
    while "worker stderr" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    out, err = capfd.readouterr()
    assert out == ""
    assert "python print on stdout" in err and "raw write on fd 1" in err and "worker stderr" in err
    assert "raw write on fd 1" in log.read_text()  # the log is kept all the same


def test_a_crash_is_a_failure_and_its_output_is_in_the_log(tmp_path, monkeypatch):
    monkeypatch.delenv("QWEN_PIPE_VERBOSE", raising=False)
    monkeypatch.setenv("QWEN_PIPE_LOG_DIR", str(tmp_path))
    log = start_log("crash")
    outcome = run_isolated(crash, log=log)
    assert not outcome.ok and outcome.failure["type"] == "EngineCrash" and outcome.failure["exitcode"] == 7
    assert "about to die" in log.read_text()


def test_progress_is_batched_but_nothing_is_lost():
    sent = []
    batched = BatchedProgress(sent.append, interval=60)
    batched(Progress("a", total=5))  # added work goes out at once
    for _ in range(5):
        batched(Progress("a", done=1, tokens=7))
    batched(Progress("b", total=2))  # another dataset: the pending sum of the first goes out first
    batched.flush()
    assert sent == [Progress("a", total=5), Progress("a", done=5, tokens=35), Progress("b", total=2)]


def test_the_bar_shows_requests_and_tokens_per_second(capfd, monkeypatch):
    monkeypatch.setenv("QWEN_PIPE_PROGRESS", "1")
    bar = LiveBar("generate tiny_small x balanced")
    bar(Progress("gsm8k", total=4, done=1))  # one cache hit
    assert "1/4 [00:00, loading the model]" in capfd.readouterr().err
    bar(Progress("gsm8k", loaded=True))
    time.sleep(0.05)
    bar(Progress("gsm8k", done=3, tokens=300))
    bar(None)
    err = capfd.readouterr().err
    assert "generate tiny_small x balanced x gsm8k" in err and "4/4" in err and "tokens/s]" in err
    bar(Progress("arc_easy", total=8))  # log-likelihoods: no tokens generated, requests answered
    time.sleep(0.05)
    bar(Progress("arc_easy", done=8))
    bar.close()
    err = capfd.readouterr().err
    assert "8/8" in err and "requests/s]" in err


@pytest.mark.parametrize("setting", ["0", ""])
def test_no_bar_when_disabled_or_not_a_terminal(capfd, monkeypatch, setting):
    monkeypatch.setenv("QWEN_PIPE_PROGRESS", setting)  # "" and stderr captured: not a terminal
    bar = LiveBar("generate")
    bar(Progress("gsm8k", total=2, done=2, tokens=9))
    bar.close()
    assert capfd.readouterr().err == ""


def test_one_line_per_stage():
    cell = Cell("tiny_small", "balanced", "gsm8k")
    line = generate_line(
        cell,
        {
            "samples": 16,
            "requests": 16,
            "cache": {"hits": 4, "misses": 12},
            "truncated": 2,
            "seconds": 12.5,
            "load_seconds": 2.5,
            "generated_tokens": 1000,
            "log": "logs/generate@tiny_small-balanced-gsm8k.log",
        },
    )
    assert line == (
        "generate tiny_small x balanced x gsm8k: 16 samples, 16 requests (4 from the cache, 12 generated), "
        "2 truncated, 12.5 s (model load 2.5 s), 100 tokens/s; engine log logs/generate@tiny_small-balanced-gsm8k.log"
    )
    failure = {"error_type": "EngineCrash", "message": "the worker process died"}
    assert "FAILED (EngineCrash: the worker process died)" in generate_line(cell, {"failure": failure})
    result = {
        "status": "ok",
        "primary_metric": "flexible_match",
        "score": 0.25,
        "stderr": 0.1118,
        "n": 16,
        "truncated": 0,
        "requests": 16,
    }
    assert score_line(cell, result, 1.23) == (
        "score tiny_small x balanced x gsm8k: flexible_match = 0.2500 ± 0.1118 (n=16), 1.2 s"
    )
    assert "\n" not in score_line(cell, {"status": "failed", "failure": failure}, 0.1)
