"""`qwen-pipe eval`: models x datasets outside DVC, one engine load per model, reports in an output dir.

It runs the generate and score stages' own functions (generate_isolated, score_and_write) on an output
folder's layout, and prints their lines. Bad input (unknown names, data missing offline) fails before any
model loads; a model or dataset that fails while running is recorded and the others go on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from qwen_pipe.cells import Cell, output_layout, select_samples
from qwen_pipe.config import MODELS_DIR, Params
from qwen_pipe.console import fmt
from qwen_pipe.engines.registry import engine_info
from qwen_pipe.errors import QwenPipeError
from qwen_pipe.fetch import load_records
from qwen_pipe.generate import generate_isolated, generate_line
from qwen_pipe.io import write_json
from qwen_pipe.protocols import check_protocol
from qwen_pipe.score import score_and_write, score_line
from qwen_pipe.tasks.common.base import GenerationTask
from qwen_pipe.tasks.common.registry import task_for

SUMMARY_KEYS = (
    "primary_metric",
    "score",
    "stderr",
    "n",
    "metrics",
    "embedded_sample",
    "protocol",
    "shots",
    "thinking",
)


@dataclass
class EvalRequest:
    models: list[str]
    datasets: list[str]
    preset: str
    sample_limit: int | None
    engine: str
    data_dir: Path | None
    output_dir: Path
    thinking: bool = False
    detailed: bool = False
    cache_dir: Path = Path(".cache/eval")
    protocol: str | None = None  # None: params `protocol`


def ensure_tiny_model(params: Params, name: str) -> None:
    """Build a tiny model on first use (the build_models stage writes the same bytes)."""
    folder = MODELS_DIR / name
    if (folder / "config.json").is_file() and (folder / "model.safetensors").is_file():
        return
    params.tiny_models[name].build(folder)


def run_eval(params: Params, request: EvalRequest, echo: Callable[[str], None] | None = None) -> dict:
    say = echo or (lambda _: None)
    params = params.model_copy(
        update={
            "protocol": check_protocol(request.protocol or params.protocol),
            "generate": params.generate.model_copy(
                update={"thinking": request.thinking, "presets": [request.preset]}
            ),
        }
    )
    source = "mirror" if request.data_dir else params.fetch.source
    data_dir = request.data_dir or params.fetch.data_dir
    tasks = {name: task_for(params, name) for name in request.datasets}
    data = {name: load_records(task, source, data_dir) for name, task in tasks.items()}  # fail fast
    if engine_info(request.engine).gold_answers:
        for name, task in tasks.items():
            records = data[name][0]
            if isinstance(task, GenerationTask) and records and task.gold_output(records[0]) is None:
                raise QwenPipeError(
                    f"{name} has no gold answers, so the oracle engine cannot answer it",
                    "leave it out of --datasets, or evaluate it with a model engine",
                )
    layout = output_layout(request.output_dir, request.cache_dir)
    chosen = {  # the same subset for every model, so they can be compared item by item
        name: (select_samples(records, request.sample_limit, params.generate.sample_seed), asdict(info))
        for name, (records, info) in data.items()
    }
    results: dict[str, dict[str, dict]] = {}
    failures: list[dict] = []
    for model in request.models:
        spec = params.model(model)
        results[model] = {}
        if spec.tiny:
            ensure_tiny_model(params, model)
        log_name = f"eval@{model}-{request.preset}"
        outcomes = generate_isolated(params, model, request.preset, chosen, layout, request.engine, log_name)
        for name, task in tasks.items():
            cell = Cell(model, request.preset, name)
            say(generate_line(cell, outcomes[name]))
            result, seconds = score_and_write(
                task, data[name][0], layout, cell, params.score.flush_every, request.detailed
            )
            if result["status"] == "failed":
                failures.append(result["failure"])
                continue
            results[model][name] = result
            say(score_line(cell, result, seconds))
    out = request.output_dir
    summary = {
        "results": {
            m: {d: {k: doc.get(k) for k in SUMMARY_KEYS} for d, doc in by.items()}
            for m, by in results.items()
        },
        "failures": failures,
        "engine": request.engine,
        "preset": request.preset,
        "protocol": params.protocol,
    }
    write_json(out / "results.json", summary)
    (out / "report.md").write_text(_report(summary, results, request), encoding="utf-8")
    say(f"eval: wrote {out / 'results.json'} and {out / 'report.md'}")
    if failures:
        first = failures[0]
        raise QwenPipeError(
            f"{len(failures)} evaluation(s) failed (first: {first['model']} {first['dataset'] or ''} "
            f"{first['error_type']}: {first['message']}); the other results are in {out}",
            "see results.json `failures`",
        )
    return summary


def _report(summary: dict, results: dict, request: EvalRequest) -> str:
    lines = [
        "# qwen-pipe eval",
        "",
        f"Protocol {summary['protocol']}, engine {request.engine}, preset {request.preset}, thinking {'on' if request.thinking else 'off'}, "
        f"sample limit {request.sample_limit or 'none (full splits)'}.",
        "",
        "| model | dataset | metric | score | stderr | n |",
        "|---|---|---|---|---|---|",
    ]
    for model, by_dataset in summary["results"].items():
        for dataset, doc in by_dataset.items():
            sample = " *" if doc.get("embedded_sample") else ""
            lines.append(
                f"| {model} | {dataset}{sample} | {doc['primary_metric']} | {fmt(doc['score'])} | {fmt(doc['stderr'])} | {doc['n']} |"
            )
    if any(d.get("embedded_sample") for by in summary["results"].values() for d in by.values()):
        lines += ["", "\\* a small sample shipped with qwen-pipe, not the benchmark."]
    if request.detailed:
        lines += ["", "## Per-metric detail", ""]
        for model, by_dataset in results.items():
            for dataset, doc in by_dataset.items():
                metrics = ", ".join(
                    f"{k} {fmt(v['value'])} ± {fmt(v['stderr'])}"
                    for k, v in doc["metrics"].items()
                    if not k.startswith("_")
                )
                failed = doc.get("failed_samples", [])
                lines.append(
                    f"- {model} x {dataset}: {metrics}; {len(failed)} incorrect"
                    + (f": {', '.join(failed[:20])}" if failed else "")
                )
    if summary["failures"]:
        lines += ["", "## Failures", ""]
        lines += [
            f"- {f['stage']} {f['model']} {f['dataset'] or ''}: {f['error_type']}: {f['message']}"
            for f in summary["failures"]
        ]
    return "\n".join(lines) + "\n"
