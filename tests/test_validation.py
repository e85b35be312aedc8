"""validate: 48 built-in configurations (base and post-trained) with a memory estimate; impossible ones FAIL
with the reason."""

from __future__ import annotations

import shutil

import pytest

from qwen_pipe.config import ValidateParams, load_params
from qwen_pipe.models.registry import BUILTIN_MODELS
from qwen_pipe.validation import check_configuration, estimate_memory, validate_all

from support import ROOT

PRESETS = ["balanced", "performance", "memory_optimized", "long_context"]
BASE = [
    "qwen3_8b_base",
    "qwen3_14b_base",
    "qwen2.5_8b_base",
    "qwen2.5_14b_base",
    "qwen_8b_base",
    "qwen_14b_base",
]


def test_all_forty_eight_builtin_configurations_pass():
    params = load_params(ROOT / "params.yaml")
    checks = [c for c in validate_all(params) if c.model in BUILTIN_MODELS]
    assert len(checks) == 12 * 4  # twelve models x balanced, performance, memory_optimized, long_context
    assert {(c.model, c.preset) for c in checks} == {(m, p) for m in BUILTIN_MODELS for p in PRESETS}
    assert {c.status for c in checks} == {"PASS"}, [c for c in checks if c.status != "PASS"]
    assert {c.model for c in checks if c.kind == "base"} == set(BASE)
    assert {c.model for c in checks if c.kind == "post-trained"} == set(BUILTIN_MODELS) - set(BASE)


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


@pytest.mark.parametrize("model", ["qwen_8b", "qwen_8b_base"])
def test_qwen1_needs_its_override(model):
    """Qwen-7B has no GQA (Chat and base alike): without the override, balanced does not fit an 80 GB H100;
    with it (params.yaml preset_overrides), it does."""
    params = load_params(ROOT / "params.yaml")
    check = check_configuration(
        BUILTIN_MODELS[model], "balanced", params.presets["balanced"], ValidateParams()
    )
    assert check.status == "FAIL"
    check = check_configuration(
        BUILTIN_MODELS[model], "balanced", params.preset_for(model, "balanced"), ValidateParams()
    )
    assert check.status == "PASS" and check.memory.max_num_seqs == 20


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
        # MT-Bench is the one misfit: two thinking turns (2 x 32,768 tokens) exceed even long_context, and
        # Qwen-14B's 2,048 positions cannot hold two 1,024-token turns
        misfits = [f for f in check.fits if not f.fits]
        assert [f.dataset for f in misfits] == (["mt_bench"] if model != "qwen2.5_14b" else []), check.reasons
        assert check.status == ("FAIL" if misfits else "PASS"), check.reasons
        assert all(f.needed <= f.context for f in check.fits if f.fits)
    assert [f.style for f in checks["qwen3_8b", "long_context"].fits if not f.fits] == ["thinking"]
    assert {f.style for f in checks["qwen3_8b", "long_context"].fits} == {"thinking", "base"}
    # a tiny model has 4,096 positions: thinking cannot fit whatever the preset
    assert checks["tiny_small", "long_context"].status == "FAIL"


def test_an_output_budget_beyond_the_context_fails_without_thinking():
    checks = {(c.model, c.preset): c for c in _run(max_new_tokens=4000)}
    failed = checks["qwen3_8b", "balanced"]
    assert failed.status == "FAIL" and "generate.max_new_tokens" in failed.reasons[0]
    assert checks["qwen_14b", "balanced"].status == "FAIL"  # Qwen-14B-Chat: 2,048 positions


@pytest.fixture(scope="module")
def h100(tmp_path_factory):
    """params.yaml switched to the h100 profile (a copy), and the request summaries of its 17 datasets from
    the embedded samples (the full mirror's are checked by `qwen-pipe validate` on a GPU host)."""
    from qwen_pipe.profiles import apply_profile

    path = tmp_path_factory.mktemp("h100") / "params.yaml"
    shutil.copy(ROOT / "params.yaml", path)
    apply_profile(path, "h100")
    params = load_params(path)
    return params, _summaries(params)


def _h100_checks(h100, **generate) -> dict:
    params, summaries = h100
    params = params.model_copy(update={"generate": params.generate.model_copy(update=generate)})
    checks = validate_all(params, summaries)
    assert len(checks) == len({(c.model, c.preset) for c in checks})  # each configuration once
    return {(c.model, c.preset): c for c in checks}


def _context_2048_misfits(check) -> bool:
    """A FAIL whose every reason is a prompt + output that does not fit Qwen-14B's 2,048 positions."""
    return bool(check.reasons) and all("context 2,048" in reason for reason in check.reasons)


QWEN_14B = {"qwen_14b", "qwen_14b_base"}  # 2,048 positions (seq_length): math500's budget alone is 2,048


def test_the_h100_profile_validates_base_and_post_trained_models_under_every_preset(h100):
    """The acceptance line: validate lists base and post-trained models x presets, long_context included.
    Every configuration passes but Qwen-14B (Chat and base alike) under the preset that generates: its
    2,048-token context cannot hold math500's or MT-Bench's budgets (a limit of the model, named per dataset)."""
    params, _ = h100
    assert params.run.models == [*[m for m in BUILTIN_MODELS if m not in BASE], *BASE]
    checks = _h100_checks(h100)
    assert {key for key in checks if key[0] in BUILTIN_MODELS} == {
        (m, p) for m in params.run.models for p in PRESETS
    }
    failed = {key for key, c in checks.items() if c.status != "PASS"}
    assert failed == {(m, p) for m in QWEN_14B for p in params.generate.presets}, failed
    assert all(_context_2048_misfits(checks[key]) for key in failed)
    twin, base = checks["qwen_14b", "balanced"], checks["qwen_14b_base", "balanced"]
    assert {"math500", "mt_bench"} <= {f.dataset for f in base.fits if not f.fits}
    assert {f.dataset for f in base.fits if not f.fits} <= {f.dataset for f in twin.fits if not f.fits}
    for model in params.run.models:
        kind = BUILTIN_MODELS[model].kind
        assert kind == ("base" if model in BASE else "post-trained")
        for preset in PRESETS:
            check = checks[model, preset]
            assert check.kind == kind and check.memory.total_gib > 0
            if preset in params.generate.presets:  # balanced: every prompt of every dataset checked
                assert [f.dataset for f in check.fits] == params.run.datasets
                assert model in QWEN_14B or all(f.fits for f in check.fits)
                if kind == "base":
                    assert {f.style for f in check.fits} == {"base"}
                else:
                    assert "chat" in {f.style for f in check.fits}
            else:
                assert check.status == "PASS" and check.fits == []
                assert check.reasons[-1] == (
                    "prompts not checked: the preset does not generate (not in generate.presets)"
                )
    # long_context on a model with a shorter context: capped, and said so
    assert "capped at the model's 8192 positions" in checks["qwen_8b_base", "long_context"].reasons[0]
    assert "capped at the model's 2048 positions" in checks["qwen_14b_base", "long_context"].reasons[0]
    assert "capped at the model's 32768 positions" in checks["qwen3_8b_base", "long_context"].reasons[0]
    assert checks["qwen2.5_14b_base", "long_context"].memory.max_model_len == 40960  # 131072 positions
    # tiny models are not in the h100 run: listed, their prompts not checked
    assert (
        checks["tiny_small", "balanced"].reasons[-1] == "prompts not checked: the model is not in run.models"
    )


def test_the_h100_profile_checks_every_prompt_under_every_preset(h100):
    """Every preset generating: each configuration checks every dataset; what fails is a context misfit
    named per dataset (no crash, no memory failure), and long_context fits every model but Qwen-14B."""
    params, _ = h100
    checks = _h100_checks(h100, presets=PRESETS)
    for model in BUILTIN_MODELS:
        for preset in PRESETS:
            check = checks[model, preset]
            assert [f.dataset for f in check.fits] == params.run.datasets
            if check.status == "FAIL":
                assert all(reason.split(":")[0] in params.run.datasets for reason in check.reasons)
                assert {r.split(":")[0] for r in check.reasons} == {
                    f.dataset for f in check.fits if not f.fits
                }
        assert (checks[model, "long_context"].status == "PASS") is (model not in QWEN_14B), model
        # a base model fails exactly where its post-trained twin fails, or less (no chat template margin)
        if model in BASE:
            for preset in PRESETS:
                twin, base = checks[model.removesuffix("_base"), preset], checks[model, preset]
                assert {f.dataset for f in base.fits if not f.fits} <= {
                    f.dataset for f in twin.fits if not f.fits
                }


def test_thinking_never_applies_to_a_base_model(h100):
    """generate.thinking true with the long_context preset: the Qwen3 post-trained models think (32,768
    output tokens); their base checkpoints get plain prompts and the tasks' own budgets, and say so."""
    checks = _h100_checks(h100, thinking=True, presets=["long_context"])
    for model in BASE:
        check = checks[model, "long_context"]
        assert {f.style for f in check.fits} == {"base"}
        assert max(f.output_tokens for f in check.fits) < 32768
        assert not any("thinking" in reason for reason in check.reasons if "thinking off" not in reason)
        if model in QWEN_14B:
            assert check.status == "FAIL" and _context_2048_misfits(check)
        else:
            assert check.status == "PASS", check.reasons
            assert check.reasons[-1].startswith("thinking off: a base model")
    thinking = checks["qwen3_8b", "long_context"]
    assert "thinking" in {f.style for f in thinking.fits}
    assert max(f.output_tokens for f in thinking.fits) == 32768
    # two thinking turns of MT-Bench (2 x 32,768) exceed even long_context's 40,960 positions
    assert [f.dataset for f in thinking.fits if not f.fits] == ["mt_bench"]
    assert any(
        r.startswith("thinking off: the model has no") for r in checks["qwen2.5_8b", "long_context"].reasons
    )
    # on a 4,096-token preset, thinking fails the Qwen3 post-trained models only, not their base twins
    checks = _h100_checks(h100, thinking=True, presets=["balanced"])
    assert checks["qwen3_8b", "balanced"].status == "FAIL"
    assert any("with thinking" in reason for reason in checks["qwen3_8b", "balanced"].reasons)
    assert checks["qwen3_8b_base", "balanced"].status == "PASS"
