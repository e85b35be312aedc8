"""Paired comparisons of saved results: the large model of a family against the small one (the scale stage),
a preset against the baseline preset of the same model, or any two model x preset pairs (`qwen-pipe compare`).

Every comparison is on exactly the same items: per dataset the per-sample scores of both sides
(data/scores/<model>/<preset>/<dataset>.jsonl) are paired by sample id (qwen_pipe/scoring/paired.py). Where
a side has no per-sample file the comparison falls back to the two standard errors, and says so (`test`).
Only accuracies (the task's `primary_is_accuracy`) enter the effect across datasets.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

from qwen_pipe.config import Params
from qwen_pipe.consolidate import estimated_seconds
from qwen_pipe.io import read_jsonl
from qwen_pipe.scoring.paired import Z95, compare_paired, unpaired

SCORES = Path("data/scores")


def family_pairs(params: Params, models: list[str]) -> list[tuple[str, str, str]]:
    """(family, small, large) for every family with one small and one large model in `models`."""
    by_family: dict[str, dict[str, str]] = {}
    for name in models:
        spec = params.model(name)
        by_family.setdefault(spec.family, {})[spec.size_class] = name
    return [
        (f, s["small"], s["large"]) for f, s in sorted(by_family.items()) if {"small", "large"} <= s.keys()
    ]


def item_scores(scores: Path, model: str, preset: str, dataset: str, metric: str) -> dict[str, float] | None:
    """Sample id -> its score on `metric` (the mean over repeats), or None without a per-sample file."""
    return _file_scores(scores / model / preset / f"{dataset}.jsonl", metric)


def doc_scores(doc: dict, scores: Path, metric: str) -> dict[str, float] | None:
    """A cell's per-sample scores: the judge's per-sample file for a judged cell, else the score stage's."""
    if doc.get("per_sample_file"):
        return _file_scores(Path(doc["per_sample_file"]), metric)
    return item_scores(scores, doc["model"], doc["preset"], doc["dataset"], metric)


def _file_scores(path: Path, metric: str) -> dict[str, float] | None:
    if not path.is_file():
        return None
    stat = path.stat()
    rows = _metric_rows(path, stat.st_mtime_ns, stat.st_size)
    return {sample: float(metrics[metric]) for sample, metrics in rows if metric in metrics}


@functools.lru_cache(maxsize=64)
def _metric_rows(path: Path, mtime_ns: int, size: int) -> tuple[tuple[str, dict], ...]:
    """A per-sample file's (id, metrics) pairs, read once however many comparisons and metrics use it (the
    file's mtime and size are in the key: a rewritten file is read again)."""
    return tuple((row["id"], row["metrics"]) for row in read_jsonl(path))


def compare_cells(doc_a: dict, doc_b: dict, scores: Path = SCORES, metric: str | None = None) -> dict:
    """B against A on one dataset (two eval documents, merged with their run info) on `metric` (default: the
    primary one): paired where both per-sample files exist, else from the standard errors."""
    metric = metric or doc_a["primary_metric"]
    if metric == doc_a["primary_metric"] and doc_b["primary_metric"] != metric:
        raise ValueError(f"{doc_a['dataset']}: {metric} and {doc_b['primary_metric']} are not comparable")
    a, b = doc_scores(doc_a, scores, metric), doc_scores(doc_b, scores, metric)
    if a and b:
        result = compare_paired(a, b)
    else:
        side_a, side_b = _aggregate(doc_a, metric), _aggregate(doc_b, metric)
        n = min(side_a["n"] or 0, side_b["n"] or 0)
        result = unpaired(side_a["value"], side_a["stderr"], side_b["value"], side_b["stderr"], n)
    accuracy = bool(doc_a.get("accuracy", True)) and metric == doc_a["primary_metric"]
    kind = doc_a.get("metric_kind") or ("accuracy" if accuracy else "other")
    return {"metric": metric, "accuracy": accuracy, "kind": kind, **result}


def _aggregate(doc: dict, metric: str) -> dict:
    if metric == doc["primary_metric"]:
        return {"value": doc["score"], "stderr": doc["stderr"], "n": doc["n"]}
    return doc["metrics"][metric]


def disagreements(doc_a: dict, doc_b: dict, scores: Path = SCORES) -> dict[str, list[str]] | None:
    """The sample ids where A scored higher on the primary metric, and where B did (None without per-sample
    scores)."""
    metric = doc_a["primary_metric"]
    a, b = doc_scores(doc_a, scores, metric), doc_scores(doc_b, scores, metric)
    if not a or not b:
        return None
    common = sorted(set(a) & set(b))
    return {
        "only_a": [i for i in common if a[i] > b[i]],
        "only_b": [i for i in common if b[i] > a[i]],
    }


def compare_systems(
    evals_a: dict[str, dict],
    evals_b: dict[str, dict],
    datasets: list[str] | None = None,
    scores: Path = SCORES,
) -> dict:
    """B against A on every dataset both scored (`evals_x[dataset]` = eval document; failed cells left out),
    and the mean accuracy delta over the datasets whose metric is an accuracy."""
    names = sorted(
        d
        for d in set(evals_a) & set(evals_b)
        if (datasets is None or d in datasets) and _scored(evals_a[d]) and _scored(evals_b[d])
    )
    per_dataset = {d: compare_cells(evals_a[d], evals_b[d], scores) for d in names}
    return {"datasets": per_dataset, "mean_accuracy_delta": mean_delta(per_dataset)}


def _scored(doc: dict) -> bool:
    return doc.get("status") != "failed" and doc.get("score") is not None


def mean_delta(per_dataset: dict[str, dict]) -> dict | None:
    """The unweighted mean of the per-dataset accuracy deltas, with a normal 95% interval from theirs (the
    datasets are independent samples: var of the mean = sum of variances / k^2). Non-accuracies are left out
    and named."""
    used = {d: r for d, r in per_dataset.items() if r["accuracy"] and r["delta"] is not None}
    if not used:
        return None
    k = len(used)
    mean = sum(r["delta"] for r in used.values()) / k
    halves = [(r["high"] - r["low"]) / 2 if r["low"] is not None else None for r in used.values()]
    if None in halves:
        low = high = None
    else:
        half = Z95 * math.sqrt(sum((h / Z95) ** 2 for h in halves)) / k
        low, high = mean - half, mean + half
    return {
        "delta": mean,
        "low": low,
        "high": high,
        "significant": None if low is None else not (low <= 0 <= high),
        "datasets": sorted(used),
        "left_out": sorted(set(per_dataset) - set(used)),
    }


def seconds_per_correct(doc: dict, coverage: dict | None) -> float | None:
    """Generation cost of one correct answer: the cell's output tokens at the model x preset's measured
    throughput (coverage), over its correct answers. None for log-likelihood tasks (no output tokens), with no
    throughput, or no correct answer."""
    seconds = estimated_seconds(doc.get("output_tokens"), coverage)
    correct = (doc.get("score") or 0) * (doc.get("n") or 0)
    if seconds is None or correct <= 0 or not doc.get("accuracy", True):
        return None
    return seconds / correct


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
    scores: Path = SCORES,
) -> dict:
    """`evals[model][dataset]` (the preset's cells, merged with run info) and `coverage[model][preset]`."""
    p_small, p_large = params.model(small).parameters, params.model(large).parameters
    param_ratio = p_large / p_small
    cov_small = coverage.get(small, {}).get(preset, {})
    cov_large = coverage.get(large, {}).get(preset, {})
    comparison = compare_systems(evals.get(small, {}), evals.get(large, {}), scores=scores)
    for dataset, result in comparison["datasets"].items():
        cost_small = seconds_per_correct(evals[small][dataset], cov_small)
        cost_large = seconds_per_correct(evals[large][dataset], cov_large)
        result["cost_per_correct"] = {
            "small": cost_small,
            "large": cost_large,
            "ratio": _ratio(cost_large, cost_small),
        }
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
        **comparison,
    }


def compare_presets(
    model: str,
    baseline: str,
    preset: str,
    evals: dict[str, dict[str, dict]],
    coverage: dict[str, dict],
    scores: Path = SCORES,
) -> dict:
    """`preset` against `baseline` for one model: accuracy on the same items (`evals[preset][dataset]`),
    throughput, concurrent sequences the KV cache holds, and memory (`coverage[preset]`)."""
    cov_base, cov_other = coverage.get(baseline, {}), coverage.get(preset, {})
    comparison = compare_systems(evals.get(baseline, {}), evals.get(preset, {}), scores=scores)
    return {
        "model": model,
        "baseline": baseline,
        "preset": preset,
        "throughput_ratio": _ratio(cov_other.get("output_tokens_per_s"), cov_base.get("output_tokens_per_s")),
        "sequences_ratio": _ratio(_sequences(cov_other), _sequences(cov_base)),
        "memory_ratio": _ratio(cov_other.get("peak_memory_gib"), cov_base.get("peak_memory_gib")),
        **comparison,
    }


def _sequences(coverage: dict) -> float | None:
    """Sequences of the full context the KV cache holds at once (measured by coverage)."""
    return (coverage.get("kv_cache") or {}).get("sequences_at_max_model_len")


def compare_saved(
    evals: dict,
    a: tuple[str, str],
    b: tuple[str, str],
    datasets: list[str] | None,
    detailed: bool,
    scores: Path,
) -> dict:
    """`qwen-pipe compare`: model x preset B against A over saved results (`evals`: model -> preset -> dataset
    -> document, merged with run info). `detailed`: every metric of each dataset paired too, and the ids of
    the samples where the two disagree."""
    docs_a = evals.get(a[0], {}).get(a[1], {})
    docs_b = evals.get(b[0], {}).get(b[1], {})
    result = {"a": {"model": a[0], "preset": a[1]}, "b": {"model": b[0], "preset": b[1]}}
    result |= compare_systems(docs_a, docs_b, datasets, scores)
    if detailed:
        for dataset, row in result["datasets"].items():
            doc_a, doc_b = docs_a[dataset], docs_b[dataset]
            shared = sorted(m for m in set(_numeric(doc_a)) & set(_numeric(doc_b)))
            row["metrics"] = {m: compare_cells(doc_a, doc_b, scores, m) for m in shared}
            row["disagreements"] = disagreements(doc_a, doc_b, scores)
    return result


def _numeric(doc: dict) -> list[str]:
    """The metrics of a document that are a number with a stderr (not groups of them)."""
    return [
        name
        for name, value in (doc.get("metrics") or {}).items()
        if isinstance(value, dict) and isinstance(value.get("value"), int | float)
    ]
