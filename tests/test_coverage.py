"""Coverage: the fixed workload, dummy-weight folders from the registry, the fresh-process runner with its
memory sampling and cleanup check, and the whole measurement on the tiny model (transformers and vLLM)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from support import ROOT, qwen_pipe

HERE = Path(__file__).parent
CHECKS = {"loaded", "tokens_per_s", "memory", "cleanup"}


# --- targets for run_in_fresh_process, imported from this module in a fresh interpreter ---


def hold_memory(mib: int) -> dict:
    block = bytearray(mib * 2**20)
    block[::4096] = b"x" * len(block[::4096])  # touch every page so it is resident
    time.sleep(1.0)  # long enough for the parent's sampler (every 0.1 s)
    return {"held": len(block)}


def leave_orphan() -> dict:
    orphan = subprocess.Popen(["sleep", "60"], start_new_session=True)
    time.sleep(0.5)  # the parent's sampler sees it in the tree
    return {"pid": orphan.pid}


def leave_shared_memory(path: str) -> dict:
    Path(path).write_bytes(b"\0" * 100 * 2**20)
    return {}


def fail() -> dict:
    print("engine says: about to fail", flush=True)
    raise ValueError("this target fails")


def chatty(lines: int) -> dict:
    for i in range(lines):
        print(f"engine line {i}", flush=True)
    return {}


def die() -> dict:
    os._exit(3)


def die_loudly(lines: int) -> dict:
    chatty(lines)
    os._exit(3)


@pytest.fixture
def importable_tests(monkeypatch):
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(HERE), str(ROOT), os.environ.get("PYTHONPATH", "")])
    )


def test_isolated_run_sees_the_child_memory_and_its_cleanup(importable_tests):
    from qwen_pipe.coverage import cleanup_check
    from qwen_pipe.measure.memory import snapshot
    from qwen_pipe.measure.process import run_in_fresh_process

    before = snapshot(None)
    outcome = run_in_fresh_process("test_coverage:hold_memory", {"mib": 300}, None)
    assert outcome.status == "ok" and outcome.payload == {"held": 300 * 2**20}
    assert outcome.exitcode == 0
    assert outcome.peak_rss >= 300 * 2**20  # sampled from the parent, whole process tree
    assert outcome.startup_seconds is not None and outcome.startup_seconds >= 0
    assert outcome.monitor.seen  # the child's pid was recorded
    check = cleanup_check(before, outcome.monitor, None)
    assert check["status"] == "PASS", check
    assert check["detail"]["engine_processes_left"] == []


def test_cleanup_fails_for_surviving_processes_and_shared_memory(importable_tests, tmp_path):
    from qwen_pipe.coverage import cleanup_check
    from qwen_pipe.measure.memory import snapshot
    from qwen_pipe.measure.process import run_in_fresh_process

    before = snapshot(None)
    outcome = run_in_fresh_process("test_coverage:leave_orphan", {}, None)
    orphan = outcome.payload["pid"]
    try:
        check = cleanup_check(before, outcome.monitor, None, wait_s=0)
        assert check["status"] == "FAIL" and check["detail"]["engine_processes_left"] == [orphan]
    finally:
        os.kill(orphan, signal.SIGKILL)
    if not Path("/dev/shm").is_dir():
        return
    segment = Path("/dev/shm") / f"qwen-pipe-test-{os.getpid()}"
    before = snapshot(None)
    outcome = run_in_fresh_process("test_coverage:leave_shared_memory", {"path": str(segment)}, None)
    try:
        check = cleanup_check(before, outcome.monitor, None, wait_s=0)
        assert check["status"] == "FAIL" and check["detail"]["shared_memory_change_gib"] >= 0.09
    finally:
        segment.unlink()


def test_isolated_run_reports_failures_and_deaths(importable_tests):
    from qwen_pipe.measure.process import run_in_fresh_process

    failed = run_in_fresh_process("test_coverage:fail", {}, None)
    assert failed.status == "error" and failed.payload["type"] == "ValueError"
    assert "this target fails" in failed.payload["message"]
    died = run_in_fresh_process("test_coverage:die", {}, None)
    assert died.status == "error" and died.payload["type"] == "ChildDied" and died.exitcode == 3


def test_workload_is_fixed_distinct_and_fresh_per_tag(tiny_model_dir):
    from transformers import AutoTokenizer

    from qwen_pipe.measure.engine_timing import workload

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    first, again = workload(tokenizer, 8, 64, "a"), workload(tokenizer, 8, 64, "a")
    assert first == again and len(set(first)) == 8
    other = workload(tokenizer, 8, 64, "b")
    assert not {p[:12] for p in first} & {p[:12] for p in other}  # no shared prefix between passes
    lengths = [len(tokenizer.encode(p, add_special_tokens=False)) for p in first]
    assert all(60 <= n <= 80 for n in lengths), lengths


def test_child_output_goes_to_the_log_and_a_failure_shows_it(importable_tests, tmp_path, capfd, monkeypatch):
    from qwen_pipe.measure.process import LOG_TAIL_LINES, run_in_fresh_process

    monkeypatch.delenv("QWEN_PIPE_VERBOSE", raising=False)
    log = tmp_path / "logs" / "coverage@m-p.log"
    outcome = run_in_fresh_process("test_coverage:chatty", {"lines": 3}, None, log=log)
    assert outcome.status == "ok" and outcome.log == log
    assert log.read_text().splitlines() == ["engine line 0", "engine line 1", "engine line 2"]
    assert "engine line" not in capfd.readouterr().err  # quiet by default
    monkeypatch.setenv("QWEN_PIPE_VERBOSE", "1")
    run_in_fresh_process("test_coverage:chatty", {"lines": 2}, None, log=log)
    assert "engine line 1" in capfd.readouterr().err and log.read_text().count("\n") == 2  # rewritten
    monkeypatch.setenv("QWEN_PIPE_VERBOSE", "0")
    failed = run_in_fresh_process("test_coverage:fail", {}, None, log=log)
    err = capfd.readouterr().err
    assert failed.status == "error" and str(log) in err
    assert "engine says: about to fail" in err and "ValueError: this target fails" in err  # with the trace
    run_in_fresh_process("test_coverage:chatty", {"lines": LOG_TAIL_LINES + 50}, None, log=log)
    assert capfd.readouterr().err == ""
    died = run_in_fresh_process("test_coverage:die_loudly", {"lines": LOG_TAIL_LINES + 50}, None, log=log)
    err = capfd.readouterr().err
    assert died.payload["type"] == "ChildDied"
    assert f"the last {LOG_TAIL_LINES} of {LOG_TAIL_LINES + 50} lines of {log}" in err
    assert (
        "engine line 49\n" not in err
        and "engine line 50\n" in err
        and f"engine line {LOG_TAIL_LINES + 49}" in err
    )


def test_summary_line_has_the_numbers_and_the_log():
    from qwen_pipe.coverage import summary_line

    checks = {name: {"status": "PASS", "value": 1} for name in CHECKS}
    doc = {
        "model": "tiny_small",
        "preset": "balanced",
        "status": "FAIL",
        "device": "cpu",
        "load_seconds": 7.76,
        "output_tokens_per_s": 5339.0,
        "peak_memory_gib": 2.11,
        "memory_fraction": 0.0898,
        "checks": {**checks, "tokens_per_s": {"status": "FAIL", "value": 50.0}},
    }
    line = summary_line(doc)
    assert line.startswith(
        "tiny_small x balanced: FAIL: load 7.76 s, 5,339 tokens/s, peak 2.11 GiB (9.0% of cpu"
    )
    assert "checks 3/4 PASS (FAIL: tokens_per_s)" in line and "coverage@tiny_small-balanced.log" in line
    assert "\n" not in line
    died = {
        "model": "m",
        "preset": "p",
        "status": "FAIL",
        "error": {"type": "ChildDied"},
        "checks": {"loaded": {"status": "FAIL", "value": None, "reason": "ChildDied: exit code -9"}},
    }
    assert "not loaded: ChildDied: exit code -9, checks 0/1 PASS" in summary_line(died)


@pytest.mark.parametrize("name", ["qwen3_8b", "qwen3_14b", "qwen2.5_8b", "qwen2.5_14b"])
def test_dummy_folder_has_the_registry_architecture(name, tmp_path):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from qwen_pipe.measure.dummy_weights import dummy_model_dir
    from qwen_pipe.models.registry import BUILTIN_MODELS

    spec = BUILTIN_MODELS[name]
    folder = dummy_model_dir(spec, tmp_path)
    assert folder is not None and not list(folder.glob("*.safetensors"))  # config and tokenizer only
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder))
    assert sum(p.numel() for p in model.parameters()) == spec.parameters
    assert len(AutoTokenizer.from_pretrained(folder)) == 151_669


def test_dummy_folder_only_where_needed(tiny_model_dir, tmp_path):
    from qwen_pipe.measure.dummy_weights import dummy_model_dir, spec_for_run
    from qwen_pipe.models.registry import BUILTIN_MODELS

    local = BUILTIN_MODELS["qwen3_8b"].model_copy(update={"hf_id": str(tiny_model_dir)})
    assert dummy_model_dir(local, tmp_path) is None  # already a folder with a config
    assert dummy_model_dir(BUILTIN_MODELS["qwen_8b"], tmp_path) is None  # Qwen-1: remote code, from the hub
    spec, weights = spec_for_run(BUILTIN_MODELS["qwen3_8b"], "auto")
    assert spec.hf_id == "Qwen/Qwen3-8B" and weights.startswith("checkpoint")


def tiny_run_folder(tmp_path: Path, tiny_model_dir: Path, engine: str) -> Path:
    """A working folder laid out like the repository, with a small coverage workload."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    params["engine"] = {**params["engine"], "name": engine}
    params["coverage"] = {"prompts": 4, "prompt_tokens": 32, "max_new_tokens": 8, "load_format": "auto"}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    (tmp_path / "data" / "models").mkdir(parents=True)
    (tmp_path / "data" / "models" / "tiny_small").symlink_to(tiny_model_dir)
    return tmp_path


def assert_coverage_document(doc: dict, engine: str) -> None:
    assert doc["status"] in {"PASS", "FAIL"} and set(doc["checks"]) == CHECKS
    for name, check in doc["checks"].items():
        assert check["status"] in {"PASS", "FAIL"} and check["value"] is not None, name
    assert doc["checks"]["loaded"]["status"] == "PASS"
    assert doc["checks"]["cleanup"]["status"] == "PASS", doc["checks"]["cleanup"]
    assert doc["engine"]["engine"] == engine and doc["device"] == "cpu"
    assert doc["workload"]["prompts"] == 4 and doc["workload"]["output_tokens"] == 4 * 8
    assert doc["output_tokens_per_s"] > 0 and doc["prefill_tokens_per_s"] > 0
    for key in ("batch", "single"):
        assert doc["latency"][key]["time_to_first_token_s"] > 0
    assert doc["load_seconds"] > 0 and doc["engine_start_seconds"] >= doc["load_seconds"]
    assert doc["peak_rss_gib"] > 0.1 and 0 < doc["memory_fraction"] < 1
    assert doc["memory_fraction"] == doc["checks"]["memory"]["value"]
    assert doc["gpu_utilisation"] is None  # no GPU here


def test_coverage_of_the_tiny_model_with_transformers(tmp_path, tiny_model_dir):
    folder = tiny_run_folder(tmp_path, tiny_model_dir, "transformers")
    done = qwen_pipe(
        "coverage",
        "--models",
        "tiny_small",
        "--presets",
        "balanced",
        "--output-dir",
        "out",
        "--json",
        cwd=folder,
        env={"PYTHONPATH": str(ROOT), "QWEN_PIPE_LOG_DIR": "logs"},
    )
    assert done.returncode in (0, 2), done.stderr[-3000:]  # 2: a check FAILed (timing is not asserted here)
    [doc] = json.loads(done.stdout)
    assert_coverage_document(doc, "transformers")
    assert doc["kv_cache"] is None  # transformers reports no KV-cache capacity
    measured = json.loads((folder / "out/tiny_small/balanced.json").read_text())
    info = json.loads((folder / "out/run-info/tiny_small/balanced.run.json").read_text())
    assert measured | info == doc  # the metrics file holds the measurements; the sidecar what ran and how
    assert "engine" in info and "engine" not in measured and "output_tokens_per_s" in measured
    matrix = json.loads((folder / "out/performance.json").read_text())
    assert matrix["rows"][0]["output_tokens_per_s"] == doc["output_tokens_per_s"]
    assert (folder / "out/performance_matrix.png").read_bytes()[:4] == b"\x89PNG"
    assert (folder / "logs/coverage@tiny_small-balanced.log").is_file()  # the engine's output


@pytest.mark.slow
def test_coverage_stage_with_vllm_and_dummy_weights(tmp_path, tiny_model_dir):
    folder = tiny_run_folder(tmp_path, tiny_model_dir, "vllm")
    done = qwen_pipe(
        "coverage",
        "--models",
        "tiny_small",
        "--presets",
        "memory_optimized",
        "--load-format",
        "dummy",
        "--output-dir",
        "out",
        "--json",
        cwd=folder,
        env={"PYTHONPATH": str(ROOT), "QWEN_PIPE_LOG_DIR": "logs", "QWEN_PIPE_VERBOSE": "0"},
    )
    [doc] = json.loads(done.stdout)
    assert_coverage_document(doc, "vllm")
    log = (folder / "logs/coverage@tiny_small-memory_optimized.log").read_text()
    assert "INFO" in log and "INFO" not in done.stderr  # vLLM's logs go to the file, not the console
    assert doc["dummy_weights"] is True and doc["engine"]["args"]["load_format"] == "dummy"
    assert doc["kv_cache"]["tokens"] > 0 and doc["kv_cache_tokens"] == doc["kv_cache"]["tokens"]
    assert doc["engine"]["args"]["not_supported_on_cpu"] == {"kv_cache_dtype": "fp8", "quantization": "fp8"}


def test_validate_only_loads_nothing():
    done = qwen_pipe(
        "coverage", "--models", "qwen3_8b,qwen_14b", "--presets", "all", "--validate-only", "--json"
    )
    rows = json.loads(done.stdout)
    assert {(r["model"], r["preset"]) for r in rows} == {
        (m, p) for m in ("qwen3_8b", "qwen_14b") for p in ("balanced", "performance", "memory_optimized")
    }
    assert all(r["status"] in {"PASS", "FAIL"} and r["memory"]["total_gib"] > 0 for r in rows)
    assert done.returncode == (2 if any(r["status"] == "FAIL" for r in rows) else 0)


def test_coverage_bad_input_is_one_line():
    done = qwen_pipe("coverage", "--models", "tiny_small", "--presets", "warp", "--validate-only")
    assert done.returncode == 2 and "unknown preset 'warp'" in done.stderr and "Traceback" not in done.stderr
    done = qwen_pipe("coverage", "--models", "tiny_small", "--load-format", "fast")
    assert done.returncode == 2 and "unknown load format" in done.stderr
