"""The code that runs inside the sandbox, and the wire format the judge shares with it.

Standard library only: the sandbox runs this file as a script (`python -I -S runner.py ...`), without
the rest of qwen-pipe. One zygote per worker starts once, imports the modules model code commonly uses,
and then forks one fresh *candidate* process per program. The zygote never sees a program or its
tests: the candidate gets its source straight from the judge, over a socket the judge passes through.

A candidate loads the model's code, then serves the judge's calls: "call this function with these
arguments", answered with the value as plain data. It never runs a test and never sends a verdict, so
nothing it does (exit early, print, register atexit hooks, patch its own interpreter) can make a test
pass; only returning the right values can.

Wire format (both directions): frames of a 4-byte big-endian length and a JSON text in UTF-8 (lone
surrogates passed through). JSON carries None, bools, ints, floats (NaN and Infinity included),
strings, lists and string-keyed dicts as themselves; every other value is a one-key object whose key
is a tag of `BUILDERS`, rebuilt from plain items by that tag's fixed constructor (tuple, set,
bytes, complex, Counter, numeric numpy array, ...). The format has no way to name a class, a callable
or an attribute: a module is a name the judge maps to its own copy (IMPORTABLE only), and an object
that stays in the candidate is a reference, an index only its owner resolves. See docs/sandbox.md.
"""

from __future__ import annotations

import builtins
import collections
import contextlib
import ctypes
import fcntl
import importlib
import itertools
import json
import os
import random
import resource
import select
import shutil
import signal
import socket
import struct
import sys
import time
import types
from array import array

HEADER = struct.Struct(">I")
MAX_FRAME = 1 << 30  # MBPP+ 255's reference returns a value of hundreds of megabytes
PRELOAD = (
    "array bisect collections copy dataclasses datetime decimal fractions functools hashlib heapq itertools "
    "math operator re statistics string typing unicodedata"
)
IMPORTABLE = frozenset({  # modules that cross as a name: the judge uses its own copy
    "array", "bisect", "cmath", "collections", "copy", "datetime", "decimal", "fractions", "functools",
    "hashlib", "heapq", "itertools", "json", "math", "numpy", "operator", "random", "re", "statistics",
    "string", "sys", "typing", "unicodedata",
})  # fmt: skip
NUMERIC_DTYPES = frozenset({
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "complex64", "complex128",
})  # fmt: skip
PIPE_BYTES = 1 << 20  # the candidate's output pipe, and the zygote's reads from it
TAIL_BYTES = 1024  # of the output record, kept for the end of what a program printed
WATCH_INTERVAL_S = 0.02  # the memory watchdog's sampling period (when no cgroup bounds the program)


# --- frames --------------------------------------------------------------------------------------
class FrameError(Exception):
    """A frame that is too large or cut short."""


def send_frame(sock: socket.socket, body: bytes, fds: tuple[int, ...] = ()) -> None:
    data = HEADER.pack(len(body)) + body
    if fds:
        sent = socket.send_fds(sock, [data], list(fds))
        data = data[sent:]
    if data:
        sock.sendall(data)


class FrameReader:
    """Frames from a stream socket, read in large chunks (many small frames per system call)."""

    def __init__(self, sock: socket.socket, limit: int = MAX_FRAME):
        self.sock = sock
        self.limit = limit
        self.buffer = bytearray()
        self.chunk = memoryview(bytearray(1 << 16))  # reused: a fresh buffer per recv costs an allocation

    def _missing(self) -> int:
        """How many more bytes the first frame needs (0: the buffer holds all of it)."""
        if len(self.buffer) < HEADER.size:
            return HEADER.size - len(self.buffer)
        (size,) = HEADER.unpack_from(self.buffer)
        if size > self.limit:
            raise FrameError(f"frame of {size} bytes exceeds the {self.limit}-byte limit")
        return max(HEADER.size + size - len(self.buffer), 0)

    def read(self, deadline: float | None = None) -> bytes | None:
        """The next frame's body; None when the peer closed between frames; TimeoutError at the deadline."""
        while missing := self._missing():
            # the rest of a large frame goes straight into one buffer of its size; small reads reuse one
            view = self.chunk if missing <= len(self.chunk) else memoryview(bytearray(missing))
            got = 0
            while got < (missing if view is not self.chunk else 1):
                if deadline is not None:
                    self.sock.settimeout(max(deadline - time.monotonic(), 1e-6))
                size = self.sock.recv_into(view[got:])
                if not size:
                    if self.buffer or got:
                        raise FrameError("connection closed inside a frame")
                    return None
                got += size
            self.buffer += view[:got]
        end = HEADER.size + HEADER.unpack_from(self.buffer)[0]
        body = bytes(self.buffer[HEADER.size : end])
        del self.buffer[:end]
        return body


class ControlReader:
    """JSON frames from a control socket that also carries file descriptors (a message's "fds" says how many)."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buffer = b""
        self.fds: list[int] = []

    def read(self) -> tuple[dict | None, list[int]]:
        """The next message and the descriptors that came with it; (None, []) once the peer is gone."""
        while (
            len(self.buffer) < HEADER.size
            or len(self.buffer) < HEADER.size + HEADER.unpack_from(self.buffer)[0]
        ):
            data, fds, _flags, _addr = socket.recv_fds(self.sock, 1 << 16, 8)
            self.fds += fds
            if not data:
                return None, []
            self.buffer += data
        (size,) = HEADER.unpack_from(self.buffer)
        message = json.loads(self.buffer[HEADER.size : HEADER.size + size])
        self.buffer = self.buffer[HEADER.size + size :]
        count = message.get("fds", 0)
        fds, self.fds = self.fds[:count], self.fds[count:]
        return message, fds


def send_json(sock: socket.socket, message: dict, fds: tuple[int, ...] = ()) -> None:
    send_frame(sock, json.dumps({**message, "fds": len(fds)} if fds else message).encode(), fds)


# --- values: the wire format ------------------------------------------------------------------------
FLAT = frozenset({str, int, float, bool, type(None)})  # JSON scalars
INT_DIGITS = 640  # the lowest int-to-decimal limit Python allows: any judge parses ints this long
LONG_INT_BITS = 2_000  # about 600 digits: longer ints go as hex
PACK_MIN = 256  # lists of at least this many scalars go compact (packed numbers, a table of repeats)
_PACKED = {int: "q", float: "d"}  # int64, float64: exact
_WHICH = {int: 0, float: 1}  # in a list of both: which one each value is
_FLIP = bytes.maketrans(b"\x00\x01", b"\x01\x00")
SPARSE_SHARE = 16  # a mixed list whose minority kind is at most 1/16 of it goes as packed + exceptions
LONG_STR = 4096  # strings at least this long go as UTF-8 attachments (no JSON escaping, one copy)
_JSON = json.JSONEncoder(ensure_ascii=False, check_circular=False, separators=(",", ":"))
if json.encoder.c_make_encoder is not None:  # what JSONEncoder.encode builds on every call, built once
    _C_ENCODE = json.encoder.c_make_encoder(
        None, _JSON.default, json.encoder.encode_basestring, None, ":", ",", False, False, True
    )

    def _dumps(data: object) -> str:
        return "".join(_C_ENCODE(data, 0))
else:
    _dumps = _JSON.encode


def frame(text: str, attached: list, head: tuple = ()) -> bytes:
    """A frame body: the JSON text's length (4 bytes), the text (put after a `head` of scalars in a
    list when there is one), then the attachments the text points into."""
    if head:
        text = f"{_dumps(list(head))[:-1]},{text}]"
    data = text.encode("utf-8", "surrogatepass")
    return b"".join([HEADER.pack(len(data)), data, *attached])


class Encoder:
    """A value as JSON-ready data: exact JSON types as they are, everything else under a tag.

    Subclasses become their base type (a str subclass cannot lie about its text, an int subclass about
    its value, and no object carries its own __eq__ across), numpy values become Python values, and an
    object that is not plain data goes to `reference` (here: an error). Long lists of scalars, and of
    rows of scalars, go compact: numbers packed as int64/float64, repeated values as a table and
    indices (like pickle's memo, they cost a few bytes each), so the C parts of json, array and zip
    do the work. Packed arrays and bytes travel after the JSON text as raw attachments.
    """

    def __init__(self) -> None:
        self.long_ints = False  # set while an int too long for decimal JSON is in the value
        self.attached: list[bytes | array] = []
        self.attached_bytes = 0

    def attach(self, data: bytes | array) -> list:
        """[typecode, offset, size]: where `data` lies among the attachments (arrays little-endian)."""
        if isinstance(data, array) and sys.byteorder == "big":
            data.byteswap()
        size = len(data) * (data.itemsize if isinstance(data, array) else 1)
        self.attached.append(data)
        self.attached_bytes += size
        return [data.typecode if isinstance(data, array) else "b", self.attached_bytes - size, size]

    def reference(self, obj: object) -> dict:
        raise TypeError(f"{type(obj).__name__} is not plain data")

    def dumps(self, value: object, head: tuple = ()) -> bytes:
        """A frame body (see `frame`) of the value, or with a `head` of scalars, of [*head, value]."""
        return frame(*self.pieces(value), head)

    def pieces(self, value: object) -> tuple[str, list]:
        """The value's JSON text and attachments."""
        limit = sys.get_int_max_str_digits()
        sys.set_int_max_str_digits(INT_DIGITS)
        try:
            try:
                text = _dumps(self.encode(value))
            except ValueError:  # an int too long for decimal: encode again, tagging long ints
                self.long_ints, self.attached, self.attached_bytes = True, [], 0
                text = _dumps(self.encode(value))
            return text, self.attached
        finally:
            self.long_ints, self.attached, self.attached_bytes = False, [], 0
            sys.set_int_max_str_digits(limit)

    def encode(self, obj: object) -> object:
        kind = type(obj)
        if kind in FLAT:
            if kind is str and len(obj) >= LONG_STR:
                return {"S": self.attach(obj.encode("utf-8", "surrogatepass"))}
            if kind is int and self.long_ints and obj.bit_length() > LONG_INT_BITS:
                return {"i": hex(obj)}
            return obj
        if kind is list:
            if len(obj) < PACK_MIN and set(map(type, obj)) <= FLAT and not self.long_ints:
                return obj
            return self._list(obj)
        if kind is tuple:
            if len(obj) >= PACK_MIN:
                return {"t": self._list(list(obj))}
            return {"t": obj if self._flat(obj) else [self.encode(x) for x in obj]}
        if kind is dict:
            return self._dict(obj)
        return self._other(obj, kind)

    def _short(self, items: list | tuple, kinds: set) -> bool:
        """No int among `items` too long for decimal JSON (checked only while long ints are tagged)."""
        return not (
            self.long_ints
            and int in kinds
            and any(type(x) is int and x.bit_length() > LONG_INT_BITS for x in items)
        )

    def _flat(self, items: object) -> bool:
        """Only JSON scalars, none of them too long."""
        kinds = set(map(type, items))
        return kinds <= FLAT and self._short(items, kinds)

    def _list(self, obj: list) -> object:
        kinds = set(map(type, obj))
        if kinds <= FLAT:
            scalars = self._scalars(obj, kinds)
            return [self.encode(x) for x in obj] if scalars is None else scalars
        if len(kinds) == 1 and kinds <= {list, tuple}:  # rows of scalars
            flat = list(itertools.chain.from_iterable(obj))
            values = self._scalars(flat)
            if values is not None:
                widths = set(map(len, obj))
                if values is not flat and len(widths) == 1 and 0 not in widths:  # cut into rows by zip
                    table = values["U"] if type(values) is dict and "U" in values else [values]
                    return {"R": [tuple in kinds, widths.pop(), *table]}
                return obj if list in kinds else {"T": obj}
        return [self.encode(x) for x in obj]

    def _scalars(self, values: list, kinds: set | None = None) -> object | None:
        """`values` as JSON if all are scalars (else None); a long list compact: numbers packed as
        int64/float64, repeated values as a table and an index per value."""
        table = None
        if kinds is None and len(values) >= PACK_MIN and not self.long_ints and type(values[0]) is str:
            with contextlib.suppress(TypeError):  # unhashable values: not scalars
                table = dict.fromkeys(values)
                kinds = set(map(type, table))
                if not kinds <= {str, type(None)}:  # equal values of other types (1, 1.0, True) share a key
                    kinds = None
        if kinds is None:
            kinds = set(map(type, values))
        if not (kinds <= FLAT and self._short(values, kinds)):
            return None
        if len(values) < PACK_MIN or self.long_ints:
            return values
        code = _PACKED.get(next(iter(kinds))) if len(kinds) == 1 else None
        if code is not None:
            with contextlib.suppress(OverflowError):  # an int beyond int64: not packed
                return {"a": self.attach(array(code, values))}
        if kinds == {int, float}:
            sparse = self._sparse(values)
            if sparse is not None:
                return sparse
            # each kind packed, and which one each value is
            which = bytes(map(_WHICH.__getitem__, map(type, values)))
            with contextlib.suppress(OverflowError):
                ints = array("q", list(itertools.compress(values, which.translate(_FLIP))))
                floats = array("d", list(itertools.compress(values, which)))
                return {"M": [self.attach(which), self.attach(ints), self.attach(floats)]}
        if float in kinds:  # -0.0 == 0.0: floats are never merged
            return values
        keys = list(zip(map(type, values), values, strict=True)) if {int, bool} <= kinds else values
        if table is None or keys is not values:
            table = dict.fromkeys(keys)
        if len(table) * 4 > len(values):
            return values
        number = map(dict(zip(table, range(len(table)), strict=True)).__getitem__, keys)
        indices = array("B", bytes(number)) if len(table) <= 1 << 8 else array("I", number)
        distinct = [key[1] for key in table] if keys is not values else list(table)
        return {"U": [distinct, self.attach(indices)]}

    def _sparse(self, values: list) -> dict | None:
        """A list of numbers nearly all of one kind (floats with a few ints, as HumanEval/130 returns): the
        majority kind packed, the others as (position, value) pairs; None when they are not few."""
        types = list(map(type, values))
        ints = types.count(int)
        rare, common = (int, float) if ints * SPARSE_SHARE <= len(values) else (float, int)
        if min(ints, len(values) - ints) * SPARSE_SHARE > len(values):
            return None
        positions, at = [], -1
        with contextlib.suppress(ValueError):
            while True:
                at = types.index(rare, at + 1)
                positions.append(at)
        packed = values
        if common is int:  # an int64 array takes no float: 0 in the floats' slots
            packed = values.copy()
            for at in positions:
                packed[at] = 0
        with contextlib.suppress(OverflowError):  # the pairs carry the exact values, ints of any size
            numbers = self.attach(array(_PACKED[common], packed))
            return {"X": [numbers, positions, [values[at] for at in positions]]}
        return None

    def _dict(self, obj: dict) -> object:
        if set(map(type, obj)) <= {str} and not (len(obj) == 1 and next(iter(obj)) in TAGS):
            return obj if self._flat(obj.values()) else {k: self.encode(v) for k, v in obj.items()}
        return {"d": self._pairs(obj)}

    def _pairs(self, obj: dict) -> list:
        return [[self.encode(k), self.encode(v)] for k, v in dict.items(obj)]

    def _other(self, obj: object, kind: type) -> object:
        if kind is collections.Counter or kind is collections.OrderedDict:
            return {"C" if kind is collections.Counter else "o": self._pairs(obj)}
        if kind is collections.deque:
            return {"q": [self.encode(list(obj)), obj.maxlen]}
        if isinstance(obj, int):  # bool is final: an IntEnum, an int subclass
            return self.encode(int.__int__(obj))
        if isinstance(obj, float):
            return float.__float__(obj)
        if isinstance(obj, str):
            return str.__str__(obj)
        if isinstance(obj, complex):
            value = complex.__complex__(obj)
            return {"c": [value.real, value.imag]}
        if isinstance(obj, (bytes, bytearray)):
            return {"y" if isinstance(obj, bytearray) else "b": self.attach(bytes(obj))}
        if isinstance(obj, dict):  # defaultdict (its factory is code: it stays here), dict subclasses
            return self._dict(dict(dict.items(obj)))
        if isinstance(obj, list):
            return self._list(list(list.__iter__(obj)))
        if isinstance(obj, tuple):  # namedtuples
            return self.encode(tuple(tuple.__iter__(obj)))
        if isinstance(obj, (set, frozenset)):
            items = list(set.__iter__(obj) if isinstance(obj, set) else frozenset.__iter__(obj))
            return {"s" if isinstance(obj, set) else "f": items if self._flat(items) else self.encode(items)}
        if isinstance(obj, types.ModuleType) and obj.__name__ in IMPORTABLE:
            return {"m": obj.__name__}
        if getattr(kind, "__module__", None) == "numpy":
            if kind.__name__ == "ndarray":
                return {"n": [str(obj.dtype), self.encode(obj.tolist())]}
            item = obj.item() if hasattr(obj, "item") else obj  # numpy scalars: np.int64, np.bool_
            if type(item) is not kind:
                return self.encode(item)
        return self.reference(obj)


def _items(payload: object) -> list:
    if type(payload) is not list:
        raise ValueError("malformed value")
    return payload


def _text(payload: object) -> str:
    if type(payload) is not str:
        raise ValueError("malformed value")
    return payload


def _deque(payload: object) -> collections.deque:
    items, maxlen = _items(payload)
    if maxlen is not None and type(maxlen) is not int:
        raise ValueError("malformed deque")
    return collections.deque(_items(items), maxlen)


def _ndarray(payload: object) -> object:
    dtype, data = _items(payload)
    import numpy

    if dtype in NUMERIC_DTYPES:
        return numpy.array(data, dtype=dtype)
    return numpy.array(data, dtype=object if dtype == "object" else None)


BUILDERS = {  # tag -> the constructor that rebuilds its payload from plain items
    "t": lambda p: tuple(_items(p)),
    "T": lambda p: list(map(tuple, _items(p))),
    "d": lambda p: dict(_items(p)),
    "s": lambda p: set(_items(p)),
    "f": lambda p: frozenset(_items(p)),
    "i": lambda p: int(_text(p), 16),
    "c": lambda p: complex(*_items(p)),
    "C": lambda p: collections.Counter(dict(_items(p))),
    "o": lambda p: collections.OrderedDict(_items(p)),
    "q": _deque,
    "n": _ndarray,
}
ATTACHED = frozenset(
    {"a", "U", "M", "X", "R", "b", "y", "S"}
)  # tags whose payload points into the attachments
TAGS = frozenset({*BUILDERS, *ATTACHED, "m", "r", "B"})


class Decoder:
    """Rebuilds an `Encoder` value. The only code a payload reaches is its tag's constructor (BUILDERS
    and the methods below), fed plain items and typed arrays; a module, a reference or a builtin is
    resolved by the receiving side (here: refused)."""

    def __init__(self) -> None:
        self.attached = memoryview(b"")
        builders = {
            **BUILDERS,
            "a": lambda p: self._array(p, "qd").tolist(),
            "U": self._table,
            "M": self._mixed,
            "X": self._sparse,
            "R": self._rows,
            "b": lambda p: bytes(self._array(p, "b")),
            "y": lambda p: bytearray(self._array(p, "b")),
            "S": lambda p: str(self._array(p, "b"), "utf-8", "surrogatepass"),
            "m": lambda p: self.module(_text(p)),
            "r": self._reference,
            "B": lambda p: self.builtin(_text(p)),
        }

        def hook(obj: dict) -> object:
            if len(obj) == 1:
                ((tag, payload),) = obj.items()
                build = builders.get(tag)
                if build is not None:
                    return build(payload)
            return obj

        self._scan = json.JSONDecoder(object_hook=hook).scan_once

    def loads(self, body: bytes) -> object:
        (size,) = HEADER.unpack_from(body)
        view = memoryview(body)
        text = str(view[HEADER.size : HEADER.size + size], "utf-8", "surrogatepass")
        self.attached = view[HEADER.size + size :]
        try:
            value, end = self._scan(text, 0)
        except StopIteration:
            raise ValueError("not a JSON text") from None
        finally:
            self.attached = memoryview(b"")
        if end != len(text):
            raise ValueError("data after the JSON text")
        return value

    def _array(self, payload: object, codes: str) -> array | memoryview:
        """An attachment: [typecode, offset, size], the typecode one of `codes` ("b": raw bytes)."""
        code, offset, size = _items(payload)
        if type(code) is not str or code not in codes or type(offset) is not int or type(size) is not int:
            raise ValueError("malformed attachment")
        if not 0 <= offset <= offset + size <= len(self.attached):
            raise ValueError("attachment out of range")
        data = self.attached[offset : offset + size]
        if code == "b":
            return data
        values = array(code)
        values.frombytes(data)  # a size that is not a multiple of the item size: ValueError
        if sys.byteorder == "big":
            values.byteswap()
        return values

    def _table(self, payload: object) -> list:
        """[distinct, indices]: the list of distinct[i] for each index."""
        distinct, indices = _items(payload)
        return list(map(_items(distinct).__getitem__, self._array(indices, "BI")))

    def _mixed(self, payload: object) -> list:
        """[which, ints, floats]: int64 and float64 values, interleaved as `which` (0: int, 1: float) says."""
        which, ints, floats = (self._array(p, code) for p, code in zip(_items(payload), "bqd", strict=True))
        which = bytes(which)
        if (
            which.count(b"\x00") != len(ints)
            or which.count(b"\x01") != len(floats)
            or len(which) != len(ints) + len(floats)
        ):
            raise ValueError("malformed mixed list")
        sources = [iter(ints), iter(floats)]
        return list(map(next, map(sources.__getitem__, which)))

    def _sparse(self, payload: object) -> list:
        """[numbers, positions, values]: packed int64 or float64 numbers with `values` put at `positions`
        (the few of the other kind)."""
        numbers, positions, values = _items(payload)
        out = self._array(numbers, "qd").tolist()
        positions, values = _items(positions), _items(values)
        if len(positions) != len(values) or not all(type(v) in (int, float) for v in values):
            raise ValueError("malformed sparse list")
        for at, value in zip(positions, values, strict=True):
            if type(at) is not int or not 0 <= at < len(out):
                raise ValueError("malformed sparse list")
            out[at] = value
        return out

    def _rows(self, payload: object) -> list:
        """[tuples?, width, values] or [tuples?, width, distinct, indices]: the values cut into rows."""
        tuples, width, *values = _items(payload)
        if len(values) == 2:  # a table: its values looked up as the rows take them
            distinct, indices = _items(values[0]), self._array(values[1], "BI")
            count, cells = len(indices), map(distinct.__getitem__, indices)
        else:
            count, cells = len(_items(values[0])), iter(values[0])
        if type(width) is not int or width < 1 or count % width:
            raise ValueError("malformed rows")
        rows = list(zip(*[cells] * width, strict=True))
        return rows if tuples is True else list(map(list, rows))

    def _reference(self, payload: object) -> object:
        index, type_name = _items(payload)
        if type(index) is not int or index < 0 or type(type_name) is not str:
            raise ValueError("malformed reference")
        return self.reference(index, type_name)

    def module(self, name: str) -> object:
        raise ValueError(f"module {name} is not plain data")

    def reference(self, index: int, type_name: str) -> object:
        raise ValueError("a reference is not plain data")

    def builtin(self, name: str) -> object:
        raise ValueError(f"builtin {name} is not plain data")


class _Replies(Encoder):
    """The candidate's values: objects that are not plain data stay here, numbered, as references."""

    def __init__(self, refs: list):
        super().__init__()
        self.refs = refs
        self.numbers: dict[int, int] = {}  # id -> index; refs keeps every object alive, so ids stay unique

    def reference(self, obj: object) -> dict:
        index = self.numbers.get(id(obj))
        if index is None:
            index = self.numbers[id(obj)] = len(self.refs)
            self.refs.append(obj)
        return {"r": [index, str(getattr(type(obj), "__qualname__", "object"))]}


class _Requests(Decoder):
    """The judge's requests: its references are this process's objects, its modules and builtins (a test
    may pass `int` or `len`) this process's own."""

    def __init__(self, refs: list):
        super().__init__()
        self.refs = refs

    def module(self, name: str) -> object:
        return importlib.import_module(name)

    def reference(self, index: int, type_name: str) -> object:
        return self.refs[index]

    def builtin(self, name: str) -> object:
        return getattr(builtins, name)


# --- the candidate process -------------------------------------------------------------------------
def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # model code may have replaced or closed the streams
            stream.flush()


def _encode_reply(encoder: Encoder, reply: tuple[str, object]) -> bytes:
    """["v", value] or ["x", exception type, message]."""
    kind, payload = reply
    try:
        if kind == "v":
            return encoder.dumps(payload, ("v",))
        name, message = payload
        return encoder.dumps(message, ("x", name))
    except BaseException as error:  # noqa: BLE001 - deep recursion, memory, a hostile __index__
        return encoder.dumps(f"{type(error).__name__}: {error}"[:500], ("x", "UnencodableValue"))


def _call(function: object, args: list, kwargs: dict) -> tuple[str, object]:
    try:
        return "v", function(*args, **kwargs)
    except BaseException as error:  # noqa: BLE001 - SystemExit, KeyboardInterrupt and all
        return "x", (type(error).__name__, str(error)[:2000])


def _reply(sock: socket.socket, encoder: Encoder, reply: tuple[str, object]) -> None:
    _flush()
    send_frame(sock, _encode_reply(encoder, reply))


def _batch(sock: socket.socket, encoder: Encoder, function: object, inputs: list) -> None:
    """Call `function` on every input: one reply frame each, written in bunches.

    A bunch is 64 replies, 256 KiB or 2 ms of work, whichever comes first: fewer system calls, and
    each reply still a frame of its own (so every one is held to the frame limit).
    """
    bunch: list[bytes] = []
    size, started = 0, time.monotonic()
    for args in inputs:
        body = _encode_reply(encoder, _call(function, args, {}))
        bunch.append(HEADER.pack(len(body)) + body)
        size += len(body)
        if len(bunch) >= 64 or size >= 1 << 18 or time.monotonic() - started > 0.002:
            _flush()
            sock.sendall(b"".join(bunch))
            bunch, size, started = [], 0, time.monotonic()
    if bunch:
        _flush()
        sock.sendall(b"".join(bunch))


def serve(sock: socket.socket) -> None:
    """Load the program the judge sends, then answer its calls until it hangs up.

    Requests: ["load", source, [setup, seed]] first -> the names the program defined; then
    ["call", index, [args, kwargs]] -> one reply; ["iter", index, null] -> the object's items as a
    list; ["batch", index, [args, ...]] -> one reply per argument list, as calls return.
    """
    solution = types.ModuleType("solution")
    sys.modules["solution"] = solution
    namespace = solution.__dict__
    refs: list = []
    encoder, decoder = _Replies(refs), _Requests(refs)
    reader = FrameReader(sock)
    body = reader.read()
    if body is None:
        return
    _load, source, (setup, seed) = decoder.loads(body)
    random.seed(seed)
    try:
        exec(compile(source, "<solution>", "exec"), namespace)
        if setup:
            exec(compile(setup, "<setup>", "exec"), namespace)
        reply: tuple[str, object] = "v", {k: v for k, v in namespace.items() if not k.startswith("__")}
    except BaseException as error:  # noqa: BLE001
        reply = "x", (type(error).__name__, str(error)[:2000])
    _reply(sock, encoder, reply)
    while (body := reader.read()) is not None:
        op, index, payload = decoder.loads(body)
        target = refs[index]
        if op == "call":
            _reply(sock, encoder, _call(target, *payload))
        elif op == "iter":
            _reply(sock, encoder, _call(list, [target], {}))
        else:
            _batch(sock, encoder, target, payload)


def _set_limit(which: int, value: int | None) -> None:
    if value is not None:
        resource.setrlimit(which, (value, value))


def become_candidate(channel: int, output: int, workdir: str, limits: dict) -> None:
    """In the forked child: take the program's limits and identity, then serve the judge."""
    os.setsid()
    _prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the zygote
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(output, 1)
    os.dup2(output, 2)
    os.dup2(channel, 3)
    os.closerange(4, 1 << 16)
    signal.signal(signal.SIGXCPU, signal.SIG_DFL)
    with contextlib.suppress(OSError), open("/proc/self/oom_score_adj", "w") as handle:
        handle.write("1000")  # past a cgroup's memory bound the kernel kills candidates, not the zygote
    _set_limit(resource.RLIMIT_CORE, 0)
    _set_limit(resource.RLIMIT_AS, limits.get("memory_bytes"))
    cpu = limits.get("cpu_s")
    if cpu is not None:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    _set_limit(resource.RLIMIT_NPROC, limits.get("processes"))
    _set_limit(resource.RLIMIT_FSIZE, limits.get("file_bytes"))
    _set_limit(resource.RLIMIT_NOFILE, limits.get("open_files"))
    os.chdir(workdir)
    uid = limits.get("uid")
    if uid is not None and os.getuid() == 0:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    os.environ.update(HOME=workdir, TMPDIR=workdir, PWD=workdir)
    serve(socket.socket(fileno=3))
    _flush()


# --- the zygote ------------------------------------------------------------------------------------
def _kill(pid: int, status: int | None) -> bool:
    """SIGKILL the candidate unless it has already been reaped; whether a signal went out."""
    if status is not None:
        return False
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


def _prctl(option: int, value: int) -> None:
    ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)


def _others() -> list[int]:
    me = os.getpid()
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) not in (1, me)]


def _reap() -> None:
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


def sweep_namespace() -> int:
    """Kill every process in this PID namespace except init and the zygote; how many there were."""
    found = len(_others())
    deadline = time.monotonic() + 5
    while _others():
        if time.monotonic() > deadline:
            raise RuntimeError(f"processes survived SIGKILL: {_others()}")
        with contextlib.suppress(ProcessLookupError):
            os.kill(-1, signal.SIGKILL)
        _reap()
        time.sleep(0.0005)
    return found


def _stat(pid: int | str) -> list[str]:
    """/proc/PID/stat's fields after the command name (state, ppid, pgrp, session, ...)."""
    with open(f"/proc/{pid}/stat") as handle:
        return handle.read().rsplit(")", 1)[1].split()


def _session_members(session: int) -> list[int]:
    """Without a PID namespace: the candidate's session, and orphans reparented to this subreaper."""
    me, found = str(os.getpid()), []
    for pid in os.listdir("/proc"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = _stat(pid)
            if pid.isdigit() and (int(fields[3]) == session or fields[1] == me):
                found.append(int(pid))
    return found


def sweep_session(session: int) -> int:
    """Without a PID namespace: kill what is left of the candidate's session (setsid escapes this)."""
    found = 0
    for pid in _session_members(session):
        with contextlib.suppress(OSError):
            found += 1
            os.kill(pid, signal.SIGKILL)
    _reap()
    return found


def _resident_bytes(pids: list[int]) -> int:
    """The resident sets of `pids`, added up (pages shared between them count once per process)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError), open(f"/proc/{pid}/statm") as handle:
            total += int(handle.read().split()[1])
    return total * os.sysconf("SC_PAGE_SIZE")


def _oom_kills(fd: int) -> int:
    """The oom_kill count of a cgroup v2 memory.events file (reading it also re-arms its poll)."""
    fields = dict(line.split() for line in os.pread(fd, 4096, 0).decode().splitlines() if line.strip())
    return int(fields.get("oom_kill", 0))


class Output:
    """What a program printed: the first bytes, a short tail and the total count; the rest is dropped."""

    def __init__(self, keep: int, buffer: bytearray):
        self.tail_keep = min(TAIL_BYTES, keep // 4)
        self.head_keep = max(keep - self.tail_keep - 40, 0)  # 40: the line that says what was dropped
        self.head = bytearray()
        self.tail = b""
        self.total = 0
        self.buffer = buffer  # for every read (allocated once per zygote: 1 MiB costs a millisecond)

    def read(self, fd: int) -> bool:
        """One read from `fd`; False at end of file."""
        size = os.readv(fd, [self.buffer])
        if size:
            data = memoryview(self.buffer)[:size]
            self.total += size
            if len(self.head) < self.head_keep:
                self.head += data[: self.head_keep - len(self.head)]
            self.tail = (self.tail + data[-self.tail_keep :])[-self.tail_keep :] if self.tail_keep else b""
        return size > 0

    def text(self) -> str:
        dropped = self.total - len(self.head) - len(self.tail)
        if dropped <= 0:  # the head and the tail meet: nothing was dropped
            rest = self.tail[len(self.tail) - (self.total - len(self.head)) :]
            return (self.head + rest).decode("utf-8", "replace")
        head, tail = self.head.decode("utf-8", "replace"), self.tail.decode("utf-8", "replace")
        return f"{head}\n[... {dropped} bytes not kept ...]\n{tail}"


class Zygote:
    def __init__(self, control: socket.socket, own_namespace: bool, work_root: str):
        self.control = control
        self.reader = ControlReader(control)
        self.own_namespace = own_namespace
        self.work_root = work_root
        self.count = 0
        self.buffer = bytearray(PIPE_BYTES)
        os.makedirs(work_root, mode=0o755, exist_ok=True)

    def clear_work_root(self) -> None:
        for entry in os.listdir(self.work_root):
            path = os.path.join(self.work_root, entry)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.unlink(path)

    def spawn(self, request: dict, fds: list[int]) -> None:
        """fds: the judge's end of the candidate's socket, then the cgroup's OOM watch (see `supervise`)."""
        limits, channel, watch = request["limits"], fds[0], fds[1:]
        if request.get("memory_watch") == "eventfd":
            with contextlib.suppress(BlockingIOError):  # an event of an earlier program
                os.eventfd_read(watch[0])
        self.count += 1
        workdir = os.path.join(self.work_root, f"run{self.count}")
        os.mkdir(workdir, 0o700)
        if limits.get("uid") is not None and os.getuid() == 0:
            os.chown(workdir, limits["uid"], limits["uid"])
        out_r, out_w = os.pipe()
        with contextlib.suppress(OSError):  # 1 MiB: a chatty program blocks less, the zygote reads less often
            fcntl.fcntl(out_w, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                self.control.close()
                os.close(out_r)
                become_candidate(channel, out_w, workdir, limits)
            except BaseException as error:  # noqa: BLE001 - a child of the fork must never return into the zygote
                for fd in (out_w, 2):  # the output pipe, or after the set-up moved it, stderr
                    with contextlib.suppress(OSError):
                        os.write(fd, f"qwen-pipe: the candidate failed: {error!r}\n".encode())
                        break
                code = 70
            os._exit(code)
        os.close(out_w)
        os.close(channel)
        try:
            self.supervise(pid, out_r, limits, request.get("memory_watch"), watch[0] if watch else None)
        finally:
            for fd in watch:
                os.close(fd)

    def _members(self, pid: int) -> list[int]:
        return _others() if self.own_namespace else _session_members(pid)

    def supervise(self, pid: int, out_r: int, limits: dict, kind: str | None, oom: int | None) -> None:
        """Collect the candidate's output until it ends, kill what it left behind, report.

        The whole program is killed when it passes its memory bound: when the kernel signals an OOM kill
        in the cgroup (`oom`: an eventfd that turns readable, or memory.events, that polls as changed
        and counts them), or without a cgroup (`watch_bytes` set), when the watchdog adds up the
        resident sets of its processes to more than the bound.
        """
        pidfd = os.pidfd_open(pid)
        output = Output(limits["output_bytes"], self.buffer)
        status, usage, killed, memory = None, None, False, False
        watch_bytes = limits.get("watch_bytes")
        next_check = time.monotonic() + WATCH_INTERVAL_S
        watch = [out_r, pidfd, self.control] + ([oom] if kind == "eventfd" else [])
        changed = [oom] if kind == "events" else []
        kills = _oom_kills(oom) if kind == "events" else 0
        while status is None:
            ready, _, exceptional = select.select(
                watch, [], changed, WATCH_INTERVAL_S if watch_bytes else None
            )
            if exceptional and _oom_kills(oom) > kills:
                changed, memory = [], True
                killed = _kill(pid, status) or killed
            for fd in ready:
                if fd == out_r:
                    if not output.read(out_r):
                        watch.remove(out_r)
                elif fd == pidfd:
                    _, status, usage = os.wait4(pid, 0)
                elif fd == oom:
                    os.eventfd_read(oom)
                    watch.remove(oom)
                    memory = True
                    killed = _kill(pid, status) or killed
                else:
                    message, fds = self.reader.read()
                    for extra in fds:
                        os.close(extra)
                    if message is None:  # the judge is gone: end everything
                        _kill(pid, status)
                        raise SystemExit(0)
                    if message.get("op") == "kill":
                        killed = _kill(pid, status) or killed
            if watch_bytes and not memory and time.monotonic() >= next_check:
                next_check = time.monotonic() + WATCH_INTERVAL_S
                if _resident_bytes(self._members(pid)) > watch_bytes:
                    memory = True
                    killed = _kill(pid, status) or killed
        left = sweep_namespace() if self.own_namespace else sweep_session(pid)
        drain_until = time.monotonic() + 1  # without a PID namespace an escaped process may keep writing
        while out_r in watch and time.monotonic() < drain_until and select.select([out_r], [], [], 0.2)[0]:
            if not output.read(out_r):
                break
        os.close(out_r)
        os.close(pidfd)
        self.clear_work_root()
        send_json(
            self.control,
            {
                "op": "exited",
                "exit_code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
                "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
                "killed": killed,
                "memory_exceeded": memory,
                "cpu_s": usage.ru_utime + usage.ru_stime,
                "max_rss_kib": usage.ru_maxrss,
                "output": output.text(),
                "output_bytes": output.total,
                "leftover_processes": left,
            },
        )

    def serve(self) -> None:
        send_json(self.control, {"op": "ready", "pid": os.getpid(), "uid": os.getuid()})
        while True:
            request, fds = self.reader.read()
            if request is None:
                return
            if request["op"] == "spawn" and fds:
                self.spawn(request, fds)
            else:
                for fd in fds:
                    os.close(fd)


def main() -> None:
    """argv: control fd, "namespace" | "session", the folder for working directories, the import path."""
    fd, scope, work_root, path = sys.argv[1:5]
    sys.path.extend(p for p in path.split(os.pathsep) if p)
    _prctl(4, 0)  # PR_SET_DUMPABLE 0: candidates may not ptrace the zygote or open its /proc fds
    _prctl(38, 1)  # PR_SET_NO_NEW_PRIVS: no setuid binary can raise a candidate's privileges
    if scope != "namespace":
        _prctl(36, 1)  # PR_SET_CHILD_SUBREAPER: orphans of candidates come back to be reaped
    for name in PRELOAD.split():
        __import__(name)
    Zygote(socket.socket(fileno=int(fd)), scope == "namespace", work_root).serve()


if __name__ == "__main__":
    main()
