"""Engine starts and wall time of the embedded run's generation: one engine per cell (how the generate
stage worked before it took a model x preset's datasets together) against one per model x preset (now).

Same code, same machine, back to back, each from a cold response cache in a folder of its own; the run's
models, generating presets and datasets from params.yaml. Run from the repository root after `dvc repro`
has fetched the datasets and built the tiny models:

    python benchmarks/bench_engine_starts.py [--out reports/bench_engine_starts.json]
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import typer

from qwen_pipe.cells import DATASETS_DIR, output_layout, read_dataset
from qwen_pipe.config import load_params
from qwen_pipe.console import run
from qwen_pipe.generate import generate_isolated, pick_samples

app = typer.Typer(add_completion=False)


def _generate(params, datasets: dict, folder: Path, per_cell: bool) -> dict:
    layout = output_layout(folder / "out", folder / "cache")
    starts, loading, failures = 0, 0.0, 0
    started = time.perf_counter()
    for model in params.run.models:
        for preset in params.generate.presets:
            groups = [{name: value} for name, value in datasets.items()] if per_cell else [datasets]
            for group in groups:
                log = f"bench@{model}-{preset}"
                outcomes = generate_isolated(params, model, preset, group, layout, params.engine.name, log)
                for outcome in outcomes.values():
                    failures += "failure" in outcome
                    if outcome.get("load_seconds"):
                        starts += 1
                        loading += outcome["load_seconds"]
    return {
        "engine_starts": starts,
        "load_seconds": round(loading, 1),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "failed_cells": failures,
    }


@app.command()
def main(out: Path = typer.Option(None, help="also write the numbers here as JSON")) -> None:
    params = load_params()
    datasets = {}
    for name in params.run.datasets:
        records, info = read_dataset(DATASETS_DIR, name)
        datasets[name] = (pick_samples(params, name, records), info)
    cells = len(params.run.models) * len(params.generate.presets) * len(datasets)
    results = {"engine": params.engine.name, "cells": cells}
    with tempfile.TemporaryDirectory() as scratch:
        for label, per_cell in (("one engine per cell", True), ("one engine per model x preset", False)):
            folder = Path(scratch) / label.replace(" ", "_")
            results[label] = _generate(params, datasets, folder, per_cell)
            typer.echo(f"{label}: {json.dumps(results[label])}")
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    run(app)
