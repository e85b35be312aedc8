"""Stage scale: per family the large model against the small one, and per model each preset against the
first generating preset, paired on the same items (qwen_pipe/scaling.py)."""

from __future__ import annotations

from pathlib import Path

import typer

from qwen_pipe.cells import JUDGE_INFO_DIR, read_coverage_tree, read_eval_tree
from qwen_pipe.config import load_params
from qwen_pipe.console import fmt, run
from qwen_pipe.io import write_json
from qwen_pipe.results import with_judgments
from qwen_pipe.scaling import SCORES, compare_pair, compare_presets, family_pairs
from qwen_pipe.scoring.paired import SIGNIFICANCE

app = typer.Typer(add_completion=False)
OUT = Path("metrics/scaling.json")


@app.command()
def main() -> None:
    params = load_params()
    # a judged cell (MT-Bench, Arena-Hard) is compared on its judge's score, paired per sample
    evals = with_judgments(
        read_eval_tree(Path("metrics/eval"), SCORES), read_eval_tree(Path("metrics/judge"), JUDGE_INFO_DIR)
    )
    coverage = read_coverage_tree(Path("metrics/coverage"))
    presets = params.generate.presets

    def cells(model: str, preset: str) -> dict[str, dict]:  # this run's cells of the model x preset
        found = evals.get(model, {}).get(preset, {})
        return {d: doc for d, doc in found.items() if d in params.run.datasets}

    pairs = [
        compare_pair(
            params, family, small, large, {m: cells(m, preset) for m in (small, large)}, coverage, preset
        )
        for preset in presets
        for family, small, large in family_pairs(params, params.run.models)
    ]
    preset_rows = [
        compare_presets(
            model, presets[0], preset, {p: cells(model, p) for p in presets}, coverage.get(model, {})
        )
        for model in params.run.models
        for preset in presets[1:]
    ]
    write_json(OUT, {"pairs": pairs, "presets": preset_rows})
    lines = [_pair_line(pair) for pair in pairs] + [_preset_line(row) for row in preset_rows]
    typer.echo(f"scale: {'; '.join(lines) or _NO_PAIR} -> {OUT}")


_NO_PAIR = "no family has both a small and a large model in this run, nothing to compare"


def _mean(comparison: dict) -> str:
    mean = comparison["mean_accuracy_delta"]
    if mean is None:
        return "no accuracy compared"
    interval = "" if mean["low"] is None else f" [{fmt(mean['low'])}, {fmt(mean['high'])}]"
    verdict = SIGNIFICANCE[mean["significant"]]
    return f"mean accuracy delta {mean['delta']:+.4f}{interval} ({verdict})"


def _pair_line(pair: dict) -> str:
    return (
        f"{pair['family']} {pair['preset']}: {pair['large']} vs {pair['small']} "
        f"(x{pair['parameters']['ratio']:.2f} parameters) {_mean(pair)}, "
        f"throughput x{fmt(pair['throughput_ratio'])}, memory x{fmt(pair['memory_ratio'])}"
    )


def _preset_line(row: dict) -> str:
    return f"{row['model']} {row['preset']} vs {row['baseline']}: {_mean(row)}"


if __name__ == "__main__":
    run(app)
