"""Stage score: extract answers from saved responses and compute the metrics (no engine needed)."""

from __future__ import annotations

import typer

from qwen_pipe.cells import DATASETS_DIR, PIPELINE, Cell, read_dataset
from qwen_pipe.config import load_params
from qwen_pipe.console import run
from qwen_pipe.errors import QwenPipeError
from qwen_pipe.score import score_and_write, score_line
from qwen_pipe.tasks.common.registry import task_for

app = typer.Typer(add_completion=False)


@app.command()
def main(
    model: str = typer.Option(...), preset: str = typer.Option(...), dataset: str = typer.Option(...)
) -> None:
    params = load_params()
    task = task_for(params, dataset)
    records, _ = read_dataset(DATASETS_DIR, dataset)
    cell = Cell(model, preset, dataset)
    if not PIPELINE.meta(cell).is_file():
        raise QwenPipeError(
            f"{PIPELINE.meta(cell)} not found",
            f"run generate first: dvc repro generate@{model}-{preset}",
        )
    result, seconds = score_and_write(task, records, PIPELINE, cell, params.score.flush_every)
    typer.echo(score_line(cell, result, seconds))


if __name__ == "__main__":
    run(app)
