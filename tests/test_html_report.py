"""The HTML report: one self-contained page, every string escaped, the same bytes for the same inputs, and,
in a real headless Chromium, no error, no request but the file itself, figures that render and tables that
sort. Screenshots land in test-artifacts/ (ignored by git)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from qwen_pipe.console import fmt
from qwen_pipe.html_report import render_html, write_html

from support import ROOT, require_dev_extra

ARTIFACTS = ROOT / "test-artifacts"
EVIL = "</script><script>alert(1)</script>"
EVIL_MODEL = '<img src=x onerror="alert(2)">'
SECTIONS = [
    "summary",
    "answers",
    "readiness",
    "insights",
    "leaderboard",
    "accuracy",
    "cells",
    "judge",
    "scaling",
    "presets",
    "performance",
    "cost",
    "failures",
    "validation",
]
UNJUDGED_SECTIONS = [s for s in SECTIONS if s != "judge"]  # no judged cell: no judge section
METRICS_SECTIONS = ["summary", "performance", "cost", "failures", "validation"]  # without an analysis, judge
MODELS = ("qwen3_8b", "qwen3_14b")
PRESETS = ("balanced", "performance")
DATASETS = {"gsm8k": "flexible_match", "arc_challenge": "acc_norm", "humaneval": "pass@1"}
SCORES = {"qwen3_8b": (0.871, 0.902, 0.652), "qwen3_14b": (0.912, 0.925, 0.701)}


# --- the fixture: a realistic run of two models x two presets x three datasets ---


def eval_doc(model: str, preset: str, dataset: str) -> dict:
    if (model, preset, dataset) == ("qwen3_14b", "performance", "humaneval"):
        failure = {
            "stage": "generate",
            "model": model,
            "preset": preset,
            "dataset": dataset,
            "error_type": "EngineError",
            "message": f"engine died: {EVIL}",
        }
        return {
            "model": model,
            "preset": preset,
            "dataset": dataset,
            "status": "failed",
            "failure": failure,
            "primary_metric": DATASETS[dataset],
            "score": None,
            "stderr": None,
            "n": 0,
            "requests": 164,
            "failed_requests": {"failed_cell": 164},
        }
    score = SCORES[model][list(DATASETS).index(dataset)] - (0.004 if preset == "performance" else 0.0)
    n = {"gsm8k": 1319, "arc_challenge": 1172, "humaneval": 164}[dataset]
    truncated = 13 if (model, dataset) == ("qwen3_8b", "gsm8k") else 0
    return {
        "model": model,
        "preset": preset,
        "dataset": dataset,
        "status": "ok",
        "primary_metric": DATASETS[dataset],
        "score": score,
        "stderr": 0.009,
        "n": n,
        "requests": n,
        "truncated": truncated,
        "truncation_rate": truncated / n,
        "failed_requests": {"truncated": truncated, "prompt_too_long": 0},
        "protocol": "qwen",
        "generation_seconds": 412.5,
        "engine": {"engine": "vllm", "version": "0.11.0"},
        "provenance": {
            "git_commit": "0123abcd",
            "git_dirty": False,
            "qwen_pipe": "0.1.0",
            "hardware": {"gpu": "NVIDIA H100 80GB HBM3", "gpu_count": 1, "cpu": "x", "cores": 32},
        },
    }


# --- the judge stage's documents: MT-Bench graded by qwen3_14b (its own cell self-judged), Arena-Hard by a
# random-weight tiny judge, one Arena-Hard cell failed ---

BIG_JUDGE = {
    "model": "qwen3_14b",
    "engine": "vllm",
    "description": "qwen3_14b (vllm, preset balanced)",
    "identity_sha256": "ab" * 32,
    "meaningless": False,
}
TINY_JUDGE = {
    "model": "qwen3_0.6b_tiny",
    "engine": "vllm",
    "description": "qwen3_0.6b_tiny (vllm, preset balanced)",
    "identity_sha256": "cd" * 32,
    "meaningless": True,
    "judges_itself": False,
}
MT_BENCH = {  # model: score, interval, turn 1, turn 2, categories
    "qwen3_8b": (6.83, 6.21, 7.46, 7.12, 6.54, {"writing": 8.25, "math": 3.75, "coding": 5.5}),
    "qwen3_14b": (7.91, 7.38, 8.44, 8.06, 7.77, {"writing": 8.95, "math": 6.35, "roleplay": 8.4}),
}


def judge_info(judge: dict, judges_itself: bool = False) -> dict:
    return {
        "judge": {**judge, "judges_itself": judges_itself},
        "cache": {"hits": 12, "misses": 148},
        "seconds": 95.2,
        "provenance": {"git_commit": "0123abcd", "qwen_pipe": "0.1.0"},
    }


def mt_bench_doc(model: str) -> dict:
    score, low, high, turn_1, turn_2, categories = MT_BENCH[model]
    doc = {
        "model": model,
        "preset": "balanced",
        "dataset": "mt_bench",
        "status": "ok",
        "primary_metric": "rating",
        "scale": [1.0, 10.0],
        "score": score,
        "stderr": 0.31,
        "ci_low": low,
        "ci_high": high,
        "n": 80,
        "ratings": 160,
        "judgments": 480 if model == "qwen3_8b" else 160,
        "failed_judgments": {"judge_unparseable": 3, "judge_prompt_too_long": 1}
        if model == "qwen3_8b"
        else {},
        "retried": 7 if model == "qwen3_8b" else 0,
        "metrics": {
            "turn_1": {"value": turn_1, "stderr": 0.28, "n": 80},
            "turn_2": {"value": turn_2, "stderr": 0.33, "n": 80},
            **{f"category/{c}": {"value": v, "stderr": 0.5, "n": 20} for c, v in categories.items()},
        },
        **judge_info(BIG_JUDGE, judges_itself=model == BIG_JUDGE["model"]),
    }
    if model == "qwen3_8b":  # judged three times
        doc["repeats"] = {"values": [6.71, 6.83, 6.96], "median": 6.83, "half_range": 0.125, "std": 0.125}
    return doc


def arena_hard_doc(model: str) -> dict:
    if model == "qwen3_14b":  # failed; the counts it kept are not results
        return {
            "model": model,
            "preset": "balanced",
            "dataset": "arena_hard",
            "status": "failed",
            "failure": {
                "stage": "judge",
                "model": model,
                "preset": "balanced",
                "dataset": "arena_hard",
                "error_type": "JudgeError",
                "message": "no judgment gave a verdict",
            },
            "primary_metric": "win_rate",
            "scale": [0.0, 1.0],
            "score": None,
            "n": 0,
            "judgments": 1000,
            "failed_judgments": {"judge_unparseable": 1000},
            "retried": 321,
        }
    return {
        "model": model,
        "preset": "balanced",
        "dataset": "arena_hard",
        "status": "ok",
        "primary_metric": "win_rate",
        "scale": [0.0, 1.0],
        "score": 0.523,
        "stderr": 0.0211,
        "ci_low": 0.4817,
        "ci_high": 0.5644,
        "n": 500,
        "baseline": "gpt-4-0314",
        "judgments": 1000,
        "failed_judgments": {"judge_unparseable": 9},
        "retried": 15,
        "metrics": {
            "question_win_rate": {"value": 0.5191, "stderr": 0.0211, "n": 500},
            "wins": {"value": 1203.0, "n": 500},
            "losses": {"value": 1041.0, "n": 500},
            "ties": {"value": 88.0, "n": 500},
        },
        **judge_info(TINY_JUDGE),
    }


def fixture_judge() -> dict:
    return {
        model: {"balanced": {"mt_bench": mt_bench_doc(model), "arena_hard": arena_hard_doc(model)}}
        for model in MODELS
    }


def fixture_metrics() -> dict:
    evals: dict = {}
    for model in MODELS:
        for preset in PRESETS:
            evals.setdefault(model, {})[preset] = {d: eval_doc(model, preset, d) for d in DATASETS}
    rows = [
        {
            "model": model,
            "preset": preset,
            "status": "PASS" if tokens else "FAIL",
            "dummy_weights": False,
            "output_tokens_per_s": tokens,
            "peak_memory_gib": memory,
        }
        for model, memory, speeds in (
            ("qwen3_8b", 61.2, (2534.6, 3058.1, 2256.4)),
            ("qwen3_14b", 70.4, (1139.6, None, 1136.3)),
        )
        for preset, tokens in zip((*PRESETS, "memory_optimized"), speeds, strict=True)
    ]
    checks = [
        {
            "model": f"qwen3_{size}b{suffix}",
            "preset": preset,
            "status": "FAIL" if (size, suffix, preset) == (32, "", "long_context") else "PASS",
            "reasons": [f"fits: {size * 2.1:.2f} of 62.4 GiB"],
            "memory": {"total_gib": round(size * 2.1, 2), "budget_gib": 62.4},
        }
        for size in (0.6, 1.7, 4, 8, 14, 32, 30)
        for suffix in ("", "_base")
        for preset in ("balanced", "performance", "memory_optimized", "long_context")
    ]
    cost = {
        "model": "qwen3_8b",
        "preset": "balanced",
        "status": "PASS",
        "plan": {"fixed_max_new_tokens": 32, "fixed_prompts": 16},
        "by_prompts": [
            {"prompts": p, "max_new_tokens": 32, "wall_seconds": 0.15 + 0.004 * p}
            for p in (1, 2, 4, 8, 16, 32)
        ],
        "by_output_length": [
            {"prompts": 16, "max_new_tokens": t, "wall_seconds": 0.014 + 0.0066 * t} for t in (16, 32, 64)
        ],
        "fits": {
            "wall_vs_prompts": {"marginal_seconds_per_prompt": 0.0056},
            "wall_vs_output_length": {"slope": 0.0066},
        },
        "batching_gain": 18.06,
    }
    return {
        "eval": evals,
        "judge": fixture_judge(),
        "coverage": {},
        "stale": [],
        "validate": {"configurations": len(checks), "passed": len(checks) - 1, "failed": 1, "checks": checks},
        "scaling": None,
        "performance": {"rows": rows},
        "cost_scaling": cost,
    }


def cell_row(doc: dict) -> dict:
    ok = doc["status"] == "ok"
    return {
        "model": doc["model"],
        "preset": doc["preset"],
        "dataset": doc["dataset"],
        "protocol": "qwen",
        "metric": doc["primary_metric"],
        "accuracy": True,
        "status": doc["status"],
        "score": doc["score"],
        "low": doc["score"] - 0.0176 if ok else None,
        "high": doc["score"] + 0.0176 if ok else None,
        "n": doc["n"],
        "requests": doc["requests"],
        "truncated": doc.get("truncated", 0),
        "failed": sum(doc["failed_requests"].values()),
        "cost_seconds": doc.get("generation_seconds"),
        "cost_unit": "GPU-seconds",
        "output_tokens": 351_204 if ok else None,
        "embedded_sample": False,
    }


def stat(a: float, b: float, p_value: float, cost_ratio: float | None = None) -> dict:
    return {
        "metric": "acc",
        "accuracy": True,
        "n": 1319,
        "a": a,
        "b": b,
        "delta": b - a,
        "low": b - a - 0.012,
        "high": b - a + 0.012,
        "p_value": p_value,
        "test": "mcnemar",
        "significant": p_value < 0.05,
        "cost_per_correct": {"small": 0.31, "large": 0.55, "ratio": cost_ratio},
    }


def fixture_analysis(metrics: dict) -> dict:
    cells = [
        cell_row(doc)
        for by_preset in metrics["eval"].values()
        for docs in by_preset.values()
        for doc in docs.values()
    ]
    datasets = {
        "humaneval": stat(0.652, 0.701, 0.41),
        "gsm8k": stat(0.871, 0.912, 3.2e-05, 1.77),
        "arc_challenge": stat(0.902, 0.925, 0.0004, 1.69),
    }
    return {
        "answers": [
            {
                "question": "Does 14B beat 8B?",
                "answer": "On 2 of 3 datasets, significantly.",
                "anchor": "scaling",
            },
            {
                "question": "Which preset is fastest?",
                "answer": "performance: 1.21x balanced.",
                "anchor": "presets",
            },
            {
                "question": "Is the run ready?",
                "answer": "No: one configuration fails validation.",
                "anchor": "readiness",
            },
            {"question": "Which model leads?", "answer": "qwen3_14b.", "anchor": "leaderboard-qwen-balanced"},
        ],
        "insights": [
            {
                "rule": "scaling_gain",
                "subject": "qwen3 balanced",
                "text": "qwen3_14b gains 4.1 points [2.9, 5.3] on gsm8k over qwen3_8b, p = 3.2e-05",
                "numbers": {"dataset": "gsm8k", "delta": 0.041, "p_value": 3.2e-05, "cost_ratio": None},
            },
            {
                "rule": "truncation",
                "subject": "qwen3_8b gsm8k",
                "text": "13 answers cut at the budget",
                "numbers": {"rate": 0.0099},
            },
        ],
        "cells": cells,
        "leaderboard": [
            {
                "protocol": "qwen",
                "preset": preset,
                "datasets": sorted(DATASETS),
                "rows": [
                    {
                        "rank": 1,
                        "model": "qwen3_14b",
                        "mean": 0.846,
                        "low": 0.83,
                        "high": 0.862,
                        "tied_with": [],
                    },
                    {
                        "rank": 2,
                        "model": "qwen3_8b",
                        "mean": 0.808,
                        "low": 0.792,
                        "high": 0.824,
                        "tied_with": [],
                    },
                ],
            }
            for preset in PRESETS
        ],
        "errors": {
            "overall": {"rate": 0.0203, "failed": 190, "requests": 9374},
            "by_model": {
                "qwen3_14b": {"rate": 0.035, "failed": 164, "requests": 4687},
                "qwen3_8b": {"rate": 0.0055, "failed": 26, "requests": 4687},
            },
        },
        "scaling": [
            {
                "family": "qwen3",
                "preset": "balanced",
                "small": "qwen3_8b",
                "large": "qwen3_14b",
                "parameters": {"small": 8_190_735_360, "large": 14_768_307_200, "ratio": 1.803},
                "throughput_ratio": 0.4496,
                "memory_ratio": 1.15,
                "datasets": datasets,
            }
        ],
        "presets": [
            {
                "model": "qwen3_8b",
                "baseline": "balanced",
                "preset": "performance",
                "throughput_ratio": 1.2066,
                "sequences_ratio": 2.5,
                "memory_ratio": 1.0077,
                "datasets": {"gsm8k": stat(0.871, 0.867, 0.52)},
            }
        ],
        "readiness": {
            "ready": False,
            "allowed_unready": True,
            "checks": [
                {
                    "check": "configurations validated",
                    "value": "55/56",
                    "threshold": "all",
                    "status": "FAIL",
                    "reason": "qwen3_32b long_context",
                },
                {
                    "check": "error rate < 5%",
                    "value": "2.03%",
                    "threshold": "< 5%",
                    "status": "PASS",
                    "reason": "",
                },
                {
                    "check": "throughput > 100 tokens/s",
                    "value": "CPU host",
                    "threshold": "GPU only",
                    "status": "SKIP",
                    "reason": "no GPU",
                },
            ],
        },
    }


@pytest.fixture(scope="module")
def inputs() -> tuple[dict, dict]:
    metrics = fixture_metrics()
    return metrics, fixture_analysis(metrics)


@pytest.fixture(scope="module")
def report(inputs, tmp_path_factory) -> Path:
    """The fixture's page, written once for the module."""
    return write_html(*inputs, tmp_path_factory.mktemp("report") / "report.html")


@pytest.fixture(scope="module")
def page_text(report) -> str:
    return report.read_text(encoding="utf-8")


def section_ids(page: str) -> list[str]:
    return re.findall(r'<(?:section|header) id="([^"]+)"', page)


def section(page: str, anchor: str) -> str:
    found = re.search(rf'<section id="{anchor}">.*?</section>', page, re.S)
    assert found, f"no section {anchor}"
    return found.group(0)


def table_rows(html: str, table: str) -> list[str]:
    """The body rows of the table with id `table`, as markup."""
    found = re.search(rf'<table id="{table}".*?<tbody>(.*?)</tbody>', html, re.S)
    assert found, f"no table {table}"
    return re.findall(r"<tr>.*?</tr>", found.group(1), re.S)


def row_of(rows: list[str], model: str) -> str:
    (row,) = [r for r in rows if f"<td>{model}</td>" in r]
    return row


def num_cells(row: str) -> list[str]:
    return re.findall(r'<td class="num"[^>]*>([^<]*)</td>', row)


# --- without a browser ---


def test_sections_come_in_order_with_their_anchors(inputs, page_text):
    page = page_text
    assert section_ids(page) == SECTIONS
    ids = set(re.findall(r'\bid="([^"]+)"', page))
    assert {a["anchor"] for a in inputs[1]["answers"]} <= ids  # every answer links somewhere real
    assert all(f'href="#{s}"' in page for s in SECTIONS[1:])  # the navigation


def test_numbers_are_the_inputs_formatted(inputs, page_text):
    analysis, page = inputs[1], page_text
    assert f'data-value="{analysis["cells"][0]["score"]!r}">{fmt(analysis["cells"][0]["score"])}<' in page
    assert f"[{fmt(0.83)}, {fmt(0.862)}]" in page  # a leaderboard interval, as given
    assert "13/1,319 (1%)" in page  # the truncated cell, with its rate
    assert page.count("<tr>") >= 56  # every validated configuration has its row


def test_every_string_is_escaped(inputs):
    metrics, analysis = inputs
    analysis = {**analysis, "cells": [{**c, "model": EVIL_MODEL} for c in analysis["cells"]]}
    analysis["insights"] = [{**analysis["insights"][0], "subject": EVIL}]
    page = render_html(metrics, analysis)
    assert "alert(1)</script>" not in page and "<img" not in page  # not as markup anywhere, figures included
    assert page.count("<script") == 1  # the page's own sorter only
    assert "engine died: &lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=&quot;alert(2)&quot;&gt;" in page


def test_the_judge_section_names_its_judges_and_their_caveats(page_text):
    judged = section(page_text, "judge")
    assert "LLM-judged benchmarks" in judged
    assert (
        f"{BIG_JUDGE['description']} for qwen3_8b / balanced / mt_bench, qwen3_14b / balanced / mt_bench"
        in judged
    )
    assert f"{TINY_JUDGE['description']} for qwen3_8b / balanced / arena_hard" in judged
    assert (
        f'<span class="badge fail">MEANINGLESS</span> The judge {TINY_JUDGE["description"]} is a random-weight '
        "tiny model: the scores it gave are meaningless" in judged
    )
    assert "grades its own answers in qwen3_14b / balanced / mt_bench: self-preference" in judged
    mt_bench = table_rows(judged, "judge-mt-bench-table")
    assert "self-judged" in row_of(mt_bench, "qwen3_14b") and "self-judged" not in row_of(
        mt_bench, "qwen3_8b"
    )
    assert "self-judged</span>" in row_of(table_rows(judged, "judge-mt-bench-categories-table"), "qwen3_14b")


def test_a_single_sane_judge_gets_one_line_and_no_warning(inputs):
    sane = {
        model: {"balanced": {"mt_bench": {**mt_bench_doc("qwen3_8b"), "model": model}}} for model in MODELS
    }
    judged = section(render_html({**inputs[0], "judge": sane}, None), "judge")
    assert f"Judge: {BIG_JUDGE['description']}." in judged
    assert "MEANINGLESS" not in judged and "own answers" not in judged and "self-judged</span>" not in judged
    assert "judge-arena-hard-table" not in judged


def test_judge_numbers_are_the_inputs_formatted(page_text):
    judged = section(page_text, "judge")
    mt_8b = row_of(table_rows(judged, "judge-mt-bench-table"), "qwen3_8b")
    score, low, high, turn_1, turn_2, categories = MT_BENCH["qwen3_8b"]
    assert num_cells(mt_8b) == [
        fmt(score),
        f"[{fmt(low)}, {fmt(high)}]",
        fmt(turn_1),
        fmt(turn_2),
        fmt(80),
        fmt(480),
        fmt(4),  # 3 unparseable + 1 prompt too long
        fmt(7),
        f"{fmt(6.83)} ± {fmt(0.125)} over 3",
    ]
    assert f'data-value="{score!r}">{fmt(score)}<' in mt_8b  # sorts by the score itself
    mt_14b = row_of(table_rows(judged, "judge-mt-bench-table"), "qwen3_14b")
    assert num_cells(mt_14b)[-1] == "–"  # judged once: no repeats
    header = re.search(r'<table id="judge-mt-bench-categories-table".*?</thead>', judged, re.S).group(0)
    assert re.findall(r"<th[^>]*>([^<]*)</th>", header)[3:7] == ["coding", "math", "roleplay", "writing"]
    assert "category/" not in judged
    by_category = num_cells(row_of(table_rows(judged, "judge-mt-bench-categories-table"), "qwen3_8b"))
    assert by_category == [
        fmt(categories["coding"]),
        fmt(categories["math"]),
        "–",
        fmt(categories["writing"]),
    ]
    arena = row_of(table_rows(judged, "judge-arena-hard-table"), "qwen3_8b")
    assert "<td>gpt-4-0314</td>" in arena
    assert num_cells(arena) == [
        fmt(0.523),
        f"[{fmt(0.4817)}, {fmt(0.5644)}]",
        fmt(1203.0),  # wins
        fmt(88.0),  # ties
        fmt(1041.0),  # losses
        fmt(500),
        fmt(9),
    ]


def test_a_failed_judge_cell_shows_failed_and_no_number(page_text):
    failed = row_of(table_rows(section(page_text, "judge"), "judge-arena-hard-table"), "qwen3_14b")
    assert '<span class="badge fail">FAILED</span>' in failed
    assert "JudgeError: no judgment gave a verdict" in failed
    assert set(num_cells(failed)) == {"–"} and "data-value" not in failed  # not its 1,000 judgments
    assert not re.search(r"\d", re.sub(r"qwen3_14b|JudgeError: no judgment gave a verdict", "", failed))


def test_judge_strings_are_escaped(inputs):
    evil_judge = {**TINY_JUDGE, "description": EVIL}
    tree = {
        EVIL_MODEL: {"balanced": {"arena_hard": {**arena_hard_doc("qwen3_8b"), **judge_info(evil_judge)}}}
    }
    tree[EVIL_MODEL]["balanced"]["arena_hard"]["model"] = EVIL_MODEL
    tree["qwen3_14b"] = {"balanced": {"arena_hard": arena_hard_doc("qwen3_14b")}}
    tree["qwen3_14b"]["balanced"]["arena_hard"]["failure"]["message"] = f"judge died: {EVIL}"
    page = render_html({**inputs[0], "eval": {}, "judge": tree}, None)
    assert "alert(1)</script>" not in page and "<img" not in page
    assert page.count("<script") == 1
    judged = section(page, "judge")
    assert "The judge &lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt; is a random-weight" in judged
    assert "<td>&lt;img src=x onerror=&quot;alert(2)&quot;&gt;</td>" in judged
    assert "judge died: &lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in judged


@pytest.mark.parametrize(
    "judge",
    [None, {}, {"qwen3_8b": {}}, {"qwen3_8b": {"balanced": {}}}],
    ids=["none", "empty", "no-preset", "no-cell"],
)
def test_no_judge_section_without_judged_cells(inputs, judge):
    metrics = {k: v for k, v in inputs[0].items() if k != "judge"}
    assert section_ids(render_html(metrics, inputs[1])) == UNJUDGED_SECTIONS  # absent
    page = render_html({**metrics, "judge": judge}, inputs[1])
    assert section_ids(page) == UNJUDGED_SECTIONS
    assert 'id="judge"' not in page and 'href="#judge"' not in page


def test_same_inputs_give_the_same_bytes(inputs, report, tmp_path):
    again = write_html(*inputs, tmp_path / "report.html").read_bytes()
    assert again == report.read_bytes()
    assert b"<dc:date>" not in again  # no timestamp in the figures


def test_the_page_needs_nothing_from_outside(page_text):
    page = page_text
    assert page.count("<svg") == 4  # accuracy, scaling, heat map, cost curves: inline
    assert not re.search(r"<(link|img|iframe|object|embed)\b|<script\s+src|@import|url\((?!#)", page)
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page)


def test_missing_inputs_say_so_in_one_line():
    empty = {
        "eval": {},
        "coverage": {},
        "stale": [],
        "validate": None,
        "scaling": None,
        "performance": None,
        "cost_scaling": None,
    }
    bare = {
        "answers": [],
        "insights": [],
        "cells": [],
        "leaderboard": [],
        "errors": None,
        "scaling": [],
        "presets": [],
        "readiness": None,
    }
    page = render_html(empty, bare)
    assert section_ids(page) == UNJUDGED_SECTIONS
    assert page.count('<p class="note">') >= len(UNJUDGED_SECTIONS) - 1
    assert "<svg" not in page and "<table" not in page
    without = render_html(empty, None)
    assert section_ids(without) == METRICS_SECTIONS
    assert "No performance matrix" in without and "No validation results" in without
    assert section_ids(render_html({}, None)) == METRICS_SECTIONS


# --- in a real browser ---


@pytest.fixture(scope="module")
def browser():
    require_dev_extra("playwright")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail(
            "chromium not found: install it with `apt-get install chromium` (as root), or `make install`"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield launched
        launched.close()


def open_report(browser, path: Path) -> tuple:
    """The page at `path`, and what it did: requests, console errors, page errors, dialogs."""
    seen: dict[str, list] = {"requests": [], "errors": [], "dialogs": []}
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.on("request", lambda request: seen["requests"].append(request.url))
    page.on("console", lambda message: message.type == "error" and seen["errors"].append(message.text))
    page.on("pageerror", lambda error: seen["errors"].append(str(error)))
    page.on("dialog", lambda dialog: (seen["dialogs"].append(dialog.message), dialog.dismiss()))
    page.goto(path.resolve().as_uri(), wait_until="load")
    return page, seen


def check_page(page, seen: dict, path: Path, figures: int) -> None:
    sizes = page.eval_on_selector_all(
        "svg, img",
        "els => els.map(e => { const r = e.getBoundingClientRect(); return [r.width, r.height]; })",
    )
    assert len(sizes) == figures
    assert all(width > 50 and height > 50 for width, height in sizes), sizes
    assert seen["errors"] == [] and seen["dialogs"] == []
    assert seen["requests"] == [path.resolve().as_uri()]  # the file itself, nothing else


def column(page, table: str, index: int) -> list[str]:
    return page.eval_on_selector_all(
        f"#{table} tbody tr", f"rows => rows.map(r => r.cells[{index}].textContent.trim())"
    )


def test_the_report_renders_inert_and_offline(browser, report):
    path = report
    page, seen = open_report(browser, path)
    try:
        check_page(page, seen, path, figures=4)
        assert f"engine died: {EVIL}" in page.inner_text("#failures-table")  # shown as text, never run
        assert page.evaluate("document.scripts.length") == 1
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=ARTIFACTS / "report.png", full_page=True)
    finally:
        page.close()


def test_a_header_click_sorts_the_table(browser, report):
    page, seen = open_report(browser, report)
    try:
        score = ["model", "preset", "dataset", "protocol", "metric", "status", "score"].index("score")
        before = column(page, "cells-table", score)
        page.click("#cells-table thead th:nth-child(7)")
        ascending = column(page, "cells-table", score)
        page.click("#cells-table thead th:nth-child(7)")
        descending = column(page, "cells-table", score)
        numbers = sorted(float(s) for s in before if s != "–")
        assert ascending != before
        assert ascending == [fmt(v) for v in numbers] + ["–"]  # by value; the failed cell's "–" last
        assert descending == [fmt(v) for v in reversed(numbers)] + ["–"]
        page.click("#scaling-qwen3-balanced-table thead th:nth-child(7)")  # 3.2e-05 < 0.0004: by value
        assert column(page, "scaling-qwen3-balanced-table", 6) == ["< 0.0001", "0.0004", "0.4100"]
        page.click("#validation-table thead th:nth-child(4)")
        estimates = [float(s.replace(",", "")) for s in column(page, "validation-table", 3)]
        assert estimates == sorted(estimates)
        assert seen["errors"] == []
    finally:
        page.close()


def test_the_report_of_the_repository_metrics_renders(browser, tmp_path):
    """The embedded default's committed results and analysis: the page a user opens after `make run`, kept as
    test-artifacts/report-embedded.png."""
    from qwen_pipe.io import read_json
    from qwen_pipe.results import load_metrics

    metrics = load_metrics(
        ROOT / "metrics", scores=ROOT / "data/scores", coverage_info=ROOT / "data/coverage"
    )
    analysis = read_json(ROOT / "reports/analysis.json")
    path = write_html(metrics, analysis, tmp_path / "report.html")
    figures = (
        1  # accuracy per dataset
        + len(analysis["scaling"])
        + bool((metrics["performance"] or {}).get("rows"))
        + ((metrics["cost_scaling"] or {}).get("status") == "PASS")
    )
    page, seen = open_report(browser, path)
    try:
        ids = page.eval_on_selector_all("main > section, main > header", "els => els.map(e => e.id)")
        expected = SECTIONS if metrics.get("judge") else UNJUDGED_SECTIONS  # judged cells, once committed
        if metrics.get("plan"):  # the plan stage's cost plan (metrics/plan.json), after the cost curves
            expected = [
                *expected[: expected.index("cost") + 1],
                "plan",
                *expected[expected.index("cost") + 1 :],
            ]
        assert ids == expected
        check_page(page, seen, path, figures=figures)
        first_screen = page.inner_text("#answers")
        assert "Which models pass coverage?" in first_screen and "not significant" in first_screen
        if analysis["presets"]:  # presets compared on the same items: the answer is their verdict
            assert "nothing to choose between" not in first_screen and "against balanced" in first_screen
        assert "unknown" not in page.inner_text("#summary")  # the provenance of the committed run
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=ARTIFACTS / "report-embedded.png", full_page=True)
        page.screenshot(path=ARTIFACTS / "report-embedded-first-screen.png")
    finally:
        page.close()
