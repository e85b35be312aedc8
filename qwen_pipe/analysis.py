"""The analysis of a run (the analyze stage): consolidated cells, leaderboard, error rates, readiness,
insights, and the plan's questions answered in order, from the metrics files alone (reports/analysis.json).
The report and the readiness gate read it; nothing here measures anything."""

from __future__ import annotations

from pathlib import Path

from qwen_pipe.consolidate import cell_rows, error_rates, leaderboard
from qwen_pipe.insights import all_insights
from qwen_pipe.readiness import criteria, verdict
from qwen_pipe.results import ANALYSIS, METRICS, REPORTS, SCORES, RunCells, eval_documents
from qwen_pipe.scoring.paired import SIGNIFICANCE


def required_outputs(
    run: RunCells, reports: bool = False, metrics: Path = METRICS, scores: Path = SCORES
) -> list[Path]:
    """The files a complete run writes: per cell its metrics and per-sample scores, per model x preset its
    coverage, the run-wide metrics; with `reports`, the analysis and the reports too."""
    cells = [(m, p, d) for m in run.models for p in run.generate_presets for d in run.datasets]
    files = [metrics / "eval" / m / p / f"{d}.json" for m, p, d in cells]
    files += [scores / m / p / f"{d}.jsonl" for m, p, d in cells]
    files += [metrics / "coverage" / m / f"{p}.json" for m in run.models for p in run.coverage_presets]
    files += [metrics / f"{name}.json" for name in ("validate", "performance", "scaling", "cost_scaling")]
    if reports:
        files += [ANALYSIS, *REPORTS]
    return files


def coverage_documents(metrics: dict) -> list[dict]:
    return [doc for by_preset in metrics["coverage"].values() for doc in by_preset.values()]


def analyze(metrics: dict, run: RunCells, allow_unready: bool, required: list[Path]) -> dict:
    """`required`: the files the run must have written by now (required_outputs)."""
    rows = cell_rows(eval_documents(metrics), metrics["coverage"])
    errors = error_rates(rows)
    checks = criteria(metrics.get("validate"), coverage_documents(metrics), rows, required)
    readiness = verdict(checks, allow_unready)
    scaling = metrics.get("scaling") or {}
    insights = all_insights(scaling, rows, errors, metrics["coverage"], run.generate_presets[0])
    boards = leaderboard(rows)
    return {
        "answers": answers(metrics, boards, scaling, insights, readiness),
        "readiness": readiness,
        "insights": insights,
        "leaderboard": boards,
        "errors": errors,
        "cells": rows,
        "scaling": scaling.get("pairs", []),
        "presets": scaling.get("presets", []),
    }


def analysis_readiness(metrics: dict, allow_unready: bool, required: list[Path]) -> dict:
    """The readiness gate's verdict: analyze's criteria, with `required` (the analysis and reports too)."""
    rows = cell_rows(eval_documents(metrics), metrics["coverage"])
    return verdict(
        criteria(metrics.get("validate"), coverage_documents(metrics), rows, required), allow_unready
    )


def answers(
    metrics: dict, boards: list[dict], scaling: dict, insights: list[dict], readiness: dict
) -> list[dict]:
    """The plan's questions, in its order, each answered from the numbers with a link to the detail."""
    return [
        {
            "question": "Which models pass coverage?",
            "answer": _coverage_answer(metrics),
            "anchor": "performance",
        },
        {"question": "How do they score?", "answer": _score_answer(boards), "anchor": "leaderboard"},
        {
            "question": "Does the large model beat the small one, per family, and at what cost?",
            "answer": _scaling_answer(scaling),
            "anchor": "scaling",
        },
        {"question": "Which preset to use?", "answer": _preset_answer(insights), "anchor": "presets"},
        {"question": "Is the run ready?", "answer": _ready_answer(readiness), "anchor": "readiness"},
    ]


def _coverage_answer(metrics: dict) -> str:
    parts = []
    for model, by_preset in sorted(metrics["coverage"].items()):
        passed = sorted(p for p, d in by_preset.items() if d.get("status") == "PASS")
        failed = {
            p: [name for name, c in (d.get("checks") or {}).items() if c["status"] != "PASS"] or ["error"]
            for p, d in sorted(by_preset.items())
            if d.get("status") != "PASS"
        }
        line = f"{model}: {len(passed)}/{len(by_preset)} presets pass"
        if failed:
            line += " (" + "; ".join(f"{p} fails {', '.join(c)}" for p, c in failed.items()) + ")"
        parts.append(line)
    return "; ".join(parts) or "no coverage result"


def _score_answer(boards: list[dict]) -> str:
    if not boards:
        return "no accuracy was scored"
    lines = []
    for board in boards:
        ranked = ", ".join(
            f"#{r['rank']} {r['model']} {r['mean']:.3f}"
            + ("" if r["low"] is None else f" [{r['low']:.3f}, {r['high']:.3f}]")
            for r in board["rows"]
        )
        ties = (
            " (all tied: intervals overlap)"
            if len({r["rank"] for r in board["rows"]}) == 1 and len(board["rows"]) > 1
            else ""
        )
        lines.append(
            f"{board['protocol']}/{board['preset']}, mean accuracy over {len(board['datasets'])} dataset(s): "
            f"{ranked}{ties}"
        )
    return "; ".join(lines)


def _scaling_answer(scaling: dict) -> str:
    lines = []
    for pair in scaling.get("pairs", []):
        mean = pair.get("mean_accuracy_delta")
        if mean is None:
            lines.append(f"{pair['family']} {pair['preset']}: no accuracy compared")
            continue
        verdict_text = SIGNIFICANCE[mean["significant"]]
        interval = "" if mean["low"] is None else f" [{mean['low'] * 100:+.1f}, {mean['high'] * 100:+.1f}]"
        cost = []
        if pair.get("throughput_ratio") is not None:
            cost.append(f"{pair['throughput_ratio']:.2f}x the throughput")
        if pair.get("memory_ratio") is not None:
            cost.append(f"{pair['memory_ratio']:.2f}x the memory")
        lines.append(
            f"{pair['family']} ({pair['preset']}): {pair['large']} vs {pair['small']} "
            f"{mean['delta'] * 100:+.1f} pts{interval} mean accuracy ({verdict_text})"
            + (f" at {', '.join(cost)}" if cost else "")
        )
    return "; ".join(lines) or "no family has a small and a large model in this run"


def _preset_answer(insights: list[dict]) -> str:
    """Every preset rule's verdict (insights.preset_insights, coverage_preset_insights)."""
    chosen = [i["text"] for i in insights if i["rule"].startswith("preset_")]
    return "; ".join(chosen) or "no preset was measured against another: nothing to choose between"


def _ready_answer(readiness: dict) -> str:
    failed = [c for c in readiness["checks"] if c["status"] == "FAIL"]
    if not failed:
        return "yes: every criterion passes"
    named = "; ".join(f"{c['check']} ({c['value']})" for c in failed)
    carried = " (carried on: readiness.allow_unready)" if readiness["allowed_unready"] else ""
    return f"no: {named}{carried}"
