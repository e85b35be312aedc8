"""Production readiness: the plan's go/no-go criteria, each PASS, FAIL or SKIP with the number behind it.

The readiness stage (the pipeline's last) fails `dvc repro` when a criterion fails, unless
`readiness.allow_unready` (or `--allow-unready`) says to carry on; the report shows the same checks.
"""

from __future__ import annotations

from pathlib import Path

from qwen_pipe.consolidate import error_rates

MAX_ERROR_RATE = 0.05
MAX_MEMORY_FRACTION = 0.80
MIN_TOKENS_PER_S = 100.0  # output tokens/s, on GPU hosts (the plan's target is for a GPU)


def _check(name: str, ok: bool | None, value: str, threshold: str, reason: str = "") -> dict:
    status = "SKIP" if ok is None else "PASS" if ok else "FAIL"
    return {"check": name, "status": status, "value": value, "threshold": threshold, "reason": reason}


def memory_in_use_gib(doc: dict) -> tuple[float | None, str]:
    """Memory the engine actually used in the coverage run, not what it reserved: vLLM takes its whole
    KV-cache pool up front (gpu_memory_utilization on a GPU, VLLM_CPU_KVCACHE_SPACE on a CPU), so the
    unused part of the pool is taken off the measured peak; the used part is the workload's tokens (all
    prompts in flight at once, prompt + new tokens) at the pool's bytes per token."""
    peak = doc.get("peak_memory_gib")
    if peak is None:
        return None, "not measured"
    pool = doc.get("kv_cache") or {}
    workload = doc.get("workload") or {}
    if not pool.get("gib") or not pool.get("tokens") or not workload.get("prompt_tokens"):
        return peak, "measured peak (no KV-cache pool to take off)"
    in_flight = workload["prompt_tokens"] + workload.get("output_tokens", 0)
    used = min(pool["gib"], pool["gib"] * in_flight / pool["tokens"])
    return max(peak - pool["gib"] + used, 0.0), (
        f"peak {peak:.2f} GiB less the unused KV-cache pool ({pool['gib']:.2f} GiB reserved, {used:.3f} GiB used)"
    )


def coverage_criteria(coverage: list[dict]) -> list[dict]:
    if not coverage:
        return [_check("models load", False, "no coverage result", "every model x preset loads")]
    loaded = [d for d in coverage if (d.get("checks") or {}).get("loaded", {}).get("status") == "PASS"]
    failed = sorted(f"{d['model']}/{d['preset']}" for d in coverage if d not in loaded)
    out = [
        _check(
            "models load",
            not failed,
            f"{len(loaded)}/{len(coverage)} configurations",
            "every model x preset loads and generates",
            f"did not load: {', '.join(failed)}" if failed else "",
        )
    ]
    on_gpu = [d for d in loaded if d.get("on_gpu") or d.get("device") == "gpu"]
    rates = {f"{d['model']}/{d['preset']}": d.get("output_tokens_per_s") or 0.0 for d in (on_gpu or loaded)}
    slow = [f"{name} {rate:,.0f}" for name, rate in rates.items() if rate <= MIN_TOKENS_PER_S]
    if on_gpu:
        value = f"{len(rates) - len(slow)}/{len(rates)} GPU configurations"
    elif rates:
        value = f"CPU host, not judged: {min(rates.values()):,.0f}-{max(rates.values()):,.0f} tokens/s"
    else:
        value = "nothing loaded"
    out.append(
        _check(
            f"throughput > {MIN_TOKENS_PER_S:.0f} tokens/s",
            None if not on_gpu else not slow,
            value,
            "GPU hosts only (the plan's target is for a GPU)",
            f"too slow: {', '.join(slow)}" if slow and on_gpu else "",
        )
    )
    over = []
    worst = 0.0
    for d in loaded:
        used, _ = memory_in_use_gib(d)
        total = d.get("device_total_gib")
        if used is None or not total:
            over.append(f"{d['model']}/{d['preset']} not measured")
            continue
        worst = max(worst, used / total)
        if used / total >= MAX_MEMORY_FRACTION:
            over.append(f"{d['model']}/{d['preset']} {used / total:.0%}")
    out.append(
        _check(
            f"memory < {MAX_MEMORY_FRACTION:.0%} of the device (in use)",
            not over if loaded else False,
            f"highest {worst:.1%} of the device",
            "memory actually used, the unused part of vLLM's pre-allocated KV-cache pool taken off",
            "; ".join(over),
        )
    )
    unclean = sorted(
        f"{d['model']}/{d['preset']}"
        for d in loaded
        if (d.get("checks") or {}).get("cleanup", {}).get("status") != "PASS"
    )
    out.append(
        _check(
            "memory back to baseline after each model",
            not unclean,
            f"{len(loaded) - len(unclean)}/{len(loaded)} configurations",
            "no engine process or memory left behind",
            ", ".join(unclean),
        )
    )
    return out


def error_criterion(rows: list[dict]) -> dict:
    errors = error_rates(rows)["overall"]
    failed_cells = sum(1 for r in rows if r["status"] == "failed")
    kinds = "".join(f", {count:,} {kind.replace('_', ' ')}" for kind, count in errors["kinds"].items())
    return _check(
        f"error rate < {MAX_ERROR_RATE:.0%}",
        errors["rate"] < MAX_ERROR_RATE if rows else False,
        f"{errors['rate']:.2%} ({errors['failed']:,}/{errors['requests']:,} requests{kinds}; "
        f"{failed_cells}/{len(rows)} cells failed)",
        "every failed request counted: truncated, prompt too long, sandbox timeout or crash, failed cells",
        "no evaluation result" if not rows else "",
    )


def validation_criterion(validate: dict | None) -> dict:
    if not validate:
        return _check("configurations valid", False, "no validate result", "every configuration passes")
    failed = [f"{c['model']}/{c['preset']}" for c in validate["checks"] if c["status"] != "PASS"]
    return _check(
        "configurations valid",
        validate["failed"] == 0,
        f"{validate['passed']}/{validate['configurations']} PASS",
        "every model x preset and every prompt + budget fits",
        f"FAIL: {', '.join(failed[:10])}{' ...' if len(failed) > 10 else ''}" if failed else "",
    )


def outputs_criterion(required: list[Path]) -> dict:
    missing = [str(p) for p in required if not p.is_file()]
    return _check(
        "every required output present",
        not missing,
        f"{len(required) - len(missing)}/{len(required)} files",
        "every metrics file, per-sample score file and report of the run",
        f"missing: {', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}" if missing else "",
    )


def criteria(
    validate: dict | None, coverage: list[dict], rows: list[dict], required: list[Path]
) -> list[dict]:
    """Every criterion: `coverage` the run's coverage documents, `rows` its consolidated cells
    (consolidate.cell_rows), `required` the files the run must have written."""
    return [
        validation_criterion(validate),
        *coverage_criteria(coverage),
        error_criterion(rows),
        outputs_criterion(required),
    ]


def verdict(checks: list[dict], allow_unready: bool) -> dict:
    failed = [c for c in checks if c["status"] == "FAIL"]
    return {"ready": not failed, "allowed_unready": bool(failed) and allow_unready, "checks": checks}


def failure_line(checks: list[dict]) -> str:
    """The failing criteria in one line: what failed and the number behind it."""
    return "; ".join(
        f"{c['check']}: {c['value']}{' (' + c['reason'] + ')' if c['reason'] else ''}"
        for c in checks
        if c["status"] == "FAIL"
    )
