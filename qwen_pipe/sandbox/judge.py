"""The judge: one trusted process per worker, outside the sandbox, that decides pass or fail.

It keeps one sandbox (a zygote) running, has it fork a fresh candidate per program, and runs the
program's *tests* itself: the dataset's test code executes here, in a namespace where the names the
candidate defined are proxies, so every call crosses into the sandbox and only plain data comes back
(see runner.py for the wire format). A pass is the test code running to completion on those values;
the candidate cannot write a verdict, because it never produces one.

What a candidate sends is decoded by fixed constructors of plain types into fresh objects: it cannot
name a class, a module attribute or a callable, so it cannot change the judge for later programs
(docs/sandbox.md argues this in full). The judge's caches take nothing a candidate influenced: a
memoized reference value is kept only when computing it asked the candidate nothing and read none of
its names, and in isolation "none" (where a candidate could write the judge's files) nothing is cached
on disk.

Infrastructure outcomes (timeout, the candidate process ending) are BaseExceptions, so a test's
`except Exception` cannot swallow them, and they stick to the connection: once the candidate has
timed out or died, every later call fails the same way.

Two optimisations keep the judge off the critical path. When a program names the list of inputs its
test passes to the entry point (`prefetch`), they go to the candidate in one request at the first
call, and the results stream back while the test consumes them. And pure reference functions the test
computes expected values with (`memoize`) are cached on disk, like EvalPlus caches its ground truth.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import importlib
import json
import marshal
import os
import pickle
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from types import CodeType, FunctionType
from typing import Any

from qwen_pipe.sandbox import isolation as iso
from qwen_pipe.sandbox.runner import (
    FLAT,
    HEADER,
    IMPORTABLE,
    Decoder,
    Encoder,
    FrameError,
    FrameReader,
    frame,
    send_frame,
    send_json,
)

READY_TIMEOUT_S = 60.0
REPORT_GRACE_S = 5.0
SANDBOX_WORK_ROOT = "/tmp/work"
# Without a pids cgroup, candidates of each sandbox run as a uid of their own: this base plus the zygote's pid
# (pids stay below 2^22), far above any account's uid.
OWN_UID_BASE = 2_000_000_000
CONTROL_FLOW = (StopIteration, StopAsyncIteration)  # raised here, they would end the test's own loops


class CandidateTimeout(BaseException):
    """The program ran past its time limit."""


class CandidateEnded(BaseException):
    """The candidate process ended (exit, crash, kill) while the tests still needed it."""


class CandidateAbort(BaseException):
    """The candidate raised SystemExit, KeyboardInterrupt or another non-Exception error, or sent bad data."""


class CandidateError(Exception):
    """An exception the candidate raised whose type the judge does not rebuild."""


class LoadError(Exception):
    """The candidate's code did not load (syntax error, exception at import time)."""


class RemoteRef:
    """An object that lives in the candidate: it can be called, iterated and passed back, nothing else."""

    __slots__ = ("_conn", "_index", "_type")

    def __init__(self, conn: Connection, index: int, type_name: str):
        self._conn, self._index, self._type = conn, index, type_name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        batch = self._conn.batch
        if batch is not None and batch.ref is self:
            return batch.take(args, kwargs, sys._getframe(1))
        return self._conn.request("call", self._index, [list(args), kwargs])

    def __iter__(self):
        items = self._conn.request("iter", self._index, None)
        if type(items) is not list:
            raise self._conn.abort("an iteration that is not a list")
        return iter(items)

    def __repr__(self) -> str:
        return f"<{self._type} object in the sandbox>"


class Replies(Decoder):
    """A candidate's replies: its references become RemoteRefs, its module names the judge's modules."""

    def __init__(self, conn: Connection):
        super().__init__()
        self.conn = conn
        self.refs: dict[int, RemoteRef] = {}  # one RemoteRef per candidate object: `is` works

    def module(self, name: str) -> Any:
        if name not in IMPORTABLE:
            raise ValueError(f"module {name} is not importable in the judge")
        return importlib.import_module(name)

    def reference(self, index: int, type_name: str) -> RemoteRef:
        ref = self.refs.get(index)
        if ref is None:
            ref = self.refs[index] = RemoteRef(self.conn, index, type_name)
        return ref


class Requests(Encoder):
    """The judge's requests: plain data, references back to this candidate's own objects, builtins by name."""

    def __init__(self, conn: Connection):
        super().__init__()
        self.conn = conn
        self.references = 0  # how many references it has encoded

    def reference(self, obj: object) -> dict:
        if isinstance(obj, RemoteRef) and obj._conn is self.conn:
            self.references += 1
            return {"r": [obj._index, obj._type]}
        name = getattr(obj, "__name__", None)
        if isinstance(name, str) and getattr(builtins, name, None) is obj:  # `int`, `len`: by name
            return {"B": name}
        raise TypeError(f"{type(obj).__name__} cannot be sent to the candidate (plain data only)")


def _rebuild_exception(name: str, message: str) -> BaseException:
    kind = getattr(builtins, name, None)
    if not (isinstance(kind, type) and issubclass(kind, BaseException)) or issubclass(kind, CONTROL_FLOW):
        kind = None
    if kind is not None and not issubclass(kind, Exception):
        return CandidateAbort(f"{name}: {message}")
    try:
        error = kind(message) if kind is not None else CandidateError(f"{name}: {message}")
    except Exception:  # noqa: BLE001 - exception types with other constructors
        error = CandidateError(f"{name}: {message}")
    error.from_candidate = True  # type: ignore[attr-defined]
    return error


class Connection:
    """The judge's end of one candidate: requests under a shared deadline, replies decoded safely."""

    def __init__(self, sock: socket.socket, deadline: float):
        self.sock = sock
        self.reader = FrameReader(sock)
        self.deadline = deadline
        self.failure: BaseException | None = None
        self.batch: Batch | None = None
        self.requests = 0  # how many requests went to the candidate (a memoized value may not need one)
        self.encoder = Requests(self)
        self.decoder = Replies(self)

    def _fail(self, error: BaseException) -> BaseException:
        self.failure = self.failure or error
        return self.failure

    def abort(self, why: str) -> BaseException:
        return self._fail(CandidateAbort(f"malformed reply: {why}"))

    def send(self, op: str, index: int | str, payload: object) -> None:
        """The request [op, index, payload] (see runner.serve)."""
        if self.failure is not None:
            raise self.failure
        body = frame(*self.encoder.pieces(payload), (op, index))  # a TypeError for what is not plain data
        self.send_body(body)

    def send_batch(self, index: int, inputs: list) -> None:
        """The request ["batch", index, inputs]. A test's inputs are a literal, the same for every program:
        their encoding is kept by their repr (exact: it tells 1, 1.0 and True, tuples and lists apart)."""
        if self.failure is not None:
            raise self.failure
        key = repr(inputs)
        pieces = _INPUTS.get(key)
        if pieces is None:
            references = self.encoder.references
            pieces = self.encoder.pieces(inputs)
            if self.encoder.references == references:  # a reference is this program's alone
                if len(_INPUTS) >= 8:
                    _INPUTS.clear()
                _INPUTS[key] = pieces
        self.send_body(frame(*pieces, ("batch", index)))

    def send_body(self, body: bytes) -> None:
        self.requests += 1
        self.sock.settimeout(max(self.deadline - time.monotonic(), 1e-6))
        try:
            send_frame(self.sock, body)
        except TimeoutError:
            raise self._fail(CandidateTimeout("time limit reached")) from None
        except OSError as error:
            raise self._fail(CandidateEnded(f"broken connection: {error}")) from None

    def receive(self) -> Any:
        """The next reply's value; the candidate's exception re-raised here."""
        if self.failure is not None:
            raise self.failure
        reply = self._next_reply()
        if type(reply) is list and len(reply) == 2 and reply[0] == "v":
            return reply[1]
        if type(reply) is list and len(reply) == 3 and reply[0] == "x":
            name, message = reply[1:]
            if type(name) is str and type(message) is str:
                raise _rebuild_exception(name, message)
        raise self.abort("not a value or an exception")

    def _next_reply(self) -> Any:
        if time.monotonic() >= self.deadline:
            raise self._fail(CandidateTimeout("time limit reached"))
        try:
            body = self.reader.read(self.deadline)
        except TimeoutError:
            raise self._fail(CandidateTimeout("time limit reached")) from None
        except (FrameError, OSError) as error:
            raise self._fail(CandidateEnded(f"broken connection: {error}")) from None
        if body is None:
            raise self._fail(CandidateEnded("the candidate process ended"))
        try:
            return self.decoder.loads(body)
        except Exception as error:  # noqa: BLE001 - anything wrong with untrusted bytes
            why = f"undecodable reply: {type(error).__name__}: {error}"[:300]
            raise self._fail(CandidateAbort(why)) from None

    def request(self, op: str, index: int, payload: object) -> Any:
        if self.batch is not None:
            self.batch.finish()
        self.send(op, index, payload)
        return self.receive()

    def load(self, source: str, setup: str, seed: int) -> dict:
        self.send("load", source, [setup, seed])
        try:
            names = self.receive()
        except Exception as error:  # noqa: BLE001 - the candidate's load-time exception
            raise LoadError(f"{type(error).__name__}: {error}") from None
        if type(names) is not dict or not all(type(name) is str for name in names):
            raise self.abort("the names are not a dict of strings")
        return names


_INPUTS: dict[str, tuple[str, list]] = {}  # see Connection.send_batch
_PLAIN, _PLAIN_DECODER = Encoder(), Decoder()  # plain data only: memo keys and values, arguments to compare


def _same(args: tuple, expected: tuple) -> bool:
    """Equal arguments; NaNs included (compared as plain data when == says no)."""
    try:
        if args == expected:
            return True
    except Exception:  # noqa: BLE001 - numpy arrays and other odd equalities: compare the encodings
        pass
    try:
        return _PLAIN.dumps(list(args)) == _PLAIN.dumps(list(expected))
    except Exception:  # noqa: BLE001
        return False


class Batch:
    """The entry point's calls made ahead: the test's own list of inputs, sent at once, read in order.

    At the first call, the calling frame's variable `name` must be a list of argument lists starting
    with this call's arguments; then every input goes to the candidate in one request and the results
    stream back. Each later call must match the next input (NaNs included). Any other request, or a
    call that does not match, first drains the rest, so replies stay in order.
    """

    def __init__(self, conn: Connection, ref: RemoteRef, name: str):
        self.conn, self.ref, self.name = conn, ref, name
        self.inputs: list[tuple] = []
        self.next = 0
        conn.batch = self

    def _start(self, args: tuple, frame: Any) -> bool:
        inputs = frame.f_locals.get(self.name, frame.f_globals.get(self.name))
        if not isinstance(inputs, list) or not all(isinstance(a, (list, tuple)) for a in inputs):
            return False
        self.inputs = [tuple(a) for a in inputs]
        if not self.inputs or not _same(args, self.inputs[0]):
            return False
        try:
            self.conn.send_batch(self.ref._index, inputs)
        except TypeError:  # inputs that are not plain data: the calls go one by one
            return False
        return True

    def take(self, args: tuple, kwargs: dict, frame: Any) -> Any:
        started = self.next > 0 or (not kwargs and self._start(args, frame))
        expected = self.inputs[self.next] if started and self.next < len(self.inputs) else None
        if expected is not None and not kwargs and _same(args, expected):
            self.next += 1
            return self.conn.receive()
        self.finish()
        return self.ref(*args, **kwargs)

    def finish(self) -> None:
        """Read (and drop) the results nobody asked for; later calls go one by one."""
        self.conn.batch = None
        if not self.inputs or self.next == 0:
            return
        while self.next < len(self.inputs):
            self.next += 1
            with contextlib.suppress(Exception):
                self.conn.receive()


def _global_names(function: FunctionType, namespace: dict) -> set[str]:
    """The global names `function` may read, with those of the test's functions it names, transitively."""
    names: set[str] = set()
    todo, seen = [function.__code__], set()
    while todo:
        code = todo.pop()
        if code in seen:
            continue
        seen.add(code)
        todo += [c for c in code.co_consts if isinstance(c, CodeType)]
        for name in code.co_names:
            names.add(name)
            value = namespace.get(name)
            if isinstance(value, FunctionType) and value.__globals__ is namespace:
                todo.append(value.__code__)
    return names


class Memo:
    """Results of a test's pure reference functions, cached on disk per test text, as plain data.

    A result is kept only if computing it took longer than reading it back would (at LOAD_RATE): a
    huge but cheap output is faster to recompute. Every program gets a fresh copy: decoded from the
    stored bytes, or, for a list of scalars decoded before, a copy of it (immutable values are
    shared). Nothing a candidate could influence is kept: a result is cached only when the function,
    and the test's functions it calls, read none of the candidate's names and made no request to the
    candidate while computing it.
    """

    LOAD_RATE = 100e6  # bytes/s: a cautious decoding speed for lists of small objects
    DECODED_BYTES = 512 << 20  # decoded values kept, roughly (4 x their encoded size)
    FORMAT = 4  # in the file name: a cache of another format is never read

    def __init__(self, folder: str | None, test: str):
        self.test = test
        name = f"{hashlib.sha256(test.encode()).hexdigest()[:32]}.v{self.FORMAT}.bin"
        self.path = Path(folder) / name if folder else None
        self.values: dict[bytes, bytes] = {}
        if self.path is not None and self.path.is_file():
            with contextlib.suppress(Exception):  # a damaged cache is rebuilt
                self.values = _read_pairs(self.path.read_bytes())
        self.decoded: dict[bytes, object] = {}
        self.decoded_bytes = 0
        self.added = False

    def _load(self, key: bytes) -> Any:
        """A fresh copy of the value kept under `key`."""
        if key in self.decoded:
            value = self.decoded[key]
            return value.copy() if type(value) is list else value
        value = _PLAIN_DECODER.loads(self.values[key])
        kind = type(value)
        scalars = kind in FLAT or (kind in (list, tuple) and set(map(type, value)) <= FLAT)
        if scalars and self.decoded_bytes < self.DECODED_BYTES:
            self.decoded[key] = value
            self.decoded_bytes += 4 * len(self.values[key])
            return value.copy() if kind is list else value
        return value

    def wrap(self, name: str, namespace: dict, candidate: dict, conn: Connection) -> Callable:
        """A stand-in for `name` that caches what the test's `_computed_<name>` returns."""
        trusted: list[bool] = []  # decided at the first call, once the test has defined its functions

        def cached(*args: Any, **kwargs: Any) -> Any:
            function = namespace[f"_computed_{name}"]
            if not trusted:
                used = _global_names(function, namespace)
                trusted.append(not any(namespace.get(n) is candidate[n] for n in used & candidate.keys()))
            try:
                key = _PLAIN.dumps([name, list(args), kwargs]) if trusted[0] else None
            except Exception:  # noqa: BLE001 - arguments that are not plain data: no caching
                key = None
            if key is None:
                return function(*args, **kwargs)
            if key in self.values:
                with contextlib.suppress(Exception):  # a damaged entry is computed again
                    return self._load(key)
                del self.values[key]
            requests, start = conn.requests, time.perf_counter()
            value = function(*args, **kwargs)
            seconds = time.perf_counter() - start
            if conn.requests == requests and _rough_size(value) < seconds * self.LOAD_RATE:
                with contextlib.suppress(Exception):  # not plain data: not cached
                    blob = _PLAIN.dumps(value)
                    if seconds * self.LOAD_RATE > len(blob):
                        self.values[key] = blob
                        self.added = True
            return value

        return cached

    def save(self) -> None:
        if self.added and self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_suffix(f".{os.getpid()}.tmp")
            with open(temporary, "wb") as handle:
                for key, value in self.values.items():
                    handle.write(HEADER.pack(len(key)) + key + HEADER.pack(len(value)) + value)
            temporary.replace(self.path)
            self.added = False


def _rough_size(value: object) -> int:
    """A value's encoded size, roughly and quickly: as if every item were like the first, at every level."""
    size = 1
    while isinstance(value, (list, tuple, set, frozenset, dict)) and value:
        size *= len(value)
        value = next(iter(value.values() if isinstance(value, dict) else value))
    return size * (len(value) + 2 if isinstance(value, (str, bytes)) else 8)


def _read_pairs(data: bytes) -> dict[bytes, bytes]:
    """The memo file: length-prefixed key and value, again and again."""
    pairs, offset = {}, 0
    while offset < len(data):
        parts = []
        for _ in range(2):
            (size,) = HEADER.unpack_from(data, offset)
            parts.append(data[offset + HEADER.size : offset + HEADER.size + size])
            offset += HEADER.size + size
        if offset > len(data):
            raise ValueError("truncated memo file")
        pairs[parts[0]] = parts[1]
    return pairs


def _compile(source: str, name: str) -> CodeType:
    with warnings.catch_warnings():  # dataset code is full of invalid escapes like "\."
        warnings.simplefilter("ignore")
        return compile(source, name, "exec")


def compile_cached(source: str, name: str, folder: str | None) -> CodeType:
    """compile(), with the code object kept on disk: EvalPlus tests hold megabytes of literals.

    Only for a folder no candidate can write to (the judge passes None in isolation "none").
    """
    if folder is None:
        return _compile(source, name)
    path = (
        Path(folder) / "code" / f"{hashlib.sha256((sys.version + source).encode()).hexdigest()[:32]}.marshal"
    )
    with contextlib.suppress(OSError, ValueError, EOFError, TypeError):
        return marshal.loads(path.read_bytes())
    code = _compile(source, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_bytes(marshal.dumps(code))
    temporary.replace(path)
    return code


class Compiled:
    """A test compiled once; functions to memoize are renamed so a caching stand-in takes their name."""

    def __init__(self, test: str, context: str, memoize: tuple[str, ...], folder: str | None):
        self.memoized = tuple(name for name in memoize if f"def {name}(" in test)
        for name in self.memoized:
            test = test.replace(f"def {name}(", f"def _computed_{name}(", 1)
        self.test = compile_cached(test, "<test>", folder)
        self.context = _compile(context, "<context>") if context else None


def _late(namespace: dict, name: str) -> Callable:
    """The renamed function, looked up when called (it is defined after this stand-in)."""
    return lambda *args, **kwargs: namespace[f"_computed_{name}"](*args, **kwargs)


def _run_test(conn: Connection, job: dict, names: dict, compiled: Compiled, memo: Memo | None) -> None:
    namespace: dict = {"__name__": "__test__", "__builtins__": builtins}
    if compiled.context is not None:
        exec(compiled.context, namespace)
    entry = job.get("entry_point")
    if entry:
        namespace.pop(entry, None)
    taken = {}  # the candidate may not shadow the context or builtins the test uses
    for name, value in names.items():
        if name == entry or (name not in namespace and not hasattr(builtins, name)):
            namespace[name] = taken[name] = value
    target = namespace.get(entry) if entry else None
    if job.get("prefetch") and isinstance(target, RemoteRef):
        Batch(conn, target, job["prefetch"])
    for name in compiled.memoized:
        namespace[name] = memo.wrap(name, namespace, taken, conn) if memo else _late(namespace, name)
    random.seed(0)
    exec(compiled.test, namespace)


def _verdict(conn: Connection, job: dict, compiled: Compiled | None, memo: Memo | None) -> tuple[str, str]:
    try:
        names = conn.load(job["source"], job.get("setup") or "", job.get("seed", 0))
        if compiled is not None:
            _run_test(conn, job, names, compiled, memo)
        outcome = ("pass", "")
    except LoadError as error:
        outcome = ("error", f"load failed: {error}"[:500])
    except AssertionError as error:
        outcome = ("fail", f"AssertionError: {error}"[:500])
    except Exception as error:  # noqa: BLE001 - a test raising on the candidate's values, or the candidate's own
        status = "error" if getattr(error, "from_candidate", False) else "fail"
        outcome = (status, f"{type(error).__name__}: {error}"[:500])
    except BaseException as error:  # noqa: BLE001 - a test may raise anything; the judge keeps going
        outcome = ("error", f"{type(error).__name__}: {error}"[:500])
    failure = conn.failure
    if isinstance(failure, CandidateTimeout):
        return "timeout", str(failure)
    if isinstance(failure, CandidateEnded):
        return "crash", str(failure)
    if failure is not None:
        return "error", str(failure)
    return outcome


class Sandbox:
    """A running zygote in its sandbox, started once and restarted only after trouble."""

    def __init__(self, isolation: iso.Isolation, config: dict, control: iso.MemoryControl):
        # inside the sandbox the programs' folders live in /tmp/work of its private tmpfs (Python folders of a
        # checkout under /tmp are bound beside it and must not be swept)
        self.work_root = (
            SANDBOX_WORK_ROOT if isolation.namespaces else tempfile.mkdtemp(prefix="qwen-pipe-work-")
        )
        if not isolation.namespaces:
            os.chmod(self.work_root, 0o755)
        self.cgroup: iso.Cgroup | None = None
        if control.kind != "watchdog":
            with contextlib.suppress(OSError):  # without one, the zygote's watchdog bounds the program
                self.cgroup = iso.Cgroup(control, config["total_memory_bytes"], config["processes"])
        self.memory = control.kind if self.cgroup else "watchdog"
        self.control, theirs = socket.socketpair()
        self.reader = FrameReader(self.control, limit=1 << 20)
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - the sandbox's stderr, kept while it runs
        self.process = subprocess.Popen(
            iso.zygote_argv(isolation, theirs.fileno(), config["tmpfs_bytes"], self.work_root),
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
            start_new_session=True,
            env=iso.ENV,
            cwd="/" if isolation.namespaces else self.work_root,
            preexec_fn=self.cgroup.join if self.cgroup else None,  # the judge has no threads
        )
        theirs.close()
        ready = self.read(READY_TIMEOUT_S)
        if not ready or ready.get("op") != "ready":
            log = self.log_tail()
            self.close()
            raise RuntimeError(f"the sandbox did not start: {log}")

    def log_tail(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-2000:] or "(no output)"

    def read(self, timeout: float) -> dict | None:
        try:
            body = self.reader.read(time.monotonic() + timeout)
            return json.loads(body) if body else None
        except (OSError, FrameError, ValueError):
            return None

    def spawn(self, channel: socket.socket, limits: dict) -> None:
        """The zygote forks a candidate for `channel`, and watches the cgroup's OOM events for it."""
        cgroup = self.cgroup
        if cgroup is None or cgroup.watch is None:
            send_json(self.control, {"op": "spawn", "limits": limits}, fds=(channel.fileno(),))
        else:
            watch = "events" if cgroup.control.kind == "cgroup2" else "eventfd"
            message = {"op": "spawn", "limits": limits, "memory_watch": watch}
            send_json(self.control, message, fds=(channel.fileno(), cgroup.watch))
        channel.close()

    def finish(self, kill: bool) -> dict | None:
        """The zygote's report once the candidate and everything it started are gone (None: no report)."""
        try:
            if kill:
                send_json(self.control, {"op": "kill"})
            report = self.read(REPORT_GRACE_S)
            if report is None and not kill:
                send_json(self.control, {"op": "kill"})
                report = self.read(REPORT_GRACE_S)
        except OSError:
            report = None
        return report if report and report.get("op") == "exited" else None

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.control.close()
        self.log.close()
        if self.cgroup is not None:
            self.cgroup.close()
        if self.work_root != SANDBOX_WORK_ROOT:
            shutil.rmtree(self.work_root, ignore_errors=True)


class Judge:
    def __init__(self, isolation: iso.Isolation, config: dict):
        self.isolation = isolation
        self.config = config
        # without namespaces a candidate can write wherever the judge can: no cache is read from disk then
        self.cache_dir = config.get("cache_dir") if isolation.namespaces else None
        self.control = iso.memory_control(config["memory_control"])
        iso.remove_stale_cgroups(self.control)
        self.sandbox: Sandbox | None = None
        self.compiled: dict[tuple, Compiled] = {}
        self.memo: Memo | None = None

    def compile(self, job: dict) -> Compiled | None:
        if job.get("test") is None:
            return None
        key = (job["test"], job.get("context") or "", tuple(job.get("memoize") or ()))
        if key not in self.compiled:
            if len(self.compiled) >= 32:
                self.compiled.clear()
            self.compiled[key] = Compiled(*key, self.cache_dir)
        return self.compiled[key]

    def memo_for(self, job: dict) -> Memo | None:
        if not job.get("memoize"):
            return None
        if self.memo is None or self.memo.test != job["test"]:
            folder = os.path.join(self.cache_dir, "expected") if self.cache_dir else None
            self.memo = Memo(folder, job["test"])
        return self.memo

    def sandbox_ready(self) -> Sandbox:
        if self.sandbox is None:
            self.sandbox = Sandbox(self.isolation, self.config, self.control)
        return self.sandbox

    def limits(self, timeout_s: float, sandbox: Sandbox) -> dict:
        config = self.config
        bounded = bool(sandbox.cgroup and sandbox.cgroup.bounds_processes)
        return {
            "memory_bytes": config["memory_bytes"],
            "watch_bytes": None if sandbox.cgroup else config["total_memory_bytes"],
            "cpu_s": int(timeout_s) + 2,
            # where a pids cgroup bounds this program's processes, no RLIMIT_NPROC: it counts every task of
            # the uid, other sandboxes' too
            "processes": None if bounded else config["processes"],
            "file_bytes": config["file_bytes"],
            "open_files": config["open_files"],
            "output_bytes": config["output_bytes"],
            "uid": self.candidate_uid(sandbox) if self.isolation.drops_uid else None,
        }

    def candidate_uid(self, sandbox: Sandbox) -> int:
        """`uid` where a pids cgroup bounds the program; else a uid of this sandbox's own, so that the
        RLIMIT_NPROC standing in for the cgroup counts this program's processes only, not those of every
        sandbox running at the same time (other score workers, other test processes)."""
        if sandbox.cgroup and sandbox.cgroup.bounds_processes:
            return self.config["uid"]
        return OWN_UID_BASE + sandbox.process.pid

    def _spawn(self, channel: socket.socket, timeout_s: float) -> Sandbox:
        try:
            sandbox = self.sandbox_ready()
            sandbox.spawn(channel, self.limits(timeout_s, sandbox))
        except OSError:  # the zygote died after the last program (a candidate killed it): a new one
            self.close()
            sandbox = self.sandbox_ready()
            sandbox.spawn(channel, self.limits(timeout_s, sandbox))
        return sandbox

    def run(self, job: dict) -> dict:
        try:
            compiled = self.compile(job)
        except SyntaxError as error:
            return {"status": "error", "detail": f"test code does not compile: {error}", "duration_s": 0.0}
        memo = self.memo_for(job)
        ours, theirs = socket.socketpair()
        sandbox = self._spawn(theirs, job["timeout_s"])
        oom_before = sandbox.cgroup.oom_kills() if sandbox.cgroup else 0
        start = time.monotonic()
        conn = Connection(ours, start + job["timeout_s"])
        status, detail = _verdict(conn, job, compiled, memo)
        duration = time.monotonic() - start
        ours.close()
        if memo is not None:
            memo.save()
        report = sandbox.finish(kill=status != "pass")  # a batch may still be computing
        result = {"status": status, "detail": detail, "duration_s": duration}
        if report is None:
            self.close()
            result["detail"] = (detail + "; " if detail else "") + "sandbox restarted (no exit report)"
            return result
        if status == "crash" and report["signal"] == signal.SIGXCPU:
            result.update(status="timeout", detail="CPU time limit reached")
        if report.get("memory_exceeded") or (sandbox.cgroup and sandbox.cgroup.oom_kills() > oom_before):
            bound = self.config["total_memory_bytes"] / (1 << 30)
            result.update(
                status="error",
                detail=f"memory limit: the program's processes together passed {bound:g} GiB "
                f"({sandbox.memory}); the program was killed",
            )
        result.update({k: report[k] for k in ("output", "output_bytes", "cpu_s", "exit_code", "signal")})
        result["leftover_processes"] = report["leftover_processes"]
        return result

    def close(self) -> None:
        if self.sandbox is not None:
            self.sandbox.close()
            self.sandbox = None


def main(fd: int) -> None:
    """Serve jobs from the scorer (trusted, so pickled): (isolation, config) first, then one job per frame."""
    link = socket.socket(fileno=fd)
    reader = FrameReader(link)
    setup = reader.read()
    if setup is None:
        return
    isolation, config = pickle.loads(setup)
    judge = Judge(isolation, config)
    try:
        while (frame := reader.read()) is not None:
            job = pickle.loads(frame)
            try:
                result = judge.run(job)
            except Exception as error:  # noqa: BLE001 - report it and keep serving
                result = {
                    "status": "error",
                    "detail": f"judge error: {type(error).__name__}: {error}",
                    "duration_s": 0.0,
                }
                judge.close()
            send_frame(link, pickle.dumps(result))
    finally:
        judge.close()


if __name__ == "__main__":
    main(int(sys.argv[1]))
