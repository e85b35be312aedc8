"""Consolidation: one row per model x dataset x protocol x preset of a run, a leaderboard with ties, and the
error rate overall and per model, from the eval documents (merged with their run info) and coverage."""

from __future__ import annotations

import math
from collections import defaultdict


def failed_count(doc: dict) -> int:
    """Requests of a cell that produced no usable answer, every kind counted (score.failed_requests)."""
    return sum((doc.get("failed_requests") or {}).values())


def cost_unit(coverage_doc: dict | None) -> str:
    return (
        "GPU-seconds"
        if (coverage_doc or {}).get("on_gpu") or (coverage_doc or {}).get("device") == "gpu"
        else "CPU-seconds"
    )


def estimated_seconds(output_tokens: int | None, coverage_doc: dict | None) -> float | None:
    rate = (coverage_doc or {}).get("output_tokens_per_s")
    return output_tokens / rate if output_tokens and rate else None


def cell_rows(evals: list[dict], coverage: dict[str, dict[str, dict]]) -> list[dict]:
    """The consolidated table: score, its 95% interval, n, truncations, failures and cost of every cell.

    Cost: `output_tokens` of every answer, and `cost_seconds`, those tokens at the model x preset's measured
    output throughput (coverage): device-seconds that do not depend on how many answers came from the response
    cache. `wall_seconds` is what generation took in this run (`cached` answers cost it nothing). Log-likelihood
    tasks generate no tokens: no cost estimate.
    """
    rows = []
    for doc in sorted(evals, key=lambda d: (d["model"], d.get("preset") or "", d["dataset"])):
        cov = coverage.get(doc["model"], {}).get(doc.get("preset") or "", {})
        rows.append(
            {
                "model": doc["model"],
                "preset": doc.get("preset"),
                "dataset": doc["dataset"],
                "protocol": doc.get("protocol") or "qwen-pipe",
                "metric": doc.get("primary_metric"),
                "accuracy": bool(doc.get("accuracy", True)),
                "status": doc.get("status", "ok"),
                "score": doc.get("score"),
                "low": doc.get("ci_low"),
                "high": doc.get("ci_high"),
                "n": doc.get("n") or 0,
                "requests": doc.get("requests") or 0,
                "judgments": doc.get("judgments")
                or 0,  # a judged cell's judge requests (metric kind "judge")
                "truncated": doc.get("truncated") or 0,
                "failed": failed_count(doc),
                "failed_by_kind": {k: v for k, v in (doc.get("failed_requests") or {}).items() if v},
                "cost_seconds": estimated_seconds(doc.get("output_tokens"), cov),
                "cost_unit": cost_unit(cov),
                "wall_seconds": doc.get("generation_seconds"),
                "cached": (doc.get("cache") or {}).get("hits"),
                "output_tokens": doc.get("output_tokens"),
                "embedded_sample": bool(doc.get("embedded_sample")),
            }
        )
    return rows


def leaderboard(rows: list[dict]) -> list[dict]:
    """Per protocol x preset: models ranked by their mean accuracy over the datasets every model of the group
    scored, with a 95% interval (from the cells' intervals, datasets independent); models whose intervals
    overlap share a rank (a tie), so a difference the data cannot tell apart is never ranked."""
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in rows:
        if row["accuracy"] and row["status"] != "failed" and row["score"] is not None:
            groups[(row["protocol"], row["preset"] or "–")].append(row)
    boards = []
    for (protocol, preset), members in sorted(groups.items()):
        by_model: dict[str, dict[str, dict]] = defaultdict(dict)
        for row in members:
            by_model[row["model"]][row["dataset"]] = row
        shared = sorted(set.intersection(*(set(cells) for cells in by_model.values())))
        if not shared:
            continue
        entries = [_entry(model, [cells[d] for d in shared]) for model, cells in by_model.items()]
        boards.append({"protocol": protocol, "preset": preset, "datasets": shared, "rows": _rank(entries)})
    return boards


def _entry(model: str, cells: list[dict]) -> dict:
    k = len(cells)
    mean = sum(c["score"] for c in cells) / k
    halves = [(c["high"] - c["low"]) / 2 for c in cells if c["low"] is not None and c["high"] is not None]
    if len(halves) < k:
        return {"model": model, "mean": mean, "low": None, "high": None}
    half = math.sqrt(sum(h * h for h in halves)) / k
    return {"model": model, "mean": mean, "low": max(0.0, mean - half), "high": min(1.0, mean + half)}


def _overlap(a: dict, b: dict) -> bool:
    if a["low"] is None or b["low"] is None:
        return a["mean"] == b["mean"]
    return a["low"] <= b["high"] and b["low"] <= a["high"]


def _rank(entries: list[dict]) -> list[dict]:
    """Best first; a model takes the rank of the best model whose interval overlaps its own."""
    ordered = sorted(entries, key=lambda e: (-e["mean"], e["model"]))
    out = []
    for i, entry in enumerate(ordered):
        tied = [o["model"] for o in ordered if o is not entry and _overlap(entry, o)]
        first = next(
            j for j, other in enumerate(ordered[: i + 1]) if other is entry or _overlap(entry, other)
        )
        out.append({**entry, "rank": first + 1, "tied_with": tied})
    return out


def error_rates(rows: list[dict]) -> dict:
    """Failed requests over all requests, overall and per model (every kind of failure counted; a judged
    cell's judgments are requests too)."""

    def rate(members: list[dict]) -> dict:
        requests = sum(r["requests"] + r.get("judgments", 0) for r in members)
        failed = sum(r["failed"] for r in members)
        kinds: dict[str, int] = defaultdict(int)
        for row in members:
            for kind, count in row["failed_by_kind"].items():
                kinds[kind] += count
        return {
            "rate": failed / requests if requests else 0.0,
            "failed": failed,
            "requests": requests,
            "kinds": dict(sorted(kinds.items())),
        }

    by_model: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_model[row["model"]].append(row)
    return {"overall": rate(rows), "by_model": {m: rate(members) for m, members in sorted(by_model.items())}}
