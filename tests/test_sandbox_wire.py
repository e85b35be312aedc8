"""Attacks on the judge through its own channel: forged replies, state carried to later programs, caches.

The candidate owns its end of the channel (fd 3), so it can write any bytes there. Every attack below
worked against the pickle-based judge (a completion with no solution passed HumanEval problems, and a
patch sent by one program held for the next ones); each must now fail, and leave the judge as it was.
Only the public API is used, so the same file runs against any version of the sandbox.
"""

from __future__ import annotations

import os
from dataclasses import replace

import pytest

from qwen_pipe.sandbox import Program, SandboxConfig, run_programs
from qwen_pipe.tasks.common.registry import get_task

# Hand-assembled pickle frames and a loop that answers the judge's every request with one of them.
FORGE = r'''
import os as _os, struct as _struct

def _text(value):
    data = value.encode()
    return b"X" + _struct.pack("<I", len(data)) + data

def _int(value):
    return b"J" + _struct.pack("<i", value)

def _global(module, name):
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"

def _call(function, *args):
    return function + b"(" + b"".join(args) + b"tR"

def _dict(items):
    return b"}(" + b"".join(key + value for key, value in items) + b"u"

def _remote(index):
    return _call(_global("__main__", "remote"), _int(index), _text("function"))

def _patch(target, attributes, slots):
    """BUILD on target: setattr (slot state, for a class) or its __dict__ updated (a module); then POP."""
    state = b"N" + _dict(attributes) + b"\x86" if slots else _dict(attributes)
    return target + state + b"b0"

def _reply(patches, value):
    return b"\x80\x02" + b"".join(patches) + _text("v") + value + b"\x86."

def _send(body):
    data = _struct.pack(">I", len(body)) + body
    while data:
        data = data[_os.write(3, data):]

def _read_exactly(size):
    data = b""
    while len(data) < size:
        chunk = _os.read(3, size - len(data))
        if not chunk:
            _os._exit(0)
        data += chunk
    return data

def take_over(body):
    """Answer the judge's current request, and every later one, with `body`; never return."""
    while True:
        _send(body)
        _read_exactly(_struct.unpack(">I", _read_exactly(4))[0])

_COUNTER = _global("collections", "Counter")
_MATH = _call(_global("__main__", "module"), _text("math"))
_NUMPY = _call(_global("__main__", "module"), _text("numpy"))
_PLAIN = _global("__main__", "plain")
_DUNDERS = ("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__sub__", "__rsub__", "__add__",
            "__radd__", "__mul__", "__rmul__", "__truediv__", "__abs__", "__round__")
'''

# (a) BUILD on collections.Counter with slot state: every comparison and arithmetic dunder becomes a
# call back into the candidate, which answers with a (truthy) Counter again.
COUNTER_EQ = (
    FORGE
    + r"""
FORGED = _reply(
    [_patch(_COUNTER, [(_text(name), _remote(0)) for name in _DUNDERS], slots=True)],
    _call(_COUNTER, _dict([(_text("x"), _int(1))])),
)
"""
)

# (b) the `module` constructor + BUILD: the judge's own math.fabs becomes the identity.
MODULE_ATTRIBUTE = (
    FORGE
    + r"""
FORGED = _reply([_patch(_MATH, [(_text("fabs"), _PLAIN)], slots=False)], _int(-100))
"""
)

# (c) reduce tricks with the allowed constructors: `plain(Counter)` puts the class on the stack to BUILD
# on, `module("numpy")` the judge's numpy, whose allclose now calls the candidate.
REDUCE_TRICKS = (
    FORGE
    + r"""
FORGED = _reply(
    [
        _patch(_call(_PLAIN, _COUNTER), [(_text("__eq__"), _remote(0))], slots=True),
        _patch(_NUMPY, [(_text("allclose"), _remote(0))], slots=False),
    ],
    _call(_COUNTER, _dict([(_text("x"), _int(1))])),
)
"""
)

# Patches that need no live connection, so they outlast the program that sent them.
PERSISTENT = (
    FORGE
    + r"""
FORGED = _reply(
    [
        _patch(_COUNTER, [(_text("__eq__"), _global("collections", "deque"))], slots=True),
        _patch(_MATH, [(_text("fabs"), _PLAIN)], slots=False),
    ],
    _int(0),
)
"""
)

ANSWER = "def square(x):\n    take_over(FORGED)\n"
SQUARE_TEST = "assert square(3) == 9\nassert abs(square(2) - 4) < 1e-9\n"


def _run(programs: list[Program], **config) -> dict:
    return {r.id: r for r in run_programs(programs, workers=1, config=SandboxConfig(**config))}


def test_forged_replies_cannot_patch_the_judge():
    results = _run(
        [
            Program("counter_eq", COUNTER_EQ + ANSWER, 10, test=SQUARE_TEST),
            Program(
                "module_attribute",
                MODULE_ATTRIBUTE + ANSWER,
                10,
                test="import math\nroot = square(3)\nassert math.fabs(root - 9) < 1e-9\n",
            ),
            Program(
                "reduce_tricks",
                REDUCE_TRICKS + ANSWER,
                10,
                test="import numpy as np\nassert square(3) == 9\nassert np.allclose(square(0.5), 0.25)\n",
            ),
        ]
    )
    assert {name: r.status for name, r in results.items() if r.passed} == {}
    assert {r.status for r in results.values()} == {"error"}, {n: r.detail for n, r in results.items()}
    assert all("undecodable reply" in r.detail for r in results.values()), [
        r.detail for r in results.values()
    ]


def test_nothing_one_program_sends_changes_the_judge_for_the_next():
    """One judge, three programs in order: a patch from the first must not make the wrong two pass."""
    results = _run(
        [
            Program("patcher", PERSISTENT + ANSWER, 20, test=SQUARE_TEST),
            Program(
                "no_abs",
                "def distance(a, b):\n    return a - b\n",
                10,
                test="import math\nd = distance(2, 5)\nassert math.fabs(d - 3) < 1e-9\n",
            ),
            Program(
                "wrong_type",
                "import collections\ndef letters(word):\n    return collections.Counter(word)\n",
                10,
                test="assert letters('aab') == ['a', 'a', 'b']\n",
            ),
        ]
    )
    assert not results["patcher"].passed
    assert results["no_abs"].status == "fail", results["no_abs"].detail
    assert results["wrong_type"].status == "fail", results["wrong_type"].detail


def test_a_completion_with_no_solution_passes_no_humaneval_problem(mirror):
    """The issue's reproduction: one forged-reply completion, appended to every prompt."""
    task = get_task("humaneval")
    records = task.load_mirror(mirror)[:20]
    completion = "    return take_over(FORGED)\n\n" + COUNTER_EQ
    programs = [
        replace(task.test_program(r, task.completion_source(r, completion)), timeout_s=10.0) for r in records
    ]
    results = run_programs(programs, workers=2)
    assert [r.id for r in results if r.passed] == []
    honest = run_programs([task.test_program(r, task.reference_source(r)) for r in records[:3]], workers=1)
    assert all(r.passed for r in honest), [r.detail for r in honest]


def test_a_candidate_exception_cannot_end_the_tests_iteration():
    """StopIteration raised in the judge inside map() would end all() early: an empty, passing check."""
    results = _run(
        [
            Program(
                "stop",
                "def is_even(x):\n    raise StopIteration\n",
                5,
                test="assert all(map(is_even, [1, 2, 3]))\n",
            ),
            Program(
                "stop_async",
                "def is_even(x):\n    raise StopAsyncIteration\n",
                5,
                test="assert all(map(is_even, [1, 2, 3]))\n",
            ),
        ]
    )
    assert {n: r.status for n, r in results.items()} == {"stop": "error", "stop_async": "error"}
    assert "StopIteration" in results["stop"].detail


MEMO_TESTS = {
    # the reference calls a function the candidate defines (a request into the sandbox)
    "request": "def ref_func(x):\n    return helper(x) * 2\nfor x in range(3):\n    assert double(x) == ref_func(x)\n",
    # the reference reads a value the candidate defines (no request at all)
    "global": "def ref_func(x):\n    return x * SCALE\nfor x in range(3):\n    assert double(x) == ref_func(x)\n",
}
MEMO_ATTACKERS = {
    "request": "def helper(x):\n    return 50\ndef double(x):\n    return 100\n",
    "global": "SCALE = 0\ndef double(x):\n    return 0\n",
}
MEMO_VICTIMS = {  # wrong answers: they pass only with the attacker's values as the expected ones
    "request": "def helper(x):\n    return x\ndef double(x):\n    return 100\n",
    "global": "SCALE = 2\ndef double(x):\n    return 0\n",
}


@pytest.mark.parametrize("kind", MEMO_TESTS)
def test_memoized_reference_values_never_come_from_a_candidate(tmp_path, kind):
    """The memo is kept on disk across judges: what a candidate fed into ref_func must not be kept."""
    config = {"cache_dir": str(tmp_path / "judge")}
    test = MEMO_TESTS[kind]
    attacker = Program("attacker", MEMO_ATTACKERS[kind], 10, test=test, memoize=("ref_func",))
    victim = Program("victim", MEMO_VICTIMS[kind], 10, test=test, memoize=("ref_func",))
    _run([attacker], **config)
    assert _run([victim], **config)["victim"].status == "fail"
    honest = replace(
        victim,
        id="honest",
        source="SCALE = 2\ndef helper(x):\n    return x\ndef double(x):\n    return 2 * x\n",
    )
    assert _run([honest], **config)["honest"].passed


def test_without_namespaces_no_code_is_loaded_from_where_a_candidate_can_write(tmp_path):
    """Isolation "none", candidate running as the scorer's uid: it can rewrite the judge's cache folder.

    A compiled test kept there (marshal) would be loaded by the next judge and run as the test.
    """
    cache = tmp_path / "judge"
    overwrite = (
        "import glob, marshal\n"
        f"for path in glob.glob({str(cache)!r} + '/**/*', recursive=True):\n"
        "    if path.endswith(('.marshal', '.pkl')) or '.v' in path:\n"
        "        with open(path, 'wb') as handle:\n"
        "            handle.write(marshal.dumps(compile('pass', '<test>', 'exec')))\n"
        "def square(x):\n    return 0\n"
    )
    config = {"isolation": "none", "uid": os.getuid(), "cache_dir": str(cache)}
    first = _run(
        [
            Program("honest", "def square(x):\n    return x * x\n", 20, test=SQUARE_TEST),
            Program("overwrite", overwrite, 10, test="assert square(0) == 0\n"),
        ],
        **config,
    )
    assert first["honest"].passed and first["overwrite"].passed
    again = _run([Program("wrong", "def square(x):\n    return 0\n", 10, test=SQUARE_TEST)], **config)
    assert again["wrong"].status == "fail", again["wrong"].detail
