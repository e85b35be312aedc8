"""Every dataset's records, ids and requests are pinned: the sha256 of the normalised JSONL that fetch writes
and the requests fingerprint (tasks/common/requests.py), for the embedded and the mirror source, in
tests/data/task_sources.json. A change to how tasks load data (a refactor of the loaders) must not move a
byte of either; a deliberate change of data or prompts rewrites the file:

    QWEN_PIPE_DATA_DIR=../shared/datasets .venv/bin/python tests/test_task_sources.py --write

Mirror loads of the big datasets take seconds each: they run with the slow tests.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

from qwen_pipe.fetch import load_records
from qwen_pipe.tasks import task_names
from qwen_pipe.tasks.common.multiple_choice import MultipleChoiceTask
from qwen_pipe.tasks.common.registry import get_task
from qwen_pipe.tasks.common.requests import requests_summary

from support import mirror_dir

BASELINE = Path(__file__).parent / "data" / "task_sources.json"
SOURCES = ("embedded", "mirror")
SMALL = 2500  # rows: mirror loads of bigger datasets are slow tests
LETTERS = " (letters)"  # a multiple-choice dataset's letter-choice format: the same records, other requests


def variants() -> list[str]:
    """Every dataset, and each multiple-choice one again in its letter-choice format."""
    names = []
    for name in task_names():
        names.append(name)
        if isinstance(get_task(name), MultipleChoiceTask):
            names.append(name + LETTERS)
    return names


def digests(variant: str, source: str, data_dir: Path) -> dict:
    name = variant.removesuffix(LETTERS)
    task = get_task(name, format="letters" if variant != name else None)
    records, _ = load_records(task, source, data_dir)
    text = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records)
    return {
        "rows": len(records),
        "records_sha256": hashlib.sha256(text.encode()).hexdigest(),
        "requests_sha256": requests_summary(task, records)["sha256"],
    }


def baseline() -> dict[str, dict]:
    return json.loads(BASELINE.read_text(encoding="utf-8"))


def cases() -> list:
    out = []
    for key, expected in sorted(baseline().items()):
        variant, source = key.rsplit("/", 1)
        slow = source == "mirror" and expected["rows"] > SMALL
        out.append(pytest.param(variant, source, id=key, marks=[pytest.mark.slow] if slow else []))
    return out


def test_the_baseline_covers_every_dataset_and_source():
    assert set(baseline()) == {f"{v}/{s}" for v in variants() for s in SOURCES}


@pytest.mark.parametrize(("variant", "source"), cases())
def test_records_ids_and_requests_are_unchanged(variant, source):
    data_dir = mirror_dir() if source == "mirror" else None
    assert digests(variant, source, data_dir) == baseline()[f"{variant}/{source}"]


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    table = {f"{v}/{s}": digests(v, s, mirror_dir()) for v in variants() for s in SOURCES}
    BASELINE.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {len(table)} digests to {BASELINE}")
