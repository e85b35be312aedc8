"""MBPP (Austin et al., 2021): 974 crowd-sourced Python problems, each with three assert tests.

The hub's `full` config splits them by task id: prompt 1-10 (the few-shot exemplars), test 11-510,
validation 511-600, train 601-974. The task evaluates the test split; `all_rows` gives all 974 (the
reference check runs every one).
"""

from __future__ import annotations

import ast
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from qwen_pipe.engines.base import SamplingParams
from qwen_pipe.sandbox import Program
from qwen_pipe.scoring.code_extract import extract_code
from qwen_pipe.tasks.common.base import (
    DataSource,
    Prompt,
    PromptStyle,
    embedded_exemplars,
    first_shots,
)
from qwen_pipe.tasks.common.code import CodeTask, mbpp_shots_text, mbpp_task_text
from qwen_pipe.tasks.common.registry import register

FIELDS = ("task_id", "text", "code", "test_list", "test_setup_code", "challenge_test_list")
TEST_IDS = range(11, 511)


def instruct_text(record: dict) -> str:
    """lm-eval's `mbpp_instruct` user turn."""
    tests = "\n".join(record["test_list"])
    return (
        f"You are an expert Python programmer, and here is your task:\n{record['text']}\n"
        f"Your code should pass these tests:\n{tests}"
    )


@register
class MBPP(CodeTask):
    name = "mbpp"
    lm_eval_task = "mbpp"
    source = DataSource(
        hub_id="google-research-datasets/mbpp",
        hub_config="full",
        split="test",
        rows=500,
        mirror_files=("mbpp/mbpp.jsonl",),
        embedded="6 small problems written by qwen-pipe in MBPP's format (a sample, not the benchmark)",
        fields=FIELDS,
        embedded_file="mbpp_sample.jsonl",
        id_format="{task_id}",
    )
    published_setting = (
        "MBPP paper / lm-eval `mbpp` (Qwen base-model reports): 3-shot with the prompt split's task ids 2, 3, 4, "
        "greedy, pass@1, the answer between [BEGIN] and [DONE]; chat models get lm-eval's `mbpp_instruct` turns"
    )
    prompt_format = (
        "base: 'You are an expert Python programmer, and here is your task: {text} Your code should pass these "
        "tests:\\n\\n{tests}\\n[BEGIN]\\n' x 3 shots, stop at [DONE]; chat: the same as user/assistant turns"
    )
    default_shots = 3
    protocol_settings: ClassVar[dict[str, tuple[int, str]]] = {
        "lm-eval": (
            3,
            "lm-eval `mbpp` (chosen over `mbpp_instruct`: the published MBPP numbers are 3-shot base-model runs): "
            "the same 3-shot prompt for every model, stop '[DONE]', 256 tokens; program = the reply as is, run "
            "against the three asserts without test_setup_code; pass@1",
        )
    }

    def all_rows(self, root: Path) -> list[dict]:
        return super().load_mirror(root)

    def load_mirror(self, root: Path) -> list[dict]:
        return [r for r in self.all_rows(root) if r["task_id"] in TEST_IDS]

    def _shots(self) -> list[dict]:
        return first_shots(embedded_exemplars("mbpp_fewshot.jsonl"), self.shots, "mbpp")

    def prompt(self, sample: dict, style: PromptStyle, history: Sequence[str] = ()) -> Prompt:
        if style.chat and not self.lm_eval:
            messages: list[dict[str, str]] = []
            for shot in self._shots():
                messages.append({"role": "user", "content": instruct_text(shot)})
                messages.append({"role": "assistant", "content": f"```python\n{shot['code']}\n```"})
            return [*messages, {"role": "user", "content": instruct_text(sample)}]
        return mbpp_shots_text(self.shots, "mbpp") + mbpp_task_text(sample["text"], sample["test_list"])

    def sampling(self, style: PromptStyle) -> SamplingParams:
        if self.lm_eval:
            return SamplingParams(max_new_tokens=256, stop=("[DONE]",))  # lm-eval's default max_gen_toks
        if style.chat:
            return SamplingParams(max_new_tokens=512)
        return SamplingParams(max_new_tokens=512, stop=("[DONE]",))

    def entry_point(self, record: dict) -> str | None:
        """The reference's function that the first test calls (MBPP/126's is `sum`, a builtin's name)."""
        try:
            with warnings.catch_warnings():  # MBPP's regexes are full of invalid escapes like "\."
                warnings.simplefilter("ignore")
                defined = {n.name for n in ast.parse(record["code"]).body if isinstance(n, ast.FunctionDef)}
                calls = ast.walk(ast.parse(record["test_list"][0]))
        except SyntaxError:
            return None
        names = (n.func.id for n in calls if isinstance(n, ast.Call) and isinstance(n.func, ast.Name))
        return next((name for name in names if name in defined), None)

    def test_program(self, record: dict, source: str) -> Program:
        return Program(
            self.task_id(record),
            source,
            test="\n".join(record["test_list"]),
            entry_point=self.entry_point(record),
            setup="" if self.lm_eval else record.get("test_setup_code") or "",
        )

    def reference_source(self, record: dict) -> str:
        return record["code"]

    def completion_source(self, record: dict, completion: str) -> str:
        return completion  # MBPP's prompt is prose: a completion is the whole program

    def answer_source(self, record: dict, text: str) -> str:
        if self.lm_eval:
            return text
        code = extract_code(text.split("[DONE]", 1)[0])
        return code.removeprefix("[BEGIN]").strip("\n")
