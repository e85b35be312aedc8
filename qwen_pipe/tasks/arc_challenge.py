"""ARC-Challenge (Clark et al., 2018): the grade-school science questions that retrieval and co-occurrence
baselines get wrong."""

from __future__ import annotations

from qwen_pipe.tasks.common.ai2_arc import FIELDS, ARCTask
from qwen_pipe.tasks.common.base import DataSource
from qwen_pipe.tasks.common.registry import register


@register
class ARCChallenge(ARCTask):
    name = "arc_challenge"
    lm_eval_task = "arc_challenge"
    source = DataSource(
        hub_id="allenai/ai2_arc",
        hub_config="ARC-Challenge",
        split="test",
        rows=1172,
        mirror_files=("arc_challenge/ARC-Challenge-Test.jsonl",),
        embedded="8 questions written by qwen-pipe in ARC's hub format (a sample, not the benchmark)",
        fields=FIELDS,
        embedded_file="arc_challenge_sample.jsonl",
        id_format="{id}",
    )
    published_setting = (
        "lm-eval `arc_challenge` (test split, 0-shot, acc and acc_norm; acc_norm is the Open LLM Leaderboard's); "
        "the Qwen2 model cards' 25-shot draws exemplars from the train split, which is not offline"
    )
    prompt_format = "'Question: q\\nAnswer:' then each choice scored as ' ' + text"
