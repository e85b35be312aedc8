"""Ray as the distributed engine (docs/cluster.md): a unit of engine work (one model x preset, or the judge)
runs as a Ray task on the cluster instead of in a local child process.

A unit holds `num_gpus` = the GPUs its engine needs (its tensor-parallel size) on one node, so Ray runs as
many units at once as the cluster has GPUs for, each in a fresh worker process (max_calls=1: a finished
engine's memory goes with its process). A unit wider than any node gets no GPUs of its own: vLLM then
places its workers over the nodes with Ray as its distributed executor. A worker that dies (a node lost,
an out-of-memory kill) costs a retry of its unit; what it had answered is in the response cache already.

The checkout must be at the same path on every node (a shared filesystem, or one multi-GPU host): units
read the datasets and write their results and caches there, exactly where a local run would, so DVC stays
the ledger. A unit checks this before it starts and fails with one line if it finds another checkout.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from qwen_pipe.config import ClusterParams
from qwen_pipe.engines.vllm_engine import EXECUTOR_ENV
from qwen_pipe.errors import QwenPipeError
from qwen_pipe.isolation import Outcome, call_reporting, run_isolated

# Environment variables the units get from the driver (settings, never secrets: runtime_env is stored in
# the cluster's control store). A node's own environment provides the rest (HF_TOKEN included).
FORWARDED_PREFIXES = ("HF_HUB_", "HF_HOME", "TRANSFORMERS_", "VLLM_", "QWEN_PIPE_", "TOKENIZERS_", "OMP_")
SECRET_WORDS = ("TOKEN", "KEY", "SECRET", "PASSWORD")
TOKEN_FILE = Path("logs/cluster.token")  # proves to a unit that it found the driver's own checkout


def _ray():
    try:
        import ray
    except ImportError:
        raise QwenPipeError(
            "cluster.address is set but Ray is not installed", "pip install 'qwen-pipe[cluster]' (or ray)"
        ) from None
    return ray


def forwarded_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    environ = dict(os.environ if environ is None else environ)
    return {
        name: value
        for name, value in environ.items()
        if name.startswith(FORWARDED_PREFIXES) and not any(word in name for word in SECRET_WORDS)
    }


def connect(cluster: ClusterParams) -> str:
    """Join the cluster (once per process); returns the token a unit finds in the driver's checkout."""
    ray = _ray()
    with _CONNECTING:  # units start from several threads (fanout.py)
        return _connect(ray, cluster)


_CONNECTING = threading.Lock()


def _connect(ray, cluster: ClusterParams) -> str:
    if not TOKEN_FILE.is_file():
        TOKEN_FILE.parent.mkdir(parents=True, exist_ok=True)
        TOKEN_FILE.write_text(uuid.uuid4().hex, encoding="utf-8")
    if not ray.is_initialized():
        import qwen_pipe

        _check_reachable(cluster.address)

        try:
            ray.init(
                address=cluster.address,
                namespace="qwen-pipe",
                # the driver's own code runs on every node, whatever version the nodes have installed
                runtime_env={
                    "env_vars": forwarded_env(),
                    "py_modules": [str(Path(qwen_pipe.__file__).parent)],
                },
                log_to_driver=False,
                logging_level="ERROR",
            )
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise QwenPipeError(
                f"cannot join the Ray cluster at {cluster.address}: {str(error).splitlines()[0][:200]}",
                "start it (`ray start --head`) or fix cluster.address in params.yaml",
            ) from None
    return TOKEN_FILE.read_text(encoding="utf-8")


def _check_reachable(address: str | None, timeout_s: float = 5.0) -> None:
    """A host:port that nothing answers on fails at once (Ray itself would wait minutes); `auto` is looked
    up by Ray on this machine."""
    if not address or address == "auto":
        return
    where = address.removeprefix("ray://").rsplit("/", 1)[0]
    host, _, port = where.rpartition(":")
    if not host or not port.isdigit():
        raise QwenPipeError(
            f"cluster.address {address!r} is not auto, host:port or ray://host:port",
            "set cluster.address to auto (a cluster on this machine), host:6379 or ray://host:10001",
        )
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as error:
        raise QwenPipeError(
            f"nothing answers at {address} ({error.strerror or error})",
            "start the cluster (`ray start --head`) or fix cluster.address in params.yaml",
        ) from None


def nodes(cluster: ClusterParams) -> list[dict]:
    """The cluster's live nodes: address, CPUs and GPUs."""
    ray = _ray()
    connect(cluster)
    return [
        {
            "node": n.get("NodeManagerAddress", "?"),
            "cpus": n["Resources"].get("CPU", 0.0),
            "gpus": n["Resources"].get("GPU", 0.0),
        }
        for n in ray.nodes()
        if n.get("Alive")
    ]


def placement(gpus: int, node_gpus: list[float]) -> tuple[float, str | None]:
    """(the GPUs the unit's task holds, vLLM's distributed executor) for an engine needing `gpus` GPUs
    on a cluster whose nodes have `node_gpus`. No GPUs anywhere: a CPU unit (tiny models, tests)."""
    if not any(node_gpus):
        return 0, None
    if gpus <= max(node_gpus):
        return gpus, None  # one node: vLLM's own multiprocessing executor on the task's GPUs
    if gpus > sum(node_gpus):
        raise QwenPipeError(
            f"a unit needs {gpus} GPUs but the cluster has {int(sum(node_gpus))}",
            "lower the preset's tensor_parallel_size or add nodes",
        )
    return 0, "ray"  # wider than a node: vLLM's Ray executor reserves the GPUs over several nodes


def run_unit(
    target: Callable,
    *args,
    cluster: ClusterParams,
    gpus: int,
    log: Path | None = None,
    on_progress: Callable[[object | None], None] | None = None,
) -> Outcome:
    """A unit of engine work needing `gpus` GPUs: a Ray task when cluster.address is set, else a child
    process of this one (isolation.run_isolated). Either way an Outcome, a crash a failure."""
    if cluster.address:
        return run_on_cluster(target, *args, cluster=cluster, gpus=gpus, log=log, on_progress=on_progress)
    return run_isolated(target, *args, log=log, on_progress=on_progress)


def run_on_cluster(
    target: Callable,
    *args,
    cluster: ClusterParams,
    gpus: int,
    log: Path | None = None,
    on_progress: Callable[[object | None], None] | None = None,
    fresh_process: bool = True,
) -> Outcome:
    """`target(*args)` as a Ray task: the same contract as isolation.run_isolated (an Outcome, a crash a
    failure), but on whichever node has the GPUs. `on_progress(None)` ticks while it runs.
    `fresh_process`: a worker of its own, gone afterwards (an engine's memory goes with it); else a
    worker that later units reuse (CPU work: no start-up each time), whose output is not redirected."""
    ray = _ray()
    token = connect(cluster)
    num_gpus, executor = placement(gpus, [n["gpus"] for n in nodes(cluster)])
    task = ray.remote(max_calls=1 if fresh_process else 0)(_unit).options(
        num_cpus=cluster.num_cpus,
        num_gpus=num_gpus,
        max_retries=cluster.max_retries,
        retry_exceptions=False,  # an error of the unit itself is its result; only a lost worker is retried
        name=getattr(target, "__name__", "unit"),
    )
    log_file = str(log.resolve()) if log and fresh_process else None
    reference = task.remote(str(Path.cwd()), token, executor, log_file, target, args)
    while not ray.wait([reference], timeout=0.5)[0]:
        if on_progress is not None:
            on_progress(None)
    try:
        status, payload = ray.get(reference)
    except ray.exceptions.RayError as error:  # the worker died on every try
        message = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
        return Outcome(
            False,
            failure={
                "type": "WorkerCrash",
                "message": f"the Ray worker died {cluster.max_retries + 1} times ({message})",
                "exitcode": None,
                "trace": None,
            },
        )
    if status == "ok":
        return Outcome(True, payload)
    return Outcome(False, failure={**payload, "exitcode": None})


def _unit(
    repo: str, token: str, executor: str | None, log: str | None, target: Callable, args: tuple
) -> tuple[str, object]:
    """On a worker: into the driver's checkout, output to the unit's log, then the target."""
    from qwen_pipe.console import PROGRESS_ENV, capture_output

    try:
        os.chdir(repo)
        found = TOKEN_FILE.read_text(encoding="utf-8")
    except OSError:
        found = None
    if found != token:
        node = os.uname().nodename
        return "error", {
            "type": "QwenPipeError",
            "message": f"node {node} does not see the driver's checkout at {repo} "
            "(fix: put the checkout on a filesystem every node mounts at the same path, see docs/cluster.md)",
            "trace": None,
        }
    if log:
        capture_output(Path(log))
    os.environ[PROGRESS_ENV] = "0"
    if executor:
        os.environ[EXECUTOR_ENV] = executor
    started = time.perf_counter()
    print(f"qwen-pipe: unit started on {os.uname().nodename} (pid {os.getpid()})", flush=True)
    result = call_reporting(target, args, {})
    print(f"qwen-pipe: unit ended after {time.perf_counter() - started:.1f} s", flush=True)
    return result
