"""A task is a data source, a prompt, generation settings and a scorer, registered by name.

Records are kept in the hub's schema (whatever the source: hub, mirror or embedded sample) plus a
stable `id`; a task turns a record into engine requests and scores the engine's responses.
"""

from __future__ import annotations

import functools
import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

from qwen_pipe.engines.base import Generation, Loglikelihood, LoglikelihoodRequest, SamplingParams
from qwen_pipe.errors import QwenPipeError
from qwen_pipe.protocols import DEFAULT_PROTOCOL, LM_EVAL_VERSION, check_protocol
from qwen_pipe.scoring.stats import mean_and_stderr
from qwen_pipe.sources.embedded import package_records
from qwen_pipe.sources.hub import load_hub_split
from qwen_pipe.sources.mirror import read_mirror_jsonl

Kind = Literal["generation", "multiple_choice", "code", "instruction", "judge"]
Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": str}
Prompt = list[Message] | str  # chat messages for chat models, plain text for completion


@dataclass(frozen=True)
class DataSource:
    """Where a task's data comes from and what makes a sample's id: for fetch, docs and error messages.

    The declarations give every task its loaders (`Task.load_mirror`, `load_embedded`, `sample_id`); a
    task overrides one only where its data needs more (a record conversion, several mirror files).
    """

    hub_id: str
    hub_config: str | None
    split: str
    rows: int  # size of the published split
    mirror_files: tuple[str, ...]  # relative to the mirror root (the layout of ../shared/datasets)
    embedded: str  # what the embedded default uses: a package's data or our own written sample
    fields: tuple[str, ...] = ()  # the hub fields a record must have (a mirror file lacking one is an error)
    # The embedded records: a JSONL file in qwen_pipe/tasks/embedded, or "package:path" for another package's data.
    embedded_file: str = ""
    # The sample id, one of: a hash of these hub fields (`content_id`), or a str.format template over the
    # record naming its upstream id ("{task_id}", "ifeval-{key}").
    id_fields: tuple[str, ...] = ()
    id_format: str = ""


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
    # the primary metric is an accuracy (a share of correct answers, 0..1): comparable across datasets,
    # averaged in the leaderboard and the scaling analysis; MT-Bench's `answered` is not
    primary_is_accuracy: ClassVar[bool] = True
    metrics: ClassVar[tuple[str, ...]]
    published_setting: ClassVar[str]  # the setting the prompt follows (docs/tasks.md)
    prompt_format: ClassVar[str]  # one line: how a sample becomes a prompt (docs/tasks.md)
    default_shots: ClassVar[int] = 0
    # protocol -> (its shots, one line: what the task does under it) where it differs from the task's own
    # (default_shots, published_setting); docs/tasks.md and `qwen-pipe datasets list` show these
    protocol_settings: ClassVar[dict[str, tuple[int, str]]] = {}
    # the lm-evaluation-harness task the `lm-eval` protocol reproduces (None: none that qwen-pipe reproduces)
    lm_eval_task: ClassVar[str | None] = None
    format: ClassVar[str | None] = None  # an answer format other than the task's own (tasks/__init__.FORMATS)
    # sample id -> why the oracle cannot score 1.0 on it (an upstream data problem; docs/tasks.md lists them)
    oracle_exceptions: ClassVar[dict[str, str]] = {}

    def __init__(self, shots: int | None = None, protocol: str = DEFAULT_PROTOCOL):
        self.protocol = check_protocol(protocol)
        if self.protocol == "lm-eval" and self.lm_eval_task is None:
            raise QwenPipeError(
                f"{self.name} has no lm-evaluation-harness {LM_EVAL_VERSION} task that qwen-pipe reproduces",
                f"evaluate {self.name} under protocol qwen-pipe or qwen, or leave it out of the run",
            )
        self.shots = self.protocol_shots(self.protocol) if shots is None else shots
        if self.shots < 0:
            raise QwenPipeError(
                f"{self.name}: shots must be >= 0, got {self.shots}", "set a shot count of 0 or more"
            )

    @classmethod
    def protocol_shots(cls, protocol: str) -> int:
        return cls.protocol_settings.get(protocol, (cls.default_shots, ""))[0]

    @classmethod
    def protocol_setting(cls, protocol: str) -> str:
        """What the task does under `protocol` (one line)."""
        if protocol == "lm-eval" and cls.lm_eval_task is None:
            return f"not available: no lm-evaluation-harness {LM_EVAL_VERSION} task that qwen-pipe reproduces"
        default = cls.published_setting
        if protocol == "lm-eval":
            default = f"lm-eval `{cls.lm_eval_task}`, as in the task's own setting: {cls.published_setting}"
        return cls.protocol_settings.get(protocol, (0, default))[1]

    @property
    def lm_eval(self) -> bool:
        return self.protocol == "lm-eval"

    # --- data (defaults from the task's DataSource) -------------------------------------------
    def load_mirror(self, root: Path) -> list[dict]:
        """Hub-schema records read from a mirror folder laid out like ../shared/datasets."""
        files = self.source.mirror_files
        if len(files) != 1:
            raise NotImplementedError(
                f"{self.name} has {len(files)} mirror files: it must define load_mirror"
            )
        return read_mirror_jsonl(root, files[0], self.source.fields)

    def load_embedded(self) -> list[dict]:
        """Records that ship with qwen-pipe or its dependencies (no network)."""
        if not self.source.embedded_file:
            raise NotImplementedError(f"{self.name} declares no embedded_file: it must define load_embedded")
        return embedded_records(self.source.embedded_file)

    def load_hub(self) -> list[dict]:
        return load_hub_split(self.source.hub_id, self.source.hub_config, self.source.split)

    def sample_id(self, record: dict, index: int) -> str:
        """A stable id: the same record gets the same id on every machine and run."""
        if self.source.id_fields:
            return content_id(self.name, record, self.source.id_fields)
        if self.source.id_format:
            return self.source.id_format.format_map(record)
        raise NotImplementedError(
            f"{self.name} declares neither id_fields nor id_format: it must define sample_id"
        )

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


@dataclass(frozen=True)
class JudgeRequest:
    """One judgment an LLM judge makes of a sample's answers."""

    key: str  # which judgment of the sample: "turn_1", "game_2", ...
    prompt: str  # the judge prompt's name (FastChat's, Arena-Hard's)
    messages: tuple[Message, ...]  # the judge's conversation (system prompt, filled template)
    verdict: Literal["rating", "pairwise"]  # how its reply is read (scoring/judge.py PARSERS)


class JudgedTask(GenerationTask):
    """A generation task whose score comes from an LLM judge (the judge stage), not from `score`.

    `score` only records completeness (every turn answered); the judge stage asks `judge_requests` of every
    sample's answers, reads each reply as the request's `verdict` says, and `judge_scores` turns one
    sample's verdicts (None: the judgment failed) into its metrics; `judge_aggregate` makes the cell's."""

    judge_metric: ClassVar[str]  # the primary metric once judged
    judge_scale: ClassVar[tuple[float, float]]  # its range (MT-Bench 1-10, a win rate 0-1)
    judge_max_new_tokens: ClassVar[int]  # the published judge's output budget
    judge_setting: ClassVar[str]  # one line: the published judging this reproduces (docs, report)

    @abstractmethod
    def judge_requests(self, sample: dict, answers: Sequence[str]) -> list[JudgeRequest]: ...

    @abstractmethod
    def judge_scores(self, sample: dict, verdicts: dict[str, float | str | None]) -> dict[str, float]:
        """The sample's metrics from its verdicts by request key; a metric without a verdict is left out."""

    @abstractmethod
    def judge_aggregate(self, samples: Sequence[dict], scores: Sequence[dict[str, float]]) -> dict:
        """{"score", "stderr", "ci_low", "ci_high", "n", "metrics": {name: {value, stderr, n, ...}}}."""


class LoglikelihoodTask(Task):
    """A task scored by comparing the log-likelihood the model gives each continuation."""

    @abstractmethod
    def loglikelihood_requests(self, sample: dict) -> list[LoglikelihoodRequest]:
        """One request per continuation, with `gold` marking the correct ones (for the oracle)."""


def content_id(prefix: str, record: dict, fields: Sequence[str]) -> str:
    """A stable id from the record's hub fields: the same whichever source (hub, raw mirror file) it came from."""
    payload = json.dumps([record[f] for f in fields], ensure_ascii=False, sort_keys=True)
    return f"{prefix}-{hashlib.sha256(payload.encode()).hexdigest()[:16]}"


def embedded_records(filename: str) -> list[dict]:
    """Records of a JSONL file in qwen_pipe/tasks/embedded (samples and exemplars we wrote ourselves), or of
    another package's data file named "package:path"."""
    package, separator, path = filename.partition(":")
    if separator:
        return package_records(package, path)
    return package_records("qwen_pipe.tasks", f"embedded/{filename}")


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
