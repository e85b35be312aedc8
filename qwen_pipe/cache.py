"""Content-addressed result store: a folder of immutable JSONL chunks, each written atomically.

A killed writer never leaves a partial file (chunks are written to a temp file, then renamed), so a
rerun finds every chunk that was finished and nothing half-written. Each entry carries a digest of
its value; an entry that fails its digest (a corrupted or hand-edited file) is ignored and recomputed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path

from qwen_pipe.io import atomic_write_text

log = logging.getLogger(__name__)


def digest(value) -> str:
    """sha256 of a JSON value in canonical form (sorted keys, no whitespace)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


class ChunkStore:
    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.ignored = 0  # entries dropped by the last load because they failed their digest or did not parse
        self._entries: dict[str, dict] | None = None  # what load read plus what was appended since

    def load(self) -> dict[str, dict]:
        """Every valid entry, key -> value (later chunks win)."""
        entries: dict[str, dict] = {}
        self.ignored = 0
        self._entries = entries
        if not self.directory.is_dir():
            return entries
        for stale in self.directory.glob(".chunk-*.tmp"):  # left by a writer that was killed mid-write
            stale.unlink(missing_ok=True)
        for path in sorted(self.directory.glob("chunk-*.jsonl")):
            try:
                lines = path.read_text(encoding="utf-8", errors="surrogatepass").splitlines()
            except (OSError, UnicodeDecodeError) as error:
                log.warning("ignoring unreadable cache chunk %s: %s", path, error)
                self.ignored += 1
                continue
            for line in lines:
                try:
                    entry = json.loads(line)
                    key, value, check = entry["key"], entry["value"], entry["digest"]
                except (ValueError, KeyError, TypeError):
                    self.ignored += 1
                    continue
                if digest(value) != check:
                    self.ignored += 1
                    continue
                entries[key] = value
        if self.ignored:
            log.warning(
                "%s: ignored %d corrupted cache entries; they will be recomputed",
                self.directory,
                self.ignored,
            )
        return entries

    def append(self, items: Iterable[tuple[str, dict]]) -> None:
        items = list(items)
        lines = [
            json.dumps({"key": k, "digest": digest(v), "value": v}, ensure_ascii=False, sort_keys=True)
            for k, v in items
        ]
        if not lines:
            return
        if self._entries is not None:
            self._entries.update(items)
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"chunk-{time.time_ns():020d}-{os.getpid()}.jsonl"
        atomic_write_text(self.directory / name, "\n".join(lines) + "\n")

    def compact(self) -> None:
        """Merge all chunks into one (atomically), so the folder stays small for DVC."""
        chunks = sorted(self.directory.glob("chunk-*.jsonl")) if self.directory.is_dir() else []
        if len(chunks) <= 1:
            return
        entries = self._entries if self._entries is not None else self.load()  # no second read of the chunks
        self.append(sorted(entries.items()))
        for path in chunks:
            path.unlink(missing_ok=True)
