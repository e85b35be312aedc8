"""A local mirror: a folder laid out like ../shared/datasets, read in place."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from qwen_pipe.errors import QwenPipeError
from qwen_pipe.io import read_jsonl

DATA_DIR_ENV = "QWEN_PIPE_DATA_DIR"


def resolve_data_dir(data_dir: str | Path | None) -> Path | None:
    """The mirror folder: the explicit value, else $QWEN_PIPE_DATA_DIR, else none."""
    value = data_dir or os.environ.get(DATA_DIR_ENV)
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        raise QwenPipeError(
            f"data dir {path} does not exist", f"pass an existing mirror folder or unset {DATA_DIR_ENV}"
        )
    return path


def mirror_file(root: Path, relative: str) -> Path:
    path = root / relative
    if not path.is_file():
        raise QwenPipeError(
            f"dataset file {relative} not found in mirror {root}",
            "pass --data-dir (or set fetch.data_dir / QWEN_PIPE_DATA_DIR) to a folder laid out like "
            "../shared/datasets, or use source 'embedded'",
        )
    return path


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


def read_mirror_jsonl(root: Path, relative: str, fields: Sequence[str]) -> list[dict]:
    """The records of a JSONL(.gz) mirror file, checked for the fields the task reads."""
    path = mirror_file(root, relative)
    return require_fields(read_jsonl(path), fields, path)
