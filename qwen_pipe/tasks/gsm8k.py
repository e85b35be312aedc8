"""GSM8K (Cobbe et al., 2021): grade-school math word problems, chain-of-thought, exact numeric match."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from qwen_pipe.engines.base import SamplingParams
from qwen_pipe.scoring.extract import gsm8k_flexible, gsm8k_strict, normalize_number, strip_thinking
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

FIELDS = ("question", "answer")
INSTRUCTION = "Solve the math problem step by step. Finish with a final line of the form '#### <number>'."


def gold_number(answer: str) -> str | None:
    return normalize_number(answer.rsplit("####", 1)[-1])


@register
class GSM8K(GenerationTask):
    name = "gsm8k"
    kind = "generation"
    source = DataSource(
        hub_id="openai/gsm8k",
        hub_config="main",
        split="test",
        rows=1319,
        mirror_files=("gsm8k/test.jsonl",),
        embedded="16 problems written by qwen-pipe in GSM8K's format (a sample, not the benchmark)",
        fields=FIELDS,
        embedded_file="gsm8k_sample.jsonl",
    )
    primary_metric = "flexible_match"
    metrics = ("strict_match", "flexible_match")
    published_setting = (
        "Qwen3 report: 4-shot chain of thought (Qwen-1 README: 8-shot); exemplars of Wei et al. (2022) in "
        "GSM8K's '#### N' format; chat models get the shots as earlier turns"
    )
    prompt_format = (
        "base: 'Question: q\\nAnswer: worked answer ending #### N' x shots, then the question; "
        "chat: each shot a user turn (instruction + question) and an assistant turn"
    )
    default_shots = 4

    def sample_id(self, record: dict, index: int) -> str:
        # a hash of the question text itself (content_id hashes a JSON list of fields: other ids)
        return "gsm8k-" + hashlib.sha256(record["question"].encode()).hexdigest()[:16]

    def _shots(self) -> list[dict]:
        return first_shots(embedded_exemplars("gsm8k_fewshot.jsonl"), self.shots, "gsm8k")

    def prompt(self, sample: dict, style: PromptStyle, history: Sequence[str] = ()) -> Prompt:
        if style.chat:
            messages: list[dict[str, str]] = []
            for shot in self._shots():
                messages.append({"role": "user", "content": f"{INSTRUCTION}\n\nQuestion: {shot['question']}"})
                messages.append({"role": "assistant", "content": shot["answer"]})
            messages.append({"role": "user", "content": f"{INSTRUCTION}\n\nQuestion: {sample['question']}"})
            return messages
        shots = "".join(f"Question: {s['question']}\nAnswer: {s['answer']}\n\n" for s in self._shots())
        return f"{shots}Question: {sample['question']}\nAnswer:"

    def sampling(self, style: PromptStyle) -> SamplingParams:
        return SamplingParams(max_new_tokens=512, stop=("Question:", "\n\n\n"))

    def gold_output(self, sample: dict, turn: int = 0) -> str | None:
        return sample["answer"]

    def score(self, sample: dict, responses: Sequence[Response], style: PromptStyle) -> SampleScore:
        text = strip_thinking(responses[0].text)
        gold = gold_number(sample["answer"])
        strict, flexible = gsm8k_strict(text), gsm8k_flexible(text)
        return SampleScore(
            {"strict_match": float(strict == gold), "flexible_match": float(flexible == gold)},
            {"strict": strict, "flexible": flexible, "gold": gold},
        )
