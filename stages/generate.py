"""Stage generate: the engine's raw responses for one model x dataset, one JSONL record per sample.

The engine runs in a child process: if it crashes or the model fails to load, the cell records the
failure (the score stage reports it) and the pipeline goes on with the other cells.
"""

from __future__ import annotations

import typer

from qwen_pipe.config import load_params
from qwen_pipe.console import run
from qwen_pipe.pipeline import DATASETS_DIR, PIPELINE, generate_isolated, pick_samples
from qwen_pipe.sources.fetch import read_dataset

app = typer.Typer(add_completion=False)


@app.command()
def main(model: str = typer.Option(...), dataset: str = typer.Option(...)) -> None:
    params = load_params()
    params.model(model)  # an unknown name is a one-line error before anything starts
    records, info = read_dataset(DATASETS_DIR, dataset)
    samples = pick_samples(params, dataset, records)
    outcome = generate_isolated(params, model, {dataset: (samples, info)}, PIPELINE, params.engine.name)[
        dataset
    ]
    if "failure" in outcome:
        failure = outcome["failure"]
        typer.echo(
            f"{model} x {dataset}: FAILED ({failure['error_type']}: {failure['message']}); recorded, going on",
            err=True,
        )
        typer.echo(f"retry after fixing it with: dvc repro --force generate@{model}-{dataset}", err=True)
    else:
        cache = outcome.get("cache") or {}
        typer.echo(
            f"{model} x {dataset}: {outcome['samples']} samples in {outcome['seconds']} s "
            f"(cache: {cache.get('hits', 0)} reused, {cache.get('misses', 0)} generated)"
        )


if __name__ == "__main__":
    run(app)
