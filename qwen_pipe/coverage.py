"""Model coverage: does a model load under a preset, how fast does it run, how much memory does it take.

Each measurement runs in a fresh Python process (`python -m qwen_pipe.coverage JOB RESULT`). The parent
samples the memory of the child's whole process tree (host RSS; GPU memory through NVML) while it runs,
and after it exits checks that memory went back to the baseline (the engine cleaned up).

Timing model, on a fixed recorded workload of `coverage.prompts` distinct prompts of about
`coverage.prompt_tokens` tokens, every request sent at once (batch = the number of prompts):
- prefill pass: 1 new token per prompt. Its wall time is the time to first token at this batch, and
  prompt tokens / wall time is the prefill throughput;
- generation pass: exactly `max_new_tokens` per prompt (`ignore_eos`): output tokens / wall time;
- time per output token = (generation - prefill) / (max_new_tokens - 1), the decode step at this batch;
- the same two passes with a single prompt give the batch-1 latency.
Each pass gets its own prompts (a different leading tag), so prefix caching never shortcuts a prefill,
and each pass runs REPEATS times: the fastest counts (other programs on the host only slow a run down).
"""

from __future__ import annotations

import collections
import contextlib
import importlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from qwen_pipe.config import CoverageParams, EngineParams, Preset
from qwen_pipe.models.spec import ModelSpec

GIB = 1024**3
MIN_TOKENS_PER_S = 100.0
MAX_MEMORY_FRACTION = 0.80
# Cleanup, checked after the engine's process exited. Host memory cannot outlive a process except in
# processes that survive it or in shared memory, so those are checked exactly: no process of the engine's
# tree alive, and /dev/shm plus SysV segments grown by less than SHM_TOLERANCE_GIB. The machine-wide
# number (change of used memory minus change of the summed PSS of all processes) is recorded too, but
# other programs move it by up to ~1 GiB within seconds on a busy 2-core host, so it is only held to
# max(HOST_CLEANUP_TOLERANCE_GIB, half the engine's peak): a leak of the model's size still fails.
# On a GPU, device memory must be back within GPU_CLEANUP_TOLERANCE_GIB of the baseline.
SHM_TOLERANCE_GIB = 0.0625
HOST_CLEANUP_TOLERANCE_GIB = 1.0
GPU_CLEANUP_TOLERANCE_GIB = 0.25
CLEANUP_WAIT_S = 10.0
TIMEOUT_S = 3600.0
SAMPLE_INTERVAL_S = 0.1
REPEATS = 2  # timed runs per pass; the fastest counts
DUMMY_MODELS_DIR = Path(".cache/dummy_models")
WORKLOAD_TEXT = (
    "The committee reviewed the quarterly report, compared the figures with last year's results, and "
    "asked the finance team to explain every change larger than five percent before the next meeting. "
)
KV_DTYPE_BYTES = {"fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1}
DTYPE_BYTES = {"float32": 4}


def workload(tokenizer, prompts: int, prompt_tokens: int, tag: str = "") -> list[str]:
    """Fixed, distinct prompts of about `prompt_tokens` tokens each; `tag` makes a fresh set (no cache hits)."""
    base = tokenizer.encode(WORKLOAD_TEXT * 8, add_special_tokens=False)
    out = []
    for i in range(prompts):
        ids = [base[(i * 7 + j) % len(base)] for j in range(prompt_tokens)]
        out.append(f"[{tag}{i}] " + tokenizer.decode(ids))
    return out


# --- GPU: NVML through pynvml (nvidia-ml-py), else nvidia-smi ---------------------------------------------


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


# --- host memory -------------------------------------------------------------------------------------


@dataclass
class Snapshot:
    """Host (and GPU) memory in use at one moment, for the cleanup check."""

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
    return Snapshot(memory.total - memory.available, memory.total, pss, _shared_memory(), gpu_used, gpu_total)


def tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


class TreeMonitor:
    """Samples, in the parent, the RSS of a process tree and the GPU memory it holds, until stopped."""

    def __init__(
        self, pid: int, gpu: Gpu | None, gpu_baseline: int | None, interval_s: float = SAMPLE_INTERVAL_S
    ):
        self.pid, self.gpu, self.gpu_baseline, self.interval_s = pid, gpu, gpu_baseline, interval_s
        self.peak_rss = 0
        self.peak_gpu_process = 0  # NVML per-process memory of the tree
        self.peak_gpu_device = 0  # device used memory above the baseline
        self.seen: dict[int, float] = {}  # pid -> create_time of every process of the tree
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        rss = 0
        for process in tree(self.pid):
            with contextlib.suppress(psutil.Error):
                rss += process.memory_info().rss
                self.seen.setdefault(process.pid, process.create_time())
        self.peak_rss = max(self.peak_rss, rss)
        if self.gpu:
            with contextlib.suppress(Exception):
                self.peak_gpu_process = max(self.peak_gpu_process, self.gpu.process_memory(set(self.seen)))
                self.peak_gpu_device = max(
                    self.peak_gpu_device, self.gpu.memory()[0] - (self.gpu_baseline or 0)
                )

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval_s)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def survivors(self) -> list[int]:
        alive = []
        for pid, created in self.seen.items():
            with contextlib.suppress(psutil.Error):
                process = psutil.Process(pid)
                if process.create_time() == created and process.status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
        return alive


# --- running a function in a fresh process -----------------------------------------------------------


@dataclass
class Isolated:
    """What one fresh-process run returned, and what the parent saw of it."""

    status: str  # "ok" | "error"
    payload: dict
    exitcode: int | None
    wall_seconds: float
    startup_seconds: float | None  # process spawn to the first line of the target (interpreter, imports)
    peak_rss: int
    peak_gpu_process: int
    peak_gpu_device: int
    monitor: TreeMonitor
    log_tail: list[str] = field(default_factory=list)


def run_in_fresh_process(
    target: str, args: dict, gpu: Gpu | None, gpu_baseline: int | None = None, timeout_s: float = TIMEOUT_S
) -> Isolated:
    """Run `module:function(**args)` in a fresh interpreter; its output goes to our stderr."""
    with tempfile.TemporaryDirectory(prefix="qwen-pipe-child-") as folder:
        job, result = Path(folder) / "job.json", Path(folder) / "result.json"
        spawned = time.time()
        job.write_text(json.dumps({"target": target, "args": args, "spawned": spawned}), encoding="utf-8")
        env = {**os.environ, "QWEN_PIPE_PROGRESS": os.environ.get("QWEN_PIPE_PROGRESS", "0")}
        started = time.perf_counter()
        child = subprocess.Popen(
            [sys.executable, "-m", "qwen_pipe.coverage", str(job), str(result)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            env=env,
        )
        tail: collections.deque[str] = collections.deque(maxlen=40)

        def forward() -> None:
            assert child.stdout is not None
            for line in child.stdout:
                tail.append(line.rstrip())
                sys.stderr.write(line)

        reader = threading.Thread(target=forward, daemon=True)
        reader.start()
        monitor = TreeMonitor(child.pid, gpu, gpu_baseline)
        monitor.start()
        try:
            child.wait(timeout=timeout_s)
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
            for process in reversed(tree(child.pid)):
                with contextlib.suppress(psutil.Error):
                    process.kill()
            child.wait()
        wall = time.perf_counter() - started
        monitor.stop()
        reader.join(timeout=5)
        if result.is_file():
            answer = json.loads(result.read_text(encoding="utf-8"))
            status, payload = answer["status"], answer["payload"]
            startup = answer.get("entered", spawned) - spawned
        else:
            why = f"timed out after {timeout_s:.0f} s" if timed_out else f"exit code {child.returncode}"
            status, payload, startup = (
                "error",
                {
                    "type": "ChildDied",
                    "message": f"the measuring process ended ({why}) without a result",
                    "log_tail": list(tail)[-15:],
                },
                None,
            )
    return Isolated(
        status,
        payload,
        child.returncode,
        wall,
        startup,
        monitor.peak_rss,
        monitor.peak_gpu_process,
        monitor.peak_gpu_device,
        monitor,
        list(tail),
    )


def _child_main(job_path: str, result_path: str) -> int:
    entered = time.time()
    job = json.loads(Path(job_path).read_text(encoding="utf-8"))
    module, function = job["target"].split(":")
    try:
        payload = getattr(importlib.import_module(module), function)(**job["args"])
        answer = {"status": "ok", "payload": payload, "entered": entered}
        code = 0
    except BaseException as error:  # noqa: BLE001 - every failure is reported to the parent
        answer = {
            "status": "error",
            "entered": entered,
            "payload": {
                "type": type(error).__name__,
                "message": str(error)[:500],
                "trace": traceback.format_exc()[-2000:],
            },
        }
        code = 1
    Path(result_path).write_text(json.dumps(answer), encoding="utf-8")
    return code


# --- in the child: load and time one engine ------------------------------------------------------------


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


def import_framework(engine_name: str) -> float:
    """Import the engine's framework; returns the seconds it took (part of the engine's start-up)."""
    started = time.perf_counter()
    importlib.import_module("torch")
    if engine_name in ("vllm", "transformers"):
        importlib.import_module(engine_name)
    return time.perf_counter() - started


def load_engine(spec: ModelSpec, preset: Preset, engine_params: EngineParams, load_format: str):
    """(engine, tokenizer, seconds to load)."""
    from qwen_pipe.engines.registry import make_engine

    started = time.perf_counter()
    engine = make_engine(engine_params.name, spec, preset, engine_params, load_format=load_format)
    seconds = time.perf_counter() - started
    tokenizer = getattr(engine, "tokenizer", None)
    if tokenizer is None:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(spec.hf_id, trust_remote_code=spec.trust_remote_code)
    return engine, tokenizer, seconds


def timed_generate(engine, prompts: list[str], max_new_tokens: int) -> tuple[float, int, int]:
    """(seconds, prompt tokens, output tokens) of one engine call with exactly `max_new_tokens` per prompt."""
    from qwen_pipe.engines.base import GenerationRequest, SamplingParams

    sampling = SamplingParams(max_new_tokens=max_new_tokens, ignore_eos=True)
    started = time.perf_counter()
    results = engine.generate([GenerationRequest(p, sampling) for p in prompts])
    seconds = time.perf_counter() - started
    return seconds, sum(g.prompt_tokens for g in results), sum(g.output_tokens for g in results)


def kv_cache(engine, spec: ModelSpec) -> dict | None:
    """KV-cache capacity where the engine reports it (vLLM: blocks x block size)."""
    try:
        config = engine.llm.llm_engine.vllm_config.cache_config
        tokens = int(config.num_gpu_blocks * config.block_size)
    except Exception:  # noqa: BLE001 - not vLLM, or a version without these fields
        return None
    args = engine.info.args
    dtype_bytes = KV_DTYPE_BYTES.get(args.get("kv_cache_dtype", "auto")) or DTYPE_BYTES.get(
        args.get("dtype"), 2
    )
    max_len = args.get("max_model_len") or spec.architecture.max_position_embeddings
    return {
        "tokens": tokens,
        "gib": round(tokens * spec.architecture.kv_bytes_per_token(dtype_bytes) / GIB, 3),
        "sequences_at_max_model_len": round(tokens / max_len, 2),
    }


def measure_child(spec: dict, preset: dict, engine: dict, coverage: dict) -> dict:
    """Runs in the fresh process: load, warm up, then the timed passes (see the module docstring)."""
    spec_, preset_ = ModelSpec.model_validate(spec), Preset.model_validate(preset)
    engine_params, params = EngineParams.model_validate(engine), CoverageParams.model_validate(coverage)
    import_s = import_framework(engine_params.name)
    import torch

    on_gpu = torch.cuda.is_available()  # no CUDA context yet: vLLM may still fork its engine process
    gpu = Gpu.probe() if on_gpu else None
    engine_, tokenizer, load_s = load_engine(spec_, preset_, engine_params, params.load_format)
    n, length = params.prompts, params.max_new_tokens

    def best(prompts: int, new_tokens: int, tag: str) -> tuple[float, int, int]:
        """The faster of REPEATS runs, each on fresh prompts: other programs only ever slow a run down."""
        runs = [
            timed_generate(
                engine_, workload(tokenizer, prompts, params.prompt_tokens, f"{tag}{r}-"), new_tokens
            )
            for r in range(REPEATS)
        ]
        return min(runs)

    timed_generate(
        engine_, workload(tokenizer, n, params.prompt_tokens, "w"), 2
    )  # warm-up: allocations, graphs
    timed_generate(engine_, workload(tokenizer, 1, params.prompt_tokens, "v"), 2)  # and the batch-1 shapes
    prefill_s, prompt_tokens, _ = best(n, 1, "p")
    with UtilisationSampler(gpu) as utilisation:
        generate_s, _, output_tokens = best(n, length, "g")
    first_1, _, _ = best(1, 1, "s")
    generate_1, _, _ = best(1, length, "t")
    steps = max(length - 1, 1)
    result = {
        "engine": {"engine": engine_.info.engine, "version": engine_.info.version, "args": engine_.info.args},
        "framework_import_seconds": round(import_s, 3),
        "load_seconds": round(load_s, 3),
        "workload": {
            "prompts": n,
            "prompt_tokens_per_prompt": params.prompt_tokens,
            "prompt_tokens": prompt_tokens,
            "max_new_tokens": length,
            "output_tokens": output_tokens,
            "ignore_eos": True,
            "repeats": REPEATS,
            "statistic": "the fastest of the repeats, each on fresh prompts",
            "text": "WORKLOAD_TEXT of qwen_pipe/coverage.py, rotated per prompt, with a per-pass tag",
        },
        "prefill_seconds": round(prefill_s, 4),
        "prefill_tokens_per_s": round(prompt_tokens / prefill_s, 1),
        "generation_seconds": round(generate_s, 3),
        "output_tokens_per_s": round(output_tokens / generate_s, 1),
        "latency": {
            "batch": {
                "batch_size": n,
                "time_to_first_token_s": round(prefill_s, 4),
                "time_per_output_token_s": round(max(generate_s - prefill_s, 0.0) / steps, 5),
            },
            "single": {
                "batch_size": 1,
                "time_to_first_token_s": round(first_1, 4),
                "time_per_output_token_s": round(max(generate_1 - first_1, 0.0) / steps, 5),
            },
        },
        "time_to_first_token_s": round(prefill_s, 4),
        "time_per_output_token_s": round(max(generate_s - prefill_s, 0.0) / steps, 5),
        "gpu_utilisation": utilisation.summary(),
        "kv_cache": kv_cache(engine_, spec_),
        "on_gpu": on_gpu,
    }
    if on_gpu:
        allocated, reserved = torch.cuda.max_memory_allocated(), torch.cuda.max_memory_reserved()
        # Zero when the model runs in an engine subprocess (vLLM's multiprocessing mode on GPU).
        result["framework_memory"] = {
            "source": "torch.cuda (this process)",
            "max_allocated_gib": round(allocated / GIB, 3) if allocated else None,
            "max_reserved_gib": round(reserved / GIB, 3) if reserved else None,
        }
        result["cuda_total_gib"] = round(torch.cuda.get_device_properties(0).total_memory / GIB, 3)
    engine_.close()
    result["child_max_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB, 3)
    return result


# --- dummy weights ----------------------------------------------------------------------------------------


def architecture_config(spec: ModelSpec) -> dict | None:
    """A config.json for the spec's architecture (Qwen2/2.5 and Qwen3); None for other model types."""
    from qwen_pipe.models.tiny import qwen3_config

    arch = spec.architecture
    if arch.model_type == "qwen3":
        return qwen3_config(arch)
    if arch.model_type == "qwen2":
        config = qwen3_config(arch.model_copy(update={"qkv_bias": False}))
        config.update(architectures=["Qwen2ForCausalLM"], model_type="qwen2")
        for key in ("head_dim", "attention_bias"):  # Qwen2 derives head_dim and always has q/k/v biases
            config.pop(key)
        return config
    return None


def dummy_model_dir(spec: ModelSpec, root: Path = DUMMY_MODELS_DIR) -> Path | None:
    """A local folder with config and tokenizer (no weights) for `load_format: dummy`, built from the
    registry's architecture facts; None where the spec already is a local folder or cannot be built here."""
    if (Path(spec.hf_id) / "config.json").is_file():
        return None
    config = architecture_config(spec)
    if config is None:
        return None
    from qwen_pipe.models.tiny import generation_config
    from qwen_pipe.models.tokenizer import write_qwen_tokenizer

    folder = root / spec.name
    text = json.dumps(config, indent=2) + "\n"
    config_file = folder / "config.json"
    if (
        config_file.is_file()
        and config_file.read_text(encoding="utf-8") == text
        and (folder / "tokenizer.json").is_file()
    ):
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    write_qwen_tokenizer(folder)
    (folder / "generation_config.json").write_text(
        json.dumps(generation_config(), indent=2) + "\n", encoding="utf-8"
    )
    config_file.write_text(text, encoding="utf-8")
    return folder


def spec_for_run(spec: ModelSpec, load_format: str) -> tuple[ModelSpec, str]:
    """The spec the engine loads and a line saying where the weights come from."""
    if load_format != "dummy":
        return spec, f"checkpoint {spec.hf_id}"
    folder = dummy_model_dir(spec)
    if folder is None:
        return spec, f"dummy: random weights, architecture of {spec.hf_id}"
    return (
        spec.model_copy(update={"hf_id": str(folder.resolve()), "revision": None}),
        f"dummy: random weights, config built from the registry's facts in {folder}",
    )


# --- the parent: one model x preset -------------------------------------------------------------------


def _check(ok: bool, value, threshold: str, **extra) -> dict:
    return {"status": "PASS" if ok else "FAIL", "value": value, "threshold": threshold, **extra}


def _shared_memory() -> int:
    """Bytes in /dev/shm and in SysV shared-memory segments."""
    total = psutil.disk_usage("/dev/shm").used if os.path.isdir("/dev/shm") else 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        lines = Path("/proc/sysvipc/shm").read_text(encoding="utf-8").splitlines()
        size = lines[0].split().index("size")
        total += sum(int(line.split()[size]) for line in lines[1:] if line.strip())
    return total


def cleanup_check(
    before: Snapshot, monitor: TreeMonitor, gpu: Gpu | None, peak: int = 0, wait_s: float = CLEANUP_WAIT_S
) -> dict:
    """After the child exited: no process of its tree alive, and memory back to the baseline (see the
    constants above); `peak` is the engine's peak host memory in bytes."""
    host_tolerance = max(HOST_CLEANUP_TOLERANCE_GIB, 0.5 * peak / GIB)
    deadline = time.monotonic() + wait_s
    while True:
        survivors = monitor.survivors()
        after = snapshot(gpu)
        unexplained = ((after.used - before.used) - (after.processes_pss - before.processes_pss)) / GIB
        shm = (after.shm - before.shm) / GIB
        gpu_left = (after.gpu_used - before.gpu_used) / GIB if gpu and before.gpu_used is not None else None
        ok = (
            not survivors
            and shm < SHM_TOLERANCE_GIB
            and unexplained < host_tolerance
            and (gpu_left is None or gpu_left < GPU_CLEANUP_TOLERANCE_GIB)
        )
        if ok or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    state = {
        "engine_processes_left": survivors,
        "shared_memory_change_gib": round(shm, 4),
        "host_used_before_gib": round(before.used / GIB, 3),
        "host_used_after_gib": round(after.used / GIB, 3),
        "host_unexplained_gib": round(unexplained, 3),
        "host_tolerance_gib": round(host_tolerance, 3),
    }
    limits = f"no engine process left, shared memory < {SHM_TOLERANCE_GIB} GiB more"
    if gpu_left is not None:
        state.update(
            gpu_used_before_gib=round(before.gpu_used / GIB, 3),
            gpu_used_after_gib=round(after.gpu_used / GIB, 3),
            gpu_left_gib=round(gpu_left, 3),
        )
        value, threshold = (
            round(gpu_left, 3),
            f"< {GPU_CLEANUP_TOLERANCE_GIB} GiB of GPU memory left, {limits}",
        )
    else:
        value = round(unexplained, 3)
        threshold = f"< {round(host_tolerance, 3)} GiB of host memory unaccounted, {limits}"
    return {**_check(ok, value, threshold), "detail": state}


def measure_coverage(
    spec: ModelSpec,
    preset_name: str,
    preset: Preset,
    engine_params: EngineParams,
    coverage: CoverageParams,
    timeout_s: float = TIMEOUT_S,
) -> dict:
    """Measure one model x preset in a fresh process and check the plan's thresholds."""
    run_spec, weights = spec_for_run(spec, coverage.load_format)
    gpu = Gpu.probe()
    before = snapshot(gpu)
    outcome = run_in_fresh_process(
        "qwen_pipe.coverage:measure_child",
        {
            "spec": run_spec.model_dump(),
            "preset": preset.model_dump(),
            "engine": engine_params.model_dump(),
            "coverage": coverage.model_dump(),
        },
        gpu,
        before.gpu_used,
        timeout_s,
    )
    child_max_rss = int(outcome.payload.get("child_max_rss_gib", 0) * GIB) if outcome.status == "ok" else 0
    cleanup = cleanup_check(before, outcome.monitor, gpu, max(outcome.peak_rss, child_max_rss))
    result: dict = {
        "model": spec.name,
        "preset": preset_name,
        "hf_id": spec.hf_id,
        "load_format": coverage.load_format,
        "dummy_weights": coverage.load_format == "dummy",
        "weights": weights,
        "device": "gpu" if gpu else "cpu",
        "wall_seconds": round(outcome.wall_seconds, 2),
        "process_startup_seconds": round(outcome.startup_seconds, 3)
        if outcome.startup_seconds is not None
        else None,
        "child_exitcode": outcome.exitcode,
    }
    if outcome.status != "ok":
        result["error"] = outcome.payload
        reason = f"{outcome.payload['type']}: {outcome.payload['message']}"
        result["checks"] = {"loaded": {"status": "FAIL", "value": None, "reason": reason}, "cleanup": cleanup}
        result["status"] = "FAIL"
        return result
    payload = outcome.payload
    result.update(payload)
    peak_rss = max(outcome.peak_rss, child_max_rss)
    memory = {
        "peak_rss_gib": round(peak_rss / GIB, 3),
        "peak_rss_sampled_gib": round(outcome.peak_rss / GIB, 3),
    }
    if gpu:
        held = outcome.peak_gpu_process or outcome.peak_gpu_device
        memory.update(
            source=f"{gpu.source}: "
            + (
                "memory of the engine's processes"
                if outcome.peak_gpu_process
                else "device memory above the baseline"
            ),
            peak_gpu_process_gib=round(outcome.peak_gpu_process / GIB, 3),
            peak_gpu_device_above_baseline_gib=round(outcome.peak_gpu_device / GIB, 3),
        )
        total, peak = before.gpu_total or 0, held
        if payload["engine"]["engine"] == "vllm":
            memory["note"] = (
                f"vLLM pre-allocates gpu_memory_utilization={preset.gpu_memory_utilization} of the "
                "device for weights, activations and the KV-cache pool"
            )
    elif payload.get("on_gpu"):  # a GPU torch sees but NVML cannot: the framework's own counter
        framework = payload.get("framework_memory") or {}
        total, peak = payload["cuda_total_gib"] * GIB, (framework.get("max_reserved_gib") or 0) * GIB
        memory["source"] = "torch.cuda.max_memory_reserved (no NVML)"
        result["device"] = "gpu"
    else:
        total, peak = before.total, peak_rss
        memory["source"] = "host RSS of the engine's process tree (sampled) and the child's kernel max RSS"
    fraction = peak / total if total else float("nan")
    memory.update(
        peak_gib=round(peak / GIB, 3), device_total_gib=round(total / GIB, 2), fraction=round(fraction, 4)
    )
    result["memory"] = memory
    # Flat copies read by the report, the scaling stage and the performance matrix.
    result["peak_memory_gib"] = memory["peak_gib"]
    result["peak_rss_gib"] = memory["peak_rss_gib"]
    result["peak_gpu_allocated_gib"] = (payload.get("framework_memory") or {}).get("max_allocated_gib")
    result["memory_fraction"] = memory["fraction"]
    result["device_total_gib"] = memory["device_total_gib"]
    result["gpu_utilisation_mean"] = (payload.get("gpu_utilisation") or {}).get("mean")
    result["kv_cache_tokens"] = (payload.get("kv_cache") or {}).get("tokens")
    result["engine_start_seconds"] = round(
        (outcome.startup_seconds or 0.0) + payload["framework_import_seconds"] + payload["load_seconds"], 3
    )
    tokens_per_s = payload["output_tokens_per_s"]
    result["checks"] = {
        "loaded": _check(True, payload["load_seconds"], "loads and generates"),
        "tokens_per_s": _check(
            tokens_per_s > MIN_TOKENS_PER_S, tokens_per_s, f"> {MIN_TOKENS_PER_S} output tokens/s"
        ),
        "memory": _check(
            fraction < MAX_MEMORY_FRACTION,
            round(fraction, 4),
            f"< {MAX_MEMORY_FRACTION} of {result['device']} memory",
        ),
        "cleanup": cleanup,
    }
    result["status"] = "PASS" if all(c["status"] == "PASS" for c in result["checks"].values()) else "FAIL"
    return result


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1], sys.argv[2]))
