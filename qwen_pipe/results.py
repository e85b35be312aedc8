"""A run's results as the pipeline wrote them under metrics/ (and the run-info sidecars under data/scores):
what the analysis, the report and the readiness gate read."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from qwen_pipe.cells import COVERAGE_INFO_DIR, read_coverage_tree, read_eval_tree
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
) -> dict:
    """The metrics documents the pipeline wrote, by stage; with `run`, only the cells of that run. Each eval
    document is merged with its run-info sidecar under `scores` (what ran, how, where).

    DVC leaves the files of cells a run no longer has (a preset or model taken out of params.yaml) where
    they were: they are listed under `stale` and never counted or shown as results.
    """
    optional = {
        name: root / f"{name}.json" for name in ("validate", "scaling", "performance", "cost_scaling")
    }
    evals = read_eval_tree(root / "eval", scores)
    coverage = read_coverage_tree(root / "coverage", coverage_info)
    stale: list[str] = []
    if run is not None:
        evals, stale_eval = _keep(evals, run.models, run.generate_presets, run.datasets)
        coverage, stale_coverage = _keep(coverage, run.models, run.coverage_presets)
        stale = [*(f"eval/{c}" for c in stale_eval), *(f"coverage/{c}" for c in stale_coverage)]
    return {
        "eval": evals,
        "coverage": coverage,
        "stale": stale,
        **{name: read_json(path) if path.is_file() else None for name, path in optional.items()},
    }


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
