"""Multiple-choice tasks over the full offline mirror: published row counts, the oracle (1.0, or exactly the
listed exceptions) and the wrong oracle (0.0), the letter-choice variants, the raw-to-hub mappings, and the
one-line error for a renamed field."""

from __future__ import annotations

import gzip
import json
from functools import cache
from pathlib import Path

import pytest
from test_multiple_choice import MC_TASKS, mc_module, mc_task, renderer

from qwen_pipe.engines.oracle import OracleEngine
from qwen_pipe.errors import QwenPipeError
from qwen_pipe.generate import GenerationSettings, generate_records
from qwen_pipe.io import read_jsonl
from qwen_pipe.score import score_records
from qwen_pipe.tasks.common.ai2_arc import read_arc
from qwen_pipe.tasks.common.base import PromptStyle, SampleScore

from support import mirror_dir

BASE = PromptStyle(chat=False)
NEAR_ZERO = 1e-30  # mc2 under the wrong oracle: the true answers keep e^-100 of the mass, not exactly 0


@cache
def full_samples(name: str) -> tuple[dict, ...]:
    task = mc_task(name)
    return tuple({"id": task.sample_id(r, i), **r} for i, r in enumerate(task.load_mirror(mirror_dir())))


def run(task, samples, wrong: bool) -> tuple[list[dict], dict]:
    records = generate_records(
        task, samples, OracleEngine("x", wrong=wrong), renderer(), GenerationSettings(style=BASE)
    )
    return score_records(task, samples, records, BASE)


@cache
def oracle_run(name: str, wrong: bool) -> tuple[list[dict], dict]:
    """Score rows and aggregate of the (wrong) oracle over the task's full mirror data."""
    return run(mc_task(name), list(full_samples(name)), wrong)


@pytest.mark.parametrize("name", MC_TASKS)
def test_full_mirror_gives_the_published_rows_with_unique_ids(name):
    task = mc_task(name)
    samples = full_samples(name)
    assert len(samples) == task.source.rows
    assert len({s["id"] for s in samples}) == len(samples)
    assert all(set(task.source.fields) <= set(s) for s in samples)


# Per-sample values of the listed exceptions under the oracle (all other metrics of those samples are 1.0).
EXCEPTION_VALUES = {
    "mmlu-04021-35bc78e1": {"acc_micro": 0.0, "acc_macro": 0.0},
}


@pytest.mark.parametrize("name", MC_TASKS)
def test_oracle_scores_one_except_the_listed_items_and_wrong_oracle_zero(name):
    task = mc_task(name)
    samples = list(full_samples(name))
    exceptions = task.oracle_exceptions

    rows, aggregate = oracle_run(name, wrong=False)
    below = {r["id"]: r["metrics"] for r in rows if any(v < 1.0 for v in r["metrics"].values())}
    assert set(below) == set(exceptions)
    for sample_id, metrics in below.items():
        assert metrics == pytest.approx(EXCEPTION_VALUES[sample_id])
    kept = [
        (s, SampleScore(r["metrics"]))
        for s, r in zip(samples, rows, strict=True)
        if s["id"] not in exceptions
    ]
    kept_aggregate = task.aggregate([s for s, _ in kept], [score for _, score in kept])
    assert {m: kept_aggregate[m]["value"] for m in task.metrics} == {m: 1.0 for m in task.metrics}
    if not exceptions:
        assert {m: aggregate[m]["value"] for m in task.metrics} == {m: 1.0 for m in task.metrics}

    rows, aggregate = oracle_run(name, wrong=True)
    assert all(v <= NEAR_ZERO for r in rows for v in r["metrics"].values())
    for metric in task.metrics:
        assert aggregate[metric]["value"] == pytest.approx(0.0, abs=NEAR_ZERO)
        assert aggregate[metric]["n"] == len(samples)


def test_mmlu_aggregate_reports_micro_macro_and_every_subject():
    _, aggregate = oracle_run("mmlu", wrong=False)
    assert aggregate["acc_micro"]["value"] == pytest.approx(1 - 1 / 14042)
    per_subject = aggregate["_per_subject"]
    assert len(per_subject) == 57 and sum(s["n"] for s in per_subject.values()) == 14042
    assert per_subject["high_school_macroeconomics"]["value"] == pytest.approx(1 - 1 / 390)
    assert aggregate["acc_macro"]["value"] == pytest.approx(1 - 1 / 390 / 57)
    assert aggregate["acc_macro"]["subjects"] == 57


@pytest.mark.parametrize("name", MC_TASKS)
def test_letter_choice_variant_scores_gold_one_and_empty_zero(name):
    task = mc_task(f"{name}_gen")
    samples = list(full_samples(name))
    for wrong, expected in ((False, 1.0), (True, 0.0)):
        rows, aggregate = run(task, samples, wrong)
        assert {r["metrics"][task.primary_metric] for r in rows} == {expected}
        assert {m: aggregate[m]["value"] for m in task.metrics} == {m: expected for m in task.metrics}


def test_truthfulqa_gen_spreads_the_true_answer_over_the_letters():
    task = mc_task("truthfulqa_gen")
    letters = [task.gold_output(s)[len("The answer is (")] for s in full_samples("truthfulqa")]
    assert letters.count("A") < len(letters) / 3


# --- raw files mapped to the hub's schema ---------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "hub"),
    [
        ("arc_challenge/ARC-Challenge-Dev.jsonl", "arc_challenge/ARC-Challenge_validation.hf.jsonl"),
        ("arc_easy/ARC-Easy-Dev.jsonl", "arc_easy/ARC-Easy_validation.hf.jsonl"),
    ],
)
def test_arc_release_files_map_onto_the_hub_records(raw, hub):
    mapped = read_arc(mirror_dir() / raw)
    assert mapped == read_jsonl(mirror_dir() / hub)


def test_arc_test_files_hold_numeric_keys_and_a_fifth_choice():
    keys = [s["answerKey"] for s in full_samples("arc_easy")]
    assert sum(k in "1234" for k in keys) == 97 and keys.count("E") == 1


def test_piqa_release_files_map_onto_the_hub_records():
    assert list(full_samples_raw("piqa")) == read_jsonl(mirror_dir() / "piqa/piqa_validation.hf.jsonl")


def test_boolq_superglue_copy_maps_onto_google_boolq():
    from_superglue = mc_module("boolq").from_superglue
    superglue = read_jsonl(mirror_dir() / "boolq/superglue_BoolQ_val.jsonl")
    assert [from_superglue(r) for r in superglue] == list(full_samples_raw("boolq"))


def test_truthfulqa_v0_maps_to_the_hub_multiple_choice_layout():
    first = full_samples("truthfulqa")[0]
    assert first["mc1_targets"]["choices"][0].startswith("Nauru") and first["mc1_targets"]["labels"][0] == 1
    assert len(first["mc2_targets"]["choices"]) == len(first["mc2_targets"]["labels"])


def full_samples_raw(name: str) -> tuple[dict, ...]:
    """The task's mirror records without the id."""
    return tuple({k: v for k, v in s.items() if k != "id"} for s in full_samples(name))


# --- a renamed field ------------------------------------------------------------------------------

RENAMED = [
    ("hellaswag", "hellaswag/hellaswag_validation.hf.jsonl.gz", "endings", "ending_options"),
    ("arc_challenge", "arc_challenge/ARC-Challenge-Test.jsonl", "answerKey", "answer_key"),
    ("arc_easy", "arc_easy/ARC-Easy-Test.jsonl", "id", "qid"),
    ("mmlu", "mmlu/mmlu_test.hf.jsonl.gz", "choices", "options"),
    ("mmlu", "mmlu/mmlu_dev.hf.jsonl", "answer", "label"),
    ("truthfulqa", "truthfulqa/data/v0/mc_task.json", "mc2_targets", "mc2"),
    ("winogrande", "winogrande/winogrande_xl_validation.hf.jsonl", "option2", "option_2"),
    ("boolq", "boolq/boolq_validation.hf.jsonl", "passage", "context"),
    ("piqa", "piqa/dev.jsonl", "goal", "question"),
]


def small_mirror(tmp: Path, name: str, rename: tuple[str, str, str] | None = None) -> Path:
    """The first 3 records of each of the task's mirror files, with one field of record 1 renamed in one file."""
    for relative in mc_task(name).source.mirror_files:
        source, target = mirror_dir() / relative, tmp / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if relative.endswith(".lst"):
            target.write_text("".join(source.read_text().splitlines(keepends=True)[:3]))
            continue
        records = json.loads(source.read_text())[:3] if relative.endswith(".json") else read_jsonl(source)[:3]
        if rename and rename[0] == relative:
            records[1] = {(rename[2] if k == rename[1] else k): v for k, v in records[1].items()}
        if relative.endswith(".json"):
            target.write_text(json.dumps(records))
        else:
            text = "".join(json.dumps(r) + "\n" for r in records)
            target.write_bytes(gzip.compress(text.encode()) if relative.endswith(".gz") else text.encode())
    return tmp


@pytest.mark.parametrize(("name", "relative", "old", "new"), RENAMED)
def test_a_renamed_field_is_a_one_line_error_naming_the_file_and_fields(tmp_path, name, relative, old, new):
    task = mc_task(name)
    assert len(task.load_mirror(small_mirror(tmp_path / "ok", name))) == 3
    with pytest.raises(QwenPipeError) as info:
        task.load_mirror(small_mirror(tmp_path / "bad", name, (relative, old, new)))
    message = str(info.value)
    assert "\n" not in message
    assert str(tmp_path / "bad" / relative) in message
    assert f"lacks field(s) {old}" in message and "expected fields" in message


def test_arc_without_a_question_stem_is_a_one_line_error(tmp_path):
    relative = "arc_challenge/ARC-Challenge-Test.jsonl"
    path = tmp_path / relative
    path.parent.mkdir(parents=True)
    record = read_jsonl(mirror_dir() / relative)[0]
    record["question"] = {"text": record["question"]["stem"], "choices": record["question"]["choices"]}
    path.write_text(json.dumps(record) + "\n")
    with pytest.raises(QwenPipeError) as info:
        mc_task("arc_challenge").load_mirror(tmp_path)
    assert "\n" not in str(info.value) and str(path) in str(info.value) and "question{stem" in str(info.value)
