"""What the pipeline knows about a model: identity, family and the architecture facts of its config.json."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# "qwen3", "qwen2.5", "qwen", their base checkpoints "qwen3-base", "qwen2.5-base", "qwen-base", "tiny-qwen3",
# ...: the models of one family form a scaling pair (small vs large), so base and post-trained stay apart.
Family = str
Dtype = Literal["bfloat16", "float16", "float32"]
Kind = Literal["base", "post-trained"]


class Architecture(BaseModel):
    """The facts of a published config.json that size memory and build random-weight copies."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_type: str  # "qwen3", "qwen2", "qwen" (remote code)
    hidden_size: int = Field(gt=0)
    num_hidden_layers: int = Field(gt=0)
    num_attention_heads: int = Field(gt=0)
    num_key_value_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    intermediate_size: int = Field(gt=0)  # per-projection MLP width (Qwen-1's config stores twice this)
    vocab_size: int = Field(gt=0)
    max_position_embeddings: int = Field(gt=0)
    torch_dtype: Dtype = "bfloat16"
    tie_word_embeddings: bool = False
    qkv_bias: bool = False  # Qwen-1 and Qwen2.5 have q/k/v biases; Qwen3 has q/k norms instead
    qk_norm: bool = False
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-6

    @model_validator(mode="after")
    def _heads_divide(self) -> Architecture:
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError("num_attention_heads must be a multiple of num_key_value_heads")
        return self

    def parameter_count(self) -> int:
        """Exact parameter count implied by the architecture (embeddings, layers, norms, LM head)."""
        h, kv = self.hidden_size, self.num_key_value_heads * self.head_dim
        q = self.num_attention_heads * self.head_dim
        attention = h * q + 2 * h * kv + q * h
        if self.qkv_bias:
            attention += q + 2 * kv
        if self.qk_norm:
            attention += 2 * self.head_dim
        mlp = 3 * h * self.intermediate_size
        norms = 2 * h
        embeddings = self.vocab_size * h
        head = 0 if self.tie_word_embeddings else self.vocab_size * h
        return embeddings + self.num_hidden_layers * (attention + mlp + norms) + h + head

    def kv_bytes_per_token(self, kv_dtype_bytes: float) -> float:
        return 2 * self.num_hidden_layers * self.num_key_value_heads * self.head_dim * kv_dtype_bytes


class ModelSpec(BaseModel):
    """One entry of the model registry (built in, or added by a user in params.yaml)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    hf_id: str  # hub id ("Qwen/Qwen3-8B") or a local folder path
    revision: str | None = None
    family: Family
    nominal_size: str  # the family's marketing size, e.g. "8B"
    size_class: Literal["small", "large"]  # which side of the family's scaling pair it is on
    parameters: int = Field(gt=0)  # exact count as published (safetensors metadata)
    architecture: Architecture
    chat: bool = True  # post-trained (instruct/chat) model: prompts go through the chat template; False: a
    # base (pre-trained only) checkpoint, prompted with plain completion text and never a chat template
    trust_remote_code: bool = False
    supports_thinking: bool = False  # Qwen3 hybrid thinking (enable_thinking in the chat template)
    chat_template: str | None = None  # jinja override, for models whose tokenizer ships none (Qwen-1)
    stop_token_ids: list[
        int
    ] = []  # end-of-turn tokens beyond the tokenizer's eos (Qwen-1: <|im_end|>, <|im_start|>)
    tiny: bool = False  # built locally by the build_models stage (embedded default)
    source_url: str | None = None  # where the architecture facts come from

    @model_validator(mode="after")
    def _thinking_needs_chat(self) -> ModelSpec:
        if self.supports_thinking and not self.chat:
            raise ValueError(
                "supports_thinking needs chat: true (thinking is switched on in the chat template, "
                "and a base model is prompted without one)"
            )
        return self

    @property
    def kind(self) -> Kind:
        """Post-trained (chat template, may think) or base (plain prompts). Derived from `chat`, so the two
        cannot disagree; a property, not a field, so a dumped spec validates again unchanged."""
        return "post-trained" if self.chat else "base"
