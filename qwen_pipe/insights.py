"""Insights and recommendations: explicit rules over the analysis numbers, each printed with the numbers that
triggered it. A rule fires on a measured condition (a significant paired delta, an interval that holds 0, a
throughput ratio above 1); no sentence is written without its numbers, and each insight carries them
(`numbers`) beside its text. The rules' thresholds are the constants below.
"""

from __future__ import annotations

TRUNCATION_RATE = 0.01  # a cell above this counts cut-off answers in its score
ERROR_RATE = 0.05  # the plan's bound on failed requests
FASTER = 1.05  # a ratio above this is a throughput (or capacity) gain worth naming, below 1/FASTER a loss


def _pts(value: float) -> str:
    return f"{value * 100:+.1f} pts"


def _interval(result: dict) -> str:
    if result.get("low") is None:
        return "[interval undefined]"
    return f"[{result['low'] * 100:+.1f}, {result['high'] * 100:+.1f}]"


def _p(result: dict) -> str:
    return "" if result.get("p_value") is None else f", p = {result['p_value']:.3g}"


def _insight(rule: str, subject: str, text: str, **numbers) -> dict:
    return {"rule": rule, "subject": subject, "text": text, "numbers": numbers}


def scaling_insights(pair: dict) -> list[dict]:
    """Per dataset (accuracies only): the large model gains, loses or ties, with the paired interval and,
    where both costs are measured, the cost per correct answer; then the effect across datasets."""
    out = []
    subject = f"{pair['family']} {pair['preset']}"
    large, small = pair["large"], pair["small"]
    for dataset, r in sorted(pair["datasets"].items()):
        if r.get("kind") == "judge" and r["delta"] is not None:
            out.append(_judged(pair, dataset, r, subject))
            continue
        if not r["accuracy"] or r["delta"] is None:
            continue
        numbers = {
            "dataset": dataset,
            "delta": r["delta"],
            "low": r["low"],
            "high": r["high"],
            "p_value": r["p_value"],
            "n": r["n"],
            "test": r["test"],
        }
        cost = (r.get("cost_per_correct") or {}).get("ratio")
        at_cost = f" at {cost:.1f}x the cost per correct answer" if cost is not None else ""
        if r["significant"] and r["delta"] > 0:
            text = (
                f"{large} gains {_pts(r['delta'])} {_interval(r)} on {dataset} over {small}{_p(r)}{at_cost}"
            )
            out.append(_insight("scaling_gain", subject, text, cost_ratio=cost, **numbers))
        elif r["significant"] and r["delta"] < 0:
            text = f"{large} loses {_pts(r['delta'])} {_interval(r)} on {dataset} against {small}{_p(r)}{at_cost}"
            out.append(_insight("scaling_loss", subject, text, cost_ratio=cost, **numbers))
        else:
            verdict = "not significant" if r["significant"] is False else "significance undetermined"
            text = (
                f"{large} and {small} tie on {dataset}: {_pts(r['delta'])} {_interval(r)} ({verdict}{_p(r)}, "
                f"n = {r['n']})"
            )
            out.append(_insight("scaling_tie", subject, text, **numbers))
    mean = pair.get("mean_accuracy_delta")
    if mean:
        out.append(_overall(pair, mean, subject))
    return out


def _judged(pair: dict, dataset: str, r: dict, subject: str) -> dict:
    """A judge's score (MT-Bench's 1-10 rating, a win rate) in its own units, never mixed with accuracies."""
    large, small = pair["large"], pair["small"]
    numbers = {"dataset": dataset, "metric": r["metric"], "delta": r["delta"], "low": r["low"], "high": r["high"],
               "n": r["n"], "test": r["test"]}  # fmt: skip
    interval = "[interval undefined]" if r["low"] is None else f"[{r['low']:+.2f}, {r['high']:+.2f}]"
    said = f"{r['delta']:+.2f} {r['metric']} {interval} on {dataset} (judged)"
    if r["significant"] and r["delta"] > 0:
        return _insight("judge_gain", subject, f"{large} gains {said} over {small}", **numbers)
    if r["significant"] and r["delta"] < 0:
        return _insight("judge_loss", subject, f"{large} loses {said} against {small}", **numbers)
    verdict = "not significant" if r["significant"] is False else "significance undetermined"
    return _insight(
        "judge_tie", subject, f"{large} and {small} tie: {said} ({verdict}, n = {r['n']})", **numbers
    )


def _overall(pair: dict, mean: dict, subject: str) -> dict:
    large, small = pair["large"], pair["small"]
    throughput = pair.get("throughput_ratio")
    speed = f" at {throughput:.2f}x the throughput" if throughput is not None else ""
    numbers = {
        "delta": mean["delta"],
        "low": mean["low"],
        "high": mean["high"],
        "datasets": len(mean["datasets"]),
        "throughput_ratio": throughput,
    }
    over = f"over {len(mean['datasets'])} dataset(s)"
    if mean["significant"] and mean["delta"] > 0:
        text = (
            f"Recommendation: {large} where accuracy matters: {_pts(mean['delta'])} {_interval(mean)} mean "
            f"accuracy {over}{speed}"
        )
        return _insight("scaling_recommend_large", subject, text, **numbers)
    if mean["significant"] and mean["delta"] < 0:
        text = f"Recommendation: {small}: {large} is worse by {_pts(mean['delta'])} {_interval(mean)} {over}"
        return _insight("scaling_recommend_small", subject, text, **numbers)
    text = (
        f"Recommendation: {small}: no measurable gain of {large} {over} ({_pts(mean['delta'])} "
        f"{_interval(mean)}, not significant){speed}"
    )
    return _insight("scaling_recommend_small", subject, text, **numbers)


def preset_insights(row: dict) -> list[dict]:
    """A preset against the baseline preset of the same model. Unless its accuracy loss is significant (then
    never recommended): faster -> recommended for throughput-bound runs; not faster but holding more
    concurrent sequences -> recommended only where memory binds; neither -> no reason to switch."""
    mean = row.get("mean_accuracy_delta")
    if mean is None:
        return []
    subject = f"{row['model']} {row['preset']}"
    throughput, sequences = row.get("throughput_ratio"), row.get("sequences_ratio")
    numbers = {
        "throughput_ratio": throughput,
        "sequences_ratio": sequences,
        "memory_ratio": row.get("memory_ratio"),
        "delta": mean["delta"],
        "low": mean["low"],
        "high": mean["high"],
    }
    verdict = "significant" if mean["significant"] else "not significant"
    change = (
        f"{row['preset']} changes accuracy by {_pts(mean['delta'])} {_interval(mean)} ({verdict}) against "
    )
    change += f"{row['baseline']} on {row['model']}"
    speed = "" if throughput is None else f" at {throughput:.2f}x the throughput"
    if mean["significant"] and mean["delta"] < 0:
        text = f"{change}{speed}: keep {row['baseline']} where accuracy matters"
        return [_insight("preset_loses", subject, text, **numbers)]
    if throughput is not None and throughput > FASTER:
        text = f"{change} and serves {throughput:.2f}x the throughput: recommended for throughput-bound runs"
        return [_insight("preset_recommended", subject, text, **numbers)]
    if sequences is not None and sequences > FASTER:
        text = (
            f"{change} and holds {sequences:.2f}x the concurrent sequences in its KV cache (at its context "
            f"length){speed}: recommended only where memory binds, not for throughput"
        )
        return [_insight("preset_memory_bound", subject, text, **numbers)]
    text = f"{change}{speed}, with no throughput or capacity gain: no reason to switch"
    return [_insight("preset_no_gain", subject, text, **numbers)]


def coverage_preset_insights(coverage: dict[str, dict[str, dict]], baseline: str) -> list[dict]:
    """Where accuracy was generated under one preset only: per model, the fastest preset that loads and
    passes, against the baseline, by measured throughput (accuracy under it not measured, and said so)."""
    out = []
    for model, by_preset in sorted(coverage.items()):
        base = by_preset.get(baseline, {}).get("output_tokens_per_s")
        passing = {
            p: d["output_tokens_per_s"]
            for p, d in by_preset.items()
            if d.get("status") == "PASS" and d.get("output_tokens_per_s")
        }
        if not base or not passing:
            continue
        best = max(sorted(passing), key=passing.__getitem__)
        ratio = passing[best] / base
        if best == baseline or ratio <= FASTER:
            text = f"{baseline} is the fastest preset that passes coverage on {model} ({base:,.0f} tokens/s)"
            out.append(_insight("preset_fastest", model, text, preset=baseline, throughput_ratio=1.0))
            continue
        text = (
            f"{best} serves {ratio:.2f}x the throughput of {baseline} on {model} ({passing[best]:,.0f} vs "
            f"{base:,.0f} tokens/s); its accuracy was not measured: add it to generate.presets before switching"
        )
        out.append(_insight("preset_fastest", model, text, preset=best, throughput_ratio=ratio))
    return out


def quality_insights(rows: list[dict], errors: dict) -> list[dict]:
    """Cells whose truncation rate exceeds TRUNCATION_RATE; models whose error rate reaches ERROR_RATE."""
    out = []
    for row in rows:
        if row["status"] == "failed":
            text = f"{row['model']} x {row['preset']} x {row['dataset']}: no score, the cell failed"
            out.append(_insight("cell_failed", row["model"], text, dataset=row["dataset"]))
            continue
        if row["requests"] and row["truncated"] / row["requests"] > TRUNCATION_RATE:
            share = row["truncated"] / row["requests"]
            text = (
                f"{row['model']} x {row['preset']} x {row['dataset']}: {row['truncated']}/{row['requests']} "
                f"answers truncated ({share:.0%}): the score counts unfinished answers"
            )
            out.append(_insight("truncation", row["model"], text, dataset=row["dataset"], rate=share))
    for model, e in errors["by_model"].items():
        if e["rate"] >= ERROR_RATE:
            text = (
                f"{model}: error rate {e['rate']:.1%} ({e['failed']:,}/{e['requests']:,} requests), above the "
                f"{ERROR_RATE:.0%} bound"
            )
            out.append(_insight("error_rate", model, text, rate=e["rate"], failed=e["failed"]))
    return out


def all_insights(
    scaling: dict | None, rows: list[dict], errors: dict, coverage: dict, baseline: str
) -> list[dict]:
    scaling = scaling or {}
    out = [i for pair in scaling.get("pairs", []) for i in scaling_insights(pair)]
    preset_rows = scaling.get("presets", [])
    out += [i for row in preset_rows for i in preset_insights(row)]
    if not any(r.get("mean_accuracy_delta") for r in preset_rows):
        out += coverage_preset_insights(coverage, baseline)
    return out + quality_insights(rows, errors)
