"""Turning a task's prompt into the exact text the engine sees (the model's chat template, or none)."""

from __future__ import annotations

import hashlib
from functools import cached_property

from qwen_pipe.errors import QwenPipeError
from qwen_pipe.models.spec import ModelSpec
from qwen_pipe.tasks.common.base import Prompt, PromptStyle


class PromptRenderer:
    """Renders prompts for one model; the tokenizer (and its chat template) is loaded on first use."""

    def __init__(self, spec: ModelSpec):
        self.spec = spec

    @cached_property
    def tokenizer(self):
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(
                self.spec.hf_id, revision=self.spec.revision, trust_remote_code=self.spec.trust_remote_code
            )
        except Exception as error:  # noqa: BLE001 - missing folder, offline hub, gated repo
            reason = str(error).splitlines()[0][:160] if str(error) else type(error).__name__
            fix = (
                "build it with `dvc repro build_models` (or run `qwen-pipe eval`, which builds tiny models)"
                if self.spec.tiny
                else "check the model's hf_id / path, or log in to the hub (HF_TOKEN) on a networked host"
            )
            raise QwenPipeError(
                f"cannot load the tokenizer of {self.spec.name} ({self.spec.hf_id}): {reason}", fix
            ) from None
        if self.spec.chat_template:
            tokenizer.chat_template = self.spec.chat_template
        return tokenizer

    @property
    def chat_template_sha256(self) -> str | None:
        template = self.tokenizer.chat_template
        if template is None:
            return None
        text = template if isinstance(template, str) else repr(template)
        return hashlib.sha256(text.encode()).hexdigest()

    def render(self, prompt: Prompt, style: PromptStyle) -> str:
        if isinstance(prompt, str):
            return prompt
        if not style.chat:
            raise QwenPipeError(
                "a chat prompt for a completion-style run", "report this task's prompt as a bug"
            )
        if self.tokenizer.chat_template is None:
            raise QwenPipeError(
                f"{self.spec.name} has no chat template",
                "set chat_template for it in params.yaml model_registry",
            )
        options = {"enable_thinking": style.enable_thinking} if self.spec.supports_thinking else {}
        return self.tokenizer.apply_chat_template(
            prompt, tokenize=False, add_generation_prompt=True, **options
        )


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
