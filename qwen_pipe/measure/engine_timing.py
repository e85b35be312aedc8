"""In the measuring process: load an engine and time generation on a fixed, recorded workload.

Timing model, on a fixed recorded workload of `coverage.prompts` distinct prompts of about
`coverage.prompt_tokens` tokens, every request sent at once (batch = the number of prompts):
- prefill pass: 1 new token per prompt. Its wall time is the time to first token at this batch, and
  prompt tokens / wall time is the prefill throughput;
- generation pass: exactly `max_new_tokens` per prompt (`ignore_eos`): output tokens / wall time;
- time per output token = (generation - prefill) / (max_new_tokens - 1), the decode step at this batch;
- the same two passes with a single prompt give the batch-1 latency.
Each pass gets its own prompts (a different leading tag), so prefix caching never shortcuts a prefill,
and each pass runs REPEATS times: the fastest counts (other programs on the host only slow a run down).
"""

from __future__ import annotations

import importlib
import resource
import time

from qwen_pipe.config import CoverageParams, EngineParams, Preset
from qwen_pipe.measure.gpu import Gpu, UtilisationSampler
from qwen_pipe.measure.memory import GIB
from qwen_pipe.models.spec import ModelSpec

WORKLOAD_TEXT = (
    "The committee reviewed the quarterly report, compared the figures with last year's results, and "
    "asked the finance team to explain every change larger than five percent before the next meeting. "
)
KV_DTYPE_BYTES = {"fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1}
DTYPE_BYTES = {"float32": 4}
REPEATS = 2  # timed runs per pass; the fastest counts


def workload(tokenizer, prompts: int, prompt_tokens: int, tag: str = "") -> list[str]:
    """Fixed, distinct prompts of about `prompt_tokens` tokens each; `tag` makes a fresh set (no cache hits)."""
    base = tokenizer.encode(WORKLOAD_TEXT * 8, add_special_tokens=False)
    out = []
    for i in range(prompts):
        ids = [base[(i * 7 + j) % len(base)] for j in range(prompt_tokens)]
        out.append(f"[{tag}{i}] " + tokenizer.decode(ids))
    return out


def import_framework(engine_name: str) -> float:
    """Import the engine's framework; returns the seconds it took (part of the engine's start-up)."""
    started = time.perf_counter()
    importlib.import_module("torch")
    if engine_name in ("vllm", "transformers"):
        importlib.import_module(engine_name)
    return time.perf_counter() - started


def load_engine(spec: ModelSpec, preset: Preset, engine_params: EngineParams, load_format: str):
    """(engine, tokenizer, seconds to load)."""
    from qwen_pipe.engines.registry import make_engine

    started = time.perf_counter()
    engine = make_engine(engine_params.name, spec, preset, engine_params, load_format=load_format)
    seconds = time.perf_counter() - started
    tokenizer = getattr(engine, "tokenizer", None)
    if tokenizer is None:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(spec.hf_id, trust_remote_code=spec.trust_remote_code)
    return engine, tokenizer, seconds


def timed_generate(engine, prompts: list[str], max_new_tokens: int) -> tuple[float, int, int]:
    """(seconds, prompt tokens, output tokens) of one engine call with exactly `max_new_tokens` per prompt."""
    from qwen_pipe.engines.base import GenerationRequest, SamplingParams

    sampling = SamplingParams(max_new_tokens=max_new_tokens, ignore_eos=True)
    started = time.perf_counter()
    results = engine.generate([GenerationRequest(p, sampling) for p in prompts])
    seconds = time.perf_counter() - started
    return seconds, sum(g.prompt_tokens for g in results), sum(g.output_tokens for g in results)


def kv_cache(engine, spec: ModelSpec) -> dict | None:
    """KV-cache capacity where the engine reports it (vLLM: blocks x block size)."""
    try:
        config = engine.llm.llm_engine.vllm_config.cache_config
        tokens = int(config.num_gpu_blocks * config.block_size)
    except Exception:  # noqa: BLE001 - not vLLM, or a version without these fields
        return None
    args = engine.info.args
    dtype_bytes = KV_DTYPE_BYTES.get(args.get("kv_cache_dtype", "auto")) or DTYPE_BYTES.get(
        args.get("dtype"), 2
    )
    max_len = args.get("max_model_len") or spec.architecture.max_position_embeddings
    return {
        "tokens": tokens,
        "gib": round(tokens * spec.architecture.kv_bytes_per_token(dtype_bytes) / GIB, 3),
        "sequences_at_max_model_len": round(tokens / max_len, 2),
    }


def time_engine(spec: dict, preset: dict, engine: dict, coverage: dict) -> dict:
    """Runs in the fresh process: load, warm up, then the timed passes (see the module docstring)."""
    spec_, preset_ = ModelSpec.model_validate(spec), Preset.model_validate(preset)
    engine_params, params = EngineParams.model_validate(engine), CoverageParams.model_validate(coverage)
    import_s = import_framework(engine_params.name)
    import torch

    on_gpu = torch.cuda.is_available()  # no CUDA context yet: vLLM may still fork its engine process
    gpu = Gpu.probe() if on_gpu else None
    engine_, tokenizer, load_s = load_engine(spec_, preset_, engine_params, params.load_format)
    n, length = params.prompts, params.max_new_tokens

    def best(prompts: int, new_tokens: int, tag: str) -> tuple[float, int, int]:
        """The faster of REPEATS runs, each on fresh prompts: other programs only ever slow a run down."""
        runs = [
            timed_generate(
                engine_, workload(tokenizer, prompts, params.prompt_tokens, f"{tag}{r}-"), new_tokens
            )
            for r in range(REPEATS)
        ]
        return min(runs)

    timed_generate(
        engine_, workload(tokenizer, n, params.prompt_tokens, "w"), 2
    )  # warm-up: allocations, graphs
    timed_generate(engine_, workload(tokenizer, 1, params.prompt_tokens, "v"), 2)  # and the batch-1 shapes
    prefill_s, prompt_tokens, _ = best(n, 1, "p")
    with UtilisationSampler(gpu) as utilisation:
        generate_s, _, output_tokens = best(n, length, "g")
    first_1, _, _ = best(1, 1, "s")
    generate_1, _, _ = best(1, length, "t")
    steps = max(length - 1, 1)
    result = {
        "engine": {"engine": engine_.info.engine, "version": engine_.info.version, "args": engine_.info.args},
        "framework_import_seconds": round(import_s, 3),
        "load_seconds": round(load_s, 3),
        "workload": {
            "prompts": n,
            "prompt_tokens_per_prompt": params.prompt_tokens,
            "prompt_tokens": prompt_tokens,
            "max_new_tokens": length,
            "output_tokens": output_tokens,
            "ignore_eos": True,
            "repeats": REPEATS,
            "statistic": "the fastest of the repeats, each on fresh prompts",
            "text": "WORKLOAD_TEXT of qwen_pipe/measure/engine_timing.py, rotated per prompt, with a per-pass tag",
        },
        "prefill_seconds": round(prefill_s, 4),
        "prefill_tokens_per_s": round(prompt_tokens / prefill_s, 1),
        "generation_seconds": round(generate_s, 3),
        "output_tokens_per_s": round(output_tokens / generate_s, 1),
        "latency": {
            "batch": {
                "batch_size": n,
                "time_to_first_token_s": round(prefill_s, 4),
                "time_per_output_token_s": round(max(generate_s - prefill_s, 0.0) / steps, 5),
            },
            "single": {
                "batch_size": 1,
                "time_to_first_token_s": round(first_1, 4),
                "time_per_output_token_s": round(max(generate_1 - first_1, 0.0) / steps, 5),
            },
        },
        "time_to_first_token_s": round(prefill_s, 4),
        "time_per_output_token_s": round(max(generate_s - prefill_s, 0.0) / steps, 5),
        "gpu_utilisation": utilisation.summary(),
        "kv_cache": kv_cache(engine_, spec_),
        "on_gpu": on_gpu,
    }
    if on_gpu:
        allocated, reserved = torch.cuda.max_memory_allocated(), torch.cuda.max_memory_reserved()
        # Zero when the model runs in an engine subprocess (vLLM's multiprocessing mode on GPU).
        result["framework_memory"] = {
            "source": "torch.cuda (this process)",
            "max_allocated_gib": round(allocated / GIB, 3) if allocated else None,
            "max_reserved_gib": round(reserved / GIB, 3) if reserved else None,
        }
        result["cuda_total_gib"] = round(torch.cuda.get_device_properties(0).total_memory / GIB, 3)
    engine_.close()
    result["child_max_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB, 3)
    return result
