"""The judge: one trusted process per worker, outside the sandbox, that decides pass or fail.

It keeps one sandbox (a zygote) running, has it fork a fresh candidate per program, and runs the
program's *tests* itself: the dataset's test code executes here, in a namespace where the names the
candidate defined are proxies, so every call crosses into the sandbox and only plain data comes back
(see runner.py for the wire format). A pass is the test code running to completion on those values;
the candidate cannot write a verdict, because it never produces one.

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
import collections
import contextlib
import hashlib
import importlib
import io
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
from pathlib import Path
from types import CodeType
from typing import Any

from qwen_pipe.sandbox import isolation as iso
from qwen_pipe.sandbox import runner
from qwen_pipe.sandbox.runner import FrameError, FrameReader, send_frame, send_json

READY_TIMEOUT_S = 60.0
REPORT_GRACE_S = 5.0
NUMERIC_DTYPES = {
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "complex64", "complex128",
}  # fmt: skip
IMPORTABLE = {  # modules a candidate's namespace may name that the judge will import for a test
    "array", "bisect", "cmath", "collections", "copy", "datetime", "decimal", "fractions", "functools",
    "hashlib", "heapq", "itertools", "json", "math", "numpy", "operator", "random", "re", "statistics",
    "string", "sys", "typing", "unicodedata",
}  # fmt: skip
RUNNER_MODULES = {"__main__", runner.__name__}


SANDBOX_WORK_ROOT = "/tmp/work"


class CandidateTimeout(BaseException):
    """The program ran past its time limit."""


class CandidateEnded(BaseException):
    """The candidate process ended (exit, crash, kill) while the tests still needed it."""


class CandidateAbort(BaseException):
    """The candidate raised SystemExit, KeyboardInterrupt or another non-Exception error."""


class CandidateError(Exception):
    """An exception the candidate raised whose type the judge cannot rebuild."""


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
        return self._conn.request(("call", self._index, args, kwargs))

    def __iter__(self):
        return iter(self._conn.request(("iter", self._index)))

    def __repr__(self) -> str:
        return f"<{self._type} object in the sandbox>"

    def __setstate__(self, state: Any) -> None:
        raise pickle.UnpicklingError("a reference has no state")


def _ndarray(dtype: str, data: list) -> Any:
    import numpy as np

    return np.array(data, dtype=dtype if dtype in NUMERIC_DTYPES else None)


SAFE_CONSTRUCTORS = {
    ("builtins", "complex"): complex,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("collections", "Counter"): collections.Counter,
    ("collections", "deque"): collections.deque,
}


class Decoder(pickle.Unpickler):
    """Unpickles a candidate's reply with an allow-list of constructors: plain data and references only."""

    def __init__(self, data: bytes, conn: Connection):
        super().__init__(io.BytesIO(data))
        self.conn = conn

    def _module(self, name: str) -> Any:
        if name in IMPORTABLE:
            return importlib.import_module(name)
        return RemoteRef(self.conn, -1, f"module {name}")

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in SAFE_CONSTRUCTORS:
            return SAFE_CONSTRUCTORS[(module, name)]
        if module in RUNNER_MODULES:
            known = {"plain": runner.plain, "ndarray": _ndarray, "module": self._module}
            if name == "remote":
                return lambda index, type_name: RemoteRef(self.conn, int(index), str(type_name))
            if name in known:
                return known[name]
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a candidate's reply")

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not allowed")


class Requests(pickle.Pickler):
    """Pickles the judge's requests, sending RemoteRefs as `lookup` markers."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, RemoteRef):
            return runner.lookup, (obj._index,)
        return NotImplemented


def _rebuild_exception(name: str, message: str) -> BaseException:
    kind = getattr(builtins, name, None)
    if not (isinstance(kind, type) and issubclass(kind, BaseException)):
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

    def _fail(self, error: BaseException) -> BaseException:
        self.failure = self.failure or error
        return self.failure

    def send(self, request: tuple) -> None:
        if self.failure is not None:
            raise self.failure
        buffer = io.BytesIO()
        Requests(buffer, protocol=5).dump(request)
        self.sock.settimeout(max(self.deadline - time.monotonic(), 1e-6))
        try:
            send_frame(self.sock, buffer.getvalue())
        except TimeoutError:
            raise self._fail(CandidateTimeout("time limit reached")) from None
        except OSError as error:
            raise self._fail(CandidateEnded(f"broken connection: {error}")) from None

    def receive(self) -> Any:
        """The next reply's value; the candidate's exception re-raised here."""
        if self.failure is not None:
            raise self.failure
        kind, payload = self._next_reply()
        if kind == "v":
            return payload
        if kind == "x" and isinstance(payload, tuple) and len(payload) == 2:
            raise _rebuild_exception(str(payload[0]), str(payload[1]))
        raise self._fail(CandidateAbort("malformed reply"))

    def _next_reply(self) -> tuple[str, Any]:
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
            kind, payload = Decoder(body, self).load()
        except Exception as error:  # noqa: BLE001 - anything wrong with untrusted bytes
            raise self._fail(CandidateAbort(f"undecodable reply: {type(error).__name__}: {error}")) from None
        return kind, payload

    def request(self, request: tuple) -> Any:
        if self.batch is not None:
            self.batch.finish()
        self.send(request)
        return self.receive()

    def load(self, source: str, setup: str, seed: int) -> dict:
        self.send({"source": source, "setup": setup, "seed": seed})
        try:
            names = self.receive()
        except Exception as error:  # noqa: BLE001 - the candidate's load-time exception
            raise LoadError(f"{type(error).__name__}: {error}") from None
        if not isinstance(names, dict):
            raise self._fail(CandidateAbort("malformed names"))
        return names


def _same(args: tuple, expected: tuple) -> bool:
    """Equal arguments; NaNs included (compared as pickles when == says no)."""
    try:
        if args == expected:
            return True
    except Exception:  # noqa: BLE001 - numpy arrays and other odd equalities: compare the bytes
        pass
    try:
        return pickle.dumps(args) == pickle.dumps(expected)
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
        self.conn.send(("batch", self.ref._index, self.inputs))
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


class Memo:
    """Results of a test's pure reference functions, cached on disk per test text.

    A result is kept only if computing it took longer than reading it back would (at LOAD_RATE): a
    huge but cheap output is faster to recompute. Results stay pickled until a test asks for them.
    """

    LOAD_RATE = 100e6  # bytes/s: a cautious unpickling speed for lists of small objects
    FORMAT = 2  # in the file name: a cache of another format is never read

    def __init__(self, folder: str | None, test: str):
        self.test = test
        name = f"{hashlib.sha256(test.encode()).hexdigest()[:32]}.v{self.FORMAT}.pkl"
        self.path = Path(folder) / name if folder else None
        self.values: dict[bytes, bytes] = {}
        if self.path is not None and self.path.is_file():
            with contextlib.suppress(Exception):  # a damaged cache is rebuilt
                values = pickle.loads(self.path.read_bytes())
                if isinstance(values, dict) and all(isinstance(v, bytes) for v in values.values()):
                    self.values = values
        self.added = False

    def wrap(self, name: str, namespace: dict, defined_as: str) -> Any:
        """A stand-in for `name` that caches what namespace[defined_as] returns."""

        def cached(*args: Any, **kwargs: Any) -> Any:
            function = namespace[defined_as]
            try:
                key = pickle.dumps((name, args, kwargs))
            except Exception:  # noqa: BLE001 - arguments that cannot be a key: no caching
                return function(*args, **kwargs)
            if key in self.values:
                return pickle.loads(self.values[key])
            start = time.perf_counter()
            value = function(*args, **kwargs)
            seconds = time.perf_counter() - start
            with contextlib.suppress(Exception):
                blob = pickle.dumps(value, protocol=5)
                if seconds * self.LOAD_RATE > len(blob):
                    self.values[key] = blob
                    self.added = True
            return value

        return cached

    def save(self) -> None:
        if self.added and self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_suffix(f".{os.getpid()}.tmp")
            temporary.write_bytes(pickle.dumps(self.values, protocol=5))
            temporary.replace(self.path)
            self.added = False


def _compile(source: str, name: str) -> CodeType:
    with warnings.catch_warnings():  # dataset code is full of invalid escapes like "\."
        warnings.simplefilter("ignore")
        return compile(source, name, "exec")


def compile_cached(source: str, name: str, folder: str | None) -> CodeType:
    """compile(), with the code object kept on disk: EvalPlus tests hold megabytes of literals."""
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


def _late(namespace: dict, name: str) -> Any:
    """The renamed function, looked up when called (it is defined after this stand-in)."""
    return lambda *args, **kwargs: namespace[f"_computed_{name}"](*args, **kwargs)


def _run_test(conn: Connection, job: dict, names: dict, compiled: Compiled, memo: Memo | None) -> None:
    namespace: dict = {"__name__": "__test__", "__builtins__": builtins}
    if compiled.context is not None:
        exec(compiled.context, namespace)
    entry = job.get("entry_point")
    if entry:
        namespace.pop(entry, None)
    for name, value in names.items():  # the candidate may not shadow the context or builtins the test uses
        if name == entry or (name not in namespace and not hasattr(builtins, name)):
            namespace[name] = value
    target = namespace.get(entry) if entry else None
    if job.get("prefetch") and isinstance(target, RemoteRef):
        Batch(conn, target, job["prefetch"])
    for name in compiled.memoized:
        namespace[name] = memo.wrap(name, namespace, f"_computed_{name}") if memo else _late(namespace, name)
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

    def __init__(self, isolation: iso.Isolation, tmpfs_bytes: int):
        # inside the sandbox the programs' folders live in /tmp/work of its private tmpfs (Python folders of a
        # checkout under /tmp are bound beside it and must not be swept)
        self.work_root = (
            SANDBOX_WORK_ROOT if isolation.namespaces else tempfile.mkdtemp(prefix="qwen-pipe-work-")
        )
        if not isolation.namespaces:
            os.chmod(self.work_root, 0o755)
        self.control, theirs = socket.socketpair()
        self.reader = FrameReader(self.control, limit=1 << 20)
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - the sandbox's stderr, kept while it runs
        self.process = subprocess.Popen(
            iso.zygote_argv(isolation, theirs.fileno(), tmpfs_bytes, self.work_root),
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
            start_new_session=True,
            env=iso.ENV,
            cwd="/" if isolation.namespaces else self.work_root,
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
        send_json(self.control, {"op": "spawn", "limits": limits}, fds=(channel.fileno(),))
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
        if self.work_root != SANDBOX_WORK_ROOT:
            shutil.rmtree(self.work_root, ignore_errors=True)


class Judge:
    def __init__(self, isolation: iso.Isolation, config: dict):
        self.isolation = isolation
        self.config = config
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
            self.compiled[key] = Compiled(*key, self.config.get("cache_dir"))
        return self.compiled[key]

    def memo_for(self, job: dict) -> Memo | None:
        if not job.get("memoize"):
            return None
        if self.memo is None or self.memo.test != job["test"]:
            folder = self.config.get("cache_dir")
            self.memo = Memo(os.path.join(folder, "expected") if folder else None, job["test"])
        return self.memo

    def sandbox_ready(self) -> Sandbox:
        if self.sandbox is None:
            self.sandbox = Sandbox(self.isolation, self.config["tmpfs_bytes"])
        return self.sandbox

    def limits(self, timeout_s: float) -> dict:
        config = self.config
        return {
            "memory_bytes": config["memory_bytes"],
            "cpu_s": int(timeout_s) + 2,
            "processes": config["processes"],
            "file_bytes": config["file_bytes"],
            "open_files": config["open_files"],
            "output_bytes": config["output_bytes"],
            "uid": config["uid"] if self.isolation.drops_uid else None,
        }

    def run(self, job: dict) -> dict:
        try:
            compiled = self.compile(job)
        except SyntaxError as error:
            return {"status": "error", "detail": f"test code does not compile: {error}", "duration_s": 0.0}
        memo = self.memo_for(job)
        ours, theirs = socket.socketpair()
        try:
            self.sandbox_ready().spawn(theirs, self.limits(job["timeout_s"]))
        except OSError:  # the zygote died after the last program (a candidate killed it): a new one
            self.close()
            self.sandbox_ready().spawn(theirs, self.limits(job["timeout_s"]))
        start = time.monotonic()
        conn = Connection(ours, start + job["timeout_s"])
        status, detail = _verdict(conn, job, compiled, memo)
        duration = time.monotonic() - start
        ours.close()
        if memo is not None:
            memo.save()
        report = self.sandbox.finish(kill=status != "pass")  # a batch may still be computing
        result = {"status": status, "detail": detail, "duration_s": duration}
        if report is None:
            self.sandbox.close()
            self.sandbox = None
            result["detail"] = (detail + "; " if detail else "") + "sandbox restarted (no exit report)"
            return result
        if status == "crash" and report["signal"] == signal.SIGXCPU:
            result.update(status="timeout", detail="CPU time limit reached")
        result.update({k: report[k] for k in ("output", "output_bytes", "cpu_s", "exit_code", "signal")})
        result["leftover_processes"] = report["leftover_processes"]
        return result

    def close(self) -> None:
        if self.sandbox is not None:
            self.sandbox.close()
            self.sandbox = None


def main(fd: int) -> None:
    """Serve jobs from the scorer: pickled (isolation, config) first, then one job per frame."""
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
