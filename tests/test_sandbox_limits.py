"""Limits on a whole program: one memory bound for all its processes, and output that cannot slow it down."""

from __future__ import annotations

import os
import uuid

import pytest

from qwen_pipe.errors import QwenPipeError
from qwen_pipe.sandbox import Program, SandboxConfig, isolation_mode, run_programs
from qwen_pipe.sandbox.isolation import memory_control
from qwen_pipe.tasks.common.registry import get_task

FORK_AND_ALLOCATE = """
import os, time
def grab():
    children = []
    for _ in range(8):
        pid = os.fork()
        if pid == 0:
            block = bytearray(512 << 20)
            for i in range(0, len(block), 4096):
                block[i] = 1
            time.sleep(60)
            os._exit(0)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)
    return True
"""
CENSUS = "import os\ncount = len([p for p in os.listdir('/proc') if p.isdigit()])\n"


def _cgroups_writable() -> bool:
    """Whether this machine lets us make a memory cgroup, probed without qwen-pipe's own code."""
    for root in ("/sys/fs/cgroup/memory", "/sys/fs/cgroup"):
        probe = os.path.join(root, f"qwen-pipe-probe-{uuid.uuid4().hex[:8]}")
        try:
            os.mkdir(probe)
        except OSError:
            continue
        os.rmdir(probe)
        if os.path.exists(os.path.join(root, "memory.limit_in_bytes")) or root.endswith("cgroup"):
            return True
    return False


@pytest.mark.parametrize("control", ["cgroup", "watchdog"])
def test_all_processes_of_a_program_share_one_memory_bound(control):
    """8 children touching 512 MiB each under a 1 GiB bound: the program is killed, and nothing is left."""
    try:
        memory_control(control)
    except QwenPipeError as error:
        if _cgroups_writable():  # the machine allows one: not finding it is a bug, never a skip
            pytest.fail(f"a cgroup can be made here, but memory_control refused: {error}")
        pytest.skip(f"no cgroup can be made on this machine (the watchdog case still runs): {error}")
    config = SandboxConfig(total_memory_bytes=1 << 30, memory_control=control)
    hog, census = run_programs(
        [
            Program("hog", FORK_AND_ALLOCATE, 30, test="assert grab()\n"),
            Program("census", CENSUS, 10, test="assert count <= 3, count\n"),  # init, zygote, itself
        ],
        workers=1,
        config=config,
    )
    assert hog.status == "error" and "memory limit" in hog.detail, (hog.status, hog.detail)
    assert "1 GiB" in hog.detail and hog.duration_s < 20
    assert census.passed, census.detail
    kind = "cgroup" if control == "cgroup" else "resident memory, sampled"
    assert kind in isolation_mode(config)["memory"]


def test_one_process_under_the_bound_is_untouched():
    source = "def grab():\n    block = bytearray(256 << 20)\n    block[::4096] = b'x' * len(block[::4096])\n    return len(block)\n"
    [result] = run_programs(
        [Program("fits", source, 20, test="assert grab() == 256 << 20\n")],
        workers=1,
        config=SandboxConfig(total_memory_bytes=1 << 30),
    )
    assert result.passed, result.detail


CHATTY = {
    "print": "print('FIRST LINE')\nprint('x' * (300 << 20))\nprint('LAST LINE')\n",
    "os_write": (
        "import os\nos.write(1, b'FIRST LINE\\n')\nchunk = b'x' * (1 << 20)\n"
        "for _ in range(300):\n    os.write(1, chunk)\nos.write(1, b'\\nLAST LINE\\n')\n"
    ),
    "subprocess": (
        "import subprocess, sys\nprint('FIRST LINE', flush=True)\n"
        "subprocess.run([sys.executable, '-c', \"import os; [os.write(1, b'x' * (1 << 20)) for _ in range(300)]\"])\n"
        "print('\\nLAST LINE', flush=True)\n"
    ),
}


@pytest.mark.parametrize("kind", CHATTY)
def test_a_correct_program_that_prints_300_mib_still_passes(mirror, tmp_path, kind):
    """HumanEval/0's own solution after 300 MiB of output, under its calibrated time limit."""
    task = get_task("humaneval")
    task.cache_dir, task.workers = tmp_path, 1
    record = next(r for r in task.load_mirror(mirror) if r["task_id"] == "HumanEval/0")
    source = CHATTY[kind] + task.reference_source(record)
    [result], limits = task.run([record], [source])
    assert result.passed, (result.status, result.detail, limits)
    assert result.output.startswith("FIRST LINE\nxxxx") and result.output.endswith("LAST LINE\n")
    assert "bytes not kept" in result.output and len(result.output) <= SandboxConfig().output_bytes
    assert result.output_bytes >= 300 << 20


HOLD_SIXTY = """
import os, time
def hold():
    children = []
    for _ in range(60):
        pid = os.fork()
        if pid == 0:
            time.sleep(4)
            os._exit(0)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)
    return True
"""
FORK_THREE = """
import os, time
def forks():
    time.sleep(1.5)  # while the other program holds its 60
    children = []
    for _ in range(3):
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        children.append(pid)
    return all(os.waitpid(pid, 0)[1] == 0 for pid in children)
"""


@pytest.mark.parametrize("control", ["auto", "watchdog"])
def test_one_program_holding_sixty_processes_does_not_starve_another(control):
    """Two programs at once, in two sandboxes: one holds 60 processes, the other forks 3. Each program may
    have 64; with one uid shared by all sandboxes, RLIMIT_NPROC would count both programs together and the
    second fork would fail with EAGAIN."""
    results = run_programs(
        [
            Program("holder", HOLD_SIXTY, 30, test="assert hold()\n"),
            Program("forker", FORK_THREE, 30, test="assert forks()\n"),
        ],
        workers=2,
        config=SandboxConfig(memory_control=control),
    )
    for result in results:
        assert result.passed, (result.id, result.status, result.detail)
