"""The sandbox's contract: verdicts, the values that cross into the judge, limits, isolation reports."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from qwen_pipe.errors import QwenPipeError
from qwen_pipe.sandbox import Program, SandboxConfig, isolation_mode, run_programs
from qwen_pipe.sandbox import isolation as iso
from qwen_pipe.sandbox.runner import FrameError, FrameReader, send_frame

SQUARE = "def square(x):\n    return x * x\n"

VALUES = """
import collections, enum
import numpy as np

class Level(enum.IntEnum):
    HIGH = 3

class Loud(str):
    def __str__(self):
        return "forged"

Point = collections.namedtuple("Point", "x y")

def values():
    return {
        "float": np.float64(0.5), "int": np.int64(7), "bool": np.bool_(True), "enum": Level.HIGH,
        "loud": Loud("quiet"), "point": Point(1, 2), "counter": collections.Counter("aab"),
        "ordered": collections.OrderedDict(b=1, a=2), "default": collections.defaultdict(int, k=1),
        "deque": collections.deque([1, 2]), "set": {1, 2}, "frozen": frozenset({3}), "bytes": b"\\x00",
        "complex": 1 + 2j, "big": 3 ** 200, "array": np.arange(3, dtype=np.int32), "nested": [(1, [2, {3: None}])],
    }
"""

VALUES_TEST = """
import collections
import numpy as np
v = values()
assert type(v["float"]) is float and v["float"] == 0.5
assert type(v["int"]) is int and v["int"] == 7
assert v["bool"] is True
assert type(v["enum"]) is int and v["enum"] == 3
assert type(v["loud"]) is str and v["loud"] == "quiet" and str(v["loud"]) == "quiet"
assert type(v["point"]) is tuple and v["point"] == (1, 2)
assert type(v["counter"]) is collections.Counter and v["counter"]["a"] == 2
assert type(v["ordered"]) is collections.OrderedDict and list(v["ordered"]) == ["b", "a"]
assert type(v["default"]) is dict and v["default"] == {"k": 1}
assert type(v["deque"]) is collections.deque and list(v["deque"]) == [1, 2]
assert v["set"] == {1, 2} and v["frozen"] == frozenset({3}) and v["bytes"] == b"\\x00"
assert v["complex"] == 1 + 2j and v["big"] == 3 ** 200
assert isinstance(v["array"], np.ndarray) and v["array"].dtype == np.int32 and v["array"].tolist() == [0, 1, 2]
assert v["nested"] == [(1, [2, {3: None}])]
"""

OBJECTS = """
class Pair:
    def __init__(self, a, b):
        self.a, self.b = a, b

def longest_chain(pairs):
    pairs = sorted(pairs, key=lambda p: p.b)
    count, end = 0, float("-inf")
    for p in pairs:
        if p.a > end:
            count, end = count + 1, p.b
    return count

class Node:
    def __init__(self, value):
        self.value, self.children = value, []

def total(node):
    return node.value + sum(total(c) for c in node.children)

def countdown(n):
    while n > 0:
        yield n
        n -= 1

class Odd(Exception):
    pass

def check_even(n):
    if n % 2:
        raise Odd(f"{n} is odd")
    if n < 0:
        raise ValueError("negative")
    return True
"""

OBJECTS_SETUP = "root = Node(1)\nroot.children = [Node(2), Node(3)]\n"

OBJECTS_TEST = """
assert longest_chain([Pair(5, 24), Pair(15, 25), Pair(27, 40), Pair(50, 60)]) == 3
assert total(root) == 6
assert list(countdown(3)) == [3, 2, 1]
assert repr(Pair(1, 2)).startswith("<Pair object in the sandbox")
try:
    check_even(-2)
except ValueError as error:
    assert str(error) == "negative"
else:
    raise AssertionError("no ValueError")
try:
    check_even(3)
except Exception as error:
    assert "Odd: 3 is odd" in str(error)
"""

COUNTING = "count = 0\ndef square(x):\n    global count\n    count += 1\n    return x * x\ndef calls():\n    return count\n"

PREFETCH_TESTS = {  # calls() is a request of its own, so it drains the batch first: it sees every call
    "module": "inputs = [[1], [2], [float('nan')]]\nassert square(*inputs[0]) == 1\nassert calls() == 3\n"
    "assert square(2) == 4 and calls() == 4\n",
    "local": "def check(candidate):\n    inputs = [[2], [3]]\n    for inp in inputs:\n"
    "        assert candidate(*inp) == inp[0] ** 2\n    assert calls() == 2\ncheck(square)\n",
    "mismatch": "inputs = [[1], [2], [3]]\nassert square(*inputs[0]) == 1\nassert square(7) == 49\n"
    "assert calls() == 4 and square(*inputs[2]) == 9\n",
    "unlisted": "inputs = [[1], [2]]\nassert square(5) == 25 and calls() == 1\n",
}


def _programs(memo_file: Path) -> list[Program]:
    return [
        Program("pass", SQUARE, 5, test="assert square(3) == 9\n"),
        Program("fail", SQUARE, 5, test="assert square(3) == 10, 'nine is not ten'\n"),
        Program("syntax", "def square(x) return x\n", 5, test="assert square(3) == 9\n"),
        Program("raises", "def square(x):\n    raise KeyError(x)\n", 5, test="assert square(3) == 9\n"),
        Program(
            "missing",
            "def cube(x):\n    return x ** 3\n",
            5,
            test="assert square(3) == 9\n",
            entry_point="square",
        ),
        Program(
            "timeout", "def square(x):\n    while True:\n        pass\n", 1.5, test="assert square(3) == 9\n"
        ),
        Program("values", VALUES, 10, test=VALUES_TEST),
        Program("objects", OBJECTS, 5, test=OBJECTS_TEST, setup=OBJECTS_SETUP),
        Program(
            "context",
            "def apply(x):\n    return helper(x) + 1\ndef helper(x):\n    return 0\n",
            5,
            test="assert apply(2) == 1 and helper(2) == 4\n",
            context="def helper(x):\n    return 2 * x\ndef apply(x):\n    pass\n",
            entry_point="apply",
        ),
        *[
            Program(f"prefetch_{kind}", COUNTING, 5, test=test, entry_point="square", prefetch="inputs")
            for kind, test in PREFETCH_TESTS.items()
        ],
        Program(
            "memo",
            SQUARE,
            5,
            test=f"def ref_func(x):\n    open({str(memo_file)!r}, 'a').write('.')\n    return x * x\n"
            "for x in range(3):\n    assert square(x) == ref_func(x)\n",
            memoize=("ref_func",),
        ),
        Program("whole", "assert sum(range(4)) == 6\n", 5),
        Program("whole_fails", "assert sum(range(4)) == 7\n", 5),
        Program(
            "environment",
            "import os\ncwd = os.listdir('.')\nenv = dict(os.environ)\nuid = os.getuid()\n",
            5,
            test="assert cwd == [] and set(env) <= {'PATH', 'LANG', 'PYTHONHASHSEED', 'HOME', 'TMPDIR', 'PWD'}, env\n",
        ),
        Program(
            "chatty", "print('x' * 100_000)\nprint('the end')\n" + SQUARE, 5, test="assert square(2) == 4\n"
        ),
    ]


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("sandbox")
    memo_file = folder / "ref_calls.txt"
    config = SandboxConfig(cache_dir=str(folder / "judge"), output_bytes=1000)
    programs = _programs(memo_file)
    first = run_programs(programs, workers=2, config=config)
    assert [r.id for r in first] == [p.id for p in programs]  # input order
    again = run_programs([p for p in programs if p.id == "memo"], workers=1, config=config)
    return {"results": {r.id: r for r in first}, "memo_again": again[0], "memo_calls": memo_file.read_text()}


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("pass", "pass"),
        ("fail", "fail"),
        ("syntax", "error"),
        ("raises", "error"),
        ("missing", "fail"),
        ("timeout", "timeout"),
        ("whole", "pass"),
        ("whole_fails", "error"),
    ],
)
def test_status(results, name, status):
    result = results["results"][name]
    assert result.status == status, result.detail
    assert result.passed == (status == "pass")


def test_failure_details_name_the_cause(results):
    assert "nine is not ten" in results["results"]["fail"].detail
    assert "SyntaxError" in results["results"]["syntax"].detail
    assert "KeyError" in results["results"]["raises"].detail
    assert "square" in results["results"]["missing"].detail


def test_timeout_is_enforced_on_time(results):
    result = results["results"]["timeout"]
    assert 1.5 <= result.duration_s < 3.0
    assert result.timeout_s == 1.5


def test_values_arrive_as_plain_data_of_their_base_types(results):
    assert results["results"]["values"].passed, results["results"]["values"].detail


def test_objects_stay_in_the_sandbox_and_can_be_called_and_passed_back(results):
    assert results["results"]["objects"].passed, results["results"]["objects"].detail


def test_trusted_context_wins_except_for_the_entry_point(results):
    assert results["results"]["context"].passed, results["results"]["context"].detail


@pytest.mark.parametrize("kind", PREFETCH_TESTS)
def test_prefetched_calls_run_ahead_and_replies_stay_in_order(results, kind):
    result = results["results"][f"prefetch_{kind}"]
    assert result.passed, result.detail


def test_memoized_reference_functions_run_once_across_programs(results):
    assert results["results"]["memo"].passed and results["memo_again"].passed
    assert results["memo_calls"] == "..."  # three inputs, computed in the first run only


def test_environment_is_scrubbed_and_working_directory_empty(results):
    assert results["results"]["environment"].passed, results["results"]["environment"].detail


def test_output_is_captured_and_capped(results):
    output = results["results"]["chatty"].output
    assert len(output) <= 1000 and output.endswith("the end\n")
    assert results["results"]["chatty"].passed


def test_frames_over_the_limit_are_refused():
    ours, theirs = socket.socketpair()
    with ours, theirs:
        send_frame(theirs, b"x" * 100)
        send_frame(theirs, b"y" * 101)
        reader = FrameReader(ours, limit=100)
        assert reader.read() == b"x" * 100
        with pytest.raises(FrameError, match="101 bytes exceeds the 100-byte limit"):
            reader.read()


def test_isolation_is_reported():
    mode = isolation_mode()
    assert mode["mode"] in ("bwrap", "unshare", "none")
    if mode["mode"] == "none":
        assert "NO SANDBOX ISOLATION" in mode["warning"]
    else:
        assert "net" in mode["namespaces"] and "pid" in mode["namespaces"]
        assert mode["candidate_uid"] == 65534 if os.geteuid() == 0 else True


def test_unknown_isolation_is_a_one_line_error():
    with pytest.raises(QwenPipeError, match="unknown sandbox isolation 'docker'"):
        iso.resolve("docker")


def test_without_namespaces_the_fallback_warns_loudly_and_still_judges(monkeypatch, capsys):
    iso.resolve.cache_clear()
    monkeypatch.setattr(iso.shutil, "which", lambda name: None)
    try:
        fallback = iso.resolve("auto")
        assert "NO SANDBOX ISOLATION" in capsys.readouterr().err
        assert fallback.mode == "none" and "bwrap not found" in fallback.detail
        described = iso.describe(fallback, 65534)
        assert described["mode"] == "none" and "NO SANDBOX ISOLATION" in described["warning"]
        results = run_programs(
            [
                Program("ok", SQUARE, 5, test="assert square(3) == 9\n"),
                Program("bad", SQUARE, 5, test="assert 0\n"),
            ],
            workers=1,
            config=SandboxConfig(isolation="none"),
        )
        assert [r.status for r in results] == ["pass", "fail"]
        assert {r.isolation for r in results} == {"none"}
    finally:
        iso.resolve.cache_clear()
