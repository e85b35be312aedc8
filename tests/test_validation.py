"""validate: 24 built-in configurations with a memory estimate; impossible ones FAIL with the reason."""

from __future__ import annotations

from qwen_pipe.config import ValidateParams, load_params
from qwen_pipe.models.registry import BUILTIN_MODELS
from qwen_pipe.validation import check_configuration, estimate_memory, validate_all

from support import ROOT


def test_all_twenty_four_builtin_configurations_pass():
    params = load_params(ROOT / "params.yaml")
    checks = [c for c in validate_all(params) if c.model in BUILTIN_MODELS]
    assert len(checks) == 6 * 4  # six models x balanced, performance, memory_optimized, long_context
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


def _summaries(params) -> dict[str, dict]:
    from qwen_pipe.fetch import load_records
    from qwen_pipe.tasks.common.registry import task_for
    from qwen_pipe.tasks.common.requests import requests_summary

    out = {}
    for dataset in params.run.datasets:
        task = task_for(params, dataset)
        out[dataset] = requests_summary(task, load_records(task, "embedded", None)[0])
    return out


def _run(**generate) -> list:
    """validate over real models with the tasks' own (published) budgets, not the embedded default's cap."""
    generate = {"max_new_tokens": None, **generate}
    params = load_params(ROOT / "params.yaml")
    params = params.model_copy(
        update={
            "run": params.run.model_copy(
                update={"models": ["qwen3_8b", "qwen2.5_14b", "qwen_14b", "tiny_small"]}
            ),
            "generate": params.generate.model_copy(update=generate),
        }
    )
    return validate_all(params, _summaries(params))


def test_thinking_on_a_4096_preset_fails_with_the_fix_for_every_task():
    """The review's finding: 32,768 thinking tokens cannot fit max_model_len 4096, so every output would be
    cut at the context limit and score 0 silently. validate refuses it and names the fix."""
    checks = {(c.model, c.preset): c for c in _run(thinking=True)}
    qwen3 = checks["qwen3_8b", "balanced"]
    assert qwen3.status == "FAIL"
    datasets = load_params(ROOT / "params.yaml").run.datasets
    generation = [d for d in datasets if d != "arc_easy"]  # arc_easy is log-likelihood: no output budget
    assert len(qwen3.reasons) == len(generation)
    for dataset, reason in zip(generation, qwen3.reasons, strict=True):
        assert reason.startswith(f"{dataset} with thinking:") and "32,768 output tokens" in reason
        assert "long_context" in reason
    # Qwen2.5 has no thinking mode: its task budgets fit; presets that do not generate are not checked
    assert checks["qwen2.5_14b", "balanced"].status == "PASS"
    assert checks["qwen3_8b", "performance"].fits == []


def test_the_long_context_preset_fits_thinking_runs():
    checks = {(c.model, c.preset): c for c in _run(thinking=True, presets=["long_context"])}
    for model in ("qwen3_8b", "qwen2.5_14b", "qwen_14b"):
        check = checks[model, "long_context"]
        assert check.status == "PASS", check.reasons
        assert all(f.fits and f.needed <= f.context for f in check.fits)
    assert {f.style for f in checks["qwen3_8b", "long_context"].fits} == {"thinking", "base"}
    # a tiny model has 4,096 positions: thinking cannot fit whatever the preset
    assert checks["tiny_small", "long_context"].status == "FAIL"


def test_an_output_budget_beyond_the_context_fails_without_thinking():
    checks = {(c.model, c.preset): c for c in _run(max_new_tokens=4000)}
    failed = checks["qwen3_8b", "balanced"]
    assert failed.status == "FAIL" and "generate.max_new_tokens" in failed.reasons[0]
    assert checks["qwen_14b", "balanced"].status == "FAIL"  # Qwen-14B-Chat: 2,048 positions
