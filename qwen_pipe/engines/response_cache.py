"""The response cache: engine answers keyed by everything that determines them, flushed to disk in chunks;
and `answer_all`, which answers a batch of requests from it and sends only the rest to an engine.

Shared by the generate stage (the models' answers) and the judge stage (the judge's verdicts).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from qwen_pipe.cache import ChunkStore, digest
from qwen_pipe.engines.base import Engine, Generation, GenerationRequest, Loglikelihood, LoglikelihoodRequest
from qwen_pipe.engines.registry import CHUNK
from qwen_pipe.protocols import DEFAULT_PROTOCOL

Report = Callable[[int, int, int], None]  # (requests added, requests answered, tokens generated)


class ResponseCache:
    """Engine responses keyed by everything that determines them; flushed to disk in chunks.

    The key covers the model's identity (content hash of a local folder, or hub id at a commit), the
    engine's output identity (engine build and version, device, and every engine argument that can change
    numerics or truncation: dtype, quantisation, KV-cache dtype, context length, batch shape, parallelism),
    the evaluation protocol, the exact prompt after the chat template, the sampling parameters and the seed.
    Change any of them and the key changes; change a scorer and nothing here does. docs/reliability.md lists
    the fields.
    """

    def __init__(
        self,
        directory: Path,
        model_identity: str,
        engine: dict,
        flush_every: int = 64,
        protocol: str = DEFAULT_PROTOCOL,
    ):
        self.store = ChunkStore(directory)
        self.entries = self.store.load()
        self.base = {"model": model_identity, "engine": engine, "protocol": protocol}
        self.flush_every = flush_every
        self.pending: list[tuple[str, dict]] = []
        self.hits = self.misses = 0

    def generation_key(self, request: GenerationRequest) -> str:
        return digest({**self.base, "prompt": request.prompt, "sampling": asdict(request.sampling)})

    def loglikelihood_key(self, request: LoglikelihoodRequest) -> str:
        return digest({**self.base, "context": request.context, "continuation": request.continuation})

    def get(self, key: str) -> dict | None:
        value = self.entries.get(key)
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value

    def put(self, key: str, value: dict) -> None:
        self.entries[key] = value
        self.pending.append((key, value))
        if len(self.pending) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        self.store.append(self.pending)
        self.pending = []


def answer_all(
    requests: list, cache: ResponseCache | None, key, run_chunk, stream, unpack, report: Report | None
) -> tuple[list, list[bool]]:
    """Answers for `requests` from the cache or the engine, and which of them came from the cache.

    A request asked twice (TruthfulQA's mc1 and mc2 share most continuations) reaches the engine once."""
    answers: list = [None] * len(requests)
    # without a cache the (frozen, hashable) request is its own key
    keys = [key(r) for r in requests] if cache else list(requests)
    todo = []
    copies: dict = {}  # key -> every index asking it
    for index in range(len(requests)):
        hit = cache.get(keys[index]) if cache else None
        if hit is not None:
            answers[index] = unpack(hit)
        elif keys[index] in copies:
            copies[keys[index]].append(index)
        else:
            copies[keys[index]] = [index]
            todo.append(index)
    cached = [answers[i] is not None for i in range(len(requests))]
    if report:
        report(len(requests), len(requests) - sum(map(len, copies.values())), 0)

    def keep(index: int, answer) -> None:
        for same in copies[keys[index]]:
            answers[same] = answer
        if cache and getattr(answer, "finish_reason", "") != "prompt_too_long":
            cache.put(keys[index], asdict(answer))
        if report:
            report(0, len(copies[keys[index]]), getattr(answer, "output_tokens", 0))

    if stream is not None:
        for position, answer in stream([requests[i] for i in todo]):
            keep(todo[position], answer)
    else:
        for start in range(0, len(todo), CHUNK):
            chunk = todo[start : start + CHUNK]
            for index, answer in zip(chunk, run_chunk([requests[i] for i in chunk]), strict=True):
                keep(index, answer)
    if cache:
        cache.flush()
    return answers, cached


def answer_generations(
    requests: list[GenerationRequest],
    cache: ResponseCache | None,
    engine: Engine,
    report: Report | None = None,
) -> tuple[list[Generation], list[bool]]:
    """answer_all for generation requests (streamed where the engine can)."""
    key = cache.generation_key if cache else None
    stream = getattr(engine, "iter_generate", None)
    return answer_all(requests, cache, key, engine.generate, stream, lambda v: Generation(**v), report)


def answer_loglikelihoods(
    requests: list[LoglikelihoodRequest],
    cache: ResponseCache | None,
    engine: Engine,
    report: Report | None = None,
) -> tuple[list[Loglikelihood], list[bool]]:
    """answer_all for log-likelihood requests."""
    key = cache.loglikelihood_key if cache else None
    return answer_all(requests, cache, key, engine.loglikelihood, None, lambda v: Loglikelihood(**v), report)
