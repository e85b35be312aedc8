"""The built-in model registry: ids, published parameter counts, unknown names, the ChatML template."""

from __future__ import annotations

import jinja2
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from qwen_pipe.errors import QwenPipeError
from qwen_pipe.models.registry import BUILTIN_MODELS, CHATML_TEMPLATE, builtin_model

EXPECTED_HF_IDS = {
    "qwen3_8b": "Qwen/Qwen3-8B",
    "qwen3_14b": "Qwen/Qwen3-14B",
    "qwen2.5_8b": "Qwen/Qwen2.5-7B-Instruct",
    "qwen2.5_14b": "Qwen/Qwen2.5-14B-Instruct",
    "qwen_8b": "Qwen/Qwen-7B-Chat",
    "qwen_14b": "Qwen/Qwen-14B-Chat",
}

# Published totals (safetensors metadata), written out here independently of the registry so that a
# typo in either place fails the test.
PUBLISHED_PARAMETERS = {
    "qwen3_8b": 8_190_735_360,
    "qwen3_14b": 14_768_307_200,
    "qwen2.5_8b": 7_615_616_512,
    "qwen2.5_14b": 14_770_033_664,
    "qwen_8b": 7_721_324_544,
    "qwen_14b": 14_167_290_880,
}


def test_six_entries_with_their_hub_ids() -> None:
    assert {name: spec.hf_id for name, spec in BUILTIN_MODELS.items()} == EXPECTED_HF_IDS
    for name, spec in BUILTIN_MODELS.items():
        assert spec.name == name
        assert spec.revision is None
        assert spec.chat is True
        assert spec.source_url == f"https://huggingface.co/{spec.hf_id}/blob/main/config.json"


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMETERS))
def test_parameter_count_matches_the_published_count_exactly(name: str) -> None:
    spec = BUILTIN_MODELS[name]
    assert spec.parameters == PUBLISHED_PARAMETERS[name]
    assert spec.architecture.parameter_count() == spec.parameters


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
    }


def test_architecture_families_are_consistent() -> None:
    for spec in BUILTIN_MODELS.values():
        arch = spec.architecture
        expected_type = {"qwen3": "qwen3", "qwen2.5": "qwen2", "qwen": "qwen"}[spec.family]
        assert arch.model_type == expected_type
        assert arch.qk_norm == (spec.family == "qwen3")
        assert arch.qkv_bias == (spec.family != "qwen3")
        assert arch.hidden_size == arch.num_attention_heads * arch.head_dim
        assert arch.tie_word_embeddings is False
        assert arch.torch_dtype == "bfloat16"
        if spec.family == "qwen":
            assert arch.num_key_value_heads == arch.num_attention_heads  # MHA
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
        "qwen2.5_14b, qwen2.5_8b, qwen3_14b, qwen3_8b, qwen_14b, qwen_8b)"
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
