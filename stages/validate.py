"""Stage validate: every model x preset configuration checked before anything runs; a FAIL stops the pipeline."""

from __future__ import annotations

from pathlib import Path

import typer

from qwen_pipe.cells import DATASETS_DIR
from qwen_pipe.config import load_params
from qwen_pipe.console import run
from qwen_pipe.errors import QwenPipeError
from qwen_pipe.io import atomic_write_text, write_json
from qwen_pipe.validation import ConfigCheck, run_requests, validate_all

app = typer.Typer(add_completion=False)
OUT = Path("metrics/validate.json")
# What the engine stages depend on: written only when every configuration passes, and always the same
# bytes, so it orders them after validate without rerunning them when a detail of the report changes.
GATE = Path("data/validated.txt")


@app.command()
def main() -> None:
    params = load_params()
    checks = validate_all(params, run_requests(params, DATASETS_DIR))
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
    typer.echo(summary_line(checks))
    GATE.unlink(missing_ok=True)
    if failed:
        for check in failed:
            typer.echo(f"FAIL {check.model} x {check.preset}: {'; '.join(check.reasons)}", err=True)
        first = failed[0]
        raise QwenPipeError(
            f"{len(failed)} of {len(checks)} configurations FAIL (first: {first.model} x {first.preset}: {first.reasons[0]})",
            f"fix the preset or preset_overrides in params.yaml; details in {OUT}",
        )
    atomic_write_text(GATE, "every configuration passed validate (details: metrics/validate.json)\n")


def summary_line(checks: list[ConfigCheck]) -> str:
    """How many configurations pass, and the closest call on memory and on context length."""
    passed = sum(c.status == "PASS" for c in checks)
    line = f"validate: {passed}/{len(checks)} configurations PASS"
    if passed < len(checks):
        line += f", {len(checks) - passed} FAIL"
    sized = [c for c in checks if c.memory is not None]
    if sized:
        fullest = max(sized, key=lambda c: c.memory.total_gib / c.memory.budget_gib)
        line += (
            f" (memory: fullest {fullest.model} x {fullest.preset}, {fullest.memory.total_gib} of "
            f"{fullest.memory.budget_gib} GiB"
        )
        fits = [(f, c) for c in checks for f in c.fits]
        if fits:
            fit, check = max(fits, key=lambda fc: fc[0].needed / fc[0].context)
            line += (
                f"; context: tightest {fit.dataset} on {check.model} x {check.preset}, {fit.needed:,} of "
                f"{fit.context:,} tokens"
            )
        line += ")"
    return f"{line} -> {OUT}"


if __name__ == "__main__":
    run(app)
