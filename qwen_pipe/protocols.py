"""Evaluation protocols: named settings that decide how every task is asked and graded.

A protocol is chosen once per run (params `protocol`, `qwen-pipe eval --protocol`). It reaches a task as
`Task.protocol`, where the task picks its prompt, shots, stops, budget and extraction; and it decides two
run-level things here: whether chat models get their chat template, and the sampling of post-trained
models. It is recorded in every generation's metadata, every metrics file and the report, and it is part
of the response-cache key. docs/tasks.md lists what each task does under each protocol.
"""

from __future__ import annotations

from dataclasses import dataclass

from qwen_pipe.errors import unknown_name

LM_EVAL_VERSION = "0.4.13"  # the lm-evaluation-harness release the `lm-eval` protocol reproduces


@dataclass(frozen=True)
class Protocol:
    name: str
    description: str
    chat_template: bool  # False: every model gets plain-text prompts, as lm-eval's default invocation does
    qwen_sampling: bool  # post-trained models sample with Qwen's published settings and output budget


PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in (
        Protocol(
            "qwen-pipe",
            "qwen-pipe's own prompts: the published shots and exemplars, chat models asked through their "
            "chat template (few-shot as earlier turns), greedy, each task's own output budget",
            chat_template=True,
            qwen_sampling=False,
        ),
        Protocol(
            "lm-eval",
            f"lm-evaluation-harness {LM_EVAL_VERSION} as `lm_eval --model vllm --tasks <its task>` runs it: "
            "its prompt text, shots, stops, output budget, extraction filters and metrics; plain-text "
            "prompts for every model (no --apply_chat_template), greedy",
            chat_template=False,
            qwen_sampling=False,
        ),
        Protocol(
            "qwen",
            "Qwen's published settings (Qwen3 technical report): base models greedy with the report's shots; "
            "post-trained models sampled (thinking T 0.6, top-p 0.95, top-k 20; non-thinking T 0.7, top-p "
            "0.8, top-k 20, presence penalty 1.5) with up to 32,768 output tokens (the long_context preset)",
            chat_template=True,
            qwen_sampling=True,
        ),
    )
}
DEFAULT_PROTOCOL = "qwen-pipe"

# Qwen3 technical report, post-trained models: sampling per mode.
QWEN_THINKING_SAMPLING = {"temperature": 0.6, "top_p": 0.95, "top_k": 20, "presence_penalty": 0.0}
QWEN_NON_THINKING_SAMPLING = {"temperature": 0.7, "top_p": 0.8, "top_k": 20, "presence_penalty": 1.5}


def protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise unknown_name("protocol", name, list(PROTOCOLS))
    return PROTOCOLS[name]


@dataclass(frozen=True)
class Mode:
    """How one model is asked under a protocol: generation and `validate` both read it from here."""

    chat: bool  # through the chat template
    thinking: bool  # Qwen3 thinking on
    qwen_sampling: bool  # Qwen's published sampling (a post-trained model under `qwen`)

    @property
    def long_output(self) -> bool:
        """Thinking's 32,768-token output budget (also non-thinking under `qwen`)."""
        return self.thinking or self.qwen_sampling

    @property
    def capped(self) -> bool:
        """`qwen` without thinking: "up to" 32,768 tokens, i.e. capped at the context the prompt leaves
        (Qwen2.5's 32K and Qwen-1's 8K contexts cannot hold more); thinking keeps its whole budget or does
        not fit."""
        return self.qwen_sampling and not self.thinking


def run_mode(name: str, chat_model: bool, supports_thinking: bool, thinking: bool) -> Mode:
    """`thinking`: params generate.thinking; it applies only to chat models that have the mode."""
    setting = protocol(name)
    chat = chat_model and setting.chat_template
    thinks = chat and thinking and supports_thinking
    return Mode(chat, thinks, chat and setting.qwen_sampling)


def check_protocol(name: str) -> str:
    """`name` if it is a protocol, else a one-line error listing them."""
    return protocol(name).name
