"""The engine interface every backend implements: generate and loglikelihood, nothing else.

Prompts arrive fully rendered (chat template already applied), so every engine sees the same text and
the exact prompt can be hashed for caching and provenance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class SamplingParams:
    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = -1
    presence_penalty: float = 0.0
    stop: tuple[str, ...] = ()
    seed: int = 0
    ignore_eos: bool = False  # generate exactly max_new_tokens (fixed benchmark workloads)


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str
    sampling: SamplingParams
    gold: str | None = None  # only the oracle engine reads it


@dataclass
class Generation:
    text: str
    prompt_tokens: int
    output_tokens: int
    finish_reason: str  # "stop" | "length" | "oracle" | ...
    seconds: float = 0.0  # engine wall time of the batch, shared out per request


@dataclass(frozen=True)
class LoglikelihoodRequest:
    context: str
    continuation: str
    gold: bool | None = None  # only the oracle engine reads it: is this continuation a correct answer?


@dataclass
class Loglikelihood:
    logprob: float
    is_greedy: bool
    continuation_tokens: int


@dataclass
class EngineInfo:
    """What produced the results: recorded with every output."""

    engine: str
    version: str
    model: str
    args: dict = field(default_factory=dict)


class Engine(Protocol):
    info: EngineInfo

    def generate(self, requests: list[GenerationRequest]) -> list[Generation]: ...

    def loglikelihood(self, requests: list[LoglikelihoodRequest]) -> list[Loglikelihood]: ...

    def close(self) -> None: ...
