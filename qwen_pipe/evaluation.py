"""Generate and score, kept apart: responses are saved, and any scorer can be rerun over them.

A generation record holds, per sample, every request the engine answered and its raw response.
A score record adds what the scorer extracted and the per-sample metrics.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from tqdm import tqdm

from qwen_pipe.engines.base import (
    Engine,
    Generation,
    GenerationRequest,
    Loglikelihood,
    SamplingParams,
)
from qwen_pipe.prompting import PromptRenderer, sha256_text
from qwen_pipe.tasks.base import GenerationTask, LoglikelihoodTask, PromptStyle, Task


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
        return SamplingParams(
            max_new_tokens=self.max_new_tokens or task_sampling.max_new_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            presence_penalty=self.presence_penalty,
            stop=task_sampling.stop,
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


def generate_records(
    task: Task,
    samples: Sequence[dict],
    engine: Engine,
    renderer: PromptRenderer,
    settings: GenerationSettings,
) -> list[dict]:
    """Run the engine on every request of every sample; one record per sample, in sample order."""
    if isinstance(task, LoglikelihoodTask):
        return _loglikelihood_records(task, samples, engine)
    if isinstance(task, GenerationTask):
        return _generation_records(task, samples, engine, renderer, settings)
    raise TypeError(f"{type(task).__name__} is neither a generation nor a log-likelihood task")


def _loglikelihood_records(task: LoglikelihoodTask, samples: Sequence[dict], engine: Engine) -> list[dict]:
    per_sample = [task.loglikelihood_requests(s) for s in samples]
    flat = [r for requests in per_sample for r in requests]
    answers = iter(engine.loglikelihood(flat))
    records = []
    for sample, requests in zip(samples, per_sample, strict=True):
        responses = []
        for request in requests:
            answer = next(answers)
            responses.append(
                {
                    "context_sha256": sha256_text(request.context),
                    "continuation": request.continuation,
                    "logprob": answer.logprob,
                    "is_greedy": answer.is_greedy,
                    "continuation_tokens": answer.continuation_tokens,
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
            requests.append(GenerationRequest(text, sampling, task.gold_output(samples[i], turn)))
        for i, request, answer in zip(active, requests, engine.generate(requests), strict=True):
            records[i]["responses"].append(
                {
                    "prompt": request.prompt,
                    "prompt_sha256": sha256_text(request.prompt),
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
            out.append(Generation(r["text"], r["prompt_tokens"], r["output_tokens"], r["finish_reason"], r["seconds"]))
    return out


def score_records(
    task: Task, samples: Sequence[dict], records: Sequence[dict], style: PromptStyle, progress: bool = False
) -> tuple[list[dict], dict[str, dict]]:
    """Per-sample score rows and the aggregate metrics (mean, stderr, n of each)."""
    by_id = {s["id"]: s for s in samples}
    missing = [r["id"] for r in records if r["id"] not in by_id]
    if missing:
        from qwen_pipe.errors import QwenPipeError

        raise QwenPipeError(
            f"{task.name}: {len(missing)} generated samples are not in the dataset (e.g. {missing[0]!r})",
            "the dataset changed after generation: rerun generate (dvc repro)",
        )
    ordered = [by_id[r["id"]] for r in records]
    responses = [responses_of(r) for r in tqdm(records, desc=f"score {task.name}", disable=not progress)]
    scores = task.score_all(ordered, responses, style)
    rows = []
    for record, score in zip(records, scores, strict=True):
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
    return rows, task.aggregate(ordered, scores)
