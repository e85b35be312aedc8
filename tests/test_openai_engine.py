"""The OpenAI-compatible engine against a local server; secrets never reach results, logs or caches."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from qwen_pipe.engines import openai_engine
from qwen_pipe.engines.base import GenerationRequest, LoglikelihoodRequest, SamplingParams
from qwen_pipe.engines.openai_engine import OpenAIEngine
from qwen_pipe.errors import QwenPipeError

from support import ROOT, qwen_pipe

SECRET_KEY = "sk-test-SECRET-5f2a9c"
SECRET_TOKEN = "hf_SECRETtoken0123456789"


class FakeServer(BaseHTTPRequestHandler):
    """A vLLM-like /v1/completions: generation answers '#### 7'; echo returns per-token logprobs.

    /v1/chat/completions answers "judged: " + the last message; any other path is a 404.
    `queued` (status, raw body) answers are given first, one per request, whatever the path.
    """

    seen_auth: ClassVar[list[str]] = []
    seen: ClassVar[list[tuple[str, dict]]] = []  # (path, body) of every request
    queued: ClassVar[list[tuple[int, str]]] = []
    lock = threading.Lock()

    def log_message(self, *args):  # keep test output quiet
        pass

    def answer(self, status: int, payload: bytes):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with FakeServer.lock:
            FakeServer.seen_auth.append(self.headers.get("Authorization", ""))
            FakeServer.seen.append((self.path, body))
            queued = FakeServer.queued.pop(0) if FakeServer.queued else None
        if queued:
            self.answer(queued[0], queued[1].encode())
            return
        if self.path == "/v1/chat/completions":
            message = {"role": "assistant", "content": "judged: " + body["messages"][-1]["content"]}
            payload = {
                "choices": [{"index": 0, "message": message, "finish_reason": "length"}],
                "usage": {"prompt_tokens": 23, "completion_tokens": 3, "total_tokens": 26},
            }
            self.answer(200, json.dumps(payload).encode())
            return
        if self.path != "/v1/completions":
            self.answer(404, b'{"error": "no such endpoint"}')
            return
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
        self.answer(200, payload)


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeServer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()


@pytest.fixture(autouse=True)
def fresh_server_state():
    FakeServer.seen.clear()
    FakeServer.queued.clear()
    yield
    FakeServer.queued.clear()


@pytest.fixture
def judge(server, monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", SECRET_KEY)
    return OpenAIEngine(
        "judge-model", base_url=server + "/", api_key_env="JUDGE_KEY", concurrency=4, api="chat"
    )


def chat(*messages: tuple[str, str], **sampling) -> GenerationRequest:
    prompt = json.dumps([{"role": role, "content": content} for role, content in messages])
    return GenerationRequest(prompt, SamplingParams(**sampling))


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


def test_completions_mode_is_the_default_and_posts_to_completions(server):
    engine = OpenAIEngine("served-model", base_url=server, api_key_env="NONE")
    [out] = engine.generate([GenerationRequest('[{"role": "user", "content": "hi"}]', SamplingParams())])
    assert out.text == "The answer is 7.\n#### 7"
    [(path, body)] = FakeServer.seen
    assert path == "/v1/completions" and body["prompt"] == '[{"role": "user", "content": "hi"}]'
    assert "messages" not in body and engine.info.args["api"] == "completions"


def test_chat_sends_the_messages_and_sampling_exactly(judge):
    system = 'You are a strict judge. Answer "Score: N".\n\nNo excuses — ünïcode too.'
    request = chat(
        ("system", system),
        ("user", "Rate: 2+2=5"),
        max_new_tokens=7,
        temperature=0.3,
        top_p=0.9,
        presence_penalty=0.5,
        seed=11,
        stop=("\n\n", "###"),
    )
    [out] = judge.generate([request])
    assert out.text == "judged: Rate: 2+2=5"
    assert (out.prompt_tokens, out.output_tokens, out.finish_reason) == (23, 3, "length")
    [(path, body)] = FakeServer.seen
    assert path == "/v1/chat/completions"  # the trailing slash of base_url is dropped
    assert body == {
        "model": "judge-model",
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": "Rate: 2+2=5"}],
        "max_tokens": 7,
        "temperature": 0.3,
        "top_p": 0.9,
        "presence_penalty": 0.5,
        "seed": 11,
        "stop": ["\n\n", "###"],
    }
    assert FakeServer.seen_auth[-1] == f"Bearer {SECRET_KEY}"
    assert judge.info.args["api"] == "chat"
    assert SECRET_KEY not in json.dumps(judge.info.__dict__) and SECRET_KEY not in repr(judge.info)


def test_chat_vllm_extensions_only_when_asked(judge):
    judge.generate([chat(("user", "x"), top_k=20, ignore_eos=True)])
    judge.generate([chat(("user", "x"))])
    (_, asked), (_, plain) = FakeServer.seen
    assert asked["top_k"] == 20 and asked["ignore_eos"] is True
    assert not {"top_k", "ignore_eos", "stop", "prompt"} & set(plain)


def test_chat_answers_keep_the_request_order(judge):
    requests = [chat(("system", "judge"), ("user", f"item {i}")) for i in range(12)]
    assert [g.text for g in judge.generate(requests)] == [f"judged: item {i}" for i in range(12)]
    assert all(path == "/v1/chat/completions" for path, _ in FakeServer.seen)


def test_chat_null_content_is_empty_text(judge):
    answer = {"choices": [{"message": {"role": "assistant", "content": None}, "finish_reason": "stop"}]}
    FakeServer.queued.append((200, json.dumps(answer)))
    [out] = judge.generate([chat(("user", "x"))])
    assert (out.text, out.finish_reason, out.output_tokens) == ("", "stop", 0)


def test_chat_retries_a_server_error(judge, monkeypatch):
    sleeps: list[float] = []
    monkeypatch.setattr(openai_engine.time, "sleep", sleeps.append)
    FakeServer.queued.append((500, '{"error": "overloaded"}'))
    [out] = judge.generate([chat(("user", "again"))])
    assert out.text == "judged: again"
    assert [path for path, _ in FakeServer.seen] == ["/v1/chat/completions"] * 2 and sleeps == [1]


def test_chat_client_error_is_one_line_and_not_retried(judge, monkeypatch):
    monkeypatch.setattr(openai_engine.time, "sleep", lambda _: pytest.fail("a 400 must not be retried"))
    FakeServer.queued.append((400, '{"error": "model judge-model does not exist"}'))
    with pytest.raises(QwenPipeError, match="HTTP 400") as caught:
        judge.generate([chat(("user", "x"))])
    text = str(caught.value)
    assert "\n" not in text and "does not exist" in text and caught.value.fix
    assert SECRET_KEY not in text and len(FakeServer.seen) == 1


@pytest.mark.parametrize(
    "prompt",
    [
        "Rate this answer: 4",
        "",
        "[]",
        '{"role": "user", "content": "x"}',
        '["x"]',
        '[{"role": "user"}]',
        '[{"content": "x"}]',
        '[{"role": "user", "content": 5}]',
        '[{"role": "judge", "content": "x"}]',
        '[{"role": "user", "content": "x", "extra": 1}]',
        "null",
    ],
)
def test_chat_rejects_a_prompt_that_is_not_messages(judge, prompt):
    good = chat(("user", "fine"))
    with pytest.raises(QwenPipeError, match="chat API requests need the messages as a JSON list") as caught:
        judge.generate([good, GenerationRequest(prompt, SamplingParams())])
    assert caught.value.fix and "\n" not in str(caught.value)
    assert FakeServer.seen == []  # nothing is sent when any prompt is wrong


def test_chat_has_no_loglikelihood(judge):
    with pytest.raises(QwenPipeError, match="the chat API gives no log-likelihoods") as caught:
        judge.loglikelihood([LoglikelihoodRequest("The cat sat on the", " mat")])
    assert "completions" in caught.value.fix and FakeServer.seen == []


@pytest.mark.parametrize("api", ["Chat", "chat/completions", "responses", "", "completion"])
def test_unknown_api_is_refused(server, api):
    with pytest.raises(QwenPipeError, match="unknown OpenAI API") as caught:
        OpenAIEngine("m", base_url=server, api_key_env="NONE", api=api)
    assert repr(api) in str(caught.value) and caught.value.fix == "use completions or chat"


def test_chat_without_a_key_sends_no_authorization(server, monkeypatch):
    monkeypatch.delenv("JUDGE_KEY", raising=False)
    engine = OpenAIEngine("judge-model", base_url=server, api_key_env="JUDGE_KEY", api="chat")
    engine.generate([chat(("user", "x"))])
    assert FakeServer.seen_auth[-1] == ""
