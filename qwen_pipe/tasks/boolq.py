"""BoolQ (Clark et al., 2019): naturally occurring yes/no questions about a Wikipedia passage."""

from __future__ import annotations

from pathlib import Path

from qwen_pipe.tasks.base import DataSource, embedded_records, read_mirror_jsonl
from qwen_pipe.tasks.multiple_choice import MultipleChoiceTask, content_id
from qwen_pipe.tasks.registry import register

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
    source = DataSource(
        hub_id="google/boolq",
        hub_config=None,
        split="validation",
        rows=3270,
        mirror_files=("boolq/boolq_validation.hf.jsonl",),
        embedded="6 passages and questions written by qwen-pipe in BoolQ's hub format (a sample, not the benchmark)",
    )
    fields = FIELDS
    metrics = ("acc",)
    primary_metric = "acc"
    published_setting = (
        "lm-eval `boolq` prompt and choices (0-shot, acc) on google/boolq, whose passages lack the "
        "'<title> -- ' prefix of lm-eval's super_glue copy"
    )
    prompt_format = "'passage\\nQuestion: question?\\nAnswer:' then ' no' and ' yes' scored"

    def load_mirror(self, root: Path) -> list[dict]:
        return read_mirror_jsonl(root, self.source.mirror_files[0], FIELDS)

    def load_embedded(self) -> list[dict]:
        return embedded_records("boolq_sample.jsonl")

    def sample_id(self, record: dict, index: int) -> str:
        return content_id("boolq", record, FIELDS)

    def query(self, sample: dict) -> str:
        return f"{sample['passage']}\nQuestion: {sample['question']}?\nAnswer:"

    def choices(self, sample: dict) -> list[str]:
        return ["no", "yes"]

    def gold(self, sample: dict) -> list[int]:
        return [int(bool(sample["answer"]))]

    def gen_question(self, sample: dict) -> str:
        return f"{sample['passage']}\n\nQuestion: {sample['question']}?"
