"""The wire format between the judge and a candidate: plain data only, exact round trips, clean refusals."""

from __future__ import annotations

import collections
import math
import socket
import time

import numpy as np
import pytest

from qwen_pipe.sandbox import Program, SandboxConfig, run_programs
from qwen_pipe.sandbox.judge import (
    CandidateAbort,
    CandidateError,
    Connection,
    Memo,
    RemoteRef,
    _rebuild_exception,
)
from qwen_pipe.sandbox.runner import Decoder, Encoder, _Requests, send_frame

VALUES = [
    None, True, False, 0, -1, 2**63, 10**5000, -(10**5000), 0.5, float("inf"), float("-inf"), -0.0, 5e-324,
    1 + 2j, complex(float("inf"), -0.0), "", "x\ud800y\udfff", "ünïcødé", b"", b"\x00\xff", bytearray(b"ab"),
    [], (), {}, [1, (2, 3)], ((),), {"t": 1}, {"a": {"b": [1]}}, {1: 2, "1": 3}, {(1, 2): [3], None: 0},
    {frozenset({1}): 1}, {1, 2}, frozenset({3, (4, 5)}), collections.OrderedDict(b=1, a=2),
    collections.Counter("aab"), collections.deque([1, 2], maxlen=5), collections.deque(),
    list(range(1000)), [0.5, -0.0] * 300, [2**70] * 300, [1, True, 1.0] * 300, ["a", None] * 300,
    [1, 2.5] * 200, [[1, 2.5, 3]] * 300, [(i, str(i)) for i in range(500)], [("Dog", "Cat")] * 1000, [[1, 2, 3]] * 300, [(1, True, None)] * 300,
    [(), ()] * 200, [(1, 2), (3,)] * 200, tuple(range(1000)), [(10**700,)] * 3, [str(i) for i in range(3000)],
    [1, 3, *[i / 2 for i in range(1000)], 7], [2**70, *[0.5] * 1000, -0.0], [*range(1000), 2.5, float("nan")],
]  # fmt: skip


def _same(a: object, b: object) -> bool:
    """Equal, of the same types all the way down, NaNs and -0.0 included."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return math.copysign(1, a) == math.copysign(1, b) and (a == b or (math.isnan(a) and math.isnan(b)))
    if isinstance(a, complex):
        return _same(a.real, b.real) and _same(a.imag, b.imag)
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple, collections.deque)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_plain_values_round_trip_exactly(value):
    assert _same(Decoder().loads(Encoder().dumps(value)), value)
    if isinstance(value, collections.deque):
        assert Decoder().loads(Encoder().dumps(value)).maxlen == value.maxlen


def test_nan_and_numpy_values():
    [nan] = Decoder().loads(Encoder().dumps([float("nan")]))
    assert math.isnan(nan)
    array = Decoder().loads(Encoder().dumps(np.arange(6, dtype=np.int16).reshape(2, 3)))
    assert array.dtype == np.int16 and array.tolist() == [[0, 1, 2], [3, 4, 5]]
    assert Decoder().loads(Encoder().dumps([np.float64(0.5), np.int64(3), np.bool_(True)])) == [0.5, 3, True]
    objects = Decoder().loads(Encoder().dumps(np.array([1, "a", None], dtype=object)))
    assert objects.dtype == object and objects.tolist() == [1, "a", None]


def test_subclasses_cross_as_their_base_types():
    class Liar(str):
        def __eq__(self, other):
            return True

        def __hash__(self):
            return 0

    class Big(int):
        def __eq__(self, other):
            return True

    value = Decoder().loads(Encoder().dumps({Liar("k"): [Big(3), Liar("v")]}))
    assert value == {"k": [3, "v"]}
    [key] = value
    assert type(key) is str and type(value["k"][0]) is int and type(value["k"][1]) is str


def test_what_is_not_plain_data_is_refused_or_a_reference():
    with pytest.raises(TypeError, match="not plain data"):
        Encoder().dumps([print])
    with pytest.raises(TypeError, match="not plain data"):
        Encoder().dumps(collections.defaultdict(int, a=1).default_factory)
    assert Decoder().loads(Encoder().dumps(collections.defaultdict(int, a=1))) == {
        "a": 1
    }  # the factory stays
    for forged in (b'{"m": "os"}', b'{"r": [0, "x"]}', b'{"B": "eval"}'):
        with pytest.raises(ValueError, match="not plain data"):
            Decoder().loads(_body(forged))


class _Wire:
    """A Connection whose candidate end is this test: raw frames in, the judge's verdict on them out."""

    def __init__(self):
        self.ours, self.theirs = socket.socketpair()
        self.conn = Connection(self.ours, time.monotonic() + 5)

    def reply(self, body: bytes):
        send_frame(self.theirs, body)
        return self.conn.receive()


def _body(text: bytes, attached: bytes = b"") -> bytes:
    """A frame body as the encoder lays it out: the JSON text's length, the text, the attachments."""
    return len(text).to_bytes(4, "big") + text + attached


FORGED = {
    "a pickle": b"\x80\x05\x95 pickle",
    "a pickle that builds": b"\x80\x02ccollections\nCounter\nN}b.",
    "text longer than the body": b"\x00\x00\x10\x00[1]",
    "not json": _body(b"\x80\x02ccollections\nCounter\n"),
    "not a reply": _body(b'{"v": 1}'),
    "unknown kind": _body(b'["z", 1]'),
    "exception without strings": _body(b'["x", 1, 2]'),
    "unhashable key": _body(b'["v", {"d": [[[1], 2]]}]'),
    "unhashable set item": _body(b'["v", {"s": [[1]]}]'),
    "bad tag payload": _body(b'["v", {"t": 5}]'),
    "attachment out of range": _body(b'["v", {"a": ["q", 0, 16]}]', b"\x00" * 8),
    "attachment of a bad size": _body(b'["v", {"a": ["q", 0, 7]}]', b"\x00" * 8),
    "attachment of another type": _body(b'["v", {"a": ["O", 0, 8]}]', b"\x00" * 8),
    "bad table index": _body(b'["v", {"U": [["a"], ["B", 0, 1]]}]', b"\x05"),
    "bad mixed counts": _body(
        b'["v", {"M": [["B", 0, 2], ["q", 2, 8], ["d", 10, 0]]}]', b"\x00\x01" + b"\x00" * 8
    ),
    "bad rows": _body(b'["v", {"R": [true, 2, [1, 2, 3]]}]'),
    "sparse position out of range": _body(b'["v", {"X": [["d", 0, 8], [1], [2]]}]', b"\x00" * 8),
    "sparse value not a number": _body(b'["v", {"X": [["d", 0, 8], [0], ["x"]]}]', b"\x00" * 8),
    "sparse counts differ": _body(b'["v", {"X": [["d", 0, 8], [0], []]}]', b"\x00" * 8),
    "module outside the list": _body(b'["v", {"m": "os"}]'),
    "builtin by name": _body(b'["v", {"B": "eval"}]'),
    "negative reference": _body(b'["v", {"r": [-1, "f"]}]'),
    "decimal int over 4300 digits": _body(b'["v", ' + b"9" * 5000 + b"]"),
    "deep nesting": _body(b'["v", ' + b"[" * 100_000 + b"]" * 100_000 + b"]"),
    "ragged numeric array": _body(b'["v", {"n": ["int64", [[1], [1, 2]]]}]'),
}


@pytest.mark.parametrize("body", FORGED.values(), ids=FORGED.keys())
def test_untrusted_bytes_end_in_a_clean_abort(body):
    wire = _Wire()
    with pytest.raises(CandidateAbort, match=r"undecodable reply|malformed reply"):
        wire.reply(body)
    with pytest.raises(CandidateAbort):  # and it sticks: no later reply is believed
        wire.reply(_body(b'["v", 1]'))


def test_references_and_modules_resolve_only_to_what_the_judge_allows():
    wire = _Wire()
    value = wire.reply(
        _body(b'["v", [{"r": [3, "Pair"]}, {"r": [3, "Pair"]}, {"m": "math"}, {"t": [1, {"i": "-0xff"}]}]]')
    )
    first, second, module, pair = value
    assert isinstance(first, RemoteRef) and first is second and repr(first) == "<Pair object in the sandbox>"
    assert module is math and pair == (1, -255)


def test_the_judge_sends_plain_data_references_and_builtins_only():
    wire = _Wire()
    ref = wire.reply(_body(b'["v", {"r": [0, "f"]}]'))
    wire.conn.send("call", 0, [[ref, int, [1.5, float("nan")]], {}])
    body = _read_frame(wire.theirs)
    with pytest.raises(ValueError, match="not plain data"):  # what the judge itself would make of it
        Decoder().loads(body)
    op, index, ((own, builtin, numbers), kwargs) = _Requests(["the candidate's object"]).loads(body)
    assert (op, index, own, builtin, kwargs) == ("call", 0, "the candidate's object", int, {})
    assert numbers[0] == 1.5 and math.isnan(numbers[1])
    with pytest.raises(TypeError, match="cannot be sent to the candidate"):
        wire.conn.send("call", 0, [[lambda: 0], {}])


def _read_frame(sock: socket.socket) -> bytes:
    size = int.from_bytes(sock.recv(4), "big")
    data = b""
    while len(data) < size:
        data += sock.recv(size - len(data))
    return data


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("ValueError", ValueError),
        ("StopIteration", CandidateError),  # raised in the judge it would end the test's own iteration
        ("StopAsyncIteration", CandidateError),
        ("SystemExit", CandidateAbort),
        ("GeneratorExit", CandidateAbort),
        ("Odd", CandidateError),
        ("__import__", CandidateError),
    ],
)
def test_candidate_exceptions_are_rebuilt_only_as_safe_types(name, kind):
    error = _rebuild_exception(name, "message")
    assert type(error) is kind and "message" in str(error)


def test_memo_files_hold_plain_data_and_a_damaged_one_is_ignored(tmp_path):
    memo = Memo(str(tmp_path), "test")
    memo.values[Encoder().dumps(["ref_func", [1], {}])] = Encoder().dumps({"a": (1, 2)})
    memo.added = True
    memo.save()
    [path] = tmp_path.iterdir()
    assert Memo(str(tmp_path), "test").values == memo.values
    path.write_bytes(b"\x80\x04garbage")
    assert Memo(str(tmp_path), "test").values == {}


EDGE_VALUES = r"""
import numpy as np
def values():
    return [float("nan"), -0.0, True, 1, 1.0, "lone \ud800 surrogate", 10 ** 5000, -(2 ** 64), b"\x00",
            np.array([1, "a", None], dtype=object), np.array([0.5, float("nan")]), {(1, 2): {3}}]
def echo(x):
    return x
"""
EDGE_TEST = r"""
import math
import numpy as np
v = values()
assert math.isnan(v[0]) and math.copysign(1, v[1]) == -1.0 and v[1] == 0
assert v[2] is True and type(v[3]) is int and type(v[4]) is float
assert v[5] == "lone \ud800 surrogate" and v[6] == 10 ** 5000 and v[7] == -(2 ** 64) and v[8] == b"\x00"
assert v[9].dtype == object and v[9].tolist() == [1, "a", None]
assert v[10].dtype == np.float64 and math.isnan(v[10][1]) and v[11] == {(1, 2): {3}}
assert echo(10 ** 5000 + 1) == 10 ** 5000 + 1 and echo("\udfff") == "\udfff"
assert echo([1, True, 1.0]) == [1, True, 1.0] and [type(x) for x in echo([1, True, 1.0])] == [int, bool, float]
"""


def test_edge_values_cross_the_sandbox_both_ways():
    [result] = run_programs(
        [Program("edge", EDGE_VALUES, 20, test=EDGE_TEST)], workers=1, config=SandboxConfig()
    )
    assert result.passed, result.detail
