"""Published scores (published.yaml beside this module) and how the pipeline's results compare with them.

A published number is compared with a metrics document where, and only where, the two are the same
measurement (`match`):

- the document's status is "ok" and it is not an embedded sample (`embedded_sample: true`);
- its model is the entry's registry name: only the twelve Qwen checkpoints have entries, so a tiny model
  (params `tiny_models`, registry names "tiny_*") or any other model never matches;
- its `protocol` is "qwen" (Qwen's published settings; a document without the key is "qwen-pipe": today's
  prompts, which are not the published setting, like "lm-eval");
- its dataset is the entry's, with the same shots, and for post-trained models the same thinking mode
  (base-model entries have thinking null and do not compare it);
- for a judged benchmark (an entry with `judges`), the cell was judged by one of those judges: an MT-Bench
  rating from another judge is another measurement;
- it scored the whole published split: the metric's n equals the entry's `rows`. A `sample_limit` subset
  estimates the same number with a wider interval, but it is not the published result: it is not compared
  and the report counts it as a subset run.

Each comparison gives the delta (measured - published) and its 95% interval (measured +/- 1.96 stderr,
minus published); `outside` is true when the published number lies outside measured's 95% interval (a
value exactly on the edge is inside). Entries with `not_compared` (EvalPlus, base MATH, Arena-Hard) are
data only: no qwen-pipe result is that number (published.yaml says why for each).
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from qwen_pipe.errors import QwenPipeError
from qwen_pipe.protocols import DEFAULT_PROTOCOL

PUBLISHED = Path(__file__).with_name("published.yaml")
Z95 = 1.96
EDGE = 1e-12  # float slack: a published value on the interval's edge counts as inside
QWEN_PROTOCOL = "qwen"  # Qwen's published settings (protocols.py); the only one compared


class Source(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    document: str = Field(min_length=1)
    table: str = Field(min_length=1)
    row: str = Field(min_length=1)
    column: str = Field(min_length=1)


class Published(BaseModel):
    """One published number and the qwen-pipe measurement it corresponds to (or why none does)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    published_model: str = Field(min_length=1)
    model: str = Field(min_length=1)
    benchmark: str = Field(min_length=1)
    dataset: str | None = None
    metric: str | None = None
    rows: int | None = Field(None, gt=0)
    not_compared: str | None = None
    shots: int | None = Field(None, ge=0)
    thinking: bool | None
    value: float
    scale: Literal["fraction", "mt_bench"]
    source: Source
    note: str | None = None
    # a judged benchmark: the judge models (API names) whose scores are this measurement
    judges: tuple[str, ...] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Published:
        measured = (self.dataset, self.metric, self.rows)
        if all(v is None for v in measured):
            if not self.not_compared:
                raise ValueError("no dataset/metric/rows and no not_compared reason")
        elif any(v is None for v in measured):
            raise ValueError("dataset, metric and rows go together (all three or none)")
        elif self.not_compared:
            raise ValueError("has both a dataset and a not_compared reason")
        elif self.shots is None:
            raise ValueError("a compared entry needs its published shots")
        low, high = (0.0, 1.0) if self.scale == "fraction" else (1.0, 10.0)
        if not low <= self.value <= high:
            raise ValueError(f"value {self.value} is outside [{low:g}, {high:g}] for scale {self.scale}")
        return self

    @property
    def compared(self) -> bool:
        return self.dataset is not None

    def label(self) -> str:
        return f"{self.published_model} {self.benchmark}"


def _entry_error(path: Path, index: int, raw: object, error: ValidationError | str) -> QwenPipeError:
    name = ""
    if isinstance(raw, dict):
        name = f" ({raw.get('published_model', '?')} {raw.get('benchmark', '?')})"
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        error = f"{where + ': ' if where else ''}{first['msg']}"
    text = " ".join(str(error).split())  # one line
    return QwenPipeError(f"{path}: entry {index}{name}: {text}", f"correct that entry of {path.name}")


def load_published(path: Path = PUBLISHED) -> tuple[Published, ...]:
    """Every entry of published.yaml, validated; a problem is one line naming the entry."""
    import yaml

    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise QwenPipeError(f"cannot read {path}: {error.strerror}", "restore the file from git") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise QwenPipeError(f"{path} is not valid YAML{where}", "fix the YAML syntax there") from None
    if not isinstance(document, dict) or not isinstance(document.get("entries"), list):
        raise QwenPipeError(f"{path} must hold a list under `entries:`", "see the comments at its top")
    entries: list[Published] = []
    seen: dict[tuple, int] = {}
    for index, raw in enumerate(document["entries"], start=1):
        try:
            entry = Published.model_validate(raw)
        except ValidationError as error:
            raise _entry_error(path, index, raw, error) from None
        if entry.compared:
            key = (entry.model, entry.dataset, entry.metric, entry.shots, entry.thinking)
            if key in seen:
                raise _entry_error(
                    path, index, raw, f"the same measurement as entry {seen[key]} (model, dataset, setting)"
                )
            seen[key] = index
        entries.append(entry)
    return tuple(entries)


@functools.cache
def published() -> tuple[Published, ...]:
    """The shipped entries (read once per process)."""
    return load_published()


def protocol(doc: dict) -> str:
    """The protocol a metrics document was produced under (DEFAULT_PROTOCOL, "qwen-pipe", where it has no
    `protocol` key: written before protocols existed, with qwen-pipe's own prompts)."""
    return doc.get("protocol") or DEFAULT_PROTOCOL


def _measured(doc: dict, metric: str) -> dict | None:
    found = (doc.get("metrics") or {}).get(metric)
    if isinstance(found, dict) and found.get("value") is not None:
        return found
    if metric == doc.get("primary_metric") and doc.get("score") is not None:
        return {"value": doc["score"], "stderr": doc.get("stderr"), "n": doc.get("n")}
    return None


def match(doc: dict, entries: Iterable[Published]) -> tuple[Published | None, str | None]:
    """The entry a metrics document is the measurement of, or None and why not (a short reason)."""
    candidates = [e for e in entries if e.compared and e.model == doc.get("model")]
    if not candidates:
        return None, "model without published numbers"  # tiny models and every non-Qwen model
    if doc.get("status") != "ok":
        return None, "failed"
    if doc.get("embedded_sample"):
        return None, "embedded sample"
    if protocol(doc) != QWEN_PROTOCOL:
        return None, f"protocol {protocol(doc)}"
    candidates = [e for e in candidates if e.dataset == doc.get("dataset")]
    if not candidates:
        return None, "dataset without a published number"
    candidates = [e for e in candidates if e.shots == doc.get("shots")]
    if not candidates:
        return None, "other shots"
    candidates = [e for e in candidates if e.thinking is None or e.thinking is doc.get("thinking")]
    if not candidates:
        return None, "other thinking mode"
    judge = (doc.get("judge") or {}).get("model")
    candidates = [e for e in candidates if e.judges is None or judge in e.judges]
    if not candidates:
        return None, "other judge"
    entry = candidates[0]  # load_published keeps (model, dataset, metric, setting) unique
    measured = _measured(doc, entry.metric or "")
    if measured is None:
        return None, f"no {entry.metric} in the metrics"
    if measured.get("n") != entry.rows:
        return None, "subset run"
    return entry, None


@dataclass
class Comparison:
    rows: list[dict]
    skipped: Counter = field(default_factory=Counter)  # reason -> documents


def compare_published(docs: Iterable[dict], entries: Iterable[Published] | None = None) -> Comparison:
    """Every comparison row (see published_comparison) and, for the documents without one, why not."""
    entries = tuple(published() if entries is None else entries)
    out = Comparison([])
    for doc in docs:
        entry, reason = match(doc, entries)
        if entry is None:
            out.skipped[reason] += 1
            continue
        measured = _measured(doc, entry.metric or "") or {}
        value, stderr = measured["value"], measured.get("stderr")
        delta = value - entry.value
        half = Z95 * stderr if stderr is not None else None
        out.rows.append(
            {
                "model": doc["model"],
                "preset": doc.get("preset"),
                "dataset": doc["dataset"],
                "metric": entry.metric,
                "published_model": entry.published_model,
                "benchmark": entry.benchmark,
                "shots": entry.shots,
                "thinking": entry.thinking,
                "n": measured.get("n"),
                "published": entry.value,
                "measured": value,
                "stderr": stderr,
                "delta": delta,
                "delta_low": None if half is None else delta - half,
                "delta_high": None if half is None else delta + half,
                "outside": None if half is None else abs(delta) > half + EDGE,
                "source": entry.source.model_dump(),
            }
        )
    out.rows.sort(key=lambda r: (r["model"], r["dataset"], r["preset"] or "", str(r["thinking"])))
    return out


def published_comparison(docs: Iterable[dict], entries: Iterable[Published] | None = None) -> list[dict]:
    """One row per metrics document that measures a published number: model, dataset, published, measured,
    delta, the delta's 95% interval (delta_low, delta_high) and `outside` (the published value lies outside
    measured's 95% interval; None when the document has no stderr)."""
    return compare_published(docs, entries).rows
