"""The performance matrix, the cost-scaling sweep and their figures, and the report section that shows them."""

from __future__ import annotations

import json

import pytest
import yaml

from support import ROOT


def coverage_doc(model: str, preset: str, tokens_per_s: float, status: str = "PASS") -> dict:
    return {
        "model": model,
        "preset": preset,
        "status": status,
        "device": "cpu",
        "dummy_weights": False,
        "output_tokens_per_s": tokens_per_s,
        "prefill_tokens_per_s": 10 * tokens_per_s,
        "time_to_first_token_s": 0.25,
        "time_per_output_token_s": 0.0125,
        "peak_memory_gib": 2.5,
        "memory_fraction": 0.1063,
        "gpu_utilisation_mean": None,
        "load_seconds": 6.5,
        "engine_start_seconds": 11.25,
        "kv_cache_tokens": 2097152,
        "checks": {
            "loaded": {"status": "PASS"},
            "tokens_per_s": {"status": status},
            "memory": {"status": "PASS"},
            "cleanup": {"status": "PASS"},
        },
    }


def sweep_doc() -> dict:
    by_prompts = [
        {
            "prompts": n,
            "max_new_tokens": 64,
            "wall_seconds": 0.5 + 0.01 * n,
            "output_tokens_per_s": 64 * n / (0.5 + 0.01 * n),
        }
        for n in (1, 2, 4, 8)
    ]
    by_length = [
        {
            "prompts": 4,
            "max_new_tokens": n,
            "wall_seconds": 0.1 + 0.02 * n,
            "output_tokens_per_s": 4 * n / (0.1 + 0.02 * n),
        }
        for n in (16, 32, 64)
    ]
    return {
        "model": "tiny_small",
        "preset": "balanced",
        "status": "PASS",
        "dummy_weights": False,
        "plan": {"fixed_max_new_tokens": 64, "fixed_prompts": 4},
        "by_prompts": by_prompts,
        "by_output_length": by_length,
        "batching_gain": 6.1875,
        "fits": {
            "wall_vs_prompts": {"marginal_seconds_per_prompt": 0.01},
            "wall_vs_output_length": {"slope": 0.02},
        },
        "figure": "reports/figures/cost_scaling.png",
    }


def test_matrix_rows_missing_cells_and_best_preset():
    from qwen_pipe.performance import performance_matrix

    coverage = {
        "a": {
            "balanced": coverage_doc("a", "balanced", 900.0),
            "performance": coverage_doc("a", "performance", 1200.0),
        },
        "b": {"balanced": coverage_doc("b", "balanced", 50.0, "FAIL")},
    }
    matrix = performance_matrix(coverage, ["a", "b"], ["balanced", "performance"])
    assert [(r["model"], r["preset"]) for r in matrix["rows"]] == [
        ("a", "balanced"),
        ("a", "performance"),
        ("b", "balanced"),
    ]
    assert matrix["missing"] == ["b/performance"]
    assert matrix["best_preset"]["a"] == {"preset": "performance", "output_tokens_per_s": 1200.0}
    assert matrix["passed"] == 2 and matrix["configurations"] == 3
    assert matrix["rows"][2]["checks"]["tokens_per_s"] == "FAIL"


def test_sweep_plan_doubles_up_to_twice_the_workload():
    from qwen_pipe.config import CoverageParams
    from qwen_pipe.performance import doubling, linear_fit, sweep_plan

    assert doubling(1, 64) == [1, 2, 4, 8, 16, 32, 64]
    assert doubling(16, 48) == [16, 32, 48]
    plan = sweep_plan(CoverageParams(prompts=32, prompt_tokens=128, max_new_tokens=64))
    assert plan["prompt_counts"] == [1, 2, 4, 8, 16, 32, 64] and plan["output_lengths"] == [16, 32, 64, 128]
    assert linear_fit([1, 2, 3], [3.0, 5.0, 7.0]) == {"intercept": 1.0, "slope": 2.0}


def test_figures_are_png_and_reproducible(tmp_path):
    from qwen_pipe.performance import performance_matrix
    from qwen_pipe.plots import plot_cost_scaling, plot_performance_matrix

    matrix = performance_matrix(
        {"a": {"balanced": coverage_doc("a", "balanced", 900.0)}}, ["a"], ["balanced"]
    )
    first = plot_performance_matrix(matrix, tmp_path / "m1.png").read_bytes()
    assert (
        first[:4] == b"\x89PNG" and first == plot_performance_matrix(matrix, tmp_path / "m2.png").read_bytes()
    )
    assert plot_cost_scaling(sweep_doc(), tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_report_section_numbers_come_from_the_metrics():
    from qwen_pipe.console import fmt
    from qwen_pipe.performance import performance_matrix
    from qwen_pipe.report import cost_scaling_section, performance_matrix_section

    matrix = performance_matrix(
        {"a": {"balanced": coverage_doc("a", "balanced", 900.0)}}, ["a", "b"], ["balanced"]
    )
    matrix["figure"] = "reports/figures/performance_matrix.png"
    metrics = {"performance": matrix, "cost_scaling": sweep_doc()}
    text = "\n".join(performance_matrix_section(metrics) + cost_scaling_section(metrics))
    assert "![performance matrix](figures/performance_matrix.png)" in text
    assert "![cost scaling](figures/cost_scaling.png)" in text
    assert "Not measured: b/balanced." in text
    for value in (900.0, 9000.0, 0.25, 0.0125, 2.5, 0.1063, 6.5, 11.25, 6.1875, 0.01, 0.02):
        assert fmt(value) in text, value
    assert fmt(2097152) in text


@pytest.mark.slow
def test_cost_scaling_stage_with_transformers(tmp_path, tiny_model_dir):
    import os
    import subprocess
    import sys

    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    params["engine"] = {**params["engine"], "name": "transformers"}
    params["coverage"] = {"prompts": 4, "prompt_tokens": 32, "max_new_tokens": 8, "load_format": "auto"}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    (tmp_path / "data" / "models").mkdir(parents=True)
    (tmp_path / "data" / "models" / "tiny_small").symlink_to(tiny_model_dir)
    done = subprocess.run(
        [sys.executable, str(ROOT / "stages" / "cost_scaling.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "QWEN_PIPE_LOG_DIR"},  # logs/ in the working folder
    )
    assert done.returncode == 0, done.stderr[-3000:]
    [line] = done.stdout.splitlines()  # one summary line; the engine's output is in the stage's log
    assert line.startswith("cost_scaling tiny_small x ") and "engine log logs/cost_scaling.log" in line
    assert (tmp_path / "logs" / "cost_scaling.log").is_file()
    doc = json.loads((tmp_path / "metrics" / "cost_scaling.json").read_text())
    assert doc["model"] == "tiny_small" and doc["preset"] == params["generate"]["presets"][0]
    assert [p["prompts"] for p in doc["by_prompts"]] == [1, 2, 4, 8]
    assert [p["max_new_tokens"] for p in doc["by_output_length"]] == [8, 16]
    for point in doc["by_prompts"] + doc["by_output_length"]:
        assert point["output_tokens"] == point["prompts"] * point["max_new_tokens"]  # exactly, ignore_eos
        assert point["wall_seconds"] > 0
    assert (tmp_path / "reports" / "figures" / "cost_scaling.png").read_bytes()[:4] == b"\x89PNG"
