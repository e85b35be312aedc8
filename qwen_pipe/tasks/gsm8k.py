"""GSM8K (Cobbe et al., 2021): grade-school math word problems, chain-of-thought, exact numeric match."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import ClassVar

from qwen_pipe.engines.base import SamplingParams
from qwen_pipe.scoring.extract import gsm8k_flexible, gsm8k_strict, normalize_number, strip_thinking
from qwen_pipe.scoring.lm_eval import exact_match, regex_filter
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
# lm-eval `gsm8k_cot` (the chain-of-thought variant, as the published few-shot CoT numbers): its filters
# and its exact_match options
LM_EVAL_STRICT = r"The answer is (\-?[0-9\.\,]+)."
LM_EVAL_FLEXIBLE = r"(-?[$0-9.,]{2,})|(-?[0-9]+)"
LM_EVAL_IGNORE = (",", r"\$", r"(?s).*#### ", r"\.$")
LM_EVAL_STOPS = ("Q:", "</s>", "<|im_end|>")
LM_EVAL_MAX_NEW_TOKENS = 256  # lm-eval's default max_gen_toks (gsm8k_cot sets none)


def gold_number(answer: str) -> str | None:
    return normalize_number(answer.rsplit("####", 1)[-1])


@register
class GSM8K(GenerationTask):
    name = "gsm8k"
    lm_eval_task = "gsm8k_cot"
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
    protocol_settings: ClassVar[dict[str, tuple[int, str]]] = {
        "lm-eval": (
            8,
            "lm-eval `gsm8k_cot` (chosen over `gsm8k`: the published numbers are few-shot chain of thought): its "
            "8 exemplars 'Q: q\\nA: ... The answer is N.', stops 'Q:', '</s>', '<|im_end|>', 256 tokens; "
            "strict = first 'The answer is N.', flexible = last number; exact match ignoring case, ',', '$'",
        )
    }

    def sample_id(self, record: dict, index: int) -> str:
        # a hash of the question text itself (content_id hashes a JSON list of fields: other ids)
        return "gsm8k-" + hashlib.sha256(record["question"].encode()).hexdigest()[:16]

    def _shots(self) -> list[dict]:
        return first_shots(embedded_exemplars("gsm8k_fewshot.jsonl"), self.shots, "gsm8k")

    def prompt(self, sample: dict, style: PromptStyle, history: Sequence[str] = ()) -> Prompt:
        if self.lm_eval:
            exemplars = first_shots(embedded_exemplars("gsm8k_cot_fewshot.jsonl"), self.shots, "gsm8k_cot")
            shots = "".join(f"Q: {s['question']}\nA: {s['target']}\n\n" for s in exemplars)
            return f"{shots}Q: {sample['question']}\nA:"
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
        if self.lm_eval:
            return SamplingParams(max_new_tokens=LM_EVAL_MAX_NEW_TOKENS, stop=LM_EVAL_STOPS)
        return SamplingParams(max_new_tokens=512, stop=("Question:", "\n\n\n"))

    def gold_output(self, sample: dict, turn: int = 0) -> str | None:
        if self.lm_eval:
            body, _, number = sample["answer"].rpartition("####")
            return f"{body.strip()} The answer is {number.strip()}."
        return sample["answer"]

    def score(self, sample: dict, responses: Sequence[Response], style: PromptStyle) -> SampleScore:
        if self.lm_eval:
            return self._score_lm_eval(sample, responses[0].text)
        text = strip_thinking(responses[0].text)
        gold = gold_number(sample["answer"])
        strict, flexible = gsm8k_strict(text), gsm8k_flexible(text)
        return SampleScore(
            {"strict_match": float(strict == gold), "flexible_match": float(flexible == gold)},
            {"strict": strict, "flexible": flexible, "gold": gold},
        )

    def _score_lm_eval(self, sample: dict, text: str) -> SampleScore:
        gold = sample["answer"].split("####")[-1].strip()
        strict, flexible = regex_filter(text, LM_EVAL_STRICT), regex_filter(text, LM_EVAL_FLEXIBLE, -1)
        return SampleScore(
            {
                "strict_match": float(exact_match(strict, gold, LM_EVAL_IGNORE, ignore_case=True)),
                "flexible_match": float(exact_match(flexible, gold, LM_EVAL_IGNORE, ignore_case=True)),
            },
            {"strict": strict, "flexible": flexible, "gold": gold},
        )
