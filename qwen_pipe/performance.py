"""The performance matrix (model x preset, from the coverage metrics) and how cost grows with work.

Cost scaling loads one model once, in a fresh process, and times generation while the number of prompts
(at a fixed output length) and then the output length (at a fixed number of prompts) doubles. Every point
uses new prompts (no prefix-cache hits) and exactly its output length (`ignore_eos`); each batch size is
warmed up untimed first (the first run of a new shape sets up kernels), and each point is the fastest of
three runs, so a moment of load from other programs does not bend the curve.
"""

from __future__ import annotations

from pathlib import Path

from qwen_pipe.config import CoverageParams, EngineParams, Params, Preset
from qwen_pipe.console import fmt, log_path
from qwen_pipe.errors import QwenPipeError
from qwen_pipe.io import write_json
from qwen_pipe.measure.dummy_weights import spec_for_run
from qwen_pipe.measure.engine_timing import import_framework, load_engine, timed_generate, workload
from qwen_pipe.measure.gpu import Gpu
from qwen_pipe.measure.process import TIMEOUT_S, run_in_fresh_process
from qwen_pipe.models.spec import ModelSpec
from qwen_pipe.plots import plot_cost_scaling, plot_performance_matrix

SWEEP_REPEATS = 3  # timed runs per point; the fastest counts
MATRIX_FIELDS = (
    "status",
    "device",
    "dummy_weights",
    "output_tokens_per_s",
    "prefill_tokens_per_s",
    "time_to_first_token_s",
    "time_per_output_token_s",
    "peak_memory_gib",
    "memory_fraction",
    "gpu_utilisation_mean",
    "load_seconds",
    "engine_start_seconds",
    "kv_cache_tokens",
)


def performance_matrix(coverage: dict[str, dict[str, dict]], models: list[str], presets: list[str]) -> dict:
    """One row per model x preset (`coverage[model][preset]` is a coverage metrics document)."""
    rows, missing = [], []
    for model in models:
        for preset in presets:
            doc = coverage.get(model, {}).get(preset)
            if doc is None:
                missing.append(f"{model}/{preset}")
                continue
            row = {"model": model, "preset": preset, **{key: doc.get(key) for key in MATRIX_FIELDS}}
            row["checks"] = {name: check["status"] for name, check in doc.get("checks", {}).items()}
            rows.append(row)
    best = {}
    for model in models:
        measured = [r for r in rows if r["model"] == model and r["output_tokens_per_s"] is not None]
        if measured:
            top = max(measured, key=lambda r: r["output_tokens_per_s"])
            best[model] = {"preset": top["preset"], "output_tokens_per_s": top["output_tokens_per_s"]}
    return {
        "rows": rows,
        "best_preset": best,
        "missing": missing,
        "configurations": len(rows),
        "passed": sum(r["status"] == "PASS" for r in rows),
    }


def write_performance_matrix(
    coverage: dict[str, dict[str, dict]], models: list[str], presets: list[str], out: Path, figure: Path
) -> dict:
    """The matrix written to `out`, with its figure: what the perf_matrix stage and `qwen-pipe coverage` write."""
    matrix = performance_matrix(coverage, models, presets)
    plot_performance_matrix(matrix, figure)
    document = {**matrix, "figure": str(figure)}
    write_json(out, document)
    return document


def doubling(start: int, stop: int) -> list[int]:
    """start, 2 start, 4 start, ... up to stop, with stop itself always last."""
    values, value = [], max(start, 1)
    while value < stop:
        values.append(value)
        value *= 2
    return [*values, stop]


def sweep_plan(coverage: CoverageParams) -> dict:
    """Prompt counts 1 .. 2 x coverage.prompts; output lengths 16 .. 2 x coverage.max_new_tokens."""
    return {
        "prompt_counts": doubling(1, 2 * coverage.prompts),
        "fixed_max_new_tokens": coverage.max_new_tokens,
        "output_lengths": doubling(min(16, coverage.max_new_tokens), 2 * coverage.max_new_tokens),
        "fixed_prompts": coverage.prompts,
        "prompt_tokens": coverage.prompt_tokens,
        "repeats": SWEEP_REPEATS,
    }


def linear_fit(xs: list[float], ys: list[float]) -> dict:
    """Least squares y = intercept + slope x."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else 0.0
    return {"intercept": round(my - slope * mx, 5), "slope": round(slope, 6)}


def sweep_child(spec: dict, preset: dict, engine: dict, coverage: dict, plan: dict) -> dict:
    """Runs in a fresh process: load once, then time every point of the plan."""
    spec_, preset_ = ModelSpec.model_validate(spec), Preset.model_validate(preset)
    engine_params, params = EngineParams.model_validate(engine), CoverageParams.model_validate(coverage)
    import_framework(engine_params.name)
    engine_, tokenizer, load_s = load_engine(spec_, preset_, engine_params, params.load_format)
    tag = iter(range(10**6))

    def point(prompts: int, length: int) -> dict:
        # A batch size seen for the first time is slow (kernels are set up per shape): warm it up untimed.
        timed_generate(engine_, workload(tokenizer, prompts, plan["prompt_tokens"], f"c{next(tag)}-"), 2)
        best = None
        for _ in range(plan["repeats"]):
            texts = workload(tokenizer, prompts, plan["prompt_tokens"], f"c{next(tag)}-")
            seconds, prompt_tokens, output_tokens = timed_generate(engine_, texts, length)
            if best is None or seconds < best[0]:
                best = (seconds, prompt_tokens, output_tokens)
        seconds, prompt_tokens, output_tokens = best
        return {
            "prompts": prompts,
            "max_new_tokens": length,
            "wall_seconds": round(seconds, 4),
            "prompt_tokens": prompt_tokens,
            "output_tokens": output_tokens,
            "output_tokens_per_s": round(output_tokens / seconds, 1),
            "seconds_per_prompt": round(seconds / prompts, 5),
        }

    timed_generate(
        engine_, workload(tokenizer, plan["fixed_prompts"], plan["prompt_tokens"], "w"), 2
    )  # warm-up
    by_prompts = [point(n, plan["fixed_max_new_tokens"]) for n in plan["prompt_counts"]]
    by_length = [point(plan["fixed_prompts"], length) for length in plan["output_lengths"]]
    info = engine_.info
    engine_.close()
    return {
        "engine": {"engine": info.engine, "version": info.version, "args": info.args},
        "load_seconds": round(load_s, 3),
        "by_prompts": by_prompts,
        "by_output_length": by_length,
    }


def measure_cost_scaling(
    spec: ModelSpec,
    preset_name: str,
    preset: Preset,
    engine_params: EngineParams,
    coverage: CoverageParams,
    timeout_s: float = TIMEOUT_S,
    log: Path | None = None,
) -> dict:
    """Generation time and tokens/s against the number of prompts and against the output length; the
    engine's output goes to `log`."""
    run_spec, weights = spec_for_run(spec, coverage.load_format)
    plan = sweep_plan(coverage)
    outcome = run_in_fresh_process(
        sweep_child,
        {
            "spec": run_spec.model_dump(),
            "preset": preset.model_dump(),
            "engine": engine_params.model_dump(),
            "coverage": coverage.model_dump(),
            "plan": plan,
        },
        Gpu.probe(),
        timeout_s=timeout_s,
        log=log,
    )
    result = {
        "model": spec.name,
        "preset": preset_name,
        "load_format": coverage.load_format,
        "dummy_weights": coverage.load_format == "dummy",
        "weights": weights,
        "plan": plan,
        "wall_seconds": round(outcome.wall_seconds, 2),
    }
    if outcome.status != "ok":
        return {**result, "status": "FAIL", "error": outcome.payload}
    payload = outcome.payload
    by_prompts, by_length = payload["by_prompts"], payload["by_output_length"]
    last, before_last = by_prompts[-1], by_prompts[-2] if len(by_prompts) > 1 else by_prompts[-1]
    extra = last["prompts"] - before_last["prompts"]
    length_fit = linear_fit([p["max_new_tokens"] for p in by_length], [p["wall_seconds"] for p in by_length])
    return {
        **result,
        "status": "PASS",
        **payload,
        "fits": {
            # Time grows little while the batch has room; the slope between the two largest counts is the
            # marginal cost of one more prompt.
            "wall_vs_prompts": {
                "single_prompt_seconds": by_prompts[0]["wall_seconds"],
                "marginal_seconds_per_prompt": round(
                    (last["wall_seconds"] - before_last["wall_seconds"]) / extra, 5
                )
                if extra
                else None,
            },
            # wall = intercept + slope x output length: the slope is one decode step of the whole batch.
            "wall_vs_output_length": {**length_fit, "unit": "seconds per decode step of the batch"},
        },
        "peak_output_tokens_per_s": max(p["output_tokens_per_s"] for p in by_prompts + by_length),
        "batching_gain": round(
            by_prompts[-1]["output_tokens_per_s"] / by_prompts[0]["output_tokens_per_s"], 2
        ),
    }


def cost_scaling_log() -> Path:
    return log_path("cost_scaling")


def run_cost_scaling(params: Params, model: str | None, out: Path, figure: Path) -> dict:
    """The cost_scaling stage: the sweep of `model` (default: params `cost_scaling.model`) under
    `cost_scaling.preset`, written to `out` with its figure; a failed sweep is written, then raised."""
    if params.cost_scaling is None:
        raise QwenPipeError(
            "params.yaml has no cost_scaling group",
            "add e.g. `cost_scaling: {model: tiny_small, preset: balanced}`",
        )
    model = model or params.cost_scaling.model
    preset = params.cost_scaling.preset
    result = measure_cost_scaling(
        params.model(model),
        preset,
        params.preset_for(model, preset),
        params.engine,
        params.coverage,
        log=cost_scaling_log(),
    )
    if result["status"] != "PASS":
        write_json(out, result)
        error = result["error"]
        raise QwenPipeError(
            f"cost scaling of {model} failed: {error['type']}: {error['message']}",
            f"see the engine's log, {cost_scaling_log()}",
        )
    plot_cost_scaling(result, figure)
    document = {**result, "figure": str(figure)}
    write_json(out, document)
    return document


def cost_scaling_line(result: dict) -> str:
    fit = result["fits"]["wall_vs_prompts"]
    return (
        f"{result['model']} x {result['preset']}: peak {fmt(result['peak_output_tokens_per_s'])} tokens/s, "
        f"batching gain x{fmt(result['batching_gain'])}, {fmt(fit['marginal_seconds_per_prompt'])} s per extra "
        f"prompt; engine log {cost_scaling_log()}"
    )
