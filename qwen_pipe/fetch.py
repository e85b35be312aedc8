"""Fetch: a task's records from the embedded data, a local mirror or the hub, normalised to JSONL.

The fetch stage's own module (stages/fetch.py), above the tasks and the sources they read from: the
generate and score stages read what it wrote with `read_dataset`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from qwen_pipe.errors import QwenPipeError
from qwen_pipe.io import write_json, write_jsonl
from qwen_pipe.sources.mirror import DATA_DIR_ENV, resolve_data_dir
from qwen_pipe.tasks.common.base import Task


@dataclass
class DatasetInfo:
    dataset: str
    source: str  # "embedded" | "mirror" | "hub"
    origin: str  # the mirror folder, the hub id or the package the records came from
    split: str
    rows: int
    sha256: str  # of the normalised JSONL
    embedded_sample: bool  # our own small sample, not the benchmark: never compare it with published numbers
    requests: dict | None = None  # the task's requests: fingerprint and sizes (tasks/common/requests.py)


def load_records(task: Task, source: str, data_dir: str | Path | None) -> tuple[list[dict], DatasetInfo]:
    """Hub-schema records with a stable `id`, and where they came from."""
    root = resolve_data_dir(data_dir)
    if source == "auto":
        source = "mirror" if root else "hub"
    if source == "embedded":
        raw, origin = task.load_embedded(), task.source.embedded
    elif source == "mirror":
        if root is None:
            raise QwenPipeError(
                f"source 'mirror' for {task.name} needs a mirror folder",
                f"set fetch.data_dir, {DATA_DIR_ENV} or --data-dir",
            )
        raw, origin = task.load_mirror(root), str(root)
    elif source == "hub":
        raw, origin = task.load_hub(), task.source.hub_id
    else:
        raise QwenPipeError(f"unknown source {source!r}", "use embedded, mirror, hub or auto")
    records = [{"id": task.sample_id(record, index), **record} for index, record in enumerate(raw)]
    ids = [r["id"] for r in records]
    if len(set(ids)) != len(ids):
        duplicate = next(i for i in ids if ids.count(i) > 1)
        raise QwenPipeError(
            f"{task.name}: sample id {duplicate!r} occurs twice in {origin}", "deduplicate the data file"
        )
    text = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records)
    info = DatasetInfo(
        dataset=task.name,
        source=source,
        origin=origin,
        split=task.source.split,
        rows=len(records),
        sha256=hashlib.sha256(text.encode()).hexdigest(),
        embedded_sample=any(r.get("embedded_sample") for r in records),
    )
    return records, info


def write_dataset(records: list[dict], info: DatasetInfo, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{info.dataset}.jsonl"
    write_jsonl(path, records)
    write_json(out_dir / f"{info.dataset}.meta.json", asdict(info))
    return path
