"""How long a paired comparison takes (qwen_pipe/scoring/paired.py: 10,000 bootstrap resamples + McNemar) at
the sizes of the real benchmarks, and what the h100 profile's scale stage would spend on them.

    python benchmarks/bench_paired.py            # prints one line per size and the h100 estimate
"""

from __future__ import annotations

import time

import numpy as np

from qwen_pipe.scoring.paired import compare_paired

SIZES = {"humaneval": 164, "gsm8k": 1_319, "hellaswag": 10_042, "mmlu": 14_042}
TARGET_S = 5.0  # per comparison at MMLU's size


def main() -> None:
    rng = np.random.default_rng(0)
    seconds = {}
    for name, n in SIZES.items():
        a = {f"q{i}": float(v) for i, v in enumerate(rng.random(n) < 0.6)}
        b = {f"q{i}": float(v) for i, v in enumerate(rng.random(n) < 0.65)}
        started = time.perf_counter()
        result = compare_paired(a, b)
        seconds[name] = time.perf_counter() - started
        print(
            f"{name:10s} n={n:>6,}: {seconds[name]:.3f} s (delta {result['delta']:+.4f} "
            f"[{result['low']:+.4f}, {result['high']:+.4f}], p={result['p_value']:.2g})"
        )
    verdict = "PASS" if seconds["mmlu"] <= TARGET_S else "FAIL"
    print(f"target: <= {TARGET_S} s per comparison at MMLU's size: {verdict} ({seconds['mmlu']:.2f} s)")
    # h100 profile: 6 families (3 post-trained, 3 base) x 18 datasets, one preset; MMLU's size is the worst case
    print(f"h100 scale stage, upper bound: {6 * 18 * seconds['mmlu']:.0f} s for 108 comparisons")


if __name__ == "__main__":
    main()
