"""How much time does qwen-pipe add to the engine? Raw vLLM `LLM.generate` against qwen-pipe's generate stage.

Both sides get the same rendered gsm8k prompts, the same sampling settings and the same `LLM(...)`
arguments (captured from qwen-pipe's own call), each run in a fresh process, alternating A/B, and the
medians are compared. Inside every run the same wrappers time `LLM.__init__` and `LLM.generate`
(engine time); everything else (interpreter start, imports, params and task loading, prompt rendering,
tokenisation, writing results, exit) is fixed cost. On the qwen-pipe side the wrappers also time its
own steps, which shows where its fixed cost goes.

    python benchmarks/bench_overhead.py                          # tiny_large, 200 prompts, 5-shot, 256 tokens
    python benchmarks/bench_overhead.py --model qwen3-0.6b --prompts 32 --max-new-tokens 64

Setup (building the model, fetching gsm8k from the offline mirror, rendering the raw side's prompts)
is not timed. Greedy decoding on both sides: the texts must be identical, and the script checks it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".cache" / "bench_overhead"
TARGET_RATIO = 0.95
TARGET_FIXED_S = 2.0
CPU_ENV = {  # what qwen-pipe's vLLM engine sets on a CPU host; set for both sides alike
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "QWEN_PIPE_PROGRESS": "0",  # no progress bar on either side
}
# Qwen3-0.6B's published config.json (hidden 1024, 28 layers, 16/8 heads of 128, MLP 3072, tied embeddings).
QWEN3_0_6B = {
    "num_hidden_layers": 28,
    "hidden_size": 1024,
    "intermediate_size": 3072,
    "num_attention_heads": 16,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "max_position_embeddings": 40960,
}

# Installed as sitecustomize.py in every measured process (and the processes they spawn): once a module
# below is imported, its functions are wrapped with timers; each process writes its timings at exit.
# Engine time is all time spent inside vLLM's LLM / LLMEngine calls (nested calls counted once).
HOOKS = r"""
import atexit, functools, importlib.util, json, os, sys, time

ENTERED = time.time()
TIMINGS = {"pid": os.getpid(), "argv": sys.argv[:3], "entered": ENTERED}
DEPTH = [0]

def timed(owner, name, key, engine=False):
    original = getattr(owner, name)
    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        outer = not engine or DEPTH[0] == 0
        if engine:
            DEPTH[0] += 1
        begin, started = time.perf_counter(), time.time()
        try:
            return original(*args, **kwargs)
        finally:
            if engine:
                DEPTH[0] -= 1
            if outer:
                TIMINGS[key] = TIMINGS.get(key, 0.0) + time.perf_counter() - begin
                span = TIMINGS.setdefault("spans", {}).setdefault(key, [started, 0.0])
                span[1] = time.time()
                if key == "qp.generate_model":  # a forked worker ends without running atexit
                    write()
    setattr(owner, name, wrapper)

def patch_llm(module):
    init = module.LLM.__init__
    def capture(self, *args, **kwargs):
        TIMINGS["llm_kwargs"] = {k: v for k, v in kwargs.items() if isinstance(v, (str, int, float, bool, type(None)))}
        return init(self, *args, **kwargs)
    module.LLM.__init__ = capture
    timed(module.LLM, "__init__", "engine_load", engine=True)
    for name in ("generate", "enqueue"):
        timed(module.LLM, name, "engine_run", engine=True)

def patch_llm_engine(module):
    for name in ("step", "has_unfinished_requests", "abort_request"):
        timed(module.LLMEngine, name, "engine_run", engine=True)

def patch_functions(*names):
    def patch(module):
        for name in names:
            owner, attr = module, name
            if "." in name:
                cls, attr = name.split(".")
                owner = getattr(module, cls)
            if hasattr(owner, attr):
                timed(owner, attr, "qp." + name)
    return patch

TARGETS = {
    "vllm.entrypoints.llm": patch_llm,
    "vllm.v1.engine.llm_engine": patch_llm_engine,
    "qwen_pipe.config": patch_functions("load_params"),
    "qwen_pipe.cells": patch_functions("read_dataset"),
    "qwen_pipe.isolation": patch_functions("run_isolated"),
    "qwen_pipe.generate": patch_functions("generate_model", "run_generation", "ResponseCache.flush"),
    "qwen_pipe.models.identity": patch_functions("model_identity"),
    "qwen_pipe.prompting": patch_functions("PromptRenderer.render"),
    "qwen_pipe.engines.vllm_engine": patch_functions("VLLMEngine.__init__", "VLLMEngine.close"),
    "qwen_pipe.provenance": patch_functions("provenance"),
    "qwen_pipe.io": patch_functions("write_json", "write_jsonl"),
}

class Hook:
    def find_spec(self, name, path=None, target=None):
        if name not in TARGETS:
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        execute = spec.loader.exec_module
        def exec_module(module):
            begin = time.perf_counter()
            execute(module)
            TIMINGS["import." + name] = time.perf_counter() - begin
            TARGETS[name](module)
        spec.loader.exec_module = exec_module
        return spec

sys.meta_path.insert(0, Hook())

@atexit.register
def write():
    TIMINGS["left"] = time.time()
    folder = os.environ.get("BENCH_TIMINGS_DIR")
    if folder:
        with open(os.path.join(folder, f"{os.getpid()}.json"), "w") as handle:
            json.dump(TIMINGS, handle)
"""

RAW = r"""
import json, sys
from vllm import LLM, SamplingParams

if __name__ == "__main__":
    job = json.load(open(sys.argv[1]))
    prompts = json.load(open(job["prompts"]))
    llm = LLM(**job["llm_kwargs"])
    outputs = llm.generate(prompts, SamplingParams(**job["sampling"]), use_tqdm=False)
    with open(job["texts"], "w") as handle:
        json.dump([o.outputs[0].text for o in outputs], handle)
    del llm
"""


def prepare(model: str, prompts: int, shots: int, max_new_tokens: int, mirror: Path) -> dict:
    """A working folder laid out like the repository (params.yaml, data/), and the raw side's inputs."""
    sys.path.insert(0, str(ROOT))
    from qwen_pipe.config import load_params
    from qwen_pipe.fetch import load_records, write_dataset
    from qwen_pipe.generate import generation_settings, pick_samples, prompt_style
    from qwen_pipe.models.tiny import build_tiny_model, tiny_qwen3_architecture
    from qwen_pipe.prompting import PromptRenderer
    from qwen_pipe.tasks.common.registry import get_task

    work = WORK / f"{model}-{prompts}x{shots}shot-{max_new_tokens}"
    (work / "data").mkdir(parents=True, exist_ok=True)
    raw = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    if model in raw["tiny_models"]:
        name, shape = model, raw["tiny_models"][model]
        folder = work / "data" / "models" / name
    elif model == "qwen3-0.6b":
        name, shape = "qwen3_0.6b", {**QWEN3_0_6B, "seed": 0}
        folder = WORK / "models" / name
        arch = tiny_qwen3_architecture(**QWEN3_0_6B)
        raw["model_registry"] = {
            name: {
                "name": name,
                "hf_id": str(folder),
                "family": "qwen3",
                "nominal_size": "0.6B",
                "size_class": "small",
                "parameters": arch.parameter_count(),
                "architecture": arch.model_dump(),
                "chat": True,
                "supports_thinking": True,
            }
        }
    else:
        sys.exit(f"unknown model {model!r}: use one of {', '.join(raw['tiny_models'])} or qwen3-0.6b")
    if not (folder / "model.safetensors").is_file():
        print(f"building {name} (random weights) in {folder}", file=sys.stderr)
        build_tiny_model(folder, **{k: v for k, v in shape.items() if k != "size_class"})
    raw["run"] = {**raw["run"], "models": [name], "datasets": ["gsm8k"]}
    raw["tasks"] = {"gsm8k": {"sample_limit": prompts, "shots": shots}}
    raw["generate"] = {**raw.get("generate", {}), "max_new_tokens": max_new_tokens, "thinking": False}
    raw["engine"] = {**raw.get("engine", {}), "name": "vllm", "enforce_eager": True}
    (work / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    params = load_params(work / "params.yaml")
    spec = params.model(name)
    if model in raw["tiny_models"]:
        spec = spec.model_copy(update={"hf_id": str(folder)})
    task = get_task("gsm8k", shots=shots)
    records, info = load_records(task, "mirror", mirror)
    write_dataset(records, info, work / "data" / "datasets")
    samples = pick_samples(params, "gsm8k", records)
    style = prompt_style(params, spec)
    renderer = PromptRenderer(spec)
    texts = [renderer.render(task.prompt(s, style), style) for s in samples]
    (work / "prompts.json").write_text(json.dumps(texts), encoding="utf-8")
    sampling = generation_settings(params, spec, params.generate.presets[0]).sampling_for(
        task.sampling(style)
    )
    return {
        "work": work,
        "model": name,
        "prompts": len(texts),
        "sampling": {
            "max_tokens": sampling.max_new_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "top_k": sampling.top_k if sampling.top_k > 0 else -1,
            "presence_penalty": sampling.presence_penalty,
            "stop": list(sampling.stop) or None,
            "seed": sampling.seed,
        },
    }


def run_side(side: str, setup: dict, llm_kwargs: dict | None) -> dict:
    """One fresh run of one side; its wall time, engine time and the timed steps of every process."""
    work = setup["work"]
    hooks, timings_dir = work / "hooks", work / "timings"
    hooks.mkdir(exist_ok=True)
    (hooks / "sitecustomize.py").write_text(HOOKS, encoding="utf-8")
    (hooks / "raw_vllm.py").write_text(RAW, encoding="utf-8")
    shutil.rmtree(timings_dir, ignore_errors=True)
    timings_dir.mkdir()
    if side == "qwen-pipe":  # its response cache would answer a rerun without the engine
        for folder in ("data/generations", "data/cache"):
            shutil.rmtree(work / folder, ignore_errors=True)
    job = work / "raw_job.json"
    job.write_text(
        json.dumps(
            {
                "prompts": str(work / "prompts.json"),
                "texts": str(work / "raw_texts.json"),
                "sampling": setup["sampling"],
                "llm_kwargs": llm_kwargs,
            }
        ),
        encoding="utf-8",
    )
    if side == "raw":
        command = [sys.executable, str(hooks / "raw_vllm.py"), str(job)]
    else:
        command = [
            sys.executable,
            str(ROOT / "stages" / "generate.py"),
            "--model",
            setup["model"],
            "--preset",
            "balanced",
            "--dataset",
            "gsm8k",
        ]
    env = {
        **os.environ,
        **CPU_ENV,
        "PYTHONPATH": os.pathsep.join([str(hooks), str(ROOT)]),
        "BENCH_TIMINGS_DIR": str(timings_dir),
        "VLLM_CACHE_ROOT": str(work / ".cache" / "vllm"),
        "TORCHINDUCTOR_CACHE_DIR": str(work / ".cache" / "inductor"),
    }
    spawned, started = time.time(), time.perf_counter()
    done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, check=False)
    total = time.perf_counter() - started
    if done.returncode != 0 or "FAILED" in done.stderr:
        sys.exit(f"{side} run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    processes = sorted(
        (json.loads(p.read_text(encoding="utf-8")) for p in timings_dir.glob("*.json")),
        key=lambda t: t["entered"],
    )
    steps: dict[str, float] = {}
    for timings in processes:
        for key, value in timings.items():
            if key.startswith(("engine_", "qp.", "import.")):
                steps[key] = steps.get(key, 0.0) + value
    engine = steps.get("engine_load", 0.0) + steps.get("engine_run", 0.0)
    kwargs = next((t["llm_kwargs"] for t in processes if "llm_kwargs" in t), None)
    timeline = [  # seconds since the spawn of the top process: when each process and each timed step ran
        {
            "pid": t["pid"],
            "argv": " ".join(t["argv"])[-60:],
            "entered": round(t["entered"] - spawned, 3),
            "left": round(t["left"] - spawned, 3),
            "spans": {
                k: [round(a - spawned, 3), round(b - spawned, 3)] for k, (a, b) in t.get("spans", {}).items()
            },
        }
        for t in processes
    ]
    return {
        "side": side,
        "total_s": total,
        "engine_s": engine,
        "engine_load_s": steps.get("engine_load", 0.0),
        "engine_run_s": steps.get("engine_run", 0.0),
        "fixed_s": total - engine,
        "processes": len(processes),
        "interpreter_start_s": processes[0]["entered"] - spawned,
        "exit_s": time.time() - max(t["left"] for t in processes),
        "steps": {k: v for k, v in steps.items() if not k.startswith("engine_")},
        "llm_kwargs": kwargs,
        "timeline": timeline,
    }


def texts_match(setup: dict) -> bool:
    work = setup["work"]
    raw = json.loads((work / "raw_texts.json").read_text(encoding="utf-8"))
    records = [
        json.loads(line)
        for line in (work / "data/generations" / setup["model"] / "balanced" / "gsm8k.jsonl").open()
    ]
    ours = {r["id"]: r["responses"][0]["text"] for r in records}
    prompts = {r["id"]: r["responses"][0]["prompt"] for r in records}
    rendered = json.loads((work / "prompts.json").read_text(encoding="utf-8"))
    by_prompt = dict(zip(rendered, raw, strict=True))
    return all(by_prompt.get(prompts[i]) == text for i, text in ours.items())


def median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs if key in r)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model",
        default="tiny_large",
        help="a tiny model of params.yaml (tiny_large generates full-length answers; tiny_small stops "
        "after two tokens) or qwen3-0.6b (random weights, Qwen3-0.6B's shape)",
    )
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--shots", type=int, default=5)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3, help="measured A/B pairs, after one warm-up pair")
    parser.add_argument(
        "--mirror",
        type=Path,
        default=Path(os.environ.get("QWEN_PIPE_DATA_DIR") or ROOT.parent / "shared" / "datasets"),
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    setup = prepare(args.model, args.prompts, args.shots, args.max_new_tokens, args.mirror)
    print(
        f"{args.model}: {setup['prompts']} gsm8k prompts, {args.shots}-shot, {args.max_new_tokens} new tokens; "
        f"warm-up pair, then {args.repeats} alternating pairs",
        file=sys.stderr,
    )
    warm = run_side("qwen-pipe", setup, None)  # also captures qwen-pipe's LLM(...) arguments
    llm_kwargs = warm["llm_kwargs"]
    run_side("raw", setup, llm_kwargs)
    identical = texts_match(setup)
    runs: dict[str, list[dict]] = {"raw": [], "qwen-pipe": []}
    for repeat in range(args.repeats):
        for side in ("raw", "qwen-pipe") if repeat % 2 == 0 else ("qwen-pipe", "raw"):
            result = run_side(side, setup, llm_kwargs)
            runs[side].append(result)
            print(
                f"  {side:9s} total {result['total_s']:6.2f} s  engine {result['engine_s']:6.2f} s  "
                f"fixed {result['fixed_s']:5.2f} s",
                file=sys.stderr,
            )
    keys = [
        "total_s",
        "engine_s",
        "engine_load_s",
        "engine_run_s",
        "fixed_s",
        "interpreter_start_s",
        "exit_s",
    ]
    summary: dict = {}
    for side, results in runs.items():
        summary[side] = {k: round(median(results, k), 3) for k in keys}
        step_names = sorted({k for r in results for k in r["steps"]})
        summary[side]["steps"] = {
            k: round(statistics.median(r["steps"].get(k, 0.0) for r in results), 3) for k in step_names
        }
        summary[side]["processes"] = results[0]["processes"]
    for side, results in runs.items():  # the run with the median total, step by step
        typical = sorted(results, key=lambda r: r["total_s"])[len(results) // 2]
        summary[side]["timeline_of_median_run"] = typical["timeline"]
    raw, ours = summary["raw"], summary["qwen-pipe"]
    ratio = raw["total_s"] / ours["total_s"]
    extra_fixed = ours["fixed_s"] - raw["fixed_s"]
    # Both sides make the same engine calls (same arguments, same texts out), so engine time differs only by
    # noise from other programs; the ratio at the pooled median engine time isolates qwen-pipe's own cost.
    engine = statistics.median(r["engine_s"] for results in runs.values() for r in results)
    ratio_equal_engine = (engine + raw["fixed_s"]) / (engine + ours["fixed_s"])
    report = {
        "model": args.model,
        "workload": {
            "prompts": setup["prompts"],
            "shots": args.shots,
            "max_new_tokens": args.max_new_tokens,
            "sampling": setup["sampling"],
        },
        "llm_kwargs": llm_kwargs,
        "repeats": args.repeats,
        "identical_texts": identical,
        "raw": raw,
        "qwen_pipe": ours,
        "ratio_raw_over_qwen_pipe": round(ratio, 4),
        "engine_ratio": round(raw["engine_s"] / ours["engine_s"], 4),
        "pooled_engine_s": round(engine, 3),
        "ratio_at_equal_engine_time": round(ratio_equal_engine, 4),
        "qwen_pipe_extra_fixed_s": round(extra_fixed, 3),
        "targets": {"ratio": f">= {TARGET_RATIO}", "extra_fixed_s": f"< {TARGET_FIXED_S}"},
        "meets_targets": min(ratio, ratio_equal_engine) >= TARGET_RATIO and extra_fixed < TARGET_FIXED_S,
        "runs": runs,
    }
    print(json.dumps({k: v for k, v in report.items() if k != "runs"}, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
