"""Stage generate: the engine's raw responses for one model x preset x dataset, one JSONL record per sample.

The engine runs in a child process whose output goes to logs/generate@<model>-<preset>-<dataset>.log: if
it crashes or the model fails to load, the cell records the failure (the score stage reports it), the
log's end is shown, and the pipeline goes on with the other cells.
"""

from __future__ import annotations

import typer

from qwen_pipe.cells import DATASETS_DIR, PIPELINE, Cell, read_dataset
from qwen_pipe.config import load_params
from qwen_pipe.console import run
from qwen_pipe.generate import generate_isolated, generate_line, pick_samples

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
    stage = f"generate@{model}-{preset}-{dataset}"
    outcome = generate_isolated(
        params, model, preset, {dataset: (samples, info)}, PIPELINE, params.engine.name, stage
    )[dataset]
    line = generate_line(Cell(model, preset, dataset), outcome)
    if "failure" in outcome:
        typer.echo(f"{line}; recorded, going on", err=True)
        typer.echo(f"fix: the cause above, then rerun the cell: dvc repro --force {stage}", err=True)
    else:
        typer.echo(line)


if __name__ == "__main__":
    run(app)
