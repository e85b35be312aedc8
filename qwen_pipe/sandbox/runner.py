"""The code that runs inside the sandbox, and the wire format the judge shares with it.

Standard library only: the sandbox runs this file as a script (`python -I -S runner.py ...`), without
the rest of qwen-pipe. One zygote per worker starts once, imports the modules model code commonly uses,
and then forks one fresh *candidate* process per program. The zygote never sees a program or its
tests: the candidate gets its source straight from the judge, over a socket the judge passes through.

A candidate loads the model's code, then serves the judge's calls: "call this function with these
arguments", answered with the value as plain data. It never runs a test and never sends a verdict, so
nothing it does (exit early, print, register atexit hooks, patch its own interpreter) can make a test
pass; only returning the right values can.

Wire format: frames of a 4-byte big-endian length and a pickle (protocol 5). The judge unpickles the
candidate's frames with an allow-list of constructors (`judge.Decoder`), so they can only hold plain
data: str, bytes, numbers, lists, tuples, dicts, sets, a few collections types, numeric numpy arrays,
and `remote` references to objects that stay in the candidate.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import io
import json
import os
import pickle
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

HEADER = struct.Struct(">I")
MAX_FRAME = 1 << 30  # MBPP+ 255's reference returns a 261 MB value
PRELOAD = (
    "array bisect collections copy dataclasses datetime decimal fractions functools hashlib heapq itertools "
    "math operator re statistics string typing unicodedata"
)


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
    """JSON frames from a control socket that also carries file descriptors (one per "spawn" frame)."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buffer = b""
        self.fds: list[int] = []

    def read(self) -> tuple[dict | None, int | None]:
        """The next message and, for a spawn, its descriptor; (None, None) once the peer is gone."""
        while (
            len(self.buffer) < HEADER.size
            or len(self.buffer) < HEADER.size + HEADER.unpack_from(self.buffer)[0]
        ):
            data, fds, _flags, _addr = socket.recv_fds(self.sock, 1 << 16, 4)
            self.fds += fds
            if not data:
                return None, None
            self.buffer += data
        (size,) = HEADER.unpack_from(self.buffer)
        message = json.loads(self.buffer[HEADER.size : HEADER.size + size])
        self.buffer = self.buffer[HEADER.size + size :]
        fd = self.fds.pop(0) if message.get("op") == "spawn" and self.fds else None
        return message, fd


def send_json(sock: socket.socket, message: dict, fds: tuple[int, ...] = ()) -> None:
    send_frame(sock, json.dumps(message).encode(), fds)


# --- values --------------------------------------------------------------------------------------
# The constructors a candidate's pickles may name; the judge maps each to its own safe version.
def plain(value: object) -> object:
    """A value already reduced to an exact built-in type (from a subclass, a numpy scalar)."""
    return value


def remote(index: int, type_name: str) -> object:
    """A reference to the candidate's object number `index` (built by the judge, never here)."""
    raise TypeError("references are built by the judge")


def module(name: str) -> object:
    return sys.modules[name]


def ndarray(dtype: str, data: list) -> object:
    import numpy

    return numpy.array(data, dtype=dtype)


def lookup(index: int) -> object:
    """In the judge's pickles: the candidate's object number `index` (resolved by `_Requests`)."""
    raise TypeError("resolved by the candidate's unpickler")


_COLLECTIONS = (collections.OrderedDict, collections.Counter, collections.deque)
_CONSTRUCTORS = (plain, remote, module, ndarray, complex, *_COLLECTIONS)  # pickled by name


class Encoder(pickle.Pickler):
    """Pickles a candidate's value as plain data.

    Exact built-in types pickle natively (this hook never sees them). Subclasses become their base type
    (a str subclass cannot lie about its text, an int subclass about its value, and no object carries
    its own __eq__ to the judge), numpy values become Python values, modules are named, and every
    other object stays here and goes as a `remote` reference the judge can only call or iterate.
    """

    def __init__(self, file: io.BytesIO, refs: list):
        super().__init__(file, protocol=5)
        self.refs = refs

    def reducer_override(self, obj: object) -> object:
        kind = type(obj)
        if kind is bytearray or any(obj is c for c in _CONSTRUCTORS):
            return NotImplemented
        if isinstance(obj, complex):
            value = complex.__complex__(obj)
            return complex, (value.real, value.imag)
        if isinstance(obj, int) and not isinstance(obj, bool):
            return plain, (int.__int__(obj),)
        if isinstance(obj, float):
            return plain, (float.__float__(obj),)
        if isinstance(obj, str):
            return plain, (str.__str__(obj),)
        if isinstance(obj, bytes):
            return plain, (bytes.__getitem__(obj, slice(None)),)
        if kind in _COLLECTIONS:
            if kind is collections.OrderedDict:
                return collections.OrderedDict, (list(dict.items(obj)),)
            return kind, (dict(dict.items(obj)) if kind is collections.Counter else list(obj),)
        if isinstance(obj, dict):
            return plain, (dict(dict.items(obj)),)
        if isinstance(obj, list):
            return plain, (list(list.__iter__(obj)),)
        if isinstance(obj, tuple):
            return plain, (tuple(tuple.__iter__(obj)),)
        if isinstance(obj, (set, frozenset)):
            base = frozenset if isinstance(obj, frozenset) else set
            return plain, (base(base.__iter__(obj)),)
        if isinstance(obj, types.ModuleType):
            return module, (obj.__name__,)
        if getattr(kind, "__module__", None) == "numpy":
            if kind.__name__ == "ndarray":
                return ndarray, (str(obj.dtype), obj.tolist())
            if hasattr(obj, "item"):  # numpy scalars: np.float64, np.int64, np.bool_
                return plain, (obj.item(),)
        self.refs.append(obj)
        return remote, (len(self.refs) - 1, getattr(kind, "__qualname__", "object"))


def encode(value: object, refs: list) -> bytes:
    buffer = io.BytesIO()
    Encoder(buffer, refs).dump(value)
    return buffer.getvalue()


class _Requests(pickle.Unpickler):
    """The judge's requests (trusted), with its `lookup` markers resolved to this process's objects."""

    def __init__(self, data: bytes, refs: list):
        super().__init__(io.BytesIO(data))
        self.refs = refs

    def find_class(self, module_name: str, name: str) -> object:
        if name == "lookup":
            return self.refs.__getitem__
        return super().find_class(module_name, name)


# --- the candidate process -------------------------------------------------------------------------
def _describe(error: BaseException) -> tuple[str, str]:
    return type(error).__name__, str(error)[:2000]


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # model code may have replaced or closed the streams
            stream.flush()


def _encode_reply(refs: list, reply: tuple[str, object]) -> bytes:
    try:
        return encode(reply, refs)
    except BaseException as error:  # noqa: BLE001 - deep recursion, memory, a hostile __reduce__
        return encode(("x", ("UnencodableValue", f"{type(error).__name__}: {error}"[:500])), refs)


def _reply(sock: socket.socket, refs: list, kind: str, payload: object) -> None:
    """Send ("v", value) or ("x", (exception type, message))."""
    _flush()
    send_frame(sock, _encode_reply(refs, (kind, payload)))


def _batch(sock: socket.socket, refs: list, function: object, inputs: list) -> None:
    """Call `function` on every input: one reply frame each, written in bunches.

    A bunch is 64 replies, 256 KiB or 2 ms of work, whichever comes first: fewer system calls, and
    each reply still a frame of its own (so every one is held to the frame limit).
    """
    bunch: list[bytes] = []
    size, started = 0, time.monotonic()
    for args in inputs:
        body = _encode_reply(refs, _call(function, args, {}))
        bunch.append(HEADER.pack(len(body)) + body)
        size += len(body)
        if len(bunch) >= 64 or size >= 1 << 18 or time.monotonic() - started > 0.002:
            _flush()
            sock.sendall(b"".join(bunch))
            bunch, size, started = [], 0, time.monotonic()
    if bunch:
        _flush()
        sock.sendall(b"".join(bunch))


def _call(function: object, args: tuple, kwargs: dict) -> tuple[str, object]:
    try:
        return "v", function(*args, **kwargs)
    except BaseException as error:  # noqa: BLE001 - SystemExit, KeyboardInterrupt and all
        return "x", _describe(error)


def serve(sock: socket.socket) -> None:
    """Load the program the judge sends, then answer its calls until it hangs up.

    Requests: ("call", index, args, kwargs) -> one reply; ("iter", index) -> the object's items as a
    list; ("batch", index, [args, ...]) -> one reply per argument tuple, as calls return.
    """
    solution = types.ModuleType("solution")
    sys.modules["solution"] = solution
    namespace = solution.__dict__
    refs: list = []
    reader = FrameReader(sock)
    request = reader.read()
    if request is None:
        return
    load = pickle.loads(request)
    random.seed(load["seed"])
    try:
        exec(compile(load["source"], "<solution>", "exec"), namespace)
        if load["setup"]:
            exec(compile(load["setup"], "<setup>", "exec"), namespace)
        reply = ("v", {k: v for k, v in namespace.items() if not k.startswith("__")})
    except BaseException as error:  # noqa: BLE001
        reply = ("x", _describe(error))
    _reply(sock, refs, *reply)
    while (request := reader.read()) is not None:
        op, index, *rest = _Requests(request, refs).load()
        target = refs[index]
        if op == "call":
            _reply(sock, refs, *_call(target, *rest))
        elif op == "iter":
            _reply(sock, refs, *_call(list, (target,), {}))
        else:
            _batch(sock, refs, target, rest[0])


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


def sweep_session(session: int) -> int:
    """Without a PID namespace: kill what is left of the candidate's session (setsid escapes this)."""
    found = 0
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            if pid.isdigit() and int(fields[3]) == session:
                found += 1
                os.kill(int(pid), signal.SIGKILL)
        except (OSError, IndexError, ValueError):
            continue
    _reap()
    return found


class Zygote:
    def __init__(self, control: socket.socket, own_namespace: bool, work_root: str):
        self.control = control
        self.reader = ControlReader(control)
        self.own_namespace = own_namespace
        self.work_root = work_root
        self.count = 0
        os.makedirs(work_root, mode=0o755, exist_ok=True)

    def clear_work_root(self) -> None:
        for entry in os.listdir(self.work_root):
            path = os.path.join(self.work_root, entry)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.unlink(path)

    def spawn(self, request: dict, channel: int) -> None:
        limits = request["limits"]
        self.count += 1
        workdir = os.path.join(self.work_root, f"run{self.count}")
        os.mkdir(workdir, 0o700)
        if limits.get("uid") is not None and os.getuid() == 0:
            os.chown(workdir, limits["uid"], limits["uid"])
        out_r, out_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                self.control.close()
                os.close(out_r)
                become_candidate(channel, out_w, workdir, limits)
            except BaseException:  # noqa: BLE001 - a child of the fork must never return into the zygote
                code = 70
            os._exit(code)
        os.close(out_w)
        os.close(channel)
        self.supervise(pid, out_r, limits["output_bytes"])

    def supervise(self, pid: int, out_r: int, keep: int) -> None:
        """Collect the candidate's output until it ends, kill what it left behind, report."""
        pidfd = os.pidfd_open(pid)
        output, total, status, usage, killed = bytearray(), 0, None, None, False
        watch = [out_r, pidfd, self.control]
        while status is None:
            for ready in select.select(watch, [], [])[0]:
                if ready == out_r:
                    data = os.read(out_r, 1 << 16)
                    if not data:
                        watch.remove(out_r)
                    total += len(data)
                    output = (output + data)[-keep:]
                elif ready == pidfd:
                    _, status, usage = os.wait4(pid, 0)
                else:
                    message, fd = self.reader.read()
                    if fd is not None:
                        os.close(fd)
                    if message is None:  # the judge is gone: end everything
                        _kill(pid, status)
                        raise SystemExit(0)
                    if message.get("op") == "kill":
                        killed = _kill(pid, status)
        left = sweep_namespace() if self.own_namespace else sweep_session(pid)
        drain_until = time.monotonic() + 1  # without a PID namespace an escaped process may keep writing
        while out_r in watch and time.monotonic() < drain_until and select.select([out_r], [], [], 0.2)[0]:
            data = os.read(out_r, 1 << 16)
            if not data:
                break
            total += len(data)
            output = (output + data)[-keep:]
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
                "cpu_s": usage.ru_utime + usage.ru_stime,
                "max_rss_kib": usage.ru_maxrss,
                "output": output.decode("utf-8", "replace"),
                "output_bytes": total,
                "leftover_processes": left,
            },
        )

    def serve(self) -> None:
        send_json(self.control, {"op": "ready", "pid": os.getpid(), "uid": os.getuid()})
        while True:
            request, fd = self.reader.read()
            if request is None:
                return
            if request["op"] == "spawn" and fd is not None:
                self.spawn(request, fd)
            elif fd is not None:
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
