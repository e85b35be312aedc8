"""Code tasks scored through the sandbox: MBPP+ checkers that compared but never asserted."""

from __future__ import annotations

import gzip
import json

import pytest

from qwen_pipe.tasks.common.registry import get_task
from qwen_pipe.tasks.mbpp_plus import asserting_checker

# Mbpp/737, 787 and 794: `assertion` set `exact_match` and returned, so any answer that did not crash
# passed. A wrong answer per problem, plausible ones and the "return None" that used to pass.
WRONG = {
    "Mbpp/737": [
        "import re\ndef check_str(string):\n    return re.search('^[aeiou]', string)\n",
        "def check_str(string):\n    return None\n",
    ],
    "Mbpp/787": [
        "import re\ndef text_match_three(text):\n    return re.search('ab{3}$', text)\n",
        "def text_match_three(text):\n    return None\n",
    ],
    "Mbpp/794": [
        "import re\ndef text_starta_endb(text):\n    return re.search('^a.*b$', text)\n",
        "def text_starta_endb(text):\n    return None\n",
    ],
}


def test_only_the_checkers_that_never_assert_are_changed(mirror):
    with gzip.open(mirror / "mbpp_plus" / "MbppPlus-OriginFmt.jsonl.gz", "rt") as handle:
        tests = {f"Mbpp/{r['task_id']}": r["test"] for r in map(json.loads, handle)}
    changed = {task_id for task_id, test in tests.items() if asserting_checker(test) != test}
    assert changed == set(WRONG)
    assert "        exact_match = exp == (out is not None)\n    assert exact_match\n" in asserting_checker(
        tests["Mbpp/737"]
    )


@pytest.mark.parametrize("task_id", WRONG)
def test_wrong_answers_fail_and_the_reference_passes(mirror, tmp_path, task_id):
    task = get_task("mbpp_plus")
    task.cache_dir, task.workers = tmp_path, 2
    record = next(r for r in task.load_mirror(mirror) if task.task_id(r) == task_id)
    sources = [task.reference_source(record), *WRONG[task_id]]
    results, _ = task.run([record] * len(sources), sources)
    assert [r.status for r in results] == ["pass", "fail", "fail"], [r.detail for r in results]
