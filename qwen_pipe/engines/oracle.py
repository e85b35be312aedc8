"""The oracle engine answers with each sample's gold answer: a scorer that is right gives it 1.0."""

from __future__ import annotations

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


@register_engine("oracle", in_process=True, version="1", gold_answers=True)
class OracleEngine:
    """`wrong=True` gives the opposite: empty answers and the highest likelihood to a wrong choice."""

    def __init__(self, model: str, wrong: bool = False):
        self.wrong = wrong
        self.info = EngineInfo(engine="oracle-wrong" if wrong else "oracle", version="1", model=model)

    @classmethod
    def from_config(
        cls, spec: ModelSpec, preset: Preset, engine_params: EngineParams, *, seed: int, load_format: str
    ) -> OracleEngine:
        return cls(spec.name)

    @classmethod
    def output_args(
        cls, spec: ModelSpec, preset: Preset, engine_params: EngineParams, load_format: str
    ) -> dict:
        return {}  # the gold answer, whatever the model and its arguments

    def generate(self, requests: list[GenerationRequest]) -> list[Generation]:
        results = []
        for request in requests:
            if request.gold is None and not self.wrong:
                raise QwenPipeError(
                    "the oracle engine needs a gold answer, and this task has none",
                    "use a model engine (vllm, transformers, openai) for tasks without gold answers",
                )
            text = "" if self.wrong else request.gold
            results.append(Generation(text=text, prompt_tokens=0, output_tokens=0, finish_reason="oracle"))
        return results

    def loglikelihood(self, requests: list[LoglikelihoodRequest]) -> list[Loglikelihood]:
        results = []
        for request in requests:
            if request.gold is None:
                raise QwenPipeError(
                    "a log-likelihood request without a gold flag", "mark gold choices in the task"
                )
            preferred = request.gold != self.wrong
            results.append(Loglikelihood(0.0 if preferred else -100.0, preferred, 1))
        return results

    def close(self) -> None:
        pass
