"""The four code tasks: data, prompts as published, scoring through the sandbox, reference solutions."""

from __future__ import annotations

import gzip
import json
import os
import random
from pathlib import Path

import pytest

from qwen_pipe.engines.base import Generation
from qwen_pipe.tasks.common.base import PromptStyle
from qwen_pipe.tasks.common.code import EVALPLUS_INSTRUCTION, plus_test_hints
from qwen_pipe.tasks.common.registry import get_task
from qwen_pipe.tasks.humaneval_plus import TEST_FIXES

CODE_TASKS = ("humaneval", "humaneval_plus", "mbpp", "mbpp_plus")
BASE, CHAT = PromptStyle(chat=False), PromptStyle(chat=True)


def _task(name: str, cache: Path):
    task = get_task(name)
    task.cache_dir = cache
    task.workers = 2
    return task


def _with_ids(task, records: list[dict]) -> list[dict]:
    return [{**r, "id": task.sample_id(r, i)} for i, r in enumerate(records)]


def _answers(*texts: str) -> list[Generation]:
    return [Generation(text, 0, 0, "stop") for text in texts]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("calibration")


@pytest.mark.parametrize(("name", "rows", "all_rows"), [
    ("humaneval", 164, 164), ("humaneval_plus", 164, 164), ("mbpp", 500, 974), ("mbpp_plus", 378, 378),
])  # fmt: skip
def test_mirror_loads_the_hub_split(mirror, name, rows, all_rows):
    task = get_task(name)
    records = task.load_mirror(mirror)
    assert len(records) == rows == task.source.rows
    assert len(task.all_rows(mirror)) == all_rows
    ids = [task.sample_id(r, i) for i, r in enumerate(records)]
    assert len(set(ids)) == rows
    if name == "mbpp":
        assert {r["task_id"] for r in records} == set(range(11, 511))


@pytest.mark.parametrize("name", ["humaneval_plus", "mbpp", "mbpp_plus"])
def test_embedded_samples_are_our_own_and_their_references_pass(cache, name):
    task = _task(name, cache)
    records = _with_ids(task, task.load_embedded())
    assert 5 <= len(records) <= 10 and all(r["embedded_sample"] for r in records)
    answers = [_answers(task.gold_output(r), "def nothing():\n    return None\n") for r in records]
    scores = task.score_all(records, answers, BASE)
    assert [s.metrics["pass@1"] for s in scores] == [0.5] * len(records)
    assert task.aggregate(records, scores)["pass@1"]["value"] == 0.5


def test_humaneval_embedded_is_the_full_benchmark():
    assert len(get_task("humaneval").load_embedded()) == 164


def test_evalplus_prompts(mirror):
    for name in ("humaneval", "humaneval_plus"):
        task = get_task(name)
        record = task.load_mirror(mirror)[0]
        assert task.prompt(record, BASE) == record["prompt"]
        [message] = task.prompt(record, CHAT)
        assert message == {
            "role": "user",
            "content": f"{EVALPLUS_INSTRUCTION}\n```\n{record['prompt'].strip()}\n```\n",
        }
        assert "\ndef " in task.sampling(BASE).stop and not task.sampling(CHAT).stop


def test_mbpp_plus_prompt_and_entry_point_match_evalplus_native_files(mirror):
    task = get_task("mbpp_plus")
    with gzip.open(mirror / "mbpp_plus" / "MbppPlus.jsonl.gz", "rt") as handle:
        native = {r["task_id"]: r for r in map(json.loads, handle)}
    records = task.load_mirror(mirror)
    assert {task.task_id(r) for r in records} == set(native)
    for record in records:
        expected = native[task.task_id(record)]
        assert task.prompt(record, BASE) == expected["prompt"]
        assert task.entry_point(record) == expected["entry_point"]
    assert task.sampling(BASE).stop[-2:] == ('\n"""', "\nassert")


def test_mbpp_three_shot_prompt_follows_lm_eval(mirror):
    task = get_task("mbpp")
    rows = {r["task_id"]: r for r in task.all_rows(mirror)}

    def doc(r: dict) -> str:
        tests = "\n".join(r["test_list"])
        return f"You are an expert Python programmer, and here is your task: {r['text']} Your code should pass these tests:\n\n{tests}\n[BEGIN]\n"

    sample = rows[11]
    shots = [doc(rows[i]) + rows[i]["code"] + "\n[DONE]" for i in (2, 3, 4)]
    assert task.prompt(sample, BASE) == "\n\n".join([*shots, doc(sample)])
    assert task.sampling(BASE).stop == ("[DONE]",)
    chat = task.prompt(sample, CHAT)
    assert [m["role"] for m in chat] == ["user", "assistant"] * 3 + ["user"]
    assert (
        chat[1]["content"] == f"```python\n{rows[2]['code']}\n```" and sample["text"] in chat[-1]["content"]
    )


SUBSETS = {  # a few real problems each, including the ones that need objects, setup code or a fix
    "humaneval": ["HumanEval/0", "HumanEval/32", "HumanEval/38"],
    "humaneval_plus": ["HumanEval/0", "HumanEval/32", "HumanEval/53"],
    "mbpp": ["11", "126", "367", "601"],
    "mbpp_plus": ["Mbpp/2", "Mbpp/88", "Mbpp/126"],
}


@pytest.mark.parametrize("name", CODE_TASKS)
def test_gold_passes_wrong_fails_and_pass_at_k(mirror, cache, name):
    task = _task(name, cache)
    records = {task.task_id(r): r for r in task.all_rows(mirror)}
    samples = _with_ids(task, [records[i] for i in SUBSETS[name]])
    fenced = "<think>the first answer was wrong</think>Here it is:\n```python\n{}\n```\nDone."
    answers = []
    for sample in samples:
        program = task.reference_source(sample)
        gold = task.gold_output(sample)
        answers.append(
            _answers(
                gold,
                fenced.format(program),
                "def unrelated():\n    pass\n",
                "```python\nimport sys\nsys.exit(0)\n```",
            )
        )
    scores = task.score_all(samples, answers, CHAT)
    for sample, score in zip(samples, scores, strict=True):
        assert score.extracted["status"][:2] == ["pass", "pass"], (sample["id"], score.extracted)
        assert score.extracted["status"][2:] != ["pass", "pass"]
        assert score.metrics == {"pass@1": 0.5}
        assert score.extracted["timeout_s"] >= task.timeout_policy.floor_s
        assert score.extracted["isolation"] in ("bwrap", "unshare", "none")
    assert set(task.aggregate(samples, scores)) == {"pass@1"}


def test_pass_at_k_needs_k_answers_per_sample(cache):
    task = _task("humaneval_plus", cache)
    records = _with_ids(task, task.load_embedded()[:2])
    gold = [task.gold_output(r) for r in records]
    answers = [_answers(*([gold[0]] * 3 + ["pass"] * 7)), _answers(*(["pass"] * 9 + [gold[1]]))]
    scores = task.score_all(records, answers, BASE)
    assert [round(s.metrics["pass@1"], 2) for s in scores] == [0.3, 0.1]
    assert scores[1].metrics["pass@10"] == 1.0
    assert set(task.aggregate(records, scores)) == {"pass@1", "pass@10"}


def test_humaneval_plus_hints_and_fix(mirror):
    task = get_task("humaneval_plus")
    records = {r["task_id"]: r for r in task.load_mirror(mirror)}
    for task_id, wrong, right, _why in TEST_FIXES:  # the upstream text is still there, and replaced
        assert wrong in records[task_id]["test"] and right in task.test_code(records[task_id])
    called, prefetch, memoize = plus_test_hints(records["HumanEval/130"]["test"])
    assert (called, prefetch, memoize) == ("candidate", "inputs", ("ref_func",))
    assert plus_test_hints(records["HumanEval/0"]["test"])[2] == ()


REFERENCE_COUNTS = {"humaneval": 164, "humaneval_plus": 164, "mbpp": 974, "mbpp_plus": 378}
# The plus tests run thousands of inputs per problem (~3 min for all of them on 2 cores): `make test` runs a
# seeded sample plus every problem the tasks patch; QWEN_PIPE_FULL_TESTS=1 runs them all.
PLUS_SAMPLE = 48
ALWAYS = {
    "humaneval_plus": {task_id for task_id, *_ in TEST_FIXES},
    "mbpp_plus": {"Mbpp/737", "Mbpp/787", "Mbpp/794"},  # asserting_checker
}


def reference_rows(task, mirror: Path) -> list[dict]:
    rows = task.all_rows(mirror)
    if task.name not in ALWAYS or os.environ.get("QWEN_PIPE_FULL_TESTS") == "1":
        return rows
    picked = {task.task_id(r) for r in random.Random(0).sample(rows, PLUS_SAMPLE)} | ALWAYS[task.name]
    return [r for r in rows if task.task_id(r) in picked]


@pytest.mark.slow
@pytest.mark.parametrize("name", CODE_TASKS)
def test_every_reference_solution_passes(mirror, tmp_path, name):
    """HumanEval 164/164, HumanEval+ with all plus tests, MBPP's 974 (test_list), MBPP+ 378 (the plus
    datasets sampled unless QWEN_PIPE_FULL_TESTS=1)."""
    task = _task(name, tmp_path)
    records = reference_rows(task, mirror)
    results, limits = task.run(records, [task.reference_source(r) for r in records])
    full = os.environ.get("QWEN_PIPE_FULL_TESTS") == "1" or name not in ALWAYS
    assert len(results) == (REFERENCE_COUNTS[name] if full else len(records)) >= PLUS_SAMPLE
    assert {r.id.split("#")[0] for r in results} >= (set() if full else ALWAYS.get(name, set()))
    failed = {r.id: (r.status, r.detail) for r in results if not r.passed}
    assert failed == {}
    assert all(c.reference_status == "pass" for c in limits.values())
