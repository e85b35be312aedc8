"""Stage perf_matrix: the performance matrix (model x preset) from the coverage metrics, and its figure."""

from __future__ import annotations

from pathlib import Path

import typer

from qwen_pipe.cells import read_coverage_tree
from qwen_pipe.config import load_params
from qwen_pipe.console import run
from qwen_pipe.performance import write_performance_matrix
from qwen_pipe.plots import FIGURES_DIR

app = typer.Typer(add_completion=False)
COVERAGE = Path("metrics/coverage")
OUT = Path("metrics/performance.json")
FIGURE = FIGURES_DIR / "performance_matrix.png"


@app.command()
def main() -> None:
    params = load_params()
    matrix = write_performance_matrix(
        read_coverage_tree(COVERAGE), params.run.models, params.run.presets, OUT, FIGURE
    )
    typer.echo(
        f"perf_matrix: {matrix['passed']}/{matrix['configurations']} configurations PASS -> {OUT}, {FIGURE}"
        + (f"; missing {', '.join(matrix['missing'])}" if matrix["missing"] else "")
    )


if __name__ == "__main__":
    run(app)
