"""Model coverage: does a model load under a preset, how fast does it run, how much memory does it take.

Each measurement runs in a fresh child process; the parent checks afterwards that memory went back
to its baseline (the engine cleaned up).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import threading
import time
import traceback

import psutil

from qwen_pipe.config import CoverageParams, EngineParams, Preset
from qwen_pipe.engines.base import GenerationRequest, SamplingParams
from qwen_pipe.models.spec import ModelSpec

GIB = 1024**3
MIN_TOKENS_PER_S = 100.0
MAX_MEMORY_FRACTION = 0.80
CLEANUP_TOLERANCE_GIB = 0.5
WORKLOAD_TEXT = (
    "The committee reviewed the quarterly report, compared the figures with last year's results, and "
    "asked the finance team to explain every change larger than five percent before the next meeting. "
)


def workload(tokenizer, prompts: int, prompt_tokens: int) -> list[str]:
    """Fixed, distinct prompts of about `prompt_tokens` tokens each (no shared prefix to cache)."""
    base = tokenizer.encode(WORKLOAD_TEXT * 8, add_special_tokens=False)
    out = []
    for i in range(prompts):
        ids = [base[(i * 7 + j) % len(base)] for j in range(prompt_tokens)]
        out.append(f"{i}: " + tokenizer.decode(ids))
    return out


class MemorySampler:
    """Peak resident memory of this process and its children (CPU), and peak GPU memory, while running."""

    def __init__(self, interval_s: float = 0.05):
        self.interval_s = interval_s
        self.peak_rss = 0
        self.gpu_samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> int:
        me = psutil.Process()
        total = me.memory_info().rss
        for child in me.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += child.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_rss = max(self.peak_rss, self._rss())
            utilisation = gpu_utilisation()
            if utilisation is not None:
                self.gpu_samples.append(utilisation)
            self._stop.wait(self.interval_s)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_rss = max(self.peak_rss, self._rss())


def _nvml_handle():
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml, pynvml.nvmlDeviceGetHandleByIndex(0)
    except Exception:
        return None, None


def gpu_utilisation() -> float | None:
    nvml, handle = _nvml_handle()
    if handle is None:
        return None
    return float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)


def device_memory() -> dict:
    """Used and total memory of the device the engines run on (GPU 0, else host RAM)."""
    nvml, handle = _nvml_handle()
    if handle is not None:
        info = nvml.nvmlDeviceGetMemoryInfo(handle)
        return {"device": "gpu", "used_gib": info.used / GIB, "total_gib": info.total / GIB}
    memory = psutil.virtual_memory()
    return {"device": "cpu", "used_gib": (memory.total - memory.available) / GIB, "total_gib": memory.total / GIB}


def _measure(spec: ModelSpec, preset: Preset, engine_params: EngineParams, coverage: CoverageParams) -> dict:
    """Load, then time a prefill-only pass and a full generation pass over the fixed workload."""
    import torch

    from qwen_pipe.engines import make_engine

    on_gpu = torch.cuda.is_available()
    if on_gpu:
        torch.cuda.reset_peak_memory_stats()
    with MemorySampler() as sampler:
        started = time.perf_counter()
        engine = make_engine(engine_params.name, spec, preset, engine_params, load_format=coverage.load_format)
        load_s = time.perf_counter() - started
        tokenizer = getattr(engine, "tokenizer", None)
        if tokenizer is None:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(spec.hf_id, trust_remote_code=spec.trust_remote_code)
        prompts = workload(tokenizer, coverage.prompts, coverage.prompt_tokens)

        def run(max_new_tokens: int) -> tuple[float, list]:
            sampling = SamplingParams(max_new_tokens=max_new_tokens, ignore_eos=True)
            begin = time.perf_counter()
            results = engine.generate([GenerationRequest(p, sampling) for p in prompts])
            return time.perf_counter() - begin, results

        run(2)  # warm-up: first-call allocations and graph captures are not throughput
        prefill_s, prefill = run(1)
        generate_s, generated = run(coverage.max_new_tokens)
        info = engine.info
        kv_capacity = _kv_cache_tokens(engine)
        engine.close()
    prompt_tokens = sum(g.prompt_tokens for g in prefill)
    output_tokens = sum(g.output_tokens for g in generated)
    decode_s = max(generate_s - prefill_s, 1e-9)
    result = {
        "engine": {"engine": info.engine, "version": info.version, "args": info.args},
        "load_seconds": round(load_s, 3),
        "workload": {
            "prompts": len(prompts),
            "prompt_tokens": prompt_tokens,
            "max_new_tokens": coverage.max_new_tokens,
            "output_tokens": output_tokens,
        },
        "prefill_tokens_per_s": round(prompt_tokens / prefill_s, 1),
        "time_to_first_token_s": round(prefill_s, 4),  # the whole batch's first tokens, at this batch size
        "generation_seconds": round(generate_s, 3),
        "output_tokens_per_s": round(output_tokens / generate_s, 1),
        "time_per_output_token_s": round(decode_s / max(coverage.max_new_tokens - 1, 1), 5),
        "peak_rss_gib": round(sampler.peak_rss / GIB, 3),
        "gpu_utilisation_mean": round(sum(sampler.gpu_samples) / len(sampler.gpu_samples), 1)
        if sampler.gpu_samples
        else None,
        "kv_cache_tokens": kv_capacity,
    }
    if on_gpu:
        result["peak_gpu_allocated_gib"] = round(torch.cuda.max_memory_allocated() / GIB, 3)
    return result


def _kv_cache_tokens(engine) -> int | None:
    """KV-cache capacity in tokens where the engine reports it (vLLM's block count x block size)."""
    try:
        config = engine.llm.llm_engine.vllm_config.cache_config
        return int(config.num_gpu_blocks * config.block_size)
    except Exception:
        return None


def _child(queue, spec_json: str, preset_json: str, engine_json: str, coverage_json: str) -> None:
    try:
        result = _measure(
            ModelSpec.model_validate_json(spec_json),
            Preset.model_validate_json(preset_json),
            EngineParams.model_validate_json(engine_json),
            CoverageParams.model_validate_json(coverage_json),
        )
        queue.put(("ok", result))
    except BaseException as error:
        queue.put(("error", {"type": type(error).__name__, "message": str(error)[:500], "trace": traceback.format_exc()[-2000:]}))


def measure_coverage(
    spec: ModelSpec, preset_name: str, preset: Preset, engine_params: EngineParams, coverage: CoverageParams
) -> dict:
    """Measure one model x preset in a fresh process and check the plan's thresholds."""
    before = device_memory()
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(
        target=_child,
        args=(queue, spec.model_dump_json(), preset.model_dump_json(), engine_params.model_dump_json(), coverage.model_dump_json()),
    )
    started = time.perf_counter()
    child.start()
    status, payload = "error", {"type": "ChildDied", "message": "the measuring process ended without a result"}
    while child.is_alive() or not queue.empty():
        try:
            status, payload = queue.get(timeout=1.0)
            break
        except Exception:
            continue
    child.join()
    if status == "error" and child.exitcode not in (0, None):
        payload.setdefault("exitcode", child.exitcode)
    time.sleep(0.5)
    after = device_memory()
    leftover = after["used_gib"] - before["used_gib"]
    result: dict = {
        "model": spec.name,
        "preset": preset_name,
        "hf_id": spec.hf_id,
        "load_format": coverage.load_format,
        "dummy_weights": coverage.load_format == "dummy",
        "wall_seconds": round(time.perf_counter() - started, 2),
        "memory_before_gib": round(before["used_gib"], 3),
        "memory_after_gib": round(after["used_gib"], 3),
        "device": before["device"],
        "device_total_gib": round(before["total_gib"], 2),
        "child_exitcode": child.exitcode,
    }
    if status == "ok":
        result.update(payload)
        peak = payload.get("peak_gpu_allocated_gib") if before["device"] == "gpu" else payload["peak_rss_gib"]
        fraction = peak / before["total_gib"]
        result["memory_fraction"] = round(fraction, 4)
        result["checks"] = {
            "loaded": {"status": "PASS", "value": payload["load_seconds"]},
            "tokens_per_s": _check(payload["output_tokens_per_s"] > MIN_TOKENS_PER_S, payload["output_tokens_per_s"], f"> {MIN_TOKENS_PER_S}"),
            "memory": _check(fraction < MAX_MEMORY_FRACTION, round(fraction, 4), f"< {MAX_MEMORY_FRACTION}"),
            "cleanup": _check(leftover < CLEANUP_TOLERANCE_GIB and child.exitcode == 0, round(leftover, 3), f"< {CLEANUP_TOLERANCE_GIB} GiB left"),
        }
    else:
        result["error"] = payload
        result["checks"] = {"loaded": {"status": "FAIL", "value": None, "reason": f"{payload['type']}: {payload['message']}"}}
    result["status"] = "PASS" if all(c["status"] == "PASS" for c in result["checks"].values()) else "FAIL"
    return result


def _check(ok: bool, value, threshold: str) -> dict:
    return {"status": "PASS" if ok else "FAIL", "value": value, "threshold": threshold}

