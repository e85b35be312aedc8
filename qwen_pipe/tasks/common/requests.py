"""What a task asks of an engine, before any model's chat template: its fingerprint and its size.

The fetch stage writes both into the dataset's metadata. Generation depends on that fingerprint instead
of on task code, so an edit that changes no request (a scorer fix, a refactor) reruns no generation, and
one that does changes the fingerprint and reruns exactly the generation of that dataset. `validate`
reads the sizes to prove that every prompt plus its output budget fits each preset's context.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict

from qwen_pipe.engines.base import SamplingParams
from qwen_pipe.protocols import DEFAULT_PROTOCOL
from qwen_pipe.tasks.common.base import GenerationTask, LoglikelihoodTask, Prompt, PromptStyle, Task

STYLES = {
    "base": PromptStyle(chat=False),
    "chat": PromptStyle(chat=True),
    "thinking": PromptStyle(chat=True, enable_thinking=True),
}
RUN_SAMPLING = SamplingParams(
    max_new_tokens=1, seed=0
)  # stands in for the run's own, to see per-sample changes


def _earlier_answer(turn: int) -> str:
    return f"<answer to turn {turn + 1}>"


def _chatml(prompt: Prompt) -> str:
    if isinstance(prompt, str):
        return prompt
    turns = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in prompt)
    return turns + "<|im_start|>assistant\n"


def sample_requests(task: Task, sample: dict, style: PromptStyle) -> list:
    """Everything the task sends for one sample in one style (earlier answers as placeholders)."""
    if isinstance(task, LoglikelihoodTask):
        return [asdict(r) for r in task.loglikelihood_requests(sample)]
    assert isinstance(task, GenerationTask)
    out: list = [asdict(task.sample_sampling(sample, RUN_SAMPLING))]
    for turn in range(task.turns(sample)):
        history = [_earlier_answer(t) for t in range(turn)]
        out.append([task.prompt(sample, style, history), task.gold_output(sample, turn)])
    return out


def styles_of(task: Task) -> dict[str, PromptStyle]:
    """Log-likelihood requests are the same in every style: one is enough."""
    return {"base": STYLES["base"]} if isinstance(task, LoglikelihoodTask) else STYLES


def requests_summary(task: Task, records: Sequence[dict]) -> dict:
    """sha256 of every request of every record in every style, and the sizes `validate` checks.

    `prompt_tokens[style]` is the longest first-turn prompt in Qwen tokens (a log-likelihood request:
    context and continuation), `output_tokens[style]` the task's output budget (0: log-likelihood, no
    output), `turns` the most turns of a sample: turn n's prompt also holds n earlier answers.
    """
    from qwen_pipe.models.tokenizer import qwen_encoding

    encoding = qwen_encoding()
    # the protocol leads the digest; the default one's fingerprints are those from before protocols existed
    digest = hashlib.sha256(b"" if task.protocol == DEFAULT_PROTOCOL else task.protocol.encode())
    prompt_tokens: dict[str, int] = {}
    output_tokens: dict[str, int] = {}
    turns = 1
    for name, style in styles_of(task).items():
        digest.update(name.encode())
        output_tokens[name] = 0
        if isinstance(task, GenerationTask):
            sampling = task.sampling(style)
            output_tokens[name] = sampling.max_new_tokens
            digest.update(json.dumps(asdict(sampling), sort_keys=True).encode())
        texts: list[str] = []
        for record in records:
            requests = sample_requests(task, record, style)
            digest.update(json.dumps(requests, sort_keys=True, ensure_ascii=False).encode())
            if isinstance(task, LoglikelihoodTask):
                texts += [r["context"] + r["continuation"] for r in requests]
            else:
                texts.append(_chatml(requests[1][0]) if style.chat else requests[1][0])
                turns = max(turns, len(requests) - 1)
        lengths = encoding.encode_ordinary_batch(texts) if texts else []
        prompt_tokens[name] = max((len(ids) for ids in lengths), default=0)
    return {
        "sha256": digest.hexdigest(),
        "prompt_tokens": prompt_tokens,
        "output_tokens": output_tokens,
        "turns": turns,
    }
