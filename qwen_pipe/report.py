"""The report: Markdown whose every number is read from the metrics files (never computed anew here)."""

from __future__ import annotations

from pathlib import Path

from qwen_pipe.io import read_json

METRICS = Path("metrics")


def fmt(value, digits: int = 4) -> str:
    """The one number format of the report (tests compare it with the metrics files)."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(c) if not isinstance(c, str) else c for c in row) + " |" for row in rows]
    return lines


def load_metrics(root: Path = METRICS) -> dict:
    """Every metrics document the pipeline wrote, by stage."""

    def nested(sub: str) -> dict[str, dict[str, dict]]:
        out: dict[str, dict[str, dict]] = {}
        for path in sorted((root / sub).glob("*/*.json")):
            out.setdefault(path.parent.name, {})[path.stem] = read_json(path)
        return out

    optional = {name: root / f"{name}.json" for name in ("validate", "scaling")}
    return {
        "eval": nested("eval"),
        "coverage": nested("coverage"),
        **{name: read_json(path) if path.is_file() else None for name, path in optional.items()},
    }


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
                {"check": label, "value": f"{passed}/{len(cells)} configurations", "status": "PASS" if passed == len(cells) else "FAIL"}
            )
    evals = [doc for by_dataset in metrics["eval"].values() for doc in by_dataset.values()]
    if evals:
        checks.append({"check": "evaluations with results", "value": f"{len(evals)} model x dataset cells", "status": "PASS"})
    return checks


def render_markdown(metrics: dict, title: str = "qwen-pipe report") -> str:
    lines = [f"# {title}", ""]
    evals = metrics["eval"]
    any_doc = next((d for by in evals.values() for d in by.values()), None)
    if any_doc:
        prov = any_doc["provenance"]
        hw = prov["hardware"]
        lines += [
            f"Commit `{prov['git_commit']}`{' (dirty)' if prov['git_dirty'] else ''}, qwen-pipe {prov['qwen_pipe']}, "
            f"engine {any_doc['engine']['engine']} {any_doc['engine']['version']}, "
            f"hardware: {hw.get('gpu') or hw.get('cpu')} ({hw.get('gpu_count') or hw.get('cores')} "
            f"{'GPUs' if hw.get('gpu') else 'cores'}).",
            "",
        ]
    lines += ["## Readiness", ""]
    lines += _table(["check", "measured", "status"], [[c["check"], c["value"], c["status"]] for c in readiness(metrics)])
    lines.append("")

    if evals:
        lines += ["## Accuracy", ""]
        samples = any(d.get("embedded_sample") for by in evals.values() for d in by.values())
        if samples:
            lines += [
                "Datasets marked * are small samples written for the embedded default, not the benchmarks: "
                "never compare them with published numbers.",
                "",
            ]
        rows = []
        for model, by_dataset in sorted(evals.items()):
            for dataset, doc in sorted(by_dataset.items()):
                rows.append(
                    [
                        model,
                        dataset + (" *" if doc.get("embedded_sample") else ""),
                        doc["primary_metric"],
                        doc["score"],
                        doc["stderr"],
                        doc["n"],
                        doc["shots"],
                        "on" if doc.get("thinking") else "off",
                    ]
                )
        lines += _table(["model", "dataset", "metric", "score", "stderr", "n", "shots", "thinking"], rows)
        lines.append("")

    coverage = metrics["coverage"]
    if coverage:
        lines += ["## Coverage (load, throughput, memory)", ""]
        rows = []
        for model, by_preset in sorted(coverage.items()):
            for preset, doc in sorted(by_preset.items()):
                rows.append(
                    [
                        model,
                        preset,
                        doc["status"],
                        doc.get("load_seconds"),
                        doc.get("output_tokens_per_s"),
                        doc.get("prefill_tokens_per_s"),
                        doc.get("peak_gpu_allocated_gib") or doc.get("peak_rss_gib"),
                        doc.get("memory_fraction"),
                        "yes" if doc.get("dummy_weights") else "no",
                    ]
                )
        lines += _table(
            ["model", "preset", "status", "load s", "output tok/s", "prefill tok/s", "peak GiB", "memory fraction", "dummy weights"],
            rows,
        )
        lines.append("")

    scaling = metrics.get("scaling")
    if scaling and scaling["pairs"]:
        lines += ["## Scaling (large vs small, per family)", ""]
        rows = [
            [p["family"], p["small"], p["large"], p["parameters"]["ratio"], p["throughput_ratio"], p["throughput_efficiency"], p["memory_ratio"], p["memory_efficiency"], p["mean_delta"]]
            for p in scaling["pairs"]
        ]
        lines += _table(
            ["family", "small", "large", "parameter ratio", "throughput ratio", "throughput efficiency", "memory ratio", "memory efficiency", "mean accuracy delta"],
            rows,
        )
        lines.append("")
        rows = [
            [p["family"], dataset, d["small"], d["large"], d["delta"], d["delta_stderr"], d["significant"]]
            for p in scaling["pairs"]
            for dataset, d in sorted(p["datasets"].items())
        ]
        if rows:
            lines += _table(["family", "dataset", "small", "large", "delta", "delta stderr", "significant"], rows)
            lines.append("")

    validate = metrics.get("validate")
    if validate:
        lines += ["## Configurations (validate)", ""]
        rows = [
            [c["model"], c["preset"], c["status"], c["memory"]["total_gib"], c["memory"]["budget_gib"], "; ".join(c["reasons"])]
            for c in validate["checks"]
        ]
        lines += _table(["model", "preset", "status", "estimate GiB", "budget GiB", "reasons"], rows)
        lines.append("")
    return "\n".join(lines)
