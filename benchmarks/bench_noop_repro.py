"""Time a no-op `dvc repro` (every stage up to date): the acceptance target is under 3 s.

Run after a full `make run` in the repository root:  python benchmarks/bench_noop_repro.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    env = {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    times = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        done = subprocess.run(["dvc", "repro"], capture_output=True, text=True, env=env, check=False)
        times.append(time.perf_counter() - started)
        ran = re.findall(r"Running stage '([^']+)'", done.stdout)
        if done.returncode != 0 or ran:
            sys.exit(f"not a no-op: exit {done.returncode}, stages run: {ran or done.stderr[-500:]}")
    stages = len(
        subprocess.run(["dvc", "stage", "list"], capture_output=True, text=True, env=env).stdout.splitlines()
    )
    print(
        f"no-op dvc repro over {stages} stages: median {statistics.median(times):.2f} s, "
        f"min {min(times):.2f} s, max {max(times):.2f} s ({args.repeat} runs); target < 3 s"
    )


if __name__ == "__main__":
    main()
