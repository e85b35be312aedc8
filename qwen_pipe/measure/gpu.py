"""One GPU's memory and utilisation: NVML through pynvml (nvidia-ml-py), else nvidia-smi."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading


class Gpu:
    """One GPU's memory and utilisation; `Gpu.probe()` is None on a host without NVIDIA GPU."""

    def __init__(self, index: int, nvml=None):
        self.index = index
        self.nvml = nvml
        self.handle = nvml.nvmlDeviceGetHandleByIndex(index) if nvml else None

    @staticmethod
    def probe() -> Gpu | None:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0].strip()
        if visible in ("", "-1"):
            return None
        index = int(visible) if visible.isdigit() else 0
        try:
            import pynvml

            pynvml.nvmlInit()
            if pynvml.nvmlDeviceGetCount() > index:
                return Gpu(index, pynvml)
        except Exception:  # noqa: BLE001 - no pynvml, no driver or no such device: try nvidia-smi
            pass
        if shutil.which("nvidia-smi"):
            gpu = Gpu(index)
            with contextlib.suppress(Exception):
                gpu.memory()
                return gpu
        return None

    @property
    def source(self) -> str:
        return "nvml" if self.nvml else "nvidia-smi"

    def _smi(self, query: str) -> list[list[str]]:
        done = subprocess.run(
            ["nvidia-smi", f"--id={self.index}", query, "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return [[c.strip() for c in line.split(",")] for line in done.stdout.splitlines() if line.strip()]

    def memory(self) -> tuple[int, int]:
        """(used, total) bytes of the whole device."""
        if self.nvml:
            info = self.nvml.nvmlDeviceGetMemoryInfo(self.handle)
            return int(info.used), int(info.total)
        used, total = self._smi("--query-gpu=memory.used,memory.total")[0]
        return int(float(used) * 2**20), int(float(total) * 2**20)

    def utilisation(self) -> float:
        if self.nvml:
            return float(self.nvml.nvmlDeviceGetUtilizationRates(self.handle).gpu)
        return float(self._smi("--query-gpu=utilization.gpu")[0][0])

    def process_memory(self, pids: set[int]) -> int:
        """Device memory held by these processes (0 where the driver reports other pid namespaces)."""
        if self.nvml:
            processes = self.nvml.nvmlDeviceGetComputeRunningProcesses(self.handle)
            return sum(int(p.usedGpuMemory or 0) for p in processes if p.pid in pids)
        rows = self._smi("--query-compute-apps=pid,used_memory")
        return sum(int(float(m) * 2**20) for pid, m in rows if pid.isdigit() and int(pid) in pids)


class UtilisationSampler:
    """GPU utilisation (%) sampled in a thread while a block runs."""

    def __init__(self, gpu: Gpu | None, interval_s: float = 0.1):
        self.gpu, self.interval_s, self.samples = gpu, interval_s, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                self.samples.append(self.gpu.utilisation())
            self._stop.wait(self.interval_s)

    def __enter__(self) -> UtilisationSampler:
        if self.gpu:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.gpu:
            self._stop.set()
            self._thread.join()

    def summary(self) -> dict | None:
        if not self.samples:
            return None
        return {
            "mean": round(sum(self.samples) / len(self.samples), 1),
            "max": max(self.samples),
            "samples": len(self.samples),
        }
