"""MBPP+ (Liu et al., 2023, EvalPlus v0.2.0): 378 verified MBPP problems with ~35x more tests."""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Sequence
from typing import ClassVar

from qwen_pipe.engines.base import SamplingParams
from qwen_pipe.sandbox import Program
from qwen_pipe.scoring.code_extract import complete_function
from qwen_pipe.tasks.common.base import DataSource, Prompt, PromptStyle
from qwen_pipe.tasks.common.code import (
    EVALPLUS_STOPS,
    EvalPlusFormat,
    mbpp_shots_text,
    mbpp_task_text,
    plus_test_hints,
)
from qwen_pipe.tasks.common.registry import register

FIELDS = ("task_id", "code", "prompt", "test_imports", "test_list", "test")
MBPP_STOPS = (*EVALPLUS_STOPS, '\n"""', "\nassert")
_URL = re.compile(r"https?://\S+")
_CHECKER = re.compile(r"^def assertion\(.*?(?=^\S)", re.MULTILINE | re.DOTALL)


@functools.lru_cache(maxsize=1024)  # asked per answer; the tests are megabytes and hash once per string
def asserting_checker(test: str) -> str:
    """The test, with a checker that computes its verdict but never asserts it made to assert it.

    MBPP+ tests compare each output in `assertion(out, exp, atol)`. In Mbpp/737, 787 and 794 it only
    sets `exact_match` and returns, so any answer that does not crash passes; EvalPlus's own evaluator
    asserts that comparison. A checker without an `assert` that assigns exactly one name it never reads
    gets `assert <name>` as its last statement (the other 375 problems' checkers already assert).
    """
    found = _CHECKER.search(test)
    if found is None:
        return test
    function = ast.parse(found.group()).body[0]
    if any(isinstance(node, ast.Assert) for node in ast.walk(function)):
        return test
    names = [node for node in ast.walk(function) if isinstance(node, ast.Name)]
    unread = {n.id for n in names if isinstance(n.ctx, ast.Store)} - {
        n.id for n in names if isinstance(n.ctx, ast.Load)
    }
    if len(unread) != 1:
        return test
    checker = found.group().rstrip("\n") + f"\n    assert {unread.pop()}\n\n"
    return test[: found.start()] + checker + test[found.end() :]


@register
class MBPPPlus(EvalPlusFormat):
    completion_stops = MBPP_STOPS
    name = "mbpp_plus"
    source = DataSource(
        hub_id="evalplus/mbppplus",
        hub_config=None,
        split="test",
        rows=378,
        mirror_files=("mbpp_plus/MbppPlus-OriginFmt.jsonl.gz",),
        embedded="6 small problems written by qwen-pipe in MBPP+'s format (a sample, not the benchmark)",
        fields=FIELDS,
        embedded_file="mbpp_plus_sample.jsonl",
        id_format="Mbpp/{task_id}",  # evalplus's id; the file holds MBPP's number
    )
    published_setting = (
        "EvalPlus leaderboard / Qwen reports: 0-shot, greedy, pass@1 on base + plus tests; the prompt is EvalPlus's "
        "docstring (task text and first test); chat models get EvalPlus's instruction and answer in a code block"
    )
    prompt_format = (
        "base: EvalPlus's docstring prompt (a triple-quoted task text and first test), completed; "
        "chat: EvalPlus's instruction with that prompt in a code block"
    )

    lm_eval_task = "mbpp_plus"
    protocol_settings: ClassVar[dict[str, tuple[int, str]]] = {
        "lm-eval": (
            3,
            "lm-eval `mbpp_plus`: lm-eval's `mbpp` prompt with the record's `prompt` as the task and its first "
            "three base tests, after MBPP's 3 exemplars, for every model; stop '[DONE]', 256 tokens; the reply "
            "as is, run against those three asserts (not the plus tests, no test_imports); pass@1",
        )
    }

    def prompt(self, sample: dict, style: PromptStyle, history: Sequence[str] = ()) -> Prompt:
        if self.lm_eval:
            return mbpp_shots_text(self.shots, "mbpp_plus") + mbpp_task_text(
                sample["prompt"], sample["test_list"]
            )
        return super().prompt(sample, style, history)

    def sampling(self, style: PromptStyle) -> SamplingParams:
        if self.lm_eval:
            return SamplingParams(max_new_tokens=256, stop=("[DONE]",))
        return super().sampling(style)

    def code_prompt(self, record: dict) -> str:
        """EvalPlus's MBPP+ prompt: a docstring with the task (links removed) and its first test."""
        return f'"""\n{_URL.sub("", record["prompt"])}\n{record["test_list"][0]}\n"""\n'

    def entry_point(self, record: dict) -> str:
        return plus_test_hints(record["test"])[0]

    def test_code(self, record: dict) -> str:
        return asserting_checker(record["test"])

    def test_program(self, record: dict, source: str) -> Program:
        if self.lm_eval:  # lm-eval's references: the three base asserts, nothing else
            tests = "\n".join(
                record["test_list"][i] if i < len(record["test_list"]) else "" for i in range(3)
            )
            return Program(
                self.task_id(record), source, test=tests, entry_point=self.entry_point(record) or None
            )
        test = self.test_code(record)
        entry, prefetch, memoize = plus_test_hints(test)
        return Program(
            self.task_id(record),
            source,
            test=test,
            context="\n".join(record["test_imports"]),
            entry_point=entry or None,
            prefetch=prefetch,
            memoize=memoize,
        )

    def reference_source(self, record: dict) -> str:
        return record["code"]

    def answer_source(self, record: dict, text: str) -> str:
        if self.lm_eval:
            return text
        return complete_function(self.code_prompt(record), text, self.entry_point(record))
