"""Score: extract answers from saved responses and compute the metrics; no engine needed.

Any scorer can rerun over saved responses. Per-sample scores are cached under a key that covers the
scorer's code (the task module and everything it imports), the sample and the responses, so a killed
stage resumes and an unchanged scorer recomputes nothing.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import asdict

from qwen_pipe.cache import ChunkStore, digest
from qwen_pipe.cells import Cell, Layout
from qwen_pipe.codedeps import task_code_sha256
from qwen_pipe.console import fmt, progress_bar
from qwen_pipe.engines.base import Generation, Loglikelihood
from qwen_pipe.errors import QwenPipeError
from qwen_pipe.io import read_json, read_jsonl, write_json, write_jsonl
from qwen_pipe.protocols import DEFAULT_PROTOCOL
from qwen_pipe.provenance import provenance
from qwen_pipe.scoring.paired import score_interval
from qwen_pipe.scoring.stats import rate, repeat_spread
from qwen_pipe.tasks.common.base import PromptStyle, SampleScore, Task

VOLATILE = ("seconds", "cached")  # response fields that do not change what a scorer sees


def responses_of(record: dict) -> list[Generation | Loglikelihood]:
    out: list[Generation | Loglikelihood] = []
    for r in record["responses"]:
        if "logprob" in r:
            out.append(Loglikelihood(r["logprob"], r["is_greedy"], r["continuation_tokens"]))
        else:
            out.append(
                Generation(
                    r["text"], r["prompt_tokens"], r["output_tokens"], r["finish_reason"], r["seconds"]
                )
            )
    return out


def score_records(
    task: Task,
    samples: Sequence[dict],
    records: Sequence[dict],
    style: PromptStyle,
    progress: bool = False,
    cache: ChunkStore | None = None,
    flush_every: int = 64,
    repeats: int = 1,
) -> tuple[list[dict], dict[str, dict]]:
    """Per-sample score rows and the aggregate metrics (mean, stderr, n of each).

    With a cache, samples already scored by the same scorer code on the same responses are read back,
    and new scores are flushed every few samples: a killed score stage resumes where it stopped.
    `progress`: a live bar on stderr, where the console shows one (console.progress_enabled).
    `repeats`: each sample was answered that many times (sampled runs, generate.repeats): every repeat is
    scored on its own, a sample's row holds the mean of its repeats, the aggregate covers all of them and
    `_repeats` gives the primary metric of each repeat with their mean and spread. A code task scores a
    sample's answers together instead (pass@k over them).
    """
    by_id = {s["id"]: s for s in samples}
    missing = [r["id"] for r in records if r["id"] not in by_id]
    if missing:
        raise QwenPipeError(
            f"{task.name}: {len(missing)} generated samples are not in the dataset (e.g. {missing[0]!r})",
            "the dataset changed after generation: rerun generate (dvc repro)",
        )
    ordered = [by_id[r["id"]] for r in records]
    slices = 1 if task.kind == "code" else repeats
    # a unit is one repeat of one sample: (sample index, its responses)
    units = [(i, part) for i, record in enumerate(records) for part in _split(record["responses"], slices)]
    known = cache.load() if cache else {}
    scorer = task_code_sha256(task.name) if cache else ""
    keys = [
        digest(
            {
                "scorer": scorer,
                "task": task.name,
                "protocol": task.protocol,
                "shots": task.shots,
                "style": asdict(style),
                "sample": ordered[i],
                "responses": [{k: v for k, v in r.items() if k not in VOLATILE} for r in part],
            }
        )
        if cache
        else ""
        for i, part in units
    ]
    scores: list[SampleScore | None] = [SampleScore(**known[key]) if key in known else None for key in keys]
    todo = [u for u, score in enumerate(scores) if score is None]
    with progress_bar(len(todo), f"score {task.name}", unit="sample", show=progress) as bar:
        for start in range(0, len(todo), flush_every):
            chunk = todo[start : start + flush_every]
            fresh = task.score_all(
                [ordered[units[u][0]] for u in chunk],
                [responses_of({"responses": units[u][1]}) for u in chunk],
                style,
            )
            for u, score in zip(chunk, fresh, strict=True):
                scores[u] = score
            if cache:
                cache.append((keys[u], asdict(scores[u])) for u in chunk)
            bar.update(len(chunk))
    final = [s for s in scores if s is not None]
    per_sample = [final[i * slices : (i + 1) * slices] for i in range(len(records))]
    rows = []
    for record, group in zip(records, per_sample, strict=True):
        first = record["responses"][0] if record["responses"] else {}
        metrics = {m: sum(g.metrics[m] for g in group) / len(group) for m in group[0].metrics}
        rows.append(
            {
                "id": record["id"],
                "prompt_sha256": first.get("prompt_sha256") or first.get("context_sha256"),
                "output": [r["text"] for r in record["responses"] if "text" in r] or None,
                "extracted": group[0].extracted if slices == 1 else {"repeats": [g.extracted for g in group]},
                "metrics": metrics,
                "correct": bool(metrics.get(task.primary_metric, 0.0) >= 1.0),
            }
        )
    if slices == 1:
        return rows, task.aggregate(ordered, final)
    aggregate = task.aggregate([ordered[i] for i, _ in units], final)
    each = [task.aggregate(ordered, [group[r] for group in per_sample]) for r in range(slices)]
    aggregate["_repeats"] = repeat_spread([a[task.primary_metric]["value"] for a in each])
    return rows, aggregate


def _split(responses: list[dict], parts: int) -> list[list[dict]]:
    """A record's responses, repeat by repeat (generation writes them repeat-major)."""
    if parts == 1:
        return [responses]
    if len(responses) % parts:
        raise QwenPipeError(
            f"{len(responses)} responses cannot be {parts} repeats",
            "the generation does not match generate.repeats: rerun generate (dvc repro)",
        )
    size = len(responses) // parts
    return [responses[r * size : (r + 1) * size] for r in range(parts)]


def failed_requests(task: Task, rows: Sequence[dict], meta: dict) -> dict[str, int]:
    """Every request that did not produce a usable answer, by cause: the readiness error rate counts them all.

    Truncated responses (cut at the output budget or the context limit) and prompts too long for the
    context come from generation; sandbox errors and timeouts from code execution.
    """
    counts = {
        "truncated": meta.get("truncated", 0),
        "prompt_too_long": meta.get("prompt_too_long", 0),
    }
    if task.kind == "code":
        statuses = [s for row in rows for s in row["extracted"].get("status", [])]
        counts["sandbox_timeout"] = statuses.count("timeout")
        counts["sandbox_crash"] = statuses.count("crash")
    return counts


def failed_metrics(cell: Cell, task: Task, failure: dict, samples: int) -> dict:
    """The metrics document of a cell whose generation failed: no score, the failure, its provenance, and
    its `samples` requests (at least one) counted as failed."""
    requests = max(samples, 1)
    return {
        "model": cell.model,
        "preset": cell.preset,
        "dataset": cell.dataset,
        "status": "failed",
        "failure": failure,
        "primary_metric": task.primary_metric,
        "accuracy": task.primary_is_accuracy,
        "score": None,
        "stderr": None,
        "ci_low": None,
        "ci_high": None,
        "n": 0,
        "requests": requests,
        "failed_requests": {"failed_cell": requests},
        "provenance": provenance(),
    }


def score_cell(
    task: Task, samples: list[dict], layout: Layout, cell: Cell, flush_every: int = 64
) -> tuple[list[dict], dict]:
    """Score one cell's saved responses; a generation failure becomes a failed metrics document."""
    meta = read_json(layout.meta(cell))
    layout.score_cache(cell).mkdir(parents=True, exist_ok=True)  # a DVC output even when unused
    if "failure" in meta:
        return [], failed_metrics(cell, task, meta["failure"], meta.get("samples", 1))
    generated_under = meta.get("protocol", DEFAULT_PROTOCOL)
    if generated_under != task.protocol:
        raise QwenPipeError(
            f"{cell}: generated under protocol {generated_under}, scored under {task.protocol}",
            "rerun generate with the same protocol (dvc repro), or score under the generation's protocol",
        )
    records = read_jsonl(layout.generation(cell))
    style = PromptStyle(**meta["settings"]["style"])
    cache = ChunkStore(layout.score_cache(cell))
    isolation, sandboxes = None, contextlib.nullcontext()
    if (
        task.kind == "code"
    ):  # warm sandboxes across the chunks; the isolation actually used goes in the metrics
        from qwen_pipe.sandbox import isolation_mode, keep_judges

        isolation, sandboxes = isolation_mode(), keep_judges()
    with sandboxes:
        repeats = meta["settings"].get("repeats", 1)
        rows, aggregate = score_records(task, samples, records, style, True, cache, flush_every, repeats)
    cache.compact()
    spread = aggregate.pop("_repeats", None)
    primary = aggregate[task.primary_metric]
    info = meta["dataset_info"]
    requests = meta.get("requests", 0)
    failed = failed_requests(task, rows, meta)
    interval = score_interval(primary["value"], primary["stderr"], primary["n"], task.primary_is_accuracy)
    result = {
        "model": cell.model,
        "preset": cell.preset,
        "dataset": cell.dataset,
        "status": "ok",
        "primary_metric": task.primary_metric,
        "accuracy": task.primary_is_accuracy,
        "score": primary["value"],
        "stderr": primary["stderr"],
        "ci_low": interval[0] if interval else None,
        "ci_high": interval[1] if interval else None,
        "n": primary["n"],
        "metrics": aggregate,
        "repeats": spread,  # sampled runs answered n times: the primary metric per repeat, mean and std
        "requests": requests,
        "truncated": failed["truncated"],
        "truncation_rate": rate(failed["truncated"], requests),
        "failed_requests": failed,
        "embedded_sample": info.get("embedded_sample", False),
        "source": {k: info.get(k) for k in ("source", "origin", "split", "rows", "sha256")},
        "requests_sha256": info.get("requests_sha256"),
        "protocol": task.protocol,
        "shots": meta["shots"],
        "thinking": style.enable_thinking,
        "chat": style.chat,
        "engine": meta["engine"],
        "sampling": {k: v for k, v in meta["settings"].items() if k != "style"},
        "chat_template_sha256": meta.get("chat_template_sha256"),
        "scorer_sha256": task_code_sha256(task.name),
        "generation_seconds": meta["seconds"],
        "output_tokens": meta.get("output_tokens"),
        "cache": meta.get("cache"),
        "sandbox": isolation,
        "provenance": provenance(),
    }
    return rows, result


def score_and_write(
    task: Task, samples: list[dict], layout: Layout, cell: Cell, flush_every: int = 64, detailed: bool = False
) -> tuple[dict, float]:
    """Score one cell and write its score rows and metrics document (the score stage and `qwen-pipe eval`);
    returns the metrics document and the seconds it took. `detailed`: the ids of incorrect samples too."""
    started = time.perf_counter()
    rows, result = score_cell(task, samples, layout, cell, flush_every)
    if detailed:
        result["failed_samples"] = [r["id"] for r in rows if not r["correct"]]
    measurements, run_info = split_document(result)
    write_jsonl(layout.score_rows(cell), rows)
    write_json(layout.metrics_file(cell), measurements)
    write_json(layout.run_info(cell), run_info)
    return result, time.perf_counter() - started


def score_pipeline_cell(params_data: dict, cell: Cell) -> tuple[dict, float]:
    """The score stage's work for one cell of the pipeline (stages/score.py, or a Ray task: params as
    plain data)."""
    from qwen_pipe.cells import DATASETS_DIR, PIPELINE, read_dataset
    from qwen_pipe.config import Params
    from qwen_pipe.tasks.common.registry import task_for

    params = Params.model_validate(params_data)
    task = task_for(params, cell.dataset)
    records, _ = read_dataset(DATASETS_DIR, cell.dataset)
    if not PIPELINE.meta(cell).is_file():
        raise QwenPipeError(
            f"{PIPELINE.meta(cell)} not found",
            f"run generate first: dvc repro generate@{cell.model}-{cell.preset}",
        )
    return score_and_write(task, records, PIPELINE, cell, params.score.flush_every)


# What a cell's metrics file (DVC metrics: `dvc metrics diff` compares them across commits) holds: what was
# measured. Everything else (what ran, how, where, cache counts, timings) goes to the run-info sidecar beside
# the per-sample scores (Layout.run_info); `merge_run_info` puts the two back together for the report.
MEASUREMENTS = (
    "status",
    "primary_metric",
    "score",
    "stderr",
    "ci_low",
    "ci_high",
    "n",
    "metrics",
    "repeats",
    "requests",
    "truncated",
    "truncation_rate",
    "failed_requests",
    "failure",
    "failed_samples",
)


def split_document(result: dict) -> tuple[dict, dict]:
    """(measurements, run info) of a cell's full result document."""
    measured = {k: v for k, v in result.items() if k in MEASUREMENTS}
    return measured, {k: v for k, v in result.items() if k not in MEASUREMENTS}


def score_line(cell: Cell, result: dict, seconds: float) -> str:
    """The one line a scoring run prints."""
    if result["status"] == "failed":
        failure = result["failure"]
        return f"score {cell}: no score, generation failed ({failure['error_type']}: {failure['message']})"
    truncated = f", {result['truncated']}/{result['requests']} truncated" if result["truncated"] else ""
    return (
        f"score {cell}: {result['primary_metric']} = {fmt(result['score'])} ± {fmt(result['stderr'])} "
        f"(n={result['n']}{truncated}), {seconds:.1f} s"
    )
