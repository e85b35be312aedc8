"""Oracle throughput of every non-code task over its full mirror data: generate_records + score_records.

Prints, per task, the samples, the engine requests, the primary metric the oracle got (1.0 unless the task
lists exceptions) and samples/s, then the overall rate. Tasks without gold answers (the oracle cannot
answer them) and code tasks (scored by running programs) are listed as skipped.

    .venv/bin/python benchmarks/bench_oracle_scoring.py [--data-dir DIR] [--tasks a,b] [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from qwen_pipe.config import load_params
from qwen_pipe.engines.oracle import OracleEngine
from qwen_pipe.generate import GenerationSettings, generate_records
from qwen_pipe.prompting import PromptRenderer
from qwen_pipe.score import score_records
from qwen_pipe.tasks import task_names
from qwen_pipe.tasks.common.base import GenerationTask, PromptStyle
from qwen_pipe.tasks.common.registry import get_task

ROOT = Path(__file__).resolve().parents[1]
STYLE = PromptStyle(chat=False)  # completion prompts: nothing loads a tokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("QWEN_PIPE_DATA_DIR") or ROOT.parent / "shared" / "datasets"),
    )
    parser.add_argument(
        "--tasks", default="", help="comma-separated task names (default: every non-code task)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per task; the fastest is reported")
    args = parser.parse_args()

    names = args.tasks.split(",") if args.tasks else task_names()
    renderer = PromptRenderer(load_params(ROOT / "params.yaml").model("tiny_small"))
    settings = GenerationSettings(style=STYLE)
    skipped: list[str] = []
    total_samples, total_seconds = 0, 0.0
    print(
        f"{'task':<20} {'samples':>8} {'requests':>9} {'load s':>7} {'oracle s':>9} {'samples/s':>10}  primary"
    )
    for name in names:
        task = get_task(name)
        if task.kind == "code":
            skipped.append(f"{name} (code: scored by running programs)")
            continue
        started = time.perf_counter()
        records = task.load_mirror(args.data_dir)
        samples = [{"id": task.sample_id(r, i), **r} for i, r in enumerate(records)]
        load_seconds = time.perf_counter() - started
        if isinstance(task, GenerationTask) and samples and task.gold_output(samples[0]) is None:
            skipped.append(f"{name} (no gold answers)")
            continue
        best = float("inf")
        for _ in range(args.repeat):
            started = time.perf_counter()
            out = generate_records(task, samples, OracleEngine("oracle"), renderer, settings)
            _, aggregate = score_records(task, samples, out, STYLE)
            best = min(best, time.perf_counter() - started)
        requests = sum(len(r["responses"]) for r in out)
        primary = aggregate[task.primary_metric]["value"]
        total_samples += len(samples)
        total_seconds += best
        print(
            f"{name:<20} {len(samples):>8} {requests:>9} {load_seconds:>7.2f} {best:>9.2f} "
            f"{len(samples) / best:>10.0f}  {task.primary_metric} {primary:.6f}"
        )
    if total_seconds:
        print(
            f"{'overall':<20} {total_samples:>8} {'':>9} {'':>7} {total_seconds:>9.2f} {total_samples / total_seconds:>10.0f}"
        )
    for line in skipped:
        print(f"skipped: {line}")


if __name__ == "__main__":
    main()
