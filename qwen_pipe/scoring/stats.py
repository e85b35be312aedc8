"""Aggregate statistics: means with their standard error, and pass@k."""

from __future__ import annotations

import math
from collections.abc import Sequence


def mean_and_stderr(values: Sequence[float]) -> dict:
    """Mean, standard error of the mean (sample std, ddof=1, over sqrt(n)) and n."""
    n = len(values)
    if n == 0:
        return {"value": float("nan"), "stderr": float("nan"), "n": 0}
    mean = sum(values) / n
    if n == 1:
        return {"value": mean, "stderr": 0.0, "n": 1}
    variance = sum((v - mean) ** 2 for v in values) / (n - 1)
    return {"value": mean, "stderr": math.sqrt(variance / n), "n": n}


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem with n samples of which c pass (Chen et al., 2021)."""
    if n < k:
        raise ValueError(f"pass@{k} needs at least {k} samples per problem, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))
