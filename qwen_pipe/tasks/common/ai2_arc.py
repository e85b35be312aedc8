"""AI2 ARC (Clark et al., 2018): what ARC-Challenge and ARC-Easy share (records, prompt, scoring).

Each dataset is its own module (arc_challenge.py, arc_easy.py), so that a change to one reruns only its
cells; this module is shared by both.
"""

from __future__ import annotations

from pathlib import Path

from qwen_pipe.errors import QwenPipeError
from qwen_pipe.io import read_jsonl
from qwen_pipe.sources.mirror import mirror_file, require_fields
from qwen_pipe.tasks.common.multiple_choice import MultipleChoiceTask

FIELDS = ("id", "question", "choices", "answerKey")
RAW_FIELDS = ("id", "question", "answerKey")  # question = {stem, choices: [{text, label}]}


def hub_record(raw: dict, path: Path, index: int) -> dict:
    """An AI2 release record (question.stem, question.choices[{text, label}]) in the hub's schema.

    A record already in the hub's schema (question a string, choices {text, label}) is returned as is.
    """
    question = raw["question"]
    if isinstance(question, str) and isinstance(raw.get("choices"), dict):
        return {f: raw[f] for f in FIELDS}
    if not isinstance(question, dict) or "stem" not in question or "choices" not in question:
        raise QwenPipeError(
            f"{path}: record {index} has no question.stem / question.choices; expected fields "
            "id, question{stem, choices[{text, label}]}, answerKey (AI2 release) or id, question, choices, answerKey",
            "point the data dir at a mirror with the documented layout (docs/tasks.md) or fix the file",
        )
    return {
        "id": raw["id"],
        "question": question["stem"],
        "choices": {
            "text": [c["text"] for c in question["choices"]],
            "label": [c["label"] for c in question["choices"]],
        },
        "answerKey": raw["answerKey"],
    }


def read_arc(path: Path) -> list[dict]:
    raw = require_fields(read_jsonl(path), RAW_FIELDS, path)
    return [hub_record(r, path, i) for i, r in enumerate(raw)]


class ARCTask(MultipleChoiceTask):
    """lm-eval's `arc_challenge` / `arc_easy`: 'Question: q\\nAnswer:' then each choice's text."""

    def load_mirror(self, root: Path) -> list[dict]:
        return read_arc(mirror_file(root, self.source.mirror_files[0]))

    def query(self, sample: dict) -> str:
        return f"Question: {sample['question']}\nAnswer:"

    def choices(self, sample: dict) -> list[str]:
        return list(sample["choices"]["text"])

    def gold(self, sample: dict) -> list[int]:
        return [sample["choices"]["label"].index(sample["answerKey"])]

    def gen_question(self, sample: dict) -> str:
        return sample["question"]
