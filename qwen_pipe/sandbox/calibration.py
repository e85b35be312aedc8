"""Per-problem time limits from the reference solution's runtime on this machine: floor + factor x runtime.

A slow machine runs the references slowly too, so its limits grow with it and correct programs are not
timed out; a fast one does not wait long on programs that loop. Runtimes are cached on disk per machine,
keyed by the reference program's content, so a changed dataset or harness is measured again.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from qwen_pipe.sandbox.executor import Program, SandboxConfig, run_programs

CALIBRATION_VERSION = 1  # bump when the way programs run changes what a runtime means


@dataclass(frozen=True)
class TimeoutPolicy:
    floor_s: float = 2.0
    factor: float = 10.0
    reference_limit_s: float = 120.0  # the references' own limit while they are measured

    def timeout_for(self, reference_s: float) -> float:
        return round(self.floor_s + self.factor * reference_s, 3)


@dataclass(frozen=True)
class Calibration:
    timeout_s: float
    reference_s: float  # the reference solution's runtime (load plus every test), seconds
    reference_status: str  # pass, or why the reference itself did not pass (an upstream problem)


def default_cache_dir() -> Path:
    """$QWEN_PIPE_CALIBRATION_DIR, else data/cache/calibration in a writable checkout, else the user cache."""
    if os.environ.get("QWEN_PIPE_CALIBRATION_DIR"):
        return Path(os.environ["QWEN_PIPE_CALIBRATION_DIR"])
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").is_file() and os.access(root, os.W_OK):
        return root / "data" / "cache" / "calibration"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "qwen-pipe" / "calibration"


def machine_fingerprint(config: SandboxConfig) -> str:
    """What a runtime depends on besides the program: the CPU, the interpreter, the sandbox."""
    cpu = ""
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(
                (line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), ""
            )
    except OSError:
        pass
    parts = [
        platform.node(),
        platform.machine(),
        cpu,
        str(os.cpu_count()),
        sys.version,
        config.resolved().mode,
    ]
    return hashlib.sha256("\n".join([*parts, str(CALIBRATION_VERSION)]).encode()).hexdigest()[:16]


def program_key(program: Program) -> str:
    content = {k: v for k, v in asdict(program).items() if k not in ("id", "timeout_s")}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def _load(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _store(path: Path, entries: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps(entries, indent=0, sort_keys=True))
    temporary.replace(path)


def calibrate(
    references: Mapping[str, Program],
    cache_dir: Path | None = None,
    policy: TimeoutPolicy | None = None,
    workers: int | None = None,
    config: SandboxConfig | None = None,
) -> dict[str, Calibration]:
    """Each problem's time limit, from its reference program (measured now, or read from the cache)."""
    policy = policy or TimeoutPolicy()
    config = config or SandboxConfig()
    path = (cache_dir or default_cache_dir()) / f"{machine_fingerprint(config)}.json"
    entries = _load(path)
    keys = {problem: program_key(program) for problem, program in references.items()}
    todo = [
        p for p in references if entries.get(keys[p], {}).get("status") != "pass"
    ]  # failures: measured again
    if todo:
        programs = [replace(references[p], timeout_s=policy.reference_limit_s) for p in todo]
        for problem, result in zip(todo, run_programs(programs, workers, config), strict=True):
            status = "pass" if result.passed else f"{result.status}: {result.detail}"[:300]
            entries[keys[problem]] = {
                "problem": problem,
                "reference_s": round(result.duration_s, 4),
                "status": status,
            }
        _store(path, entries)
    out = {}
    for problem in references:
        entry = entries[keys[problem]]
        timed_out = entry["status"].startswith("timeout")
        timeout = policy.reference_limit_s if timed_out else policy.timeout_for(entry["reference_s"])
        out[problem] = Calibration(timeout, entry["reference_s"], entry["status"])
    return out
