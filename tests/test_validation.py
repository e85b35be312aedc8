"""validate: 18 built-in configurations with a memory estimate; impossible ones FAIL with the reason."""

from __future__ import annotations

from qwen_pipe.config import ValidateParams, load_params
from qwen_pipe.models.registry import BUILTIN_MODELS
from qwen_pipe.validation import check_configuration, estimate_memory, validate_all

from support import ROOT


def test_all_eighteen_builtin_configurations_pass():
    params = load_params(ROOT / "params.yaml")
    checks = [c for c in validate_all(params) if c.model in BUILTIN_MODELS]
    assert len(checks) == 18
    assert {c.status for c in checks} == {"PASS"}, [c for c in checks if c.status != "PASS"]


def test_memory_estimate_is_weights_plus_kv():
    params = load_params(ROOT / "params.yaml")
    spec = BUILTIN_MODELS["qwen3_8b"]
    preset = params.presets["balanced"]
    estimate = estimate_memory(spec, preset, ValidateParams())
    # bf16 weights: 8.19e9 x 2 bytes; KV: 2 x 36 layers x 8 heads x 128 x 2 bytes per token.
    assert abs(estimate.weights_gib - 8_190_735_360 * 2 / 1024**3) < 0.01
    kv = 2 * 36 * 8 * 128 * 2 * preset.max_model_len * preset.max_num_seqs / 1024**3
    assert abs(estimate.kv_cache_gib - kv) < 0.01
    assert estimate.budget_gib == 80 * preset.gpu_memory_utilization


def test_a_config_that_cannot_fit_fails_with_numbers():
    params = load_params(ROOT / "params.yaml")
    greedy = params.presets["balanced"].model_copy(update={"max_num_seqs": 256})
    check = check_configuration(BUILTIN_MODELS["qwen_14b"], "greedy", greedy, ValidateParams())
    assert check.status == "FAIL"
    assert "GiB" in check.reasons[0] and "max_num_seqs" in check.reasons[0]


def test_qwen1_needs_its_override():
    """Qwen-7B has no GQA: without the override, balanced does not fit an 80 GB H100."""
    params = load_params(ROOT / "params.yaml")
    check = check_configuration(
        BUILTIN_MODELS["qwen_8b"], "balanced", params.presets["balanced"], ValidateParams()
    )
    assert check.status == "FAIL"


def test_tensor_parallel_must_divide_heads():
    params = load_params(ROOT / "params.yaml")
    preset = params.presets["balanced"].model_copy(update={"tensor_parallel_size": 3})
    check = check_configuration(BUILTIN_MODELS["qwen3_8b"], "tp3", preset, ValidateParams())
    assert check.status == "FAIL" and "tensor_parallel_size 3" in check.reasons[0]


def test_fp8_halves_weights_except_embeddings():
    params = load_params(ROOT / "params.yaml")
    spec = BUILTIN_MODELS["qwen3_14b"]
    bf16 = estimate_memory(spec, params.presets["balanced"], ValidateParams())
    fp8 = estimate_memory(spec, params.presets["memory_optimized"], ValidateParams())
    assert bf16.weights_gib / 2 < fp8.weights_gib < bf16.weights_gib * 0.6
