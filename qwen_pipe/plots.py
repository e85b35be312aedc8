"""Figures as PNG files (matplotlib, Agg backend: no display needed), drawn from metrics documents, and as
inline SVG markup for the HTML report (the `*_svg` functions: the same inputs give the same bytes)."""

from __future__ import annotations

import io
import math
import re
from pathlib import Path

from qwen_pipe.console import fmt

FIGURES_DIR = Path("reports/figures")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    # No timestamp or software tag in the file: the same numbers give the same bytes.
    fig.savefig(path, dpi=110, bbox_inches="tight", metadata={"Software": None})
    _pyplot().close(fig)
    return path


def plot_performance_matrix(matrix: dict, path: Path) -> Path:
    """Grouped bars, one group per model and one bar per preset: throughput, memory, utilisation, load time."""
    plt = _pyplot()
    rows = matrix["rows"]
    models = list(dict.fromkeys(r["model"] for r in rows))
    presets = list(dict.fromkeys(r["preset"] for r in rows))
    panels = [
        ("output_tokens_per_s", "generation tokens/s"),
        ("prefill_tokens_per_s", "prefill tokens/s"),
        ("memory_fraction", "peak memory (fraction of device)"),
        ("gpu_utilisation_mean", "GPU utilisation while generating (%)"),
        ("load_seconds", "load time (s)"),
        ("time_per_output_token_s", "time per output token at the batch (s)"),
    ]
    fig, axes = plt.subplots(2, 3, figsize=(15, 8), layout="constrained")
    width = 0.8 / max(len(presets), 1)
    for ax, (key, title) in zip(axes.flat, panels, strict=True):
        values = {(r["model"], r["preset"]): r.get(key) for r in rows}
        if all(v is None for v in values.values()):
            ax.text(0.5, 0.5, "not measured on this device", ha="center", va="center", transform=ax.transAxes)
            ax.set_yticks([])
        for i, preset in enumerate(presets):
            xs = [m + (i - (len(presets) - 1) / 2) * width for m in range(len(models))]
            ys = [values.get((model, preset)) or 0.0 for model in models]
            ax.bar(xs, ys, width, label=preset)
        if key == "memory_fraction":
            ax.axhline(0.8, color="red", linestyle="--", linewidth=1, label="80% limit")
        if key == "output_tokens_per_s":
            ax.axhline(100, color="red", linestyle="--", linewidth=1, label="100 tokens/s")
        ax.set_xticks(range(len(models)), models, rotation=20 if len(models) > 3 else 0)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes.flat[0].legend(fontsize=8)
    dummy = any(r.get("dummy_weights") for r in rows)
    fig.suptitle("Performance matrix: model x preset" + (" (dummy random weights)" if dummy else ""))
    return _save(fig, path)


def plot_cost_scaling(doc: dict, path: Path) -> Path:
    """Wall time and generation tokens/s against the number of prompts and against the output length."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5), layout="constrained")
    sweeps = (
        (
            "by_prompts",
            "prompts",
            f"number of prompts ({doc['plan']['fixed_max_new_tokens']} new tokens each)",
        ),
        (
            "by_output_length",
            "max_new_tokens",
            f"output length in tokens ({doc['plan']['fixed_prompts']} prompts)",
        ),
    )
    for ax, (key, x_key, label) in zip(axes, sweeps, strict=True):
        points = doc[key]
        xs = [p[x_key] for p in points]
        ax.plot(xs, [p["wall_seconds"] for p in points], "o-", color="tab:blue", label="wall time (s)")
        ax.set_xscale("log", base=2)
        ax.set_xlabel(label)
        ax.set_ylabel("wall time (s)", color="tab:blue")
        twin = ax.twinx()
        twin.plot(xs, [p["output_tokens_per_s"] for p in points], "s--", color="tab:orange", label="tokens/s")
        twin.set_ylabel("generation tokens/s", color="tab:orange")
        ax.grid(alpha=0.3)
    fig.suptitle(
        f"Cost scaling: {doc['model']} ({doc['preset']}{', dummy weights' if doc.get('dummy_weights') else ''})"
    )
    return _save(fig, path)


# --- inline SVG for the HTML report ---

SVG_HASH_SALT = "qwen-pipe"  # matplotlib's SVG ids are hashes salted with this: stable, not random


def _svg(fig, prefix: str) -> str:
    """The figure as an `<svg>` element to inline in a page: no XML prolog, no date, and every id prefixed
    with `prefix` so that several figures on one page never share an id."""
    plt = _pyplot()
    buffer = io.StringIO()
    with plt.rc_context({"svg.hashsalt": SVG_HASH_SALT}):
        fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    return re.sub(r'(\bid="|url\(#|href="#)', rf"\g<1>{prefix}-", text)


def _colours(count: int) -> list:
    plt = _pyplot()
    cmap = plt.get_cmap("tab10" if count <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(count)]


def _below_above(value: float, low: float | None, high: float | None) -> tuple[float, float]:
    """Error-bar lengths of an interval around `value` (none where the interval is missing)."""
    if low is None or high is None:
        return 0.0, 0.0
    return max(value - low, 0.0), max(high - value, 0.0)


def accuracy_bars_svg(cells: list[dict], prefix: str = "accuracy") -> str:
    """Per dataset a group of bars, one per model x preset, with the 95% interval (`low`, `high`) as error
    bars. Only cells that scored an accuracy (status ok, `accuracy` true, a score); empty when there is none."""
    shown = [c for c in cells if c["status"] == "ok" and c.get("accuracy") and c.get("score") is not None]
    if not shown:
        return ""
    plt = _pyplot()
    datasets = list(dict.fromkeys(c["dataset"] for c in shown))
    series = list(dict.fromkeys((c["model"], c["preset"]) for c in shown))
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(min(16.0, 2.5 + 0.45 * len(series) * len(datasets)), 4.2))
    for i, ((model, preset), colour) in enumerate(zip(series, _colours(len(series)), strict=True)):
        mine = {c["dataset"]: c for c in shown if (c["model"], c["preset"]) == (model, preset)}
        xs = [d + (i - (len(series) - 1) / 2) * width for d, name in enumerate(datasets) if name in mine]
        points = [mine[name] for name in datasets if name in mine]
        ax.bar(xs, [c["score"] for c in points], width, color=colour, label=f"{model} / {preset or '–'}")
        bounded = [
            (x, c)
            for x, c in zip(xs, points, strict=True)
            if c.get("low") is not None and c.get("high") is not None
        ]
        if bounded:  # a cell without an interval gets no error bar (not a zero-length one)
            errors = [_below_above(c["score"], c["low"], c["high"]) for _, c in bounded]
            ax.errorbar(
                [x for x, _ in bounded],
                [c["score"] for _, c in bounded],
                yerr=[[e[0] for e in errors], [e[1] for e in errors]],
                fmt="none",
                capsize=3,
                elinewidth=1,
                ecolor="#333333",
            )
    top = max([1.0] + [c["high"] for c in shown if c.get("high") is not None])
    ax.set_ylim(0, top * 1.05)
    ax.set_xticks(range(len(datasets)), datasets)
    ax.set_ylabel("score (95% interval)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="model / preset")
    return _svg(fig, prefix)


def paired_deltas_svg(datasets: dict[str, dict], title: str, prefix: str) -> str:
    """One row per dataset: the delta (`b` - `a`) with its 95% interval as a horizontal error bar around 0;
    significant deltas filled red, the others (not significant, or not tested) hollow grey. Accuracies only
    (one scale); empty when no dataset has a delta."""
    shown = [
        (name, d) for name, d in datasets.items() if d.get("delta") is not None and d.get("accuracy", True)
    ]
    if not shown:
        return ""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.2, 1.3 + 0.45 * len(shown)))
    ax.axvline(0, color="#555555", linewidth=1)
    for y, (_, d) in enumerate(reversed(shown)):
        below, above = _below_above(d["delta"], d.get("low"), d.get("high"))
        colour, face = ("tab:red", "tab:red") if d.get("significant") else ("tab:gray", "white")
        ax.errorbar(
            d["delta"], y, xerr=[[below], [above]], fmt="o", capsize=3, markersize=7, color=colour, mfc=face
        )
    ax.set_yticks(range(len(shown)), [name for name, _ in reversed(shown)])
    ax.set_ylim(-0.7, len(shown) - 0.3)
    ax.set_xlabel("delta (95% interval)")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return _svg(fig, prefix)


def performance_heatmap_svg(rows: list[dict], prefix: str = "performance") -> str:
    """Models x presets coloured by generation tokens/s, each cell annotated with its tokens/s and peak
    memory; a configuration that was not measured stays grey. Empty when there is no row."""
    if not rows:
        return ""
    plt = _pyplot()
    import numpy as np

    models = list(dict.fromkeys(r["model"] for r in rows))
    presets = list(dict.fromkeys(r["preset"] for r in rows))
    by_cell = {(r["model"], r["preset"]): r for r in rows}
    values = np.full((len(models), len(presets)), np.nan)
    for (model, preset), row in by_cell.items():
        if row.get("output_tokens_per_s") is not None:
            values[models.index(model), presets.index(preset)] = row["output_tokens_per_s"]
    fig, ax = plt.subplots(figsize=(2.0 + 1.9 * len(presets), 1.2 + 0.8 * len(models)))
    cmap = plt.get_cmap("viridis").with_extremes(bad="#dddddd")
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, aspect="auto")
    for (model, preset), row in by_cell.items():
        i, j = models.index(model), presets.index(preset)
        tokens = row.get("output_tokens_per_s")
        speed = "not measured" if tokens is None else f"{fmt(tokens)} tok/s"
        text = f"{speed}\n{fmt(row.get('peak_memory_gib'))} GiB"
        if row.get("status") not in (None, "PASS"):
            text += f"\n{row['status']}"
        light = tokens is None or math.isnan(values[i, j]) or image.norm(tokens) > 0.6
        ax.text(j, i, text, ha="center", va="center", fontsize=8, color="black" if light else "white")
    ax.set_xticks(range(len(presets)), presets)
    ax.set_yticks(range(len(models)), models)
    ax.set_xlabel("preset")
    fig.colorbar(image, ax=ax, label="generation tokens/s")
    return _svg(fig, prefix)


def cost_curves_svg(doc: dict, prefix: str = "cost") -> str:
    """Wall seconds against the number of prompts and against the output length (new tokens)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained")
    sweeps = (
        ("by_prompts", "prompts", f"prompts ({doc['plan']['fixed_max_new_tokens']} new tokens each)"),
        ("by_output_length", "max_new_tokens", f"new tokens ({doc['plan']['fixed_prompts']} prompts)"),
    )
    for ax, (key, x_key, label) in zip(axes, sweeps, strict=True):
        points = doc.get(key) or []
        ax.plot([p[x_key] for p in points], [p["wall_seconds"] for p in points], "o-", color="tab:blue")
        ax.set_xscale("log", base=2)
        ax.set_xlabel(label)
        ax.set_ylabel("wall seconds")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    return _svg(fig, prefix)
