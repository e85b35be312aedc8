"""A cell is one model x preset x dataset: where its files go, which samples it runs, how a failure is recorded.

Shared by the generate and score stages and by `qwen-pipe eval`, which lays the same files out in an
output folder instead of the pipeline's `data/` and `metrics/`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

DATASETS_DIR = Path("data/datasets")
COVERAGE_INFO_DIR = Path("data/coverage")  # the run-info sidecars of the coverage metrics
JUDGMENTS_DIR = Path("data/judgments")  # the judge stage's per-sample judgments
JUDGE_INFO_DIR = Path("data/judge_info")  # the run-info sidecars of the judge metrics (metrics/judge)


@dataclass(frozen=True)
class Cell:
    model: str
    preset: str
    dataset: str

    def __str__(self) -> str:
        return f"{self.model} x {self.preset} x {self.dataset}"

    @property
    def parts(self) -> tuple[str, str]:
        return self.model, self.preset


@dataclass(frozen=True)
class Layout:
    """Where a run's files go: the DVC pipeline's folders, or an output dir of `qwen-pipe eval`."""

    generations: Path
    scores: Path
    metrics: Path
    cache: Path

    def generation(self, cell: Cell) -> Path:
        return self.generations.joinpath(*cell.parts, f"{cell.dataset}.jsonl")

    def meta(self, cell: Cell) -> Path:
        return self.generations.joinpath(*cell.parts, f"{cell.dataset}.meta.json")

    def score_rows(self, cell: Cell) -> Path:
        return self.scores.joinpath(*cell.parts, f"{cell.dataset}.jsonl")

    def metrics_file(self, cell: Cell) -> Path:
        return self.metrics.joinpath(*cell.parts, f"{cell.dataset}.json")

    def run_info(self, cell: Cell) -> Path:
        """The sidecar of the metrics file: what ran, how and where (not measurements, so not DVC metrics)."""
        return self.scores.joinpath(*cell.parts, f"{cell.dataset}.run.json")

    def response_cache(self, cell: Cell) -> Path:
        return self.cache.joinpath("generations", *cell.parts, cell.dataset)

    def score_cache(self, cell: Cell) -> Path:
        return self.cache.joinpath("scores", *cell.parts, cell.dataset)


PIPELINE = Layout(Path("data/generations"), Path("data/scores"), Path("metrics/eval"), Path("data/cache"))


def output_layout(output_dir: Path, cache_dir: Path) -> Layout:
    return Layout(output_dir / "generations", output_dir / "scores", output_dir / "metrics", cache_dir)


def select_samples(samples: list[dict], limit: int | None, seed: int = 0) -> list[dict]:
    """A deterministic subset: the `limit` samples whose sha256(seed:id) ranks lowest, in dataset order.

    It depends only on the ids, so it is the same on every machine, Python version and model, and
    raising the limit keeps every sample chosen before.
    """
    if limit is None or limit >= len(samples):
        return list(samples)
    rank = {s["id"]: hashlib.sha256(f"{seed}:{s['id']}".encode()).hexdigest() for s in samples}
    chosen = set(sorted(rank, key=rank.__getitem__)[:limit])
    return [s for s in samples if s["id"] in chosen]


def failure_record(stage: str, cell: Cell, error: BaseException | dict) -> dict:
    """What the metrics and the report keep of a failure: where, which error, its first line."""
    from qwen_pipe.errors import QwenPipeError

    if isinstance(error, dict):
        kind, message = error.get("type", "Error"), error.get("message", "")
    elif isinstance(error, QwenPipeError):
        kind, message = type(error).__name__, error.line()
    else:
        kind, message = type(error).__name__, (str(error).splitlines() or [""])[0][:500]
    return {
        "stage": stage,
        "model": cell.model,
        "preset": cell.preset,
        "dataset": cell.dataset,
        "error_type": kind,
        "message": message,
    }


def read_dataset(data_dir: Path, dataset: str) -> tuple[list[dict], dict]:
    """Records and info written by the fetch stage."""
    from qwen_pipe.errors import QwenPipeError
    from qwen_pipe.io import read_json, read_jsonl

    path = data_dir / f"{dataset}.jsonl"
    if not path.is_file():
        raise QwenPipeError(f"{path} not found", f"run the fetch stage first: dvc repro fetch@{dataset}")
    return read_jsonl(path), read_json(data_dir / f"{dataset}.meta.json")


def read_eval_tree(metrics: Path, scores: Path) -> dict:
    """model -> preset -> dataset -> eval metrics document, each merged with its cell's identity and its
    run-info sidecar under `scores` (Layout.run_info), where there is one."""
    from qwen_pipe.io import read_json, read_json_tree

    merged: dict = {}
    for model, by_preset in read_json_tree(metrics, depth=3).items():
        for preset, cells in by_preset.items():
            for dataset, doc in cells.items():
                sidecar = scores / model / preset / f"{dataset}.run.json"
                info = read_json(sidecar) if sidecar.is_file() else {}
                identity = {"model": model, "preset": preset, "dataset": dataset}
                merged.setdefault(model, {}).setdefault(preset, {})[dataset] = {**identity, **info, **doc}
    return merged


def read_coverage_tree(metrics: Path, info: Path = COVERAGE_INFO_DIR) -> dict:
    """model -> preset -> coverage metrics document, each merged with its run-info sidecar under `info`."""
    from qwen_pipe.io import read_json, read_json_tree

    merged: dict = {}
    for model, by_preset in read_json_tree(metrics).items():
        for preset, doc in by_preset.items():
            sidecar = info / model / f"{preset}.run.json"
            extra = read_json(sidecar) if sidecar.is_file() else {}
            merged.setdefault(model, {})[preset] = {"model": model, "preset": preset, **extra, **doc}
    return merged
