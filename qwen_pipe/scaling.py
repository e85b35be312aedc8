"""Scaling analysis: per family, the large model against the small one (accuracy, speed, memory, parameters)."""

from __future__ import annotations

import math

from qwen_pipe.config import Params


def family_pairs(params: Params, models: list[str]) -> list[tuple[str, str, str]]:
    """(family, small, large) for every family with one small and one large model in `models`."""
    by_family: dict[str, dict[str, str]] = {}
    for name in models:
        spec = params.model(name)
        by_family.setdefault(spec.family, {})[spec.size_class] = name
    return [
        (f, s["small"], s["large"]) for f, s in sorted(by_family.items()) if {"small", "large"} <= s.keys()
    ]


def _ratio(large: float | None, small: float | None) -> float | None:
    if large is None or small is None or small == 0:
        return None
    return large / small


def compare_pair(
    params: Params,
    family: str,
    small: str,
    large: str,
    evals: dict[str, dict[str, dict]],
    coverage: dict[str, dict[str, dict]],
    preset: str,
) -> dict:
    """`evals[model][dataset]` (the preset's cells) and `coverage[model][preset]` are metrics documents."""
    p_small, p_large = params.model(small).parameters, params.model(large).parameters
    param_ratio = p_large / p_small
    datasets = {}
    for dataset in sorted(set(evals.get(small, {})) & set(evals.get(large, {}))):
        a, b = evals[small][dataset], evals[large][dataset]
        delta = b["score"] - a["score"]
        undefined = a["stderr"] is None or b["stderr"] is None  # a cell of one sample has no stderr
        stderr = None if undefined else math.sqrt(a["stderr"] ** 2 + b["stderr"] ** 2)
        datasets[dataset] = {
            "metric": a["primary_metric"],
            "small": a["score"],
            "large": b["score"],
            "delta": delta,
            "delta_stderr": stderr,
            "significant": None
            if stderr is None
            else abs(delta) > 1.96 * stderr
            if stderr > 0
            else delta != 0,
            "delta_per_parameter_doubling": delta / math.log2(param_ratio) if param_ratio != 1 else None,
            "n": min(a["n"], b["n"]),
        }
    cov_small = coverage.get(small, {}).get(preset, {})
    cov_large = coverage.get(large, {}).get(preset, {})
    throughput_ratio = _ratio(cov_large.get("output_tokens_per_s"), cov_small.get("output_tokens_per_s"))
    memory_ratio = _ratio(cov_large.get("peak_memory_gib"), cov_small.get("peak_memory_gib"))
    return {
        "family": family,
        "small": small,
        "large": large,
        "parameters": {"small": p_small, "large": p_large, "ratio": param_ratio},
        "preset": preset,
        "throughput_ratio": throughput_ratio,
        # 1.0: throughput falls exactly in proportion to parameters; above 1: the large model is cheaper than that.
        "throughput_efficiency": throughput_ratio * param_ratio if throughput_ratio is not None else None,
        "memory_ratio": memory_ratio,
        # 1.0: memory grows exactly with parameters; below 1: fixed costs (runtime, KV cache) dominate.
        "memory_efficiency": memory_ratio / param_ratio if memory_ratio is not None else None,
        "datasets": datasets,
        "mean_delta": sum(d["delta"] for d in datasets.values()) / len(datasets) if datasets else None,
    }
