"""Checking every model x preset configuration before anything runs: memory, and whether every prompt of
the run plus its output budget fits the context (an output cut at the context limit is a silent 0)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from qwen_pipe.config import (
    THINKING_MAX_NEW_TOKENS,
    GenerateParams,
    Params,
    Preset,
    ValidateParams,
    output_budget,
)
from qwen_pipe.engines.registry import engine_info
from qwen_pipe.errors import QwenPipeError
from qwen_pipe.io import read_json
from qwen_pipe.models.spec import Kind, ModelSpec
from qwen_pipe.protocols import DEFAULT_PROTOCOL, run_mode

# Chat templates differ by model (Qwen2.5 adds a default system prompt; Qwen3 an empty think block): prompt
# sizes are measured as ChatML (tasks/common/requests.py), and this many tokens are allowed on top.
CHAT_TEMPLATE_MARGIN = 64

GIB = 1024**3
DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4, "auto": 2}
KV_BYTES = {"auto": None, "fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1}
WEIGHT_BYTES = {None: None, "fp8": 1.0, "awq": 0.5, "gptq": 0.5, "bitsandbytes": 0.5}


@dataclass
class MemoryEstimate:
    weights_gib: float
    kv_cache_gib: float
    overhead_gib: float
    total_gib: float
    budget_gib: float  # device memory x the preset's memory utilisation, per GPU
    max_model_len: int
    max_num_seqs: int


@dataclass
class Fit:
    """Whether the longest request of a dataset fits one model x preset's context."""

    dataset: str
    style: str  # base | chat | thinking
    prompt_tokens: int  # the longest prompt (ChatML-measured, plus a margin for other chat templates)
    output_tokens: int  # the output budget of every turn
    turns: int
    needed: int  # prompt + turns x output budget
    context: int  # the preset's max_model_len, capped at the model's positions
    fits: bool
    budget: int | None = None  # a capped budget (`qwen` protocol): the budget before the cap


@dataclass
class ConfigCheck:
    model: str
    preset: str
    status: str  # "PASS" | "FAIL"
    reasons: list[str] = field(default_factory=list)
    memory: MemoryEstimate | None = None
    fits: list[Fit] = field(default_factory=list)  # the run's datasets, for the presets that generate
    kind: Kind = "post-trained"  # the model's (ModelSpec.kind): "base" or "post-trained"

    def as_dict(self) -> dict:
        return asdict(self)


def estimate_memory(spec: ModelSpec, preset: Preset, device: ValidateParams) -> MemoryEstimate:
    """Weights plus a KV cache holding max_num_seqs sequences of max_model_len tokens, per GPU."""
    arch = spec.architecture
    dtype_bytes = DTYPE_BYTES[preset.dtype if preset.dtype != "auto" else arch.torch_dtype]
    quant_bytes = WEIGHT_BYTES[preset.quantization]
    embedding_params = arch.vocab_size * arch.hidden_size * (1 if arch.tie_word_embeddings else 2)
    if quant_bytes is None:
        weights = spec.parameters * dtype_bytes
    else:  # quantised linear layers; embeddings and LM head stay in the activation dtype
        weights = (spec.parameters - embedding_params) * quant_bytes + embedding_params * dtype_bytes
    max_model_len = min(preset.max_model_len, arch.max_position_embeddings)
    kv_bytes = KV_BYTES[preset.kv_cache_dtype] or dtype_bytes
    kv = arch.kv_bytes_per_token(kv_bytes) * max_model_len * preset.max_num_seqs
    tp = preset.tensor_parallel_size
    weights_gib, kv_gib = weights / tp / GIB, kv / tp / GIB
    total = weights_gib + kv_gib + device.activation_overhead_gb
    return MemoryEstimate(
        weights_gib=round(weights_gib, 2),
        kv_cache_gib=round(kv_gib, 2),
        overhead_gib=device.activation_overhead_gb,
        total_gib=round(total, 2),
        budget_gib=round(device.device_memory_gb * preset.gpu_memory_utilization, 2),
        max_model_len=max_model_len,
        max_num_seqs=preset.max_num_seqs,
    )


def check_configuration(
    spec: ModelSpec, preset_name: str, preset: Preset, device: ValidateParams
) -> ConfigCheck:
    arch = spec.architecture
    failures: list[str] = []
    notes: list[str] = []
    tp = preset.tensor_parallel_size
    if arch.num_attention_heads % tp or (arch.num_key_value_heads % tp and tp % arch.num_key_value_heads):
        failures.append(
            f"tensor_parallel_size {tp} does not divide {arch.num_attention_heads} attention / "
            f"{arch.num_key_value_heads} KV heads"
        )
    if preset.max_num_batched_tokens < preset.max_num_seqs:
        failures.append(
            f"max_num_batched_tokens {preset.max_num_batched_tokens} < max_num_seqs {preset.max_num_seqs}"
        )
    if preset.max_model_len > arch.max_position_embeddings:
        notes.append(f"max_model_len capped at the model's {arch.max_position_embeddings} positions")
    if preset.quantization and preset.quantization != "fp8":
        failures.append(
            f"quantization {preset.quantization} needs a pre-quantised checkpoint; {spec.hf_id} is not one"
        )
    memory = estimate_memory(spec, preset, device)
    if memory.total_gib > memory.budget_gib:
        failures.append(
            f"needs {memory.total_gib} GiB (weights {memory.weights_gib} + KV {memory.kv_cache_gib} for "
            f"{memory.max_num_seqs} x {memory.max_model_len} tokens + {memory.overhead_gib} overhead) > "
            f"budget {memory.budget_gib} GiB; lower max_num_seqs or max_model_len, or use an fp8 KV cache"
        )
    else:
        notes.append(f"fits: {memory.total_gib} of {memory.budget_gib} GiB")
    status = "FAIL" if failures else "PASS"
    return ConfigCheck(spec.name, preset_name, status, failures or notes, memory, kind=spec.kind)


def request_fit(
    spec: ModelSpec,
    preset: Preset,
    dataset: str,
    requests: dict,
    generate: GenerateParams,
    protocol: str = DEFAULT_PROTOCOL,
) -> Fit:
    """The longest request of `dataset` (its fetch-time summary, tasks/requests.py) against the context
    of one model x preset, asked as the protocol asks it."""
    mode = run_mode(protocol, spec.chat, spec.supports_thinking, generate.thinking)
    style = "base" if not mode.chat else "thinking" if mode.thinking else "chat"
    if style not in requests["output_tokens"]:  # log-likelihood: one forward pass, the same in every style
        style = "base"
    task_budget = requests["output_tokens"][style]
    if task_budget == 0:
        prompt, output, turns = requests["prompt_tokens"][style], 1, 1
    else:
        prompt = requests["prompt_tokens"][style] + (CHAT_TEMPLATE_MARGIN if mode.chat else 0)
        output = output_budget(generate.max_new_tokens, mode.long_output, task_budget)
        turns = requests.get("turns", 1)
    context = min(preset.max_model_len, spec.architecture.max_position_embeddings)
    room = max(context - prompt, 0) // turns
    if task_budget and mode.capped and output > room:
        # "up to" the budget: what the context leaves, which must still hold the task's own budget
        capped = Fit(dataset, style, prompt, room, turns, prompt + turns * room, context, True, budget=output)
        capped.fits = room >= min(task_budget, output)
        return capped
    needed = prompt + turns * output
    return Fit(dataset, style, prompt, output, turns, needed, context, needed <= context)


def _misfit(fit: Fit) -> str:
    if fit.budget is not None:  # capped ("up to" the budget): not even the task's own budget is left
        room = max(fit.context - fit.prompt_tokens, 0)
        return (
            f"{fit.dataset}: {fit.prompt_tokens:,} prompt tokens leave {room:,} of context {fit.context:,} for "
            f"the output (up to {fit.budget:,}), less than the task's own budget; use a preset with a larger "
            "max_model_len (long_context)"
        )
    thinking = " with thinking" if fit.style == "thinking" else ""
    if fit.style == "thinking":
        fix = "generate with the long_context preset (generate.presets) or set generate.thinking false"
    elif fit.output_tokens >= THINKING_MAX_NEW_TOKENS:  # the `qwen` protocol's post-trained budget
        fix = "generate with the long_context preset (generate.presets) or lower generate.max_new_tokens"
    else:
        fix = "use a preset with a larger max_model_len, or lower generate.max_new_tokens"
    turns = f" x {fit.turns} turns" if fit.turns > 1 else ""
    return (
        f"{fit.dataset}{thinking}: {fit.prompt_tokens:,} prompt + {fit.output_tokens:,} output tokens{turns} "
        f"= {fit.needed:,} > context {fit.context:,}; {fix}"
    )


def configuration_checks(params: Params, models: list[str], presets: list[str]) -> list[ConfigCheck]:
    """The validate stage's configuration check (memory estimate and engine limits) of each model x preset."""
    return [
        check_configuration(params.model(model), preset, params.preset_for(model, preset), params.validate_)
        for model in models
        for preset in presets
    ]


def thinking_note(spec: ModelSpec) -> str | None:
    """Why a run with generate.thinking true does not think on this model (None: it does)."""
    if not spec.chat:
        return "thinking off: a base model (plain prompts, no chat template, no thinking budget)"
    if not spec.supports_thinking:
        return "thinking off: the model has no thinking mode (no thinking budget)"
    return None


def prompts_skipped(params: Params, model: str, preset: str) -> str | None:
    """Why the prompts of the run are not checked against one model x preset (None: they are)."""
    if model not in params.run.models:
        return "prompts not checked: the model is not in run.models"
    if preset not in params.generate.presets:
        return "prompts not checked: the preset does not generate (not in generate.presets)"
    return None


def validate_all(params: Params, requests: dict[str, dict] | None = None) -> list[ConfigCheck]:
    """Every registered model (built-in, base and post-trained, and params.yaml) under every preset, the
    long_context one included; with `requests` (dataset -> its fetch-time summary), also every prompt of
    the run's datasets for each model and preset that generates, and a note on every other configuration
    saying why its prompts were not checked."""
    engine_info(params.engine.name)  # an unknown engine is a one-line error naming the known ones
    checks = []
    for name in params.model_names():
        spec = params.model(name)
        for preset_name in params.presets:
            preset = params.preset_for(name, preset_name)
            check = check_configuration(spec, preset_name, preset, params.validate_)
            skipped = prompts_skipped(params, name, preset_name) if requests else None
            if requests and not skipped:
                check.fits = [
                    request_fit(spec, preset, dataset, requests[dataset], params.generate, params.protocol)
                    for dataset in params.run.datasets
                ]
                misfits = [_misfit(f) for f in check.fits if not f.fits]
                if misfits:
                    check.reasons = [*(r for r in check.reasons if check.status == "FAIL"), *misfits]
                    check.status = "FAIL"
                elif check.status == "PASS" and params.generate.thinking and (note := thinking_note(spec)):
                    check.reasons.append(note)
                if check.status == "PASS" and (capped := [f for f in check.fits if f.budget]):
                    least = min(capped, key=lambda f: f.output_tokens)
                    check.reasons.append(
                        f"output capped at the context left after the prompt ({least.output_tokens:,} of "
                        f"{least.budget:,} tokens for {least.dataset}; the long_context preset leaves more)"
                    )
            elif skipped and check.status == "PASS":
                check.reasons.append(skipped)
            checks.append(check)
    return checks


def run_requests(params: Params, datasets_dir: Path) -> dict[str, dict]:
    """The request summaries the fetch stage wrote for the run's datasets."""
    out = {}
    for dataset in params.run.datasets:
        meta = datasets_dir / f"{dataset}.meta.json"
        summary = read_json(meta).get("requests") if meta.is_file() else None
        if summary is None:
            raise QwenPipeError(
                f"{meta} has no request summary", f"run the fetch stage first: dvc repro fetch@{dataset}"
            )
        out[dataset] = summary
    return out
