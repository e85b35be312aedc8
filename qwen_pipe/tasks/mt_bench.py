"""MT-Bench (Zheng et al., 2023): 80 two-turn questions in 8 categories, graded by an LLM judge.

Generation: the two answers of each question (the second prompt sees the first answer). `score` only records
whether both turns were answered (completeness, never a quality score); the MT-Bench score comes from the
judge stage, as FastChat llm_judge grades: single-answer grading of each turn on 1-10 with `single-v1`, and
for math, reasoning and coding `single-math-v1` with GPT-4's reference answers; turn 2 with the multi-turn
variants (the whole conversation shown, the judge told to grade the second answer). There is no gold
answer, so the oracle engine cannot run it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from qwen_pipe.engines.base import SamplingParams
from qwen_pipe.errors import QwenPipeError
from qwen_pipe.scoring.extract import strip_thinking
from qwen_pipe.scoring.judge import RATING_SCALE, rating_summary
from qwen_pipe.scoring.judge_prompts import (
    SINGLE_MATH_V1,
    SINGLE_MATH_V1_MULTI_TURN,
    SINGLE_V1,
    SINGLE_V1_MULTI_TURN,
)
from qwen_pipe.scoring.stats import mean_and_stderr
from qwen_pipe.sources.mirror import read_mirror_jsonl
from qwen_pipe.tasks.common.base import (
    DataSource,
    JudgedTask,
    JudgeRequest,
    Prompt,
    PromptStyle,
    Response,
    SampleScore,
)
from qwen_pipe.tasks.common.registry import register

FIELDS = ("question_id", "category", "turns")
NEED_REF_CATS = (
    "math",
    "reasoning",
    "coding",
)  # FastChat gen_judgment.py (its arena-hard-200 is not MT-Bench)
JUDGE_MAX_NEW_TOKENS = 2048  # FastChat run_judge_single: max_tokens=2048, temperature 0
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
class MTBench(JudgedTask):
    name = "mt_bench"
    kind = "judge"
    source = DataSource(
        hub_id="lighteval/mt-bench",  # keeps FastChat's fields; HuggingFaceH4/mt_bench_prompts renames them
        hub_config=None,
        split="train",
        rows=80,
        mirror_files=("mt_bench/question.jsonl", "mt_bench/reference_answer/gpt-4.jsonl"),
        embedded="4 two-turn questions written by qwen-pipe in MT-Bench's format (a sample, not the benchmark)",
        fields=FIELDS,
        embedded_file="mt_bench_sample.jsonl",
        id_format="mt_bench-{question_id}",
    )
    primary_metric = "answered"
    primary_is_accuracy = False  # a share of questions answered (completeness); the judge gives the score
    metrics = ("answered", "truncated")
    judge_metric = "rating"
    judge_scale = RATING_SCALE
    judge_max_new_tokens = JUDGE_MAX_NEW_TOKENS
    judge_setting = (
        "FastChat llm_judge single-answer grading: each turn rated 1-10 (single-v1; single-math-v1 with GPT-4's "
        "reference answers for math, reasoning and coding; their multi-turn variants for turn 2), judge at "
        "temperature 0 with up to 2,048 tokens; the score is the mean of every rating"
    )
    published_setting = (
        "FastChat llm_judge: 2 turns, the second after the model's first answer, up to 1024 new tokens per turn, "
        "temperature per category (applied per sample); the MT-Bench score (1-10) comes from the judge stage, "
        "`answered` only says both turns were answered"
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

    # --- data: FastChat's questions with GPT-4's reference answers for the judge -----------------------
    def load_mirror(self, root: Path) -> list[dict]:
        questions = read_mirror_jsonl(root, self.source.mirror_files[0], self.source.fields)
        references = {
            r["question_id"]: r["choices"][0]["turns"]
            # FastChat's judge reads GPT-4's reference answers
            for r in read_mirror_jsonl(root, self.source.mirror_files[1], ("question_id", "choices"))
        }
        return [
            {**q, "reference_answer": references[q["question_id"]]} if q["question_id"] in references else q
            for q in questions
        ]

    # --- judging (the judge stage) ---------------------------------------------------------------
    def judge_requests(self, sample: dict, answers: Sequence[str]) -> list[JudgeRequest]:
        """Turn 1 and turn 2 graded apart, as FastChat's `make_judge_single` pairs prompts and questions."""
        questions = sample["turns"]
        answers = [*answers, "", ""][:2]  # an unanswered turn is judged as the empty answer it is
        reference: dict[str, str] = {}
        if sample["category"] in NEED_REF_CATS:
            turns = sample.get("reference_answer") or sample.get("reference") or []
            if len(turns) < 2:
                raise QwenPipeError(
                    f"MT-Bench question {sample['question_id']} ({sample['category']}) has no reference answers",
                    f"fetch mt_bench from a mirror that holds {self.source.mirror_files[1]} (fetch.source mirror)",
                )
            reference = {"ref_answer_1": turns[0], "ref_answer_2": turns[1]}
        first, second = (
            (SINGLE_MATH_V1, SINGLE_MATH_V1_MULTI_TURN) if reference else (SINGLE_V1, SINGLE_V1_MULTI_TURN)
        )
        one = {"question": questions[0], "answer": answers[0]}
        if reference:
            one["ref_answer_1"] = reference["ref_answer_1"]
        two = {
            "question_1": questions[0],
            "question_2": questions[1],
            "answer_1": answers[0],
            "answer_2": answers[1],
            **reference,
        }
        return [
            JudgeRequest("turn_1", first.name, tuple(first.messages(**one)), "rating"),
            JudgeRequest("turn_2", second.name, tuple(second.messages(**two)), "rating"),
        ]

    def judge_scores(self, sample: dict, verdicts: dict) -> dict[str, float]:
        ratings = {k: float(v) for k, v in verdicts.items() if v is not None}
        scores = dict(ratings)
        if ratings:
            scores["rating"] = sum(ratings.values()) / len(ratings)
        return scores

    def judge_aggregate(self, samples: Sequence[dict], scores: Sequence[dict[str, float]]) -> dict:
        """FastChat's numbers: the mean of every rating (both turns pooled), each turn's, each category's;
        the interval resamples ratings."""
        pooled = [s[turn] for s in scores for turn in ("turn_1", "turn_2") if turn in s]
        overall = rating_summary(pooled)
        metrics = {
            turn: mean_and_stderr([s[turn] for s in scores if turn in s]) for turn in ("turn_1", "turn_2")
        }
        for category in sorted({s["category"] for s in samples}):
            metrics[f"category/{category}"] = mean_and_stderr(
                [
                    s[turn]
                    for sample, s in zip(samples, scores, strict=True)
                    if sample["category"] == category
                    for turn in ("turn_1", "turn_2")
                    if turn in s
                ]
            )
        return {
            "score": overall["value"],
            "stderr": overall["stderr"],
            "ci_low": overall["low"],
            "ci_high": overall["high"],
            "n": sum(1 for s in scores if "rating" in s),
            "ratings": overall["n"],
            "metrics": metrics,
        }
