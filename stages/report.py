"""Stage report: the Markdown report and the readiness summary, from the metrics files alone."""

from __future__ import annotations

from pathlib import Path

import typer

from qwen_pipe.config import load_params
from qwen_pipe.console import run
from qwen_pipe.io import write_json
from qwen_pipe.report import RunCells, load_metrics, readiness, render_markdown

app = typer.Typer(add_completion=False)
REPORT = Path("reports/report.md")
SUMMARY = Path("metrics/readiness.json")


@app.command()
def main() -> None:
    params = load_params()
    run_cells = RunCells(params.run.models, params.generate.presets, params.run.datasets, params.run.presets)
    metrics = load_metrics(run=run_cells)
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(render_markdown(metrics), encoding="utf-8")
    checks = readiness(metrics)
    write_json(SUMMARY, {"ready": all(c["status"] == "PASS" for c in checks), "checks": checks})
    passed = sum(c["status"] == "PASS" for c in checks)
    typer.echo(
        f"report: readiness {'PASS' if passed == len(checks) else 'FAIL'} ({passed}/{len(checks)} checks)"
        f" -> {REPORT}, {SUMMARY}"
    )


if __name__ == "__main__":
    run(app)
