"""Stage score: extract answers from saved responses and compute the metrics (no engine needed)."""

from __future__ import annotations

import typer

from qwen_pipe.cells import DATASETS_DIR, PIPELINE, Cell
from qwen_pipe.config import load_params
from qwen_pipe.console import fmt, run
from qwen_pipe.errors import QwenPipeError
from qwen_pipe.io import write_json, write_jsonl
from qwen_pipe.score import score_cell
from qwen_pipe.sources.fetch import read_dataset
from qwen_pipe.tasks.registry import task_for

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
            f"run generate first: dvc repro generate@{model}-{preset}-{dataset}",
        )
    rows, result = score_cell(task, records, PIPELINE, cell, params.score.flush_every)
    write_jsonl(PIPELINE.score_rows(cell), rows)
    write_json(PIPELINE.metrics_file(cell), result)
    if result["status"] == "failed":
        typer.echo(f"{cell}: no score, generation failed: {result['failure']['message']}", err=True)
        return
    truncated = f"; {result['truncated']}/{result['requests']} truncated" if result["truncated"] else ""
    typer.echo(
        f"{cell}: {result['primary_metric']} = {fmt(result['score'])} ± {fmt(result['stderr'])} "
        f"(n={result['n']}{truncated})"
    )


if __name__ == "__main__":
    run(app)
