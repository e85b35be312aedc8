"""Stage fetch: one dataset from the embedded data, a mirror or the hub, normalised to JSONL."""

from __future__ import annotations

import typer

from qwen_pipe.config import load_params
from qwen_pipe.console import run
from qwen_pipe.pipeline import DATASETS_DIR
from qwen_pipe.sources.fetch import load_records, write_dataset
from qwen_pipe.tasks import get_task

app = typer.Typer(add_completion=False)


@app.command()
def main(dataset: str = typer.Option(..., help="dataset name (qwen-pipe datasets list)")) -> None:
    params = load_params()
    records, info = load_records(get_task(dataset), params.fetch.source, params.fetch.data_dir)
    path = write_dataset(records, info, DATASETS_DIR)
    typer.echo(f"{dataset}: {info.rows} rows from {info.source} ({info.origin}) -> {path}")


if __name__ == "__main__":
    run(app)
