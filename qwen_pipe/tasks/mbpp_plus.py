"""MBPP+ (Liu et al., 2023, EvalPlus v0.2.0): 378 verified MBPP problems with ~35x more tests."""

from __future__ import annotations

import ast
import functools
import re

from qwen_pipe.sandbox import Program
from qwen_pipe.scoring.code_extract import complete_function
from qwen_pipe.tasks.common.base import DataSource
from qwen_pipe.tasks.common.code import EVALPLUS_STOPS, EvalPlusFormat, plus_test_hints
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

    def code_prompt(self, record: dict) -> str:
        """EvalPlus's MBPP+ prompt: a docstring with the task (links removed) and its first test."""
        return f'"""\n{_URL.sub("", record["prompt"])}\n{record["test_list"][0]}\n"""\n'

    def entry_point(self, record: dict) -> str:
        return plus_test_hints(record["test"])[0]

    def test_code(self, record: dict) -> str:
        return asserting_checker(record["test"])

    def test_program(self, record: dict, source: str) -> Program:
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
        return complete_function(self.code_prompt(record), text, self.entry_point(record))
