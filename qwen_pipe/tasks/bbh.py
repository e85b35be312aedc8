"""BIG-Bench Hard (Suzgun et al., 2022): 27 subtasks, 3-shot chain of thought, exact match of the final answer.

One dataset whose records carry their `subtask`. The official CoT prompts (`cot-prompts/<subtask>.txt` of
the BIG-Bench-Hard repository) are not on the hub, so the loaders read them from the mirror and store each
subtask's prompt in its records (`cot_prompt`, the file without its canary header): prompts then travel
with the data from the fetch stage to generation, and the dataset hash covers them. The embedded sample
has its own small exemplars, written by qwen-pipe.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from qwen_pipe.engines.base import SamplingParams
from qwen_pipe.errors import QwenPipeError
from qwen_pipe.scoring.extract import bbh_answer, normalize_bbh
from qwen_pipe.scoring.lm_eval import regex_filter
from qwen_pipe.scoring.stats import group_means, macro_average, mean_and_stderr
from qwen_pipe.sources.hub import load_hub_split
from qwen_pipe.sources.mirror import DATA_DIR_ENV, mirror_file, require_fields, resolve_data_dir
from qwen_pipe.tasks.common.base import (
    DataSource,
    GenerationTask,
    Prompt,
    PromptStyle,
    Response,
    SampleScore,
    embedded_records,
    first_shots,
)
from qwen_pipe.tasks.common.registry import register

SUBTASKS = (
    "boolean_expressions",
    "causal_judgement",
    "date_understanding",
    "disambiguation_qa",
    "dyck_languages",
    "formal_fallacies",
    "geometric_shapes",
    "hyperbaton",
    "logical_deduction_five_objects",
    "logical_deduction_seven_objects",
    "logical_deduction_three_objects",
    "movie_recommendation",
    "multistep_arithmetic_two",
    "navigate",
    "object_counting",
    "penguins_in_a_table",
    "reasoning_about_colored_objects",
    "ruin_names",
    "salient_translation_error_detection",
    "snarks",
    "sports_understanding",
    "temporal_sequences",
    "tracking_shuffled_objects_five_objects",
    "tracking_shuffled_objects_seven_objects",
    "tracking_shuffled_objects_three_objects",
    "web_of_lies",
    "word_sorting",
)
FIELDS = ("input", "target")
ANSWER_PREFIX = "Let's think step by step."
MAX_NEW_TOKENS = 1024  # lm-eval bbh_cot_fewshot max_gen_toks
# lm-eval `bbh_cot_fewshot`: the same official exemplars, rendered 'Q: ...\nA: Let's think step by step.\n<chain>',
# stopped at "Q" and a blank line, the answer read by its regex and compared as is
LM_EVAL_STOPS = ("</s>", "Q", "\n\n")
LM_EVAL_ANSWER = r"(?<=the answer is )(.*)(?=.)"


def cot_prompt_text(raw: str) -> str:
    """The prompt of a cot-prompts file: the text after the canary header ("...canary GUID ...\\n-----\\n")."""
    _, separator, body = raw.partition("\n-----\n")
    return (body if separator else raw).strip("\n")


def parse_cot_prompt(text: str) -> tuple[str, list[tuple[str, str]]]:
    """The task description and the (question, answer) exemplars of a CoT prompt.

    The prompt is "<description>\\n\\nQ: <question>\\nA: <answer>" with one "Q:/A:" block per exemplar; each
    answer starts "Let's think step by step." and ends "So the answer is <target>."
    """
    description, *blocks = text.split("\n\nQ: ")
    exemplars = []
    for block in blocks:
        question, separator, answer = block.partition("\nA: ")
        if not separator:
            raise QwenPipeError(
                f"a BBH CoT exemplar without an 'A:' line: {block[:80]!r}", "fix the prompt file"
            )
        exemplars.append((question, answer))
    return description, exemplars


def _lm_eval_turn(question: str) -> str:
    return f"Q: {question}\nA: {ANSWER_PREFIX}\n"


def _gathered(examples: list[dict], subtask: str, cot_prompt: str) -> list[dict]:
    return [
        {"input": e["input"], "target": e["target"], "subtask": subtask, "cot_prompt": cot_prompt}
        for e in examples
    ]


@register
class BBH(GenerationTask):
    name = "bbh"
    lm_eval_task = "bbh_cot_fewshot"
    kind = "generation"
    source = DataSource(
        hub_id="lukaemon/bbh",
        hub_config=None,  # one config per subtask; load_hub reads all 27
        split="test",
        rows=6511,
        mirror_files=tuple(f"bbh/{t}.json" for t in SUBTASKS)
        + tuple(f"bbh/cot-prompts/{t}.txt" for t in SUBTASKS),
        embedded="9 questions of 3 subtasks with CoT exemplars, written by qwen-pipe in BBH's format "
        "(a sample, not the benchmark)",
        fields=FIELDS,
        embedded_file="bbh_sample.jsonl",
    )
    primary_metric = "exact_match"
    metrics = ("exact_match", "exact_match_macro")
    published_setting = (
        "Qwen3 report (base models): BBH 3-shot chain of thought with the official prompts of the BIG-Bench-Hard "
        "repository (cot-prompts/<subtask>.txt), as lm-eval bbh_cot_fewshot; exact match of the answer after "
        "'the answer is'; primary = mean over all 6511 samples (lm-eval's size-weighted bbh group), macro "
        "mean over the 27 subtasks (OpenCompass) reported too"
    )
    prompt_format = (
        "base: the subtask's official prompt (description, then 'Q: ...\\nA: Let's think step by step. ...' x shots), "
        "then '\\n\\nQ: <input>\\nA: Let's think step by step.'; chat: each shot a user turn 'Q: <input>' (the first "
        "led by the description) and an assistant turn with its chain of thought"
    )
    default_shots = 3
    protocol_settings: ClassVar[dict[str, tuple[int, str]]] = {
        "lm-eval": (
            3,
            "lm-eval `bbh_cot_fewshot` (the published setting is 3-shot CoT): the official exemplars as "
            "'Q: q\\nA: Let's think step by step.\\n<chain>', stops 'Q' and a blank line, 1,024 tokens; answer "
            "= first match of '(?<=the answer is )(.*)(?=.)', exact match as is; mean over all samples",
        )
    }

    # --- data -----------------------------------------------------------------------------------
    def load_mirror(self, root: Path) -> list[dict]:
        records = []
        for subtask in SUBTASKS:
            path = mirror_file(root, f"bbh/{subtask}.json")
            data = require_fields([json.loads(path.read_text(encoding="utf-8"))], ("examples",), path)[0]
            examples = require_fields(data["examples"], FIELDS, path)
            records += _gathered(examples, subtask, self._official_prompt(root, subtask))
        return records

    def load_hub(self) -> list[dict]:
        root = resolve_data_dir(None)
        if root is None:
            raise QwenPipeError(
                "bbh from the hub needs the official CoT prompts (bbh/cot-prompts/<subtask>.txt), which the hub lacks",
                f"set {DATA_DIR_ENV} to a mirror that holds them (laid out like ../shared/datasets), "
                "or use source 'mirror' or 'embedded'",
            )
        # the prompts first: a mirror without them fails before any download
        prompts = {subtask: self._official_prompt(root, subtask) for subtask in SUBTASKS}
        records = []
        for subtask in SUBTASKS:
            rows = load_hub_split(self.source.hub_id, subtask, self.source.split)
            records += _gathered(
                require_fields(rows, FIELDS, Path(f"{self.source.hub_id}/{subtask}")),
                subtask,
                prompts[subtask],
            )
        return records

    def load_embedded(self) -> list[dict]:
        prompts = {p["subtask"]: p["prompt"] for p in embedded_records("bbh_cot_prompts.jsonl")}
        return [{**r, "cot_prompt": prompts[r["subtask"]]} for r in super().load_embedded()]

    @staticmethod
    def _official_prompt(root: Path, subtask: str) -> str:
        path = mirror_file(root, f"bbh/cot-prompts/{subtask}.txt")
        return cot_prompt_text(path.read_text(encoding="utf-8"))

    def sample_id(self, record: dict, index: int) -> str:
        # the position in file order (subtasks in SUBTASKS order): causal_judgement and sports_understanding
        # each hold a repeated input, so the text alone does not identify a sample
        return f"bbh-{record['subtask']}-{index:04d}"

    # --- prompt -----------------------------------------------------------------------------------
    def _exemplars(self, sample: dict) -> tuple[str, list[tuple[str, str]]]:
        description, exemplars = parse_cot_prompt(sample["cot_prompt"])
        return description, first_shots(
            exemplars, self.shots, f"bbh {sample['subtask']}", "use at most 3 shots", "CoT exemplars"
        )

    def prompt(self, sample: dict, style: PromptStyle, history: Sequence[str] = ()) -> Prompt:
        description, exemplars = self._exemplars(sample)
        if self.lm_eval:
            shots = "".join(
                f"{_lm_eval_turn(q)}{a.removeprefix(ANSWER_PREFIX).lstrip()}\n\n" for q, a in exemplars
            )
            return f"{description}\n\n{shots}{_lm_eval_turn(sample['input'])}"
        if style.chat:
            questions = [q for q, _ in exemplars] + [sample["input"]]
            messages: list[dict[str, str]] = []
            for i, question in enumerate(questions):
                lead = f"{description}\n\n" if i == 0 else ""
                messages.append({"role": "user", "content": f"{lead}Q: {question}"})
                if i < len(exemplars):
                    messages.append({"role": "assistant", "content": exemplars[i][1]})
            return messages
        shots = "".join(f"\n\nQ: {q}\nA: {a}" for q, a in exemplars)
        return f"{description}{shots}\n\nQ: {sample['input']}\nA: {ANSWER_PREFIX}"

    def sampling(self, style: PromptStyle) -> SamplingParams:
        if self.lm_eval:
            return SamplingParams(max_new_tokens=MAX_NEW_TOKENS, stop=LM_EVAL_STOPS)
        # lm-eval stops at "\n\n" and "Q" (a bare "Q" also cuts a chain of thought that mentions "Queen");
        # a chat model ends its turn, and its answers may hold blank lines
        return SamplingParams(max_new_tokens=MAX_NEW_TOKENS, stop=() if style.chat else ("\n\n", "\nQ:"))

    def gold_output(self, sample: dict, turn: int = 0) -> str | None:
        if self.lm_eval:  # the prompt ends with the prefix; the reply is the chain after it
            return f"So the answer is {sample['target']}."
        return f"{ANSWER_PREFIX}\nSo the answer is {sample['target']}."

    # --- scoring ------------------------------------------------------------------------------------
    def score(self, sample: dict, responses: Sequence[Response], style: PromptStyle) -> SampleScore:
        if self.lm_eval:
            answer, gold = regex_filter(responses[0].text, LM_EVAL_ANSWER), sample["target"]
        else:
            answer, gold = bbh_answer(responses[0].text), normalize_bbh(sample["target"])
        return SampleScore(
            {"exact_match": float(answer == gold)},
            {"answer": answer, "gold": gold, "subtask": sample["subtask"]},
        )

    def aggregate(self, samples: Sequence[dict], scores: Sequence[SampleScore]) -> dict[str, dict]:
        """Mean over samples (primary), macro mean over subtasks, and each subtask's accuracy."""
        per_subtask = group_means(
            (sample["subtask"], score.metrics["exact_match"])
            for sample, score in zip(samples, scores, strict=True)
        )
        out = {"exact_match": mean_and_stderr([s.metrics["exact_match"] for s in scores])}
        out["exact_match_macro"] = macro_average(per_subtask, len(scores))
        out |= {f"exact_match/{t}": m for t, m in per_subtask.items()}
        return out
