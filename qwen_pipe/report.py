"""The report: Markdown whose every number is read from the metrics files (never computed anew here)."""

from __future__ import annotations

import os
from pathlib import Path

from qwen_pipe.console import fmt
from qwen_pipe.published import Z95, compare_published, protocol
from qwen_pipe.results import eval_documents
from qwen_pipe.scoring.paired import SIGNIFICANCE

REPORT_DIR = Path("reports")  # figures are linked relative to it
MAX_TRUNCATION_RATE = 0.01  # a cell above this is flagged: its score counts cut-off answers


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(c) if not isinstance(c, str) else c for c in row) + " |" for row in rows]
    return lines


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


def render_markdown(metrics: dict, analysis: dict | None = None, title: str = "qwen-pipe report") -> str:
    """The report; with `analysis` (reports/analysis.json) its first screen answers the plan's questions,
    then readiness, insights, leaderboard and the paired comparisons, then the detail."""
    analysis = analysis or {}
    sections = (
        summary_section(metrics, title),
        answers_section(analysis),
        readiness_section(analysis),
        insights_section(analysis),
        leaderboard_section(analysis),
        accuracy_section(metrics),
        judge_section(metrics),
        errors_section(analysis),
        truncation_section(metrics),
        published_section(metrics),
        sandbox_section(metrics),
        performance_matrix_section(metrics),
        cost_scaling_section(metrics),
        plan_section(metrics),
        scaling_section(analysis),
        presets_section(analysis),
        stale_section(metrics),
        failures_section(metrics),
        configurations_section(metrics),
    )
    return "\n".join(line for section in sections for line in section)


# The Markdown heading each analysis anchor links to (GitHub's heading slugs).
HEADINGS = {
    "performance": "Performance matrix (model x preset)",
    "leaderboard": "Leaderboard",
    "scaling": "Scaling: large vs small, paired on the same items",
    "presets": "Presets against the baseline preset",
    "readiness": "Readiness",
}


def _slug(heading: str) -> str:
    kept = "".join(c for c in heading.lower() if c.isalnum() or c in " -_")
    return kept.replace(" ", "-")


def answers_section(analysis: dict) -> list[str]:
    """The first screen: the plan's questions in order, each answered, with a link to its detail."""
    if not analysis.get("answers"):
        return []
    lines = ["## At a glance", ""]
    for a in analysis["answers"]:
        link = f" ([detail](#{_slug(HEADINGS[a['anchor']])}))" if a["anchor"] in HEADINGS else ""
        lines.append(f"- **{a['question']}** {a['answer']}{link}")
    return [*lines, ""]


def readiness_section(analysis: dict) -> list[str]:
    readiness = analysis.get("readiness")
    if not readiness:
        return []
    rows = [
        [c["check"], c["value"], c["threshold"], c["status"], c["reason"] or "–"] for c in readiness["checks"]
    ]
    verdict = "READY" if readiness["ready"] else "NOT READY"
    if readiness.get("allowed_unready"):
        verdict += " (carried on: readiness.allow_unready)"
    return [
        f"## {HEADINGS['readiness']}",
        "",
        f"**{verdict}.** The readiness stage fails `dvc repro` on a FAIL unless allowed; SKIP: not applicable here.",
        "",
        *_table(["criterion", "measured", "threshold", "status", "why"], rows),
        "",
    ]


def insights_section(analysis: dict) -> list[str]:
    """Every insight and recommendation, as its rule wrote it (qwen_pipe/insights.py)."""
    if not analysis.get("insights"):
        return []
    lines = ["## Insights and recommendations", ""]
    lines += [f"- {i['text']} (`{i['rule']}`)" for i in analysis["insights"]]
    return [*lines, ""]


def leaderboard_section(analysis: dict) -> list[str]:
    if not analysis.get("leaderboard"):
        return []
    lines = [
        f"## {HEADINGS['leaderboard']}",
        "",
        "Mean accuracy over the datasets every model of the group scored, with its 95% interval; models whose "
        "intervals overlap share a rank.",
        "",
    ]
    for board in analysis["leaderboard"]:
        rows = [
            [
                r["rank"],
                r["model"],
                r["mean"],
                "–" if r["low"] is None else f"[{fmt(r['low'])}, {fmt(r['high'])}]",
                ", ".join(r["tied_with"]) or "–",
            ]
            for r in board["rows"]
        ]
        lines += [
            f"**{board['protocol']} / {board['preset']}** ({', '.join(board['datasets'])})",
            "",
            *_table(["rank", "model", "mean accuracy", "95% interval", "tied with"], rows),
            "",
        ]
    return lines


def errors_section(analysis: dict) -> list[str]:
    errors = analysis.get("errors")
    if not errors or not errors["overall"]["requests"]:
        return []
    rows = [["all", errors["overall"]["rate"], errors["overall"]["failed"], errors["overall"]["requests"]]]
    rows += [[m, e["rate"], e["failed"], e["requests"]] for m, e in errors["by_model"].items()]
    return ["## Error rate", "", *_table(["model", "error rate", "failed requests", "requests"], rows), ""]


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
            failed = [doc["dataset"], doc["primary_metric"], "FAILED", None, "–", 0, None, None, None]
            rows.append([*cell, *failed, protocol(doc)])
            continue
        rows.append(
            [
                *cell,
                doc["dataset"] + (" *" if doc.get("embedded_sample") else ""),
                doc["primary_metric"],
                doc["score"],
                doc["stderr"],
                "–" if doc.get("ci_low") is None else f"[{fmt(doc['ci_low'])}, {fmt(doc['ci_high'])}]",
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
        "95% interval",
        "n",
        "truncated",
        "shots",
        "thinking",
        "protocol",
    ]
    return [*lines, *_table(header, rows), ""]


def judge_documents(metrics: dict) -> list[dict]:
    """Every judge document (metrics/judge merged with its sidecar), by model, preset and dataset."""
    tree = metrics.get("judge") or {}
    docs = [doc for by_preset in tree.values() for cells in by_preset.values() for doc in cells.values()]
    return sorted(docs, key=lambda d: (d["dataset"], d["model"], d.get("preset") or ""))


def _judge_notes(docs: list[dict]) -> list[str]:
    judges = sorted({d["judge"]["description"] for d in docs if d.get("judge")})
    lines = [f"Judge: {', '.join(judges) or 'none recorded'}.", ""]
    if any((d.get("judge") or {}).get("meaningless") for d in docs):
        lines += [
            "**These scores are meaningless**: the judge is a random-weight tiny model. They show that the "
            "judge stage runs end to end, not how good any answer is.",
            "",
        ]
    own = [
        f"{d['model']} x {d.get('preset')} x {d['dataset']}"
        for d in docs
        if (d.get("judge") or {}).get("judges_itself")
    ]
    if own:
        lines += [
            f"**The judge grades its own answers** in {', '.join(own)} (marked *self*): a judge tends to prefer "
            "its own answers, so these cells are not comparable with the others.",
            "",
        ]
    tagged = [
        f"{d['model']} x {d.get('preset')} x {d['dataset']} ({d['answers_with_verdict_tags']})"
        for d in docs
        if d.get("answers_with_verdict_tags")
    ]
    if tagged:
        lines += [
            f"**Answers that carry a verdict tag of their own** (`[[10]]`, `[[B>>A]]`) in {', '.join(tagged)}: "
            "a judge may be led by them; read those judgments in data/judgments before trusting the scores.",
            "",
        ]
    return lines


def _judge_common(doc: dict) -> list:
    failed = sum((doc.get("failed_judgments") or {}).values())
    repeats = doc.get("repeats")
    spread = (
        f"{fmt(repeats['median'])} ± {fmt(repeats['half_range'])} over {len(repeats['values'])}"
        if repeats and repeats.get("median") is not None
        else "–"
    )
    return [doc.get("n") or 0, doc.get("judgments") or 0, failed, doc.get("retried") or 0, spread]


def _judge_cell(doc: dict) -> list:
    self_judged = " (*self*)" if (doc.get("judge") or {}).get("judges_itself") else ""
    return [doc["model"] + self_judged, doc.get("preset") or "–"]


def judge_section(metrics: dict) -> list[str]:
    """MT-Bench (FastChat single-answer grading, 1-10) and Arena-Hard (win rate against the baseline), from the
    judge stage's documents: which judge, each cell's score with its interval, turns and categories, failed and
    repeated judgments; a meaningless (tiny) judge and a judge grading its own answers are said so."""
    docs = judge_documents(metrics)
    if not docs:
        return []
    lines = ["## LLM-judged benchmarks", "", *_judge_notes(docs)]
    common = ["n", "judgments", "failed judgments", "asked twice", "repeats: median ± half range"]
    mt_bench = [d for d in docs if d["dataset"] == "mt_bench"]
    if mt_bench:
        rows, categories = (
            [],
            sorted(
                {
                    m.removeprefix("category/")
                    for d in mt_bench
                    for m in d.get("metrics") or {}
                    if m.startswith("category/")
                }
            ),
        )
        by_category = []
        for doc in mt_bench:
            if doc.get("status") == "failed":
                rows.append([*_judge_cell(doc), "FAILED", "–", "–", "–", *_judge_common(doc)])
                continue
            metrics_ = doc.get("metrics") or {}
            rows.append(
                [
                    *_judge_cell(doc),
                    doc["score"],
                    _interval(doc),
                    (metrics_.get("turn_1") or {}).get("value"),
                    (metrics_.get("turn_2") or {}).get("value"),
                    *_judge_common(doc),
                ]
            )
            by_category.append(
                [*_judge_cell(doc), *((metrics_.get(f"category/{c}") or {}).get("value") for c in categories)]
            )
        lines += [
            "### MT-Bench (1-10)",
            "",
            "FastChat llm_judge single-answer grading: each turn rated 1-10 (single-v1; single-math-v1 with GPT-4's "
            "reference answers for math, reasoning and coding; the multi-turn variants for turn 2). The score is "
            "the mean of every rating.",
            "",
            *_table(["model", "preset", "score", "95% interval", "turn 1", "turn 2", *common], rows),
            "",
        ]
        if by_category:
            lines += [*_table(["model", "preset", *categories], by_category), ""]
    arena = [d for d in docs if d["dataset"] == "arena_hard"]
    if arena:
        rows = []
        for doc in arena:
            if doc.get("status") == "failed":
                rows.append([*_judge_cell(doc), "FAILED", "–", "–", "–", "–", *_judge_common(doc)])
                continue
            counts = doc.get("metrics") or {}
            rows.append(
                [
                    *_judge_cell(doc),
                    doc["score"],
                    _interval(doc),
                    *((counts.get(k) or {}).get("value") for k in ("wins", "ties", "losses")),
                    *_judge_common(doc),
                ]
            )
        baseline = next((d["baseline"] for d in arena if d.get("baseline")), "the baseline")
        lines += [
            f"### Arena-Hard v0.1 (win rate against {baseline})",
            "",
            "Each answer judged against the baseline's twice, in both orders; a strong verdict weighs 3, a tie "
            "counts half. The interval resamples prompts.",
            "",
            *_table(["model", "preset", "win rate", "95% interval", "wins", "ties", "losses", *common], rows),
            "",
        ]
    return lines


def _interval(doc: dict) -> str:
    return "–" if doc.get("ci_low") is None else f"[{fmt(doc['ci_low'])}, {fmt(doc['ci_high'])}]"


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


def _stat_row(result: dict) -> list:
    interval = "–" if result["low"] is None else f"[{fmt(result['low'])}, {fmt(result['high'])}]"
    verdict = {True: "**yes**", False: "no", None: "–"}[result["significant"]]
    return [
        result["metric"],
        result["n"],
        result["a"],
        result["b"],
        result["delta"],
        interval,
        result["p_value"],
        result["test"] or "–",
        verdict,
    ]


STAT_HEADER = ["metric", "n", "A", "B", "delta", "95% interval", "p", "test", "significant"]


def _mean_line(comparison: dict) -> str:
    mean = comparison.get("mean_accuracy_delta")
    if not mean:
        return "No accuracy compared."
    interval = "" if mean["low"] is None else f" [{fmt(mean['low'])}, {fmt(mean['high'])}]"
    verdict = SIGNIFICANCE[mean["significant"]]
    left = f"; not in the mean (not accuracies): {', '.join(mean['left_out'])}" if mean["left_out"] else ""
    return (
        f"Mean accuracy delta over {len(mean['datasets'])} dataset(s): {fmt(mean['delta'])}{interval} "
        f"({verdict}){left}."
    )


def scaling_section(analysis: dict) -> list[str]:
    """Large vs small per family and preset (metrics/scaling.json): paired per dataset, then the mean."""
    pairs = analysis.get("scaling")
    if not pairs:
        return []
    lines = [
        f"## {HEADINGS['scaling']}",
        "",
        "A = the small model, B = the large one; delta = B - A with a paired bootstrap 95% interval (10,000 "
        "resamples); binary scores are tested with McNemar's exact test. Cost per correct answer: output tokens "
        "at the model's measured throughput over its correct answers.",
        "",
    ]
    for p in pairs:
        rows = [
            [dataset, *_stat_row(d), (d.get("cost_per_correct") or {}).get("ratio")]
            for dataset, d in sorted(p["datasets"].items())
        ]
        lines += [
            f"**{p['family']} / {p['preset']}: {p['large']} vs {p['small']}** (x{fmt(p['parameters']['ratio'])} "
            f"parameters, x{fmt(p['throughput_ratio'])} throughput, x{fmt(p['memory_ratio'])} memory)",
            "",
            *_table(["dataset", *STAT_HEADER, "cost per correct (x)"], rows),
            "",
            _mean_line(p),
            "",
        ]
    return lines


def presets_section(analysis: dict) -> list[str]:
    rows = analysis.get("presets")
    if not rows:
        return []
    lines = [
        f"## {HEADINGS['presets']}",
        "",
        "A = the baseline preset, B = the other; paired on the same items.",
        "",
    ]
    for r in rows:
        table = [[dataset, *_stat_row(d)] for dataset, d in sorted(r["datasets"].items())]
        lines += [
            f"**{r['model']}: {r['preset']} vs {r['baseline']}** (x{fmt(r['throughput_ratio'])} throughput, "
            f"x{fmt(r['sequences_ratio'])} sequences, x{fmt(r['memory_ratio'])} memory)",
            "",
            *_table(["dataset", *STAT_HEADER], table),
            "",
            _mean_line(r),
            "",
        ]
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


CPU_PLAN_NOTE = " Throughput measured on the CPU (coverage): those hours are this machine's, not a GPU's."


PLAN_HEADER = [
    "model",
    "preset",
    "TP",
    "requests",
    "prompt tokens",
    "output tokens",
    "output from",
    "throughput from",
    "GPU-h",
]


def plan_rows(plan: dict, total_label: str = "total") -> list[list]:
    """The cost plan's table (PLAN_HEADER): a row per model x preset, then the total."""
    total = plan["total"]
    return [
        *(
            [
                u["model"],
                u["preset"],
                u["tensor_parallel_size"],
                u["requests"],
                u["prompt_tokens"],
                u["output_tokens"],
                u["output_from"],
                u["throughput"]["source"],
                u["gpu_hours"],
            ]
            for u in plan["units"]
        ),
        [
            total_label,
            "",
            "",
            *(total[k] for k in ("requests", "prompt_tokens", "output_tokens")),
            "",
            "",
            total["gpu_hours"],
        ],
    ]


def plan_headline(plan: dict) -> str:
    total, wall = plan["total"], plan["wall"]
    line = (
        f"{fmt(total['cells'])} cells, {fmt(total['gpu_hours'])} GPU-hours; {fmt(wall['hours'])} h of wall time "
        f"on {wall['gpus']} GPU(s) (metrics/plan.json, docs/plan.md)."
    )
    if any("CPU" in u["throughput"]["source"] for u in plan["units"]):
        line += CPU_PLAN_NOTE
    return line


def plan_section(metrics: dict) -> list[str]:
    """The run's cost plan (metrics/plan.json, the plan stage): GPU-hours per model x preset and in total, the
    wall time, and the assumptions behind them."""
    plan = metrics.get("plan")
    if not plan or not plan.get("units"):
        return []
    return [
        "## Cost plan",
        "",
        f"What this run costs as the plan stage counts it: {plan_headline(plan)}",
        "",
        *_table(PLAN_HEADER, plan_rows(plan, "**total**")),
        "",
        "Assumptions:",
        "",
        *(f"- {a}" for a in plan.get("assumptions", [])),
        "",
    ]
