"""How a worker's sandbox is started: bubblewrap, else util-linux `unshare`, else no isolation (loudly).

Every mode starts the same zygote (runner.py) with a scrubbed environment. The two namespace modes give
it its own PID, network, mount, IPC and UTS namespaces, a root file system made of read-only binds of
the system and Python folders only (no home, no repository, no /etc), and a private tmpfs for the
candidates' working directories. When the scorer runs as root, candidates additionally run as an
unprivileged uid (65534 by default), so they cannot signal, trace or write to the zygote, and the
process-count limit applies to them.

All of a program's processes together are held to one memory bound: a cgroup per sandbox (v2, or v1's
memory and pids controllers) that the sandbox starts in, so every candidate is born in it, where the
scorer may create one; else a watchdog in the zygote that adds up their resident memory (see
docs/sandbox.md).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import shlex
import shutil
import site
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from qwen_pipe.errors import QwenPipeError

MODES = ("bwrap", "unshare", "none")
RUNNER = Path(__file__).with_name("runner.py")
INSIDE_RUNNER = "/qwen-pipe/runner.py"
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
DEVICES = ("null", "zero", "full", "random", "urandom")
# spare folders for the unshare set-up (see unshare_argv)
HOLD_DIRS = ("/mnt", "/srv", "/media", "/opt", "/home")
ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0", "HOME": "/tmp"}
PRIVILEGED_CAPS = ("CAP_SETUID", "CAP_SETGID", "CAP_CHOWN", "CAP_KILL", "CAP_DAC_OVERRIDE", "CAP_FOWNER")
NO_ISOLATION_WARNING = (
    "NO SANDBOX ISOLATION: neither bubblewrap nor unshare could create namespaces here, so model code runs "
    "with the scorer's network and file system (only rlimits, a scrubbed environment, a private working "
    "directory and a session kill apply). Install bubblewrap (apt-get install -y bubblewrap) or allow user "
    "namespaces."
)


@dataclass(frozen=True)
class Isolation:
    mode: str  # bwrap | unshare | none
    tool: str  # the isolation tool and its version
    privileged: bool  # the scorer runs as root (no user namespace needed to set up the sandbox)
    drops_uid: bool  # candidates run as an unprivileged uid, not the scorer's
    detail: str = ""  # why a stronger mode was not used

    @property
    def namespaces(self) -> bool:
        return self.mode != "none"


def reachable_by_others(path: str) -> bool:
    """Whether another uid can reach `path` (every folder on the way is world-searchable)."""
    folders = [Path(path), *Path(path).parents]
    return all(os.stat(f).st_mode & stat.S_IXOTH for f in folders if f.is_dir())


def python_paths() -> tuple[list[str], list[str]]:
    """The folders the sandboxed interpreter needs (bound read-only), and its import path."""
    prefixes = {
        os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)
    }
    prefixes.add(os.path.dirname(os.path.dirname(os.path.realpath(sys.executable))))
    roots = sorted(p for p in prefixes if not any(p != q and p.startswith(q + os.sep) for q in prefixes))
    packages = [p for p in site.getsitepackages() if os.path.isdir(p)]
    return [r for r in roots if r != "/usr" and not r.startswith("/usr/")], packages


def _runner_command(fd: int, mode: str, work_root: str) -> list[str]:
    _, packages = python_paths()
    runner = INSIDE_RUNNER if mode != "none" else str(RUNNER)
    scope = "namespace" if mode != "none" else "session"
    return [sys.executable, "-I", "-S", runner, str(fd), scope, work_root, os.pathsep.join(packages)]


def bwrap_argv(privileged: bool, tmpfs_bytes: int, command: list[str]) -> list[str]:
    if privileged:  # no user namespace, so candidates can drop to a real unprivileged uid
        args = [
            "bwrap",
            "--unshare-pid",
            "--unshare-net",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
        ]
        args += ["--cap-drop", "ALL"] + [a for cap in PRIVILEGED_CAPS for a in ("--cap-add", cap)]
    else:
        args = ["bwrap", "--unshare-all", "--unshare-user", "--disable-userns", "--cap-drop", "ALL"]
    args += ["--die-with-parent", "--new-session", "--clearenv"]
    for key, value in ENV.items():
        args += ["--setenv", key, value]
    for path in SYSTEM_DIRS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    # the private /tmp comes before the Python folders: a checkout under /tmp (a venv there) stays visible
    args += ["--size", str(tmpfs_bytes), "--perms", "0755", "--tmpfs", "/tmp"]
    for root in python_paths()[0]:
        parents = [str(p) for p in reversed(Path(root).parents) if str(p) != "/"]
        args += [
            a for parent in parents for a in ("--perms", "0755", "--dir", parent)
        ]  # else bwrap makes 0700
        args += ["--ro-bind", root, root]
    args += ["--ro-bind", str(RUNNER), INSIDE_RUNNER, "--proc", "/proc", "--dev", "/dev"]
    args += ["--chdir", "/tmp", "--", *command]
    return args


def unshare_argv(privileged: bool, tmpfs_bytes: int, command: list[str]) -> list[str]:
    """util-linux unshare, and a shell script that builds the same read-only root and pivots into it."""
    roots = python_paths()[0]
    binds = [p for p in SYSTEM_DIRS if os.path.isdir(p) and not os.path.islink(p)] + roots
    links = [(os.readlink(p), p) for p in SYSTEM_DIRS if os.path.islink(p)]
    tmpfs = f"mount -t tmpfs -o size={tmpfs_bytes},mode=755 qwen-pipe"
    lines = [  # one command per line: `set -e` does not stop inside `a && b` lists
        "set -e",
        "umask 022",
        "export PATH=/usr/sbin:/usr/bin:/sbin:/bin",
    ]
    # The root is built on a tmpfs over /tmp; a Python folder under /tmp (a checkout there) is first made
    # reachable through a spare folder of the old root (private mount namespace: invisible outside).
    hold = next((d for d in HOLD_DIRS if os.path.isdir(d) and not os.path.islink(d)), None)

    def source(path: str) -> str:
        under_tmp = path == "/tmp" or path.startswith("/tmp/")
        return shlex.quote(f"{hold}{path[len('/tmp') :]}" if hold and under_tmp else path)

    if hold and any(p == "/tmp" or p.startswith("/tmp/") for p in [*roots, str(RUNNER)]):
        lines.append(f"mount --rbind /tmp {hold}")
    lines += [
        f"{tmpfs} /tmp",
        "R=/tmp/root",
        "mkdir $R",
        "mount --bind $R $R",
        "mkdir -p $R/tmp",
        f"{tmpfs} $R/tmp",
    ]
    for path in binds:
        lines += [
            f"mkdir -p $R{path}",
            f"mount --rbind {source(path)} $R{path}",
            f"mount -o remount,bind,ro $R{path}",
        ]
    lines += [f"ln -s {shlex.quote(target)} $R{link}" for target, link in links]
    lines.append("mkdir -p $R/dev $R/proc $R/tmp $R/qwen-pipe $R/.old")
    for device in DEVICES:
        lines += [f"touch $R/dev/{device}", f"mount --bind /dev/{device} $R/dev/{device}"]
    lines += [
        "mount -t proc proc $R/proc",
        f"touch $R{INSIDE_RUNNER}",
        f"mount --bind {source(str(RUNNER))} $R{INSIDE_RUNNER}",
        f"mount -o remount,bind,ro $R{INSIDE_RUNNER}",
        "cd $R",
        "pivot_root . .old",
        "umount -l /.old",
        "rmdir /.old",
        "mount -o remount,bind,ro /",
        "cd /tmp",
    ]
    keep = "".join(",+" + c.lower().removeprefix("cap_") for c in PRIVILEGED_CAPS) if privileged else ""
    drop = ["setpriv", f"--bounding-set=-all{keep}", "--inh-caps=-all"]
    lines.append("exec " + shlex.join([*drop, "env", "-i", *(f"{k}={v}" for k, v in ENV.items()), *command]))
    user = [] if privileged else ["--user", "--map-root-user"]
    spaces = [
        "--mount",
        "--uts",
        "--ipc",
        "--net",
        "--pid",
        "--fork",
        "--kill-child",
        "--propagation",
        "private",
    ]
    return ["unshare", *user, *spaces, "--", "/bin/sh", "-c", "\n".join(lines)]


def launch_argv(isolation: Isolation, tmpfs_bytes: int, command: list[str]) -> list[str]:
    if isolation.mode == "bwrap":
        return bwrap_argv(isolation.privileged, tmpfs_bytes, command)
    if isolation.mode == "unshare":
        return unshare_argv(isolation.privileged, tmpfs_bytes, command)
    return command


def zygote_argv(isolation: Isolation, fd: int, tmpfs_bytes: int, work_root: str) -> list[str]:
    return launch_argv(isolation, tmpfs_bytes, _runner_command(fd, isolation.mode, work_root))


def _probe(mode: str, privileged: bool) -> str | None:
    """None when `mode` can start an interpreter here, else the reason it cannot."""
    if shutil.which(mode) is None:
        return f"{mode} not found"
    check = [sys.executable, "-I", "-S", "-c", "import os; os.listdir('/proc')"]
    try:
        done = subprocess.run(
            launch_argv(Isolation(mode, mode, privileged, privileged), 16 << 20, check),
            capture_output=True,
            timeout=30,
            check=False,
            env=ENV,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"{mode} failed to start: {error}"
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        return f"{mode} failed ({done.returncode}): {lines[-1] if lines else 'no message'}"
    return None


def _version(tool: str) -> str:
    try:
        out = subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return tool
    return out.stdout.strip().splitlines()[0] if out.stdout.strip() else tool


@functools.cache
def resolve(requested: str = "auto") -> Isolation:
    """The isolation to use: the requested mode (an error if it does not work here), or the strongest."""
    if requested not in ("auto", *MODES):
        raise QwenPipeError(
            f"unknown sandbox isolation {requested!r}", f"choose one of: auto, {', '.join(MODES)}"
        )
    privileged = os.geteuid() == 0
    reasons = []
    for mode in MODES[:2] if requested == "auto" else () if requested == "none" else (requested,):
        reason = _probe(mode, privileged)
        if reason is None:
            return Isolation(mode, _version(mode), privileged, privileged, "; ".join(reasons))
        if requested != "auto":
            raise QwenPipeError(
                f"sandbox isolation {mode!r} does not work here: {reason}", "use isolation 'auto'"
            )
        reasons.append(reason)
    if requested == "auto":
        print(f"qwen-pipe: WARNING: {NO_ISOLATION_WARNING} ({'; '.join(reasons)})", file=sys.stderr)
    # Without namespaces the candidate sees the host's files: it can only drop to another uid if that uid
    # can still read the interpreter (pyenv under /root, for one, is private to root).
    readable = all(reachable_by_others(p) for p in [*python_paths()[0], *python_paths()[1]])
    return Isolation("none", "none", privileged, privileged and readable, "; ".join(reasons) or "requested")


# --- the memory bound of a whole program ---------------------------------------------------------
CGROUP_PREFIX = "qwen-pipe-"
_cgroups = itertools.count()


@dataclass(frozen=True)
class MemoryControl:
    kind: str  # cgroup2 | cgroup1 | watchdog
    root: str = ""  # where a sandbox's cgroup is made (cgroup1: in the memory hierarchy)
    pids_root: str = ""  # cgroup1: where its pids cgroup is made ("" when that controller is missing)
    detail: str = ""  # why there is no cgroup


def _mounts(kind: str) -> dict[str, str]:
    """Mount point of each controller of this cgroup file system kind ("" for cgroup2's one hierarchy)."""
    found = {}
    with open("/proc/self/mounts") as handle:
        for line in handle:
            _source, point, fs, options, *_ = line.split()
            if fs == kind:
                for option in options.split(",") if kind == "cgroup" else [""]:
                    found.setdefault(option, point)
    return found


def _own_paths() -> dict[str, str]:
    """This process's cgroup per controller ("" for cgroup2)."""
    paths = {}
    with open("/proc/self/cgroup") as handle:
        for line in handle:
            _number, controllers, path = line.rstrip("\n").split(":", 2)
            for controller in controllers.split(",") if controllers else [""]:
                paths[controller] = path
    return paths


def _try_folder(candidates: list[str], limit_file: str, limit: int) -> str:
    """The first folder of `candidates` under which a child cgroup can be made and limited ("" if none)."""
    for folder in candidates:
        probe = os.path.join(folder, f"{CGROUP_PREFIX}probe-{os.getpid()}")
        try:
            os.mkdir(probe)
        except OSError:
            continue
        try:
            with open(os.path.join(probe, limit_file), "w") as handle:
                handle.write(str(limit))
            return folder
        except OSError:
            continue
        finally:
            with contextlib.suppress(OSError):
                os.rmdir(probe)
    return ""


@functools.cache
def memory_control(requested: str = "auto") -> MemoryControl:
    """How a program's processes are held to one memory bound here: a cgroup where one can be made."""
    if requested not in ("auto", "cgroup", "watchdog"):
        raise QwenPipeError(f"unknown memory control {requested!r}", "choose one of: auto, cgroup, watchdog")
    if requested == "watchdog":
        return MemoryControl("watchdog", detail="requested")
    try:
        own = _own_paths()
        unified = _mounts("cgroup2").get("")
        if unified and "" in own:
            folder = unified + own[""].rstrip("/")
            with open(os.path.join(folder, "cgroup.subtree_control")) as handle:
                enabled = handle.read().split()
            if {"memory", "pids"} <= set(enabled) and _try_folder([folder], "memory.max", 1 << 30):
                return MemoryControl("cgroup2", folder)
        v1 = _mounts("cgroup")
        if "memory" in v1:
            places = [v1["memory"] + own.get("memory", "/").rstrip("/"), v1["memory"]]
            root = _try_folder(places, "memory.limit_in_bytes", 1 << 30)
            if root:
                pids = []
                if "pids" in v1:
                    pids = [v1["pids"] + own.get("pids", "/").rstrip("/"), v1["pids"]]
                return MemoryControl("cgroup1", root, _try_folder(pids, "pids.max", 64))
        reason = "no cgroup can be made here (a delegated cgroup v2 folder or cgroup v1 as root is needed)"
    except OSError as error:
        reason = f"cgroups unreadable: {error}"
    if requested == "cgroup":
        raise QwenPipeError(f"memory control 'cgroup' does not work here: {reason}", "use 'auto'")
    return MemoryControl("watchdog", detail=reason)


def _write(folder: str, name: str, value: str) -> None:
    with open(os.path.join(folder, name), "w") as handle:
        handle.write(value)


SANDBOX_PROCESSES = 3  # besides a program's own, in a sandbox's cgroup: the tool's process, init, the zygote


class Cgroup:
    """One sandbox's cgroup. The sandbox starts in it, so every candidate is born in it (moving each one
    in would slow it down), and all of a program's processes, with the zygote, share its bounds.

    Programs of a sandbox run one at a time, so the bounds are each program's (less the zygote's own
    few tens of MB). Past the memory bound the kernel kills a process of the group (a candidate: they
    volunteer with oom_score_adj 1000), and `watch` tells the zygote, which kills the rest of the
    program: an eventfd on memory.oom_control (v1), memory.events, which polls as changed (v2).
    """

    def __init__(self, control: MemoryControl, memory_bytes: int, processes: int):
        name = f"{CGROUP_PREFIX}{os.getpid()}-{next(_cgroups)}"
        self.control = control
        self.folders: list[str] = []
        self.watch: int | None = None
        self.bounds_processes = False  # pids.max written: the program's processes are bounded here
        try:
            self._make(os.path.join(control.root, name), memory_bytes, processes + SANDBOX_PROCESSES)
            if control.pids_root:
                self._make(os.path.join(control.pids_root, name), None, processes + SANDBOX_PROCESSES)
        except OSError:
            self.close()
            raise

    def _make(self, folder: str, memory_bytes: int | None, processes: int) -> None:
        os.mkdir(folder)
        self.folders.append(folder)
        v2 = self.control.kind == "cgroup2"
        if memory_bytes is not None:
            _write(folder, "memory.max" if v2 else "memory.limit_in_bytes", str(memory_bytes))
            swap = "memory.swap.max" if v2 else "memory.memsw.limit_in_bytes"
            if os.path.exists(os.path.join(folder, swap)):  # no swapping past the bound
                _write(folder, swap, "0" if v2 else str(memory_bytes))
            if v2:
                self.watch = os.open(os.path.join(folder, "memory.events"), os.O_RDONLY | os.O_CLOEXEC)
            else:
                self.watch = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
                control = os.open(os.path.join(folder, "memory.oom_control"), os.O_RDONLY | os.O_CLOEXEC)
                try:
                    _write(folder, "cgroup.event_control", f"{self.watch} {control}")
                finally:
                    os.close(control)
        if v2 or memory_bytes is None:
            _write(folder, "pids.max", str(processes))
            self.bounds_processes = True

    def join(self) -> None:
        """Move the calling process in (the sandbox's first process, before it starts anything)."""
        for folder in self.folders:
            _write(folder, "cgroup.procs", "0")

    def oom_kills(self) -> int:
        """Processes the kernel has killed for memory in this cgroup so far."""
        name = "memory.events" if self.control.kind == "cgroup2" else "memory.oom_control"
        try:
            with open(os.path.join(self.folders[0], name)) as handle:
                fields = dict(line.split() for line in handle if line.strip())
            return int(fields.get("oom_kill", 0))
        except (OSError, ValueError):
            return 0

    def close(self) -> None:
        if self.watch is not None:
            os.close(self.watch)
            self.watch = None
        for folder in self.folders:
            for _ in range(50):  # the last processes may still be leaving
                try:
                    os.rmdir(folder)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)
        self.folders = []


def remove_stale_cgroups(control: MemoryControl) -> None:
    """Cgroups of judges that died without removing theirs (their pid is in the name)."""
    for root in (control.root, control.pids_root):
        if not root:
            continue
        with contextlib.suppress(OSError):
            for entry in os.listdir(root):
                owner = entry.removeprefix(CGROUP_PREFIX).split("-")[0]
                if entry.startswith(CGROUP_PREFIX) and owner.isdigit() and not _alive(int(owner)):
                    with contextlib.suppress(OSError):
                        os.rmdir(os.path.join(root, entry))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def memory_bound(control: MemoryControl, total_bytes: int, process_bytes: int, processes: int) -> str:
    """The bound on a program's memory, in words, for the metrics."""
    each = f"each process at most {_gib(process_bytes)} of address space (RLIMIT_AS)"
    if control.kind == "cgroup2":
        return (
            f"all of a program's processes together at most {_gib(total_bytes)}, the sandbox's zygote included "
            f"(cgroup v2 memory.max, no swap; past it the kernel kills a candidate and the program fails) and "
            f"{processes} processes (pids.max); {each}"
        )
    if control.kind == "cgroup1":
        pids = f" and {processes} processes (pids.max)" if control.pids_root else ""
        return (
            f"all of a program's processes together at most {_gib(total_bytes)}, the sandbox's zygote included "
            f"(cgroup v1 memory.limit_in_bytes and memsw; past it the kernel kills a candidate and the program "
            f"fails){pids}; {each}"
        )
    return (
        f"all of a program's processes together at most {_gib(total_bytes)} of resident memory, sampled every "
        f"20 ms by the zygote (no cgroup: {control.detail}; between samples a program can pass it by what it "
        f"touches in 20 ms); {each}, at most {processes} processes of the candidates' uid (RLIMIT_NPROC)"
    )


def _gib(size: int) -> str:
    return f"{size / (1 << 30):g} GiB"


def describe(isolation: Isolation, uid: int, memory: str = "") -> dict:
    """What the isolation guarantees, for metrics and reports."""
    if not isolation.namespaces:
        return {
            "mode": "none",
            "tool": "none",
            "warning": NO_ISOLATION_WARNING,
            "why": isolation.detail,
            "candidate_uid": uid if isolation.drops_uid else "the scorer's",
            "memory": memory,
            "judge_cache": "not used (a candidate could write to it)",
        }
    return {
        "mode": isolation.mode,
        "tool": isolation.tool,
        "namespaces": "pid, net, mount, ipc, uts" + ("" if isolation.privileged else ", user"),
        "network": "none (own empty network namespace)",
        "filesystem": "read-only system and Python folders only; private tmpfs /tmp, wiped after each program",
        "candidate_uid": uid if isolation.drops_uid else "the scorer's, mapped in a user namespace",
        "cleanup": "every process in the PID namespace is killed after each program",
        "verdict": "tests run in a judge process outside the sandbox on values the candidate returns",
        "memory": memory,
        "why_not_stronger": isolation.detail or None,
    }
