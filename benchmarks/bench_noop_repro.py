"""A no-op `dvc repro` (every stage up to date) here against DVC's own floor: a bare DVC project with the
same number of stages, each with one dependency, one parameter and one output. Target: at most 1.5x.

Run after a full `make run` in the repository root:  python benchmarks/bench_noop_repro.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_RATIO = 1.5


def environment() -> dict:
    return {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }


def time_noop(project: Path, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        done = subprocess.run(
            ["dvc", "repro"], cwd=project, capture_output=True, text=True, env=environment(), check=False
        )
        times.append(time.perf_counter() - started)
        ran = re.findall(r"Running stage '([^']+)'", done.stdout)
        if done.returncode != 0 or ran:
            sys.exit(
                f"{project}: not a no-op: exit {done.returncode}, stages run: {ran or done.stderr[-500:]}"
            )
    return times


def stage_count(project: Path) -> int:
    listed = subprocess.run(
        ["dvc", "stage", "list"], cwd=project, capture_output=True, text=True, env=environment(), check=True
    )
    return len(listed.stdout.splitlines())


def bare_project(folder: Path, stages: int) -> Path:
    """A git + DVC project of `stages` trivial stages, reproduced once so the next repro is a no-op."""
    lines = ["stages:"]
    for index in range(stages):
        lines += [
            f"  s{index}:",
            f"    cmd: python -c \"open('out/{index}.txt', 'w').write('{index}')\"",
            "    deps: [input.txt]",
            "    params: [value]",
            f"    outs: [out/{index}.txt]",
        ]
    (folder / "dvc.yaml").write_text("\n".join(lines) + "\n")
    (folder / "params.yaml").write_text("value: 1\n")
    (folder / "input.txt").write_text("input\n")
    (folder / "out").mkdir()
    for command in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "repro", "-q"]):
        subprocess.run(command, cwd=folder, capture_output=True, env=environment(), check=True)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    ours = Path.cwd()
    stages = stage_count(ours)
    ours_times = time_noop(ours, args.repeat)
    with tempfile.TemporaryDirectory(prefix="bare-dvc-") as folder:
        bare_times = time_noop(bare_project(Path(folder), stages), args.repeat)
    ours_median, bare_median = statistics.median(ours_times), statistics.median(bare_times)
    ratio = ours_median / bare_median
    print(
        f"no-op dvc repro over {stages} stages: qwen-pipe median {ours_median:.2f} s "
        f"(min {min(ours_times):.2f}), bare DVC median {bare_median:.2f} s (min {min(bare_times):.2f}); "
        f"ratio {ratio:.2f} (target <= {TARGET_RATIO}; {args.repeat} runs each)"
    )
    sys.exit(0 if ratio <= TARGET_RATIO else 1)


if __name__ == "__main__":
    main()
