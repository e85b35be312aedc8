"""A task is a data source, a prompt, generation settings and a scorer, registered by name.

Records are kept in the hub's schema (whatever the source: hub, mirror or embedded sample) plus a
stable `id`; a task turns a record into engine requests and scores the engine's responses.
"""

from __future__ import annotations

import functools
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

from qwen_pipe.engines.base import Generation, Loglikelihood, LoglikelihoodRequest, SamplingParams
from qwen_pipe.errors import QwenPipeError
from qwen_pipe.io import read_jsonl as read_jsonl  # re-exported for task modules
from qwen_pipe.scoring.stats import mean_and_stderr

Kind = Literal["generation", "multiple_choice", "code", "instruction", "judge"]
Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": str}
Prompt = list[Message] | str  # chat messages for chat models, plain text for completion


@dataclass(frozen=True)
class DataSource:
    """Where a task's data comes from, for fetch, docs and error messages."""

    hub_id: str
    hub_config: str | None
    split: str
    rows: int  # size of the published split
    mirror_files: tuple[str, ...]  # relative to the mirror root (the layout of ../shared/datasets)
    embedded: str  # what the embedded default uses: a package's data or our own written sample


@dataclass(frozen=True)
class PromptStyle:
    chat: bool  # render through the model's chat template
    enable_thinking: bool = False  # Qwen3 hybrid thinking; the <think> block is stripped before scoring


@dataclass
class SampleScore:
    metrics: dict[str, float]
    extracted: dict = field(default_factory=dict)  # what the scorer read from the output, for audits


Response = Generation | Loglikelihood


class Task(ABC):
    name: ClassVar[str]
    kind: ClassVar[Kind]
    source: ClassVar[DataSource]
    primary_metric: ClassVar[str]
    metrics: ClassVar[tuple[str, ...]]
    published_setting: ClassVar[str]  # the setting the prompt follows (docs/tasks.md)
    prompt_format: ClassVar[str]  # one line: how a sample becomes a prompt (docs/tasks.md)
    default_shots: ClassVar[int] = 0
    format: ClassVar[str | None] = None  # an answer format other than the task's own (tasks/__init__.FORMATS)
    # sample id -> why the oracle cannot score 1.0 on it (an upstream data problem; docs/tasks.md lists them)
    oracle_exceptions: ClassVar[dict[str, str]] = {}

    def __init__(self, shots: int | None = None):
        self.shots = self.default_shots if shots is None else shots
        if self.shots < 0:
            raise QwenPipeError(
                f"{self.name}: shots must be >= 0, got {self.shots}", "set a shot count of 0 or more"
            )

    # --- data -------------------------------------------------------------------------------
    @abstractmethod
    def load_mirror(self, root: Path) -> list[dict]:
        """Hub-schema records read from a mirror folder laid out like ../shared/datasets."""

    @abstractmethod
    def load_embedded(self) -> list[dict]:
        """Records that ship with qwen-pipe or its dependencies (no network)."""

    def load_hub(self) -> list[dict]:
        from qwen_pipe.sources.hub import load_hub_split

        return load_hub_split(self.source.hub_id, self.source.hub_config, self.source.split)

    @abstractmethod
    def sample_id(self, record: dict, index: int) -> str:
        """A stable id: the same record gets the same id on every machine and run."""

    # --- scoring ----------------------------------------------------------------------------
    @abstractmethod
    def score(self, sample: dict, responses: Sequence[Response], style: PromptStyle) -> SampleScore: ...

    def score_all(
        self, samples: Sequence[dict], responses: Sequence[Sequence[Response]], style: PromptStyle
    ) -> list[SampleScore]:
        """Score many samples; tasks with an expensive shared step (code execution) override this."""
        return [self.score(s, r, style) for s, r in zip(samples, responses, strict=True)]

    def aggregate(self, samples: Sequence[dict], scores: Sequence[SampleScore]) -> dict[str, dict]:
        """Each metric's mean, stderr and n over the samples."""
        return {m: mean_and_stderr([s.metrics[m] for s in scores]) for m in self.metrics}


class GenerationTask(Task):
    """A task answered by free-form generation (math, code, instructions, chat)."""

    @abstractmethod
    def prompt(self, sample: dict, style: PromptStyle, history: Sequence[str] = ()) -> Prompt:
        """The prompt of the next turn; `history` holds the model's earlier answers (multi-turn tasks)."""

    def sampling(self, style: PromptStyle) -> SamplingParams:
        """Stop sequences and output budget (temperature and seed come from the run's params; in
        thinking mode the budget becomes config.THINKING_MAX_NEW_TOKENS and stops are dropped)."""
        return SamplingParams()

    def sample_sampling(self, sample: dict, sampling: SamplingParams) -> SamplingParams:
        """Per-sample adjustments of the run's sampling (e.g. MT-Bench's per-category temperature)."""
        return sampling

    def turns(self, sample: dict) -> int:
        return 1

    def gold_output(self, sample: dict, turn: int = 0) -> str | None:
        """An output that must score 1.0: what the oracle engine answers (None: the task has no gold)."""
        return None


class LoglikelihoodTask(Task):
    """A task scored by comparing the log-likelihood the model gives each continuation."""

    @abstractmethod
    def loglikelihood_requests(self, sample: dict) -> list[LoglikelihoodRequest]:
        """One request per continuation, with `gold` marking the correct ones (for the oracle)."""


def require_fields(records: list[dict], fields: Sequence[str], path: Path) -> list[dict]:
    """One clear error when a mirror file lacks fields the task reads (renamed or missing columns)."""
    for index, record in enumerate(records):
        missing = [f for f in fields if f not in record]
        if missing:
            raise QwenPipeError(
                f"{path}: record {index} lacks field(s) {', '.join(missing)}; expected fields {', '.join(fields)}",
                "point the data dir at a mirror with the documented layout (docs/tasks.md) or fix the file",
            )
    return records


def embedded_records(filename: str) -> list[dict]:
    """Records of a JSONL file in qwen_pipe/tasks/embedded (samples and exemplars we wrote ourselves)."""
    from importlib import resources

    text = (resources.files("qwen_pipe.tasks") / "embedded" / filename).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@functools.cache
def embedded_exemplars(filename: str) -> tuple[dict, ...]:
    """Few-shot exemplars of qwen_pipe/tasks/embedded, read once per process (prompts ask for them per sample)."""
    return tuple(embedded_records(filename))


def first_shots(
    exemplars: Sequence, shots: int, what: str, fix: str = "lower the shot count", kind: str = "exemplars"
) -> list:
    """The first `shots` exemplars, or a one-line error when fewer exist."""
    if shots > len(exemplars):
        raise QwenPipeError(f"{what} has {len(exemplars)} {kind}, {shots} shots asked", fix)
    return list(exemplars[:shots])


def read_mirror_jsonl(root: Path, relative: str, fields: Sequence[str]) -> list[dict]:
    """The records of a JSONL(.gz) mirror file, checked for the fields the task reads."""
    path = mirror_file(root, relative)
    return require_fields(read_jsonl(path), fields, path)


def mirror_file(root: Path, relative: str) -> Path:
    path = root / relative
    if not path.is_file():
        raise QwenPipeError(
            f"dataset file {relative} not found in mirror {root}",
            "pass --data-dir (or set fetch.data_dir / QWEN_PIPE_DATA_DIR) to a folder laid out like "
            "../shared/datasets, or use source 'embedded'",
        )
    return path
