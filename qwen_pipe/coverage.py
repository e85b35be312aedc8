"""Model coverage: does a model load under a preset, how fast does it run, how much memory does it take.

Each measurement runs in a fresh Python process (`qwen_pipe.measure.process`). The parent samples the
memory of the child's whole process tree (host RSS; GPU memory through NVML) while it runs, and after it
exits checks that memory went back to the baseline (the engine cleaned up). The engine's output goes to
the cell's log, `logs/coverage@<model>-<preset>.log`. What the child times, and how:
`qwen_pipe/measure/engine_timing.py`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from qwen_pipe.cells import COVERAGE_INFO_DIR
from qwen_pipe.config import CoverageParams, EngineParams, Params, Preset
from qwen_pipe.io import write_json
from qwen_pipe.measure.dummy_weights import spec_for_run
from qwen_pipe.measure.engine_timing import time_engine
from qwen_pipe.measure.gpu import Gpu
from qwen_pipe.measure.memory import GIB, Snapshot, snapshot
from qwen_pipe.measure.process import TIMEOUT_S, TreeMonitor, run_in_fresh_process
from qwen_pipe.models.spec import ModelSpec

COVERAGE_DIR = Path("metrics/coverage")
# What a coverage metrics file leaves to its run-info sidecar (`<info_dir>/<model>/<preset>.run.json`): what ran
# and how (not measurements), so `dvc metrics diff` shows a changed throughput, not a changed engine argument.
RUN_INFO = ("hf_id", "load_format", "dummy_weights", "weights", "device", "engine", "workload", "validation")
MIN_TOKENS_PER_S = 100.0
MAX_MEMORY_FRACTION = 0.80
# Cleanup, checked after the engine's process exited. Host memory cannot outlive a process except in
# processes that survive it or in shared memory, so those are checked exactly: no process of the engine's
# tree alive, and /dev/shm plus SysV segments grown by less than SHM_TOLERANCE_GIB. The machine-wide
# number (change of used memory minus change of the summed PSS of all processes) is recorded too, but
# other programs move it by up to ~1 GiB within seconds on a busy 2-core host, so it is only held to
# max(HOST_CLEANUP_TOLERANCE_GIB, half the engine's peak): a leak of the model's size still fails.
# On a GPU, device memory must be back within GPU_CLEANUP_TOLERANCE_GIB of the baseline.
SHM_TOLERANCE_GIB = 0.0625
HOST_CLEANUP_TOLERANCE_GIB = 1.0
GPU_CLEANUP_TOLERANCE_GIB = 0.25
CLEANUP_WAIT_S = 10.0


# --- the parent: one model x preset -------------------------------------------------------------------


def _check(ok: bool, value, threshold: str, **extra) -> dict:
    return {"status": "PASS" if ok else "FAIL", "value": value, "threshold": threshold, **extra}


def cleanup_check(
    before: Snapshot, monitor: TreeMonitor, gpu: Gpu | None, peak: int = 0, wait_s: float = CLEANUP_WAIT_S
) -> dict:
    """After the child exited: no process of its tree alive, and memory back to the baseline (see the
    constants above); `peak` is the engine's peak host memory in bytes."""
    host_tolerance = max(HOST_CLEANUP_TOLERANCE_GIB, 0.5 * peak / GIB)
    deadline = time.monotonic() + wait_s
    while True:
        survivors = monitor.survivors()
        after = snapshot(gpu)
        unexplained = ((after.used - before.used) - (after.processes_pss - before.processes_pss)) / GIB
        shm = (after.shm - before.shm) / GIB
        gpu_left = (after.gpu_used - before.gpu_used) / GIB if gpu and before.gpu_used is not None else None
        ok = (
            not survivors
            and shm < SHM_TOLERANCE_GIB
            and unexplained < host_tolerance
            and (gpu_left is None or gpu_left < GPU_CLEANUP_TOLERANCE_GIB)
        )
        if ok or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    state = {
        "engine_processes_left": survivors,
        "shared_memory_change_gib": round(shm, 4),
        "host_used_before_gib": round(before.used / GIB, 3),
        "host_used_after_gib": round(after.used / GIB, 3),
        "host_unexplained_gib": round(unexplained, 3),
        "host_tolerance_gib": round(host_tolerance, 3),
    }
    limits = f"no engine process left, shared memory < {SHM_TOLERANCE_GIB} GiB more"
    if gpu_left is not None:
        state.update(
            gpu_used_before_gib=round(before.gpu_used / GIB, 3),
            gpu_used_after_gib=round(after.gpu_used / GIB, 3),
            gpu_left_gib=round(gpu_left, 3),
        )
        value, threshold = (
            round(gpu_left, 3),
            f"< {GPU_CLEANUP_TOLERANCE_GIB} GiB of GPU memory left, {limits}",
        )
    else:
        value = round(unexplained, 3)
        threshold = f"< {round(host_tolerance, 3)} GiB of host memory unaccounted, {limits}"
    return {**_check(ok, value, threshold), "detail": state}


def measure_coverage(
    spec: ModelSpec,
    preset_name: str,
    preset: Preset,
    engine_params: EngineParams,
    coverage: CoverageParams,
    timeout_s: float = TIMEOUT_S,
    log: Path | None = None,
) -> dict:
    """Measure one model x preset in a fresh process (its output to `log`) and check the plan's thresholds."""
    run_spec, weights = spec_for_run(spec, coverage.load_format)
    gpu = Gpu.probe()
    before = snapshot(gpu)
    outcome = run_in_fresh_process(
        time_engine,
        {
            "spec": run_spec.model_dump(),
            "preset": preset.model_dump(),
            "engine": engine_params.model_dump(),
            "coverage": coverage.model_dump(),
        },
        gpu,
        before.gpu_used,
        timeout_s,
        log,
    )
    child_max_rss = int(outcome.payload.get("child_max_rss_gib", 0) * GIB) if outcome.status == "ok" else 0
    cleanup = cleanup_check(before, outcome.monitor, gpu, max(outcome.peak_rss, child_max_rss))
    result: dict = {
        "model": spec.name,
        "preset": preset_name,
        "hf_id": spec.hf_id,
        "load_format": coverage.load_format,
        "dummy_weights": coverage.load_format == "dummy",
        "weights": weights,
        "device": "gpu" if gpu else "cpu",
        "wall_seconds": round(outcome.wall_seconds, 2),
        "process_startup_seconds": round(outcome.startup_seconds, 3)
        if outcome.startup_seconds is not None
        else None,
        "child_exitcode": outcome.exitcode,
    }
    if outcome.status != "ok":
        result["error"] = outcome.payload
        reason = f"{outcome.payload['type']}: {outcome.payload['message']}"
        result["checks"] = {"loaded": {"status": "FAIL", "value": None, "reason": reason}, "cleanup": cleanup}
        result["status"] = "FAIL"
        return result
    payload = outcome.payload
    result.update(payload)
    peak_rss = max(outcome.peak_rss, child_max_rss)
    memory = {
        "peak_rss_gib": round(peak_rss / GIB, 3),
        "peak_rss_sampled_gib": round(outcome.peak_rss / GIB, 3),
    }
    if gpu:
        held = outcome.peak_gpu_process or outcome.peak_gpu_device
        memory.update(
            source=f"{gpu.source}: "
            + (
                "memory of the engine's processes"
                if outcome.peak_gpu_process
                else "device memory above the baseline"
            ),
            peak_gpu_process_gib=round(outcome.peak_gpu_process / GIB, 3),
            peak_gpu_device_above_baseline_gib=round(outcome.peak_gpu_device / GIB, 3),
        )
        total, peak = before.gpu_total or 0, held
        if payload["engine"]["engine"] == "vllm":
            memory["note"] = (
                f"vLLM pre-allocates gpu_memory_utilization={preset.gpu_memory_utilization} of the "
                "device for weights, activations and the KV-cache pool"
            )
    elif payload.get("on_gpu"):  # a GPU torch sees but NVML cannot: the framework's own counter
        framework = payload.get("framework_memory") or {}
        total, peak = payload["cuda_total_gib"] * GIB, (framework.get("max_reserved_gib") or 0) * GIB
        memory["source"] = "torch.cuda.max_memory_reserved (no NVML)"
        result["device"] = "gpu"
    else:
        total, peak = before.total, peak_rss
        memory["source"] = "host RSS of the engine's process tree (sampled) and the child's kernel max RSS"
    fraction = peak / total if total else float("nan")
    memory.update(
        peak_gib=round(peak / GIB, 3), device_total_gib=round(total / GIB, 2), fraction=round(fraction, 4)
    )
    result["memory"] = memory
    # Flat copies read by the report, the scaling stage and the performance matrix.
    result["peak_memory_gib"] = memory["peak_gib"]
    result["peak_rss_gib"] = memory["peak_rss_gib"]
    result["peak_gpu_allocated_gib"] = (payload.get("framework_memory") or {}).get("max_allocated_gib")
    result["memory_fraction"] = memory["fraction"]
    result["device_total_gib"] = memory["device_total_gib"]
    result["gpu_utilisation_mean"] = (payload.get("gpu_utilisation") or {}).get("mean")
    result["kv_cache_tokens"] = (payload.get("kv_cache") or {}).get("tokens")
    result["engine_start_seconds"] = round(
        (outcome.startup_seconds or 0.0) + payload["framework_import_seconds"] + payload["load_seconds"], 3
    )
    tokens_per_s = payload["output_tokens_per_s"]
    result["checks"] = {
        "loaded": _check(True, payload["load_seconds"], "loads and generates"),
        "tokens_per_s": _check(
            tokens_per_s > MIN_TOKENS_PER_S, tokens_per_s, f"> {MIN_TOKENS_PER_S} output tokens/s"
        ),
        "memory": _check(
            fraction < MAX_MEMORY_FRACTION,
            round(fraction, 4),
            f"< {MAX_MEMORY_FRACTION} of {result['device']} memory",
        ),
        "cleanup": cleanup,
    }
    result["status"] = "PASS" if all(c["status"] == "PASS" for c in result["checks"].values()) else "FAIL"
    return result


# --- a run: the stage's cell, or every cell the CLI names --------------------------------------------------


def cell_log(model: str, preset: str) -> Path:
    """The engine log of one cell, the same file for `dvc repro coverage@<model>-<preset>` and the CLI."""
    from qwen_pipe.console import log_path  # not at the top: it needs typer, gpu_check.sh runs without it

    return log_path(f"coverage@{model}-{preset}")


def run_coverage(
    params: Params,
    models: list[str],
    presets: list[str],
    settings: CoverageParams | None = None,
    output_dir: Path = COVERAGE_DIR,
    unfit: dict[tuple[str, str], dict] | None = None,
    echo: Callable[[str], None] | None = None,
    info_dir: Path = COVERAGE_INFO_DIR,
) -> list[dict]:
    """Measure each model x preset and write `output_dir/<model>/<preset>.json` (measurements) and its
    run-info sidecar `info_dir/<model>/<preset>.run.json`: what both the coverage stage and `qwen-pipe
    coverage` run; returns the full documents. A configuration in `unfit` ((model, preset) -> its failed
    validation) is recorded as not loaded and never started; in the pipeline the validate stage has
    already stopped such a run, the CLI passes what validation found."""
    settings = settings or params.coverage
    unfit = unfit or {}
    results = []
    for model in models:
        for preset in presets:
            check = unfit.get((model, preset))
            if check is not None:
                result = {
                    "model": model,
                    "preset": preset,
                    "status": "FAIL",
                    "validation": check,
                    "checks": {
                        "loaded": {"status": "FAIL", "value": None, "reason": "; ".join(check["reasons"])}
                    },
                }
            else:
                log = cell_log(model, preset)
                if echo:
                    echo(f"measuring {model} x {preset} (engine log: {log}) ...")
                spec, preset_params = params.model(model), params.preset_for(model, preset)
                result = measure_coverage(spec, preset, preset_params, params.engine, settings, log=log)
            write_json(
                output_dir / model / f"{preset}.json", {k: v for k, v in result.items() if k not in RUN_INFO}
            )
            write_json(
                info_dir / model / f"{preset}.run.json", {k: v for k, v in result.items() if k in RUN_INFO}
            )
            results.append(result)
    return results


def summary_line(result: dict) -> str:
    """One line per cell: load time, throughput, peak memory and the checks (the engine log's path)."""
    from qwen_pipe.console import fmt

    checks = result["checks"]
    failed = [name for name, check in checks.items() if check["status"] != "PASS"]
    if "load_seconds" in result:
        parts = [
            f"load {fmt(result['load_seconds'])} s",
            f"{fmt(result['output_tokens_per_s'])} tokens/s",
            f"peak {fmt(result['peak_memory_gib'])} GiB ({result['memory_fraction']:.1%} of {result['device']} memory)",
        ]
    else:
        parts = [f"not loaded: {checks['loaded'].get('reason')}"]
    parts.append(
        f"checks {len(checks) - len(failed)}/{len(checks)} PASS"
        + (f" (FAIL: {', '.join(failed)})" if failed else "")
    )
    line = f"{result['model']} x {result['preset']}: {result['status']}: {', '.join(parts)}"
    if "validation" not in result:
        line += f"; engine log {cell_log(result['model'], result['preset'])}"
    return line
