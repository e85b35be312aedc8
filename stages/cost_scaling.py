"""Stage cost_scaling: generation time and tokens/s against prompts and output length, for one model."""

from __future__ import annotations

from pathlib import Path

import typer

from qwen_pipe.config import load_params
from qwen_pipe.console import run
from qwen_pipe.performance import cost_scaling_line, run_cost_scaling
from qwen_pipe.plots import FIGURES_DIR

app = typer.Typer(add_completion=False)
OUT = Path("metrics/cost_scaling.json")
FIGURE = FIGURES_DIR / "cost_scaling.png"


@app.command()
def main(model: str = typer.Option(None, help="default: params cost_scaling.model")) -> None:
    result = run_cost_scaling(load_params(), model, OUT, FIGURE)
    typer.echo(f"cost_scaling {cost_scaling_line(result)} -> {OUT}, {FIGURE}")


if __name__ == "__main__":
    run(app)
