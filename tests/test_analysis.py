"""The analysis: paired comparisons over saved per-sample scores, consolidation and the leaderboard, the
insight rules on synthetic numbers, and the readiness criteria and gate."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from qwen_pipe.consolidate import cell_rows, error_rates, leaderboard
from qwen_pipe.insights import coverage_preset_insights, preset_insights, quality_insights, scaling_insights
from qwen_pipe.io import write_json, write_jsonl
from qwen_pipe.readiness import coverage_criteria, criteria, failure_line, memory_in_use_gib, verdict
from qwen_pipe.scaling import compare_cells, compare_systems, mean_delta

ROOT = Path(__file__).resolve().parents[1]


def _doc(model: str, dataset: str, score: float, n: int = 100, preset: str = "balanced", **extra) -> dict:
    return {
        "model": model,
        "preset": preset,
        "dataset": dataset,
        "status": "ok",
        "primary_metric": "acc",
        "accuracy": True,
        "score": score,
        "stderr": (score * (1 - score) / (n - 1)) ** 0.5,
        "n": n,
        "requests": n,
        "truncated": 0,
        "failed_requests": {"truncated": 0},
        **extra,
    }


def _scores(root: Path, model: str, dataset: str, correct: list[int], preset: str = "balanced") -> None:
    rows = [{"id": f"q{i}", "metrics": {"acc": float(c)}} for i, c in enumerate(correct)]
    write_jsonl(root / model / preset / f"{dataset}.jsonl", rows)


# --- paired comparisons over saved results -------------------------------------------------------------


def test_compare_pairs_the_saved_per_sample_scores_by_id(tmp_path):
    small = [1] * 50 + [0] * 50
    large = [1] * 50 + [1] * 12 + [0] * 38  # fixes 12, breaks none
    _scores(tmp_path, "s", "d", small)
    _scores(tmp_path, "l", "d", large[::-1][::-1])
    result = compare_cells(_doc("s", "d", 0.5), _doc("l", "d", 0.62), tmp_path)
    assert result["test"] == "mcnemar_exact" and result["n"] == 100
    assert result["delta"] == pytest.approx(0.12) and result["significant"]
    assert result["p_value"] == pytest.approx(2 / 2**12)
    assert result["discordant"] == {"only_a": 0, "only_b": 12}


def test_shuffled_rows_are_still_paired_by_id_not_by_position(tmp_path):
    """A per-sample file written in another order must not pair item i of one with item i of the other."""
    correct = [1, 0] * 50
    _scores(tmp_path, "s", "d", correct)
    rows = [{"id": f"q{i}", "metrics": {"acc": float(c)}} for i, c in enumerate(correct)]
    write_jsonl(tmp_path / "l/balanced/d.jsonl", rows[::-1])
    result = compare_cells(_doc("s", "d", 0.5), _doc("l", "d", 0.5), tmp_path)
    assert result["delta"] == 0 and result["significant"] is False and result["p_value"] == 1.0


def test_without_per_sample_scores_the_comparison_falls_back_to_the_stderr_and_says_so(tmp_path):
    _scores(tmp_path, "s", "d", [1] * 50 + [0] * 50)  # the large model's file is missing
    result = compare_cells(_doc("s", "d", 0.5), _doc("l", "d", 0.7), tmp_path)
    assert result["test"] == "unpaired_normal" and result["p_value"] is not None


def test_different_metrics_are_never_compared(tmp_path):
    with pytest.raises(ValueError, match="not comparable"):
        compare_cells(_doc("s", "d", 0.5), _doc("l", "d", 0.5, primary_metric="acc_norm"), tmp_path)


def test_the_effect_across_datasets_averages_accuracies_only(tmp_path):
    """MT-Bench's `answered` is not an accuracy: it never enters the mean (the old scale averaged it in)."""
    for model, score in (("s", [1] * 40 + [0] * 60), ("l", [1] * 60 + [0] * 40)):
        _scores(tmp_path, model, "gsm8k", score)
    answered = {"primary_metric": "answered", "accuracy": False}
    small = {"gsm8k": _doc("s", "gsm8k", 0.4), "mt_bench": _doc("s", "mt_bench", 0.1, **answered)}
    large = {"gsm8k": _doc("l", "gsm8k", 0.6), "mt_bench": _doc("l", "mt_bench", 1.0, **answered)}
    result = compare_systems(small, large, scores=tmp_path)
    mean = result["mean_accuracy_delta"]
    assert mean["datasets"] == ["gsm8k"] and mean["left_out"] == ["mt_bench"]
    assert mean["delta"] == pytest.approx(0.2)


def test_failed_cells_are_left_out_of_a_comparison(tmp_path):
    failed = {**_doc("l", "d", 0.5), "status": "failed", "score": None}
    assert compare_systems({"d": _doc("s", "d", 0.5)}, {"d": failed}, scores=tmp_path)["datasets"] == {}


def test_mean_delta_interval_combines_the_datasets_intervals():
    per = {
        "a": {"accuracy": True, "delta": 0.1, "low": 0.0, "high": 0.2},
        "b": {"accuracy": True, "delta": 0.3, "low": 0.2, "high": 0.4},
    }
    mean = mean_delta(per)
    half = (0.1**2 + 0.1**2) ** 0.5 / 2  # two independent halves of 0.1
    assert mean["delta"] == pytest.approx(0.2)
    assert (mean["low"], mean["high"]) == pytest.approx((0.2 - half, 0.2 + half))
    assert mean["significant"] is True


# --- consolidation ----------------------------------------------------------------------------------------


def _row(model: str, dataset: str, score: float, low: float, high: float, **extra) -> dict:
    doc = _doc(model, dataset, score, ci_low=low, ci_high=high, **extra)
    return cell_rows([doc], {})[0]


def test_leaderboard_ties_models_whose_intervals_overlap():
    rows = [
        _row("a", "x", 0.80, 0.75, 0.85),
        _row("b", "x", 0.78, 0.73, 0.83),  # overlaps a
        _row("c", "x", 0.40, 0.35, 0.45),  # overlaps nobody
    ]
    board = leaderboard(rows)[0]
    ranks = {r["model"]: (r["rank"], r["tied_with"]) for r in board["rows"]}
    assert ranks == {"a": (1, ["b"]), "b": (1, ["a"]), "c": (3, [])}


def test_leaderboard_ranks_only_over_the_datasets_every_model_scored():
    rows = [
        _row("a", "x", 0.5, 0.45, 0.55),
        _row("b", "x", 0.5, 0.45, 0.55),
        _row("a", "only_a", 1.0, 0.99, 1.0),  # would lift a if counted
    ]
    board = leaderboard(rows)[0]
    assert board["datasets"] == ["x"] and {r["mean"] for r in board["rows"]} == {0.5}


def test_leaderboard_leaves_out_failed_cells_and_non_accuracies():
    failed = {
        **_doc("a", "x", 0.0),
        "status": "failed",
        "score": None,
        "failed_requests": {"failed_cell": 100},
    }
    judged = _doc("b", "mt", 1.0, primary_metric="answered", accuracy=False)
    rows = cell_rows([failed, judged], {})
    assert leaderboard(rows) == []


def test_error_rates_count_every_kind_overall_and_per_model():
    docs = [
        _doc("a", "x", 0.5, failed_requests={"truncated": 3, "prompt_too_long": 1}),
        _doc("b", "x", 0.5, failed_requests={"sandbox_timeout": 2}),
        {**_doc("b", "y", 0.5), "status": "failed", "score": None, "failed_requests": {"failed_cell": 100}},
    ]
    errors = error_rates(cell_rows(docs, {}))
    assert errors["overall"]["rate"] == pytest.approx(106 / 300)
    assert errors["overall"]["kinds"] == {
        "failed_cell": 100,
        "prompt_too_long": 1,
        "sandbox_timeout": 2,
        "truncated": 3,
    }
    assert errors["by_model"]["a"]["rate"] == pytest.approx(4 / 100)
    assert errors["by_model"]["b"]["rate"] == pytest.approx(102 / 200)


def test_cost_is_estimated_from_tokens_at_the_measured_throughput_whatever_the_cache_did():
    doc = _doc("a", "x", 0.5, output_tokens=5_000, generation_seconds=0.01, cache={"hits": 100})
    coverage = {"a": {"balanced": {"output_tokens_per_s": 1_000.0, "on_gpu": True}}}
    row = cell_rows([doc], coverage)[0]
    assert row["cost_seconds"] == pytest.approx(5.0) and row["cost_unit"] == "GPU-seconds"
    assert row["wall_seconds"] == 0.01 and row["cached"] == 100


# --- insight rules on synthetic numbers ------------------------------------------------------------------


def _stat(delta, low, high, significant, p=None, n=500, cost=None, accuracy=True) -> dict:
    return {
        "metric": "acc",
        "accuracy": accuracy,
        "n": n,
        "a": 0.5,
        "b": 0.5 + delta,
        "delta": delta,
        "low": low,
        "high": high,
        "p_value": p,
        "test": "mcnemar_exact",
        "significant": significant,
        "cost_per_correct": {"small": 1.0, "large": cost, "ratio": cost},
    }


def _pair(datasets: dict, mean: dict | None = None, throughput=0.55) -> dict:
    return {
        "family": "qwen3",
        "preset": "balanced",
        "small": "qwen3_8b",
        "large": "qwen3_14b",
        "throughput_ratio": throughput,
        "datasets": datasets,
        "mean_accuracy_delta": mean,
    }


def test_a_significant_gain_is_named_with_its_interval_and_cost():
    [gain] = scaling_insights(_pair({"gsm8k": _stat(0.061, 0.042, 0.080, True, p=1e-6, cost=1.9)}))
    assert gain["rule"] == "scaling_gain"
    assert gain["text"].startswith("qwen3_14b gains +6.1 pts [+4.2, +8.0] on gsm8k over qwen3_8b")
    assert "at 1.9x the cost per correct answer" in gain["text"]
    assert gain["numbers"]["delta"] == 0.061 and gain["numbers"]["cost_ratio"] == 1.9


def test_a_loss_a_tie_and_an_undetermined_delta_each_get_their_own_rule():
    insights = scaling_insights(
        _pair(
            {
                "a": _stat(-0.05, -0.08, -0.02, True, p=0.001),
                "b": _stat(0.01, -0.02, 0.04, False, p=0.4),
                "c": _stat(0.0, None, None, None),
                "judge": _stat(0.5, 0.4, 0.6, True, accuracy=False),  # not an accuracy: no insight
            }
        )
    )
    assert [(i["rule"], i["numbers"]["dataset"]) for i in insights] == [
        ("scaling_loss", "a"),
        ("scaling_tie", "b"),
        ("scaling_tie", "c"),
    ]
    assert "loses -5.0 pts [-8.0, -2.0]" in insights[0]["text"]
    assert "(not significant, p = 0.4" in insights[1]["text"]
    assert "significance undetermined" in insights[2]["text"]


def test_the_recommendation_follows_the_mean_across_datasets():
    gain = {
        "delta": 0.04,
        "low": 0.02,
        "high": 0.06,
        "significant": True,
        "datasets": ["a", "b"],
        "left_out": [],
    }
    flat = {
        "delta": 0.004,
        "low": -0.01,
        "high": 0.018,
        "significant": False,
        "datasets": ["a"],
        "left_out": [],
    }
    [overall] = [i for i in scaling_insights(_pair({}, gain)) if i["rule"].startswith("scaling_recommend")]
    assert overall["rule"] == "scaling_recommend_large" and "+4.0 pts [+2.0, +6.0]" in overall["text"]
    [overall] = [i for i in scaling_insights(_pair({}, flat)) if i["rule"].startswith("scaling_recommend")]
    assert overall["rule"] == "scaling_recommend_small" and "not significant" in overall["text"]
    assert "0.55x the throughput" in overall["text"]


def _preset_row(delta, low, high, significant, throughput=1.0, sequences=1.0) -> dict:
    mean = {
        "delta": delta,
        "low": low,
        "high": high,
        "significant": significant,
        "datasets": ["x"],
        "left_out": [],
    }
    return {
        "model": "qwen3_8b",
        "baseline": "balanced",
        "preset": "memory_optimized",
        "throughput_ratio": throughput,
        "sequences_ratio": sequences,
        "memory_ratio": 0.5,
        "datasets": {},
        "mean_accuracy_delta": mean,
    }


def test_a_preset_that_loses_nothing_measurable_and_serves_more_is_recommended():
    [i] = preset_insights(_preset_row(-0.003, -0.008, 0.002, False, throughput=1.6))
    assert i["rule"] == "preset_recommended"
    assert "-0.3 pts [-0.8, +0.2] (not significant)" in i["text"] and "1.60x the throughput" in i["text"]
    assert "recommended for throughput-bound runs" in i["text"]


def test_more_sequences_at_a_lower_throughput_is_recommended_only_where_memory_binds():
    [i] = preset_insights(_preset_row(-0.003, -0.008, 0.002, False, throughput=0.89, sequences=2.0))
    assert i["rule"] == "preset_memory_bound" and "2.00x the concurrent sequences" in i["text"]
    assert "0.89x the throughput" in i["text"] and "not for throughput" in i["text"]


def test_a_preset_with_a_significant_loss_is_not_recommended_however_fast():
    [i] = preset_insights(_preset_row(-0.03, -0.05, -0.01, True, throughput=3.0, sequences=3.0))
    assert i["rule"] == "preset_loses" and "keep balanced" in i["text"]
    [i] = preset_insights(_preset_row(0.0, -0.01, 0.01, False))
    assert i["rule"] == "preset_no_gain"


def test_without_accuracy_under_a_preset_the_fastest_one_is_named_as_unmeasured():
    coverage = {
        "m": {
            "balanced": {"status": "PASS", "output_tokens_per_s": 1000.0},
            "performance": {"status": "PASS", "output_tokens_per_s": 1500.0},
            "broken": {"status": "FAIL", "output_tokens_per_s": 9000.0},  # fails coverage: never chosen
        }
    }
    [i] = coverage_preset_insights(coverage, "balanced")
    assert i["numbers"]["preset"] == "performance" and "1.50x the throughput" in i["text"]
    assert "accuracy was not measured" in i["text"]


def test_truncation_and_error_rate_rules_fire_on_their_thresholds():
    rows = cell_rows(
        [
            _doc("a", "x", 0.5, truncated=1, failed_requests={"truncated": 1}),  # 1%: not above
            _doc("a", "y", 0.5, truncated=2, failed_requests={"truncated": 2}),  # 2%
            _doc("b", "x", 0.5, truncated=10, failed_requests={"truncated": 10}),
        ],
        {},
    )
    insights = quality_insights(rows, error_rates(rows))
    assert [(i["rule"], i["subject"]) for i in insights] == [
        ("truncation", "a"),
        ("truncation", "b"),
        ("error_rate", "b"),  # a: 3/200 = 1.5% < 5%
    ]


def test_every_insight_states_the_numbers_that_triggered_it():
    """No template whose blanks could hold anything: each delta and bound in `numbers` is in the text."""
    insights = scaling_insights(
        _pair(
            {"x": _stat(0.123, 0.1, 0.146, True, p=1e-5, cost=2.5), "y": _stat(-0.017, -0.05, 0.016, False)},
            {
                "delta": 0.053,
                "low": 0.02,
                "high": 0.086,
                "significant": True,
                "datasets": ["x", "y"],
                "left_out": [],
            },
        )
    )
    for insight in insights:
        numbers = insight["numbers"]
        for key in ("delta", "low", "high"):
            if numbers.get(key) is not None:
                assert f"{numbers[key] * 100:+.1f}" in insight["text"], (key, insight["text"])


def test_a_judged_score_gets_its_own_rule_in_its_own_units():
    judged = {
        **_stat(0.42, 0.1, 0.74, True, accuracy=False),
        "kind": "judge",
        "metric": "rating",
        "test": "bootstrap",
    }
    tie = {**_stat(-0.03, -0.09, 0.05, False, accuracy=False), "kind": "judge", "metric": "win_rate"}
    insights = scaling_insights(_pair({"mt_bench": judged, "arena_hard": tie}))
    assert [i["rule"] for i in insights] == ["judge_tie", "judge_gain"]
    assert "gains +0.42 rating [+0.10, +0.74] on mt_bench (judged)" in insights[1]["text"]
    assert "tie: -0.03 win_rate [-0.09, +0.05] on arena_hard (judged) (not significant" in insights[0]["text"]
    for insight in insights:  # every number stated, in the metric's own units (never as accuracy points)
        for key in ("delta", "low", "high"):
            assert f"{insight['numbers'][key]:+.2f}" in insight["text"]
        assert "pts" not in insight["text"]


# --- readiness ----------------------------------------------------------------------------------------------


def _coverage(model="m", preset="balanced", **extra) -> dict:
    doc = {
        "model": model,
        "preset": preset,
        "status": "PASS",
        "output_tokens_per_s": 2000.0,
        "peak_memory_gib": 70.0,
        "device_total_gib": 80.0,
        "on_gpu": True,
        "device": "gpu",
        "kv_cache": {"gib": 50.0, "tokens": 1_000_000},
        "workload": {"prompt_tokens": 100_000, "output_tokens": 100_000},
        "checks": {"loaded": {"status": "PASS"}, "cleanup": {"status": "PASS"}},
    }
    return {**doc, **extra}


def test_memory_in_use_takes_the_unused_kv_pool_off_the_preallocated_peak():
    used, how = memory_in_use_gib(_coverage())
    # 70 GiB held, of which a 50 GiB pool; the workload's 200,000 tokens use a fifth of it: 10 GiB
    assert used == pytest.approx(70 - 50 + 10) and "KV-cache pool" in how
    assert memory_in_use_gib(_coverage(kv_cache=None))[0] == 70.0  # nothing to take off: the peak


def test_memory_criterion_fails_on_actual_use_not_on_the_preallocation():
    ok = coverage_criteria([_coverage()])  # 70/80 held = 87.5%, 30/80 in use = 37.5%
    assert next(c for c in ok if c["check"].startswith("memory <"))["status"] == "PASS"
    full = _coverage(workload={"prompt_tokens": 900_000, "output_tokens": 100_000})  # the whole pool in use
    check = next(c for c in coverage_criteria([full]) if c["check"].startswith("memory <"))
    assert check["status"] == "FAIL" and "m/balanced 88%" in check["reason"]


def test_throughput_is_judged_on_gpu_hosts_only():
    cpu = _coverage(on_gpu=False, device="cpu", output_tokens_per_s=40.0)
    check = next(c for c in coverage_criteria([cpu]) if c["check"].startswith("throughput"))
    assert check["status"] == "SKIP" and "CPU host, not judged: 40-40 tokens/s" in check["value"]
    slow = _coverage(output_tokens_per_s=90.0)
    check = next(
        c for c in coverage_criteria([slow, _coverage(preset="p")]) if c["check"].startswith("throughput")
    )
    assert (
        check["status"] == "FAIL"
        and check["value"] == "1/2 GPU configurations"
        and "m/balanced 90" in check["reason"]
    )


def test_a_model_that_did_not_load_fails_and_is_named():
    dead = _coverage(status="FAIL", checks={"loaded": {"status": "FAIL"}})
    check = coverage_criteria([_coverage(), dead | {"preset": "x"}])[0]
    assert check["status"] == "FAIL" and check["reason"] == "did not load: m/x"
    assert coverage_criteria([])[0]["status"] == "FAIL"  # no coverage at all is not a pass


def test_missing_outputs_and_invalid_configurations_fail_with_the_names(tmp_path):
    present = tmp_path / "here.json"
    present.write_text("{}")
    validate = {
        "passed": 1,
        "failed": 1,
        "configurations": 2,
        "checks": [
            {"model": "m", "preset": "balanced", "status": "PASS"},
            {"model": "m", "preset": "long_context", "status": "FAIL"},
        ],
    }
    checks = criteria(
        validate, [_coverage()], cell_rows([_doc("m", "x", 0.5)], {}), [present, tmp_path / "gone.json"]
    )
    failed = {c["check"]: c for c in checks if c["status"] == "FAIL"}
    assert set(failed) == {"configurations valid", "every required output present"}
    assert "m/long_context" in failed["configurations valid"]["reason"]
    assert "gone.json" in failed["every required output present"]["reason"]
    line = failure_line(checks)
    assert line.startswith("configurations valid: 1/2 PASS") and "1/2 files" in line
    assert verdict(checks, allow_unready=False) == {
        "ready": False,
        "allowed_unready": False,
        "checks": checks,
    }
    assert verdict(checks, allow_unready=True)["allowed_unready"] is True
    assert verdict([c for c in checks if c["status"] != "FAIL"], True)["allowed_unready"] is False


def test_no_evaluation_result_is_not_ready():
    check = criteria(None, [], [], [])
    assert {c["check"] for c in check if c["status"] == "FAIL"} >= {
        "configurations valid",
        "models load",
        "error rate < 5%",
    }


# --- the gate stage --------------------------------------------------------------------------------------------


def _run_folder(tmp_path: Path, truncated: int) -> Path:
    """A run's folder with params.yaml (one model x preset x dataset) and the files the gate reads."""
    params = (ROOT / "params.yaml").read_text()
    params = re.sub(r"  models: \[.*\]", "  models: [tiny_small]", params, count=1)
    params = re.sub(
        r"  presets: \[balanced, performance, memory_optimized\]", "  presets: [balanced]", params, count=1
    )
    params = re.sub(r"  datasets: \[.*\]", "  datasets: [gsm8k]", params, count=1)
    params = params.replace("  presets: [balanced, memory_optimized]", "  presets: [balanced]")
    params = params.replace("readiness:\n  allow_unready: true", "readiness:\n  allow_unready: false")
    (tmp_path / "params.yaml").write_text(params)
    cell = _doc(
        "tiny_small", "gsm8k", 0.5, n=100, truncated=truncated, failed_requests={"truncated": truncated}
    )
    write_json(tmp_path / "metrics/eval/tiny_small/balanced/gsm8k.json", cell)
    write_jsonl(
        tmp_path / "data/scores/tiny_small/balanced/gsm8k.jsonl", [{"id": "q", "metrics": {"acc": 1.0}}]
    )
    write_json(tmp_path / "metrics/coverage/tiny_small/balanced.json", _coverage("tiny_small"))
    write_json(
        tmp_path / "metrics/validate.json", {"passed": 1, "failed": 0, "configurations": 1, "checks": []}
    )
    for name in ("performance", "scaling", "cost_scaling"):
        write_json(tmp_path / f"metrics/{name}.json", {})
    for name in ("reports/analysis.json", "reports/report.md", "reports/report.html"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}")
    return tmp_path


def _gate(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "stages/readiness.py"), *args],
        cwd=folder,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(folder)},
    )


def test_the_gate_fails_with_the_reason_and_carries_on_only_when_told(tmp_path):
    folder = _run_folder(tmp_path, truncated=30)
    done = _gate(folder)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: readiness: NOT READY") and "error rate < 5%: 30.00%" in line
    assert "--allow-unready" in line
    summary = (folder / "metrics/readiness.json").read_text()
    assert '"ready": false' in summary  # the numbers are kept even when the stage fails
    done = _gate(folder, "--allow-unready")
    assert done.returncode == 0 and "NOT READY, carried on" in done.stdout


def test_the_gate_passes_a_ready_run_and_fails_when_a_report_is_missing(tmp_path):
    folder = _run_folder(tmp_path, truncated=0)
    done = _gate(folder)
    assert done.returncode == 0, done.stderr
    assert "readiness: READY" in done.stdout and "1 SKIP" not in done.stdout
    (folder / "reports/report.html").unlink()
    done = _gate(folder)
    assert done.returncode != 0 and "reports/report.html" in done.stderr


# --- qwen-pipe compare ----------------------------------------------------------------------------------------


def _saved_results(folder: Path) -> Path:
    """A `qwen-pipe eval`-style output folder: two models x two presets on one dataset, 200 items."""
    small = [1] * 100 + [0] * 100
    large = [1] * 130 + [0] * 70  # fixes 30 of the small model's misses
    for model, preset, correct in (("s", "balanced", small), ("l", "balanced", large), ("s", "fast", small)):
        rows = [
            {"id": f"q{i}", "metrics": {"acc": float(c), "strict": float(c)}, "correct": bool(c)}
            for i, c in enumerate(correct)
        ]
        write_jsonl(folder / "scores" / model / preset / "d.jsonl", rows)
        score = sum(correct) / len(correct)
        doc = _doc(model, "d", score, n=200, preset=preset)
        doc["metrics"] = {m: {"value": score, "stderr": doc["stderr"], "n": 200} for m in ("acc", "strict")}
        for key in ("model", "preset", "dataset"):
            del doc[key]  # a metrics file holds measurements only
        write_json(folder / "metrics" / model / preset / "d.json", doc)
    return folder


def test_compare_prints_the_paired_table_and_writes_json(tmp_path):
    from support import qwen_pipe

    results = _saved_results(tmp_path / "out")
    out = tmp_path / "cmp.json"
    done = qwen_pipe("compare", "s", "l", "--results", str(results), "--detailed", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert "B = l/balanced against A = s/balanced" in done.stdout
    line = next(x for x in done.stdout.splitlines() if x.startswith("d "))
    assert "0.5000" in line and "0.6500" in line and "mcnemar_exact" in line and "significant" in line
    assert "d: A higher on 0 (-), B higher on 30 (q100, q101" in done.stdout
    saved = json.loads(out.read_text())
    assert saved["datasets"]["d"]["discordant"] == {"only_a": 0, "only_b": 30}
    assert set(saved["datasets"]["d"]["metrics"]) == {"acc", "strict"}


def test_compare_presets_of_one_model_and_bad_names(tmp_path):
    from support import qwen_pipe

    results = _saved_results(tmp_path / "out")
    done = qwen_pipe("compare", "s/balanced", "s/fast", "--results", str(results), "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["datasets"]["d"]["delta"] == 0 and result["datasets"]["d"]["significant"] is False
    for args, problem in (
        (("s", "nobody"), "unknown model with saved results 'nobody'"),
        (("s/balanced", "s/turbo"), "unknown preset with saved results for s 'turbo'"),
        (("s", "l", "--datasets", "gsm9k"), "unknown dataset 'gsm9k'"),
    ):
        done = qwen_pipe("compare", *args, "--results", str(results))
        assert done.returncode != 0 and "Traceback" not in done.stderr
        [line] = done.stderr.strip().splitlines()
        assert problem in line, line
    done = qwen_pipe("compare", "s", "l", "--results", str(tmp_path / "empty"))
    assert done.returncode != 0 and "no saved results" in done.stderr


def test_the_preset_answer_is_every_preset_verdict():
    from qwen_pipe.analysis import answers

    insights = preset_insights(_preset_row(0.0, -0.01, 0.01, False, throughput=0.9, sequences=2.0))
    insights += preset_insights({**_preset_row(-0.05, -0.08, -0.02, True), "model": "other"})
    readiness = verdict([], allow_unready=False)
    [*_, preset, _] = answers({"coverage": {}}, [], {}, insights, readiness)
    assert preset["question"] == "Which preset to use?"
    assert preset["answer"] == "; ".join(i["text"] for i in insights)
    [*_, preset, _] = answers({"coverage": {}}, [], {}, [], readiness)
    assert "nothing to choose between" in preset["answer"]


def test_a_corrupt_metrics_file_is_a_one_line_error_naming_it(tmp_path):
    folder = _run_folder(tmp_path, truncated=0)
    (folder / "metrics/eval/tiny_small/balanced/gsm8k.json").write_text('{"score": 0.5,\n<<<<<<< HEAD\n')
    done = _gate(folder)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert "metrics/eval/tiny_small/balanced/gsm8k.json is not valid JSON" in line and "line 2" in line
