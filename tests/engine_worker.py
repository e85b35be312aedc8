"""Runs one engine on fixed requests in its own process (vLLM wants a clean process) and prints JSON."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict

from qwen_pipe.engines.base import GenerationRequest, LoglikelihoodRequest, SamplingParams

PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):",
    "Question: What is 12 times 7?\nAnswer:",
    "<|im_start|>user\nWrite a haiku about rain.<|im_end|>\n<|im_start|>assistant\n",
    "中文测试：今天天气",
]
PAIRS = [("The cat sat on the", " mat"), ("2 + 2 =", " 4"), ("Question: Is the sky blue?\nAnswer:", " yes")]


def main(engine_name: str, model: str) -> None:
    if engine_name == "vllm":
        from qwen_pipe.engines.vllm_engine import VLLMEngine

        engine = VLLMEngine(
            model,
            engine_args={
                "dtype": "bfloat16",
                "enforce_eager": True,
                "max_model_len": 512,
                "enable_prefix_caching": False,
            },
        )
    else:
        from qwen_pipe.engines.transformers_engine import TransformersEngine

        engine = TransformersEngine(model, dtype="bfloat16", batch_size=1)
    greedy = SamplingParams(max_new_tokens=24, ignore_eos=True)
    stopped = SamplingParams(max_new_tokens=24, stop=("\n",))
    generations = engine.generate([GenerationRequest(p, greedy) for p in PROMPTS])
    with_stop = engine.generate([GenerationRequest(p, stopped) for p in PROMPTS])
    logliks = engine.loglikelihood([LoglikelihoodRequest(c, x) for c, x in PAIRS])
    too_long = (
        engine.generate([GenerationRequest("word " * 600, greedy), GenerationRequest(PROMPTS[0], greedy)])
        if engine_name == "vllm"
        else []
    )
    tokens = [engine.tokenizer.encode(g.text, add_special_tokens=False) for g in generations]
    print(
        json.dumps(
            {
                "generations": [asdict(g) for g in generations],
                "tokens": tokens,
                "with_stop": [asdict(g) for g in with_stop],
                "loglikelihoods": [asdict(x) for x in logliks],
                "too_long": [asdict(g) for g in too_long],
            }
        )
    )
    engine.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
