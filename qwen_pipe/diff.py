"""`qwen-pipe diff A [B]`: `dvc metrics diff` of the evaluation cells, each score change judged against its noise.

A cell is in `metrics/eval/<model>/<preset>/<dataset>.json` (or, judged by an LLM, `metrics/judge/...`) on both
sides, on one (added, removed) or failed. Where both sides' per-sample scores (`data/scores/...jsonl`, or the
judge's `data/judgments/...jsonl`; DVC outputs) can be read, the change of the
primary metric is tested on the paired items (McNemar or a paired bootstrap); otherwise from the two scores
and their standard errors alone (an unpaired normal interval, weaker: it ignores that the items are the same).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from qwen_pipe.cells import JUDGMENTS_DIR, PIPELINE, Cell
from qwen_pipe.console import fmt
from qwen_pipe.errors import QwenPipeError
from qwen_pipe.scoring.paired import compare_paired, unpaired

WORKSPACE = "workspace"
METRICS_DIR = PIPELINE.metrics.as_posix()  # metrics/eval
# the metrics folders diffed, and where each one's per-sample scores are
SAMPLES = {METRICS_DIR: PIPELINE.scores, "metrics/judge": JUDGMENTS_DIR}

# sort order of the table: what needs a look first
VERDICTS = (
    "regression",
    "failed in B",
    "removed",
    "undetermined",
    "failed in A",
    "failed in both",
    "within noise",
    "improvement",
    "added",
    "unchanged",
)
SCORE_KEYS = ("score", "stderr", "status", "primary_metric")  # shown in the table, not among `other`


@dataclass
class CellDiff:
    cell: Cell
    verdict: str
    metric: str | None = None
    evidence: str | None = None  # paired | stderr | identical (the metrics documents are equal)
    a: float | None = None
    b: float | None = None
    delta: float | None = None
    low: float | None = None
    high: float | None = None
    p_value: float | None = None
    significant: bool | None = None
    comparison: dict | None = None  # compare_paired's or unpaired's result, whole
    status: dict = field(default_factory=dict)  # {"a": "ok", "b": "failed"}
    other: dict = field(default_factory=dict)  # other numeric changes dvc reports: {key: {a, b, delta}}
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        out = asdict(self)
        out["cell"] = str(self.cell)
        return {**asdict(self.cell), **out}


@dataclass
class Side:
    """One side of the comparison: a commit, or the workspace (commit None)."""

    name: str  # as the user wrote it
    commit: str | None

    @property
    def rev(self) -> str:
        return self.commit or WORKSPACE


# --- the repository and its revisions ---


def _git(root: Path, *args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
    except FileNotFoundError as error:
        raise QwenPipeError(
            "git is not installed", "install git: qwen-pipe diff compares git revisions"
        ) from error


def repo_root(path: Path | None = None) -> Path:
    """The root of the git + DVC repository around `path` (default: the working directory)."""
    start = Path(path or Path.cwd())
    if not start.is_dir():
        raise QwenPipeError(f"{start} is not a directory", "pass the pipeline's repository with --repo")
    done = _git(start, "rev-parse", "--show-toplevel")
    if done.returncode != 0:
        raise QwenPipeError(
            f"{start} is not inside a git repository", "run it in the pipeline's repository or pass --repo"
        )
    root = Path(done.stdout.strip())
    if not (root / ".dvc").is_dir():
        raise QwenPipeError(
            f"{root} is not a DVC repository (no .dvc folder)", "pass the pipeline's repository"
        )
    return root


def resolve(root: Path, rev: str | None) -> Side:
    """A revision the user named, as a commit; None (or `workspace`) is the workspace."""
    if rev is None or rev == WORKSPACE:
        return Side(WORKSPACE, None)
    done = _git(root, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}")
    if done.returncode != 0:
        raise QwenPipeError(
            f"unknown revision {rev!r} in {root}", "pass a commit, branch or tag (see `git log --oneline`)"
        )
    return Side(rev, done.stdout.strip())


# --- dvc metrics diff ---


def dvc_metrics_diff(root: Path, a: Side, b: Side) -> tuple[dict, list[str]]:
    """`dvc metrics diff A [B] --json --all --targets metrics/eval` run at the root: {path: {key: {old, new,
    diff}}} (flattened keys, `diff` only where both are numbers) and dvc's warnings."""
    command = [sys.executable, "-m", "dvc", "metrics", "diff", a.rev]
    if b.commit:
        command.append(b.commit)
    command += ["--json", "--all", "--targets", *SAMPLES]
    done = subprocess.run(command, cwd=root, capture_output=True, text=True, check=False)
    messages = [line.strip() for line in done.stderr.splitlines() if line.strip()]
    if done.returncode != 0:
        errors = (
            [m for m in messages if m.startswith("ERROR")] or messages or [f"exit code {done.returncode}"]
        )
        raise QwenPipeError(
            f"dvc metrics diff failed: {errors[-1]}", "run it by hand to see the whole output"
        )
    try:
        return json.loads(done.stdout or "{}"), messages
    except json.JSONDecodeError as error:
        raise QwenPipeError(
            f"dvc metrics diff printed no JSON: {error}", "check the DVC version (3.x)"
        ) from error


def cell_of(path: str) -> Cell | None:
    """metrics/eval/<model>/<preset>/<dataset>.json (or metrics/judge/...) -> its cell; None for any other file."""
    return cell_and_samples(path)[0]


def cell_and_samples(path: str) -> tuple[Cell | None, Path | None]:
    """The cell of a metrics file, and its per-sample scores file (the score stage's, or the judge's)."""
    parts = Path(path).parts
    for folder, samples in SAMPLES.items():
        prefix = Path(folder).parts
        if len(parts) == len(prefix) + 3 and parts[: len(prefix)] == prefix and parts[-1].endswith(".json"):
            cell = Cell(parts[-3], parts[-2], parts[-1].removesuffix(".json"))
            return cell, samples.joinpath(*cell.parts, f"{cell.dataset}.jsonl")
    return None, None


# --- per-sample scores ---


class SampleReader:
    """Per-sample values of one side: the workspace's files, or a commit's through DVC (cache, then remote)."""

    def __init__(self, root: Path, side: Side):
        self.root, self.side = root, side
        self._fs = None

    def values(self, rows: Path, metric: str) -> dict[str, float]:
        """{sample id: value of `metric`} from the per-sample file `rows`; raises LookupError saying why when
        there are none."""
        path = rows.as_posix()
        text = self._read(path)
        values = {}
        for line in text.splitlines():
            if line.strip():
                row = json.loads(line)
                value = row.get("metrics", {}).get(metric)
                if isinstance(value, (int, float)):  # bools too: True is 1
                    values[str(row["id"])] = float(value)
        if not values:
            raise LookupError(f"{path} has no per-sample {metric!r}")
        return values

    def _read(self, path: str) -> str:
        where = f"{path} of {self.side.name}"
        if self.side.commit is None:
            try:
                return (self.root / path).read_text(encoding="utf-8", errors="surrogatepass")
            except OSError as error:
                raise LookupError(f"{where} not readable: {error.strerror or error}") from error
        try:
            with self._filesystem().open(path, "rb") as handle:
                return handle.read().decode("utf-8", errors="surrogatepass")
        except FileNotFoundError as error:
            if not self._filesystem().exists(path):  # dvc.lock names its outputs, cached or not
                raise LookupError(f"{where} does not exist") from error
            raise LookupError(f"{where} is in neither the DVC cache nor a remote") from error
        except Exception as error:  # no remote, remote unreachable, ...: fall back, saying why
            reason = (str(error).splitlines() or [type(error).__name__])[0]
            raise LookupError(f"{where} not readable through DVC ({reason})") from error

    def _filesystem(self):
        if self._fs is None:
            from dvc.api import DVCFileSystem

            self._fs = DVCFileSystem(str(self.root), rev=self.side.commit, config=workspace_remote(self.root))
        return self._fs

    def close(self) -> None:
        if self._fs is not None:
            self._fs.close()


def workspace_remote(root: Path) -> dict | None:
    """The workspace's default DVC remote as config for a revision: an old commit's .dvc/config may name
    another remote, or none, while its per-sample files were pushed to today's."""
    from dvc.config import Config, ConfigError

    try:
        config = Config(str(root / ".dvc"))
    except (ConfigError, OSError):  # a broken config: the revision's own applies
        return None
    name = config["core"].get("remote")
    if not name or name not in config["remote"]:
        return None
    return {"core": {"remote": name}, "remote": {name: dict(config["remote"][name])}}


def identical(values: dict[str, float]) -> dict:
    """compare_paired's answer for two sides equal on every item, without the bootstrap."""
    mean = sum(values.values()) / len(values)
    return {
        "n": len(values), "only_a": 0, "only_b": 0, "a": mean, "b": mean, "delta": 0.0, "low": 0.0,
        "high": 0.0, "p_value": None, "test": "identical", "significant": False,
    }  # fmt: skip


# --- one cell ---


def side_values(changes: dict[str, dict], key: str) -> dict[str, Any]:
    return {k: v.get(key) for k, v in changes.items()}


def numeric_changes(changes: dict[str, dict]) -> dict[str, dict]:
    """The numeric keys other than the score that changed: {key: {a, b, delta}}."""
    return {
        key: {"a": v["old"], "b": v["new"], "delta": v["diff"]}
        for key, v in sorted(changes.items())
        if key not in SCORE_KEYS and v.get("diff") not in (None, 0)
    }


def judge(
    cell: Cell, changes: dict[str, dict], readers: tuple[SampleReader, SampleReader], rows: Path | None = None
) -> CellDiff:
    """The verdict on one cell's change; `rows`: its per-sample file (default: the score stage's)."""
    rows = rows or PIPELINE.score_rows(cell)
    old, new = side_values(changes, "old"), side_values(changes, "new")
    has_a = any(v is not None for v in old.values())
    has_b = any(v is not None for v in new.values())
    metric = new.get("primary_metric") or old.get("primary_metric")
    out = CellDiff(cell, "", metric=metric, status={"a": old.get("status"), "b": new.get("status")})
    out.other = numeric_changes(changes)
    if not (has_a and has_b):
        out.verdict = "added" if has_b else "removed"
        out.a, out.b = old.get("score"), new.get("score")
        return out
    failed_a, failed_b = _failed(old), _failed(new)
    if failed_a or failed_b:
        out.verdict = (
            "failed in both" if failed_a and failed_b else "failed in A" if failed_a else "failed in B"
        )
        out.a, out.b = old.get("score"), new.get("score")
        return out
    if all(v.get("old") == v.get("new") for v in changes.values()):
        out.evidence, out.a, out.b, out.delta = "identical", old["score"], new["score"], 0.0
        out.verdict = "unchanged"
        return out
    comparison = _paired(rows, old, new, readers, out.notes)
    if comparison is None:
        out.evidence = "stderr"
        comparison = unpaired(old["score"], old.get("stderr"), new["score"], new.get("stderr"), _n(old, new))
    else:
        out.evidence = "paired"
    out.comparison = comparison
    for name in ("a", "b", "delta", "low", "high", "p_value", "significant"):
        setattr(out, name, comparison.get(name))
    out.verdict = verdict(comparison)
    return out


def _failed(doc: dict) -> bool:
    return doc.get("status") == "failed" or doc.get("score") is None


def _n(old: dict, new: dict) -> int | None:
    counts = [n for n in (old.get("n"), new.get("n")) if isinstance(n, int)]
    return min(counts) if counts else None


def _paired(
    rows: Path, old: dict, new: dict, readers: tuple[SampleReader, SampleReader], notes: list[str]
) -> dict | None:
    """compare_paired on both sides' per-sample values of the primary metric; None (and a note) when either
    side has none or they share no item."""
    metric = old.get("primary_metric")
    if not metric or metric != new.get("primary_metric"):
        notes.append(f"primary metric {metric} -> {new.get('primary_metric')}: not paired, stderr used")
        return None
    found, missing = [], []
    for reader in readers:
        try:
            found.append(reader.values(rows, metric))
        except LookupError as why:
            missing.append(str(why))
    if missing:
        notes.append(f"per-sample scores unavailable, stderr used: {'; '.join(missing)}")
        return None
    a, b = found
    if a == b:
        return identical(a)
    comparison = compare_paired(a, b)
    if not comparison["n"]:
        notes.append("the two sides' per-sample scores share no sample id, stderr used")
        return None
    if comparison["only_a"] or comparison["only_b"]:
        notes.append(
            f"paired on {comparison['n']} common samples ({comparison['only_a']} only in A, "
            f"{comparison['only_b']} only in B)"
        )
    return comparison


def verdict(comparison: dict) -> str:
    significant, delta = comparison.get("significant"), comparison.get("delta") or 0.0
    if significant is None:
        return "unchanged" if delta == 0 else "undetermined"
    if significant:
        return "regression" if delta < 0 else "improvement"
    if delta == 0 and comparison.get("low") == comparison.get("high") == 0:
        return "unchanged"
    return "within noise"


# --- the whole diff ---


def diff_metrics(a_rev: str, b_rev: str | None = None, repo: Path | None = None) -> dict:
    """The evaluation cells of revision A against B (None: the workspace), each with a verdict."""
    root = repo_root(repo)
    a, b = resolve(root, a_rev), resolve(root, b_rev)
    raw, messages = dvc_metrics_diff(root, a, b)
    readers = (SampleReader(root, a), SampleReader(root, b))
    try:
        cells = [
            judge(cell, changes, readers, rows)
            for path, changes in raw.items()
            for cell, rows in [cell_and_samples(path)]
            if cell is not None
        ]
    finally:
        for reader in readers:
            reader.close()
    cells.sort(
        key=lambda c: (VERDICTS.index(c.verdict), c.delta if c.delta is not None else 0.0, str(c.cell))
    )
    counts = {v: sum(c.verdict == v for c in cells) for v in VERDICTS}
    return {
        "repo": str(root),
        "a": asdict(a),
        "b": asdict(b),
        "regressions": counts["regression"],
        "counts": {v: n for v, n in counts.items() if n},
        "cells": [c.as_dict() for c in cells],
        "warnings": [m for m in messages if "WARNING" in m or "ERROR" in m or "failed to load" in m],
    }


# --- what the console shows ---

HEADER = ["cell", "metric", "A", "B", "delta", "95% interval", "p", "evidence", "verdict"]


def table_rows(result: dict) -> list[list[str]]:
    return [
        [
            c["cell"],
            c["metric"] or "–",
            _score(c["a"], c["status"].get("a")),
            _score(c["b"], c["status"].get("b")),
            _signed(c["delta"]),
            f"[{_signed(c['low'])}, {_signed(c['high'])}]" if c["low"] is not None else "–",
            _p(c["p_value"]),
            c["evidence"] or "–",
            c["verdict"],
        ]
        for c in result["cells"]
    ]


def notes(result: dict) -> list[str]:
    return [f"{c['cell']}: {note}" for c in result["cells"] for note in c["notes"]]


def summary(result: dict) -> str:
    counts = ", ".join(f"{n} {verdict}" for verdict, n in result["counts"].items()) or "no evaluation cells"
    sides = " vs ".join(_side(s) for s in (result["a"], result["b"]))
    return f"{sides}: {counts}"


def _side(side: dict) -> str:
    if side["commit"] is None:
        return "workspace"
    return f"{side['name']} ({side['commit'][:8]})" if side["name"] != side["commit"] else side["commit"][:8]


def _score(value, status: str | None) -> str:
    if status == "failed":
        return "failed"
    return fmt(value)


def _signed(value) -> str:
    return "–" if value is None else f"{value:+.4f}"


def _p(value) -> str:
    if value is None:
        return "–"
    return "<0.0001" if value < 1e-4 else f"{value:.4f}"
