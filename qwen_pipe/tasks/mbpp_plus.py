"""MBPP+ (Liu et al., 2023, EvalPlus v0.2.0): 378 verified MBPP problems with ~35x more tests."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from qwen_pipe.engines.base import SamplingParams
from qwen_pipe.sandbox import Program
from qwen_pipe.scoring.code_extract import complete_function
from qwen_pipe.tasks import register
from qwen_pipe.tasks.base import (
    DataSource,
    Prompt,
    PromptStyle,
    embedded_records,
    read_mirror_jsonl,
)
from qwen_pipe.tasks.humaneval import EVALPLUS_STOPS, CodeTask, evalplus_chat_prompt, plus_test_hints

FIELDS = ("task_id", "code", "prompt", "test_imports", "test_list", "test")
MBPP_STOPS = (*EVALPLUS_STOPS, '\n"""', "\nassert")
_URL = re.compile(r"https?://\S+")


@register
class MBPPPlus(CodeTask):
    name = "mbpp_plus"
    source = DataSource(
        hub_id="evalplus/mbppplus",
        hub_config=None,
        split="test",
        rows=378,
        mirror_files=("mbpp_plus/MbppPlus-OriginFmt.jsonl.gz",),
        embedded="6 small problems written by qwen-pipe in MBPP+'s format (a sample, not the benchmark)",
    )
    published_setting = (
        "EvalPlus leaderboard / Qwen reports: 0-shot, greedy, pass@1 on base + plus tests; the prompt is EvalPlus's "
        "docstring (task text and first test); chat models get EvalPlus's instruction and answer in a code block"
    )
    prompt_format = (
        "base: EvalPlus's docstring prompt (a triple-quoted task text and first test), completed; "
        "chat: EvalPlus's instruction with that prompt in a code block"
    )

    def load_mirror(self, root: Path) -> list[dict]:
        return read_mirror_jsonl(root, self.source.mirror_files[0], FIELDS)

    def load_embedded(self) -> list[dict]:
        return embedded_records("mbpp_plus_sample.jsonl")

    def task_id(self, record: dict) -> str:
        return f"Mbpp/{record['task_id']}"

    def code_prompt(self, record: dict) -> str:
        """EvalPlus's MBPP+ prompt: a docstring with the task (links removed) and its first test."""
        return f'"""\n{_URL.sub("", record["prompt"])}\n{record["test_list"][0]}\n"""\n'

    def entry_point(self, record: dict) -> str:
        return plus_test_hints(record["test"])[0]

    def prompt(self, sample: dict, style: PromptStyle, history: Sequence[str] = ()) -> Prompt:
        if style.chat:
            return evalplus_chat_prompt(self.code_prompt(sample))
        return self.code_prompt(sample)

    def sampling(self, style: PromptStyle) -> SamplingParams:
        if style.chat:
            return SamplingParams(max_new_tokens=1024)
        return SamplingParams(max_new_tokens=512, stop=MBPP_STOPS)

    def test_program(self, record: dict, source: str) -> Program:
        entry, prefetch, memoize = plus_test_hints(record["test"])
        return Program(
            self.task_id(record),
            source,
            test=record["test"],
            context="\n".join(record["test_imports"]),
            entry_point=entry or None,
            prefetch=prefetch,
            memoize=memoize,
        )

    def reference_source(self, record: dict) -> str:
        return record["code"]

    def answer_source(self, record: dict, text: str) -> str:
        return complete_function(self.code_prompt(record), text, self.entry_point(record))
