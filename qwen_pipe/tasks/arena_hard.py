"""Arena-Hard-Auto v0.1 (Li et al., 2024): 500 hard user prompts from Chatbot Arena, each answer judged
pairwise against GPT-4-0314's by an LLM judge; the score is the win rate against that baseline.

Generation: one answer per prompt (Arena-Hard's gen_answer: temperature 0, up to 4,096 tokens; under the
`qwen` protocol Qwen's own sampling). The win rate comes from the judge stage: Arena-Hard's judge prompt,
both orders of the two answers (game 1: the baseline is assistant A; game 2: it is B), the published
verdict weights, a bootstrap interval over prompts (scoring/judge.py). `score` only records whether the
prompt was answered. No gold answer: the oracle engine cannot run it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from qwen_pipe.engines.base import SamplingParams
from qwen_pipe.errors import QwenPipeError
from qwen_pipe.scoring.extract import strip_thinking
from qwen_pipe.scoring.judge import game_outcome, win_rate
from qwen_pipe.scoring.judge_prompts import ARENA_HARD_V0_1
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

FIELDS = ("question_id", "cluster", "turns")
BASELINE_MODEL = "gpt-4-0314"
MAX_NEW_TOKENS = 4096  # Arena-Hard v0.1 gen_answer_config.yaml max_tokens
JUDGE_MAX_NEW_TOKENS = 4096  # judge_config.yaml max_tokens (temperature 0)


@register
class ArenaHard(JudgedTask):
    name = "arena_hard"
    kind = "judge"
    source = DataSource(
        hub_id="lmarena-ai/arena-hard-auto-v0.1",
        hub_config=None,
        split="train",
        rows=500,
        mirror_files=("arena_hard/question.jsonl", "arena_hard/model_answer/gpt-4-0314.jsonl"),
        embedded="3 prompts with baseline answers written by qwen-pipe in Arena-Hard's format "
        "(a sample, not the benchmark)",
        fields=FIELDS,
        embedded_file="arena_hard_sample.jsonl",
        id_format="arena_hard-{question_id}",
    )
    primary_metric = "answered"
    primary_is_accuracy = False  # answered or not (completeness); the judge gives the win rate
    metrics = ("answered", "truncated")
    judge_metric = "win_rate"
    judge_scale = (0.0, 1.0)
    judge_max_new_tokens = JUDGE_MAX_NEW_TOKENS
    judge_setting = (
        "Arena-Hard-Auto v0.1: pairwise against gpt-4-0314's answers with the published judge prompt, both "
        "orders, [[A>>B]]..[[B>>A]] with strong verdicts weighing 3 and ties half, judge at temperature 0 with "
        "up to 4,096 tokens; the score is the win rate against the baseline with a bootstrap interval"
    )
    published_setting = (
        "Arena-Hard-Auto v0.1: one answer per prompt, up to 4,096 new tokens; the win rate against gpt-4-0314 "
        "comes from the judge stage, `answered` only says the prompt was answered"
    )
    prompt_format = "chat: the prompt as the only user turn; base: 'User: ...\\n\\nAssistant:' transcript"

    def load_mirror(self, root: Path) -> list[dict]:
        questions = read_mirror_jsonl(root, self.source.mirror_files[0], self.source.fields)
        baseline = {
            r["question_id"]: r["choices"][0]["turns"][0]["content"]
            for r in read_mirror_jsonl(root, self.source.mirror_files[1], ("question_id", "choices"))
        }
        return [
            {**q, "baseline_answer": baseline[q["question_id"]], "baseline_model": BASELINE_MODEL}
            if q["question_id"] in baseline
            else q
            for q in questions
        ]

    def prompt(self, sample: dict, style: PromptStyle, history: Sequence[str] = ()) -> Prompt:
        question = sample["turns"][0]["content"]
        if style.chat:
            return [{"role": "user", "content": question}]
        return f"User: {question}\n\nAssistant:"

    def sampling(self, style: PromptStyle) -> SamplingParams:
        return SamplingParams(max_new_tokens=MAX_NEW_TOKENS, stop=() if style.chat else ("\nUser:",))

    def score(self, sample: dict, responses: Sequence[Response], style: PromptStyle) -> SampleScore:
        answer = strip_thinking(responses[0].text).strip() if responses else ""
        truncated = any(r.finish_reason == "length" for r in responses)
        return SampleScore(
            {"answered": float(bool(answer)), "truncated": float(truncated)}, {"answer": answer}
        )

    # --- judging (the judge stage) ---------------------------------------------------------------
    def judge_requests(self, sample: dict, answers: Sequence[str]) -> list[JudgeRequest]:
        baseline = sample.get("baseline_answer")
        if baseline is None:
            raise QwenPipeError(
                f"Arena-Hard prompt {sample['question_id']} has no {BASELINE_MODEL} baseline answer",
                f"fetch arena_hard from a mirror that holds {self.source.mirror_files[1]} (fetch.source mirror)",
            )
        question, answer = sample["turns"][0]["content"], (answers or [""])[0]
        games = {"game_1": (baseline, answer), "game_2": (answer, baseline)}  # game 1: baseline is A
        return [
            JudgeRequest(
                key,
                ARENA_HARD_V0_1.name,
                tuple(ARENA_HARD_V0_1.messages(question_1=question, answer_1=a, answer_2=b)),
                "pairwise",
            )
            for key, (a, b) in games.items()
        ]

    def judge_scores(self, sample: dict, verdicts: dict) -> dict[str, float]:
        outcomes = [
            game_outcome(str(label), model_is_a=key == "game_2")
            for key, label in verdicts.items()
            if label is not None
        ]
        if not outcomes:
            return {}
        wins, losses, ties = (sum(o[i] for o in outcomes) for i in range(3))
        return {
            "win_rate": (wins + ties / 2) / (wins + losses + ties),
            "wins": wins,
            "losses": losses,
            "ties": ties,
        }

    def judge_aggregate(self, samples: Sequence[dict], scores: Sequence[dict[str, float]]) -> dict:
        judged = [s for s in scores if "win_rate" in s]
        overall = win_rate([[(s["wins"], s["losses"], s["ties"])] for s in judged])
        per_question = mean_and_stderr([s["win_rate"] for s in judged])
        return {
            "score": overall["value"],
            "stderr": per_question["stderr"],
            "ci_low": overall["low"],
            "ci_high": overall["high"],
            "n": overall["n"],
            # whose answers the model was judged against (the embedded sample's are qwen-pipe's own)
            "baseline": ", ".join(sorted({s.get("baseline_model", BASELINE_MODEL) for s in samples})),
            "metrics": {
                "question_win_rate": per_question,
                **{
                    name: {"value": sum(s[name] for s in judged), "n": len(judged)}
                    for name in ("wins", "losses", "ties")
                },
            },
        }
