"""Stage fetch: one dataset from the embedded data, a mirror or the hub, normalised to JSONL, with the
fingerprint and sizes of the requests its task makes of it (what generation depends on)."""

from __future__ import annotations

import typer

from qwen_pipe.cells import DATASETS_DIR
from qwen_pipe.config import load_params
from qwen_pipe.console import run
from qwen_pipe.fetch import load_records, write_dataset
from qwen_pipe.tasks.common.registry import task_for
from qwen_pipe.tasks.common.requests import requests_summary

app = typer.Typer(add_completion=False)


@app.command()
def main(dataset: str = typer.Option(..., help="dataset name (qwen-pipe datasets list)")) -> None:
    params = load_params()
    task = task_for(params, dataset)
    records, info = load_records(task, params.fetch.source, params.fetch.data_dir)
    info.requests = requests_summary(task, records)
    path = write_dataset(records, info, DATASETS_DIR)
    longest = max(info.requests["prompt_tokens"].values())
    typer.echo(
        f"fetch {dataset}: {info.rows} rows from {info.source}{' (a sample)' if info.embedded_sample else ''}"
        f" -> {path}; longest prompt {longest} tokens"
    )


if __name__ == "__main__":
    run(app)
