"""Stage perf_matrix: the performance matrix (model x preset) from the coverage metrics, and its figure."""

from __future__ import annotations

from pathlib import Path

import typer

from qwen_pipe.config import load_params
from qwen_pipe.console import run
from qwen_pipe.io import read_json_tree, write_json
from qwen_pipe.performance import performance_matrix
from qwen_pipe.plots import FIGURES_DIR, plot_performance_matrix

app = typer.Typer(add_completion=False)
COVERAGE = Path("metrics/coverage")
OUT = Path("metrics/performance.json")
FIGURE = FIGURES_DIR / "performance_matrix.png"


@app.command()
def main() -> None:
    params = load_params()
    matrix = performance_matrix(read_json_tree(COVERAGE), params.run.models, params.run.presets)
    plot_performance_matrix(matrix, FIGURE)
    write_json(OUT, {**matrix, "figure": str(FIGURE)})
    typer.echo(
        f"wrote {OUT} and {FIGURE}: {matrix['passed']}/{matrix['configurations']} configurations PASS"
        + (f"; missing {', '.join(matrix['missing'])}" if matrix["missing"] else "")
    )


if __name__ == "__main__":
    run(app)
