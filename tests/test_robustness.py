"""Bad input never crashes a scorer or loses work: odd model outputs, a full disk, interrupted writes."""

from __future__ import annotations

import errno
import json
import math

import pytest

from qwen_pipe.engines.base import Generation, Loglikelihood
from qwen_pipe.io import read_jsonl, write_json, write_jsonl
from qwen_pipe.score import score_records
from qwen_pipe.tasks import task_names
from qwen_pipe.tasks.common.base import GenerationTask, LoglikelihoodTask, PromptStyle
from qwen_pipe.tasks.common.registry import get_task

from support import ROOT, qwen_pipe

ODD_OUTPUTS = {
    "empty": "",
    "non_utf8": "answer \udcff\udc80 bytes that were not UTF-8 \ud800",
    "enormous": "The answer is 7. " * 60_000 + "#### 7",  # ~1 MB
    "only_thinking": "<think>" + "hmm " * 1000,
    "control": "\x00\x1b[31m\u202e#### 4",
}


def embedded(task):
    return [{"id": task.sample_id(r, i), **r} for i, r in enumerate(task.load_embedded())][:3]


def records_for(task, samples, text: str):
    records = []
    for sample in samples:
        turns = task.turns(sample) if isinstance(task, GenerationTask) else 0
        if isinstance(task, LoglikelihoodTask):
            responses = [
                {
                    "logprob": math.nan,
                    "is_greedy": False,
                    "continuation_tokens": 1,
                    "continuation": r.continuation,
                    "context_sha256": "x",
                }
                for r in task.loglikelihood_requests(sample)
            ]
        else:
            responses = [
                {
                    "text": text,
                    "prompt_tokens": 1,
                    "output_tokens": 1,
                    "finish_reason": "length",
                    "seconds": 0.0,
                    "prompt": "p",
                    "prompt_sha256": "x",
                }
                for _ in range(turns)
            ]
        records.append({"id": sample["id"], "responses": responses})
    return records


CASES = [
    (name, kind)
    for name in task_names()
    for kind in ODD_OUTPUTS
    # log-likelihood tasks read numbers, not text: one case each, with NaN log-likelihoods
    if kind == "empty" or not isinstance(get_task(name), LoglikelihoodTask)
]


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_every_scorer_survives_odd_outputs(name, kind, tmp_path):
    task = get_task(name)
    samples = embedded(task)
    rows, aggregate = score_records(
        task, samples, records_for(task, samples, ODD_OUTPUTS[kind]), PromptStyle(chat=True)
    )
    assert len(rows) == len(samples)
    for metric in task.metrics:
        value = aggregate[metric]["value"]
        assert 0.0 <= value <= 1.0, (metric, value)
    write_jsonl(tmp_path / "rows.jsonl", rows)  # lone surrogates must survive the round trip
    assert [r["id"] for r in read_jsonl(tmp_path / "rows.jsonl")] == [r["id"] for r in rows]


def test_full_disk_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "metrics.json"
    write_json(target, {"score": 0.5})

    real_fdopen = __import__("os").fdopen

    def full_disk(fd, *args, **kwargs):
        handle = real_fdopen(fd, *args, **kwargs)

        class Full:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                handle.close()

            def write(self, _):
                raise OSError(errno.ENOSPC, "No space left on device", str(target))

        return Full()

    monkeypatch.setattr("qwen_pipe.io.os.fdopen", full_disk)
    with pytest.raises(OSError):
        write_json(target, {"score": 0.9})
    assert json.loads(target.read_text()) == {"score": 0.5}
    assert list(tmp_path.iterdir()) == [target]


def test_full_disk_is_a_one_line_error(tmp_path):
    from qwen_pipe.console import os_error_line

    line = os_error_line(OSError(errno.ENOSPC, "No space left on device", "data/x.jsonl"))
    assert "no space left" in line and "data/x.jsonl" in line and "fix:" in line and "\n" not in line


def test_oracle_without_gold_is_refused_before_loading(mirror):
    done = qwen_pipe(
        "eval",
        "--engine",
        "oracle",
        "--models",
        "tiny_small",
        "--datasets",
        "gsm8k,mt_bench",
        "--data-dir",
        str(mirror),
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0 and "mt_bench has no gold answers" in done.stderr


def test_loglikelihood_nan_scores_zero_not_crash():
    task = get_task("arc_easy")
    samples = embedded(task)
    records = records_for(task, samples, "")
    _, aggregate = score_records(task, samples, records, PromptStyle(chat=False))
    assert aggregate["acc"]["value"] in (0.0, 1.0 / 3, 2.0 / 3, 1.0)  # defined, whatever the tie-break


def test_generation_record_roundtrip_keeps_types():
    from qwen_pipe.score import responses_of

    record = {
        "id": "x",
        "responses": [
            {
                "text": "a",
                "prompt_tokens": 2,
                "output_tokens": 1,
                "finish_reason": "stop",
                "seconds": 0.1,
                "cached": True,
                "prompt": "p",
                "prompt_sha256": "h",
            }
        ],
    }
    assert responses_of(record) == [Generation("a", 2, 1, "stop", 0.1)]
    ll = {
        "id": "y",
        "responses": [
            {
                "logprob": -1.0,
                "is_greedy": True,
                "continuation_tokens": 3,
                "cached": False,
                "continuation": " a",
                "context_sha256": "h",
            }
        ],
    }
    assert responses_of(ll) == [Loglikelihood(-1.0, True, 3)]


def test_params_file_is_left_intact_by_a_bad_profile(tmp_path):
    params = tmp_path / "params.yaml"
    # a profile of params.yaml replacing the shipped `embedded` by name, with a misspelt dataset
    text = (ROOT / "params.yaml").read_text() + "profiles:\n  embedded: {run: {datasets: [gsm9k]}}\n"
    params.write_text(text)
    done = qwen_pipe("profile", "embedded", "--params", str(params))
    assert done.returncode == 2 and "gsm9k" in done.stderr
    assert params.read_text() == text
