"""The OpenAI-compatible engine against a local server; secrets never reach results, logs or caches."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import pytest

from qwen_pipe.config import EngineParams
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
    engine = OpenAIEngine("m", base_url="http://127.0.0.1:9/v1", api_key_env="NONE", timeout_s=2, retry_s=0.5)
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
    monkeypatch.setattr(openai_engine, "BACKOFF_S", 0.2)
    FakeServer.queued.append((500, '{"error": "overloaded"}'))
    started = time.monotonic()
    [out] = judge.generate([chat(("user", "again"))])
    assert out.text == "judged: again"
    assert [path for path, _ in FakeServer.seen] == ["/v1/chat/completions"] * 2
    assert 0.1 <= time.monotonic() - started < 2  # one backoff: 0.1-0.2 s (jittered)


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


# --- a fleet of servers: round-robin, per-server concurrency, retries, secrets, addresses -------------------

FLEET_KEY = "sk-fleet-DISTINCTIVE-7c1e4b"


class Replica:
    """One fake vLLM server of a fleet: answers a completion with "<name>|<prompt>" after `delay` seconds.

    `script` answers come first, one per request: (status, headers, body), or "hang" (sleep 1 s, answer
    nothing) or "drop" (close the connection without an answer). It counts hits and requests in flight.
    """

    def __init__(self, name: str, delay: float = 0.0, script: list | None = None):
        self.name, self.delay, self.script = name, delay, list(script or [])
        self.hits, self.in_flight, self.max_in_flight = 0, 0, 0
        self.serving: set[int] = set()  # the handler threads whose request is counted in flight
        self.auth: list[str] = []
        self.lock = threading.Lock()
        replica = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                replica.handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        body = json.loads(handler.rfile.read(int(handler.headers["Content-Length"])))
        with self.lock:
            self.hits += 1
            self.in_flight += 1
            self.serving.add(threading.get_ident())
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.auth.append(handler.headers.get("Authorization", ""))
            step = self.script.pop(0) if self.script else None
        try:
            if step == "hang":
                time.sleep(1.0)
            elif step == "drop":
                handler.close_connection = True
            else:
                time.sleep(self.delay)
                status, headers, text = step or (200, {}, None)
                if text is None:
                    text = json.dumps(
                        {
                            "choices": [{"text": f"{self.name}|{body['prompt']}", "finish_reason": "length"}],
                            "usage": {"prompt_tokens": 1, "completion_tokens": 1},
                        }
                    )
                payload = text.replace("{auth}", handler.headers.get("Authorization", "")).encode()
                self._done()  # before the answer leaves: the client may send its next request at once
                handler.send_response(status)
                for key, value in headers.items():
                    handler.send_header(key, value)
                handler.send_header("Content-Length", str(len(payload)))
                handler.end_headers()
                handler.wfile.write(payload)
        except OSError:  # the client gave up (a timeout): nothing to answer
            pass
        finally:
            self._done()

    def _done(self) -> None:
        """The request leaves the count of those in flight (once)."""
        with self.lock:
            if threading.get_ident() in self.serving:
                self.serving.discard(threading.get_ident())
                self.in_flight -= 1


@pytest.fixture
def replicas():
    started: list[Replica] = []

    def start(name: str, **kwargs) -> Replica:
        started.append(Replica(name, **kwargs))
        return started[-1]

    yield start
    for replica in started:
        replica.httpd.shutdown()
        replica.httpd.server_close()


@pytest.fixture
def closed_port_url() -> str:
    """An address where nothing listens: every connection is refused."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch):
    monkeypatch.setattr(openai_engine, "BACKOFF_S", 0.05)


def fleet(urls, **kwargs) -> OpenAIEngine:
    return OpenAIEngine("m", base_url=urls, api_key_env=kwargs.pop("api_key_env", "NONE"), **kwargs)


def prompts(n: int) -> list[GenerationRequest]:
    return [GenerationRequest(f"p{i}", SamplingParams(max_new_tokens=4)) for i in range(n)]


def one_line(error: pytest.ExceptionInfo) -> str:
    text = str(error.value)
    assert "\n" not in text and error.value.fix, text
    return text


def test_fleet_round_robin_keeps_the_request_order(replicas):
    a, b = replicas("a"), replicas("b")
    engine = fleet([a.url, b.url], concurrency=3)
    texts = [g.text for g in engine.generate(prompts(40))]
    assert texts == [f"{'ab'[i % 2]}|p{i}" for i in range(40)]  # request i went to server i mod 2
    assert (a.hits, b.hits) == (20, 20)
    streamed = dict(engine.iter_generate(prompts(10)))
    assert sorted(streamed) == list(range(10)) and {t.text[0] for t in streamed.values()} == {"a", "b"}
    assert (a.hits, b.hits) == (25, 25)  # round-robin goes on across calls


def test_fleet_keeps_at_most_concurrency_requests_in_flight_per_server(replicas):
    a, b = replicas("a", delay=0.05), replicas("b", delay=0.15)  # b is slow: its requests pile up
    engine = fleet([a.url, b.url], concurrency=3)
    assert len(engine.generate(prompts(36))) == 36
    assert a.max_in_flight <= 3 and b.max_in_flight <= 3
    assert b.max_in_flight == 3  # the bound was reached, so it was the bound that held
    single = replicas("c", delay=0.05)
    fleet(single.url, concurrency=1).generate(prompts(6))
    assert single.max_in_flight == 1


def test_fleet_honours_retry_after_on_429(replicas):
    a = replicas("a", script=[(429, {"Retry-After": "1"}, '{"error": "slow down"}')])
    started = time.monotonic()
    [out] = fleet(a.url).generate(prompts(1))
    assert out.text == "a|p0" and a.hits == 2
    assert 0.95 <= time.monotonic() - started < 3  # waited what the server asked, not the 0.05 s backoff


def test_fleet_retries_503_then_answers(replicas):
    a = replicas("a", script=[(503, {}, "busy"), (503, {}, "busy")])
    [out] = fleet(a.url).generate(prompts(1))
    assert out.text == "a|p0" and a.hits == 3


@pytest.mark.parametrize("failure", ["drop", "hang", (500, {}, "<html>oops</html>"), (502, {}, "")])
def test_fleet_retries_dropped_connections_timeouts_and_server_errors(replicas, failure):
    a = replicas("a", script=[failure])
    [out] = fleet(a.url, timeout_s=0.3).generate(prompts(1))
    assert out.text == "a|p0" and a.hits == 2


def test_a_failed_attempt_moves_to_the_next_server(replicas):
    a, b = replicas("a", script=[(503, {}, "busy")]), replicas("b")
    [first, second] = fleet([a.url, b.url]).generate(prompts(2))
    assert (first.text, second.text) == ("b|p0", "b|p1") and (a.hits, b.hits) == (1, 2)


def test_a_server_refusing_connections_leaves_the_others_to_answer(replicas, closed_port_url):
    live = replicas("live")
    started = time.monotonic()
    out = fleet([closed_port_url, live.url], concurrency=2).generate(prompts(20))
    assert [g.text for g in out] == [f"live|p{i}" for i in range(20)] and live.hits == 20
    assert time.monotonic() - started < 5  # no backoff while another server is left to try


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_a_client_error_fails_at_once_in_one_line(replicas, status):
    body = "model m does not exist\n" + "x" * 500
    a = replicas("a", script=[(status, {}, body)])
    with pytest.raises(QwenPipeError, match=f"HTTP {status}") as caught:
        fleet(a.url, retry_s=60).generate(prompts(1))
    text = one_line(caught)
    assert a.hits == 1 and "model m does not exist" in text and "x" * 200 not in text and a.url in text


def test_a_client_error_stops_the_other_requests_retrying(replicas):
    script = [(400, {}, "bad request")] + [(503, {}, "busy")] * 1000
    a = replicas("a", script=script)
    started = time.monotonic()
    with pytest.raises(QwenPipeError, match="HTTP 400"):
        fleet(a.url, concurrency=4, retry_s=60).generate(prompts(8))
    assert time.monotonic() - started < 3
    time.sleep(0.5)  # the others' last backoff ends: then nothing more is sent
    hits = a.hits
    time.sleep(0.5)
    assert a.hits == hits


def test_retries_end_after_retry_s_with_one_line_naming_the_servers(replicas, closed_port_url):
    a = replicas("a", script=[(503, {}, "overloaded")] * 1000)
    started = time.monotonic()
    with pytest.raises(QwenPipeError, match="cannot reach a working server") as caught:
        fleet([a.url, closed_port_url], retry_s=1.5).generate(prompts(1))
    assert 1.5 <= time.monotonic() - started < 4
    text = one_line(caught)
    assert a.url in text and closed_port_url in text and "retry_s=1.5" in text
    assert "retry_s" in caught.value.fix and a.hits >= 3  # retried with backoff, not once


def test_the_api_key_reaches_the_servers_and_nothing_else(replicas, monkeypatch):
    monkeypatch.setenv("FLEET_KEY", FLEET_KEY)
    a = replicas("a", script=[(401, {}, "bad key {auth}")] + [(503, {}, "key was {auth}")] * 1000)
    b = replicas("b", script=[(503, {}, "key was {auth}")] * 1000)
    engine = fleet([a.url, b.url], api_key_env="FLEET_KEY", retry_s=0.3)
    params = EngineParams(base_url=[a.url, b.url], api_key_env="FLEET_KEY")
    seen = [
        json.dumps(engine.info.__dict__),
        repr(engine.info),
        json.dumps(OpenAIEngine.output_args(None, None, params, "auto")),
    ]
    with pytest.raises(QwenPipeError) as client_error:  # request 0 starts on a: a 401 echoing the header
        engine.generate(prompts(1))
    with pytest.raises(QwenPipeError) as exhausted:  # request 1 starts on b: 503s echoing the header
        engine.generate([GenerationRequest("x", SamplingParams())])
    seen += [str(client_error.value), client_error.value.fix, str(exhausted.value), exhausted.value.fix]
    assert "HTTP 401" in seen[3] and "HTTP 503" in seen[5] and "Bearer ***" in seen[5]
    assert not [text for text in seen if FLEET_KEY in text]
    assert set(a.auth + b.auth) == {f"Bearer {FLEET_KEY}"}


@pytest.mark.parametrize(
    "base_url",
    [
        "ftp://x",
        "localhost:8000",
        "localhost:8000/v1",
        "127.0.0.1:8000",
        "http://",
        "http://host:port/v1",
        "file:///etc/passwd",
        "  ",
        "http://a:1/v1,http://b:2/v1",
        "http://a:1/v1 http://b:2/v1",
        ["http://127.0.0.1:8000/v1", "gopher://x"],
    ],
)
def test_a_bad_address_is_a_one_line_error_naming_it(base_url):
    with pytest.raises(QwenPipeError, match="is not an http") as caught:
        fleet(base_url)
    bad = base_url[-1] if isinstance(base_url, list) else base_url
    assert repr(bad) in one_line(caught) and "http://host:port/v1" in caught.value.fix


@pytest.mark.parametrize("base_url", [None, "", []])
def test_no_address_is_a_one_line_error(base_url):
    with pytest.raises(QwenPipeError, match="needs a server address") as caught:
        fleet(base_url)
    one_line(caught)


def test_the_cache_identity_is_the_set_of_servers():
    def identity(base_url, **other) -> dict:
        return OpenAIEngine.output_args(None, None, EngineParams(base_url=base_url, **other), "auto")

    one = "http://gpu-1:8000/v1"
    two = "http://gpu-2:8000/v1"
    assert identity(one) == identity([one]) == identity([one, one]) == {"base_url": one}
    assert identity([two, one]) == identity([one, two, one]) == {"base_url": [one, two]}
    assert identity([one, two], concurrency=3, timeout_s=5, retry_s=1) == identity([one, two])


def test_from_config_takes_the_fleet_and_its_limits():
    params = EngineParams(
        base_url=["http://a:1/v1/", "http://b:2/v1", "http://a:1/v1"], timeout_s=7, retry_s=3
    )
    engine = OpenAIEngine.from_config(
        SimpleNamespace(hf_id="org/m"), None, params, seed=0, load_format="auto"
    )
    assert [s.url for s in engine.servers] == ["http://a:1/v1", "http://b:2/v1"]  # one slot pool per server
    assert (engine.model, engine.timeout_s, engine.retry_s, engine.concurrency) == ("org/m", 7, 3, 16)
    assert engine.info.args == {
        "base_url": ["http://a:1/v1", "http://b:2/v1"],
        "concurrency": 16,
        "api": "completions",
    }


def test_an_api_judge_takes_a_fleet(replicas):
    from test_judge import _params

    from qwen_pipe.judge import load_judge_engine

    a, b = replicas("a"), replicas("b")
    engine = load_judge_engine(_params(base_url=[a.url, b.url], concurrency=2))
    assert [s.url for s in engine.servers] == [a.url, b.url] and engine.api == "chat"
    assert (engine.timeout_s, engine.retry_s) == (EngineParams().timeout_s, EngineParams().retry_s)
