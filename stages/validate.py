"""Stage validate: every model x preset configuration checked before anything runs; a FAIL stops the pipeline."""

from __future__ import annotations

from pathlib import Path

import typer

from qwen_pipe.config import load_params
from qwen_pipe.console import run
from qwen_pipe.errors import QwenPipeError
from qwen_pipe.io import write_json
from qwen_pipe.validation import validate_all

app = typer.Typer(add_completion=False)
OUT = Path("metrics/validate.json")


@app.command()
def main() -> None:
    params = load_params()
    checks = validate_all(params)
    failed = [c for c in checks if c.status == "FAIL"]
    write_json(
        OUT,
        {
            "configurations": len(checks),
            "passed": len(checks) - len(failed),
            "failed": len(failed),
            "checks": [c.as_dict() for c in checks],
        },
    )
    for check in checks:
        typer.echo(f"{check.status}  {check.model:14s} {check.preset:17s} {'; '.join(check.reasons)}")
    if failed:
        first = failed[0]
        raise QwenPipeError(
            f"{len(failed)} of {len(checks)} configurations FAIL (first: {first.model} x {first.preset}: {first.reasons[0]})",
            f"fix the preset or preset_overrides in params.yaml; details in {OUT}",
        )


if __name__ == "__main__":
    run(app)
