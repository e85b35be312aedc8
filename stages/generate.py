"""Stage generate: the engine's raw responses for one model x preset x dataset, one JSONL record per sample.

The engine runs in a child process: if it crashes or the model fails to load, the cell records the
failure (the score stage reports it) and the pipeline goes on with the other cells.
"""

from __future__ import annotations

import typer

from qwen_pipe.cells import DATASETS_DIR, PIPELINE
from qwen_pipe.config import load_params
from qwen_pipe.console import run
from qwen_pipe.generate import generate_isolated, pick_samples
from qwen_pipe.sources.fetch import read_dataset

app = typer.Typer(add_completion=False)


@app.command()
def main(
    model: str = typer.Option(...), preset: str = typer.Option(...), dataset: str = typer.Option(...)
) -> None:
    params = load_params()
    params.model(model)  # an unknown name is a one-line error before anything starts
    params.preset(preset)
    records, info = read_dataset(DATASETS_DIR, dataset)
    samples = pick_samples(params, dataset, records)
    outcome = generate_isolated(
        params, model, preset, {dataset: (samples, info)}, PIPELINE, params.engine.name
    )[dataset]
    cell = f"{model} x {preset} x {dataset}"
    if "failure" in outcome:
        failure = outcome["failure"]
        typer.echo(
            f"{cell}: FAILED ({failure['error_type']}: {failure['message']}); recorded, going on", err=True
        )
        typer.echo(
            f"retry after fixing it with: dvc repro --force generate@{model}-{preset}-{dataset}", err=True
        )
    else:
        cache = outcome.get("cache") or {}
        truncated = (
            f", {outcome['truncated']}/{outcome['requests']} truncated" if outcome["truncated"] else ""
        )
        typer.echo(
            f"{cell}: {outcome['samples']} samples in {outcome['seconds']} s "
            f"(cache: {cache.get('hits', 0)} reused, {cache.get('misses', 0)} generated{truncated})"
        )


if __name__ == "__main__":
    run(app)
