"""The report's number format: scores keep their digits, throughputs lose theirs."""

import contextlib
from pathlib import Path

from qwen_pipe.console import fmt

from support import metrics_tree


def test_number_format_follows_the_magnitude():
    assert fmt(0.12345) == "0.1235"
    assert fmt(1.0) == "1.0000"  # a perfect score reads like the others
    assert fmt(2.0954) == "2.10"
    assert fmt(2403.9) == "2,404"
    assert fmt(-0.25) == "-0.2500"
    assert fmt(7) == "7" and fmt(2097152) == "2,097,152" and fmt(None) == "–" and fmt(True) == "yes"


def test_one_sample_has_no_stderr_and_the_report_says_so():
    """stderr of a mean over one sample is undefined: None in the metrics, "–" in the report, never 0."""
    from qwen_pipe.scoring.stats import mean_and_stderr

    assert mean_and_stderr([1.0]) == {"value": 1.0, "stderr": None, "n": 1}
    assert mean_and_stderr([]) == {"value": None, "stderr": None, "n": 0}
    assert mean_and_stderr([1.0, 0.0])["stderr"] == 0.5
    assert fmt(mean_and_stderr([0.0])["stderr"]) == "–"


def _cell(model: str, preset: str, dataset: str, **fields) -> dict:
    doc = {
        "model": model,
        "preset": preset,
        "dataset": dataset,
        "status": "ok",
        "primary_metric": "acc",
        "score": 0.5,
        "stderr": 0.1,
        "n": 100,
        "shots": 0,
        "requests": 100,
        "truncated": 0,
        "truncation_rate": 0.0,
        "failed_requests": {"truncated": 0, "prompt_too_long": 0},
        "engine": {"engine": "vllm", "version": "1"},
        "provenance": {
            "git_commit": "abc",
            "git_dirty": False,
            "qwen_pipe": "0.1.0",
            "hardware": {"cpu": "x", "cores": 2},
        },
    }
    return {**doc, **fields}


def test_truncations_are_shown_per_cell_and_flagged_above_one_percent():
    from qwen_pipe.report import render_markdown

    report = render_markdown(
        metrics_tree(
            _cell("a", "balanced", "gsm8k", truncated=1, truncation_rate=0.01),  # exactly 1%: not flagged
            _cell("a", "long_context", "gsm8k", truncated=30, truncation_rate=0.3),
        )
    )
    assert "| a | balanced | gsm8k | acc | 0.5000 | 0.1000 | – | 100 | 1/100 (1%) |" in report
    assert "| a | long_context | gsm8k | acc | 0.5000 | 0.1000 | – | 100 | 30/100 (30%) |" in report
    flag = next(line for line in report.splitlines() if line.startswith("**Truncation above 1%**"))
    assert "a x long_context x gsm8k" in flag and "balanced" not in flag


def _error_check(metrics: dict) -> dict:
    from qwen_pipe.consolidate import cell_rows
    from qwen_pipe.readiness import error_criterion
    from qwen_pipe.results import eval_documents

    return error_criterion(cell_rows(eval_documents(metrics), metrics["coverage"]))


def test_error_rate_counts_every_failed_request():
    """Truncations, prompts too long, sandbox timeouts and crashes, and failed cells all count."""
    cells = [
        _cell("a", "p", "gsm8k", failed_requests={"truncated": 2, "prompt_too_long": 1}),
        _cell(
            "a", "p", "humaneval", failed_requests={"truncated": 0, "sandbox_timeout": 1, "sandbox_crash": 1}
        ),
    ]
    check = _error_check(metrics_tree(*cells))
    assert check["value"].startswith(f"{5 / 200:.2%}") and check["status"] == "PASS"  # 2.50%
    for part in (
        "0/2 cells failed",
        "2 truncated",
        "1 prompt too long",
        "1 sandbox timeout",
        "1 sandbox crash",
    ):
        assert part in check["value"]
    failed = {
        "model": "b",
        "preset": "p",
        "dataset": "gsm8k",
        "status": "failed",
        "failure": {},
        "requests": 50,
    }
    failed["failed_requests"] = {"failed_cell": 50}  # every request of a cell that failed is lost
    check = _error_check(metrics_tree(*cells, failed))
    assert check["value"].startswith(f"{55 / 250:.2%}") and "1/3 cells failed" in check["value"]
    assert check["status"] == "FAIL"


def test_cells_of_an_earlier_configuration_are_never_counted(tmp_path):
    """DVC leaves the metrics of a preset or model taken out of the run: the report lists them apart and
    counts none of them (a stale number never reads as a result)."""
    from qwen_pipe.io import write_json
    from qwen_pipe.report import render_markdown
    from qwen_pipe.results import RunCells, load_metrics

    for preset in ("balanced", "memory_optimized"):
        cell = _cell("a", preset, "gsm8k", truncated=100, failed_requests={"truncated": 100})
        write_json(tmp_path / "eval/a" / preset / "gsm8k.json", cell)
    write_json(tmp_path / "eval/old_model/balanced/gsm8k.json", _cell("old_model", "balanced", "gsm8k"))
    write_json(tmp_path / "coverage/a/balanced.json", {"model": "a", "preset": "balanced"})
    write_json(tmp_path / "coverage/a/performance.json", {"model": "a", "preset": "performance"})
    metrics = load_metrics(tmp_path, RunCells(["a"], ["balanced"], ["gsm8k"], ["balanced"]))
    assert list(metrics["eval"]) == ["a"] and list(metrics["eval"]["a"]) == ["balanced"]
    assert list(metrics["coverage"]["a"]) == ["balanced"]
    assert sorted(metrics["stale"]) == [
        "coverage/a/performance",
        "eval/a/memory_optimized",
        "eval/old_model",
    ]
    report = render_markdown(metrics)
    assert "| old_model |" not in report and "| a | memory_optimized |" not in report
    assert "metrics/eval/a/memory_optimized" in report
    rate = _error_check(metrics)
    assert "(100/100 requests, 100 truncated;" in rate["value"]  # one cell counted, not three


GOLDEN = Path(__file__).parent / "data" / "report"
GOLDEN_RUN = dict(
    models=["tiny_small", "tiny_large"],
    generate_presets=["balanced"],
    datasets=["gsm8k", "arc_easy", "humaneval", "ifeval"],
    coverage_presets=["balanced", "performance", "memory_optimized"],
)


def _with_every_section(metrics: dict) -> dict:
    """The committed metrics plus what they lack: a failed eval cell, a coverage cell that did not load, a
    sandbox warning, a dummy-weights row, a configuration not measured and a stale cell."""
    small = metrics["eval"]["tiny_small"]["balanced"]
    small["mbpp"] = {
        "model": "tiny_small",
        "preset": "balanced",
        "dataset": "mbpp",
        "status": "failed",
        "primary_metric": "pass@1",
        "requests": 10,
        "failed_requests": {"failed_cell": 10},
        "failure": {
            "stage": "generate",
            "model": "tiny_small",
            "preset": "balanced",
            "dataset": "mbpp",
            "error_type": "RuntimeError",
            "message": "engine died",
        },
    }
    metrics["eval"]["tiny_large"]["balanced"]["humaneval"]["sandbox"] = {
        "mode": "none",
        "warning": "NO ISOLATION: model-written code ran as this user",
        "why": "no bwrap and no user namespaces",
    }
    metrics["coverage"]["tiny_small"]["long_context"] = {
        "model": "tiny_small",
        "preset": "long_context",
        "status": "FAIL",
        "error": {
            "type": "ChildDied",
            "message": "the measuring process ended (exit code -9) without a result",
        },
        "checks": {"loaded": {"status": "FAIL", "value": None, "reason": "ChildDied"}},
    }
    metrics["performance"]["rows"][0]["dummy_weights"] = True
    metrics["performance"]["missing"] = ["tiny_large/long_context"]
    metrics["stale"] = ["eval/old_model", "coverage/tiny_large/long_context"]
    return metrics


def golden_reports() -> tuple[str, str]:
    """The report of the committed metrics copy, and of it with every section, each with its analysis."""
    from qwen_pipe.analysis import analyze, required_outputs
    from qwen_pipe.report import render_markdown
    from qwen_pipe.results import RunCells, load_metrics

    run = RunCells(**GOLDEN_RUN)
    with contextlib.chdir(GOLDEN):  # the required outputs are named relative to the run's folder
        required = required_outputs(run, metrics=Path("metrics"), scores=Path("scores"))

        def render(metrics: dict) -> str:
            return render_markdown(metrics, analyze(metrics, run, True, required))

        metrics = load_metrics(Path("metrics"), run, scores=Path("scores"))
        return render(metrics), render(_with_every_section(metrics))


def test_the_report_of_the_committed_metrics_is_unchanged():
    """Golden files rendered from a copy of the committed metrics (tests/data/report/metrics): a refactor
    of the report must render the same bytes. Regenerate only for an intended change of the report:
    `python -c "import sys; sys.path[:0] = ['tests']; import test_report; test_report.write_golden()"`."""
    plain, every = golden_reports()
    assert plain == (GOLDEN / "report.md").read_text(encoding="utf-8")
    assert every == (GOLDEN / "report_every_section.md").read_text(encoding="utf-8")


def write_golden() -> None:
    plain, every = golden_reports()
    (GOLDEN / "report.md").write_text(plain, encoding="utf-8")
    (GOLDEN / "report_every_section.md").write_text(every, encoding="utf-8")
