"""Stage plan: the cost plan of the run in params.yaml (metrics/plan.json): its prompt tokens counted from the
fetched data with each model's tokenizer, its output tokens from the measured means of the generations
(budgets where a cell has none), its throughput from the coverage stage (defaults where unmeasured), its
GPU-hours per model, dataset and in total. The report shows it (docs/plan.md)."""

from __future__ import annotations

import typer

from qwen_pipe.config import load_params
from qwen_pipe.console import run
from qwen_pipe.io import write_json
from qwen_pipe.plan import PLAN_FILE, fetched_records, make_plan, stage_document, summary_line

app = typer.Typer(add_completion=False)


@app.command()
def main() -> None:
    plan = make_plan(load_params(), fetched_records())
    write_json(PLAN_FILE, stage_document(plan))
    typer.echo(f"{summary_line(plan)} -> {PLAN_FILE}")


if __name__ == "__main__":
    run(app)
