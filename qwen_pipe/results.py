"""A run's results as the pipeline wrote them under metrics/ (and the run-info sidecars under data/scores):
what the analysis, the report and the readiness gate read."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from qwen_pipe.cells import (
    COVERAGE_INFO_DIR,
    JUDGE_INFO_DIR,
    JUDGMENTS_DIR,
    read_coverage_tree,
    read_eval_tree,
)
from qwen_pipe.io import read_json

METRICS = Path("metrics")
SCORES = Path("data/scores")  # the run-info sidecars of the eval metrics (score.split_document)
ANALYSIS = Path("reports/analysis.json")  # the analyze stage's output
REPORTS = (Path("reports/report.md"), Path("reports/report.html"))


def load_metrics(
    root: Path = METRICS,
    run: RunCells | None = None,
    scores: Path = SCORES,
    coverage_info: Path = COVERAGE_INFO_DIR,
    judge_info: Path = JUDGE_INFO_DIR,
    judgments: Path = JUDGMENTS_DIR,
) -> dict:
    """The metrics documents the pipeline wrote, by stage; with `run`, only the cells of that run. Each eval
    document is merged with its run-info sidecar under `scores` (what ran, how, where), and a judged cell's
    with its judge document (`with_judgments`); `judge` keeps the judge documents as they are.

    DVC leaves the files of cells a run no longer has (a preset or model taken out of params.yaml) where
    they were: they are listed under `stale` and never counted or shown as results.
    """
    optional = {
        name: root / f"{name}.json" for name in ("validate", "scaling", "performance", "cost_scaling", "plan")
    }
    evals = read_eval_tree(root / "eval", scores)
    judged = read_eval_tree(root / "judge", judge_info)
    coverage = read_coverage_tree(root / "coverage", coverage_info)
    stale: list[str] = []
    if run is not None:
        evals, stale_eval = _keep(evals, run.models, run.generate_presets, run.datasets)
        judged, stale_judge = _keep(judged, run.models, run.generate_presets, run.datasets)
        coverage, stale_coverage = _keep(coverage, run.models, run.coverage_presets)
        stale = [
            *(f"eval/{c}" for c in stale_eval),
            *(f"judge/{c}" for c in stale_judge),
            *(f"coverage/{c}" for c in stale_coverage),
        ]
    return {
        "eval": with_judgments(evals, judged, judgments),
        "judge": judged,
        "coverage": coverage,
        "stale": stale,
        **{name: read_json(path) if path.is_file() else None for name, path in optional.items()},
    }


def with_judgments(evals: dict, judged: dict, judgments: Path = JUDGMENTS_DIR) -> dict:
    """The eval tree with each judged cell's score taken from its judge document: MT-Bench's rating, Arena-Hard's
    win rate (metric kind "judge", never an accuracy), the judge's failures counted with the cell's failed
    requests (`requests` stays the generation's; `judgments` counts the judge's), and `answered` kept as a
    completeness metric. Paired comparisons read the judge's per-sample
    file (`per_sample_file`)."""
    merged: dict = {}
    for model, by_preset in evals.items():
        for preset, cells in by_preset.items():
            for dataset, doc in cells.items():
                judge_doc = judged.get(model, {}).get(preset, {}).get(dataset)
                rows = judgments / model / preset / f"{dataset}.jsonl"
                merged.setdefault(model, {}).setdefault(preset, {})[dataset] = (
                    judged_document(doc, judge_doc, rows) if judge_doc else doc
                )
    return merged


JUDGE_FIELDS = (
    "primary_metric",
    "score",
    "stderr",
    "ci_low",
    "ci_high",
    "n",
    "scale",
    "judgments",
    "retried",
)


def judged_document(doc: dict, judge_doc: dict, rows: Path) -> dict:
    """One eval document (answers, completeness) merged with its judge document (the score)."""
    answered = doc.get("score") if doc.get("primary_metric") == "answered" else None
    failed = dict(doc.get("failed_requests") or {})
    for kind, count in (judge_doc.get("failed_judgments") or {}).items():
        failed[kind] = failed.get(kind, 0) + count
    merged = {
        **doc,
        **{key: judge_doc.get(key) for key in JUDGE_FIELDS if key in judge_doc},
        "metric_kind": "judge",
        "accuracy": False,
        "answered": answered,
        "metrics": {
            **(judge_doc.get("metrics") or {}),
            "answered": (doc.get("metrics") or {}).get("answered"),
        },
        "failed_requests": failed,
        "judge": judge_doc.get("judge"),
        "judge_repeats": judge_doc.get("repeats"),
        "baseline": judge_doc.get("baseline"),
        "per_sample_file": str(rows),
    }
    if doc.get("status") == "failed" or judge_doc.get("status") == "failed":
        merged["status"] = "failed"
        merged["failure"] = doc.get("failure") or judge_doc.get("failure")
    return merged


@dataclass(frozen=True)
class RunCells:
    """What a run evaluates: params `run.models`, `generate.presets`, `run.datasets` and `run.presets`."""

    models: list[str]
    generate_presets: list[str]
    datasets: list[str]
    coverage_presets: list[str]


def _keep(tree: dict, *levels: list[str]) -> tuple[dict, list[str]]:
    """The part of a nested {a: {b: ...}} tree whose keys are in `levels`, and the paths of the rest."""
    kept: dict = {}
    dropped: list[str] = []
    for key, value in tree.items():
        if key not in levels[0]:
            dropped.append(key)
        elif len(levels) == 1:
            kept[key] = value
        else:
            inner, lost = _keep(value, *levels[1:])
            kept[key] = inner
            dropped += [f"{key}/{path}" for path in lost]
    return kept, dropped


def eval_documents(metrics: dict) -> list[dict]:
    """Every evaluation cell's metrics document (model -> preset -> dataset in the tree)."""
    return [
        doc
        for by_preset in metrics["eval"].values()
        for cells in by_preset.values()
        for doc in cells.values()
    ]


def run_cells(params) -> RunCells:
    """What params.yaml says this run evaluates."""
    return RunCells(params.run.models, params.generate.presets, params.run.datasets, params.run.presets)
