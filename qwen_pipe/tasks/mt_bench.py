"""MT-Bench (Zheng et al., 2023): 80 two-turn questions in 8 categories, graded by an LLM judge.

This task only generates the two answers of each question (the second prompt sees the first answer). The
MT-Bench score (FastChat llm_judge: a judge model grades each turn 1-10) comes from the judge stage, not
from here; `score` only records whether both turns were answered, so the number this task reports is never
a quality score. There is no gold answer (reference answers exist for some questions only, for the judge),
so the oracle engine cannot run it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from qwen_pipe.engines.base import SamplingParams
from qwen_pipe.scoring.extract import strip_thinking
from qwen_pipe.tasks.common.base import (
    DataSource,
    GenerationTask,
    Prompt,
    PromptStyle,
    Response,
    SampleScore,
)
from qwen_pipe.tasks.common.registry import register

FIELDS = ("question_id", "category", "turns")
MAX_NEW_TOKENS = 1024  # per turn, FastChat gen_model_answer --max-new-token
# FastChat llm_judge's sampling temperature per category (greedy below 1e-4), applied per sample with
# the run's seed (see `sample_sampling`).
FASTCHAT_TEMPERATURE = {
    "writing": 0.7,
    "roleplay": 0.7,
    "extraction": 0.0,
    "math": 0.0,
    "coding": 0.0,
    "reasoning": 0.0,
    "stem": 0.1,
    "humanities": 0.1,
}


@register
class MTBench(GenerationTask):
    name = "mt_bench"
    kind = "judge"
    source = DataSource(
        hub_id="lighteval/mt-bench",  # keeps FastChat's fields; HuggingFaceH4/mt_bench_prompts renames them
        hub_config=None,
        split="train",
        rows=80,
        mirror_files=("mt_bench/question.jsonl",),
        embedded="4 two-turn questions written by qwen-pipe in MT-Bench's format (a sample, not the benchmark)",
        fields=FIELDS,
        embedded_file="mt_bench_sample.jsonl",
        id_format="mt_bench-{question_id}",
    )
    primary_metric = "answered"
    primary_is_accuracy = False  # a share of questions answered, not judged: no accuracy until the judge
    metrics = ("answered", "truncated")
    published_setting = (
        "FastChat llm_judge: 2 turns, the second after the model's first answer, up to 1024 new tokens per turn, "
        "temperature per category (applied per sample); the MT-Bench score comes "
        "from an LLM-judge stage that is not built yet: `answered` only says both turns were answered"
    )
    prompt_format = (
        "chat: turn 1 the first question as the only user turn; turn 2 adds the model's first answer (thinking "
        "stripped) and the second question; base: 'User: ...\\n\\nAssistant: ...' transcript"
    )

    def turns(self, sample: dict) -> int:
        return len(sample["turns"])

    def prompt(self, sample: dict, style: PromptStyle, history: Sequence[str] = ()) -> Prompt:
        """The prompt of turn len(history): every earlier question with the model's answer, then the next one."""
        questions = sample["turns"][: len(history) + 1]
        answers = [strip_thinking(a) for a in history]  # as Qwen3 advises: history without the thinking
        if style.chat:
            messages: list[dict[str, str]] = []
            for i, question in enumerate(questions):
                messages.append({"role": "user", "content": question})
                if i < len(answers):
                    messages.append({"role": "assistant", "content": answers[i]})
            return messages
        lines = []
        for i, question in enumerate(questions):
            lines.append(f"User: {question}\n\nAssistant:" + (f" {answers[i]}" if i < len(answers) else ""))
        return "\n\n".join(lines)

    def sampling(self, style: PromptStyle) -> SamplingParams:
        return SamplingParams(max_new_tokens=MAX_NEW_TOKENS, stop=() if style.chat else ("\nUser:",))

    def sample_sampling(self, sample: dict, sampling: SamplingParams) -> SamplingParams:
        temperature = FASTCHAT_TEMPERATURE.get(sample["category"], sampling.temperature)
        return replace(sampling, temperature=temperature if temperature >= 1e-4 else 0.0)

    def score(self, sample: dict, responses: Sequence[Response], style: PromptStyle) -> SampleScore:
        answers = [strip_thinking(r.text).strip() for r in responses]
        answered = len(answers) == self.turns(sample) and all(answers)
        truncated = any(r.finish_reason == "length" for r in responses)
        return SampleScore(
            {"answered": float(answered), "truncated": float(truncated)},
            {
                "answers": answers,
                "category": sample["category"],
                "fastchat_temperature": FASTCHAT_TEMPERATURE.get(sample["category"]),
            },
        )
