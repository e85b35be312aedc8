"""Stage score: extract answers from saved responses and compute the metrics (no engine needed)."""

from __future__ import annotations

import typer

from qwen_pipe.cells import Cell
from qwen_pipe.config import load_params
from qwen_pipe.console import run
from qwen_pipe.score import score_line, score_pipeline_cell

app = typer.Typer(add_completion=False)


@app.command()
def main(
    model: str = typer.Option(...), preset: str = typer.Option(...), dataset: str = typer.Option(...)
) -> None:
    cell = Cell(model, preset, dataset)
    result, seconds = score_pipeline_cell(load_params().model_dump(by_alias=True), cell)
    typer.echo(score_line(cell, result, seconds))


if __name__ == "__main__":
    run(app)
