"""Generate and score, kept apart: responses are saved, and any scorer can be rerun over them.

A generation record holds, per sample, every request the engine answered and its raw response.
A score record adds what the scorer extracted and the per-sample metrics.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm import tqdm

from qwen_pipe.cache import ChunkStore, digest
from qwen_pipe.engines.base import (
    Engine,
    Generation,
    GenerationRequest,
    Loglikelihood,
    LoglikelihoodRequest,
    SamplingParams,
)
from qwen_pipe.prompting import PromptRenderer, sha256_text
from qwen_pipe.tasks.base import (
    THINKING_MAX_NEW_TOKENS,
    GenerationTask,
    LoglikelihoodTask,
    PromptStyle,
    SampleScore,
    Task,
)

CHUNK = 256  # requests per engine call for engines that cannot stream results


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

    def sampling_for(self, task_sampling: SamplingParams) -> SamplingParams:
        thinking = self.style.enable_thinking
        budget = THINKING_MAX_NEW_TOKENS if thinking else task_sampling.max_new_tokens
        return SamplingParams(
            max_new_tokens=self.max_new_tokens or budget,
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            presence_penalty=self.presence_penalty,
            stop=() if thinking else task_sampling.stop,  # a stop string inside the thinking would cut it
            seed=self.seed,
        )


def select_samples(samples: list[dict], limit: int | None, seed: int = 0) -> list[dict]:
    """A deterministic subset: the `limit` samples whose sha256(seed:id) ranks lowest, in dataset order.

    It depends only on the ids, so it is the same on every machine, Python version and model, and
    raising the limit keeps every sample chosen before.
    """
    if limit is None or limit >= len(samples):
        return list(samples)
    rank = {s["id"]: hashlib.sha256(f"{seed}:{s['id']}".encode()).hexdigest() for s in samples}
    chosen = set(sorted(rank, key=rank.__getitem__)[:limit])
    return [s for s in samples if s["id"] in chosen]


class ResponseCache:
    """Engine responses keyed by everything that determines them; flushed to disk in chunks.

    The key covers the model's identity (content hash of a local folder, or hub id at a commit), the
    engine and its version, the exact prompt after the chat template, the sampling parameters and the
    seed. Change any of them and the key changes; change a scorer and nothing here does.
    """

    def __init__(self, directory: Path, model_identity: str, engine: tuple[str, str], flush_every: int = 64):
        self.store = ChunkStore(directory)
        self.entries = self.store.load()
        self.base = {"model": model_identity, "engine": list(engine)}
        self.flush_every = flush_every
        self.pending: list[tuple[str, dict]] = []
        self.hits = self.misses = 0

    def generation_key(self, request: GenerationRequest) -> str:
        return digest({**self.base, "prompt": request.prompt, "sampling": asdict(request.sampling)})

    def loglikelihood_key(self, request: LoglikelihoodRequest) -> str:
        return digest({**self.base, "context": request.context, "continuation": request.continuation})

    def get(self, key: str) -> dict | None:
        value = self.entries.get(key)
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value

    def put(self, key: str, value: dict) -> None:
        self.entries[key] = value
        self.pending.append((key, value))
        if len(self.pending) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        self.store.append(self.pending)
        self.pending = []


def generate_records(
    task: Task,
    samples: Sequence[dict],
    engine: Engine,
    renderer: PromptRenderer,
    settings: GenerationSettings,
    cache: ResponseCache | None = None,
    with_gold: bool | None = None,
) -> list[dict]:
    """Run the engine on every request of every sample; one record per sample, in sample order.

    With a cache, answered requests are read back and only the others reach the engine; new answers
    are flushed in chunks as they finish, so an interrupted run loses at most one chunk. Gold answers
    are attached to requests only for the oracle engine (`with_gold` None: decided by the engine).
    """
    if isinstance(task, LoglikelihoodTask):
        return _loglikelihood_records(task, samples, engine, cache)
    if isinstance(task, GenerationTask):
        if with_gold is None:
            with_gold = engine.info.engine.startswith("oracle")
        return _generation_records(task, samples, engine, renderer, settings, cache, with_gold)
    raise TypeError(f"{type(task).__name__} is neither a generation nor a log-likelihood task")


def _answer_all(
    requests: list, cache: ResponseCache | None, key, run_chunk, stream, unpack
) -> tuple[list, list[bool]]:
    """Answers for `requests` from the cache or the engine, and which of them came from the cache."""
    answers: list = [None] * len(requests)
    keys = [key(r) for r in requests] if cache else []
    todo = []
    for index in range(len(requests)):
        hit = cache.get(keys[index]) if cache else None
        if hit is None:
            todo.append(index)
        else:
            answers[index] = unpack(hit)
    cached = [answers[i] is not None for i in range(len(requests))]

    def keep(index: int, answer) -> None:
        answers[index] = answer
        if cache and getattr(answer, "finish_reason", "") != "prompt_too_long":
            cache.put(keys[index], asdict(answer))

    if stream is not None:
        for position, answer in stream([requests[i] for i in todo]):
            keep(todo[position], answer)
    else:
        for start in range(0, len(todo), CHUNK):
            chunk = todo[start : start + CHUNK]
            for index, answer in zip(chunk, run_chunk([requests[i] for i in chunk]), strict=True):
                keep(index, answer)
    if cache:
        cache.flush()
    return answers, cached


def _loglikelihood_records(
    task: LoglikelihoodTask, samples: Sequence[dict], engine: Engine, cache: ResponseCache | None
) -> list[dict]:
    per_sample = [task.loglikelihood_requests(s) for s in samples]
    flat = [r for requests in per_sample for r in requests]
    answers, cached = _answer_all(
        flat,
        cache,
        cache.loglikelihood_key if cache else None,
        engine.loglikelihood,
        None,
        lambda v: Loglikelihood(**v),
    )
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
) -> list[dict]:
    style = settings.style
    sampling = settings.sampling_for(task.sampling(style))
    records = [{"id": s["id"], "responses": []} for s in samples]
    turns = [task.turns(s) for s in samples]
    for turn in range(max(turns, default=0)):
        active = [i for i, n in enumerate(turns) if n > turn]
        requests = []
        for i in active:
            history = [r["text"] for r in records[i]["responses"]]
            prompt = task.prompt(samples[i], style, history)
            text = renderer.render(prompt, style)
            gold = task.gold_output(samples[i], turn) if with_gold else None
            requests.append(GenerationRequest(text, task.sample_sampling(samples[i], sampling), gold))
        answers, cached = _answer_all(
            requests,
            cache,
            cache.generation_key if cache else None,
            engine.generate,
            getattr(engine, "iter_generate", None),
            lambda v: Generation(**v),
        )
        for i, request, answer, hit in zip(active, requests, answers, cached, strict=True):
            records[i]["responses"].append(
                {
                    "prompt": request.prompt,
                    "prompt_sha256": sha256_text(request.prompt),
                    "cached": hit,
                    **asdict(answer),
                }
            )
    return records


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


VOLATILE = ("seconds", "cached")  # response fields that do not change what a scorer sees


def scorer_fingerprint() -> str:
    """A hash of every source file that can change a score: task modules, scoring and the sandbox."""
    import qwen_pipe

    root = Path(qwen_pipe.__file__).parent
    files = sorted(
        p
        for sub in ("tasks", "scoring", "sandbox")
        for p in (root / sub).rglob("*")
        if p.is_file() and p.suffix in {".py", ".jsonl", ".json", ".txt"}
    )
    digest_ = hashlib.sha256()
    for path in files:
        digest_.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest_.hexdigest()


def score_records(
    task: Task,
    samples: Sequence[dict],
    records: Sequence[dict],
    style: PromptStyle,
    progress: bool = False,
    cache: ChunkStore | None = None,
    flush_every: int = 64,
) -> tuple[list[dict], dict[str, dict]]:
    """Per-sample score rows and the aggregate metrics (mean, stderr, n of each).

    With a cache, samples already scored by the same scorer code on the same responses are read back,
    and new scores are flushed every few samples: a killed score stage resumes where it stopped.
    """
    by_id = {s["id"]: s for s in samples}
    missing = [r["id"] for r in records if r["id"] not in by_id]
    if missing:
        from qwen_pipe.errors import QwenPipeError

        raise QwenPipeError(
            f"{task.name}: {len(missing)} generated samples are not in the dataset (e.g. {missing[0]!r})",
            "the dataset changed after generation: rerun generate (dvc repro)",
        )
    ordered = [by_id[r["id"]] for r in records]
    known = cache.load() if cache else {}
    fingerprint = scorer_fingerprint() if cache else ""
    keys = [
        digest(
            {
                "scorer": fingerprint,
                "task": task.name,
                "shots": task.shots,
                "style": asdict(style),
                "sample": sample,
                "responses": [{k: v for k, v in r.items() if k not in VOLATILE} for r in record["responses"]],
            }
        )
        if cache
        else ""
        for sample, record in zip(ordered, records, strict=True)
    ]
    scores: list[SampleScore | None] = [SampleScore(**known[key]) if key in known else None for key in keys]
    todo = [i for i, score in enumerate(scores) if score is None]
    with tqdm(total=len(todo), desc=f"score {task.name}", disable=not progress, leave=False) as bar:
        for start in range(0, len(todo), flush_every):
            chunk = todo[start : start + flush_every]
            fresh = task.score_all(
                [ordered[i] for i in chunk], [responses_of(records[i]) for i in chunk], style
            )
            for i, score in zip(chunk, fresh, strict=True):
                scores[i] = score
            if cache:
                cache.append((keys[i], asdict(scores[i])) for i in chunk)
            bar.update(len(chunk))
    final = [s for s in scores if s is not None]
    rows = []
    for record, score in zip(records, final, strict=True):
        first = record["responses"][0] if record["responses"] else {}
        rows.append(
            {
                "id": record["id"],
                "prompt_sha256": first.get("prompt_sha256") or first.get("context_sha256"),
                "output": [r["text"] for r in record["responses"] if "text" in r] or None,
                "extracted": score.extracted,
                "metrics": score.metrics,
                "correct": bool(score.metrics.get(task.primary_metric, 0.0) >= 1.0),
            }
        )
    return rows, task.aggregate(ordered, final)
