"""Published scores (qwen_pipe/published.yaml) and the comparison with them: only the same measurement is
ever compared (model, dataset, shots, thinking, the qwen protocol, the whole split, a real result)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from qwen_pipe.errors import QwenPipeError
from qwen_pipe.published import (
    PUBLISHED,
    Z95,
    compare_published,
    load_published,
    published,
    published_comparison,
)

from support import ROOT, metrics_tree

MMLU_QWEN3_8B_BASE = 0.7689  # Qwen3 report, base models: MMLU, Qwen3-8B-Base


def _doc(model: str = "qwen3_8b_base", dataset: str = "mmlu", **fields) -> dict:
    """A metrics document of a full-split run under the qwen protocol (MMLU 5-shot by default)."""
    rows = {"mmlu": 14042, "mmlu_redux": 5700, "gsm8k": 1319, "math500": 500, "humaneval": 164}[dataset]
    metric = {"mmlu": "acc_micro", "mmlu_redux": "acc", "gsm8k": "flexible_match"}.get(dataset, "exact_match")
    metric = "pass@1" if dataset == "humaneval" else metric
    score, stderr = fields.pop("score", 0.77), fields.pop("stderr", 0.0035)
    n = fields.pop("n", rows)
    doc = {
        "model": model,
        "preset": "balanced",
        "dataset": dataset,
        "status": "ok",
        "protocol": "qwen",
        "primary_metric": metric,
        "score": score,
        "stderr": stderr,
        "n": n,
        "metrics": {metric: {"value": score, "stderr": stderr, "n": n}},
        "embedded_sample": False,
        "source": {"source": "mirror", "split": "test", "rows": rows},
        "shots": {"mmlu": 5, "gsm8k": 4}.get(dataset, 0),
        "thinking": False,
        "engine": {"engine": "vllm", "version": "1", "model": f"Qwen/{model}"},
        "requests": n,
        "truncated": 0,
        "truncation_rate": 0.0,
        "failed_requests": {"truncated": 0, "prompt_too_long": 0},
        "provenance": {
            "git_commit": "abc",
            "git_dirty": False,
            "qwen_pipe": "0.1.0",
            "hardware": {"cpu": "x", "cores": 2},
        },
    }
    return {**doc, **fields}


def _skipped(doc: dict) -> dict:
    comparison = compare_published([doc])
    assert comparison.rows == []
    return dict(comparison.skipped)


# --- the data file ---------------------------------------------------------------------------------------


def test_every_entry_names_a_registry_model_a_task_its_metric_and_its_split():
    from qwen_pipe.models.registry import BUILTIN_MODELS
    from qwen_pipe.tasks import TASKS
    from qwen_pipe.tasks.common.registry import task_class

    entries = load_published()
    assert len(entries) == 58  # 24 base (Tables 5-6), 18 post-trained (15-18), 14 Qwen-1, 2 MT-Bench
    for e in entries:
        spec = BUILTIN_MODELS[e.model]
        assert not e.model.startswith("tiny")
        if spec.kind == "base":
            assert e.thinking is None, e.label()
        else:
            assert isinstance(e.thinking, bool), e.label()
            assert e.thinking is False or spec.supports_thinking, e.label()
        if not e.compared:
            assert e.not_compared
            continue
        assert e.dataset in TASKS, e.label()
        task = task_class(e.dataset)
        judged = getattr(task, "judge_metric", None)  # an LLM-judged task: its judge's metric
        assert e.metric in (*task.metrics, judged), e.label()
        assert (e.judges is not None) == (e.metric == judged), (
            f"{e.label()}: a judged number names its judges"
        )
        assert e.rows == task.source.rows, f"{e.label()}: the published split is the task's split"


def test_evalplus_math_and_arena_hard_are_data_only():
    """Each has a reason and never becomes a comparison row, however close a result is."""
    entries = load_published()
    not_compared = {(e.benchmark, e.model) for e in entries if not e.compared}
    benchmarks = {b for b, _ in not_compared}
    assert benchmarks == {"EvalPlus", "MATH", "Arena-Hard"}
    assert all(e.compared for e in entries if e.benchmark not in benchmarks)
    mt = next(e for e in entries if e.benchmark == "MT-Bench" and e.model == "qwen_8b")
    assert (mt.value, mt.scale) == (6.39, "mt_bench")  # the raw 1-10 score, not a fraction
    # the humaneval part of EvalPlus at 0-shot, and a math500 run of a base model: no row
    humaneval = _doc("qwen3_8b_base", "humaneval", score=0.6, stderr=0.04)
    math = _doc("qwen3_8b_base", "math500", score=0.6, stderr=0.02, shots=4)
    assert published_comparison([humaneval, math]) == []


def _judged(judge: str, **fields) -> dict:
    """Qwen-7B-Chat's MT-Bench cell under the qwen protocol, judged by `judge` (a merged eval document)."""
    doc = {**_doc("qwen_8b", "gsm8k"), "dataset": "mt_bench", "primary_metric": "rating", "score": 6.5,
           "stderr": 0.1, "n": 80, "metrics": {"rating": {"value": 6.5, "stderr": 0.1, "n": 80}},
           "shots": 0, "thinking": False, "judge": {"model": judge}, "accuracy": False}  # fmt: skip
    return {**doc, **fields}


def test_mt_bench_is_compared_only_when_fastchats_gpt4_judged_it():
    [row] = published_comparison([_judged("gpt-4-0613")])
    assert (row["benchmark"], row["published"], row["measured"]) == ("MT-Bench", 6.39, 6.5)
    assert row["delta"] == pytest.approx(0.11)
    for judge in ("qwen3_14b", "gpt-4o", "tiny_large", None):  # another judge: another measurement
        result = compare_published([_judged(judge)])
        assert result.rows == [] and result.skipped == {"other judge": 1}, judge
    subset = _judged("gpt-4", n=40, metrics={"rating": {"value": 6.5, "stderr": 0.1, "n": 40}})
    assert compare_published([subset]).skipped == {"subset run": 1}


def _reference_scores() -> Path:
    """../shared/REFERENCE_SCORES.md (beside the data mirror, like every other test's data): missing, the test
    fails saying where it looked, never skips."""
    for candidate in (
        os.environ.get("QWEN_PIPE_REFERENCE_SCORES"),
        ROOT.parent / "shared" / "REFERENCE_SCORES.md",
        Path(os.environ.get("QWEN_PIPE_DATA_DIR") or "/nonexistent").parent / "REFERENCE_SCORES.md",
    ):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    pytest.fail("REFERENCE_SCORES.md not found beside the data mirror: set QWEN_PIPE_REFERENCE_SCORES")


def _parse_reference(text: str) -> dict[tuple[str, str], str]:
    """(row label, column heading) -> the number as printed, from every Markdown table, plus the MT-Bench
    line ("Qwen-7B-Chat 6.39, ...")."""
    numbers: dict[tuple[str, str], str] = {}
    header: list[str] | None = None
    for line in text.splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
            continue
        if all(set(c) <= {"-", ":"} for c in cells):
            continue
        for column, cell in zip(header[1:], cells[1:], strict=True):
            if re.fullmatch(r"\d+(\.\d+)?", cell):
                assert (cells[0], column) not in numbers, f"ambiguous cell {cells[0]} / {column}"
                numbers[(cells[0], column)] = cell
    after = text.split("MT-Bench (", 1)[1]
    for model, value in re.findall(r"(Qwen-\d+B-Chat) (\d+\.\d+)", after.split("\n\n", 1)[0]):
        numbers[(model, "MT-Bench")] = value
    return numbers


def test_each_value_equals_the_number_of_the_reference_file():
    path = _reference_scores()
    numbers = _parse_reference(path.read_text(encoding="utf-8"))
    entries = load_published()
    covered = set()
    for e in entries:
        key = (e.source.row, e.source.column)
        assert key in numbers, f"{e.label()}: no number at row {key[0]!r}, column {key[1]!r} of {path}"
        printed = float(numbers[key])
        assert e.value == pytest.approx(printed / 100 if e.scale == "fraction" else printed, abs=1e-12), (
            e.label()
        )
        covered.add(key)
    assert covered == set(numbers), f"numbers of {path} without an entry: {sorted(set(numbers) - covered)}"


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda e: e.pop("rows"), "dataset, metric and rows go together"),
        (lambda e: e.update(value=76.89), "value 76.89 is outside [0, 1]"),
        (lambda e: e.update(not_compared="why"), "both a dataset and a not_compared reason"),
        (lambda e: e.update(unknown_key=1), "unknown_key: Extra inputs are not permitted"),
        (lambda e: e.update(scale="percent"), "scale:"),
        (lambda e: e.pop("thinking"), "thinking: Field required"),
        (lambda e: e.update(shots=None), "needs its published shots"),
        (lambda e: e["source"].pop("row"), "source.row: Field required"),
    ],
)
def test_a_malformed_entry_is_one_line_naming_it(tmp_path, edit, expected):
    import yaml

    document = yaml.safe_load(PUBLISHED.read_text(encoding="utf-8"))
    edit(document["entries"][2])  # Qwen3-8B-Base MMLU
    path = tmp_path / "published.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    with pytest.raises(QwenPipeError) as raised:
        load_published(path)
    line = raised.value.line()
    assert "\n" not in line and "entry 3 (Qwen3-8B-Base MMLU)" in line and expected in line


def test_a_duplicate_measurement_and_a_broken_file_are_one_line_errors(tmp_path):
    import yaml

    document = yaml.safe_load(PUBLISHED.read_text(encoding="utf-8"))
    document["entries"].append(dict(document["entries"][2], published_model="Copy"))
    path = tmp_path / "published.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    with pytest.raises(QwenPipeError, match=r"entry 59 \(Copy MMLU\): the same measurement as entry 3"):
        load_published(path)
    for text, expected in (
        ("entries: [a: b: c]", "not valid YAML"),
        ("entries: {}", "list under `entries:`"),
    ):
        path.write_text(text, encoding="utf-8")
        with pytest.raises(QwenPipeError, match=expected) as raised:
            load_published(path)
        assert "\n" not in raised.value.line()


# --- matching --------------------------------------------------------------------------------------------


def test_a_full_split_result_under_the_qwen_protocol_is_compared():
    (row,) = published_comparison([_doc(score=0.77, stderr=0.0035)])
    assert (row["model"], row["dataset"], row["metric"], row["shots"]) == (
        "qwen3_8b_base",
        "mmlu",
        "acc_micro",
        5,
    )
    assert row["published"] == MMLU_QWEN3_8B_BASE and row["measured"] == 0.77
    assert row["delta"] == pytest.approx(0.77 - MMLU_QWEN3_8B_BASE)
    assert row["delta_low"] == pytest.approx(0.77 - Z95 * 0.0035 - MMLU_QWEN3_8B_BASE)
    assert row["delta_high"] == pytest.approx(0.77 + Z95 * 0.0035 - MMLU_QWEN3_8B_BASE)
    assert row["outside"] is False and row["source"]["column"] == "Qwen3-8B-Base"


def test_tiny_models_are_never_compared():
    """Tiny models have registry names of their own ("tiny_*") and a local path as engine model; even a
    tiny-model document that otherwise looks like a full Qwen run has no published number."""
    for model in ("tiny_small", "tiny_large"):
        doc = _doc(model, engine={"engine": "vllm", "version": "1", "model": f"data/models/{model}"})
        assert _skipped(doc) == {"model without published numbers": 1}


def test_embedded_samples_are_never_compared():
    assert _skipped(_doc(embedded_sample=True, n=8)) == {"embedded sample": 1}
    assert _skipped(_doc(embedded_sample=True)) == {"embedded sample": 1}  # even with the full split's n


@pytest.mark.parametrize("protocol", ["lm-eval", "qwen-pipe", None])
def test_only_the_qwen_protocol_is_compared(protocol):
    doc = _doc(protocol=protocol)
    if protocol is None:
        del doc["protocol"]  # a document from before protocols: qwen-pipe's own prompts
    assert _skipped(doc) == {"protocol qwen-pipe" if protocol is None else f"protocol {protocol}": 1}


def test_other_shots_are_not_compared():
    assert _skipped(_doc(shots=0)) == {"other shots": 1}
    # Qwen-1 base GSM8K is 8-shot, the Qwen3 report's 4-shot: a 4-shot run of Qwen-7B is not 51.7
    assert _skipped(_doc("qwen_8b_base", "gsm8k", shots=4)) == {"other shots": 1}
    (row,) = published_comparison([_doc("qwen_8b_base", "gsm8k", shots=8, score=0.5, stderr=0.014)])
    assert row["published"] == 0.517


def test_thinking_must_match_for_post_trained_models():
    thinking = _doc("qwen3_8b", "mmlu_redux", shots=0, thinking=True, score=0.86, stderr=0.005)
    plain = _doc("qwen3_8b", "mmlu_redux", shots=0, thinking=False, score=0.80, stderr=0.005)
    rows = {r["thinking"]: r["published"] for r in published_comparison([thinking, plain])}
    assert rows == {True: 0.875, False: 0.795}
    # Qwen2.5-Instruct has only a non-thinking number; a missing `thinking` key is not "off"
    assert _skipped(_doc("qwen2.5_8b", "mmlu_redux", shots=0, thinking=True)) == {"other thinking mode": 1}
    no_key = _doc("qwen2.5_8b", "mmlu_redux", shots=0)
    del no_key["thinking"]
    assert _skipped(no_key) == {"other thinking mode": 1}


def test_base_model_entries_do_not_compare_thinking():
    assert len(published_comparison([_doc(thinking=False)])) == 1


def test_failed_and_subset_results_are_not_compared():
    failed = {"model": "qwen3_8b_base", "dataset": "mmlu", "status": "failed", "protocol": "qwen", "n": 0}
    assert _skipped(failed) == {"failed": 1}
    subset = _doc(n=100, stderr=0.05)  # a sample_limit run: an estimate, not the published number
    assert _skipped(subset) == {"subset run": 1}
    over = _doc(n=14043)  # a split that is not the published one
    assert _skipped(over) == {"subset run": 1}


def test_a_dataset_without_a_published_number_is_not_compared():
    assert _skipped(_doc("qwen3_8b", "humaneval", shots=0)) == {"dataset without a published number": 1}


# --- the interval ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("side", [-1, 1])
def test_a_published_value_exactly_on_the_interval_edge_is_inside(side):
    stderr = 0.0125
    score = MMLU_QWEN3_8B_BASE - side * Z95 * stderr  # the published value is measured +/- 1.96 stderr
    (row,) = published_comparison([_doc(score=score, stderr=stderr)])
    assert row["outside"] is False
    edge = row["delta_high"] if side == 1 else row["delta_low"]
    assert edge == pytest.approx(0.0, abs=1e-12)
    nudged = score - side * 1e-6  # a hair further: outside
    (row,) = published_comparison([_doc(score=nudged, stderr=stderr)])
    assert row["outside"] is True


def test_the_flag_says_whether_the_published_value_is_in_the_measured_interval():
    inside, outside = _doc(score=0.765, stderr=0.0035), _doc(score=0.70, stderr=0.0035)
    assert published_comparison([inside])[0]["outside"] is False
    (row,) = published_comparison([outside])
    assert row["outside"] is True and row["delta_high"] < 0  # the whole interval below the published value
    no_stderr = _doc(stderr=None)
    (row,) = published_comparison([no_stderr])
    assert (
        row["outside"] is None and row["delta_low"] is None and row["delta"] == pytest.approx(0.77 - 0.7689)
    )


# --- the report ------------------------------------------------------------------------------------------


def test_the_report_compares_and_names_what_it_did_not():
    from qwen_pipe.report import render_markdown

    docs = [
        _doc(score=0.70, stderr=0.0035),
        _doc(preset="long_context", protocol="lm-eval"),
        _doc("tiny_small", preset="balanced"),
        _doc("qwen3_8b", "mmlu_redux", shots=0, thinking=True, score=0.86, stderr=0.005),
    ]
    report = render_markdown(metrics_tree(*docs))
    lines = report.splitlines()
    assert lines.index("## Published numbers") > lines.index("## Accuracy")
    assert (
        "| qwen3_8b_base | balanced | mmlu | acc_micro | 5 | – | 0.7689 | 0.7000 | -0.0689 | [-0.0758, -0.0620] "
        "| **OUTSIDE** | Qwen3-8B-Base MMLU; Tables 5-6 (base models) |" in lines
    )
    assert any(
        line.startswith("| qwen3_8b | balanced | mmlu_redux | acc | 0 | on | 0.8750 | 0.8600 |")
        for line in lines
    )
    assert "Not compared: model without published numbers: 1; protocol lm-eval: 1." in lines
    # the protocol column of the accuracy table
    assert (
        "| qwen3_8b_base | long_context | mmlu | acc_micro | 0.7700 | 0.0035 | – | 14,042 | 0/14,042 (0%) | 5 | off | lm-eval |"
        in lines
    )


def test_the_report_says_why_nothing_was_compared():
    from qwen_pipe.report import published_section

    docs = [
        _doc("tiny_small", embedded_sample=True, n=8),
        _doc(preset="p2", n=100),
        _doc(preset="p3", protocol=None),
    ]
    lines = published_section(metrics_tree(*docs))
    assert lines[0] == "## Published numbers"
    (line,) = [x for x in lines[1:] if x]
    assert line.startswith("No result under the qwen protocol on a full published split")
    assert "embedded-sample and tiny-model results are never compared" in line
    assert line.endswith(
        "(not compared here: model without published numbers: 1; protocol qwen-pipe: 1; subset run: 1)."
    )
    assert published_section(metrics_tree()) == []  # no evaluation at all: no section


def test_the_report_stage_depends_on_the_data_file():
    """codedeps finds package data by the file names the code spells: published.py names published.yaml,
    so the report stage's code manifest covers it and an edit of a published number reruns the report."""
    from qwen_pipe import codedeps

    assert "qwen_pipe/published.yaml" in codedeps.expected_code_deps("report")
    assert published() == load_published()
