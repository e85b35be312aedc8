"""The report as one self-contained HTML page: inline CSS, inline SVG figures, a small inline script that
sorts tables. No network: nothing is fetched from anywhere. Every number is read from the metrics documents
(what `load_metrics` returns) and the analysis document, and only formatted here (`console.fmt`); every string is
escaped, so a model name or an error message is text, never markup.

The sections and their anchors, in order: summary, answers, readiness, insights, leaderboard, accuracy,
cells, judge, scaling, presets, performance, cost, plan, failures, validation. The analysis' `answers` link to
them (`anchor`). Without an analysis (None) the sections drawn from it are left out; a missing input
otherwise gives a one-line note in its section; the judge section is left out when no cell was judged, the
plan section when the plan stage has not run.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from qwen_pipe import plots
from qwen_pipe.console import fmt
from qwen_pipe.io import atomic_write_text
from qwen_pipe.report import (
    MAX_TRUNCATION_RATE,
    PLAN_HEADER,
    _truncations,
    failures,
    plan_headline,
    plan_rows,
)
from qwen_pipe.results import eval_documents

HTML_REPORT = Path("reports/report.html")
TITLE = "qwen-pipe report"


def write_html(metrics: dict, analysis: dict | None, path: Path = HTML_REPORT) -> Path:
    """Write the page for `metrics` (what `load_metrics` returns) and `analysis` (may be None)."""
    atomic_write_text(path, render_html(metrics, analysis))
    return path


def render_html(metrics: dict, analysis: dict | None, title: str = TITLE) -> str:
    metrics = {"eval": {}, "coverage": {}, "stale": [], **{k: v for k, v in metrics.items() if v is not None}}
    sections = [
        summary_section(metrics, title),
        answers_section(analysis),
        readiness_section(analysis),
        insights_section(analysis),
        leaderboard_section(analysis),
        accuracy_section(analysis),
        cells_section(analysis),
        judge_section(metrics),
        scaling_section(analysis),
        presets_section(analysis),
        performance_section(metrics),
        cost_section(metrics),
        plan_section(metrics),
        failures_section(metrics, analysis),
        validation_section(metrics),
    ]
    present = [s for s in sections if s is not None]
    nav = " ".join(f'<a href="#{s.anchor}">{_e(s.title)}</a>' for s in present[1:])
    body = "\n".join(s.html() for s in present)
    return PAGE.format(title=_e(title), css=CSS, nav=nav, body=body, script=SCRIPT)


# --- building blocks: everything that reaches the page goes through _e or fmt ---


class Raw(str):
    """Markup built here from escaped parts: put in a table cell as it is."""


class Num(NamedTuple):
    """A table cell shown as `text`, sorted by `value` (an interval reads "[low, high]", sorts by low)."""

    text: str
    value: float | None


@dataclass(frozen=True)
class Section:
    anchor: str
    title: str
    body: str

    def html(self) -> str:
        heading = "h1" if self.anchor == "summary" else "h2"
        tag = "header" if self.anchor == "summary" else "section"
        return f'<{tag} id="{self.anchor}">\n<{heading}>{_e(self.title)}</{heading}>\n{self.body}\n</{tag}>'


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _note(text: str) -> str:
    return f'<p class="note">{_e(text)}</p>'


def _slug(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", "-".join(str(p) for p in parts)).strip("-")


def _badge(status) -> Raw:
    kind = {
        "PASS": "pass",
        "FAIL": "fail",
        "SKIP": "skip",
        "ok": "pass",
        "failed": "fail",
        "FAILED": "fail",
        "MEANINGLESS": "fail",
        "self-judged": "warn",
    }.get(status, "skip")
    return Raw(f'<span class="badge {kind}">{_e(status)}</span>')


def _interval(low, high) -> Num:
    if low is None or high is None:
        return Num("–", None)
    return Num(f"[{fmt(low)}, {fmt(high)}]", low)


def _td(value) -> str:
    if isinstance(value, Raw):
        return f"<td>{value}</td>"
    if isinstance(value, Num):
        sort = "" if value.value is None else f' data-value="{float(value.value)!r}"'
        return f'<td class="num"{sort}>{_e(value.text)}</td>'
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raw = repr(float(value)) if isinstance(value, float) else str(value)
        return f'<td class="num" data-value="{raw}">{_e(fmt(value))}</td>'
    if value is None:
        return '<td class="num">–</td>'
    return f"<td>{_e(fmt(value))}</td>"


def _table(header: list[str], rows: list[list], table_id: str = "") -> str:
    """A sortable table: a click on a header sorts by that column (SCRIPT)."""
    attributes = (f' id="{_e(table_id)}"' if table_id else "") + ' class="sortable"'
    head = "".join(f'<th scope="col">{_e(h)}</th>' for h in header)
    body = "\n".join("<tr>" + "".join(_td(c) for c in row) + "</tr>" for row in rows)
    return (
        f'<div class="scroll"><table{attributes}>\n<thead><tr>{head}</tr></thead>\n'
        f"<tbody>\n{body}\n</tbody>\n</table></div>"
    )


def _figure(svg: str, caption: str) -> str:
    return f"<figure>\n{svg}\n<figcaption>{_e(caption)}</figcaption>\n</figure>"


# --- the sections, in page order ---


def summary_section(metrics: dict, title: str) -> Section:
    """The title, and where the numbers come from: commit, versions, engine, hardware."""
    doc = next(
        (d for d in eval_documents(metrics) if d.get("status") != "failed" and d.get("provenance")), None
    )
    lines = []
    if doc:
        prov, engine = doc["provenance"], doc.get("engine") or {}
        hw = prov.get("hardware") or {}
        device = f"{hw.get('gpu') or hw.get('cpu')} ({fmt(hw.get('gpu_count') or hw.get('cores'))} "
        device += "GPUs)" if hw.get("gpu") else "cores)"
        lines.append(
            f"Commit {prov.get('git_commit')}{' (dirty)' if prov.get('git_dirty') else ''}, "
            f"qwen-pipe {prov.get('qwen_pipe')}, engine {engine.get('engine')} {engine.get('version')}, "
            f"hardware: {device}."
        )
    else:
        lines.append("No evaluation result with provenance: commit, engine and hardware unknown.")
    if metrics.get("stale"):
        stale = ", ".join(f"metrics/{p}" for p in metrics["stale"])
        lines.append(f"Not part of this run (left by an earlier configuration, not shown): {stale}.")
    return Section("summary", title, "\n".join(f'<p class="provenance">{_e(line)}</p>' for line in lines))


def answers_section(analysis: dict | None) -> Section | None:
    """The plan's questions, answered in order, each linking to the section with the detail."""
    if analysis is None:
        return None
    answers = analysis.get("answers") or []
    if not answers:
        return Section("answers", "Answers", _note("No answers in the analysis."))
    items = "\n".join(
        f'<li><p class="question">{_e(a["question"])}</p><p class="answer">{_e(a["answer"])} '
        f'<a href="#{_e(a["anchor"])}">details</a></p></li>'
        for a in answers
    )
    return Section("answers", "Answers", f'<ol class="answers">\n{items}\n</ol>')


def readiness_section(analysis: dict | None) -> Section | None:
    """The go/no-go verdict and each criterion with its measured value, threshold and status."""
    if analysis is None:
        return None
    verdict = analysis.get("readiness")
    if not verdict:
        return Section("readiness", "Readiness", _note("No readiness verdict in the analysis."))
    ready = verdict.get("ready")
    allowed = (
        " (allowed: the run accepts an unready result)"
        if not ready and verdict.get("allowed_unready")
        else ""
    )
    body = (
        f'<p class="verdict"><span class="badge {"pass" if ready else "fail"}">'
        f"{'READY' if ready else 'NOT READY'}</span>{_e(allowed)}</p>"
    )
    rows = [
        [c["check"], c.get("value"), c.get("threshold"), _badge(c["status"]), c.get("reason")]
        for c in verdict.get("checks") or []
    ]
    if rows:
        body += _table(["criterion", "measured", "threshold", "status", "reason"], rows, "readiness-table")
    return Section("readiness", "Readiness", body)


def insights_section(analysis: dict | None) -> Section | None:
    if analysis is None:
        return None
    insights = analysis.get("insights") or []
    if not insights:
        return Section("insights", "Insights", _note("No insight in the analysis."))
    items = []
    for insight in insights:
        numbers = " ".join(
            f'<span class="number">{_e(key)}: {_e(fmt(value))}</span>'
            for key, value in (insight.get("numbers") or {}).items()
        )
        items.append(
            f'<li><span class="tag">{_e(insight["rule"])}</span> <strong>{_e(insight["subject"])}</strong>: '
            f'{_e(insight["text"])}<div class="numbers">{numbers}</div></li>'
        )
    return Section("insights", "Insights", '<ul class="insights">\n' + "\n".join(items) + "\n</ul>")


def leaderboard_section(analysis: dict | None) -> Section | None:
    """Per protocol x preset: models ranked by their mean score over the same datasets; ties named."""
    if analysis is None:
        return None
    groups = analysis.get("leaderboard") or []
    if not groups:
        return Section("leaderboard", "Leaderboard", _note("No leaderboard: no group of comparable cells."))
    parts = []
    for group in groups:
        rows = [
            [
                r["rank"],
                r["model"],
                r["mean"],
                _interval(r.get("low"), r.get("high")),
                ", ".join(r["tied_with"]),
            ]
            for r in group["rows"]
        ]
        anchor = _slug("leaderboard", group["protocol"], group["preset"])
        parts.append(
            f'<h3 id="{_e(anchor)}">protocol {_e(group["protocol"])}, preset {_e(group["preset"])}</h3>'
            f'<p class="note">Mean over: {_e(", ".join(group["datasets"]))}.</p>'
            + _table(["rank", "model", "mean", "95% interval", "tied with"], rows)
        )
    return Section("leaderboard", "Leaderboard", "\n".join(parts))


def accuracy_section(analysis: dict | None) -> Section | None:
    """Per dataset, a bar per model x preset with its 95% interval (failed cells are not drawn)."""
    if analysis is None:
        return None
    svg = plots.accuracy_bars_svg(analysis.get("cells") or [])
    if not svg:
        return Section("accuracy", "Accuracy per dataset", _note("No scored accuracy cell to draw."))
    caption = "Score per dataset and model / preset; error bars: the 95% interval. Failed cells are absent."
    return Section("accuracy", "Accuracy per dataset", _figure(svg, caption))


def cells_section(analysis: dict | None) -> Section | None:
    """Every evaluation cell in one sortable table."""
    if analysis is None:
        return None
    cells = analysis.get("cells") or []
    if not cells:
        return Section("cells", "All cells", _note("No evaluation cell in the analysis."))
    header = [
        "model",
        "preset",
        "dataset",
        "protocol",
        "metric",
        "status",
        "score",
        "95% interval",
        "n",
        "requests",
        "truncated",
        "failed",
        "cost",
        "output tokens",
    ]
    rows = [
        [
            c["model"],
            c["preset"],
            c["dataset"] + (" *" if c.get("embedded_sample") else ""),
            c["protocol"],
            c["metric"] + ("" if c.get("accuracy") else " (not an accuracy)"),
            _badge(c["status"]),
            c.get("score"),
            _interval(c.get("low"), c.get("high")),
            c.get("n"),
            c.get("requests"),
            c.get("truncated"),
            c.get("failed"),
            _cost(c.get("cost_seconds"), c.get("cost_unit")),
            c.get("output_tokens"),
        ]
        for c in cells
    ]
    body = _table(header, rows, "cells-table")
    if any(c.get("embedded_sample") for c in cells):
        body = _note("* a small sample written for the embedded default, not the benchmark.") + body
    return Section("cells", "All cells", _note("Click a column header to sort.") + body)


# --- the LLM-judged benchmarks (metrics/judge) ---

JUDGED_TITLE = "LLM-judged benchmarks"


def judge_section(metrics: dict) -> Section | None:
    """MT-Bench ratings and Arena-Hard win rates, with the judge that gave them and its caveats: a
    random-weight judge (meaningless scores), a judge grading its own answers (self-preference)."""
    docs = _judge_documents(metrics.get("judge") or {})
    if not docs:
        return None
    parts = [_judges_note(docs)]
    meaningless = _judge_descriptions(d for d in docs if (d.get("judge") or {}).get("meaningless"))
    if meaningless:
        subject = (
            f"The judge {meaningless[0]} is a random-weight tiny model: the scores it gave are"
            if len(meaningless) == 1
            else f"The judges {' and '.join(meaningless)} are random-weight tiny models: the scores they "
            "gave are"
        )
        warning = f"{subject} meaningless, a check that the judge stage runs end to end, not a measurement."
        parts.append(f'<p class="verdict">{_badge("MEANINGLESS")} {_e(warning)}</p>')
    own = [_cell_name(d) for d in docs if _self_judged(d)]
    if own:
        parts.append(
            _note(
                f"The judge grades its own answers in {', '.join(own)}: self-preference inflates these "
                "scores (rows marked self-judged)."
            )
        )
    tagged = [
        f"{_cell_name(d)} ({d['answers_with_verdict_tags']})"
        for d in docs
        if d.get("answers_with_verdict_tags")
    ]
    if tagged:
        parts.append(
            _note(
                f"Answers that carry a verdict tag of their own ([[10]], [[B>>A]]) in {', '.join(tagged)}: a "
                "judge may be led by them; read those judgments in data/judgments before trusting the scores."
            )
        )
    mt_bench = [d for d in docs if d["dataset"] == "mt_bench"]
    if mt_bench:
        parts.append("<h3>MT-Bench</h3>" + _mt_bench_table(mt_bench))
        parts.append("<h3>MT-Bench per category</h3>" + _mt_bench_categories_table(mt_bench))
    arena_hard = [d for d in docs if d["dataset"] == "arena_hard"]
    if arena_hard:
        parts.append("<h3>Arena-Hard</h3>" + _arena_hard_table(arena_hard))
    other = [_cell_name(d) for d in docs if d["dataset"] not in ("mt_bench", "arena_hard")]
    if other:
        parts.append(_note(f"Judged, but no table here for: {', '.join(other)}."))
    return Section("judge", JUDGED_TITLE, "\n".join(parts))


def _judge_documents(tree: dict) -> list[dict]:
    return [
        {"model": model, "preset": preset, "dataset": dataset, **doc}
        for model, by_preset in tree.items()
        for preset, by_dataset in (by_preset or {}).items()
        for dataset, doc in (by_dataset or {}).items()
        if doc
    ]


def _cell_name(doc: dict) -> str:
    return f"{doc['model']} / {doc['preset']} / {doc['dataset']}"


def _judge_descriptions(docs) -> list[str]:
    """Each judge's description once, in the order first met."""
    return list(dict.fromkeys(str((d.get("judge") or {}).get("description")) for d in docs))


def _judges_note(docs: list[dict]) -> str:
    judged = [d for d in docs if d.get("judge")]
    judges = _judge_descriptions(judged)
    if not judges:
        return _note("Judge unknown: no judged cell names its judge.")
    if len(judges) == 1:
        return _note(f"Judge: {judges[0]}.")
    cells = {
        judge: ", ".join(_cell_name(d) for d in judged if str(d["judge"].get("description")) == judge)
        for judge in judges
    }
    return _note("Judges: " + "; ".join(f"{judge} for {cells[judge]}" for judge in judges) + ".")


def _self_judged(doc: dict) -> bool:
    return bool((doc.get("judge") or {}).get("judges_itself"))


def _ok(doc: dict) -> bool:
    return doc.get("status") != "failed"


def _judge_status(doc: dict) -> Raw:
    return _badge("ok") if _ok(doc) else _badge("FAILED")


def _judge_failure(doc: dict) -> str:
    if _ok(doc):
        return ""
    failure = doc.get("failure") or {}
    return f"{failure.get('error_type') or 'failed'}: {failure.get('message') or 'no message'}"


def _metric(doc: dict, name: str):
    return ((doc.get("metrics") or {}).get(name) or {}).get("value")


def _repeats(doc: dict) -> Num:
    """ "6.83 ± 0.1250 over 3": the median of the repeats' scores and half their range."""
    repeats = doc.get("repeats")
    if not repeats or repeats.get("median") is None:
        return Num("–", None)
    text = f"{fmt(repeats['median'])} ± {fmt(repeats.get('half_range'))} over {fmt(len(repeats['values']))}"
    return Num(text, repeats["median"])


def _judge_row(doc: dict, numbers: list) -> list:
    """model, preset, self-judged, the numbers (none for a failed cell), status, failure."""
    return [
        doc["model"],
        doc["preset"],
        _badge("self-judged") if _self_judged(doc) else "",
        *(numbers if _ok(doc) else [None] * len(numbers)),
        _judge_status(doc),
        _judge_failure(doc),
    ]


def _failed_judgments(doc: dict) -> int:
    return sum((doc.get("failed_judgments") or {}).values())


def _mt_bench_table(docs: list[dict]) -> str:
    header = [
        "model",
        "preset",
        "self-judged",
        "rating (1-10)",
        "95% interval",
        "turn 1",
        "turn 2",
        "n",
        "judgments",
        "failed judgments",
        "asked twice",
        "repeats",
        "status",
        "failure",
    ]
    rows = [
        _judge_row(
            d,
            [
                d.get("score"),
                _interval(d.get("ci_low"), d.get("ci_high")),
                _metric(d, "turn_1"),
                _metric(d, "turn_2"),
                d.get("n"),
                d.get("judgments"),
                _failed_judgments(d),
                d.get("retried"),
                _repeats(d),
            ],
        )
        for d in docs
    ]
    note = _note(
        "Rating: the mean of every rating of both turns, on the 1-10 scale; repeats: the median of the "
        "repeated judgments' scores ± half their range."
    )
    return note + _table(header, rows, "judge-mt-bench-table")


def _mt_bench_categories_table(docs: list[dict]) -> str:
    prefix = "category/"
    categories = sorted(
        {
            name.removeprefix(prefix)
            for d in docs
            for name in d.get("metrics") or {}
            if name.startswith(prefix)
        }
    )
    if not categories:
        return _note("No category in the MT-Bench results.")
    rows = [_judge_row(d, [_metric(d, prefix + c) for c in categories]) for d in docs]
    header = ["model", "preset", "self-judged", *categories, "status", "failure"]
    return _note("Mean rating per category, both turns.") + _table(
        header, rows, "judge-mt-bench-categories-table"
    )


def _arena_hard_table(docs: list[dict]) -> str:
    header = [
        "model",
        "preset",
        "self-judged",
        "baseline",
        "win rate",
        "95% interval",
        "wins",
        "ties",
        "losses",
        "n",
        "failed judgments",
        "status",
        "failure",
    ]
    rows = [
        _judge_row(
            d,
            [
                d.get("baseline"),
                d.get("score"),
                _interval(d.get("ci_low"), d.get("ci_high")),
                _metric(d, "wins"),
                _metric(d, "ties"),
                _metric(d, "losses"),
                d.get("n"),
                _failed_judgments(d),
            ],
        )
        for d in docs
    ]
    note = _note(
        "Win rate against the baseline's answers: (wins + ties / 2) over every game, both answer orders; "
        "wins, ties and losses are weighted as Arena-Hard weighs them (a decisive verdict counts more)."
    )
    return note + _table(header, rows, "judge-arena-hard-table")


def _p_value(p) -> Num:
    """fmt's four digits, "< 0.0001" below them (never a p-value of 0)."""
    return Num("–" if p is None else "< 0.0001" if p < 0.0001 else fmt(p), p)


def _cost(seconds, unit) -> Num:
    """ "412 GPU-seconds", sorted by the seconds."""
    return Num("–", None) if seconds is None else Num(f"{fmt(seconds)} {unit or ''}".strip(), seconds)


STAT_HEADER = ["dataset", "metric", "n", "a", "b", "delta", "95% interval", "p-value", "test", "significant"]


def _stat_row(dataset: str, d: dict) -> list:
    return [
        dataset,
        d.get("metric"),
        d.get("n"),
        d.get("a"),
        d.get("b"),
        d.get("delta"),
        _interval(d.get("low"), d.get("high")),
        _p_value(d.get("p_value")),
        d.get("test"),
        d.get("significant"),
    ]


def scaling_section(analysis: dict | None) -> Section | None:
    """Large vs small per family and preset: the delta per dataset with its interval, beside its numbers."""
    if analysis is None:
        return None
    pairs = analysis.get("scaling") or []
    if not pairs:
        return Section("scaling", "Large vs small", _note("No large-vs-small pair in this run."))
    return Section("scaling", "Large vs small", "\n".join(_scaling_pair(p) for p in pairs))


def _scaling_pair(pair: dict) -> str:
    anchor = _slug("scaling", pair["family"], pair["preset"])
    parameters = pair.get("parameters") or {}
    title = f"{pair['family']}, {pair['preset']}: {pair['large']} vs {pair['small']}"
    ratios = (
        f"a = {pair['small']}, b = {pair['large']}; parameters {fmt(parameters.get('small'))} vs "
        f"{fmt(parameters.get('large'))} (ratio {fmt(parameters.get('ratio'))}); throughput ratio "
        f"{fmt(pair.get('throughput_ratio'))}; memory ratio {fmt(pair.get('memory_ratio'))}. Cost ratio: "
        "the cost per correct answer of b over a's."
    )
    datasets = pair.get("datasets") or {}
    rows = [
        [
            name,
            d.get("n"),
            d.get("a"),
            d.get("b"),
            d.get("delta"),
            _interval(d.get("low"), d.get("high")),
            _p_value(d.get("p_value")),
            d.get("test"),
            d.get("significant"),
            (d.get("cost_per_correct") or {}).get("ratio"),
        ]
        for name, d in datasets.items()
    ]
    header = [
        "dataset",
        "n",
        "a",
        "b",
        "delta",
        "95% interval",
        "p-value",
        "test",
        "significant",
        "cost ratio",
    ]
    svg = plots.paired_deltas_svg(datasets, f"{pair['large']} - {pair['small']} ({pair['preset']})", anchor)
    figure = (
        _figure(svg, "Delta b - a per dataset; red, filled: significant; grey, hollow: not.")
        if svg
        else _note("No delta to draw.")
    )
    table = _table(header, rows, f"{anchor}-table") if rows else _note("No dataset compared.")
    return (
        f'<h3 id="{_e(anchor)}">{_e(title)}</h3>\n<p class="note">{_e(ratios)}</p>\n'
        f'<div class="beside">{figure}\n{table}</div>'
    )


def presets_section(analysis: dict | None) -> Section | None:
    """Each preset against its model's baseline preset: the ratios, then the deltas per dataset."""
    if analysis is None:
        return None
    comparisons = analysis.get("presets") or []
    if not comparisons:
        return Section("presets", "Presets compared", _note("No preset comparison in this run."))
    header = [
        "model",
        "baseline",
        "preset",
        "throughput ratio",
        "sequences ratio",
        "memory ratio",
        *STAT_HEADER,
    ]
    rows = [
        [
            p["model"],
            p["baseline"],
            p["preset"],
            p.get("throughput_ratio"),
            p.get("sequences_ratio"),
            p.get("memory_ratio"),
            *_stat_row(name, d),
        ]
        for p in comparisons
        for name, d in (p.get("datasets") or {}).items()
    ]
    note = _note(
        "a: the baseline preset's score, b: the other preset's; ratios are the preset's over the baseline's."
    )
    return Section("presets", "Presets compared", note + _table(header, rows, "presets-table"))


def performance_section(metrics: dict) -> Section:
    """The performance matrix (metrics/performance.json) as a heat map of generation tokens/s."""
    matrix = metrics.get("performance")
    if not matrix or not matrix.get("rows"):
        return Section(
            "performance", "Performance", _note("No performance matrix (metrics/performance.json).")
        )
    body = ""
    if any(r.get("dummy_weights") for r in matrix["rows"]):
        body += _note("Dummy weights: random weights of the real architecture (throughput and memory only).")
    caption = "Generation tokens/s per model and preset (colour), with the peak memory in GiB."
    body += _figure(plots.performance_heatmap_svg(matrix["rows"]), caption)
    if matrix.get("missing"):
        body += _note(f"Not measured: {', '.join(str(m) for m in matrix['missing'])}.")
    return Section("performance", "Performance", body)


def cost_section(metrics: dict) -> Section:
    """The cost-scaling sweep (metrics/cost_scaling.json): wall time against prompts and output length."""
    cost = metrics.get("cost_scaling")
    title = "Cost scaling"
    if not cost:
        return Section("cost", title, _note("No cost-scaling sweep (metrics/cost_scaling.json)."))
    if cost.get("status") != "PASS":
        return Section(
            "cost", title, _note(f"The cost-scaling sweep did not pass (status {cost.get('status')}).")
        )
    fits = cost.get("fits") or {}
    line = (
        f"{cost['model']}, {cost['preset']}. Batching gain (tokens/s at the most prompts over one prompt): "
        f"{fmt(cost.get('batching_gain'))}; marginal cost per prompt: "
        f"{fmt((fits.get('wall_vs_prompts') or {}).get('marginal_seconds_per_prompt'))} s; one decode step of "
        f"the batch: {fmt((fits.get('wall_vs_output_length') or {}).get('slope'))} s."
    )
    figure = _figure(plots.cost_curves_svg(cost), "Wall seconds against prompts and against new tokens.")
    return Section("cost", title, _note(line) + figure)


def plan_section(metrics: dict) -> Section | None:
    """The run's cost plan (metrics/plan.json): GPU-hours per model x preset and in total, the wall time and
    the assumptions; left out when the plan stage has not run."""
    plan = metrics.get("plan")
    if not plan or not plan.get("units"):
        return None
    assumptions = "".join(f"<li>{_e(a)}</li>" for a in plan.get("assumptions", []))
    body = _note(plan_headline(plan)) + _table(PLAN_HEADER, plan_rows(plan), "plan")
    body += f'<ul class="assumptions">{assumptions}</ul>'
    return Section("plan", "Cost plan", body)


def failures_section(metrics: dict, analysis: dict | None) -> Section:
    """The error rates, cells that produced no result, and cells whose answers were cut at the budget."""
    failed = failures(metrics)
    truncated = [d for d in eval_documents(metrics) if d.get("status") != "failed" and d.get("truncated")]
    errors = (analysis or {}).get("errors")
    parts = [_error_rates(errors)] if errors else []
    if failed:
        parts.append("<h3>Failed cells</h3>" + _failed_table(failed))
    if truncated:
        parts.append("<h3>Truncated answers</h3>" + _truncated_table(truncated))
    if not failed and not truncated:
        parts.append(_note("No failed cell and no truncated answer."))
    return Section("failures", "Failures and truncations", "\n".join(parts))


def _error_rates(errors: dict) -> str:
    overall = errors.get("overall") or {}
    line = _note(
        f"Failed requests overall: {fmt(overall.get('rate'))} ({fmt(overall.get('failed'))} of "
        f"{fmt(overall.get('requests'))}), every kind counted."
    )
    rows = [
        [m, e.get("rate"), e.get("failed"), e.get("requests")]
        for m, e in (errors.get("by_model") or {}).items()
    ]
    return line + (
        _table(["model", "error rate", "failed", "requests"], rows, "errors-table") if rows else ""
    )


def _failed_table(failed: list[dict]) -> str:
    rows = [
        [
            f.get("stage"),
            f.get("model"),
            f.get("preset"),
            f.get("dataset"),
            f.get("error_type"),
            f.get("message"),
        ]
        for f in failed
    ]
    return _table(["stage", "model", "preset", "dataset", "error", "message"], rows, "failures-table")


def _truncated_table(docs: list[dict]) -> str:
    rows = [
        [
            d["model"],
            d.get("preset"),
            d["dataset"],
            _truncations(d),
            d.get("truncation_rate"),
            _badge("FAIL") if (d.get("truncation_rate") or 0) > MAX_TRUNCATION_RATE else "",
        ]
        for d in sorted(docs, key=lambda d: (d["model"], d.get("preset") or "", d["dataset"]))
    ]
    header = ["model", "preset", "dataset", "truncated", "rate", f"above {MAX_TRUNCATION_RATE:.0%}"]
    return _table(header, rows, "truncations-table")


def validation_section(metrics: dict) -> Section:
    """Every model x preset the validate stage checked, with its memory estimate and the reasons."""
    validate = metrics.get("validate")
    title = "Configurations validated"
    if not validate or not validate.get("checks"):
        return Section("validation", title, _note("No validation results (metrics/validate.json)."))
    rows = [
        [
            c["model"],
            c["preset"],
            _badge(c["status"]),
            (c.get("memory") or {}).get("total_gib"),
            (c.get("memory") or {}).get("budget_gib"),
            "; ".join(c.get("reasons") or []),
        ]
        for c in validate["checks"]
    ]
    line = _note(
        f"{fmt(validate.get('passed'))} of {fmt(validate.get('configurations'))} configurations pass."
    )
    header = ["model", "preset", "status", "estimate GiB", "budget GiB", "reasons"]
    return Section("validation", title, line + _table(header, rows, "validation-table"))


# --- the page ---

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
{css}
</style>
</head>
<body>
<nav>{nav}</nav>
<main>
{body}
</main>
<script>
{script}
</script>
</body>
</html>
"""

CSS = """
:root { --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --stripe: #f6f8fa; --accent: #0969da; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: #fff; line-height: 1.45;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
main { max-width: 1280px; margin: 0 auto; padding: 0 24px 48px; }
nav { position: sticky; top: 0; z-index: 2; background: #fff; border-bottom: 1px solid var(--line);
  padding: 8px 24px; font-size: 13px; display: flex; flex-wrap: wrap; gap: 4px 14px; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
h1 { font-size: 26px; margin: 24px 0 4px; }
h2 { font-size: 20px; margin: 36px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 16px; margin: 22px 0 6px; }
section, header { scroll-margin-top: 44px; }
.provenance, .note { color: var(--muted); margin: 4px 0 10px; }
.scroll { overflow-x: auto; margin: 6px 0 14px; }
table { border-collapse: collapse; font-size: 13px; }
th, td { padding: 4px 8px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { background: var(--stripe); font-weight: 600; white-space: nowrap; }
tbody tr:nth-child(even) { background: #fbfcfd; }
tbody tr:hover { background: #eef4fb; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th::after { content: " \\2195"; color: #aab2bb; }
table.sortable th[aria-sort="ascending"]::after { content: " \\25B2"; color: var(--fg); }
table.sortable th[aria-sort="descending"]::after { content: " \\25BC"; color: var(--fg); }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600; }
.badge.pass { background: #dafbe1; color: #116329; }
.badge.fail { background: #ffebe9; color: #a40e26; }
.badge.skip { background: #eaeef2; color: #59636e; }
.badge.warn { background: #fff8c5; color: #7d4e00; }
.verdict { font-size: 16px; }
ol.answers { padding-left: 22px; }
ol.answers li { margin: 0 0 10px; }
.question { font-weight: 600; margin: 0; }
.answer { margin: 2px 0 0; }
ul.insights { padding-left: 20px; }
ul.insights li { margin: 0 0 8px; }
.tag { font-size: 11px; color: var(--muted); border: 1px solid var(--line); border-radius: 4px; padding: 0 5px; }
.numbers { font-size: 12px; color: var(--muted); }
.number { margin-right: 12px; font-variant-numeric: tabular-nums; }
figure { margin: 10px 0 16px; }
figure svg { max-width: 100%; height: auto; display: block; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 4px; }
.beside { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
.beside figure { flex: 0 1 360px; margin-top: 0; }
.beside .scroll { flex: 1 1 auto; }
"""

SCRIPT = """
(function () {
  "use strict";
  // Sortable tables: click a header (or Enter on it) to sort by that column, again to reverse.
  // A cell's data-value (the raw number) sorts numerically; other cells as text, digits by value.
  function key(cell) {
    var raw = cell.getAttribute("data-value");
    var text = raw === null ? cell.textContent.trim() : raw;
    if (text === "" || text === "\\u2013") { return { missing: true }; }
    var number = raw !== null ? parseFloat(raw) : NaN;
    if (raw === null && /^-?[0-9][0-9,]*(\\.[0-9]+)?$/.test(text)) { number = parseFloat(text.replace(/,/g, "")); }
    return isNaN(number) ? { text: text } : { number: number };
  }
  function compare(a, b) {
    if (a.missing || b.missing) { return (a.missing ? 1 : 0) - (b.missing ? 1 : 0); }
    if (a.number !== undefined && b.number !== undefined) { return a.number - b.number; }
    var x = a.number !== undefined ? String(a.number) : a.text;
    var y = b.number !== undefined ? String(b.number) : b.text;
    return x.localeCompare(y, undefined, { numeric: true, sensitivity: "base" });
  }
  function sortBy(table, header, column) {
    var ascending = header.getAttribute("aria-sort") !== "ascending";
    table.querySelectorAll("thead th").forEach(function (th) { th.removeAttribute("aria-sort"); });
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows).map(function (row, index) {
      return { row: row, index: index, key: key(row.cells[column]) };
    });
    rows.sort(function (a, b) {
      var missing = (a.key.missing ? 1 : 0) - (b.key.missing ? 1 : 0);
      if (missing) { return missing; }
      var order = compare(a.key, b.key);
      return (ascending ? order : -order) || a.index - b.index;
    });
    rows.forEach(function (item) { body.appendChild(item.row); });
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    table.querySelectorAll("thead th").forEach(function (header, column) {
      header.tabIndex = 0;
      header.addEventListener("click", function () { sortBy(table, header, column); });
      header.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") { event.preventDefault(); sortBy(table, header, column); }
      });
    });
  });
})();
"""
