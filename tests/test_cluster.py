"""Ray as the distributed engine, on a real local Ray cluster (`ray start --head`, 2 CPUs, tiny models on
CPU): the fan-out gives the sequential run's metrics, a later `dvc repro`'s stages find everything done,
a worker killed mid-run costs a retry and nothing is lost or duplicated; bad settings are one line."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from qwen_pipe.cells import PIPELINE, Cell
from qwen_pipe.cluster import _unit, connect, forwarded_env, placement
from qwen_pipe.config import ClusterParams, Params, load_params
from qwen_pipe.errors import QwenPipeError

from support import ROOT, qwen_pipe, require_dev_extra

DATASETS = ["arc_easy", "gsm8k"]  # a log-likelihood dataset, then a generation one
JUDGED = ["mt_bench"]  # judged by tiny_small (log-likelihood verdicts) after generation
PRESETS = ["balanced", "performance"]  # two units of one model


# --- without a cluster ---------------------------------------------------------------------------------


def test_placement_holds_the_gpus_of_one_node_or_lets_vllm_spread_the_model():
    assert placement(1, []) == (0, None)  # no GPUs anywhere: a CPU unit
    assert placement(4, [0.0, 0.0]) == (0, None)
    assert placement(1, [8.0]) == (1, None)
    assert placement(2, [8.0, 8.0]) == (2, None)
    assert placement(16, [8.0, 8.0]) == (0, "ray")  # wider than a node: vLLM's Ray executor
    with pytest.raises(QwenPipeError, match="needs 32 GPUs but the cluster has 16"):
        placement(32, [8.0, 8.0])


def test_secrets_never_travel_to_the_nodes():
    env = {
        "HF_HUB_OFFLINE": "1",
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "QWEN_PIPE_LOG_DIR": "logs",
        "HF_TOKEN": "hf_secret",
        "HF_HUB_TOKEN": "hf_secret",
        "VLLM_API_KEY": "sk-secret",
        "QWEN_PIPE_PASSWORD": "x",
        "OPENAI_API_KEY": "sk-secret",
        "HOME": "/root",
    }
    assert forwarded_env(env) == {
        "HF_HUB_OFFLINE": "1",
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "QWEN_PIPE_LOG_DIR": "logs",
    }


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("nonsense", "is not auto, host:port or ray://host:port"),
        ("127.0.0.1:1", "nothing answers at 127.0.0.1:1"),
        ("ray://127.0.0.1:1", "nothing answers at ray://127.0.0.1:1"),
    ],
)
def test_a_bad_address_is_one_line_at_once(address, message):
    require_dev_extra("ray")
    started = time.monotonic()
    with pytest.raises(QwenPipeError, match=message):
        connect(ClusterParams(address=address))
    assert time.monotonic() - started < 10


def test_a_unit_that_finds_another_checkout_refuses_to_write_there(tmp_path):
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "cluster.token").write_text("someone else's run", encoding="utf-8")
    here = Path.cwd()
    try:
        status, failure = _unit(str(tmp_path), "the driver's token", None, None, print, ("never",))
        missing, _ = _unit(str(tmp_path / "absent"), "the driver's token", None, None, print, ("never",))
    finally:
        os.chdir(here)
    assert status == missing == "error"
    assert "does not see the driver's checkout" in failure["message"]


def test_cluster_commands_without_an_address_say_how_to_set_it(tmp_path):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    for command in (["cluster", "run"], ["cluster", "status"]):
        done = qwen_pipe(*command, cwd=tmp_path)
        assert done.returncode == 2
        assert done.stderr.strip().splitlines() == [
            "error: cluster.address is not set (fix: set cluster.address in params.yaml (auto, or ray://host:10001))"
        ]
        assert "Traceback" not in done.stderr


# --- on a real local cluster ---------------------------------------------------------------------------


RAY_START_FLAGS = ("--include-dashboard=false", "--disable-usage-stats", "--temp-dir")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_cluster():
    """`ray start --head` with 2 CPUs in a folder of its own; every process of it killed afterwards."""
    require_dev_extra("ray")
    ray_cli = str(Path(sys.executable).with_name("ray"))
    folder = tempfile.mkdtemp(prefix="qpray", dir="/tmp")  # Ray's socket paths must stay short
    port = _free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    subprocess.run(
        [ray_cli, "start", "--head", "--num-cpus", "2", "--port", str(port), *RAY_START_FLAGS, folder],
        check=True,
        capture_output=True,
        env=env,
        timeout=180,
    )
    try:
        yield f"127.0.0.1:{port}"
    finally:
        import psutil
        import ray

        ray.shutdown()
        for process in psutil.process_iter(["cmdline"]):
            if any(folder in part for part in process.info["cmdline"] or []):
                process.kill()
        shutil.rmtree(folder, ignore_errors=True)


def _params(address: str | None, datasets: list[str] = DATASETS) -> Params:
    params = load_params(ROOT / "params.yaml")
    data = params.model_dump(by_alias=True)
    data["run"] = {**data["run"], "models": ["tiny_small"], "datasets": datasets}
    data["engine"] = {**data["engine"], "name": "transformers"}
    data["generate"] = {**data["generate"], "presets": PRESETS, "max_new_tokens": 12, "flush_every": 1}
    data["tasks"] = {name: {"sample_limit": 2 if name in JUDGED else 3} for name in datasets}
    data["judge"] = {
        **data["judge"],
        "model": "tiny_small",
        "engine": "transformers",
        "verdict": "likelihood",
    }
    data["cluster"] = {"address": address, "max_retries": 2, "num_cpus": 1}
    return Params.model_validate(data)


def _workspace(folder: Path, tiny_model_dir: Path, params: Params) -> Path:
    """What the generate stages read: data/datasets (as the fetch stage writes it) and data/models."""
    from qwen_pipe.fetch import load_records, write_dataset
    from qwen_pipe.tasks.common.registry import task_for
    from qwen_pipe.tasks.common.requests import requests_summary

    for name in params.run.datasets:
        task = task_for(params, name)
        records, info = load_records(task, "embedded", None)
        info.requests = requests_summary(task, records)
        write_dataset(records, info, folder / "data" / "datasets")
    (folder / "data" / "models").mkdir(parents=True)
    (folder / "data" / "models" / "tiny_small").symlink_to(tiny_model_dir)
    return folder


class InFolder:
    def __init__(self, folder: Path):
        self.folder, self.before = folder, Path.cwd()

    def __enter__(self):
        os.chdir(self.folder)

    def __exit__(self, *_):
        os.chdir(self.before)


def _sequential(params: Params) -> None:
    """The generate, score and judge stages one after the other, as `dvc repro` runs them on one machine
    (the engines in this process: the same code their children would run, without a child's start-up)."""
    from qwen_pipe.engines import registry
    from qwen_pipe.generate import generate_pipeline_cells
    from qwen_pipe.judge import judge_pipeline
    from qwen_pipe.score import score_pipeline_cell

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(registry, "in_process", lambda name: True)
        for preset in PRESETS:
            outcomes = generate_pipeline_cells(params, "tiny_small", preset)
            assert not [o for o in outcomes.values() if "failure" in o], outcomes
            for name in params.run.datasets:
                score_pipeline_cell(params.model_dump(by_alias=True), Cell("tiny_small", preset, name))
        judged = judge_pipeline(params)
        assert not [r for r in judged.values() if "failure" in r], judged


def _tree(root: Path) -> dict[str, object]:
    return {str(p.relative_to(root)): json.loads(p.read_text()) for p in sorted(root.rglob("*.json"))}


def _files(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _records(path: Path) -> list[list[dict]]:
    """The responses, without their timings and whether they came from the cache."""
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [
        [{k: v for k, v in r.items() if k not in ("seconds", "cached")} for r in row["responses"]]
        for row in rows
    ]


def _without_logprobs(records: list[list[dict]]) -> list[list[dict]]:
    return [[{k: v for k, v in r.items() if k != "logprob"} for r in row] for row in records]


def _logprobs(records: list[list[dict]]) -> list[float]:
    return [r["logprob"] for row in records for r in row if "logprob" in r]


@pytest.fixture(scope="module")
def sequential_run(tiny_model_dir, tmp_path_factory) -> Path:
    params = _params(None, DATASETS + JUDGED)
    folder = _workspace(tmp_path_factory.mktemp("sequential"), tiny_model_dir, params)
    with InFolder(folder):
        _sequential(params)
    return folder


@pytest.mark.slow
def test_fan_out_gives_the_sequential_metrics_and_leaves_the_stages_nothing_to_do(
    ray_cluster, sequential_run, tiny_model_dir, tmp_path
):
    from qwen_pipe.fanout import fan_out_generation, fan_out_scoring
    from qwen_pipe.generate import generate_pipeline_cells
    from qwen_pipe.judge import judge_pipeline

    params = _params(ray_cluster, DATASETS + JUDGED)
    folder = _workspace(tmp_path, tiny_model_dir, params)
    lines: list[str] = []
    with InFolder(folder):
        generated = fan_out_generation(params, lines.append)
        assert all(generated.values()), lines
        fan_out_scoring(params, generated, lines.append)
        assert not [line for line in lines if "FAILED" in line], lines
        logs = {p: Path(f"logs/generate@tiny_small-{p}.log").read_text() for p in PRESETS}
        assert all(log.count("qwen-pipe: unit started") == 1 for log in logs.values()), logs
        judged = judge_pipeline(params)  # the judge stage: its one unit on the cluster
        assert not [r for r in judged.values() if "failure" in r], judged
        assert Path("logs/judge.log").read_text().count("qwen-pipe: unit started") == 1
        # what `dvc repro` runs next: every generate stage keeps its files, every score comes from the cache
        for preset in PRESETS:
            kept = generate_pipeline_cells(params, "tiny_small", preset)
            assert all(o.get("up_to_date") for o in kept.values()), kept
        scored = _files(Path("data/cache/scores"))
        _sequential(params)
        assert _files(Path("data/cache/scores")) == scored  # nothing scored again: all from the score cache
    for metrics in ("metrics/eval", "metrics/judge"):
        assert _tree(folder / metrics) == _tree(sequential_run / metrics)
    assert _tree(folder / "metrics/judge"), "nothing was judged"
    for preset in PRESETS:
        for name in DATASETS + JUDGED:
            cell = Cell("tiny_small", preset, name)
            here, there = folder / PIPELINE.generation(cell), sequential_run / PIPELINE.generation(cell)
            assert _records(here) == _records(there)


def _ray_unit_pids(name: str) -> list[int]:
    import psutil

    return [
        p.pid for p in psutil.process_iter(["cmdline"]) if f"ray::{name}" in " ".join(p.info["cmdline"] or [])
    ]


@pytest.mark.slow
def test_a_worker_killed_mid_run_costs_a_retry_and_loses_nothing(
    ray_cluster, sequential_run, tiny_model_dir, tmp_path
):
    from qwen_pipe.cache import ChunkStore
    from qwen_pipe.generate import generate_pipeline_cells

    params = _params(ray_cluster)
    folder = _workspace(tmp_path, tiny_model_dir, params)
    first = Cell("tiny_small", "balanced", DATASETS[0])
    result: dict = {}
    with InFolder(folder):
        runner = threading.Thread(
            target=lambda: result.update(generate_pipeline_cells(params, "tiny_small", "balanced"))
        )
        runner.start()
        cache = PIPELINE.response_cache(first)
        deadline = time.monotonic() + 180
        while not (cache.is_dir() and any(cache.iterdir())):  # the first dataset is answered and flushed
            assert time.monotonic() < deadline and runner.is_alive(), "the unit never wrote its cache"
            time.sleep(0.05)
        killed = _ray_unit_pids("_generate_in_child")
        assert killed, "no Ray worker runs the unit"
        for pid in killed:
            os.kill(pid, signal.SIGKILL)
        runner.join(timeout=300)
        log = Path("logs/generate@tiny_small-balanced.log").read_text()
    assert not runner.is_alive()
    assert not [o for o in result.values() if "failure" in o], result
    assert log.count("qwen-pipe: unit started") == 2, log  # the kill cost exactly one retry
    second = Cell("tiny_small", "balanced", DATASETS[1])
    for cell in (first, second):
        retried, sequential = (
            _records(root / PIPELINE.generation(cell)) for root in (folder, sequential_run)
        )
        # every sample and request there, the same texts; a log-likelihood the retry computed in a smaller
        # batch than the sequential run may differ within bf16's rounding (0.0625 at these magnitudes)
        assert _without_logprobs(retried) == _without_logprobs(sequential)
        assert _logprobs(retried) == pytest.approx(_logprobs(sequential), abs=0.13)
        store = ChunkStore(folder / PIPELINE.response_cache(cell))
        entries = store.load()
        lines = sum(len(p.read_text().splitlines()) for p in store.directory.rglob("*") if p.is_file())
        assert lines == len(entries), "an answer was stored twice"
    meta = json.loads((folder / PIPELINE.meta(first)).read_text())
    # what the killed worker had flushed was reused by the retry, the rest answered once
    assert meta["cache"]["hits"] >= 1 and meta["cache"]["hits"] + meta["cache"]["misses"] == meta["requests"]
