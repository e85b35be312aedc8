"""Any OpenAI-compatible server (e.g. `vllm serve` on other hosts, for scale-out, or an API judge).

api="completions" (the default): prompts are already rendered through the chat template, so the plain
/completions endpoint is used; log-likelihoods come from `echo` + `logprobs`, which vLLM's server implements.
api="chat": each prompt is the chat messages as a JSON list, posted to /chat/completions (no log-likelihoods).

base_url may name a fleet of servers of the same model: requests go to them in turn (round-robin), at most
`concurrency` in flight on each. A request that meets HTTP 429/5xx, a refused or dropped connection or a
timeout is retried on the next server, with capped exponential backoff and jitter (or the server's
Retry-After), until `retry_s` has passed since its first attempt. Any other HTTP error fails at once.
"""

from __future__ import annotations

import email.utils
import functools
import http.client
import itertools
import json
import os
import random
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from qwen_pipe.config import EngineParams
from qwen_pipe.engines.base import (
    EngineInfo,
    Generation,
    GenerationRequest,
    Loglikelihood,
    LoglikelihoodRequest,
)
from qwen_pipe.engines.registry import register_engine
from qwen_pipe.errors import QwenPipeError

if TYPE_CHECKING:
    from qwen_pipe.config import Preset
    from qwen_pipe.models.spec import ModelSpec

APIS = ("completions", "chat")
ROLES = ("system", "user", "assistant")
BACKOFF_S = 1.0  # the first wait after every server failed once; doubled each round, jittered
BACKOFF_CAP_S = 30.0
DEFAULTS = EngineParams()  # timeout_s, retry_s of an API judge (JudgeParams has no settings of its own)
T = TypeVar("T")
R = TypeVar("R")
Post = Callable[[str, dict], dict]  # (path, body) -> the server's JSON answer


class _Retryable(Exception):
    """A failed attempt another try may fix: 429, 5xx, no connection, a timeout."""

    def __init__(self, detail: str, retry_after: float | None = None):
        super().__init__(detail)
        self.retry_after = retry_after


class _Stopped(Exception):
    """Another request of the same call failed for good: this one stops retrying."""


@dataclass(frozen=True)
class _Server:
    url: str
    slots: threading.Semaphore  # at most `concurrency` requests in flight on this server


def server_urls(base_url: str | list[str] | None) -> list[str]:
    """The distinct servers of `base_url` (one address or a list), checked, without trailing slashes."""
    given = [base_url] if isinstance(base_url, str) and base_url else list(base_url or [])
    if not given:
        raise QwenPipeError(
            "the openai engine needs a server address", "set engine.base_url (e.g. http://host:8000/v1)"
        )
    for url in given:
        if not _is_http_address(url):
            raise QwenPipeError(
                f"base_url {url!r} is not an http(s) address",
                "write each server as http://host:port/v1 or https://host/v1 (several: a YAML list of them)",
            )
    return list(dict.fromkeys(url.rstrip("/") for url in given))


def fleet_identity(base_url: str | list[str] | None) -> str | list[str] | None:
    """What a cache key holds of the servers: a fleet is the set of its servers (their order, timeouts and
    concurrency change no answer), one server (a string or a list of one) its address."""
    if isinstance(base_url, list):
        unique = sorted(set(base_url))
        return unique[0] if len(unique) == 1 else unique
    return base_url


def _is_http_address(url: object) -> bool:
    if not isinstance(url, str) or any(c.isspace() or c == "," for c in url):  # not "url1,url2"
        return False
    try:
        parts = urllib.parse.urlsplit(url)
        return (
            parts.scheme in ("http", "https")
            and bool(parts.hostname)
            and (parts.port is None or parts.port > 0)
        )
    except ValueError:  # a port that is not a number, a bad IPv6 address
        return False


def _retry_after(error: urllib.error.HTTPError) -> float | None:
    """The server's Retry-After (seconds or an HTTP date) on 429/503, when it sends one."""
    value = (error.headers.get("Retry-After") or "").strip() if error.headers else ""
    if error.code not in (429, 503) or not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


@register_engine("openai", in_process=True)  # HTTP requests only: nothing in it can crash the interpreter
class OpenAIEngine:
    def __init__(
        self,
        model: str,
        *,
        base_url: str | list[str] | None,
        api_key_env: str,
        concurrency: int = 16,
        timeout_s: float = DEFAULTS.timeout_s,
        retry_s: float = DEFAULTS.retry_s,
        api: str = "completions",
    ):
        if api not in APIS:
            raise QwenPipeError(f"unknown OpenAI API {api!r}", "use completions or chat")
        if concurrency < 1:
            raise QwenPipeError(
                f"engine concurrency must be 1 or more, got {concurrency}",
                "set engine.concurrency to the requests each server takes at once",
            )
        urls = server_urls(base_url)
        self.servers = [_Server(url, threading.Semaphore(concurrency)) for url in urls]
        self.base_url = urls[0] if len(urls) == 1 else urls
        self.model = model
        self._api_key = os.environ.get(api_key_env, "")
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.retry_s = retry_s
        self.api = api
        self._turns = itertools.count()  # round-robin: the server each new request starts on
        # The key is never part of info: info is written into every result and report.
        self.info = EngineInfo(
            engine="openai",
            version="v1",
            model=model,
            args={"base_url": self.base_url, "concurrency": concurrency, "api": api},
        )

    @classmethod
    def from_config(
        cls, spec: ModelSpec, preset: Preset, engine_params: EngineParams, *, seed: int, load_format: str
    ) -> OpenAIEngine:
        return cls(
            spec.hf_id,
            base_url=engine_params.base_url,
            api_key_env=engine_params.api_key_env,
            concurrency=engine_params.concurrency,
            timeout_s=engine_params.timeout_s,
            retry_s=engine_params.retry_s,
        )

    @classmethod
    def output_args(
        cls, spec: ModelSpec, preset: Preset, engine_params: EngineParams, load_format: str
    ) -> dict:
        # the server's own arguments are out of sight: the address stands for them
        return {"base_url": fleet_identity(engine_params.base_url)}

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text

    def _attempt(self, server: _Server, path: str, data: bytes, headers: dict) -> dict:
        """One try on one server: its answer, a _Retryable failure, or a QwenPipeError (never retried)."""
        request = urllib.request.Request(f"{server.url}/{path}", data=data, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:
            detail = " ".join(error.read().decode("utf-8", "replace")[:200].split())
            if error.code == 429 or error.code >= 500:
                raise _Retryable(f"HTTP {error.code}: {detail}", _retry_after(error)) from None
            raise QwenPipeError(
                f"server {server.url} answered HTTP {error.code}: {self._redact(detail)}",
                "check engine.base_url, the served model name and the API key variable",
            ) from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
            reason = getattr(error, "reason", error)  # refused, reset, closed, timed out
            raise _Retryable(str(reason) or type(reason).__name__) from None
        try:
            return json.loads(raw)
        except ValueError:
            detail = " ".join(raw.decode("utf-8", "replace")[:200].split())
            raise QwenPipeError(
                f"server {server.url} answered with something that is not JSON: {self._redact(detail)}",
                "point engine.base_url at an OpenAI-compatible API (e.g. http://host:8000/v1)",
            ) from None

    def _post(self, path: str, body: dict, *, turn: int, stop: threading.Event) -> dict:
        """Posts to server `turn` mod n first, to the next one after each failure; after a round in which
        every server failed it waits (backoff or Retry-After), until retry_s has passed since the start."""
        data = json.dumps({"model": self.model, **body}).encode()
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        count = len(self.servers)
        first: float | None = None  # when the first attempt got a slot: waiting for one is no retrying
        attempt, wait = 0, 0.0
        while True:
            server = self.servers[(turn + attempt) % count]
            try:
                with server.slots:
                    first = time.monotonic() if first is None else first
                    return self._attempt(server, path, data, headers)
            except _Retryable as error:
                last, where = error, server.url
            attempt += 1
            wait = max(wait, last.retry_after or 0.0)
            left = first + self.retry_s - time.monotonic()
            if left <= 0:
                tried = ", ".join(self.servers[(turn + k) % count].url for k in range(min(attempt, count)))
                raise QwenPipeError(
                    f"cannot reach a working server ({tried}) within retry_s={self.retry_s:g} s "
                    f"({attempt} attempts); last error from {where}: {self._redact(str(last))}",
                    "start or fix the server(s) (e.g. `vllm serve MODEL`), check engine.base_url, "
                    "or raise engine.retry_s",
                )
            if attempt % count == 0:  # every server failed once more: back off before the next round
                backoff = min(BACKOFF_CAP_S, BACKOFF_S * 2 ** (attempt // count - 1))
                if stop.wait(min(left, max(wait, random.uniform(backoff / 2, backoff)))):
                    raise _Stopped
                wait = 0.0
            elif stop.is_set():
                raise _Stopped

    def _run(self, function: Callable[[T, Post], R], items: list[T]) -> Iterator[tuple[int, R]]:
        """(index, result) as each item is answered, `concurrency` in flight per server; items take the
        servers in turn. The first failure stops the other items' retries and is raised."""
        stop = threading.Event()
        pool = ThreadPoolExecutor(max_workers=self.concurrency * len(self.servers))
        try:
            futures = {}
            for index, item in enumerate(items):
                post = functools.partial(self._post, turn=next(self._turns), stop=stop)
                futures[pool.submit(function, item, post)] = index
            for future in as_completed(futures):
                yield futures[future], future.result()
        except BaseException:
            stop.set()
            raise
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def _in_order(self, function: Callable[[T, Post], R], items: list[T]) -> list[R]:
        results: list = [None] * len(items)
        for index, result in self._run(function, items):
            results[index] = result
        return results

    def generate(self, requests: list[GenerationRequest]) -> list[Generation]:
        return self._in_order(self._generate_one, self._generation_inputs(requests))

    def iter_generate(self, requests: list[GenerationRequest]) -> Iterator[tuple[int, Generation]]:
        """(index, generation) as each request is answered."""
        return self._run(self._generate_one, self._generation_inputs(requests))

    def _generation_inputs(self, requests: list[GenerationRequest]) -> list[tuple[GenerationRequest, dict]]:
        chat = self.api == "chat"
        # every prompt is checked before any request is sent
        inputs = [{"messages": chat_messages(r.prompt)} if chat else {"prompt": r.prompt} for r in requests]
        return list(zip(requests, inputs, strict=True))

    def _generate_one(self, item: tuple[GenerationRequest, dict], post: Post) -> Generation:
        request, given = item
        chat = self.api == "chat"
        s = request.sampling
        body = {
            **given,
            "max_tokens": s.max_new_tokens,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "presence_penalty": s.presence_penalty,
            "seed": s.seed,
        }
        if s.top_k > 0:
            body["top_k"] = s.top_k  # a vLLM extension of the OpenAI schema
        if s.stop:
            body["stop"] = list(s.stop)
        if s.ignore_eos:
            body["ignore_eos"] = True  # a vLLM extension
        started = time.perf_counter()
        answer = post("chat/completions" if chat else "completions", body)
        choice, usage = answer["choices"][0], answer.get("usage") or {}
        text = (choice.get("message") or {}).get("content") if chat else choice.get("text")
        return Generation(
            text=text or "",
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            output_tokens=int(usage.get("completion_tokens", 0)),
            finish_reason=str(choice.get("finish_reason")),
            seconds=time.perf_counter() - started,
        )

    def loglikelihood(self, requests: list[LoglikelihoodRequest]) -> list[Loglikelihood]:
        if self.api == "chat":
            raise QwenPipeError(
                "the chat API gives no log-likelihoods",
                "use api completions (a vLLM server) for multiple-choice tasks",
            )
        return self._in_order(_loglikelihood_one, requests)

    def close(self) -> None:
        pass


def _loglikelihood_one(request: LoglikelihoodRequest, post: Post) -> Loglikelihood:
    body = {
        "prompt": request.context + request.continuation,
        "max_tokens": 1,
        "temperature": 0.0,
        "echo": True,
        "logprobs": 1,
    }
    logprobs = post("completions", body)["choices"][0]["logprobs"]
    start = len(request.context)
    total, greedy, count = 0.0, True, 0
    for offset, token, logprob, top in zip(
        logprobs["text_offset"],
        logprobs["tokens"],
        logprobs["token_logprobs"],
        logprobs["top_logprobs"],
        strict=False,
    ):
        if offset < start or offset >= start + len(request.continuation) or logprob is None:
            continue
        total += logprob
        count += 1
        greedy = greedy and bool(top) and max(top.values()) <= logprob + 1e-6 and token in top
    return Loglikelihood(total, greedy, count)


def chat_messages(prompt: str) -> list[dict]:
    """The chat messages a chat-mode prompt holds: a JSON list of {"role", "content"} objects."""
    fix = 'pass json.dumps([{"role": "system" | "user" | "assistant", "content": "..."}, ...]) as the prompt'
    try:
        messages = json.loads(prompt)
    except (TypeError, ValueError):
        messages = None
    if not isinstance(messages, list) or not messages:
        raise QwenPipeError(
            f"chat API requests need the messages as a JSON list, got {str(prompt)[:60]!r}", fix
        )
    for message in messages:
        if (
            not isinstance(message, dict)
            or set(message) != {"role", "content"}
            or message["role"] not in ROLES
            or not isinstance(message["content"], str)
        ):
            raise QwenPipeError(
                f"chat API requests need the messages as a JSON list of role/content objects, "
                f"got {str(message)[:60]!r}",
                fix,
            )
    return messages
