"""Stage analyze: consolidation, leaderboard, error rates, readiness, insights and the plan's questions
answered, from the metrics files (qwen_pipe/analysis.py) -> reports/analysis.json."""

from __future__ import annotations

import typer

from qwen_pipe.analysis import analyze, required_outputs
from qwen_pipe.config import load_params
from qwen_pipe.console import run
from qwen_pipe.io import write_json
from qwen_pipe.results import ANALYSIS, load_metrics, run_cells

app = typer.Typer(add_completion=False)


@app.command()
def main() -> None:
    params = load_params()
    cells = run_cells(params)
    analysis = analyze(
        load_metrics(run=cells), cells, params.readiness.allow_unready, required_outputs(cells)
    )
    write_json(ANALYSIS, analysis)
    typer.echo(f"analyze: {len(analysis['cells'])} cells, {len(analysis['insights'])} insights -> {ANALYSIS}")
    for answer in analysis["answers"]:
        typer.echo(f"  {answer['question']} {answer['answer']}")


if __name__ == "__main__":
    run(app)
