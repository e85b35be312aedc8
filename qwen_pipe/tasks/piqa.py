"""PIQA (Bisk et al., 2020): physical commonsense; choose the better of two solutions to a goal."""

from __future__ import annotations

from pathlib import Path

from qwen_pipe.errors import QwenPipeError
from qwen_pipe.sources.mirror import mirror_file, read_mirror_jsonl
from qwen_pipe.tasks.common.base import DataSource
from qwen_pipe.tasks.common.multiple_choice import MultipleChoiceTask
from qwen_pipe.tasks.common.registry import register

FIELDS = ("goal", "sol1", "sol2", "label")
RAW_FIELDS = ("id", "goal", "sol1", "sol2")


def read_labels(path: Path) -> list[int]:
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if any(line not in ("0", "1") for line in lines):
        raise QwenPipeError(
            f"{path}: expected one label 0 or 1 a line", "point the data dir at the PIQA release files"
        )
    return [int(line) for line in lines]


def hub_records(raw: list[dict], labels: list[int], path: Path) -> list[dict]:
    """The release's dev.jsonl + dev-labels.lst in the hub's schema: drop `id`, add the int `label`."""
    if len(raw) != len(labels):
        raise QwenPipeError(
            f"{path}: {len(raw)} records but {len(labels)} labels",
            "use the dev.jsonl and dev-labels.lst of one release",
        )
    return [
        {"goal": r["goal"], "sol1": r["sol1"], "sol2": r["sol2"], "label": label}
        for r, label in zip(raw, labels, strict=True)
    ]


@register
class PIQA(MultipleChoiceTask):
    name = "piqa"
    lm_eval_task = "piqa"
    source = DataSource(
        hub_id="ybisk/piqa",
        hub_config="plain_text",
        split="validation",
        rows=1838,
        mirror_files=("piqa/dev.jsonl", "piqa/dev-labels.lst"),
        embedded="6 goals written by qwen-pipe in PIQA's hub format (a sample, not the benchmark)",
        fields=FIELDS,
        embedded_file="piqa_sample.jsonl",
        id_fields=FIELDS,
    )
    published_setting = "lm-eval `piqa` (validation split, 0-shot, acc and acc_norm)"
    prompt_format = "'Question: goal\\nAnswer:' then each solution scored as ' ' + text"

    def load_mirror(self, root: Path) -> list[dict]:
        records, labels = self.source.mirror_files
        raw = read_mirror_jsonl(root, records, RAW_FIELDS)
        return hub_records(raw, read_labels(mirror_file(root, labels)), root / records)

    def query(self, sample: dict) -> str:
        return f"Question: {sample['goal']}\nAnswer:"

    def choices(self, sample: dict) -> list[str]:
        return [sample["sol1"], sample["sol2"]]

    def gold(self, sample: dict) -> list[int]:
        return [int(sample["label"])]

    def gen_question(self, sample: dict) -> str:
        return f"Which solution achieves the goal?\n\nGoal: {sample['goal']}"
