"""Aggregate statistics: means with their standard error, and pass@k."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence


def mean_and_stderr(values: Sequence[float]) -> dict:
    """Mean, standard error of the mean (sample std, ddof=1, over sqrt(n)) and n.

    With one value the standard error is undefined, not 0 (None: the report shows "–"); with none, so is the mean.
    """
    n = len(values)
    if n == 0:
        return {"value": None, "stderr": None, "n": 0}
    mean = sum(values) / n
    if n == 1:
        return {"value": mean, "stderr": None, "n": 1}
    variance = sum((v - mean) ** 2 for v in values) / (n - 1)
    return {"value": mean, "stderr": math.sqrt(variance / n), "n": n}


def group_means(pairs: Iterable[tuple[str, float]]) -> dict[str, dict]:
    """mean_and_stderr of the values of each group (MMLU subjects, BBH subtasks, MMLU-Redux error types), by
    group name."""
    groups: dict[str, list[float]] = defaultdict(list)
    for group, value in pairs:
        groups[group].append(value)
    return {group: mean_and_stderr(values) for group, values in sorted(groups.items())}


def macro_average(groups: dict[str, dict], n: int) -> dict:
    """The unweighted mean of the groups' means (MMLU subjects, BBH subtasks) over `n` samples in all.

    The group means are independent, so var(mean of k) = sum of their variances / k^2; undefined (None) when
    any group's is (a group of one sample).
    """
    k = len(groups)
    if k == 0:
        return {"value": None, "stderr": None, "n": 0}
    errors = [g["stderr"] for g in groups.values()]
    return {
        "value": sum(g["value"] for g in groups.values()) / k,
        "stderr": None if None in errors else math.sqrt(sum(e**2 for e in errors)) / k,
        "n": n,
    }


# The pass@k reported by the code tasks and score-code: each k that every problem has enough samples for.
PASS_AT_K = (1, 10, 100)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem with n samples of which c pass (Chen et al., 2021)."""
    if n < k:
        raise ValueError(f"pass@{k} needs at least {k} samples per problem, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def rate(count: int, total: int) -> float | None:
    """count / total, or None when there is nothing to divide by."""
    return count / total if total else None


def repeat_spread(values: Sequence[float | None]) -> dict:
    """A score measured several times (sampled repeats, repeated judgments): each value, their mean, median,
    sample standard deviation and half range (None where undefined; missing values are left out)."""
    present = [v for v in values if v is not None and not math.isnan(v)]
    n = len(present)
    mean = sum(present) / n if n else None
    std = math.sqrt(sum((v - mean) ** 2 for v in present) / (n - 1)) if n > 1 else None
    return {
        "n": len(values),
        "values": list(values),
        "mean": mean,
        "median": statistics.median(present) if n else None,
        "std": std,
        "half_range": (max(present) - min(present)) / 2 if n else None,
    }
