"""Generate: the engine's raw responses for model x preset x dataset cells, cached per request.

A generation record holds, per sample, every request the engine answered and its raw response; scoring
reads these records and never needs an engine. The engine runs in a child process: a crash or a model
that does not load becomes a failure record for its cells, and the other cells go on. The child's output
goes to a log file, and its progress (requests answered, tokens generated) to the parent's live bar.

Task code reaches this stage only through the requests it renders (prompts, sampling, gold answers),
which the fetch stage fingerprints: a scorer change never reruns generation.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace

from qwen_pipe.cache import digest
from qwen_pipe.cells import DATASETS_DIR, PIPELINE, Cell, Layout, failure_record, read_dataset, select_samples
from qwen_pipe.config import Params, output_budget
from qwen_pipe.console import (
    PROGRESS_ENV,
    BatchedProgress,
    LiveBar,
    Progress,
    rate,
    show_log_tail,
    start_log,
    verbose,
)
from qwen_pipe.engines.base import (
    Engine,
    GenerationRequest,
    SamplingParams,
)
from qwen_pipe.engines.response_cache import Report, ResponseCache, answer_generations, answer_loglikelihoods
from qwen_pipe.io import file_sha256, write_json, write_jsonl
from qwen_pipe.models.spec import ModelSpec
from qwen_pipe.prompting import PromptRenderer, sha256_text
from qwen_pipe.protocols import (
    QWEN_NON_THINKING_SAMPLING,
    QWEN_THINKING_SAMPLING,
    Mode,
    run_mode,
)
from qwen_pipe.provenance import provenance
from qwen_pipe.tasks.common.base import GenerationTask, LoglikelihoodTask, PromptStyle, Task
from qwen_pipe.tasks.common.registry import task_for


@dataclass(frozen=True)
class GenerationSettings:
    """The run-level knobs merged over each task's own generation settings."""

    style: PromptStyle
    seed: int = 1234
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = -1
    presence_penalty: float = 0.0
    max_new_tokens: int | None = None  # None: the task's own budget
    long_output: bool = False  # the `qwen` protocol's 32,768-token budget, thinking or not
    repeats: int = 1  # answers per request (sampled runs only: greedy decoding answers once)

    def sampling_for(self, task_sampling: SamplingParams) -> SamplingParams:
        thinking = self.style.enable_thinking
        return SamplingParams(
            max_new_tokens=self.budget(task_sampling),
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            presence_penalty=self.presence_penalty,
            stop=() if thinking else task_sampling.stop,  # a stop string inside the thinking would cut it
            seed=self.seed,
        )

    def budget(self, task_sampling: SamplingParams) -> int:
        long = self.style.enable_thinking or self.long_output
        return output_budget(self.max_new_tokens, long, task_sampling.max_new_tokens)


def prompt_style(params: Params, spec: ModelSpec) -> PromptStyle:
    """Chat models get their chat template unless the protocol asks for plain prompts (lm-eval)."""
    return _style(_mode(params, spec))


def _mode(params: Params, spec: ModelSpec) -> Mode:
    return run_mode(params.protocol, spec.chat, spec.supports_thinking, params.generate.thinking)


def _style(mode: Mode) -> PromptStyle:
    return PromptStyle(chat=mode.chat, enable_thinking=mode.thinking)


def generation_settings(params: Params, spec: ModelSpec, preset_name: str) -> GenerationSettings:
    """The preset's sampling, or under the `qwen` protocol Qwen's published sampling for post-trained models."""
    preset = params.preset_for(spec.name, preset_name)
    mode = _mode(params, spec)
    sampling = {
        "temperature": preset.temperature,
        "top_p": preset.top_p,
        "top_k": preset.top_k,
        "presence_penalty": preset.presence_penalty,
    }
    if mode.qwen_sampling:
        sampling = QWEN_THINKING_SAMPLING if mode.thinking else QWEN_NON_THINKING_SAMPLING
    return GenerationSettings(
        style=_style(mode),
        seed=params.generate.seed,
        max_new_tokens=params.generate.max_new_tokens,
        long_output=mode.long_output,
        # greedy decoding gives one answer however often it is asked
        repeats=params.generate.repeats if sampling["temperature"] > 0 else 1,
        **sampling,
    )


def pick_samples(params: Params, dataset: str, records: list[dict], limit: int | None = None) -> list[dict]:
    limit = params.task_params(dataset).sample_limit if limit is None else limit
    return select_samples(records, limit, params.generate.sample_seed)


def generate_records(
    task: Task,
    samples: Sequence[dict],
    engine: Engine,
    renderer: PromptRenderer,
    settings: GenerationSettings,
    cache: ResponseCache | None = None,
    with_gold: bool | None = None,
    report: Report | None = None,
) -> list[dict]:
    """Run the engine on every request of every sample; one record per sample, in sample order.

    With a cache, answered requests are read back and only the others reach the engine; new answers
    are flushed in chunks as they finish, so an interrupted run loses at most one chunk. Gold answers
    are attached to requests only for the oracle engine (`with_gold` None: decided by the engine).
    `report` hears of the requests as they are added and answered (a progress bar).
    """
    if isinstance(task, LoglikelihoodTask):
        return _loglikelihood_records(task, samples, engine, cache, report)
    if isinstance(task, GenerationTask):
        if with_gold is None:
            with_gold = getattr(engine, "gold_answers", False)
        return _generation_records(task, samples, engine, renderer, settings, cache, with_gold, report)
    raise TypeError(f"{type(task).__name__} is neither a generation nor a log-likelihood task")


def _loglikelihood_records(
    task: LoglikelihoodTask,
    samples: Sequence[dict],
    engine: Engine,
    cache: ResponseCache | None,
    report: Report | None,
) -> list[dict]:
    per_sample = [task.loglikelihood_requests(s) for s in samples]
    flat = [r for requests in per_sample for r in requests]
    answers, cached = answer_loglikelihoods(flat, cache, engine, report)
    position = iter(range(len(flat)))
    records = []
    for sample, requests in zip(samples, per_sample, strict=True):
        responses = []
        for request in requests:
            i = next(position)
            responses.append(
                {
                    "context_sha256": sha256_text(request.context),
                    "continuation": request.continuation,
                    "cached": cached[i],
                    **asdict(answers[i]),
                }
            )
        records.append({"id": sample["id"], "responses": responses})
    return records


def _generation_records(
    task: GenerationTask,
    samples: Sequence[dict],
    engine: Engine,
    renderer: PromptRenderer,
    settings: GenerationSettings,
    cache: ResponseCache | None,
    with_gold: bool,
    report: Report | None,
) -> list[dict]:
    style = settings.style
    sampling = settings.sampling_for(task.sampling(style))
    # a conversation is one repeat of one sample; its turns see only its own earlier answers
    conversations = [(i, r) for i in range(len(samples)) for r in range(settings.repeats)]
    answered: list[list[dict]] = [[] for _ in conversations]
    turns = [task.turns(samples[i]) for i, _ in conversations]
    for turn in range(max(turns, default=0)):
        active = [c for c, n in enumerate(turns) if n > turn]
        requests = []
        for c in active:
            i, repeat = conversations[c]
            history = [r["text"] for r in answered[c]]
            prompt = task.prompt(samples[i], style, history)
            text = renderer.render(prompt, style)
            gold = task.gold_output(samples[i], turn) if with_gold else None
            own = task.sample_sampling(samples[i], sampling)
            # a sampled request gets its own seed: reproducible, independent across samples and repeats
            if own.temperature > 0:
                own = replace(own, seed=request_seed(settings.seed, samples[i]["id"], turn, repeat))
            requests.append(GenerationRequest(text, own, gold))
        answers, cached = answer_generations(requests, cache, engine, report)
        for c, request, answer, hit in zip(active, requests, answers, cached, strict=True):
            repeat = {"repeat": conversations[c][1]} if settings.repeats > 1 else {}
            answered[c].append(
                {
                    "prompt": request.prompt,
                    "prompt_sha256": sha256_text(request.prompt),
                    "cached": hit,
                    **repeat,
                    **asdict(answer),
                }
            )
    # repeat-major within a sample: repeat 0's turns, then repeat 1's (score.py splits them back)
    records = [{"id": s["id"], "responses": []} for s in samples]
    for (i, _), responses in zip(conversations, answered, strict=True):
        records[i]["responses"] += responses
    return records


def request_seed(seed: int, sample_id: str, turn: int, repeat: int) -> int:
    """The seed of one sampled request, derived from the run's seed (32 bits, as every engine takes)."""
    return int(hashlib.sha256(f"{seed}:{sample_id}:{turn}:{repeat}".encode()).hexdigest()[:8], 16)


def request_counts(records: Sequence[dict]) -> dict[str, int]:
    """Requests, those cut at the output budget or the context limit (finish_reason "length"), and those
    never run because the prompt alone did not fit."""
    responses = [r for record in records for r in record["responses"]]
    return {
        "requests": len(responses),
        "truncated": sum(1 for r in responses if r.get("finish_reason") == "length"),
        "prompt_too_long": sum(1 for r in responses if r.get("finish_reason") == "prompt_too_long"),
    }


def run_generation(
    params: Params,
    spec: ModelSpec,
    preset_name: str,
    task: Task,
    samples: list[dict],
    engine,
    dataset_info: dict,
    renderer: PromptRenderer | None = None,
    cache: ResponseCache | None = None,
    report: Report | None = None,
) -> tuple[list[dict], dict]:
    """Generation records and their metadata (engine, settings, dataset, timing, provenance)."""
    settings = generation_settings(params, spec, preset_name)
    renderer = renderer or PromptRenderer(spec)
    started = time.perf_counter()
    records = generate_records(task, samples, engine, renderer, settings, cache, report=report)
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
        "protocol": task.protocol,
        "shots": task.shots,
        "engine": asdict(engine.info),
        "preset": preset_name,
        "settings": {**asdict(settings), "style": asdict(settings.style)},
        "chat_template_sha256": renderer.chat_template_sha256 if chat else None,
        "seconds": round(seconds, 3),
        "output_tokens": sum(r.get("output_tokens", 0) for r in responses),
        **request_counts(records),
        "provenance": provenance(),
    }
    return records, meta


def cell_inputs(
    params: Params, model: str, preset: str, engine_name: str, datasets: dict[str, tuple[list[dict], dict]]
) -> dict[str, str]:
    """Per dataset, a digest of everything its generation depends on: the model's identity, the engine's
    output identity, the settings, the dataset's records and rendered requests (fingerprinted by fetch),
    the samples chosen and the generation code. Equal digests mean the cell's files would come out the
    same, so they are kept as they are and no engine starts for them."""
    from qwen_pipe.codedeps import generation_code_sha256, task_code_sha256
    from qwen_pipe.engines.registry import engine_info, output_identity
    from qwen_pipe.models.identity import model_identity

    spec = params.model(model)
    engine_preset = params.preset_for(model, preset)
    base = {
        "model": None if engine_info(engine_name).gold_answers else model_identity(spec),
        "engine": output_identity(engine_name, spec, engine_preset, params.engine),
        "settings": asdict(generation_settings(params, spec, preset)),
        "protocol": params.protocol,
        "code": generation_code_sha256(),
    }
    return {
        name: digest(
            {
                **base,
                "dataset": {k: v for k, v in info.items() if k != "origin"},  # the mirror's path: not content
                # the fetch stage's fingerprint of the task's requests, else the task's code (qwen-pipe eval)
                "task": None if "requests" in info else task_code_sha256(name),
                "samples": [s["id"] for s in samples],
            }
        )
        for name, (samples, info) in datasets.items()
    }


def generate_model(
    params_data: dict,
    model: str,
    preset: str,
    datasets: dict[str, tuple[list[dict], dict]],
    layout: Layout,
    engine_name: str,
    inputs: dict[str, str] | None = None,
    progress: Callable[[Progress], None] | None = None,
    print_traces: bool = False,
) -> dict[str, dict]:
    """Generate every dataset for one model x preset with one engine load; writes each cell's files.

    `datasets` maps a name to (samples to run, dataset info); `inputs` to its cell_inputs digest, kept in
    the cell's metadata. Returns per dataset either the generation summary or {"failure": ...};
    `print_traces`: a failure's traceback goes to stderr (the engine's log, in a child). Meant to run in
    a child process (see isolation.py).
    """
    from qwen_pipe.engines.registry import DeferredEngine, engine_info, make_engine, output_identity
    from qwen_pipe.models.identity import model_identity

    params = Params.model_validate(params_data)
    spec = params.model(model)
    engine_preset = params.preset_for(model, preset)
    batched = BatchedProgress(progress) if progress else None
    current = ""  # the dataset being generated
    load_seconds = 0.0

    def load() -> Engine:
        nonlocal load_seconds
        started = time.perf_counter()
        loaded = make_engine(engine_name, spec, engine_preset, params.engine, seed=params.generate.seed)
        load_seconds = time.perf_counter() - started
        if batched:
            batched(Progress(current, loaded=True))
        return loaded

    engine = DeferredEngine(load, engine_name, spec.hf_id)
    identity = None if engine_info(engine_name).gold_answers else model_identity(spec)
    engine_output = output_identity(engine_name, spec, engine_preset, params.engine)
    renderer = PromptRenderer(spec)
    outcomes: dict[str, dict] = {}
    try:
        for name, (samples, info) in datasets.items():
            current = name
            cell = Cell(model, preset, name)
            task = task_for(params, name)
            cache = None
            if identity is not None:
                cache = ResponseCache(
                    layout.response_cache(cell),
                    identity,
                    engine_output,
                    params.generate.flush_every,
                    params.protocol,
                )
            report = _reporter(batched, name) if batched else None
            was_loaded = engine.loaded
            try:
                records, meta = run_generation(
                    params, spec, preset, task, samples, engine, info, renderer, cache, report
                )
            except Exception as error:  # noqa: BLE001 - recorded; the next dataset runs
                if print_traces:  # into the engine's log, beside what the engine said
                    traceback.print_exc()
                outcomes[name] = {"failure": failure_record("generate", cell, error)}
                continue
            if cache is not None:
                cache.store.compact()
                meta["cache"] = {
                    "hits": cache.hits,
                    "misses": cache.misses,
                    "ignored_corrupt": cache.store.ignored,
                }
            write_jsonl(layout.generation(cell), records)
            if inputs and name in inputs:  # what up_to_date checks before keeping the cell
                meta["inputs_sha256"] = inputs[name]
                meta["records_sha256"] = file_sha256(layout.generation(cell))
            write_json(layout.meta(cell), meta)
            loading = load_seconds if engine.loaded and not was_loaded else 0.0
            outcomes[name] = {
                "samples": len(records),
                "seconds": meta["seconds"],
                "load_seconds": round(loading, 3),
                "generated_tokens": sum(
                    r.get("output_tokens", 0) for rec in records for r in rec["responses"] if not r["cached"]
                ),
                "cache": meta.get("cache"),
                "truncated": meta["truncated"],
                "requests": meta["requests"],
            }
    finally:
        if batched:
            batched.flush()
        engine.close()
    return outcomes


def _reporter(send: Callable[[Progress], None], dataset: str) -> Report:
    return lambda total, done, tokens: send(Progress(dataset, total, done, tokens))


def _generate_in_child(*args, progress: Callable[[Progress], None] | None = None) -> dict[str, dict]:
    os.environ[PROGRESS_ENV] = "0"  # the engine's own bar: the parent draws one from our progress events
    return generate_model(*args, progress=progress, print_traces=True)


def up_to_date(layout: Layout, cell: Cell, inputs: str) -> dict | None:
    """The summary of a cell whose files were generated from exactly these inputs (None: generate it)."""
    try:
        meta = json.loads(layout.meta(cell).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("inputs_sha256") != inputs or "failure" in meta:
        return None
    try:  # records edited, cut short or lost since: made again (from the response cache)
        if file_sha256(layout.generation(cell)) != meta.get("records_sha256"):
            return None
    except OSError:
        return None
    return {
        "up_to_date": True,
        "samples": meta.get("samples", 0),
        "requests": meta.get("requests", 0),
        "truncated": meta.get("truncated", 0),
        "seconds": 0.0,
    }


def generate_isolated(
    params: Params,
    model: str,
    preset: str,
    datasets: dict[str, tuple[list[dict], dict]],
    layout: Layout,
    engine_name: str,
    log_name: str,
) -> dict[str, dict]:
    """generate_model in a child process (in-process for engines that cannot crash) for the datasets whose
    files are not up to date; a crash of the child becomes a failure record for each dataset it had,
    written where its outputs would be.

    One engine load serves every dataset, and none happens when all requests are cached. The child's output
    goes to the log file `log_name` (console.log_path; the console too when verbose), and each outcome
    names it; a failure shows the log's end on stderr. A live bar on stderr follows the requests as they
    finish.
    """
    from qwen_pipe.cluster import run_unit
    from qwen_pipe.engines.registry import in_process

    inputs = cell_inputs(params, model, preset, engine_name, datasets)
    outcomes: dict[str, dict] = {}
    for name in datasets:
        kept = up_to_date(layout, Cell(model, preset, name), inputs[name])
        if kept is not None:
            outcomes[name] = kept
    todo = {name: value for name, value in datasets.items() if name not in outcomes}
    log = None
    if todo:
        data = params.model_dump(by_alias=True)
        bar = LiveBar(f"generate {model} x {preset}")
        try:
            if in_process(engine_name):
                outcomes |= generate_model(data, model, preset, todo, layout, engine_name, inputs, bar)
            else:
                log = start_log(log_name)
                outcome = run_unit(  # a child process, or a Ray task with cluster.address (cluster.py)
                    _generate_in_child,
                    *(data, model, preset, todo, layout, engine_name, inputs),
                    cluster=params.cluster,
                    gpus=params.preset_for(model, preset).tensor_parallel_size,
                    log=log,
                    on_progress=bar,
                )
                if outcome.ok:
                    outcomes |= outcome.value
                else:
                    if log is not None and outcome.failure.get("trace"):
                        with log.open("a", encoding="utf-8") as handle:
                            handle.write(outcome.failure["trace"])
                    for name in todo:
                        if name not in outcomes:
                            cell = Cell(model, preset, name)
                            outcomes[name] = {"failure": failure_record("generate", cell, outcome.failure)}
        finally:
            bar.close()
    for name in todo:
        result = outcomes[name]
        result["log"] = str(log) if log else None  # in-process engines write no log
        cell = Cell(model, preset, name)
        layout.response_cache(cell).mkdir(parents=True, exist_ok=True)  # a DVC output even when unused
        if "failure" in result:  # the score stage turns this into a failed metrics file
            write_jsonl(layout.generation(cell), [])
            planned = len(datasets[name][0])  # every request of the cell is lost: the error rate counts them
            meta = {"model": model, "preset": preset, "dataset": name, "samples": planned}
            write_json(layout.meta(cell), {**meta, "failure": result["failure"]})
    if log is not None and not verbose() and any("failure" in outcomes[name] for name in todo):
        show_log_tail(log)  # (verbose: it is on the console already)
    return {name: outcomes[name] for name in datasets}


def generate_line(cell: Cell, outcome: dict) -> str:
    """The one line a generation run prints: what it did, how fast, where the engine's log is."""
    if "failure" in outcome:
        failure = outcome["failure"]
        return f"generate {cell}: FAILED ({failure['error_type']}: {failure['message']})"
    if outcome.get("up_to_date"):
        return (
            f"generate {cell}: up to date ({outcome['samples']} samples, {outcome['requests']} requests "
            "generated earlier from the same inputs)"
        )
    cache = outcome.get("cache")
    parts = [f"{outcome['samples']} samples", f"{outcome['requests']} requests"]
    if cache is not None:
        parts[-1] += f" ({cache['hits']} from the cache, {cache['misses']} generated)"
    if outcome["truncated"]:
        parts.append(f"{outcome['truncated']} truncated")
    seconds, load = outcome["seconds"], outcome.get("load_seconds") or 0.0
    parts.append(f"{seconds:.1f} s" + (f" (model load {load:.1f} s)" if load else ""))
    tokens = outcome.get("generated_tokens") or 0
    if tokens and seconds - load > 0:
        parts.append(f"{rate(tokens / (seconds - load))} tokens/s")
    line = f"generate {cell}: " + ", ".join(parts)
    return line + (f"; engine log {outcome['log']}" if outcome.get("log") else "")


def generate_pipeline_cells(
    params: Params, model: str, preset: str, only: Sequence[str] = (), layout: Layout = PIPELINE
) -> dict[str, dict]:
    """The generate stage: every dataset of the run (or `only` these) for one model x preset, one engine
    load. A full run also removes the files of datasets no longer in the run, since the stage's output
    is the model x preset folder."""
    params.model(model)  # an unknown name is a one-line error before anything starts
    params.preset(preset)
    names = list(only) or list(params.run.datasets)
    datasets = {}
    for name in names:
        records, info = read_dataset(DATASETS_DIR, name)
        datasets[name] = (pick_samples(params, name, records), info)
    outcomes = generate_isolated(
        params, model, preset, datasets, layout, params.engine.name, f"generate@{model}-{preset}"
    )
    if not only:
        folder = layout.generations / model / preset
        for path in folder.glob("*.json*"):
            if path.name.removesuffix(".jsonl").removesuffix(".meta.json") not in datasets:
                path.unlink()
    return outcomes
