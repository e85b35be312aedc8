"""Hugging Face transformers: the reference implementation, and the engine where vLLM is unavailable."""

from __future__ import annotations

import gc
import time
from typing import TYPE_CHECKING

from qwen_pipe.engines.base import (
    EngineInfo,
    Generation,
    GenerationRequest,
    Loglikelihood,
    LoglikelihoodRequest,
    SamplingParams,
)
from qwen_pipe.engines.registry import accelerator, register_engine
from qwen_pipe.engines.tokens import context_continuation_ids, truncate_at_stop

if TYPE_CHECKING:
    from qwen_pipe.config import EngineParams, Preset
    from qwen_pipe.models.spec import ModelSpec

DTYPES = {"bfloat16", "float16", "float32"}


@register_engine("transformers", packages=("transformers",))
class TransformersEngine:
    def __init__(
        self,
        model: str,
        *,
        dtype: str = "bfloat16",
        revision: str | None = None,
        trust_remote_code: bool = False,
        batch_size: int = 16,
        load_format: str = "auto",
        stop_token_ids: list[int] | None = None,
    ):
        import torch
        import transformers
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        torch_dtype = getattr(torch, dtype if dtype in DTYPES else "bfloat16")
        started = time.perf_counter()
        self.tokenizer = AutoTokenizer.from_pretrained(
            model, revision=revision, trust_remote_code=trust_remote_code, padding_side="left"
        )
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if load_format == "dummy":  # random weights of the real architecture: throughput and memory only
            config = AutoConfig.from_pretrained(model, revision=revision, trust_remote_code=trust_remote_code)
            with torch.device(self.device):
                self.model = AutoModelForCausalLM.from_config(
                    config, torch_dtype=torch_dtype, trust_remote_code=trust_remote_code
                )
        else:
            self.model = AutoModelForCausalLM.from_pretrained(
                model, revision=revision, trust_remote_code=trust_remote_code, dtype=torch_dtype
            ).to(self.device)
        self.model.eval()
        self.load_seconds = time.perf_counter() - started
        self.batch_size = batch_size
        configured = self.model.generation_config.eos_token_id
        configured = (
            configured if isinstance(configured, list) else [configured] if configured is not None else []
        )
        self.eos_ids = [*configured, *(stop_token_ids or [])]
        self.info = EngineInfo(
            engine="transformers",
            version=transformers.__version__,
            model=model,
            args={
                "dtype": dtype,
                "batch_size": batch_size,
                "device": self.device,
                "load_format": load_format,
            },
        )

    @classmethod
    def from_config(
        cls, spec: ModelSpec, preset: Preset, engine_params: EngineParams, *, seed: int, load_format: str
    ) -> TransformersEngine:
        return cls(
            spec.hf_id,
            dtype=preset.dtype,
            revision=spec.revision,
            trust_remote_code=spec.trust_remote_code,
            batch_size=preset.max_num_seqs,
            load_format=load_format,
            stop_token_ids=spec.stop_token_ids,
        )

    @classmethod
    def output_args(
        cls, spec: ModelSpec, preset: Preset, engine_params: EngineParams, load_format: str
    ) -> dict:
        return {
            "args": {"dtype": preset.dtype, "batch_size": preset.max_num_seqs},
            "load_format": load_format,
            "device": accelerator(),
        }

    def generate(self, requests: list[GenerationRequest]) -> list[Generation]:
        results: list[Generation | None] = [None] * len(requests)
        groups: dict[SamplingParams, list[int]] = {}
        for index, request in enumerate(requests):
            groups.setdefault(request.sampling, []).append(index)
        for sampling, indices in groups.items():
            indices.sort(key=lambda i: -len(requests[i].prompt))  # similar lengths batch with little padding
            for start in range(0, len(indices), self.batch_size):
                batch = indices[start : start + self.batch_size]
                for index, generation in zip(
                    batch, self._generate_batch([requests[i].prompt for i in batch], sampling), strict=True
                ):
                    results[index] = generation
        return [r for r in results if r is not None]

    def _generate_batch(self, prompts: list[str], sampling: SamplingParams) -> list[Generation]:
        torch = self.torch
        encoded = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(
            self.device
        )
        options: dict = {
            "max_new_tokens": sampling.max_new_tokens,
            "pad_token_id": self.tokenizer.pad_token_id,
            "eos_token_id": self.eos_ids or None,
        }
        if sampling.ignore_eos:
            options["min_new_tokens"] = sampling.max_new_tokens
        if sampling.temperature > 0:
            torch.manual_seed(sampling.seed)
            options.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p)
            if sampling.top_k > 0:
                options["top_k"] = sampling.top_k
        else:
            options.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if sampling.stop:
            options.update(stop_strings=list(sampling.stop), tokenizer=self.tokenizer)
        started = time.perf_counter()
        with torch.inference_mode():
            output = self.model.generate(**encoded, **options)
        share = (time.perf_counter() - started) / len(prompts)
        width = encoded["input_ids"].shape[1]
        eos = set(self.eos_ids)
        results = []
        for row, mask in zip(output, encoded["attention_mask"], strict=True):
            tokens = row[width:].tolist()
            ended = (
                None
                if sampling.ignore_eos
                else next(
                    (i for i, t in enumerate(tokens) if t in eos or t == self.tokenizer.pad_token_id), None
                )
            )
            tokens = tokens if ended is None else tokens[:ended]
            text, stopped = truncate_at_stop(
                self.tokenizer.decode(tokens, skip_special_tokens=True), sampling.stop
            )
            if stopped:
                tokens = self.tokenizer.encode(text, add_special_tokens=False)
            reason = "stop" if ended is not None or stopped else "length"
            results.append(Generation(text, int(mask.sum()), len(tokens), reason, share))
        return results

    def loglikelihood(self, requests: list[LoglikelihoodRequest]) -> list[Loglikelihood]:
        torch = self.torch
        splits = [context_continuation_ids(self.tokenizer, r.context, r.continuation) for r in requests]
        results: list[Loglikelihood | None] = [None] * len(requests)
        order = sorted(range(len(splits)), key=lambda i: -len(splits[i][0]) - len(splits[i][1]))
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            rows = [splits[i][0] + splits[i][1] for i in batch]
            width = max(len(r) for r in rows)
            pad = self.tokenizer.pad_token_id
            ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=self.device)
            mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=self.device)
            with torch.inference_mode():
                # the output head on the continuation positions only: logits for every position of a batch
                # (rows x tokens x a 152k vocabulary) would take tens of GB at judge-prompt lengths
                hidden = self.model.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
                head = self.model.get_output_embeddings()
                for row, index in enumerate(batch):
                    ctx, cont = splits[index]
                    positions = torch.arange(len(ctx) - 1, len(ctx) + len(cont) - 1, device=self.device)
                    targets = torch.tensor(cont, device=self.device)
                    scores = torch.log_softmax(head(hidden[row, positions]).float(), dim=-1)
                    total = float(scores.gather(1, targets[:, None]).sum())
                    greedy = bool((scores.argmax(dim=-1) == targets).all())
                    results[index] = Loglikelihood(total, greedy, len(cont))
        return [r for r in results if r is not None]

    def close(self) -> None:
        del self.model
        gc.collect()
        if self.device == "cuda":
            self.torch.cuda.empty_cache()
