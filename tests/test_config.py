"""params.yaml: the shipped file validates; every kind of bad input is one line naming the key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from qwen_pipe.config import load_params
from qwen_pipe.errors import QwenPipeError

from support import ROOT

PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


def write(tmp_path: Path, data) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    return path


def edited(**changes) -> dict:
    data = yaml.safe_load(yaml.safe_dump(PARAMS))
    for dotted, value in changes.items():
        node = data
        *parents, last = dotted.split("__")
        for key in parents:
            node = node[key]
        node[last] = value
    return data


def error_of(tmp_path: Path, data) -> str:
    with pytest.raises(QwenPipeError) as caught:
        load_params(write(tmp_path, data))
    line = caught.value.line()
    assert "\n" not in line
    return line


def test_shipped_params_validate():
    params = load_params(ROOT / "params.yaml")
    assert params.run.models == ["tiny_small", "tiny_large"]
    assert set(params.presets) == {"balanced", "performance", "memory_optimized", "long_context"}
    assert {"qwen3_8b", "qwen3_14b", "qwen2.5_8b", "qwen2.5_14b", "qwen_8b", "qwen_14b"} <= set(
        params.model_names()
    )
    assert {f"{name}_base" for name in ("qwen3_8b", "qwen3_14b", "qwen2.5_8b", "qwen2.5_14b")} <= set(
        params.model_names()
    )
    assert {"qwen_8b_base", "qwen_14b_base"} <= set(params.model_names())


def test_malformed_yaml_names_line(tmp_path):
    line = error_of(tmp_path, "run:\n  models: [a, b\n  presets: x\n")
    assert "not valid YAML" in line and "line" in line


def test_not_a_mapping(tmp_path):
    assert "mapping" in error_of(tmp_path, "- just\n- a list\n")


def test_missing_file(tmp_path):
    with pytest.raises(QwenPipeError, match="not found"):
        load_params(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"run__models": ["qwen9_99b"]}, "unknown model 'qwen9_99b'"),
        ({"run__presets": ["turbo"]}, "unknown preset 'turbo'"),
        ({"run__datasets": ["gsm9k"]}, "unknown dataset 'gsm9k'"),
        ({"generate__presets": ["balanced", "fast"]}, "unknown preset 'fast'"),
        ({"generate__presets": ["balanced", "balanced"]}, "lists a preset twice"),
        ({"generate__presets": []}, "generate.presets"),
        ({"presets__balanced__max_num_seqs": 0}, "presets.balanced.max_num_seqs"),
        ({"presets__balanced__gpu_memory_utilization": 1.5}, "gpu_memory_utilization"),
        ({"presets__balanced__max_model_len": "long"}, "max_model_len"),
        ({"tasks__gsm8k": {"sample_limit": -3}}, "sample_limit"),
        ({"tasks__gsm8k": {"sample_limt": 3}}, "sample_limt"),
        ({"fetch__source": "ftp"}, "fetch.source"),
        ({"cost_scaling__model": "tiny_smal"}, "unknown cost_scaling model 'tiny_smal'"),
        ({"cost_scaling__preset": "turbo"}, "unknown cost_scaling preset 'turbo'"),
        (
            {"preset_overrides": {"qwen_8b": {"balanced": {"max_num_seqs": -1}}}},
            "preset_overrides.qwen_8b.balanced",
        ),
        (
            {"preset_overrides": {"nobody": {"balanced": {"max_num_seqs": 1}}}},
            "unknown model in preset_overrides",
        ),
    ],
)
def test_bad_values_are_one_line_errors(tmp_path, changes, expected):
    line = error_of(tmp_path, edited(**changes))
    assert expected in line
    assert "fix:" in line


def test_unknown_engine_is_one_line_naming_the_engines(tmp_path):
    """config is below the engines layer, so it takes the name; validate, where engines are known, stops it."""
    from qwen_pipe.validation import validate_all

    params = load_params(write(tmp_path, edited(engine__name="tgi")))
    with pytest.raises(QwenPipeError) as caught:
        validate_all(params)
    line = caught.value.line()
    assert "\n" not in line and "unknown engine 'tgi'" in line and "fix:" in line
    assert all(name in line for name in ("vllm", "transformers", "openai", "oracle")), line


def test_unknown_name_lists_choices(tmp_path):
    line = error_of(tmp_path, edited(run__models=["qwen3_9b"]))
    assert "qwen3_8b" in line and "tiny_small" in line


def test_user_added_model_needs_no_code(tmp_path):
    data = edited()
    data["model_registry"] = {
        "my_qwen": {
            "name": "my_qwen",
            "hf_id": "/models/my-qwen",
            "family": "qwen3",
            "nominal_size": "8B",
            "size_class": "small",
            "parameters": 8190735360,
            "architecture": {
                "model_type": "qwen3",
                "hidden_size": 4096,
                "num_hidden_layers": 36,
                "num_attention_heads": 32,
                "num_key_value_heads": 8,
                "head_dim": 128,
                "intermediate_size": 12288,
                "vocab_size": 151936,
                "max_position_embeddings": 40960,
                "qk_norm": True,
            },
        }
    }
    data["run"]["models"] = ["my_qwen"]
    params = load_params(write(tmp_path, data))
    assert params.model("my_qwen").hf_id == "/models/my-qwen"


def test_a_user_base_model_cannot_claim_thinking(tmp_path):
    from qwen_pipe.models.registry import BUILTIN_MODELS

    data = edited()
    data["model_registry"] = {
        "my_base": {
            **BUILTIN_MODELS["qwen3_8b_base"].model_dump(),
            "name": "my_base",
            "supports_thinking": True,
        }
    }
    line = error_of(tmp_path, data)
    assert "model_registry.my_base" in line and "supports_thinking needs chat" in line and "fix:" in line


def test_preset_override_applies_only_to_its_model():
    params = load_params(ROOT / "params.yaml")
    assert params.preset_for("qwen_8b", "balanced").max_num_seqs == 20
    assert params.preset_for("qwen3_8b", "balanced").max_num_seqs == params.presets["balanced"].max_num_seqs


@pytest.mark.parametrize("model", ["qwen_8b", "qwen_14b", "qwen_8b_base", "qwen_14b_base"])
def test_qwen1_base_models_get_the_qwen1_overrides(model):
    """Qwen-1 has no GQA, its base checkpoints neither: both get fewer sequences, the other presets are kept."""
    params = load_params(ROOT / "params.yaml")
    assert params.preset_for(model, "balanced").max_num_seqs == 20
    assert params.preset_for(model, "performance").max_num_seqs == 40
    for preset in ("memory_optimized", "long_context"):
        assert params.preset_for(model, preset) == params.presets[preset]


def test_every_base_model_runs_with_its_twins_presets():
    """A base checkpoint has its post-trained twin's KV geometry: the same effective preset everywhere."""
    from qwen_pipe.models.registry import BUILTIN_MODELS

    params = load_params(ROOT / "params.yaml")
    base = [name for name, spec in BUILTIN_MODELS.items() if spec.kind == "base"]
    assert len(base) == 6
    for name in base:
        twin = name.removesuffix("_base")
        assert BUILTIN_MODELS[twin].kind == "post-trained"
        for preset in params.presets:
            assert params.preset_for(name, preset) == params.preset_for(twin, preset), (name, preset)


def test_the_cost_scaling_sweep_does_not_depend_on_the_runs_models_or_presets():
    """The sweep measures the one model x preset params `cost_scaling` names: adding a model to the run (the
    broken-model case) must not rerun it."""
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["cost_scaling"]
    assert "cost_scaling" in stage["params"]
    assert not {"run", "run.models", "run.presets", "generate", "generate.presets"} & set(stage["params"])
