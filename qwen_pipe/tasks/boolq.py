"""BoolQ (Clark et al., 2019): naturally occurring yes/no questions about a Wikipedia passage."""

from __future__ import annotations

from qwen_pipe.tasks.common.base import DataSource
from qwen_pipe.tasks.common.multiple_choice import MultipleChoiceTask
from qwen_pipe.tasks.common.registry import register

FIELDS = ("question", "answer", "passage")


def from_superglue(record: dict) -> dict:
    """A SuperGLUE BoolQ record ("<title> -- <passage>", label) in google/boolq's schema."""
    label = record["label"]
    answer = label if isinstance(label, bool) else str(label).lower() in ("true", "1")
    return {
        "question": record["question"],
        "answer": answer,
        "passage": record["passage"].split(" -- ", 1)[1],
    }


@register
class BoolQ(MultipleChoiceTask):
    name = "boolq"
    lm_eval_task = "boolq"
    source = DataSource(
        hub_id="google/boolq",
        hub_config=None,
        split="validation",
        rows=3270,
        mirror_files=("boolq/boolq_validation.hf.jsonl",),
        embedded="6 passages and questions written by qwen-pipe in BoolQ's hub format (a sample, not the benchmark)",
        fields=FIELDS,
        embedded_file="boolq_sample.jsonl",
        id_fields=FIELDS,
    )
    metrics = ("acc",)
    primary_metric = "acc"
    published_setting = (
        "lm-eval `boolq` prompt and choices (0-shot, acc) on google/boolq, whose passages lack the "
        "'<title> -- ' prefix of lm-eval's super_glue copy"
    )
    prompt_format = "'passage\\nQuestion: question?\\nAnswer:' then ' no' and ' yes' scored"

    def query(self, sample: dict) -> str:
        return f"{sample['passage']}\nQuestion: {sample['question']}?\nAnswer:"

    def choices(self, sample: dict) -> list[str]:
        return ["no", "yes"]

    def gold(self, sample: dict) -> list[int]:
        return [int(bool(sample["answer"]))]

    def gen_question(self, sample: dict) -> str:
        return f"{sample['passage']}\n\nQuestion: {sample['question']}?"
