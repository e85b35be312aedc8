"""The built-in model registry: ids, kinds, published parameter counts, unknown names, the ChatML template."""

from __future__ import annotations

import jinja2
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import ValidationError

from qwen_pipe.config import load_params
from qwen_pipe.errors import QwenPipeError
from qwen_pipe.models.registry import BUILTIN_MODELS, CHATML_TEMPLATE, builtin_model
from qwen_pipe.models.spec import ModelSpec
from qwen_pipe.scaling import family_pairs

from support import ROOT

# name -> (hub id, kind), written out here independently of the registry.
EXPECTED = {
    "qwen3_8b": ("Qwen/Qwen3-8B", "post-trained"),
    "qwen3_14b": ("Qwen/Qwen3-14B", "post-trained"),
    "qwen2.5_8b": ("Qwen/Qwen2.5-7B-Instruct", "post-trained"),
    "qwen2.5_14b": ("Qwen/Qwen2.5-14B-Instruct", "post-trained"),
    "qwen_8b": ("Qwen/Qwen-7B-Chat", "post-trained"),
    "qwen_14b": ("Qwen/Qwen-14B-Chat", "post-trained"),
    "qwen3_8b_base": ("Qwen/Qwen3-8B-Base", "base"),
    "qwen3_14b_base": ("Qwen/Qwen3-14B-Base", "base"),
    "qwen2.5_8b_base": ("Qwen/Qwen2.5-7B", "base"),
    "qwen2.5_14b_base": ("Qwen/Qwen2.5-14B", "base"),
    "qwen_8b_base": ("Qwen/Qwen-7B", "base"),
    "qwen_14b_base": ("Qwen/Qwen-14B", "base"),
}
EXPECTED_HF_IDS = {name: hf_id for name, (hf_id, _) in EXPECTED.items()}
# each base checkpoint and its post-trained twin
TWINS = {
    "qwen3_8b_base": "qwen3_8b",
    "qwen3_14b_base": "qwen3_14b",
    "qwen2.5_8b_base": "qwen2.5_8b",
    "qwen2.5_14b_base": "qwen2.5_14b",
    "qwen_8b_base": "qwen_8b",
    "qwen_14b_base": "qwen_14b",
}

# Published totals (safetensors metadata), written out here independently of the registry so that a
# typo in either place fails the test. A base checkpoint has its post-trained twin's tensors.
PUBLISHED_PARAMETERS = {
    "qwen3_8b": 8_190_735_360,
    "qwen3_14b": 14_768_307_200,
    "qwen2.5_8b": 7_615_616_512,
    "qwen2.5_14b": 14_770_033_664,
    "qwen_8b": 7_721_324_544,
    "qwen_14b": 14_167_290_880,
    "qwen3_8b_base": 8_190_735_360,
    "qwen3_14b_base": 14_768_307_200,
    "qwen2.5_8b_base": 7_615_616_512,
    "qwen2.5_14b_base": 14_770_033_664,
    "qwen_8b_base": 7_721_324_544,
    "qwen_14b_base": 14_167_290_880,
}


def test_twelve_entries_with_their_hub_ids_and_kinds() -> None:
    assert {name: spec.hf_id for name, spec in BUILTIN_MODELS.items()} == EXPECTED_HF_IDS
    for name, spec in BUILTIN_MODELS.items():
        assert spec.name == name
        assert spec.revision is None
        assert spec.kind == EXPECTED[name][1]
        assert spec.chat is (spec.kind == "post-trained")
        assert spec.source_url == f"https://huggingface.co/{spec.hf_id}/blob/main/config.json"
    assert sorted(n for n, s in BUILTIN_MODELS.items() if s.kind == "base") == sorted(TWINS)


def test_base_models_have_no_chat_template_and_never_think() -> None:
    for name in TWINS:
        spec = BUILTIN_MODELS[name]
        assert spec.chat is False and spec.kind == "base"
        assert spec.supports_thinking is False
        assert spec.chat_template is None  # no ChatML override either (Qwen-1's chat entries have one)
        assert spec.stop_token_ids == []  # <|endoftext|> is their own eos; no end-of-turn tokens


def test_a_base_model_that_claims_thinking_is_refused() -> None:
    data = BUILTIN_MODELS["qwen3_8b_base"].model_dump()
    with pytest.raises(ValidationError, match="supports_thinking needs chat"):
        ModelSpec.model_validate({**data, "supports_thinking": True})
    # the kind is derived, not stored: a dumped spec validates again as it was
    assert "kind" not in data and ModelSpec.model_validate(data) == BUILTIN_MODELS["qwen3_8b_base"]


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMETERS))
def test_parameter_count_matches_the_published_count_exactly(name: str) -> None:
    spec = BUILTIN_MODELS[name]
    assert spec.parameters == PUBLISHED_PARAMETERS[name]
    assert spec.architecture.parameter_count() == spec.parameters


# Where a base checkpoint's config.json differs from its twin's (twin value, base value); nothing else does.
CONFIG_DIFFERENCES = {
    "qwen3_8b_base": {"max_position_embeddings": (40960, 32768)},
    "qwen3_14b_base": {"max_position_embeddings": (40960, 32768)},
    "qwen2.5_8b_base": {"max_position_embeddings": (32768, 131072)},
    "qwen2.5_14b_base": {"max_position_embeddings": (32768, 131072), "rms_norm_eps": (1e-6, 1e-5)},
    "qwen_8b_base": {},
    "qwen_14b_base": {},
}


@pytest.mark.parametrize("base", sorted(TWINS))
def test_a_base_model_has_its_twins_architecture_but_for_the_published_config_differences(base: str) -> None:
    spec, twin = BUILTIN_MODELS[base], BUILTIN_MODELS[TWINS[base]]
    ours, theirs = spec.architecture.model_dump(), twin.architecture.model_dump()
    differences = {key: (theirs[key], ours[key]) for key in ours if ours[key] != theirs[key]}
    assert differences == CONFIG_DIFFERENCES[base]
    assert spec.parameters == twin.parameters
    assert (spec.nominal_size, spec.size_class, spec.trust_remote_code) == (
        twin.nominal_size,
        twin.size_class,
        twin.trust_remote_code,
    )
    assert spec.family == f"{twin.family}-base"  # scaling pairs: base with base


def test_family_size_and_flags() -> None:
    facts = {
        name: (
            spec.family,
            spec.nominal_size,
            spec.size_class,
            spec.trust_remote_code,
            spec.supports_thinking,
        )
        for name, spec in BUILTIN_MODELS.items()
    }
    assert facts == {
        "qwen3_8b": ("qwen3", "8B", "small", False, True),
        "qwen3_14b": ("qwen3", "14B", "large", False, True),
        "qwen2.5_8b": ("qwen2.5", "7B", "small", False, False),
        "qwen2.5_14b": ("qwen2.5", "14B", "large", False, False),
        "qwen_8b": ("qwen", "7B", "small", True, False),
        "qwen_14b": ("qwen", "14B", "large", True, False),
        "qwen3_8b_base": ("qwen3-base", "8B", "small", False, False),
        "qwen3_14b_base": ("qwen3-base", "14B", "large", False, False),
        "qwen2.5_8b_base": ("qwen2.5-base", "7B", "small", False, False),
        "qwen2.5_14b_base": ("qwen2.5-base", "14B", "large", False, False),
        "qwen_8b_base": ("qwen-base", "7B", "small", True, False),
        "qwen_14b_base": ("qwen-base", "14B", "large", True, False),
    }


def test_each_family_is_one_scaling_pair_of_one_kind() -> None:
    """The scale stage pairs the small and the large model of each family: base and post-trained apart."""
    params = load_params(ROOT / "params.yaml")
    pairs = family_pairs(params, list(BUILTIN_MODELS))
    assert sorted(pairs) == [
        ("qwen", "qwen_8b", "qwen_14b"),
        ("qwen-base", "qwen_8b_base", "qwen_14b_base"),
        ("qwen2.5", "qwen2.5_8b", "qwen2.5_14b"),
        ("qwen2.5-base", "qwen2.5_8b_base", "qwen2.5_14b_base"),
        ("qwen3", "qwen3_8b", "qwen3_14b"),
        ("qwen3-base", "qwen3_8b_base", "qwen3_14b_base"),
    ]


def test_architecture_families_are_consistent() -> None:
    for spec in BUILTIN_MODELS.values():
        arch = spec.architecture
        line = spec.family.removesuffix("-base")
        assert spec.family == (line if spec.kind == "post-trained" else f"{line}-base")
        expected_type = {"qwen3": "qwen3", "qwen2.5": "qwen2", "qwen": "qwen"}[line]
        assert arch.model_type == expected_type
        assert arch.qk_norm == (line == "qwen3")
        assert arch.qkv_bias == (line != "qwen3")
        assert arch.hidden_size == arch.num_attention_heads * arch.head_dim
        assert arch.tie_word_embeddings is False
        assert arch.torch_dtype == "bfloat16"
        if line == "qwen":
            assert arch.num_key_value_heads == arch.num_attention_heads  # MHA
        if line == "qwen" and spec.chat:
            assert spec.chat_template == CHATML_TEMPLATE
        else:
            assert spec.chat_template is None


def test_builtin_model_returns_a_private_copy() -> None:
    spec = builtin_model("qwen3_8b")
    assert spec == BUILTIN_MODELS["qwen3_8b"]
    spec.revision = "abc"
    assert BUILTIN_MODELS["qwen3_8b"].revision is None


def test_unknown_name_error_text() -> None:
    with pytest.raises(QwenPipeError) as info:
        builtin_model("qwen4_8b")
    assert str(info.value) == (
        "unknown model 'qwen4_8b' (fix: choose one of: "
        "qwen2.5_14b, qwen2.5_14b_base, qwen2.5_8b, qwen2.5_8b_base, qwen3_14b, qwen3_14b_base, "
        "qwen3_8b, qwen3_8b_base, qwen_14b, qwen_14b_base, qwen_8b, qwen_8b_base)"
    )


# What Qwen-1's chat() (make_context, chatml) sends for one question with its default system message.
QWEN1_ONE_TURN = (
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
    "<|im_start|>assistant\n"
)


@pytest.mark.parametrize(
    "env",
    [jinja2.Environment(), ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)],
    ids=["plain", "transformers-like"],
)
def test_chatml_template_renders_like_qwen1_chat(env: jinja2.Environment) -> None:
    template = env.from_string(CHATML_TEMPLATE)
    messages = [{"role": "user", "content": "What is 2+2?"}]
    assert template.render(messages=messages, add_generation_prompt=True) == QWEN1_ONE_TURN
    assert template.render(messages=messages, add_generation_prompt=False) == QWEN1_ONE_TURN.removesuffix(
        "<|im_start|>assistant\n"
    )


def test_chatml_template_keeps_a_given_system_message_and_history() -> None:
    template = jinja2.Environment().from_string(CHATML_TEMPLATE)
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Bye"},
    ]
    assert template.render(messages=messages, add_generation_prompt=True) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n"
        "<|im_start|>user\nBye<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
