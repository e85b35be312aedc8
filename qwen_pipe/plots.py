"""Figures as PNG files (matplotlib, Agg backend: no display needed), drawn from metrics documents."""

from __future__ import annotations

from pathlib import Path

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
