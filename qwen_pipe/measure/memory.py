"""Host (and GPU) memory in use at one moment, taken before and after an engine ran (the cleanup check)."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import psutil

from qwen_pipe.measure.gpu import Gpu

GIB = 1024**3


@dataclass
class Snapshot:
    used: int  # total - available
    total: int
    processes_pss: int  # PSS summed over every process (RSS where PSS cannot be read)
    shm: int  # /dev/shm and SysV shared memory
    gpu_used: int | None = None
    gpu_total: int | None = None


def snapshot(gpu: Gpu | None) -> Snapshot:
    memory = psutil.virtual_memory()
    pss = 0
    for process in psutil.process_iter():
        try:
            pss += process.memory_full_info().pss
        except psutil.AccessDenied:
            with contextlib.suppress(psutil.Error):
                pss += process.memory_info().rss
        except psutil.Error:
            continue
    gpu_used, gpu_total = gpu.memory() if gpu else (None, None)
    return Snapshot(memory.total - memory.available, memory.total, pss, shared_memory(), gpu_used, gpu_total)


def shared_memory() -> int:
    """Bytes in /dev/shm and in SysV shared-memory segments."""
    total = psutil.disk_usage("/dev/shm").used if os.path.isdir("/dev/shm") else 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        lines = Path("/proc/sysvipc/shm").read_text(encoding="utf-8").splitlines()
        size = lines[0].split().index("size")
        total += sum(int(line.split()[size]) for line in lines[1:] if line.strip())
    return total
