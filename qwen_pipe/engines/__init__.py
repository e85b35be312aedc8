"""Engines: vllm, transformers, openai (any OpenAI-compatible server) and oracle, chosen by name."""

from __future__ import annotations

from qwen_pipe.config import EngineParams, Preset
from qwen_pipe.engines.base import Engine
from qwen_pipe.errors import unknown_name
from qwen_pipe.models.spec import ModelSpec

ENGINES = ("vllm", "transformers", "openai", "oracle")


def make_engine(
    name: str,
    spec: ModelSpec,
    preset: Preset,
    engine_params: EngineParams,
    *,
    seed: int = 0,
    load_format: str = "auto",
) -> Engine:
    """Load `spec` in the named engine with the preset's arguments."""
    if name == "oracle":
        from qwen_pipe.engines.oracle import OracleEngine

        return OracleEngine(spec.name)
    if name == "vllm":
        from qwen_pipe.engines.vllm_engine import VLLMEngine

        args = preset.engine_args(spec.architecture.max_position_embeddings)
        if engine_params.enforce_eager is not None:
            args["enforce_eager"] = engine_params.enforce_eager
        return VLLMEngine(
            spec.hf_id,
            engine_args=args,
            revision=spec.revision,
            trust_remote_code=spec.trust_remote_code,
            seed=seed,
            load_format=load_format,
        )
    if name == "transformers":
        from qwen_pipe.engines.transformers_engine import TransformersEngine

        return TransformersEngine(
            spec.hf_id,
            dtype=preset.dtype,
            revision=spec.revision,
            trust_remote_code=spec.trust_remote_code,
            batch_size=preset.max_num_seqs,
            load_format=load_format,
        )
    if name == "openai":
        from qwen_pipe.engines.openai_engine import OpenAIEngine

        return OpenAIEngine(
            spec.hf_id,
            base_url=engine_params.base_url,
            api_key_env=engine_params.api_key_env,
            concurrency=engine_params.concurrency,
        )
    raise unknown_name("engine", name, ENGINES)
