"""Base models beside the post-trained ones: plain prompts (never a chat template), never thinking, their
kind shown by `qwen-pipe models` and `qwen-pipe validate`."""

from __future__ import annotations

import json
import shutil
from typing import ClassVar

import pytest
import yaml
from jinja2.sandbox import ImmutableSandboxedEnvironment

from qwen_pipe.config import load_params
from qwen_pipe.engines.base import Generation
from qwen_pipe.fetch import load_records
from qwen_pipe.generate import generate_records, generation_settings, prompt_style
from qwen_pipe.models.registry import BUILTIN_MODELS
from qwen_pipe.models.tokenizer import CHAT_TEMPLATE
from qwen_pipe.prompting import PromptRenderer
from qwen_pipe.tasks.common.base import PromptStyle
from qwen_pipe.tasks.common.registry import task_for

from support import ROOT, qwen_pipe

TWINS = {
    "qwen3_8b_base": "qwen3_8b",
    "qwen3_14b_base": "qwen3_14b",
    "qwen2.5_8b_base": "qwen2.5_8b",
    "qwen2.5_14b_base": "qwen2.5_14b",
    "qwen_8b_base": "qwen_8b",
    "qwen_14b_base": "qwen_14b",
}
QWEN1_CHAT = {"Qwen/Qwen-7B-Chat", "Qwen/Qwen-14B-Chat"}  # their tokenizers ship no chat template


class HubTokenizer:
    """What AutoTokenizer.from_pretrained gives for a hub id, offline: the chat template the checkpoint ships
    (Qwen-1 Chat: none; the base checkpoints of Qwen3 and Qwen2.5 do ship one), rendered as transformers does."""

    loaded: ClassVar[list[str]] = []

    def __init__(self, hf_id: str):
        self.chat_template = None if hf_id in QWEN1_CHAT else CHAT_TEMPLATE

    @classmethod
    def from_pretrained(cls, hf_id: str, **_) -> HubTokenizer:
        cls.loaded.append(hf_id)
        return cls(hf_id)

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False, **options) -> str:
        def fail(message: str):
            raise ValueError(message)

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = fail
        template = env.from_string(self.chat_template)
        return template.render(messages=messages, add_generation_prompt=add_generation_prompt, **options)


class RecordingEngine:
    """Answers every request and keeps what it was sent."""

    def __init__(self):
        self.requests = []

    def generate(self, requests):
        self.requests += requests
        return [Generation("42", 10, 1, "stop") for _ in requests]


@pytest.fixture
def hub_tokenizers(monkeypatch):
    import transformers

    HubTokenizer.loaded = []
    monkeypatch.setattr(transformers, "AutoTokenizer", HubTokenizer)
    return HubTokenizer


def _params(thinking: bool):
    params = load_params(ROOT / "params.yaml")
    return params.model_copy(
        update={"generate": params.generate.model_copy(update={"thinking": thinking, "max_new_tokens": None})}
    )


def _generate(params, model: str, dataset: str, samples: int = 2):
    spec = params.model(model)
    task = task_for(params, dataset)
    records = load_records(task, "embedded", None)[0][:samples]
    settings = generation_settings(params, spec, "balanced")
    engine = RecordingEngine()
    generate_records(task, records, engine, PromptRenderer(spec), settings, with_gold=False)
    return task, records, settings, engine.requests


@pytest.mark.parametrize("thinking", [False, True], ids=["no-thinking", "thinking"])
@pytest.mark.parametrize("dataset", ["gsm8k", "humaneval", "mt_bench"])
@pytest.mark.parametrize("base", sorted(TWINS))
def test_a_base_model_gets_plain_prompts_its_twin_chatml(hub_tokenizers, base, dataset, thinking):
    params = _params(thinking)
    task, records, settings, requests = _generate(params, base, dataset)
    assert settings.style == PromptStyle(chat=False, enable_thinking=False)
    assert requests, "no request was sent"
    plain = [task.prompt(r, PromptStyle(chat=False), ["42"] * turn) for r in records for turn in range(2)]
    for request in requests:
        assert "<|im_start|>" not in request.prompt and "<think>" not in request.prompt
        assert request.prompt in plain  # exactly the task's completion-style prompt
        # the task's own budget and stop strings, never thinking's 32,768 tokens without stops
        assert request.sampling.max_new_tokens == task.sampling(PromptStyle(chat=False)).max_new_tokens
        assert request.sampling.stop == task.sampling(PromptStyle(chat=False)).stop
    # a base model's prompt never goes through a tokenizer's chat template (no tokenizer is even loaded)
    assert BUILTIN_MODELS[base].hf_id not in hub_tokenizers.loaded

    twin = TWINS[base]
    _, _, twin_settings, twin_requests = _generate(params, twin, dataset)
    assert twin_settings.style.chat is True
    assert twin_settings.style.enable_thinking is (thinking and twin.startswith("qwen3_"))
    empty_think = BUILTIN_MODELS[twin].supports_thinking and not twin_settings.style.enable_thinking
    suffix = "<|im_start|>assistant\n" + ("<think>\n\n</think>\n\n" if empty_think else "")
    assert twin_requests
    for request in twin_requests:  # ChatML through the twin's chat template
        assert request.prompt.startswith("<|im_start|>") and request.prompt.endswith(suffix)
        if twin.startswith("qwen_"):  # Qwen-1 Chat: the registry's template, with Qwen-1's system turn
            assert request.prompt.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>")
    assert BUILTIN_MODELS[twin].hf_id in hub_tokenizers.loaded


@pytest.mark.parametrize("base", sorted(TWINS))
def test_thinking_is_never_enabled_for_a_base_model(base):
    params = _params(thinking=True)
    spec = params.model(base)
    assert prompt_style(params, spec) == PromptStyle(chat=False, enable_thinking=False)
    assert prompt_style(params, params.model(TWINS[base])).enable_thinking is spec.family.startswith("qwen3")


def test_models_lists_the_kind_of_every_model():
    done = qwen_pipe("models", "--json")
    assert done.returncode == 0, done.stderr
    by_name = {m["name"]: m for m in json.loads(done.stdout)}
    for base, twin in TWINS.items():
        assert by_name[base]["kind"] == "base" and by_name[base]["chat"] is False
        assert by_name[twin]["kind"] == "post-trained" and by_name[twin]["chat"] is True
    assert by_name["qwen3_8b_base"]["hf_id"] == "Qwen/Qwen3-8B-Base"
    assert by_name["qwen_14b_base"]["hf_id"] == "Qwen/Qwen-14B"
    table = qwen_pipe("models").stdout.splitlines()
    assert table[0].split()[:3] == ["name", "kind", "hf_id"]
    rows = {line.split()[0]: line.split() for line in table[2:]}
    assert rows["qwen2.5_8b_base"][1:3] == ["base", "Qwen/Qwen2.5-7B"]
    assert rows["qwen2.5_8b"][1:3] == ["post-trained", "Qwen/Qwen2.5-7B-Instruct"]


def test_validate_over_the_h100_profile_lists_both_kinds_under_every_preset(tmp_path):
    """The acceptance line, through the CLI: `validate --params` on a copy switched to the h100 profile
    (embedded samples for the prompt sizes: no network, no mirror needed). Qwen-14B, Chat and base alike,
    cannot hold the generating preset's prompts in its 2,048 positions: validate says so and exits 2."""
    params = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", params)
    assert qwen_pipe("profile", "h100", "--params", str(params)).returncode == 0
    data = yaml.safe_load(params.read_text())
    data["fetch"]["source"] = "embedded"
    params.write_text(yaml.safe_dump(data))
    done = qwen_pipe("validate", "--params", str(params), "--json", cwd=tmp_path)
    assert "Traceback" not in done.stderr
    checks = {(c["model"], c["preset"]): c for c in json.loads(done.stdout)}
    presets = ["balanced", "performance", "memory_optimized", "long_context"]
    failing = {key for key, c in checks.items() if c["status"] == "FAIL"}
    assert failing == {("qwen_14b", "balanced"), ("qwen_14b_base", "balanced")}, failing
    assert done.returncode == 2 and f"2 of {len(checks)} configurations FAIL" in done.stderr
    for base, twin in TWINS.items():
        for preset in presets:
            assert checks[base, preset]["kind"] == "base" and checks[twin, preset]["kind"] == "post-trained"
        assert {f["style"] for f in checks[base, "balanced"]["fits"]} == {"base"}
        assert len(checks[base, "balanced"]["fits"]) == len(data["run"]["datasets"])
    table = qwen_pipe("validate", "--params", str(params), cwd=tmp_path).stdout.splitlines()
    assert table[0].split()[:4] == ["model", "kind", "preset", "status"]
    listed = {tuple(line.split()[:4]) for line in table[2:]}
    for base, twin in TWINS.items():
        for preset in presets:
            status = "FAIL" if (base, preset) in failing else "PASS"
            assert (base, "base", preset, status) in listed
            status = "FAIL" if (twin, preset) in failing else "PASS"
            assert (twin, "post-trained", preset, status) in listed
