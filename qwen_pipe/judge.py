"""Judge: an LLM judge grades the saved answers of the judged datasets (MT-Bench, Arena-Hard).

The stage reads the generate stage's answers and never generates: change the judge and only the judging
reruns. One judge engine serves every model x preset x dataset, loaded only if some judgment is not in the
judge cache, whose key is the judge's identity (model content or API name, engine and its arguments), the
exact prompt it sees and the sampling (seed included): a second run makes no judge call. A reply with no
verdict is asked again once, then recorded as a failure (counted in the error rate), never scored.

Per cell it writes the per-sample judgments (data/judgments/, what paired comparisons read), the measurements
(metrics/judge/, DVC metrics) and a run-info sidecar (data/judge_info/: who judged, how, cache counts).
"""

from __future__ import annotations

import json
import os
import statistics
import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from qwen_pipe.cache import digest
from qwen_pipe.cells import (
    DATASETS_DIR,
    JUDGE_INFO_DIR,
    JUDGMENTS_DIR,
    PIPELINE,
    Cell,
    Layout,
    failure_record,
    read_dataset,
)
from qwen_pipe.config import EngineParams, Params
from qwen_pipe.console import PROGRESS_ENV, BatchedProgress, LiveBar, Progress, show_log_tail, start_log
from qwen_pipe.engines.base import (
    Engine,
    Generation,
    GenerationRequest,
    LoglikelihoodRequest,
    SamplingParams,
)
from qwen_pipe.engines.response_cache import ResponseCache, answer_generations, answer_loglikelihoods
from qwen_pipe.errors import QwenPipeError
from qwen_pipe.io import read_json, read_jsonl, write_json, write_jsonl
from qwen_pipe.prompting import PromptRenderer
from qwen_pipe.provenance import provenance
from qwen_pipe.scoring.extract import strip_thinking
from qwen_pipe.scoring.judge import CANDIDATES, FOLLOW_UPS, PARSERS, carries_verdict
from qwen_pipe.scoring.stats import repeat_spread
from qwen_pipe.tasks import JUDGED
from qwen_pipe.tasks.common.base import JudgedTask, JudgeRequest, PromptStyle
from qwen_pipe.tasks.common.registry import task_for

JUDGE_STYLE = PromptStyle(chat=True, enable_thinking=False)  # a Qwen3 judge answers without thinking


@dataclass(frozen=True)
class JudgeLayout:
    judgments: Path  # per-sample judgments (DVC-cached)
    info: Path  # run-info sidecars (committed to git)
    metrics: Path  # measurements (DVC metrics)
    cache: Path  # the judge cache (persistent)

    def rows(self, cell: Cell) -> Path:
        return self.judgments.joinpath(*cell.parts, f"{cell.dataset}.jsonl")

    def info_file(self, cell: Cell) -> Path:
        return self.info.joinpath(*cell.parts, f"{cell.dataset}.run.json")

    def metrics_file(self, cell: Cell) -> Path:
        return self.metrics.joinpath(*cell.parts, f"{cell.dataset}.json")


JUDGE_PIPELINE = JudgeLayout(
    JUDGMENTS_DIR, JUDGE_INFO_DIR, Path("metrics/judge"), Path("data/cache/judgments")
)


@dataclass(frozen=True)
class Judge:
    """Who judges: the name the report shows, what keys the judge cache, how prompts reach it."""

    model: str  # the registry name, or the API's model name
    engine: str
    identity: dict  # with the prompt and sampling, the cache key of a judgment
    api_judge: bool  # prompts go as chat messages (JSON), not through a chat template here
    tiny: bool  # a random-weight model: its verdicts mean nothing
    description: str

    def judges(self, model: str, hf_id: str | None = None) -> bool:
        """Whether this judge is the judged model itself (same registry name or same weights)."""
        return model == self.model or (hf_id is not None and hf_id == self.identity.get("hf_id"))


def judge_of(params: Params) -> Judge:
    from qwen_pipe.engines.openai_engine import fleet_identity
    from qwen_pipe.engines.registry import output_identity
    from qwen_pipe.models.identity import model_identity

    settings = params.judge
    if settings.model is None:  # params refuse this when a judged dataset is in the run
        raise QwenPipeError(
            "judge.model is not set", "name a judge under judge.model in params.yaml (docs/judge.md)"
        )
    servers = fleet_identity(settings.base_url)
    addresses = servers if isinstance(servers, str) else ", ".join(servers or [])
    if settings.api_judge:
        identity = {"api": "chat", "model": settings.model, "base_url": servers}
        where = f"the chat API at {addresses}"
        return Judge(settings.model, "openai", identity, True, False, f"{settings.model} ({where})")
    spec = params.model(settings.model)
    preset = params.preset_for(spec.name, settings.preset)
    engine_params = _engine_params(params)
    identity = {
        "model": model_identity(spec),
        "hf_id": spec.hf_id,
        "engine": output_identity(settings.engine, spec, preset, engine_params),
    }
    where = addresses if settings.engine == "openai" else f"preset {settings.preset}"
    if settings.verdict == "likelihood":
        identity["verdict"] = "likelihood"
        where += "; verdict by likelihood"
    return Judge(
        spec.name, settings.engine, identity, False, spec.tiny, f"{spec.name} ({settings.engine}, {where})"
    )


def _engine_params(params: Params) -> EngineParams:
    judge = params.judge
    return EngineParams(
        name=judge.engine,
        base_url=judge.base_url,
        api_key_env=judge.api_key_env,
        concurrency=judge.concurrency,
        enforce_eager=params.engine.enforce_eager,
    )


def load_judge_engine(params: Params) -> Engine:
    from qwen_pipe.engines.openai_engine import OpenAIEngine
    from qwen_pipe.engines.registry import make_engine

    judge = params.judge
    if judge.api_judge:
        return OpenAIEngine(
            judge.model,
            base_url=judge.base_url,
            api_key_env=judge.api_key_env,
            concurrency=judge.concurrency,
            api="chat",
        )
    spec = params.model(judge.model)
    preset = params.preset_for(spec.name, judge.preset)
    return make_engine(judge.engine, spec, preset, _engine_params(params), seed=judge.seed)


# --- the judgments of one run ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One judgment to make: a request of one sample of one cell, one repeat."""

    cell: Cell
    sample_id: str
    request: JudgeRequest
    repeat: int
    max_new_tokens: int


def job_sampling(params: Params, job: Job) -> SamplingParams:
    """The judge's sampling for one job; repeats differ by seed (an API judge varies run to run even at 0)."""
    seed = int(digest({"seed": params.judge.seed, "cell": str(job.cell), "id": job.sample_id,
                       "key": job.request.key, "repeat": job.repeat})[:8], 16)  # fmt: skip
    return SamplingParams(max_new_tokens=job.max_new_tokens, temperature=params.judge.temperature, seed=seed)


def render(messages: Sequence[dict], judge: Judge, renderer: PromptRenderer | None) -> str:
    if judge.api_judge or renderer is None:
        return json.dumps(list(messages), ensure_ascii=False)
    return renderer.render(list(messages), JUDGE_STYLE)


def judge_replies(
    params: Params,
    jobs: Sequence[Job],
    judge: Judge,
    engine: Engine,
    cache: ResponseCache | None,
    renderer: PromptRenderer | None,
    progress=None,
) -> list[dict]:
    """Every job's verdict: asked once, and once more where the reply had none (the judge's reply and a
    follow-up added to its conversation); still none, or a prompt too long for the judge: a failure."""
    report = (
        (lambda total, done, tokens: progress(Progress("judge", total, done, tokens))) if progress else None
    )
    if params.judge.verdict == "likelihood":
        return _likeliest(jobs, judge, engine, cache, renderer, report)

    def ask(conversations: list[list[dict]], picked: list[Job]) -> tuple[list[Generation], list[bool]]:
        requests = [
            GenerationRequest(render(c, judge, renderer), job_sampling(params, job))
            for c, job in zip(conversations, picked, strict=True)
        ]
        return answer_generations(requests, cache, engine, report)

    first = [list(job.request.messages) for job in jobs]
    replies, cached = ask(first, list(jobs))
    outcomes = []
    retry: list[int] = []
    for index, (job, reply, hit) in enumerate(zip(jobs, replies, cached, strict=True)):
        verdict = PARSERS[job.request.verdict](reply.text)
        outcome = {"verdict": verdict, "replies": [reply.text], "cached": [hit], "failure": None}
        outcome["output_tokens"] = reply.output_tokens
        if reply.finish_reason == "prompt_too_long":
            outcome["failure"] = "judge_prompt_too_long"
        elif verdict is None:
            retry.append(index)
        outcomes.append(outcome)
    if retry:
        follow = [
            [*first[i], {"role": "assistant", "content": replies[i].text},
             {"role": "user", "content": FOLLOW_UPS[jobs[i].request.verdict]}]
            for i in retry
        ]  # fmt: skip
        again, hits = ask(follow, [jobs[i] for i in retry])
        for i, reply, hit in zip(retry, again, hits, strict=True):
            outcome = outcomes[i]
            # as Arena-Hard does, the verdict is read from both replies together
            verdict = PARSERS[jobs[i].request.verdict](outcome["replies"][0] + "\n" + reply.text)
            outcome["replies"].append(reply.text)
            outcome["cached"].append(hit)
            outcome["output_tokens"] += reply.output_tokens
            outcome["verdict"] = verdict
            if verdict is None:
                outcome["failure"] = (
                    "judge_prompt_too_long"
                    if reply.finish_reason == "prompt_too_long"
                    else "judge_unparseable"
                )
    return outcomes


def _likeliest(jobs, judge: Judge, engine: Engine, cache, renderer, report) -> list[dict]:
    """judge.verdict likelihood: each job's verdict is the valid one the judge finds most likely after its
    prompt (scoring/judge.py CANDIDATES), as its reply; nothing to parse, nothing to ask again."""
    requests, spans = [], []
    for job in jobs:
        context = render(job.request.messages, judge, renderer)
        options = CANDIDATES[job.request.verdict]
        spans.append((len(requests), options))
        requests += [LoglikelihoodRequest(context, option) for option in options]
    answers, cached = answer_loglikelihoods(requests, cache, engine, report)
    outcomes = []
    for job, (start, options) in zip(jobs, spans, strict=True):
        scores = [answers[start + i].logprob for i in range(len(options))]
        best = options[max(range(len(options)), key=scores.__getitem__)]
        outcomes.append(
            {
                "verdict": PARSERS[job.request.verdict](best),
                "replies": [best],
                "cached": [all(cached[start : start + len(options)])],
                "failure": None,
                "output_tokens": 0,
                "logprobs": {o: round(s, 4) for o, s in zip(options, scores, strict=True)},
            }
        )
    return outcomes


def replies(
    params: Params,
    jobs: list[Job],
    judge: Judge,
    cache_dir: Path,
    engine: Engine | None = None,
    progress=None,
) -> tuple[list[dict], dict]:
    """judge_replies over the judge cache in `cache_dir`, with `engine` or the configured judge, loaded only
    when some judgment is not cached; returns the outcomes and the cache counts."""
    from qwen_pipe.engines.registry import DeferredEngine

    batched = BatchedProgress(progress) if progress else None
    if engine is None:

        def load() -> Engine:
            loaded = load_judge_engine(params)
            if batched:
                batched(Progress("judge", loaded=True))
            return loaded

        engine = DeferredEngine(load, judge.engine, judge.model)
    cache = ResponseCache(cache_dir, digest(judge.identity), {}, params.judge.flush_every, "judge")
    renderer = None if judge.api_judge else PromptRenderer(params.model(judge.model))
    try:
        outcomes = judge_replies(params, jobs, judge, engine, cache, renderer, batched)
    finally:
        if batched:
            batched.flush()
        engine.close()
    cache.store.compact()
    return outcomes, {"hits": cache.hits, "misses": cache.misses, "ignored_corrupt": cache.store.ignored}


def _replies_in_child(params_data: dict, jobs: list[Job], judge: Judge, cache_dir: Path, progress=None):
    os.environ[PROGRESS_ENV] = "0"  # the parent draws the bar from our progress events
    try:
        return replies(Params.model_validate(params_data), jobs, judge, cache_dir, progress=progress)
    except Exception:
        traceback.print_exc()  # into the judge's log
        raise


# --- the stage -----------------------------------------------------------------------------------------


def judged_datasets(params: Params) -> list[str]:
    """The run's datasets an LLM judge scores; only their tasks are loaded (the stage's code manifest)."""
    return [d for d in params.run.datasets if d in JUDGED]


def judge_pipeline(
    params: Params,
    layout: JudgeLayout = JUDGE_PIPELINE,
    answers: Layout = PIPELINE,
    datasets_dir: Path = DATASETS_DIR,
    engine: Engine | None = None,
) -> dict[Cell, dict]:
    """The judge stage: every judged dataset of every model x generating preset. `engine`: a ready judge
    (tests: a scripted one), run in this process; else the judge loads in a child process if needed."""
    names = judged_datasets(params)
    for folder in (layout.judgments, layout.info, layout.metrics, layout.cache):
        folder.mkdir(parents=True, exist_ok=True)  # DVC outputs, even when nothing is judged
    _remove_stale(layout, params, names)
    if not names:
        return {}
    judge = judge_of(params)
    if engine is not None:
        judge = replace(judge, identity={**judge.identity, "engine_info": asdict(engine.info)})
    cells = [Cell(m, p, d) for m in params.run.models for p in params.generate.presets for d in names]
    work: dict[Cell, dict] = {}
    results: dict[Cell, dict] = {}
    jobs: list[Job] = []
    for cell in cells:
        try:
            work[cell] = _cell_work(params, cell, answers, datasets_dir)
        except Exception as error:  # noqa: BLE001 - this cell fails, the others are judged
            results[cell] = {"failure": failure_record("judge", cell, error)}
            continue
        work[cell]["offset"] = len(jobs)
        jobs += work[cell]["jobs"]
    started = time.perf_counter()
    cache_counts: dict = {}
    failure = None
    try:
        outcomes, cache_counts = _run_jobs(params, jobs, judge, layout, engine)
    except Exception as error:  # noqa: BLE001 - every cell records the judge's failure
        failure, outcomes = error, []
    seconds = time.perf_counter() - started
    for cell, cell_work in work.items():
        if failure is not None:
            results[cell] = {"failure": failure_record("judge", cell, failure)}
            continue
        own = outcomes[cell_work["offset"] : cell_work["offset"] + len(cell_work["jobs"])]
        results[cell] = _cell_result(params, cell, cell_work, own)
    for cell, result in results.items():
        own = judge.judges(cell.model, params.model(cell.model).hf_id)
        _write_cell(layout, cell, result, judge, own, cache_counts, seconds)
    return results


def _run_jobs(params: Params, jobs: list[Job], judge: Judge, layout: JudgeLayout, engine: Engine | None):
    from qwen_pipe.cluster import run_unit
    from qwen_pipe.engines.registry import in_process

    if not jobs:
        return [], {"hits": 0, "misses": 0}
    if engine is not None or in_process(judge.engine):  # nothing in it can crash the interpreter
        return replies(params, jobs, judge, layout.cache, engine)
    log = start_log("judge")
    bar = LiveBar(f"judge with {judge.model}")
    try:
        outcome = run_unit(  # a child process, or a Ray task with cluster.address (cluster.py)
            _replies_in_child,
            *(params.model_dump(by_alias=True), jobs, judge, layout.cache),
            cluster=params.cluster,
            gpus=params.preset_for(params.judge.model, params.judge.preset).tensor_parallel_size,
            log=log,
            on_progress=bar,
        )
    finally:
        bar.close()
    if not outcome.ok:
        show_log_tail(log)
        raise QwenPipeError(
            f"the judge failed: {outcome.failure['type']}: {outcome.failure['message']}",
            f"see the judge's log {log}",
        )
    return outcome.value


def _cell_work(params: Params, cell: Cell, answers: Layout, datasets_dir: Path) -> dict:
    """The jobs of one cell, from its saved answers (a cell whose generation failed fails here too)."""
    task = task_for(params, cell.dataset)
    if not isinstance(task, JudgedTask):
        raise TypeError(f"{cell.dataset} is in tasks.JUDGED but its task is not a JudgedTask")
    meta = read_json(answers.meta(cell))
    if "failure" in meta:
        failure = meta["failure"]
        raise QwenPipeError(
            f"no answers to judge: generation failed ({failure['error_type']})", "see the generate stage"
        )
    records, _ = read_dataset(datasets_dir, cell.dataset)
    by_id = {r["id"]: r for r in records}
    samples, jobs = [], []
    budget = params.judge.max_new_tokens or task.judge_max_new_tokens
    for row in read_jsonl(answers.generation(cell)):
        sample = by_id[row["id"]]
        # the first answer set only (with generate.repeats > 1 the later ones are not judged)
        answers_text = [
            strip_thinking(r.get("text", "")).strip() for r in row["responses"][: task.turns(sample)]
        ]
        samples.append((sample, answers_text))
        for request in task.judge_requests(sample, answers_text):
            jobs += [Job(cell, sample["id"], request, r, budget) for r in range(params.judge.repeats)]
    return {"task": task, "samples": samples, "jobs": jobs, "engine": meta.get("engine")}


def _cell_result(params: Params, cell: Cell, work: dict, outcomes: list[dict]) -> dict:
    task: JudgedTask = work["task"]
    repeats = params.judge.repeats
    rows, per_repeat = [], [[] for _ in range(repeats)]
    failures: dict[str, int] = {}
    retried = judgments = tagged = 0
    by_sample: dict[str, list[tuple[Job, dict]]] = {}
    for job, outcome in zip(work["jobs"], outcomes, strict=True):
        by_sample.setdefault(job.sample_id, []).append((job, outcome))
    for sample, answers in work["samples"]:
        tagged += any(carries_verdict(a) for a in answers)
        verdicts: list[dict] = [{} for _ in range(repeats)]
        kept = []
        for job, outcome in by_sample.get(sample["id"], []):
            judgments += 1
            retried += len(outcome["replies"]) > 1
            if outcome["failure"]:
                failures[outcome["failure"]] = failures.get(outcome["failure"], 0) + 1
            verdicts[job.repeat][job.request.key] = outcome["verdict"]
            kept.append(
                {"key": job.request.key, "repeat": job.repeat, "prompt": job.request.prompt, **outcome}
            )
        repeat_scores = [task.judge_scores(sample, v) for v in verdicts]
        for r, scores in enumerate(repeat_scores):
            per_repeat[r].append(scores)
        rows.append(
            {
                "id": sample["id"],
                "metrics": _median_scores(repeat_scores),
                "answers": answers,
                "judgments": kept,
            }
        )
    samples = [s for s, _ in work["samples"]]
    doc = task.judge_aggregate(samples, [row["metrics"] for row in rows])  # per sample: the repeats' median
    if repeats > 1:
        doc["repeats"] = repeat_spread([task.judge_aggregate(samples, s)["score"] for s in per_repeat])
    doc.update(
        {
            "status": "ok" if doc["score"] is not None else "failed",
            "primary_metric": task.judge_metric,
            "scale": list(task.judge_scale),
            "judgments": judgments,
            "failed_judgments": dict(sorted(failures.items())),
            "retried": retried,
            # answers holding a verdict tag of their own ("[[10]]", "[[B>>A]]"): a judge could be led by them
            "answers_with_verdict_tags": tagged,
        }
    )
    if doc["status"] == "failed":
        doc["failure"] = failure_record(
            "judge",
            cell,
            QwenPipeError("no judgment gave a verdict", "see the judge's replies in data/judgments"),
        )
    return {"doc": doc, "rows": rows, "engine": work["engine"]}


def _median_scores(repeat_scores: list[dict[str, float]]) -> dict[str, float]:
    """Per metric, the median over the repeats that gave it (one repeat: its own scores)."""
    names = sorted({name for scores in repeat_scores for name in scores})
    return {name: float(statistics.median([s[name] for s in repeat_scores if name in s])) for name in names}


def _write_cell(
    layout: JudgeLayout, cell: Cell, result: dict, judge: Judge, own: bool, cache: dict, seconds: float
) -> None:
    if "failure" in result:
        rows: list[dict] = []
        doc = {"status": "failed", "failure": result["failure"], "judgments": 0, "failed_judgments": {}}
    else:
        rows, doc = result["rows"], result["doc"]
    write_jsonl(layout.rows(cell), rows)
    write_json(layout.metrics_file(cell), doc)
    write_json(
        layout.info_file(cell),
        {
            "judge": {
                "model": judge.model,
                "engine": judge.engine,
                "description": judge.description,
                "identity_sha256": digest(judge.identity),
                "meaningless": judge.tiny,  # a random-weight judge: the scores are not a measurement
                "judges_itself": own,  # the judge is the judged model (same name or same weights)
            },
            "cache": cache,
            "seconds": round(seconds, 3),
            "provenance": provenance(),
        },
    )


def _remove_stale(layout: JudgeLayout, params: Params, names: list[str]) -> None:
    """Files of cells the run no longer has: the stage's outputs are whole folders."""
    keep = {(m, p, d) for m in params.run.models for p in params.generate.presets for d in names}
    for root, suffix in ((layout.judgments, ".jsonl"), (layout.info, ".run.json"), (layout.metrics, ".json")):
        for path in root.glob(f"*/*/*{suffix}"):
            dataset = path.name.removesuffix(suffix)
            if (path.parent.parent.name, path.parent.name, dataset) not in keep:
                path.unlink()


def judge_line(cell: Cell, result: dict) -> str:
    if "failure" in result:
        failure = result["failure"]
        return f"judge {cell}: FAILED ({failure['error_type']}: {failure['message']})"
    doc = result["doc"]
    failed = sum(doc["failed_judgments"].values())
    score = "–" if doc["score"] is None else f"{doc['score']:.3f}"
    return (
        f"judge {cell}: {doc['primary_metric']} {score} over {doc['n']} samples, {doc['judgments']} judgments"
        + (f", {failed} failed" if failed else "")
        + (f", {doc['retried']} asked twice" if doc["retried"] else "")
    )
