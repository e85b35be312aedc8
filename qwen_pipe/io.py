"""Files the pipeline writes: JSON and JSONL, written atomically (temp file, then rename)."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file and a rename: readers see the old file or the new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # surrogatepass: a model's output may hold lone surrogates (undecodable bytes); keep them, don't crash
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogatepass") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json(path: Path, data) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    atomic_write_text(
        path, "".join(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n" for row in rows)
    )


def read_json(path: Path):
    """A JSON file; one that is not valid JSON (hand-edited, a merge conflict) is a one-line error naming it."""
    from qwen_pipe.errors import QwenPipeError

    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise QwenPipeError(
            f"{path} is not valid JSON ({error.msg} at line {error.lineno}, column {error.colno})",
            "restore it (git checkout / dvc checkout) or rerun the stage that writes it (dvc repro -f <stage>)",
        ) from error


def read_json_tree(root: Path, depth: int = 2) -> dict[str, dict]:
    """`root/<a>/<name>.json` as {a: {name: document}} (depth 2, e.g. metrics/coverage: model -> preset), or
    `root/<a>/<b>/<name>.json` as {a: {b: {name: document}}} (depth 3, metrics/eval: model -> preset -> dataset)."""
    out: dict[str, dict] = {}
    for path in sorted(Path(root).glob("/".join(["*"] * depth) + ".json")):
        node = out
        for part in path.relative_to(root).parts[:-1]:
            node = node.setdefault(part, {})
        node[path.stem] = read_json(path)
    return out


def read_jsonl(path: Path) -> list[dict]:
    """Rows of a JSONL file (gzip-compressed when the name ends in .gz)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="surrogatepass") as handle:
        return [json.loads(line) for line in handle if line.strip()]
