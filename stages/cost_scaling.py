"""Stage cost_scaling: generation time and tokens/s against prompts and output length, for one model."""

from __future__ import annotations

from pathlib import Path

import typer

from qwen_pipe.config import load_params
from qwen_pipe.console import run
from qwen_pipe.errors import QwenPipeError
from qwen_pipe.io import write_json
from qwen_pipe.performance import measure_cost_scaling
from qwen_pipe.plots import FIGURES_DIR, plot_cost_scaling

app = typer.Typer(add_completion=False)
OUT = Path("metrics/cost_scaling.json")
FIGURE = FIGURES_DIR / "cost_scaling.png"


@app.command()
def main(model: str = typer.Option(None, help="default: the run's first model")) -> None:
    params = load_params()
    model = model or params.run.models[0]
    preset = params.generate.presets[0]
    result = measure_cost_scaling(
        params.model(model), preset, params.preset_for(model, preset), params.engine, params.coverage
    )
    if result["status"] != "PASS":
        write_json(OUT, result)
        error = result["error"]
        raise QwenPipeError(
            f"cost scaling of {model} failed: {error['type']}: {error['message']}",
            "see the engine's log above",
        )
    plot_cost_scaling(result, FIGURE)
    write_json(OUT, {**result, "figure": str(FIGURE)})
    fit = result["fits"]["wall_vs_prompts"]
    typer.echo(
        f"{model} x {preset}: peak {result['peak_output_tokens_per_s']} tokens/s, batching gain "
        f"x{result['batching_gain']}, {fit['marginal_seconds_per_prompt']} s per extra prompt; wrote {OUT} and {FIGURE}"
    )


if __name__ == "__main__":
    run(app)
