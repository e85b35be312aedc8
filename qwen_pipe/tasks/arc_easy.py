"""ARC-Easy (Clark et al., 2018): the ARC questions that simple baselines answer; prompt and scoring as ARC-Challenge (ai2_arc.py)."""

from __future__ import annotations

from qwen_pipe.tasks.common.ai2_arc import FIELDS, ARCTask
from qwen_pipe.tasks.common.base import DataSource
from qwen_pipe.tasks.common.registry import register


@register
class ARCEasy(ARCTask):
    name = "arc_easy"
    lm_eval_task = "arc_easy"
    source = DataSource(
        hub_id="allenai/ai2_arc",
        hub_config="ARC-Easy",
        split="test",
        rows=2376,
        mirror_files=("arc_easy/ARC-Easy-Test.jsonl",),
        embedded="8 questions written by qwen-pipe in ARC's hub format (a sample, not the benchmark)",
        fields=FIELDS,
        embedded_file="arc_easy_sample.jsonl",
        id_format="{id}",
    )
    published_setting = "lm-eval `arc_easy` (test split, 0-shot, acc and acc_norm)"
    prompt_format = "'Question: q\\nAnswer:' then each choice scored as ' ' + text"
