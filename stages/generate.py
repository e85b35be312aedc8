"""Stage generate: the engine's raw responses for one model x preset, every dataset of the run with one
engine load; one JSONL record per sample and a metadata file per dataset.

A dataset whose files were made from the same inputs (model, engine, settings, requests, samples, code)
is kept as it is, so only the cells that changed reach the score stage; requests already answered come
from the response cache, and no engine starts when nothing is left. The engine runs in a child process
whose output goes to logs/generate@<model>-<preset>.log: if it crashes or the model fails to load, the
datasets it had record the failure (the score stage reports it), the log's end is shown, and the pipeline
goes on with the other cells.
"""

from __future__ import annotations

import typer

from qwen_pipe.cells import Cell
from qwen_pipe.config import load_params
from qwen_pipe.console import run
from qwen_pipe.generate import generate_line, generate_pipeline_cells

app = typer.Typer(add_completion=False)


@app.command()
def main(
    model: str = typer.Option(...),
    preset: str = typer.Option(...),
    dataset: list[str] = typer.Option(
        [], help="Only these datasets (repeatable; default: run.datasets). Others' files are left alone."
    ),
) -> None:
    outcomes = generate_pipeline_cells(load_params(), model, preset, dataset)
    if all(outcome.get("up_to_date") for outcome in outcomes.values()):
        typer.echo(f"generate {model} x {preset}: {len(outcomes)} datasets up to date (inputs unchanged)")
        return
    for name, outcome in outcomes.items():
        line = generate_line(Cell(model, preset, name), outcome)
        if "failure" in outcome:
            typer.echo(f"{line}; recorded, going on", err=True)
        else:
            typer.echo(line)
    if any("failure" in outcome for outcome in outcomes.values()):
        typer.echo(f"fix: the cause above, then rerun: dvc repro --force generate@{model}-{preset}", err=True)


if __name__ == "__main__":
    run(app)
