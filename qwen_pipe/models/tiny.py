"""Tiny random-weight Qwen3 models built locally, and reading architecture facts from a config.json.

A tiny model is an ordinary Hugging Face folder (config.json, model.safetensors, generation_config.json,
tokenizer files) that vLLM and transformers both load. The weights come from a fixed seed through
numpy's PCG64 stream and the file carries no timestamps, so the same arguments give the same bytes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qwen_pipe.models.spec import Architecture, Dtype
from qwen_pipe.models.tokenizer import ENDOFTEXT_ID, IM_END_ID, write_qwen_tokenizer

if TYPE_CHECKING:  # torch and numpy load only when weights are built: describing a tiny model stays cheap
    import torch

QWEN3_VOCAB_SIZE = 151_936  # embedding rows of every Qwen3 model (the tokenizer uses 151,669 of them)
QWEN3_ROPE_THETA = 1_000_000.0
INIT_STD = 0.02


def qwen3_config(arch: Architecture) -> dict[str, Any]:
    """A Qwen3ForCausalLM config.json in the published layout (as Qwen3-0.6B's)."""
    return {
        "architectures": ["Qwen3ForCausalLM"],
        "attention_bias": arch.qkv_bias,
        "attention_dropout": 0.0,
        "bos_token_id": ENDOFTEXT_ID,
        "eos_token_id": IM_END_ID,
        "head_dim": arch.head_dim,
        "hidden_act": "silu",
        "hidden_size": arch.hidden_size,
        "initializer_range": INIT_STD,
        "intermediate_size": arch.intermediate_size,
        "max_position_embeddings": arch.max_position_embeddings,
        "max_window_layers": arch.num_hidden_layers,
        "model_type": "qwen3",
        "num_attention_heads": arch.num_attention_heads,
        "num_hidden_layers": arch.num_hidden_layers,
        "num_key_value_heads": arch.num_key_value_heads,
        "rms_norm_eps": arch.rms_norm_eps,
        "rope_scaling": None,
        "rope_theta": arch.rope_theta,
        "sliding_window": None,
        "tie_word_embeddings": arch.tie_word_embeddings,
        "torch_dtype": arch.torch_dtype,
        # As published Qwen3 configs. Without a version, transformers 5 takes any local folder for a
        # Mistral one and warns about an "incorrect regex pattern" when loading the tokenizer.
        "transformers_version": "4.51.0",
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": arch.vocab_size,
    }


def generation_config() -> dict[str, Any]:
    """Stop tokens and padding only: no sampling defaults, so engines fall back to the caller's settings."""
    return {
        "bos_token_id": ENDOFTEXT_ID,
        "eos_token_id": [IM_END_ID, ENDOFTEXT_ID],
        "pad_token_id": ENDOFTEXT_ID,
    }


def qwen3_weight_shapes(arch: Architecture) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes of a Qwen3ForCausalLM checkpoint, in a fixed order."""
    if arch.qkv_bias or not arch.qk_norm:
        raise ValueError("a Qwen3 checkpoint has q/k norms and no attention biases")
    h, hd = arch.hidden_size, arch.head_dim
    q, kv = arch.num_attention_heads * hd, arch.num_key_value_heads * hd
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (arch.vocab_size, h)}
    for i in range(arch.num_hidden_layers):
        p = f"model.layers.{i}"
        shapes.update(
            {
                f"{p}.input_layernorm.weight": (h,),
                f"{p}.self_attn.q_proj.weight": (q, h),
                f"{p}.self_attn.k_proj.weight": (kv, h),
                f"{p}.self_attn.v_proj.weight": (kv, h),
                f"{p}.self_attn.o_proj.weight": (h, q),
                f"{p}.post_attention_layernorm.weight": (h,),
                f"{p}.mlp.gate_proj.weight": (arch.intermediate_size, h),
                f"{p}.mlp.up_proj.weight": (arch.intermediate_size, h),
                f"{p}.mlp.down_proj.weight": (h, arch.intermediate_size),
            }
        )
        shapes.update({f"{p}.self_attn.q_norm.weight": (hd,), f"{p}.self_attn.k_norm.weight": (hd,)})
    shapes["model.norm.weight"] = (h,)
    if not arch.tie_word_embeddings:
        shapes["lm_head.weight"] = (arch.vocab_size, h)
    return shapes


def random_weights(arch: Architecture, seed: int) -> dict[str, torch.Tensor]:
    """Matrices ~ N(0, 0.02²) drawn in `qwen3_weight_shapes` order from PCG64(seed); norms are ones."""
    import numpy as np
    import torch

    rng = np.random.Generator(np.random.PCG64(seed))
    dtype = getattr(torch, arch.torch_dtype)
    weights: dict[str, torch.Tensor] = {}
    for name, shape in qwen3_weight_shapes(arch).items():
        if name.endswith("norm.weight"):
            values = np.ones(shape, dtype=np.float32)
        else:
            values = rng.standard_normal(shape, dtype=np.float32)
            values *= np.float32(INIT_STD)
        weights[name] = torch.from_numpy(values).to(dtype).contiguous()
    return weights


def tiny_qwen3_architecture(
    *,
    num_hidden_layers: int,
    hidden_size: int,
    intermediate_size: int,
    num_attention_heads: int,
    num_key_value_heads: int,
    head_dim: int,
    dtype: Dtype = "bfloat16",
    max_position_embeddings: int = 4096,
) -> Architecture:
    """The architecture `build_tiny_model` writes for these arguments (Qwen3 vocabulary, tied embeddings)."""
    return Architecture(
        model_type="qwen3",
        hidden_size=hidden_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        num_key_value_heads=num_key_value_heads,
        head_dim=head_dim,
        intermediate_size=intermediate_size,
        vocab_size=QWEN3_VOCAB_SIZE,
        max_position_embeddings=max_position_embeddings,
        torch_dtype=dtype,
        tie_word_embeddings=True,
        qkv_bias=False,
        qk_norm=True,
        rope_theta=QWEN3_ROPE_THETA,
        rms_norm_eps=1e-6,
    )


def _write_json(path: Path, content: dict[str, Any]) -> None:
    path.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")


def build_tiny_model(
    out_dir: Path,
    *,
    num_hidden_layers: int,
    hidden_size: int,
    intermediate_size: int,
    num_attention_heads: int,
    num_key_value_heads: int,
    head_dim: int,
    seed: int,
    dtype: Dtype = "bfloat16",
    max_position_embeddings: int = 4096,
) -> Path:
    """Write a random-weight Qwen3ForCausalLM folder with the real Qwen3 tokenizer; same bytes for the same arguments."""
    arch = tiny_qwen3_architecture(
        num_hidden_layers=num_hidden_layers,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_attention_heads=num_attention_heads,
        num_key_value_heads=num_key_value_heads,
        head_dim=head_dim,
        dtype=dtype,
        max_position_embeddings=max_position_embeddings,
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_json(out_dir / "config.json", qwen3_config(arch))
    _write_json(out_dir / "generation_config.json", generation_config())
    from safetensors.torch import save_file

    save_file(random_weights(arch, seed), str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    write_qwen_tokenizer(out_dir)
    return out_dir


def architecture_of(folder: Path) -> Architecture:
    """The architecture facts of a Qwen2/Qwen2.5/Qwen3 folder's config.json (defaults as transformers applies them)."""
    config = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    model_type = config.get("model_type")
    if model_type not in ("qwen2", "qwen3"):
        raise ValueError(f"{folder}: model_type {model_type!r} is not qwen2 or qwen3")
    heads = config["num_attention_heads"]
    rope = config.get("rope_parameters") or {}
    dtype = config.get("torch_dtype") or config.get("dtype") or "bfloat16"
    return Architecture(
        model_type=model_type,
        hidden_size=config["hidden_size"],
        num_hidden_layers=config["num_hidden_layers"],
        num_attention_heads=heads,
        num_key_value_heads=config.get("num_key_value_heads") or heads,
        head_dim=config.get("head_dim") or config["hidden_size"] // heads,
        intermediate_size=config["intermediate_size"],
        vocab_size=config["vocab_size"],
        max_position_embeddings=config["max_position_embeddings"],
        torch_dtype=dtype,
        tie_word_embeddings=config.get("tie_word_embeddings", False),
        # Qwen2 always has q/k/v biases; Qwen3 has them only with attention_bias, and adds q/k norms.
        qkv_bias=True if model_type == "qwen2" else config.get("attention_bias", False),
        qk_norm=model_type == "qwen3",
        rope_theta=config.get("rope_theta", rope.get("rope_theta", 10000.0)),
        rms_norm_eps=config.get("rms_norm_eps", 1e-6),
    )
