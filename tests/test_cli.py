"""The CLI as a user meets it: listings, and one-line errors (exit code != 0, no traceback) for bad input."""

from __future__ import annotations

import json
import os

import pytest
import yaml

from support import ROOT, is_engine_log, qwen_pipe

SIX = ["qwen3_8b", "qwen3_14b", "qwen2.5_8b", "qwen2.5_14b", "qwen_8b", "qwen_14b"]


def assert_one_line_error(done, *fragments: str) -> None:
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_every_command_has_help():
    for command in (
        ["--help"],
        ["models", "--help"],
        ["datasets", "list", "--help"],
        ["datasets", "summary", "--help"],
        ["validate", "--help"],
        ["eval", "--help"],
        ["coverage", "--help"],
        ["profile", "--help"],
    ):
        done = qwen_pipe(*command)
        assert done.returncode == 0 and "Usage" in done.stdout, command


def test_models_lists_the_six_with_hub_ids():
    done = qwen_pipe("models", "--json")
    assert done.returncode == 0
    by_name = {m["name"]: m for m in json.loads(done.stdout)}
    assert set(SIX) <= set(by_name)
    assert by_name["qwen2.5_8b"]["hf_id"] == "Qwen/Qwen2.5-7B-Instruct"
    assert by_name["qwen_14b"]["trust_remote_code"] is True
    assert by_name["qwen3_8b"]["supports_thinking"] is True


def test_validate_lists_every_configuration():
    done = qwen_pipe("validate", "--json")
    assert done.returncode == 0, done.stderr
    checks = [c for c in json.loads(done.stdout) if c["model"] in SIX]
    assert len(checks) == 6 * 4  # balanced, performance, memory_optimized, long_context
    for check in checks:
        assert check["status"] in {"PASS", "FAIL"} and check["reasons"] and check["memory"]["total_gib"] > 0
    table = qwen_pipe("validate").stdout
    assert sum(line.split()[0] in SIX for line in table.splitlines() if line.strip()) == 6 * 4


def test_datasets_list_has_source_split_n_metric():
    rows = json.loads(qwen_pipe("datasets", "list", "--json").stdout)
    gsm8k = next(r for r in rows if r["name"] == "gsm8k")
    assert gsm8k == {
        **gsm8k,
        "source": "openai/gsm8k (main)",
        "split": "test",
        "n": 1319,
        "metric": "flexible_match",
    }


def test_unknown_model_preset_dataset():
    assert_one_line_error(
        qwen_pipe("eval", "--models", "qwen9", "--datasets", "gsm8k"), "unknown model 'qwen9'", "qwen3_8b"
    )
    assert_one_line_error(
        qwen_pipe("eval", "--models", "tiny_small", "--datasets", "gsm8k", "--preset", "warp"),
        "unknown preset 'warp'",
        "balanced",
    )
    assert_one_line_error(
        qwen_pipe("eval", "--models", "tiny_small", "--datasets", "gsm9k"), "unknown dataset 'gsm9k'", "gsm8k"
    )
    assert_one_line_error(
        qwen_pipe("coverage", "--models", "nope", "--validate-only"), "unknown model 'nope'"
    )


def test_malformed_params_file(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text(
        (ROOT / "params.yaml").read_text().replace("models: [tiny_small, tiny_large]", "models: [tiny_small")
    )
    assert_one_line_error(qwen_pipe("validate", "--params", str(bad)), "not valid YAML", "fix:")
    bad.write_text((ROOT / "params.yaml").read_text().replace("max_num_seqs: 32", "max_num_seqs: lots"))
    assert_one_line_error(qwen_pipe("models", "--params", str(bad)), "presets.balanced.max_num_seqs")


def test_dataset_missing_offline(tmp_path):
    empty = tmp_path / "mirror"
    empty.mkdir()
    done = qwen_pipe(
        "eval",
        "--models",
        "tiny_small",
        "--datasets",
        "gsm8k",
        "--engine",
        "oracle",
        "--data-dir",
        str(empty),
    )
    assert_one_line_error(done, "gsm8k/test.jsonl not found", "--data-dir")
    done = qwen_pipe(
        "eval",
        "--models",
        "tiny_small",
        "--datasets",
        "gsm8k",
        "--engine",
        "oracle",
        "--data-dir",
        str(tmp_path / "nowhere"),
    )
    assert_one_line_error(done, "does not exist")


def test_dataset_from_the_hub_offline(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text((ROOT / "params.yaml").read_text().replace("source: embedded ", "source: hub "))
    done = qwen_pipe(
        "eval",
        "--models",
        "tiny_small",
        "--datasets",
        "gsm8k",
        "--engine",
        "oracle",
        "--params",
        str(params),
        env={"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"},
    )
    assert_one_line_error(done, "cannot load openai/gsm8k", "mirror")


def test_renamed_field_in_mirror_file(tmp_path, mirror):
    broken = tmp_path / "gsm8k"
    broken.mkdir()
    text = (mirror / "gsm8k" / "test.jsonl").read_text().replace('"question":', '"problem":')
    (broken / "test.jsonl").write_text(text)
    done = qwen_pipe(
        "eval",
        "--models",
        "tiny_small",
        "--datasets",
        "gsm8k",
        "--engine",
        "oracle",
        "--data-dir",
        str(tmp_path),
    )
    assert_one_line_error(done, "test.jsonl", "lacks field(s) question", "expected fields question, answer")


def eval_with_vllm(project, tiny_model_dir, *flags: str):
    """`qwen-pipe eval` with the real vLLM engine on the tiny model, 2 gsm8k samples, in a fresh working
    folder: an empty response cache, so the engine loads and logs."""
    project.mkdir()
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["generate"]["max_new_tokens"] = 8
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (project / "data" / "models").mkdir(parents=True)
    os.symlink(tiny_model_dir, project / "data" / "models" / "tiny_small")
    return qwen_pipe(
        *flags,
        "eval", "--engine", "vllm", "--models", "tiny_small", "--datasets", "gsm8k", "--sample-limit", "2",
        "--json",
        cwd=project,
        env={"QWEN_PIPE_VERBOSE": "0", "QWEN_PIPE_LOG_DIR": str(project / "logs"), "QWEN_PIPE_PROGRESS": "0"},
    )  # fmt: skip


@pytest.mark.slow
def test_eval_verbose_shows_the_engine_log_on_stderr_and_json_keeps_stdout(tmp_path, tiny_model_dir):
    """One cold vLLM eval: with -v the engine's own lines reach stderr, and with --json stdout is still the
    document alone. Without -v the engine's lines go to a log file, not the console: the pipeline test
    checks that on its cold `dvc repro` (test_pipeline_e2e.py::test_the_console_shows_qwen_pipes_lines_only)."""
    done = eval_with_vllm(tmp_path / "project", tiny_model_dir, "-v")
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)  # nothing but the document on stdout, even with the engine talking
    assert summary["results"]["tiny_small"]["gsm8k"]["n"] == 2
    assert sum(is_engine_log(line) for line in done.stderr.splitlines()) >= 5
    lines = [line for line in done.stderr.splitlines() if line.startswith("generate ")]
    assert lines and "2 generated" in lines[0] and "tokens/s" in lines[0]
