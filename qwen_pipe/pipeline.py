"""One model x dataset cell: generate responses, score them; shared by the DVC stages and `qwen-pipe eval`."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

from qwen_pipe.config import Params
from qwen_pipe.engines.base import Engine
from qwen_pipe.evaluation import GenerationSettings, generate_records, score_records, select_samples
from qwen_pipe.models.spec import ModelSpec
from qwen_pipe.prompting import PromptRenderer
from qwen_pipe.provenance import provenance
from qwen_pipe.tasks.base import GenerationTask, PromptStyle, Task

DATASETS_DIR = Path("data/datasets")
GENERATIONS_DIR = Path("data/generations")
SCORES_DIR = Path("data/scores")
EVAL_METRICS_DIR = Path("metrics/eval")


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


def pick_samples(params: Params, dataset: str, records: list[dict]) -> list[dict]:
    return select_samples(records, params.task_params(dataset).sample_limit, params.generate.sample_seed)


def run_generation(
    params: Params,
    spec: ModelSpec,
    task: Task,
    samples: list[dict],
    engine: Engine,
    dataset_info: dict,
    renderer: PromptRenderer | None = None,
) -> tuple[list[dict], dict]:
    """Generation records and their metadata (engine, settings, dataset, timing)."""
    settings = generation_settings(params, spec)
    renderer = renderer or PromptRenderer(spec)
    started = time.perf_counter()
    records = generate_records(task, samples, engine, renderer, settings)
    seconds = time.perf_counter() - started
    meta = {
        "model": spec.name,
        "hf_id": spec.hf_id,
        "dataset": task.name,
        "dataset_info": dataset_info,
        "samples": len(samples),
        "shots": task.shots,
        "engine": asdict(engine.info),
        "settings": {**asdict(settings), "style": asdict(settings.style)},
        "chat_template_sha256": renderer.chat_template_sha256
        if isinstance(task, GenerationTask) and settings.style.chat
        else None,
        "seconds": round(seconds, 3),
        "output_tokens": sum(r.get("output_tokens", 0) for rec in records for r in rec["responses"]),
        "provenance": provenance(),
    }
    return records, meta


def run_scoring(task: Task, samples: list[dict], records: list[dict], generation_meta: dict) -> tuple[list[dict], dict]:
    """Per-sample score rows and the metrics document of the cell."""
    style = PromptStyle(**generation_meta["settings"]["style"])
    rows, aggregate = score_records(task, samples, records, style)
    primary = aggregate[task.primary_metric]
    info = generation_meta["dataset_info"]
    result = {
        "model": generation_meta["model"],
        "dataset": task.name,
        "primary_metric": task.primary_metric,
        "score": primary["value"],
        "stderr": primary["stderr"],
        "n": primary["n"],
        "metrics": aggregate,
        "embedded_sample": info.get("embedded_sample", False),
        "source": {k: info.get(k) for k in ("source", "origin", "split", "rows", "sha256")},
        "shots": generation_meta["shots"],
        "thinking": style.enable_thinking,
        "chat": style.chat,
        "engine": generation_meta["engine"],
        "sampling": {k: v for k, v in generation_meta["settings"].items() if k != "style"},
        "chat_template_sha256": generation_meta.get("chat_template_sha256"),
        "generation_seconds": generation_meta["seconds"],
        "provenance": provenance(),
    }
    return rows, result
