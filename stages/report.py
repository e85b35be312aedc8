"""Stage report: reports/report.md and the self-contained reports/report.html, from the metrics files and
the analysis alone."""

from __future__ import annotations

import typer

from qwen_pipe.config import load_params
from qwen_pipe.console import run
from qwen_pipe.html_report import write_html
from qwen_pipe.io import read_json
from qwen_pipe.report import render_markdown
from qwen_pipe.results import ANALYSIS, REPORTS, load_metrics, run_cells

app = typer.Typer(add_completion=False)


@app.command()
def main() -> None:
    params = load_params()
    metrics = load_metrics(run=run_cells(params))
    analysis = read_json(ANALYSIS)
    markdown, html = REPORTS
    markdown.parent.mkdir(parents=True, exist_ok=True)
    markdown.write_text(render_markdown(metrics, analysis), encoding="utf-8")
    write_html(metrics, analysis, html)
    typer.echo(f"report: {markdown}, {html}")


if __name__ == "__main__":
    run(app)
