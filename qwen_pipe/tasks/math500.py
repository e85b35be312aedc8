"""MATH-500 (Lightman et al., 2023): a 500-problem subset of the MATH test set, chain of thought, answer equivalence."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from qwen_pipe.engines.base import SamplingParams
from qwen_pipe.scoring.extract import strip_thinking
from qwen_pipe.scoring.math_equiv import extract_math_answer, is_equiv
from qwen_pipe.tasks.common.base import (
    DataSource,
    GenerationTask,
    Prompt,
    PromptStyle,
    Response,
    SampleScore,
    embedded_exemplars,
    first_shots,
)
from qwen_pipe.tasks.common.registry import register

FIELDS = ("problem", "solution", "answer", "unique_id")
# Qwen's own math instruction (Qwen3 model card, Qwen2.5-Math evaluation "qwen25-math-cot").
CHAT_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
MAX_NEW_TOKENS = 2048  # the Qwen2.5-Math evaluation default (math_eval.py --max_tokens_per_call)


@register
class Math500(GenerationTask):
    name = "math500"
    lm_eval_task = "minerva_math500"
    kind = "generation"
    source = DataSource(
        hub_id="HuggingFaceH4/MATH-500",
        hub_config=None,
        split="test",
        rows=500,
        mirror_files=("math500/test.jsonl",),
        embedded="8 problems written by qwen-pipe in MATH-500's format (a sample, not the benchmark)",
        fields=FIELDS,
        embedded_file="math500_sample.jsonl",
    )
    primary_metric = "exact_match"
    metrics = ("exact_match",)
    published_setting = (
        "Qwen3 report (base models): MATH 4-shot chain of thought with the 4 Minerva exemplars "
        "(Lewkowycz et al., 2022; as lm-eval minerva_math); answer = last \\boxed{} or Minerva's 'final answer is $X$'"
    )
    prompt_format = (
        "base: 'Problem:\\n<problem>\\n\\nSolution: <solution ending Final Answer: ...>' x shots, then "
        "'Problem:\\n<problem>\\n\\nSolution:'; chat: each shot a user turn (problem + boxed instruction) "
        "and an assistant turn"
    )
    default_shots = 4
    protocol_settings: ClassVar[dict[str, tuple[int, str]]] = {
        "lm-eval": (
            4,
            "lm-eval `minerva_math500`: the 4 Minerva exemplars, 'Problem:\\n<problem>\\n\\nSolution:' for every "
            "model, stop 'Problem:', 256 tokens (lm-eval's default); graded by qwen-pipe's answer equivalence "
            "(lm-eval's needs math_verify and antlr4 4.11: docs/tasks.md)",
        )
    }

    def sample_id(self, record: dict, index: int) -> str:
        # unique_id is "test/<subject>/<n>.json" on the hub
        return "math500-" + record["unique_id"].removesuffix(".json").replace("/", "-")

    def _shots(self) -> list[dict]:
        return first_shots(
            embedded_exemplars("math500_fewshot.jsonl"),
            self.shots,
            "math500",
            "use at most 4 shots",
            "Minerva exemplars",
        )

    def prompt(self, sample: dict, style: PromptStyle, history: Sequence[str] = ()) -> Prompt:
        if style.chat and not self.lm_eval:
            messages: list[dict[str, str]] = []
            for shot in self._shots():
                messages.append({"role": "user", "content": f"{shot['problem']}\n{CHAT_INSTRUCTION}"})
                messages.append({"role": "assistant", "content": shot["solution"]})
            messages.append({"role": "user", "content": f"{sample['problem']}\n{CHAT_INSTRUCTION}"})
            return messages
        shots = "".join(f"Problem:\n{s['problem']}\n\nSolution: {s['solution']}\n\n" for s in self._shots())
        return f"{shots}Problem:\n{sample['problem']}\n\nSolution:"

    def sampling(self, style: PromptStyle) -> SamplingParams:
        if self.lm_eval:
            return SamplingParams(max_new_tokens=256, stop=("Problem:",))
        # a base model goes on with the next "Problem:" of the few-shot pattern; a chat model ends its turn
        return SamplingParams(max_new_tokens=MAX_NEW_TOKENS, stop=() if style.chat else ("Problem:",))

    def gold_output(self, sample: dict, turn: int = 0) -> str | None:
        return sample["solution"]

    def score(self, sample: dict, responses: Sequence[Response], style: PromptStyle) -> SampleScore:
        answer = extract_math_answer(strip_thinking(responses[0].text))
        correct = is_equiv(answer, sample["answer"])
        return SampleScore({"exact_match": float(correct)}, {"answer": answer, "gold": sample["answer"]})
