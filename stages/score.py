"""Stage score: extract answers from saved responses and compute the metrics (no engine needed)."""

from __future__ import annotations

import typer

from qwen_pipe.config import load_params
from qwen_pipe.console import run
from qwen_pipe.errors import QwenPipeError
from qwen_pipe.io import write_json, write_jsonl
from qwen_pipe.pipeline import DATASETS_DIR, PIPELINE, score_cell
from qwen_pipe.sources.fetch import read_dataset
from qwen_pipe.tasks import get_task

app = typer.Typer(add_completion=False)


@app.command()
def main(model: str = typer.Option(...), dataset: str = typer.Option(...)) -> None:
    params = load_params()
    task = get_task(dataset, shots=params.task_params(dataset).shots)
    records, _ = read_dataset(DATASETS_DIR, dataset)
    if not PIPELINE.meta(model, dataset).is_file():
        raise QwenPipeError(
            f"{PIPELINE.meta(model, dataset)} not found",
            f"run generate first: dvc repro generate@{model}-{dataset}",
        )
    rows, result = score_cell(task, records, PIPELINE, model, params.score.flush_every)
    write_jsonl(PIPELINE.scores / model / f"{dataset}.jsonl", rows)
    write_json(PIPELINE.metrics / model / f"{dataset}.json", result)
    if result["status"] == "failed":
        typer.echo(
            f"{model} x {dataset}: no score, generation failed: {result['failure']['message']}", err=True
        )
    else:
        typer.echo(
            f"{model} x {dataset}: {result['primary_metric']} = {result['score']:.4f} ± {result['stderr']:.4f} (n={result['n']})"
        )


if __name__ == "__main__":
    run(app)
