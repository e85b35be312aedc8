"""Stage score: extract answers from saved responses and compute the metrics (no engine needed)."""

from __future__ import annotations

import typer

from qwen_pipe.config import load_params
from qwen_pipe.console import run
from qwen_pipe.errors import QwenPipeError
from qwen_pipe.io import read_json, read_jsonl, write_json, write_jsonl
from qwen_pipe.pipeline import DATASETS_DIR, EVAL_METRICS_DIR, GENERATIONS_DIR, SCORES_DIR, run_scoring
from qwen_pipe.sources.fetch import read_dataset
from qwen_pipe.tasks import get_task

app = typer.Typer(add_completion=False)


@app.command()
def main(model: str = typer.Option(...), dataset: str = typer.Option(...)) -> None:
    params = load_params()
    task = get_task(dataset, shots=params.task_params(dataset).shots)
    records, _ = read_dataset(DATASETS_DIR, dataset)
    path = GENERATIONS_DIR / model / f"{dataset}.jsonl"
    if not path.is_file():
        raise QwenPipeError(f"{path} not found", f"run generate first: dvc repro generate@{model}-{dataset}")
    rows, result = run_scoring(task, records, read_jsonl(path), read_json(path.with_suffix(".meta.json")))
    write_jsonl(SCORES_DIR / model / f"{dataset}.jsonl", rows)
    write_json(EVAL_METRICS_DIR / model / f"{dataset}.json", result)
    typer.echo(f"{model} x {dataset}: {result['primary_metric']} = {result['score']:.4f} ± {result['stderr']:.4f} (n={result['n']})")


if __name__ == "__main__":
    run(app)
