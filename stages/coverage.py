"""Stage coverage: load one model under one preset in a fresh process; time it and measure its memory."""

from __future__ import annotations

import typer

from qwen_pipe.config import load_params
from qwen_pipe.console import run
from qwen_pipe.coverage import run_coverage, summary_line

app = typer.Typer(add_completion=False)


@app.command()
def main(model: str = typer.Option(...), preset: str = typer.Option(...)) -> None:
    [result] = run_coverage(load_params(), [model], [preset])
    typer.echo(f"coverage {summary_line(result)}")


if __name__ == "__main__":
    run(app)
