"""The report: Markdown whose every number is read from the metrics files (never computed anew here)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from qwen_pipe.console import fmt
from qwen_pipe.io import read_json, read_json_tree
from qwen_pipe.published import Z95, compare_published, protocol

METRICS = Path("metrics")
REPORT_DIR = Path("reports")  # figures are linked relative to it
MAX_ERROR_RATE = 0.05  # the plan's bound on failed cells and requests per run
MAX_TRUNCATION_RATE = 0.01  # a cell above this is flagged: its score counts cut-off answers


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(c) if not isinstance(c, str) else c for c in row) + " |" for row in rows]
    return lines


def load_metrics(root: Path = METRICS, run: RunCells | None = None) -> dict:
    """The metrics documents the pipeline wrote, by stage; with `run`, only the cells of that run.

    DVC leaves the files of cells a run no longer has (a preset or model taken out of params.yaml) where
    they were: they are listed under `stale` and never counted or shown as results.
    """
    optional = {
        name: root / f"{name}.json" for name in ("validate", "scaling", "performance", "cost_scaling")
    }
    evals, coverage = read_json_tree(root / "eval", depth=3), read_json_tree(root / "coverage")
    stale: list[str] = []
    if run is not None:
        evals, stale_eval = _keep(evals, run.models, run.generate_presets, run.datasets)
        coverage, stale_coverage = _keep(coverage, run.models, run.coverage_presets)
        stale = [*(f"eval/{c}" for c in stale_eval), *(f"coverage/{c}" for c in stale_coverage)]
    return {
        "eval": evals,
        "coverage": coverage,
        "stale": stale,
        **{name: read_json(path) if path.is_file() else None for name, path in optional.items()},
    }


@dataclass(frozen=True)
class RunCells:
    """What a run evaluates: params `run.models`, `generate.presets`, `run.datasets` and `run.presets`."""

    models: list[str]
    generate_presets: list[str]
    datasets: list[str]
    coverage_presets: list[str]


def _keep(tree: dict, *levels: list[str]) -> tuple[dict, list[str]]:
    """The part of a nested {a: {b: ...}} tree whose keys are in `levels`, and the paths of the rest."""
    kept: dict = {}
    dropped: list[str] = []
    for key, value in tree.items():
        if key not in levels[0]:
            dropped.append(key)
        elif len(levels) == 1:
            kept[key] = value
        else:
            inner, lost = _keep(value, *levels[1:])
            kept[key] = inner
            dropped += [f"{key}/{path}" for path in lost]
    return kept, dropped


def readiness(metrics: dict) -> list[dict]:
    """The plan's go/no-go checks, each with the measured number behind it."""
    checks = []
    validate = metrics.get("validate")
    if validate:
        checks.append(
            {
                "check": "configurations validated",
                "value": f"{validate['passed']}/{validate['configurations']} PASS",
                "status": "PASS" if validate["failed"] == 0 else "FAIL",
            }
        )
    cells = [doc for by_preset in metrics["coverage"].values() for doc in by_preset.values()]
    for name, label in (
        ("loaded", "models load"),
        ("tokens_per_s", "throughput > 100 tokens/s"),
        ("memory", "memory < 80% of the device"),
        ("cleanup", "memory back to baseline after each model"),
    ):
        results = [c["checks"].get(name) for c in cells if c.get("checks")]
        passed = sum(1 for r in results if r and r["status"] == "PASS")
        if cells:
            checks.append(
                {
                    "check": label,
                    "value": f"{passed}/{len(cells)} configurations",
                    "status": "PASS" if passed == len(cells) else "FAIL",
                }
            )
    evals = eval_documents(metrics)
    if evals:
        rate, detail = error_rate(evals)
        checks.append(
            {
                "check": f"error rate < {MAX_ERROR_RATE:.0%}",
                "value": f"{rate:.2%} ({detail})",
                "status": "PASS" if rate < MAX_ERROR_RATE else "FAIL",
            }
        )
    return checks


def eval_documents(metrics: dict) -> list[dict]:
    """Every evaluation cell's metrics document (model -> preset -> dataset in the tree)."""
    return [
        doc
        for by_preset in metrics["eval"].values()
        for cells in by_preset.values()
        for doc in cells.values()
    ]


def error_rate(evals: list[dict]) -> tuple[float, str]:
    """The share of requests that failed, counting every kind: each truncated response, prompt too long,
    sandbox timeout or crash, and every request of a cell that failed as a whole."""
    kinds: dict[str, int] = {}
    requests = 0
    for doc in evals:
        requests += doc.get("requests") or (1 if doc.get("status") == "failed" else 0)
        for kind, count in (doc.get("failed_requests") or {}).items():
            kinds[kind] = kinds.get(kind, 0) + count
    rate = sum(kinds.values()) / requests if requests else 0.0
    failed_cells = sum(1 for d in evals if d.get("status") == "failed")
    parts = [f"{failed_cells}/{len(evals)} cells failed"]
    parts += [f"{count:,} {kind.replace('_', ' ')}" for kind, count in sorted(kinds.items()) if count]
    return rate, f"{', '.join(parts)}; {requests:,} requests"


def failures(metrics: dict) -> list[dict]:
    """Every recorded failure: evaluation cells that produced no result, coverage cells that did not load."""
    out = [d["failure"] for d in eval_documents(metrics) if d.get("status") == "failed"]
    for by_preset in metrics["coverage"].values():
        for doc in by_preset.values():
            if doc.get("error"):
                error = doc["error"]
                out.append(
                    {
                        "stage": "coverage",
                        "model": doc["model"],
                        "preset": doc["preset"],
                        "dataset": None,
                        "error_type": error.get("type"),
                        "message": error.get("message"),
                    }
                )
    return out


def render_markdown(metrics: dict, title: str = "qwen-pipe report") -> str:
    sections = (
        summary_section(metrics, title),
        readiness_section(metrics),
        accuracy_section(metrics),
        truncation_section(metrics),
        published_section(metrics),
        sandbox_section(metrics),
        performance_matrix_section(metrics),
        cost_scaling_section(metrics),
        scaling_section(metrics),
        stale_section(metrics),
        failures_section(metrics),
        configurations_section(metrics),
    )
    return "\n".join(line for section in sections for line in section)


def summary_section(metrics: dict, title: str) -> list[str]:
    """The title, and where the numbers come from: commit, versions, engine, hardware."""
    lines = [f"# {title}", ""]
    doc = next((d for d in eval_documents(metrics) if d.get("status") != "failed"), None)
    if doc:
        prov = doc["provenance"]
        hw = prov["hardware"]
        lines += [
            f"Commit `{prov['git_commit']}`{' (dirty)' if prov['git_dirty'] else ''}, qwen-pipe {prov['qwen_pipe']}, "
            f"engine {doc['engine']['engine']} {doc['engine']['version']}, "
            f"hardware: {hw.get('gpu') or hw.get('cpu')} ({hw.get('gpu_count') or hw.get('cores')} "
            f"{'GPUs' if hw.get('gpu') else 'cores'}).",
            "",
        ]
    return lines


def readiness_section(metrics: dict) -> list[str]:
    rows = [[c["check"], c["value"], c["status"]] for c in readiness(metrics)]
    return ["## Readiness", "", *_table(["check", "measured", "status"], rows), ""]


def _sorted_evals(metrics: dict) -> list[dict]:
    return sorted(eval_documents(metrics), key=lambda d: (d["model"], d.get("preset") or "", d["dataset"]))


def accuracy_section(metrics: dict) -> list[str]:
    """One row per evaluation cell: score, stderr, N, truncations, the protocol it ran under (the document's
    `protocol`, "qwen-pipe" where it has none); a failed cell reads FAILED."""
    evals = _sorted_evals(metrics)
    if not evals:
        return []
    lines = ["## Accuracy", ""]
    if any(d.get("embedded_sample") for d in evals):
        lines += [
            "Datasets marked * are small samples written for the embedded default, not the benchmarks: "
            "never compare them with published numbers.",
            "",
        ]
    rows = []
    for doc in evals:
        cell = [doc["model"], doc.get("preset") or "–"]
        if doc.get("status") == "failed":
            failed = [doc["dataset"], doc["primary_metric"], "FAILED", None, 0, None, None, None]
            rows.append([*cell, *failed, protocol(doc)])
            continue
        rows.append(
            [
                *cell,
                doc["dataset"] + (" *" if doc.get("embedded_sample") else ""),
                doc["primary_metric"],
                doc["score"],
                doc["stderr"],
                doc["n"],
                _truncations(doc),
                doc["shots"],
                "on" if doc.get("thinking") else "off",
                protocol(doc),
            ]
        )
    header = [
        "model",
        "preset",
        "dataset",
        "metric",
        "score",
        "stderr",
        "n",
        "truncated",
        "shots",
        "thinking",
        "protocol",
    ]
    return [*lines, *_table(header, rows), ""]


def truncation_section(metrics: dict) -> list[str]:
    """The cells whose truncation rate is above MAX_TRUNCATION_RATE: their scores count cut-off answers."""
    flagged = [
        f"{doc['model']} x {doc.get('preset')} x {doc['dataset']}"
        for doc in _sorted_evals(metrics)
        if doc.get("status") != "failed" and (doc.get("truncation_rate") or 0) > MAX_TRUNCATION_RATE
    ]
    if not flagged:
        return []
    return [
        f"**Truncation above {MAX_TRUNCATION_RATE:.0%}** in {len(flagged)} cell(s) ({', '.join(flagged)}): "
        "their answers were cut at the output budget or the context limit, so the scores count unfinished "
        "answers. Raise the budget (a long_context preset for thinking runs) or check the model stops.",
        "",
    ]


def published_section(metrics: dict) -> list[str]:
    """Qwen's published scores (qwen_pipe/published.yaml) beside the results that measure them: same model,
    dataset, shots and thinking mode, the qwen protocol, the whole published split (see published.py)."""
    evals = eval_documents(metrics)
    if not evals:
        return []
    comparison = compare_published(evals)
    lines = ["## Published numbers", ""]
    skipped = "; ".join(f"{reason}: {count}" for reason, count in sorted(comparison.skipped.items()))
    if not comparison.rows:
        return [
            *lines,
            "No result under the qwen protocol on a full published split, with the published shots and thinking "
            f"mode: embedded-sample and tiny-model results are never compared (not compared here: {skipped}).",
            "",
        ]
    rows = [
        [
            r["model"],
            r["preset"] or "–",
            r["dataset"],
            r["metric"],
            r["shots"],
            "–" if r["thinking"] is None else ("on" if r["thinking"] else "off"),
            r["published"],
            r["measured"],
            r["delta"],
            "–" if r["delta_low"] is None else f"[{fmt(r['delta_low'])}, {fmt(r['delta_high'])}]",
            "–" if r["outside"] is None else ("**OUTSIDE**" if r["outside"] else "inside"),
            f"{r['published_model']} {r['benchmark']}; {r['source']['table']}",
        ]
        for r in comparison.rows
    ]
    header = [
        "model",
        "preset",
        "dataset",
        "metric",
        "shots",
        "thinking",
        "published",
        "measured",
        "delta",
        "delta 95% interval",
        "published vs measured 95%",
        "published as",
    ]
    lines += [
        f"Delta = measured - published; its interval is measured ± {Z95}·stderr minus published. OUTSIDE: the "
        "published number lies outside the measured 95% interval (look at the prompt, template and extraction "
        "first).",
        "",
        *_table(header, rows),
        "",
    ]
    if skipped:
        lines += [f"Not compared: {skipped}.", ""]
    return lines


def sandbox_section(metrics: dict) -> list[str]:
    """How model-written code ran: one line per sandbox mode, a loud one where there was no isolation."""
    lines: list[str] = []
    sandboxes = {d["sandbox"]["mode"]: d["sandbox"] for d in eval_documents(metrics) if d.get("sandbox")}
    for mode, sandbox in sorted(sandboxes.items()):
        if sandbox.get("warning"):
            lines += [f"**{sandbox['warning']}** ({sandbox.get('why', '')})", ""]
        else:
            lines += [
                f"Model-written code ran in the `{mode}` sandbox ({sandbox.get('tool')}): namespaces "
                f"{sandbox.get('namespaces')}; network {sandbox.get('network')}; {sandbox.get('filesystem')}.",
                "",
            ]
    return lines


def scaling_section(metrics: dict) -> list[str]:
    """Large vs small per family and preset (metrics/scaling.json), then per dataset."""
    scaling = metrics.get("scaling")
    if not scaling or not scaling["pairs"]:
        return []
    rows = [
        [
            p["family"],
            p["preset"],
            p["small"],
            p["large"],
            p["parameters"]["ratio"],
            p["throughput_ratio"],
            p["throughput_efficiency"],
            p["memory_ratio"],
            p["memory_efficiency"],
            p["mean_delta"],
        ]
        for p in scaling["pairs"]
    ]
    header = [
        "family",
        "preset",
        "small",
        "large",
        "parameter ratio",
        "throughput ratio",
        "throughput efficiency",
        "memory ratio",
        "memory efficiency",
        "mean accuracy delta",
    ]
    lines = ["## Scaling (large vs small, per family)", "", *_table(header, rows), ""]
    rows = [
        [
            p["family"],
            p["preset"],
            dataset,
            d["small"],
            d["large"],
            d["delta"],
            d["delta_stderr"],
            d["significant"],
        ]
        for p in scaling["pairs"]
        for dataset, d in sorted(p["datasets"].items())
    ]
    if rows:
        header = ["family", "preset", "dataset", "small", "large", "delta", "delta stderr", "significant"]
        lines += [*_table(header, rows), ""]
    return lines


def stale_section(metrics: dict) -> list[str]:
    """Metrics files of cells the run no longer has (see load_metrics): named, never counted."""
    if not metrics.get("stale"):
        return []
    return [
        f"Not part of this run (left by an earlier configuration, not counted above): "
        f"{', '.join(f'metrics/{path}' for path in metrics['stale'])}.",
        "",
    ]


def failures_section(metrics: dict) -> list[str]:
    failed = failures(metrics)
    if not failed:
        return []
    rows = [
        [
            f["stage"],
            f["model"],
            f.get("preset") or "-",
            f.get("dataset") or "-",
            f["error_type"],
            f["message"],
        ]
        for f in failed
    ]
    return [
        "## Failures",
        "",
        "Recorded and isolated: every other cell's results above are complete.",
        "",
        *_table(["stage", "model", "preset", "dataset", "error", "message"], rows),
        "",
    ]


def configurations_section(metrics: dict) -> list[str]:
    """Every model x preset the validate stage checked, with its memory estimate."""
    validate = metrics.get("validate")
    if not validate:
        return []
    rows = [
        [
            c["model"],
            c["preset"],
            c["status"],
            c["memory"]["total_gib"],
            c["memory"]["budget_gib"],
            "; ".join(c["reasons"]),
        ]
        for c in validate["checks"]
    ]
    header = ["model", "preset", "status", "estimate GiB", "budget GiB", "reasons"]
    return ["## Configurations (validate)", "", *_table(header, rows), ""]


def _truncations(doc: dict) -> str:
    """ "3/20 (15%)": truncated responses of the cell's requests."""
    truncated, requests = doc.get("truncated"), doc.get("requests")
    if truncated is None or not requests:
        return "–"
    return f"{truncated}/{requests:,} ({truncated / requests:.0%})"


def performance_matrix_section(metrics: dict, report_dir: Path = REPORT_DIR) -> list[str]:
    """The performance matrix (metrics/performance.json) and its figure."""
    matrix = metrics.get("performance")
    if not matrix or not matrix.get("rows"):
        return []
    lines = ["## Performance matrix (model x preset)", ""]
    if any(r.get("dummy_weights") for r in matrix["rows"]):
        lines += ["Dummy weights: random weights of the real architecture (throughput and memory only).", ""]
    header = [
        "model",
        "preset",
        "status",
        "gen tok/s",
        "prefill tok/s",
        "TTFT s",
        "TPOT s",
        "peak GiB",
        "memory fraction",
        "GPU util %",
        "load s",
        "engine start s",
        "KV tokens",
    ]
    rows = [
        [
            r["model"],
            r["preset"],
            r["status"],
            r["output_tokens_per_s"],
            r["prefill_tokens_per_s"],
            r["time_to_first_token_s"],
            r["time_per_output_token_s"],
            r["peak_memory_gib"],
            r["memory_fraction"],
            r["gpu_utilisation_mean"],
            r["load_seconds"],
            r["engine_start_seconds"],
            r["kv_cache_tokens"],
        ]
        for r in matrix["rows"]
    ]
    lines += [*_table(header, rows), ""]
    if matrix.get("missing"):
        lines += [f"Not measured: {', '.join(matrix['missing'])}.", ""]
    if matrix.get("figure"):
        lines += [f"![performance matrix]({os.path.relpath(matrix['figure'], report_dir)})", ""]
    return lines


def cost_scaling_section(metrics: dict, report_dir: Path = REPORT_DIR) -> list[str]:
    """The cost-scaling sweep (metrics/cost_scaling.json), its fits and its figure."""
    cost = metrics.get("cost_scaling")
    if not cost or cost.get("status") != "PASS":
        return []
    rows = [
        ["prompts", p["prompts"], p["max_new_tokens"], p["wall_seconds"], p["output_tokens_per_s"]]
        for p in cost["by_prompts"]
    ]
    rows += [
        ["output length", p["prompts"], p["max_new_tokens"], p["wall_seconds"], p["output_tokens_per_s"]]
        for p in cost["by_output_length"]
    ]
    fits = cost["fits"]
    lines = [
        f"## Cost scaling ({cost['model']}, {cost['preset']})",
        "",
        *_table(["sweep", "prompts", "new tokens", "wall s", "gen tok/s"], rows),
        "",
        f"Batching gain (tokens/s at the most prompts over one prompt): {fmt(cost['batching_gain'])}; "
        f"marginal cost per prompt: {fmt(fits['wall_vs_prompts'].get('marginal_seconds_per_prompt'))} s; "
        f"one decode step of the batch: {fmt(fits['wall_vs_output_length'].get('slope'))} s.",
        "",
    ]
    if cost.get("figure"):
        lines += [f"![cost scaling]({os.path.relpath(cost['figure'], report_dir)})", ""]
    return lines
