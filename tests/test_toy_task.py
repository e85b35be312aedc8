"""A new dataset is one class: its data declarations, a prompt and a scorer. A toy task declared here runs
through the real stage functions (fetch from a mirror, generate with the oracle engine, score) with
nothing else edited, and the oracle scores 1.0 on it."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

import yaml

from qwen_pipe.cells import Cell, output_layout, read_dataset
from qwen_pipe.config import Params
from qwen_pipe.engines.base import Generation
from qwen_pipe.fetch import load_records, write_dataset
from qwen_pipe.generate import generate_isolated, pick_samples
from qwen_pipe.io import read_json, read_jsonl
from qwen_pipe.models.registry import BUILTIN_MODELS
from qwen_pipe.score import score_and_write
from qwen_pipe.tasks import task_names
from qwen_pipe.tasks.common.base import (
    DataSource,
    GenerationTask,
    Prompt,
    PromptStyle,
    Response,
    SampleScore,
    content_id,
)
from qwen_pipe.tasks.common.registry import get_task, register
from qwen_pipe.tasks.common.requests import requests_summary

from support import ROOT

ROWS = [
    {"a": 2, "b": 3, "answer": 5, "note": "fields a task does not read are kept"},
    {"a": 40, "b": 2, "answer": 42, "note": ""},
    {"a": -7, "b": 7, "answer": 0, "note": ""},
]


@register
class ToySums(GenerationTask):
    name = "toy_sums"
    kind = "generation"
    source = DataSource(
        hub_id="qwen-pipe/toy-sums",
        hub_config=None,
        split="test",
        rows=len(ROWS),
        mirror_files=("toy_sums/test.jsonl",),
        embedded="none: the test writes a mirror file",
        fields=("a", "b", "answer"),
        id_fields=("a", "b"),
    )
    primary_metric = "exact_match"
    metrics = ("exact_match",)
    published_setting = "a test's toy"
    prompt_format = "'What is a+b?\\nAnswer:'"

    def prompt(self, sample: dict, style: PromptStyle, history: Sequence[str] = ()) -> Prompt:
        return f"What is {sample['a']}+{sample['b']}?\nAnswer:"

    def gold_output(self, sample: dict, turn: int = 0) -> str | None:
        return f" {sample['answer']}"

    def score(self, sample: dict, responses: Sequence[Response], style: PromptStyle) -> SampleScore:
        numbers = re.findall(r"-?\d+", responses[0].text)
        answer = numbers[-1] if numbers else None
        return SampleScore({"exact_match": float(answer == str(sample["answer"]))}, {"answer": answer})


def write_mirror(root, rows: list[dict]) -> None:
    path = root / ToySums.source.mirror_files[0]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def completion_params() -> Params:
    """The shipped params with a completion-style model: plain prompts, so no tokenizer is loaded."""
    data = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    spec = BUILTIN_MODELS["qwen3_8b"].model_dump()
    spec.update(name="toy_base", hf_id="toy/base", revision="0" * 40, chat=False, supports_thinking=False)
    data.setdefault("model_registry", {})["toy_base"] = spec
    return Params.model_validate(data)


def test_a_toy_task_runs_through_fetch_generate_and_score(tmp_path):
    assert "toy_sums" not in task_names()  # registered from outside the package: found by name all the same
    task = get_task("toy_sums")
    mirror = tmp_path / "mirror"
    write_mirror(mirror, ROWS)

    # fetch: the declared mirror file, ids from the declared fields
    records, info = load_records(task, "mirror", mirror)
    info.requests = requests_summary(task, records)
    write_dataset(records, info, tmp_path / "datasets")
    samples, meta = read_dataset(tmp_path / "datasets", "toy_sums")
    assert samples == records == [{"id": content_id("toy_sums", r, ("a", "b")), **r} for r in ROWS]
    assert meta["rows"] == 3 and meta["source"] == "mirror" and meta["requests"]["turns"] == 1

    # ids are stable: the same record keeps its id in another order, beside other records
    write_mirror(mirror, [*reversed(ROWS), {"a": 1, "b": 1, "answer": 2, "note": ""}])
    again = {r["a"]: r["id"] for r in load_records(task, "mirror", mirror)[0]}
    assert {r["a"]: r["id"] for r in records}.items() <= again.items()

    # generate with the oracle, then score as the score stage does
    params = completion_params()
    layout = output_layout(tmp_path / "out", tmp_path / "cache")
    picked = pick_samples(params, "toy_sums", samples)
    outcome = generate_isolated(
        params, "toy_base", "balanced", {"toy_sums": (picked, meta)}, layout, "oracle", "toy_sums"
    )["toy_sums"]
    assert "failure" not in outcome, outcome
    cell = Cell("toy_base", "balanced", "toy_sums")
    generated = read_jsonl(layout.generation(cell))
    assert [g["id"] for g in generated] == [r["id"] for r in records]
    result, _ = score_and_write(task, samples, layout, cell)
    assert result["status"] == "ok" and result["score"] == 1.0 and result["n"] == 3, result
    assert read_json(layout.metrics_file(cell))["score"] == 1.0
    assert [row["id"] for row in read_jsonl(layout.score_rows(cell))] == [r["id"] for r in records]


def test_the_toy_scorer_can_fail():
    task = get_task("toy_sums")
    sample = {"id": "x", **ROWS[0]}
    for text, expected in ((" 5", 1.0), (" 6", 0.0), ("", 0.0)):
        score = task.score(sample, [Generation(text, 5, 1, "stop")], PromptStyle(chat=False))
        assert score.metrics == {"exact_match": expected}, text
