"""HellaSwag (Zellers et al., 2019): pick the most plausible continuation of an ActivityNet or WikiHow context."""

from __future__ import annotations

import re

from qwen_pipe.tasks.common.base import DataSource
from qwen_pipe.tasks.common.multiple_choice import MultipleChoiceTask
from qwen_pipe.tasks.common.registry import register

FIELDS = (
    "ind",
    "activity_label",
    "ctx_a",
    "ctx_b",
    "ctx",
    "endings",
    "source_id",
    "split",
    "split_type",
    "label",
)
_BRACKETED = re.compile(r"\[.*?\]")


def preprocess(text: str) -> str:
    """lm-eval's cleanup of the WikiHow artefacts: " [title]" becomes ". ", other [tags] go, double spaces too."""
    text = text.strip()
    if "[" in text:
        text = _BRACKETED.sub("", text.replace(" [title]", ". "))
    return text.replace("  ", " ")


@register
class HellaSwag(MultipleChoiceTask):
    name = "hellaswag"
    lm_eval_task = "hellaswag"
    source = DataSource(
        hub_id="Rowan/hellaswag",
        hub_config=None,
        split="validation",
        rows=10042,
        mirror_files=("hellaswag/hellaswag_validation.hf.jsonl.gz",),
        embedded="6 items written by qwen-pipe in HellaSwag's hub format (a sample, not the benchmark)",
        fields=FIELDS,
        embedded_file="hellaswag_sample.jsonl",
        id_fields=FIELDS,  # `ind` repeats within the split
    )
    published_setting = (
        "lm-eval `hellaswag` (0-shot, acc and acc_norm; acc_norm is the Open LLM Leaderboard's); "
        "the Qwen2 model cards' 10-shot draws exemplars from the train split, which is not offline"
    )
    prompt_format = (
        "context 'activity_label: ctx_a Ctx_b' cleaned as lm-eval (brackets, [title]); "
        "each ending, cleaned, scored as ' ' + ending"
    )

    def query(self, sample: dict) -> str:
        return preprocess(
            sample["activity_label"] + ": " + sample["ctx_a"] + " " + sample["ctx_b"].capitalize()
        )

    def choices(self, sample: dict) -> list[str]:
        return [preprocess(ending) for ending in sample["endings"]]

    def gold(self, sample: dict) -> list[int]:
        return [int(sample["label"])]

    def gen_question(self, sample: dict) -> str:
        return f"Which ending completes the text best?\n\n{self.query(sample)} ..."
