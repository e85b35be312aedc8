"""Paired comparisons: two systems scored on exactly the same items (small vs large model, one preset vs
another, a commit vs another).

Per item the difference of the two scores is what varies, not each score on its own, so the interval comes
from resampling items (a paired bootstrap) and binary scores get McNemar's exact test, which looks only at
the items where the two disagree. An unpaired z-test on the same items ignores that correlation; it is kept
only for the case where per-item scores are not available (`unpaired`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

RESAMPLES = 10_000
LEVEL = 0.95
ALPHA = 1 - LEVEL
SEED = 0
_BLOCK = 1_000
# how a comparison's `significant` reads: None when nothing could be tested
SIGNIFICANCE = {
    True: "significant",
    False: "not significant",
    None: "undetermined",
}  # resamples drawn at once: bounded memory however many items


def bootstrap_interval(
    values: np.ndarray | list[float], resamples: int = RESAMPLES, seed: int = SEED, level: float = LEVEL
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values` (vectorised, seeded)."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        raise ValueError("no values to resample")
    rng = np.random.default_rng(seed)
    means = np.concatenate(
        [
            data[rng.integers(0, data.size, size=(min(_BLOCK, resamples - start), data.size))].mean(axis=1)
            for start in range(0, resamples, _BLOCK)
        ]
    )
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def mcnemar_exact(a: np.ndarray | list[float], b: np.ndarray | list[float]) -> float:
    """Two-sided exact McNemar p-value for paired binary outcomes: a binomial test on the discordant items
    (a right and b wrong vs a wrong and b right) with p = 1/2. 1.0 when they never disagree."""
    x, y = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    only_a, only_b = int(np.sum(x & ~y)), int(np.sum(~x & y))
    n = only_a + only_b
    if n == 0:
        return 1.0
    k = min(only_a, only_b)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def is_binary(values: np.ndarray) -> bool:
    return bool(np.all((values == 0) | (values == 1)))


def compare_paired(
    a: Mapping[str, float], b: Mapping[str, float], resamples: int = RESAMPLES, seed: int = SEED
) -> dict:
    """B against A on the items both scored (item id -> score): B's mean minus A's with a paired bootstrap
    95% interval of that delta, and for 0/1 scores McNemar's exact p-value. Significant: the interval
    excludes 0 (bootstrap) or p < 0.05 (McNemar, binary scores: the test decides, the interval describes).

    Items only one side scored are counted (`only_a`, `only_b`), never paired.
    """
    common = sorted(set(a) & set(b))
    out: dict = {"n": len(common), "only_a": len(set(a) - set(b)), "only_b": len(set(b) - set(a))}
    if not common:
        return {
            **out,
            "a": None,
            "b": None,
            "delta": None,
            "low": None,
            "high": None,
            "p_value": None,
            "test": None,
            "significant": None,
        }
    x = np.array([a[i] for i in common], dtype=float)
    y = np.array([b[i] for i in common], dtype=float)
    diff = y - x
    low, high = bootstrap_interval(diff, resamples, seed)
    binary = is_binary(x) and is_binary(y)
    p_value = mcnemar_exact(x, y) if binary else None
    significant = p_value < ALPHA if p_value is not None else not (low <= 0 <= high)
    if not diff.any():  # identical on every item: nothing to resample
        significant = False
    return {
        **out,
        "a": float(x.mean()),
        "b": float(y.mean()),
        "delta": float(diff.mean()),
        "low": low,
        "high": high,
        "p_value": p_value,
        "test": "mcnemar_exact" if binary else "paired_bootstrap",
        "significant": bool(significant),
        "discordant": {"only_a": int(np.sum((x == 1) & (y == 0))), "only_b": int(np.sum((x == 0) & (y == 1)))}
        if binary
        else None,
    }


def unpaired(
    a: float, a_stderr: float | None, b: float, b_stderr: float | None, n: int | None = None
) -> dict:
    """B - A from two means and their standard errors alone (no per-item scores): a normal interval on the
    difference of independent means. With either stderr unknown nothing is claimed (significant None); with
    both zero, the delta is significant only if it is not zero."""
    delta = b - a
    base = {"n": n, "a": a, "b": b, "delta": delta, "p_value": None, "test": "unpaired_normal"}
    if a_stderr is None or b_stderr is None:
        return {**base, "low": None, "high": None, "significant": None}
    se = math.sqrt(a_stderr**2 + b_stderr**2)
    low, high = delta - Z95 * se, delta + Z95 * se
    if se == 0:
        return {**base, "low": delta, "high": delta, "significant": None}
    p_value = math.erfc(abs(delta) / se / math.sqrt(2))
    return {**base, "low": low, "high": high, "p_value": p_value, "significant": p_value < ALPHA}


Z95 = 1.959963984540054


def wilson_interval(p: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion p over n items: never collapses to a point at 0 or 1, so a
    small cell with no correct answer still shows how little it proves."""
    if n <= 0:
        raise ValueError("a proportion over no items has no interval")
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def score_interval(
    score: float | None, stderr: float | None, n: int, accuracy: bool
) -> tuple[float, float] | None:
    """A cell's 95% interval: Wilson for an accuracy (a proportion), else score ± 1.96 stderr; None when
    there is no score or nothing to base it on."""
    if score is None or n <= 0:
        return None
    if accuracy and 0.0 <= score <= 1.0:
        return wilson_interval(score, n)
    if stderr is None:
        return None
    return score - Z95 * stderr, score + Z95 * stderr
