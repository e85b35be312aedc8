"""The built-in model registry: six post-trained Qwen checkpoints (chat/instruct) and their six base
checkpoints, with the verified facts of their config.json.

Every number below was checked against a stored copy of the published config.json (or a verbatim
derivative of it) and the published parameter count; the source is cited next to each entry.
`Architecture.parameter_count()` reproduces every published count exactly (see tests/test_registry.py).

A base checkpoint has the tensors of its post-trained twin (same shapes, same parameter count), but not
always the same config.json: Qwen3-Base ships 32,768 positions (the post-trained 40,960), Qwen2.5 base
131,072 (Instruct 32,768) and Qwen2.5-14B rms_norm_eps 1e-05 (Instruct 1e-06). Base entries have
`chat=False`: plain completion prompts, no chat template, no thinking (`ModelSpec.kind` is "base").
Their family is the twin's with "-base", so the scale stage pairs base with base and post-trained with
post-trained (it pairs the small and the large model of each family).
"""

from __future__ import annotations

from qwen_pipe.errors import unknown_name
from qwen_pipe.models.spec import Architecture, ModelSpec

# ChatML as Qwen-1's own `chat()` builds it (qwen_generation_utils.make_context, chat_format="chatml"):
# a default system turn "You are a helpful assistant.", then one block per turn, each closed by
# <|im_end|> and a newline, and the generation prompt "<|im_start|>assistant\n".
# Qwen-7B-Chat / Qwen-14B-Chat ship no chat template in their tokenizer, so the registry supplies this one.
CHATML_TEMPLATE = (
    "{%- if not messages or messages[0]['role'] != 'system' %}"
    "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- endif %}"
)


def _config_url(hf_id: str) -> str:
    return f"https://huggingface.co/{hf_id}/blob/main/config.json"


BUILTIN_MODELS: dict[str, ModelSpec] = {
    # Qwen3-8B (post-trained, hybrid thinking). config.json: citsjtu2020/LLM-Prof sglang/Model_Config.md
    # ("Qwen3-8B" block, eos 151645, max_position_embeddings 40960), same values in
    # sanjithudupa/compute-aware-arch-search Qwen3-8B/config.json. Parameters 8,190,735,360:
    # keras-team/keras-hub keras_hub/src/models/qwen3/qwen3_presets.py ("qwen3_8b_en" params), and a
    # hub-API fixture `"safetensors":{"total":8190735360}` for Qwen/Qwen3-8B (stored-index file 62108703711).
    "qwen3_8b": ModelSpec(
        name="qwen3_8b",
        hf_id="Qwen/Qwen3-8B",
        family="qwen3",
        nominal_size="8B",
        size_class="small",
        parameters=8_190_735_360,
        architecture=Architecture(
            model_type="qwen3",
            hidden_size=4096,
            num_hidden_layers=36,
            num_attention_heads=32,
            num_key_value_heads=8,
            head_dim=128,
            intermediate_size=12288,
            vocab_size=151936,
            max_position_embeddings=40960,  # native; 131072 only with YaRN rope_scaling (not in config)
            torch_dtype="bfloat16",
            tie_word_embeddings=False,
            qkv_bias=False,  # attention_bias: false
            qk_norm=True,  # Qwen3 q_norm / k_norm (RMSNorm over head_dim)
            rope_theta=1_000_000.0,
            rms_norm_eps=1e-6,
        ),
        chat=True,
        trust_remote_code=False,
        supports_thinking=True,
        source_url=_config_url("Qwen/Qwen3-8B"),
    ),
    # Qwen3-14B. config.json: citsjtu2020/LLM-Prof sglang/Model_Config.md ("Qwen3-14B" block).
    # Parameters 14,768,307,200: keras-team/keras-hub qwen3_presets.py ("qwen3_14b_en" params).
    "qwen3_14b": ModelSpec(
        name="qwen3_14b",
        hf_id="Qwen/Qwen3-14B",
        family="qwen3",
        nominal_size="14B",
        size_class="large",
        parameters=14_768_307_200,
        architecture=Architecture(
            model_type="qwen3",
            hidden_size=5120,
            num_hidden_layers=40,
            num_attention_heads=40,
            num_key_value_heads=8,
            head_dim=128,
            intermediate_size=17408,
            vocab_size=151936,
            max_position_embeddings=40960,
            torch_dtype="bfloat16",
            tie_word_embeddings=False,
            qkv_bias=False,
            qk_norm=True,
            rope_theta=1_000_000.0,
            rms_norm_eps=1e-6,
        ),
        chat=True,
        trust_remote_code=False,
        supports_thinking=True,
        source_url=_config_url("Qwen/Qwen3-14B"),
    ),
    # Qwen2.5-7B-Instruct. config.json: verbatim derivatives on the hub (osllmai-community/
    # Qwen2.5-7B-Instruct, hakutaku/qwen2.5-ja-zh saved from the official snapshot): hidden 3584, 28 layers,
    # 28/4 heads, 18944, vocab 152064, max_position_embeddings 32768, rms_norm_eps 1e-06. The model card
    # says "config.json is set for context length up to 32,768" (131072 needs YaRN). No head_dim key:
    # 3584 / 28 = 128. Parameters 7,615,616,512 (model card "7.61B"): stored-index file 12439498600
    # ("qwen/qwen2.5-7b-instruct": 7615616512).
    "qwen2.5_8b": ModelSpec(
        name="qwen2.5_8b",
        hf_id="Qwen/Qwen2.5-7B-Instruct",
        family="qwen2.5",
        nominal_size="7B",
        size_class="small",
        parameters=7_615_616_512,
        architecture=Architecture(
            model_type="qwen2",
            hidden_size=3584,
            num_hidden_layers=28,
            num_attention_heads=28,
            num_key_value_heads=4,
            head_dim=128,
            intermediate_size=18944,
            vocab_size=152064,
            max_position_embeddings=32768,
            torch_dtype="bfloat16",
            tie_word_embeddings=False,
            qkv_bias=True,  # Qwen2 attention always has q/k/v biases
            qk_norm=False,
            rope_theta=1_000_000.0,
            rms_norm_eps=1e-6,
        ),
        chat=True,
        trust_remote_code=False,
        supports_thinking=False,
        source_url=_config_url("Qwen/Qwen2.5-7B-Instruct"),
    ),
    # Qwen2.5-14B-Instruct. config.json: jebish7/Qwen2.5-14B-Instruct ("Duplicate from
    # Qwen/Qwen2.5-14B-Instruct"): hidden 5120, 48 layers, 40/8 heads, 13824, vocab 152064,
    # max_position_embeddings 32768, rms_norm_eps 1e-06 (the *base* Qwen2.5-14B uses 1e-05 and 131072;
    # the instruct checkpoint does not). ZHUI/paddlenlp_model_readme Qwen/Qwen2.5-14B-Instruct/index.md:
    # "14.7B", "config.json is set for context length up to 32,768 tokens". Parameters 14,770,033,664:
    # GGUF n_params of Qwen2.5-14B-Instruct-Q4_K_M (stored-index file 56913516336).
    "qwen2.5_14b": ModelSpec(
        name="qwen2.5_14b",
        hf_id="Qwen/Qwen2.5-14B-Instruct",
        family="qwen2.5",
        nominal_size="14B",
        size_class="large",
        parameters=14_770_033_664,
        architecture=Architecture(
            model_type="qwen2",
            hidden_size=5120,
            num_hidden_layers=48,
            num_attention_heads=40,
            num_key_value_heads=8,
            head_dim=128,
            intermediate_size=13824,
            vocab_size=152064,
            max_position_embeddings=32768,
            torch_dtype="bfloat16",
            tie_word_embeddings=False,
            qkv_bias=True,
            qk_norm=False,
            rope_theta=1_000_000.0,
            rms_norm_eps=1e-6,
        ),
        chat=True,
        trust_remote_code=False,
        supports_thinking=False,
        source_url=_config_url("Qwen/Qwen2.5-14B-Instruct"),
    ),
    # Qwen-7B-Chat (Qwen-1, remote code, model_type "qwen"). config.json as carried by checkpoints
    # saved from it (TheBloke/Qwen-7B-Chat-AWQ "qwen_qwen-7b-chat/source", wei123602/Qwen-7b-chat-FINETUNE4
    # _name_or_path "Qwen/Qwen-7B-Chat"): hidden_size 4096, num_hidden_layers 32, num_attention_heads 32,
    # kv_channels 128, intermediate_size 22016, vocab_size 151936, layer_norm_epsilon 1e-06,
    # rotary_emb_base 10000, max_position_embeddings 8192, seq_length 8192, tie_word_embeddings false.
    # Parameters 7,721,324,544: MrYxJ/calculate-flops.pytorch README.md ("Qwen-7B ... 7721324544"), and the
    # Qwen-7B safetensors index total_size 15442649088 bytes = 2 x 7721324544 (stored-index file 54872141627).
    # Qwen-7B-Chat has the same tensors as Qwen-7B.
    "qwen_8b": ModelSpec(
        name="qwen_8b",
        hf_id="Qwen/Qwen-7B-Chat",
        family="qwen",
        nominal_size="7B",
        size_class="small",
        parameters=7_721_324_544,
        architecture=Architecture(
            model_type="qwen",
            hidden_size=4096,
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=32,  # multi-head attention: no GQA in Qwen-1 (the config has no such key)
            head_dim=128,  # config key kv_channels
            # config.json says 22016 = 2 x 11008: Qwen-1's MLP has w1 and w2 of width intermediate_size // 2.
            intermediate_size=11008,
            vocab_size=151936,
            # seq_length 8192 is the trained context (max_position_embeddings is also 8192 here);
            # longer inputs rely on use_dynamic_ntk / use_logn_attn.
            max_position_embeddings=8192,
            # The config has bf16/fp16/fp32 auto flags rather than a reliable torch_dtype; the
            # safetensors shards are BF16 and derived configs record torch_dtype "bfloat16".
            torch_dtype="bfloat16",
            tie_word_embeddings=False,
            qkv_bias=True,  # fused c_attn has a bias; no_bias=true covers c_proj and the MLP only
            qk_norm=False,
            rope_theta=10000.0,  # config key rotary_emb_base
            rms_norm_eps=1e-6,  # config key layer_norm_epsilon (RMSNorm)
        ),
        chat=True,
        trust_remote_code=True,
        supports_thinking=False,
        chat_template=CHATML_TEMPLATE,
        # Qwen-1's eos is <|endoftext|>; its chat() stops at <|im_end|> and <|im_start|> as well.
        stop_token_ids=[151645, 151644],
        source_url=_config_url("Qwen/Qwen-7B-Chat"),
    ),
    # Qwen-14B-Chat (Qwen-1, remote code). config.json: TheBloke/Qwen-14B-Chat-AWQ and -GPTQ (saved from
    # "qwen_qwen-14b-chat/source"), and rinna/nekomata-14b (a verbatim Qwen-14B config): hidden_size 5120,
    # num_hidden_layers 40, num_attention_heads 40, kv_channels 128, intermediate_size 27392,
    # vocab_size 152064, layer_norm_epsilon 1e-06, rotary_emb_base 10000, max_position_embeddings 8192,
    # seq_length 2048, torch_dtype bfloat16. Parameters 14,167,290,880 (model card "14B", hub "14.2B"):
    # no stored source names Qwen-14B-Chat with the exact figure; it equals the safetensors-metadata count
    # of the tensor-for-tensor identical Qwen1.5-14B (stored-index file 65866616769, "14,167,290,880
    # parameters (safetensors metadata)") and Architecture.parameter_count() below.
    "qwen_14b": ModelSpec(
        name="qwen_14b",
        hf_id="Qwen/Qwen-14B-Chat",
        family="qwen",
        nominal_size="14B",
        size_class="large",
        parameters=14_167_290_880,
        architecture=Architecture(
            model_type="qwen",
            hidden_size=5120,
            num_hidden_layers=40,
            num_attention_heads=40,
            num_key_value_heads=40,
            head_dim=128,
            intermediate_size=13696,  # config.json: 27392 = 2 x 13696
            vocab_size=152064,
            # The config's max_position_embeddings is 8192 but seq_length (the trained context) is 2048;
            # 8192 is reachable only through dynamic NTK + logn attention, so the registry stores 2048.
            max_position_embeddings=2048,
            torch_dtype="bfloat16",
            tie_word_embeddings=False,
            qkv_bias=True,
            qk_norm=False,
            rope_theta=10000.0,
            rms_norm_eps=1e-6,
        ),
        chat=True,
        trust_remote_code=True,
        supports_thinking=False,
        chat_template=CHATML_TEMPLATE,
        # Qwen-1's eos is <|endoftext|>; its chat() stops at <|im_end|> and <|im_start|> as well.
        stop_token_ids=[151645, 151644],
        source_url=_config_url("Qwen/Qwen-14B-Chat"),
    ),
}


def _base_of(twin: str, hf_id: str, **architecture) -> ModelSpec:
    """The base (pre-trained only) checkpoint of a post-trained model above: its twin's spec and tensors
    (so its parameter count), with plain prompts (`chat=False`: tasks build completion-style prompts,
    prompting.py applies no template), no thinking, no chat template and no extra stop tokens (the base
    models' eos, <|endoftext|>, is the tokenizer's and generation config's own), a family of its own (scaling
    pairs never mix kinds), and the config.json values in which the base checkpoint differs."""
    spec = BUILTIN_MODELS[twin]
    data = spec.model_dump()
    data.update(
        name=f"{twin}_base",
        hf_id=hf_id,
        family=f"{spec.family}-base",
        architecture={**data["architecture"], **architecture},
        chat=False,
        supports_thinking=False,
        chat_template=None,
        stop_token_ids=[],
        source_url=_config_url(hf_id),
    )
    return ModelSpec.model_validate(data)


BASE_MODELS: dict[str, ModelSpec] = {
    # Qwen3-8B-Base. config.json: Chen-Oliver/qwen3-8b-base config.json (a copy of the published one):
    # Qwen3-8B's dimensions, but 32768 positions (the base models' pre-training context) and eos 151643.
    "qwen3_8b_base": _base_of("qwen3_8b", "Qwen/Qwen3-8B-Base", max_position_embeddings=32768),
    # Qwen3-14B-Base. No stored copy of its config.json was found; Qwen3-14B's dimensions (the same tensors)
    # and 32768 positions as for every Qwen3 base checkpoint (the Qwen3 report's 32,768-token final stage).
    "qwen3_14b_base": _base_of("qwen3_14b", "Qwen/Qwen3-14B-Base", max_position_embeddings=32768),
    # Qwen2.5-7B. config.json: citsjtu2020/LLM-Prof sglang/Model_Config.md ("Qwen2.5-7B" block): the
    # Instruct model's dimensions, 131072 positions with no rope_scaling (model card: "Context Length:
    # 131,072 tokens"; Instruct: 32768), eos 151643.
    "qwen2.5_8b_base": _base_of("qwen2.5_8b", "Qwen/Qwen2.5-7B", max_position_embeddings=131072),
    # Qwen2.5-14B. Same source ("Qwen2.5-14B" block): 131072 positions and rms_norm_eps 1e-05 (Instruct:
    # 32768 and 1e-06), eos 151643.
    "qwen2.5_14b_base": _base_of(
        "qwen2.5_14b", "Qwen/Qwen2.5-14B", max_position_embeddings=131072, rms_norm_eps=1e-5
    ),
    # Qwen-7B and Qwen-14B (Qwen-1 base, remote code): the config.json values their Chat models carry (a
    # model table citing https://huggingface.co/Qwen/Qwen-7B/blob/main/config.json and .../Qwen-14B/...,
    # stored-index file 228514887); the parameter counts cited for the Chat models are the base models'
    # own (Qwen-7B's safetensors index total_size = 2 x 7,721,324,544). Qwen-14B: a 2,048-token trained
    # context (8192 only through dynamic NTK + logn attention), as for the Chat model.
    "qwen_8b_base": _base_of("qwen_8b", "Qwen/Qwen-7B"),
    "qwen_14b_base": _base_of("qwen_14b", "Qwen/Qwen-14B"),
}
BUILTIN_MODELS |= BASE_MODELS


def builtin_model(name: str) -> ModelSpec:
    """A copy of the built-in spec called `name` (callers may edit it); an unknown name is a user error."""
    try:
        return BUILTIN_MODELS[name].model_copy(deep=True)
    except KeyError:
        raise unknown_name("model", name, list(BUILTIN_MODELS)) from None
