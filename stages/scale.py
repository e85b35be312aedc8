"""Stage scale: 8B-vs-14B (small-vs-large) comparison per family from the eval and coverage metrics."""

from __future__ import annotations

from pathlib import Path

import typer

from qwen_pipe.config import load_params
from qwen_pipe.console import run
from qwen_pipe.io import read_json_tree, write_json
from qwen_pipe.scaling import compare_pair, family_pairs

app = typer.Typer(add_completion=False)
OUT = Path("metrics/scaling.json")


@app.command()
def main() -> None:
    params = load_params()
    evals = read_json_tree(Path("metrics/eval"), depth=3)
    coverage = read_json_tree(Path("metrics/coverage"))
    pairs = []
    for preset in params.generate.presets:
        by_model = {  # this run's cells of the preset that produced a score
            model: {
                d: doc
                for d, doc in evals.get(model, {}).get(preset, {}).items()
                if d in params.run.datasets and doc.get("status") != "failed"
            }
            for model in params.run.models
        }
        pairs += [
            compare_pair(params, family, small, large, by_model, coverage, preset)
            for family, small, large in family_pairs(params, params.run.models)
        ]
    write_json(OUT, {"pairs": pairs})
    typer.echo(f"scale: {'; '.join(_pair_line(pair) for pair in pairs) or _NO_PAIR} -> {OUT}")


_NO_PAIR = "no family has both a small and a large model in this run, nothing to compare"


def _pair_line(pair: dict) -> str:
    return (
        f"{pair['family']} {pair['preset']}: {pair['large']} vs {pair['small']} "
        f"(x{pair['parameters']['ratio']:.2f} parameters) mean delta {_fmt(pair['mean_delta'], '+.4f')}, "
        f"throughput x{_fmt(pair['throughput_ratio'], '.2f')}, memory x{_fmt(pair['memory_ratio'], '.2f')}"
    )


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


if __name__ == "__main__":
    run(app)
