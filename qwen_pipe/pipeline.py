"""Model x dataset cells: generate responses (in a child process), score them; shared by the DVC stages
and `qwen-pipe eval`.

Generation runs where an engine crash cannot take the caller down; its failure becomes a record in the
metrics, and the other cells go on. Responses and scores go through content-addressed caches, so a
rerun redoes only what is missing or changed.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from qwen_pipe.cache import ChunkStore
from qwen_pipe.config import Params
from qwen_pipe.evaluation import (
    GenerationSettings,
    ResponseCache,
    generate_records,
    score_records,
    select_samples,
)
from qwen_pipe.io import read_json, read_jsonl, write_json, write_jsonl
from qwen_pipe.models.spec import ModelSpec
from qwen_pipe.prompting import PromptRenderer, sha256_text
from qwen_pipe.provenance import provenance
from qwen_pipe.tasks import get_task
from qwen_pipe.tasks.base import GenerationTask, PromptStyle, Task

DATASETS_DIR = Path("data/datasets")
IN_PROCESS_ENGINES = {"oracle", "openai"}  # nothing in them can crash the interpreter


@dataclass(frozen=True)
class Layout:
    """Where a run's files go: the DVC pipeline's folders, or an output dir of `qwen-pipe eval`."""

    generations: Path
    scores: Path
    metrics: Path
    cache: Path

    def generation(self, model: str, dataset: str) -> Path:
        return self.generations / model / f"{dataset}.jsonl"

    def meta(self, model: str, dataset: str) -> Path:
        return self.generations / model / f"{dataset}.meta.json"

    def response_cache(self, model: str, dataset: str) -> Path:
        return self.cache / "generations" / model / dataset

    def score_cache(self, model: str, dataset: str) -> Path:
        return self.cache / "scores" / model / dataset


PIPELINE = Layout(Path("data/generations"), Path("data/scores"), Path("metrics/eval"), Path("data/cache"))


def output_layout(output_dir: Path, cache_dir: Path) -> Layout:
    return Layout(output_dir / "generations", output_dir / "scores", output_dir / "metrics", cache_dir)


def prompt_style(params: Params, spec: ModelSpec) -> PromptStyle:
    return PromptStyle(chat=spec.chat, enable_thinking=params.generate.thinking and spec.supports_thinking)


def generation_settings(params: Params, spec: ModelSpec) -> GenerationSettings:
    preset = params.preset_for(spec.name, params.generate.preset)
    return GenerationSettings(
        style=prompt_style(params, spec),
        seed=params.generate.seed,
        temperature=preset.temperature,
        top_p=preset.top_p,
        top_k=preset.top_k,
        presence_penalty=preset.presence_penalty,
        max_new_tokens=params.generate.max_new_tokens,
    )


def pick_samples(params: Params, dataset: str, records: list[dict], limit: int | None = None) -> list[dict]:
    limit = params.task_params(dataset).sample_limit if limit is None else limit
    return select_samples(records, limit, params.generate.sample_seed)


def _task_source_sha256(task: Task) -> str:
    """The source of every qwen_pipe module the task's classes come from (derived `_gen` classes have no
    `class` statement of their own, so whole modules are hashed)."""
    import inspect
    import sys

    modules = dict.fromkeys(c.__module__ for c in type(task).__mro__ if c.__module__.startswith("qwen_pipe."))
    return sha256_text("\n".join(inspect.getsource(sys.modules[name]) for name in modules))


def generate_model(
    params_data: dict,
    model: str,
    datasets: dict[str, tuple[list[dict], dict]],
    layout: Layout,
    engine_name: str,
) -> dict[str, dict]:
    """Generate every dataset for one model with one engine load; writes each cell's files.

    `datasets` maps a name to (samples to run, dataset info). Returns per dataset either the
    generation summary or {"failure": ...}. Meant to run in a child process (see isolation.py).
    """
    from qwen_pipe.engines import DeferredEngine, engine_identity, make_engine
    from qwen_pipe.models.identity import model_identity

    params = Params.model_validate(params_data)
    spec = params.model(model)
    preset = params.preset_for(model, params.generate.preset)
    engine = DeferredEngine(
        lambda: make_engine(engine_name, spec, preset, params.engine, seed=params.generate.seed),
        engine_name,
        spec.hf_id,
    )
    identity = None if engine_name == "oracle" else model_identity(spec)
    renderer = PromptRenderer(spec)
    outcomes: dict[str, dict] = {}
    try:
        for name, (samples, info) in datasets.items():
            task = get_task(name, shots=params.task_params(name).shots)
            cache = None
            if identity is not None:
                cache = ResponseCache(
                    layout.response_cache(model, name),
                    identity,
                    engine_identity(engine_name),
                    params.generate.flush_every,
                )
            try:
                records, meta = run_generation(params, spec, task, samples, engine, info, renderer, cache)
            except Exception as error:  # noqa: BLE001 - recorded; the next dataset runs
                outcomes[name] = {
                    "failure": failure_record("generate", model, name, params.generate.preset, error)
                }
                continue
            if cache is not None:
                cache.store.compact()
                meta["cache"] = {
                    "hits": cache.hits,
                    "misses": cache.misses,
                    "ignored_corrupt": cache.store.ignored,
                }
            write_jsonl(layout.generation(model, name), records)
            write_json(layout.meta(model, name), meta)
            outcomes[name] = {"samples": len(records), "seconds": meta["seconds"], "cache": meta.get("cache")}
    finally:
        engine.close()
    return outcomes


def run_generation(
    params: Params,
    spec: ModelSpec,
    task: Task,
    samples: list[dict],
    engine,
    dataset_info: dict,
    renderer: PromptRenderer | None = None,
    cache: ResponseCache | None = None,
) -> tuple[list[dict], dict]:
    """Generation records and their metadata (engine, settings, dataset, timing, provenance)."""
    settings = generation_settings(params, spec)
    renderer = renderer or PromptRenderer(spec)
    started = time.perf_counter()
    records = generate_records(task, samples, engine, renderer, settings, cache)
    seconds = time.perf_counter() - started
    chat = isinstance(task, GenerationTask) and settings.style.chat
    responses = [r for rec in records for r in rec["responses"]]
    meta = {
        "model": spec.name,
        "hf_id": spec.hf_id,
        "revision": spec.revision,
        "dataset": task.name,
        "dataset_info": dataset_info,
        "samples": len(samples),
        "shots": task.shots,
        "engine": asdict(engine.info),
        "preset": params.generate.preset,
        "settings": {**asdict(settings), "style": asdict(settings.style)},
        "chat_template_sha256": renderer.chat_template_sha256 if chat else None,
        "prompt_template_sha256": _task_source_sha256(task),
        "seconds": round(seconds, 3),
        "output_tokens": sum(r.get("output_tokens", 0) for r in responses),
        "errors": sum(1 for r in responses if r.get("finish_reason") == "prompt_too_long"),
        "requests": len(responses),
        "provenance": provenance(),
    }
    return records, meta


def failure_record(
    stage: str, model: str, dataset: str | None, preset: str | None, error: BaseException | dict
) -> dict:
    from qwen_pipe.errors import QwenPipeError

    if isinstance(error, dict):
        kind, message = error.get("type", "Error"), error.get("message", "")
    else:
        kind = type(error).__name__
        message = (
            error.line()
            if isinstance(error, QwenPipeError)
            else str(error).splitlines()[0][:500]
            if str(error)
            else ""
        )
    return {
        "stage": stage,
        "model": model,
        "dataset": dataset,
        "preset": preset,
        "error_type": kind,
        "message": message,
    }


def generate_isolated(
    params: Params, model: str, datasets: dict[str, tuple[list[dict], dict]], layout: Layout, engine_name: str
) -> dict[str, dict]:
    """generate_model in a child process (in-process for engines that cannot crash); a crash of the
    child becomes a failure record for each of its datasets, written where its outputs would be."""
    from qwen_pipe.isolation import run_isolated

    data = params.model_dump(by_alias=True)
    if engine_name in IN_PROCESS_ENGINES:
        outcomes = generate_model(data, model, datasets, layout, engine_name)
    else:
        outcome = run_isolated(generate_model, data, model, datasets, layout, engine_name)
        if outcome.ok:
            outcomes = outcome.value
        else:
            failure = failure_record("generate", model, None, params.generate.preset, outcome.failure)
            outcomes = {name: {"failure": {**failure, "dataset": name}} for name in datasets}
    for name, result in outcomes.items():
        layout.response_cache(model, name).mkdir(parents=True, exist_ok=True)  # a DVC output even when unused
        if "failure" in result:  # the score stage turns this into a failed metrics file
            write_jsonl(layout.generation(model, name), [])
            write_json(
                layout.meta(model, name), {"model": model, "dataset": name, "failure": result["failure"]}
            )
    return outcomes


def score_cell(
    task: Task, samples: list[dict], layout: Layout, model: str, flush_every: int = 64
) -> tuple[list[dict], dict]:
    """Score one cell's saved responses; a generation failure becomes a failed metrics document."""
    meta = read_json(layout.meta(model, task.name))
    layout.score_cache(model, task.name).mkdir(parents=True, exist_ok=True)  # a DVC output even when unused
    if "failure" in meta:
        result = {
            "model": model,
            "dataset": task.name,
            "status": "failed",
            "failure": meta["failure"],
            "primary_metric": task.primary_metric,
            "score": None,
            "stderr": None,
            "n": 0,
            "provenance": provenance(),
        }
        return [], result
    records = read_jsonl(layout.generation(model, task.name))
    style = PromptStyle(**meta["settings"]["style"])
    cache = ChunkStore(layout.score_cache(model, task.name))
    isolation, sandboxes = None, contextlib.nullcontext()
    if (
        task.kind == "code"
    ):  # warm sandboxes across the chunks; the isolation actually used goes in the metrics
        from qwen_pipe.sandbox import isolation_mode, keep_judges

        isolation, sandboxes = isolation_mode(), keep_judges()
    with sandboxes:
        rows, aggregate = score_records(task, samples, records, style, cache=cache, flush_every=flush_every)
    cache.compact()
    primary = aggregate[task.primary_metric]
    info = meta["dataset_info"]
    result = {
        "model": model,
        "dataset": task.name,
        "status": "ok",
        "primary_metric": task.primary_metric,
        "score": primary["value"],
        "stderr": primary["stderr"],
        "n": primary["n"],
        "metrics": aggregate,
        "embedded_sample": info.get("embedded_sample", False),
        "source": {k: info.get(k) for k in ("source", "origin", "split", "rows", "sha256")},
        "shots": meta["shots"],
        "thinking": style.enable_thinking,
        "chat": style.chat,
        "engine": meta["engine"],
        "preset": meta.get("preset"),
        "sampling": {k: v for k, v in meta["settings"].items() if k != "style"},
        "chat_template_sha256": meta.get("chat_template_sha256"),
        "prompt_template_sha256": meta.get("prompt_template_sha256"),
        "generation_seconds": meta["seconds"],
        "request_errors": meta.get("errors", 0),
        "requests": meta.get("requests", 0),
        "cache": meta.get("cache"),
        "sandbox": isolation,
        "provenance": provenance(),
    }
    return rows, result
