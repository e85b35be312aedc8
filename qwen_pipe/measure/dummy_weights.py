"""`load_format: dummy`: random weights of a registry model's architecture, from a local folder holding
only its config and tokenizer (no download of the checkpoint)."""

from __future__ import annotations

import json
from pathlib import Path

from qwen_pipe.models.spec import ModelSpec

DUMMY_MODELS_DIR = Path(".cache/dummy_models")


def architecture_config(spec: ModelSpec) -> dict | None:
    """A config.json for the spec's architecture (Qwen2/2.5 and Qwen3); None for other model types."""
    from qwen_pipe.models.tiny import qwen3_config

    arch = spec.architecture
    if arch.model_type == "qwen3":
        return qwen3_config(arch)
    if arch.model_type == "qwen2":
        config = qwen3_config(arch.model_copy(update={"qkv_bias": False}))
        config.update(architectures=["Qwen2ForCausalLM"], model_type="qwen2")
        for key in ("head_dim", "attention_bias"):  # Qwen2 derives head_dim and always has q/k/v biases
            config.pop(key)
        return config
    return None


def dummy_model_dir(spec: ModelSpec, root: Path = DUMMY_MODELS_DIR) -> Path | None:
    """A local folder with config and tokenizer (no weights) for `load_format: dummy`, built from the
    registry's architecture facts; None where the spec already is a local folder or cannot be built here."""
    if (Path(spec.hf_id) / "config.json").is_file():
        return None
    config = architecture_config(spec)
    if config is None:
        return None
    from qwen_pipe.models.tiny import generation_config
    from qwen_pipe.models.tokenizer import write_qwen_tokenizer

    folder = root / spec.name
    text = json.dumps(config, indent=2) + "\n"
    config_file = folder / "config.json"
    if (
        config_file.is_file()
        and config_file.read_text(encoding="utf-8") == text
        and (folder / "tokenizer.json").is_file()
    ):
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    write_qwen_tokenizer(folder)
    (folder / "generation_config.json").write_text(
        json.dumps(generation_config(), indent=2) + "\n", encoding="utf-8"
    )
    config_file.write_text(text, encoding="utf-8")
    return folder


def spec_for_run(spec: ModelSpec, load_format: str) -> tuple[ModelSpec, str]:
    """The spec the engine loads and a line saying where the weights come from."""
    if load_format != "dummy":
        return spec, f"checkpoint {spec.hf_id}"
    folder = dummy_model_dir(spec)
    if folder is None:
        return spec, f"dummy: random weights, architecture of {spec.hf_id}"
    return (
        spec.model_copy(update={"hf_id": str(folder.resolve()), "revision": None}),
        f"dummy: random weights, config built from the registry's facts in {folder}",
    )
