"""How a worker's sandbox is started: bubblewrap, else util-linux `unshare`, else no isolation (loudly).

Every mode starts the same zygote (runner.py) with a scrubbed environment. The two namespace modes give
it its own PID, network, mount, IPC and UTS namespaces, a root file system made of read-only binds of
the system and Python folders only (no home, no repository, no /etc), and a private tmpfs for the
candidates' working directories. When the scorer runs as root, candidates additionally run as an
unprivileged uid (65534 by default), so they cannot signal, trace or write to the zygote, and the
process-count limit applies to them.
"""

from __future__ import annotations

import functools
import os
import shlex
import shutil
import site
import stat
import subprocess
import sys
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


def describe(isolation: Isolation, uid: int) -> dict:
    """What the isolation guarantees, for metrics and reports."""
    if not isolation.namespaces:
        return {
            "mode": "none",
            "tool": "none",
            "warning": NO_ISOLATION_WARNING,
            "why": isolation.detail,
            "candidate_uid": uid if isolation.drops_uid else "the scorer's",
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
        "why_not_stronger": isolation.detail or None,
    }
