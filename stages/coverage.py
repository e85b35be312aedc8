"""Stage coverage: load one model under one preset in a fresh process; time it and measure its memory."""

from __future__ import annotations

from pathlib import Path

import typer

from qwen_pipe.config import load_params
from qwen_pipe.console import run
from qwen_pipe.coverage import measure_coverage
from qwen_pipe.io import write_json

app = typer.Typer(add_completion=False)


@app.command()
def main(model: str = typer.Option(...), preset: str = typer.Option(...)) -> None:
    params = load_params()
    spec = params.model(model)
    result = measure_coverage(spec, preset, params.preset_for(model, preset), params.engine, params.coverage)
    write_json(Path("metrics/coverage") / model / f"{preset}.json", result)
    checks = ", ".join(f"{name} {c['status']} ({c['value']})" for name, c in result["checks"].items())
    typer.echo(f"{model} x {preset}: {result['status']}: {checks}")


if __name__ == "__main__":
    run(app)
