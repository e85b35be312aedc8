"""Stage judge: an LLM judge grades the saved answers of the judged datasets (qwen_pipe/judge.py)."""

from __future__ import annotations

import typer

from qwen_pipe.config import load_params
from qwen_pipe.console import run
from qwen_pipe.judge import judge_line, judge_pipeline

app = typer.Typer(add_completion=False)


@app.command()
def main() -> None:
    params = load_params()
    results = judge_pipeline(params)
    if not results:
        typer.echo("judge: no judged dataset in run.datasets")
    for cell, result in results.items():
        typer.echo(judge_line(cell, result))


if __name__ == "__main__":
    run(app)
