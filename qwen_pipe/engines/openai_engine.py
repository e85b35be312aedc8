"""Any OpenAI-compatible server (e.g. `vllm serve` on other hosts, for scale-out, or an API judge).

api="completions" (the default): prompts are already rendered through the chat template, so the plain
/completions endpoint is used; log-likelihoods come from `echo` + `logprobs`, which vLLM's server implements.
api="chat": each prompt is the chat messages as a JSON list, posted to /chat/completions (no log-likelihoods).
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

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
    from qwen_pipe.config import EngineParams, Preset
    from qwen_pipe.models.spec import ModelSpec

RETRIES = 4
APIS = ("completions", "chat")
ROLES = ("system", "user", "assistant")


@register_engine("openai", in_process=True)  # HTTP requests only: nothing in it can crash the interpreter
class OpenAIEngine:
    def __init__(
        self,
        model: str,
        *,
        base_url: str | None,
        api_key_env: str,
        concurrency: int = 16,
        timeout_s: float = 600,
        api: str = "completions",
    ):
        if api not in APIS:
            raise QwenPipeError(f"unknown OpenAI API {api!r}", "use completions or chat")
        if not base_url:
            raise QwenPipeError(
                "the openai engine needs a server address", "set engine.base_url (e.g. http://host:8000/v1)"
            )
        self.base_url = base_url.rstrip("/")
        self.model = model
        self._api_key = os.environ.get(api_key_env, "")
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.api = api
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
        )

    @classmethod
    def output_args(
        cls, spec: ModelSpec, preset: Preset, engine_params: EngineParams, load_format: str
    ) -> dict:
        # the server's own arguments are out of sight: the address stands for them
        return {"base_url": engine_params.base_url}

    def _post(self, path: str, body: dict) -> dict:
        data = json.dumps({"model": self.model, **body}).encode()
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        for attempt in range(RETRIES):
            request = urllib.request.Request(f"{self.base_url}/{path}", data=data, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    return json.loads(response.read())
            except urllib.error.HTTPError as error:
                if error.code < 500 or attempt == RETRIES - 1:
                    detail = error.read().decode("utf-8", "replace")[:200]
                    raise QwenPipeError(
                        f"server {self.base_url} answered HTTP {error.code}: {detail}",
                        "check engine.base_url, the served model name and the API key variable",
                    ) from None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
                if attempt == RETRIES - 1:
                    raise QwenPipeError(
                        f"cannot reach {self.base_url}: {getattr(error, 'reason', error)}",
                        "start the server (e.g. `vllm serve MODEL`) or fix engine.base_url",
                    ) from None
            time.sleep(min(2**attempt, 10))
        raise AssertionError("unreachable")

    def _map(self, function, items: list) -> list:
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(function, items))

    def generate(self, requests: list[GenerationRequest]) -> list[Generation]:
        chat = self.api == "chat"
        # every prompt is checked before any request is sent
        inputs = [{"messages": chat_messages(r.prompt)} if chat else {"prompt": r.prompt} for r in requests]

        def one(item: tuple[GenerationRequest, dict]) -> Generation:
            request, given = item
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
            answer = self._post("chat/completions" if chat else "completions", body)
            choice, usage = answer["choices"][0], answer.get("usage") or {}
            text = (choice.get("message") or {}).get("content") if chat else choice.get("text")
            return Generation(
                text=text or "",
                prompt_tokens=int(usage.get("prompt_tokens", 0)),
                output_tokens=int(usage.get("completion_tokens", 0)),
                finish_reason=str(choice.get("finish_reason")),
                seconds=time.perf_counter() - started,
            )

        return self._map(one, list(zip(requests, inputs, strict=True)))

    def loglikelihood(self, requests: list[LoglikelihoodRequest]) -> list[Loglikelihood]:
        if self.api == "chat":
            raise QwenPipeError(
                "the chat API gives no log-likelihoods",
                "use api completions (a vLLM server) for multiple-choice tasks",
            )

        def one(request: LoglikelihoodRequest) -> Loglikelihood:
            body = {
                "prompt": request.context + request.continuation,
                "max_tokens": 1,
                "temperature": 0.0,
                "echo": True,
                "logprobs": 1,
            }
            logprobs = self._post("completions", body)["choices"][0]["logprobs"]
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

        return self._map(one, requests)

    def close(self) -> None:
        pass


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
