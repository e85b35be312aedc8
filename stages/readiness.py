"""Stage readiness: the go/no-go gate, last in the pipeline. Writes metrics/readiness.json (PASS, FAIL or
SKIP per criterion, with the numbers) and fails `dvc repro` when a criterion fails, naming it, unless
`--allow-unready` or params `readiness.allow_unready` says to carry on."""

from __future__ import annotations

from pathlib import Path

import typer

from qwen_pipe.analysis import analysis_readiness, required_outputs
from qwen_pipe.config import load_params
from qwen_pipe.console import run
from qwen_pipe.errors import QwenPipeError
from qwen_pipe.io import write_json
from qwen_pipe.readiness import failure_line
from qwen_pipe.results import load_metrics, run_cells

app = typer.Typer(add_completion=False)
OUT = Path("metrics/readiness.json")


@app.command()
def main(
    allow_unready: bool = typer.Option(False, "--allow-unready", help="record a failing criterion, exit 0"),
) -> None:
    params = load_params()
    cells = run_cells(params)
    allow = allow_unready or params.readiness.allow_unready
    result = analysis_readiness(load_metrics(run=cells), allow, required_outputs(cells, reports=True))
    write_json(OUT, result)
    passed = sum(c["status"] == "PASS" for c in result["checks"])
    skipped = sum(c["status"] == "SKIP" for c in result["checks"])
    summary = f"{passed}/{len(result['checks'])} PASS" + (f", {skipped} SKIP" if skipped else "")
    if result["ready"]:
        typer.echo(f"readiness: READY ({summary}) -> {OUT}")
        return
    reason = failure_line(result["checks"])
    if result["allowed_unready"]:
        typer.echo(
            f"readiness: NOT READY, carried on (readiness.allow_unready) ({summary}): {reason} -> {OUT}"
        )
        return
    raise QwenPipeError(
        f"readiness: NOT READY ({summary}): {reason}",
        "fix the failing criteria, or carry on with --allow-unready (params readiness.allow_unready: true)",
    )


if __name__ == "__main__":
    run(app)
