"""The OpenAI-compatible engine against a local server; secrets never reach results, logs or caches."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from qwen_pipe.engines.base import GenerationRequest, LoglikelihoodRequest, SamplingParams
from qwen_pipe.engines.openai_engine import OpenAIEngine
from qwen_pipe.errors import QwenPipeError

from support import ROOT, qwen_pipe

SECRET_KEY = "sk-test-SECRET-5f2a9c"
SECRET_TOKEN = "hf_SECRETtoken0123456789"


class FakeServer(BaseHTTPRequestHandler):
    """A vLLM-like /v1/completions: generation answers '#### 7'; echo returns per-token logprobs."""

    seen_auth: ClassVar[list[str]] = []

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeServer.seen_auth.append(self.headers.get("Authorization", ""))
        if body.get("echo"):
            text = body["prompt"]
            words = text.split(" ")
            offsets, tokens, position = [], [], 0
            for i, word in enumerate(words):
                token = word if i == 0 else " " + word
                offsets.append(position)
                tokens.append(token)
                position += len(token)
            logprobs = [None] + [-0.5] * (len(tokens) - 1) + [-1.0]
            tokens.append("<gen>")
            offsets.append(len(text))
            top = [None] + [{t: -0.5} for t in tokens[1:]]
            choice = {
                "text": text + "<gen>",
                "logprobs": {
                    "tokens": tokens,
                    "token_logprobs": logprobs,
                    "top_logprobs": top,
                    "text_offset": offsets,
                },
            }
        else:
            choice = {"text": "The answer is 7.\n#### 7", "finish_reason": "stop"}
        payload = json.dumps(
            {"choices": [choice], "usage": {"prompt_tokens": 11, "completion_tokens": 5}}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeServer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()


def test_generate_and_loglikelihood(server, monkeypatch):
    monkeypatch.setenv("MY_KEY", SECRET_KEY)
    engine = OpenAIEngine("served-model", base_url=server, api_key_env="MY_KEY", concurrency=4)
    out = engine.generate([GenerationRequest("Q?", SamplingParams(max_new_tokens=8, stop=("\n\n",)))] * 3)
    assert [g.text for g in out] == ["The answer is 7.\n#### 7"] * 3 and out[0].output_tokens == 5
    [ll] = engine.loglikelihood([LoglikelihoodRequest("The cat sat on the", " mat today")])
    assert ll.continuation_tokens == 2 and ll.logprob == pytest.approx(-1.0) and ll.is_greedy
    assert FakeServer.seen_auth[-1] == f"Bearer {SECRET_KEY}"
    assert SECRET_KEY not in json.dumps(engine.info.__dict__)


def test_unreachable_server_is_a_one_line_error():
    engine = OpenAIEngine("m", base_url="http://127.0.0.1:9/v1", api_key_env="NONE", timeout_s=2)
    with pytest.raises(QwenPipeError, match="cannot reach"):
        engine.generate([GenerationRequest("x", SamplingParams())])


def test_secrets_never_reach_outputs(server, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text((ROOT / "params.yaml").read_text().replace("base_url: null", f"base_url: {server}", 1))
    env = {"OPENAI_API_KEY": SECRET_KEY, "HF_TOKEN": SECRET_TOKEN, "HUGGING_FACE_HUB_TOKEN": SECRET_TOKEN}
    done = qwen_pipe(
        "eval",
        "--engine",
        "openai",
        "--models",
        "tiny_small",
        "--datasets",
        "gsm8k,arc_easy",
        "--sample-limit",
        "4",
        "--output-dir",
        str(tmp_path / "out"),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--params",
        str(params),
        "--detailed-analysis",
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert FakeServer.seen_auth and FakeServer.seen_auth[-1] == f"Bearer {SECRET_KEY}"
    texts = [done.stdout, done.stderr]
    texts += [
        p.read_text(errors="replace")
        for p in Path(tmp_path).rglob("*")
        if p.is_file() and p.name != "params.yaml"
    ]
    assert len(texts) > 6
    for text in texts:
        assert SECRET_KEY not in text and SECRET_TOKEN not in text
