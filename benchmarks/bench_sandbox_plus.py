"""HumanEval+ and MBPP+ reference solutions, every test: qwen-pipe's sandbox against evalplus 0.3.1.

Same machine, same worker count, same programs (each problem's canonical solution as an evalplus
`solution`). evalplus runs in a subprocess reading the mirror's native files; its ground-truth cache
lives in a temporary folder, so its first run computes the expected outputs (cold) and later ones
reuse them (warm). qwen-pipe's first run calibrates its time limits and memoizes the reference
functions some tests compute expected values with (cold); later runs reuse both (warm). Every run
reports how many reference solutions passed: all of them, every time, is the target, and at least
twice evalplus's tests per second.

    .venv/bin/python benchmarks/bench_sandbox_plus.py [--datasets humaneval_plus,mbpp_plus] [--workers 2] [--runs 3]
        [--evalplus-python PATH]

evalplus may live in a venv of its own (`python -m venv /tmp/evalplus && /tmp/evalplus/bin/pip install
evalplus==0.3.1`): pass that interpreter as --evalplus-python (default: this one).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from qwen_pipe.sandbox import isolation_mode
from qwen_pipe.tasks.common.registry import get_task

ROOT = Path(__file__).resolve().parents[1]
NATIVE = {  # evalplus's own files in the mirror, and its dataset names
    "humaneval_plus": ("humaneval_plus/HumanEvalPlus.jsonl.gz", "humaneval", "HUMANEVAL_OVERRIDE_PATH"),
    "mbpp_plus": ("mbpp_plus/MbppPlus.jsonl.gz", "mbpp", "MBPP_OVERRIDE_PATH"),
}
EVALPLUS_RUN = """
import contextlib, io, json, sys, time
from evalplus.evaluate import evaluate
dataset, samples, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
start = time.perf_counter()
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    evaluate(dataset=dataset, samples=samples, parallel=workers, i_just_wanna_run=True)
wall = time.perf_counter() - start
results = json.load(open(samples.replace(".jsonl", "_eval_results.json")))["eval"]
passed = sum(all(r["base_status"] == "pass" and r["plus_status"] == "pass" for r in rs) for rs in results.values())
print(json.dumps({"wall": wall, "passed": passed, "failed": sorted(k for k, rs in results.items()
      if not all(r["base_status"] == "pass" and r["plus_status"] == "pass" for r in rs))}))
"""


def evalplus_installed(python: str) -> bool:
    return subprocess.run([python, "-c", "import evalplus"], capture_output=True, check=False).returncode == 0


def evalplus_run(name: str, data_dir: Path, folder: Path, workers: int, python: str) -> dict:
    relative, dataset, override = NATIVE[name]
    native = data_dir / relative
    samples = folder / f"{dataset}_samples.jsonl"
    with gzip.open(native, "rt") as handle, open(samples, "w") as out:
        for record in map(json.loads, handle):
            solution = record["canonical_solution"]
            if dataset == "humaneval":
                solution = record["prompt"] + solution
            out.write(json.dumps({"task_id": record["task_id"], "solution": solution}) + "\n")
    samples.with_name(f"{dataset}_samples_eval_results.json").unlink(missing_ok=True)
    env = {**os.environ, override: str(native), "XDG_CACHE_HOME": str(folder / "cache")}
    done = subprocess.run(
        [python, "-c", EVALPLUS_RUN, dataset, str(samples), str(workers)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_count(name: str, data_dir: Path) -> int:
    with gzip.open(data_dir / NATIVE[name][0], "rt") as handle:
        return sum(len(r["base_input"]) + len(r["plus_input"]) for r in map(json.loads, handle))


def qwen_pipe_run(name: str, data_dir: Path, cache: Path, workers: int) -> dict:
    task = get_task(name)
    task.workers, task.cache_dir = workers, cache
    records = task.load_mirror(data_dir)
    start = time.perf_counter()
    results, _ = task.run(records, [task.reference_source(r) for r in records])
    wall = time.perf_counter() - start
    return {
        "wall": wall,
        "passed": sum(r.passed for r in results),
        "failed": [r.id for r in results if not r.passed],
    }


def report(label: str, runs: list[dict], tests: int, problems: int) -> float:
    walls = [r["wall"] for r in runs]
    print(
        f"  {label}: wall {', '.join(f'{w:.1f}' for w in walls)} s; passed {[r['passed'] for r in runs]} of {problems}"
    )
    for run in runs:
        if run["failed"]:
            print(f"      failed: {', '.join(run['failed'])}")
    median = statistics.median(walls)
    print(f"      median {median:.1f} s = {tests / median:,.0f} tests/s")
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="humaneval_plus,mbpp_plus")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3, help="warm runs per side, after one cold run")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("QWEN_PIPE_DATA_DIR") or ROOT.parent / "shared" / "datasets"),
    )
    parser.add_argument("--evalplus-python", default=sys.executable, help="an interpreter with evalplus")
    args = parser.parse_args()
    have_evalplus = evalplus_installed(args.evalplus_python)
    if not have_evalplus:
        print("evalplus not installed: pip install evalplus==0.3.1 (timing qwen-pipe alone)")
    print(f"sandbox: {isolation_mode()['mode']}, {args.workers} workers, {os.cpu_count()} CPUs")
    for name in args.datasets.split(","):
        tests, problems = test_count(name, args.data_dir), get_task(name).source.rows
        print(f"{name}: {problems} reference solutions, {tests:,} tests")
        with tempfile.TemporaryDirectory(prefix="bench-plus-") as folder:
            cache = Path(folder) / "calibration"
            ours_cold = qwen_pipe_run(name, args.data_dir, cache, args.workers)
            theirs_cold = (
                evalplus_run(name, args.data_dir, Path(folder), args.workers, args.evalplus_python)
                if have_evalplus
                else None
            )
            ours, theirs = [], []
            for _ in range(args.runs):  # alternating, so both see the same machine load
                ours.append(qwen_pipe_run(name, args.data_dir, cache, args.workers))
                if have_evalplus:
                    theirs.append(
                        evalplus_run(name, args.data_dir, Path(folder), args.workers, args.evalplus_python)
                    )
        report("qwen-pipe cold (calibrating)", [ours_cold], tests, problems)
        median_ours = report("qwen-pipe warm", ours, tests, problems)
        if have_evalplus:
            report("evalplus 0.3.1 cold (ground truth)", [theirs_cold], tests, problems)
            median_theirs = report("evalplus 0.3.1 warm", theirs, tests, problems)
            print(f"  tests/s qwen-pipe / evalplus (warm): {median_theirs / median_ours:.2f} (target >= 2)")
            cold_ratio = (theirs_cold["wall"]) / ours_cold["wall"]
            print(f"  tests/s qwen-pipe / evalplus (cold): {cold_ratio:.2f}")


if __name__ == "__main__":
    main()
