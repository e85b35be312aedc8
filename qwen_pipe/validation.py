"""Checking every model x preset configuration before anything runs, memory estimate included."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from qwen_pipe.config import Params, Preset, ValidateParams
from qwen_pipe.models.spec import ModelSpec

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
class ConfigCheck:
    model: str
    preset: str
    status: str  # "PASS" | "FAIL"
    reasons: list[str] = field(default_factory=list)
    memory: MemoryEstimate | None = None

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
    return ConfigCheck(spec.name, preset_name, status, failures or notes, memory)


def validate_all(params: Params) -> list[ConfigCheck]:
    """Every registered model (built-in and params.yaml) under every preset."""
    checks = []
    for name in params.model_names():
        spec = params.model(name)
        for preset_name in params.presets:
            preset = params.preset_for(name, preset_name)
            checks.append(check_configuration(spec, preset_name, preset, params.validate_))
    return checks
