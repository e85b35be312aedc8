"""Profiles: one switch between the embedded default and the full H100 run, comments kept."""

from __future__ import annotations

import shutil

from qwen_pipe.config import load_params

from support import ROOT, qwen_pipe

SIX = ["qwen3_8b", "qwen3_14b", "qwen2.5_8b", "qwen2.5_14b", "qwen_8b", "qwen_14b"]
TWELVE = [*SIX, *(f"{name}_base" for name in SIX)]  # the post-trained models, then their base checkpoints


def test_switch_to_h100_and_back(tmp_path):
    params = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", params)
    comments = [line for line in params.read_text().splitlines() if line.lstrip().startswith("#")]
    done = qwen_pipe("profile", "h100", "--params", str(params))
    assert done.returncode == 0, done.stderr
    h100 = load_params(params)
    assert h100.profile == "h100" and h100.run.models == TWELVE and len(h100.run.datasets) == 18
    # a named local judge, the published protocol of reading its judgment (docs/judge.md)
    assert (h100.judge.model, h100.judge.engine, h100.judge.verdict) == ("qwen3_14b", "vllm", "generate")
    assert h100.judge.max_new_tokens is None and h100.judge.preset == "long_context"
    assert (
        h100.fetch.source == "auto"
        and h100.coverage.load_format == "dummy"
        and h100.engine.enforce_eager is None
    )
    assert all(h100.task_params(d).sample_limit is None for d in h100.run.datasets)
    assert [line for line in params.read_text().splitlines() if line.lstrip().startswith("#")] == comments
    assert qwen_pipe("profile", "embedded", "--params", str(params)).returncode == 0
    embedded = load_params(params)
    original = load_params(ROOT / "params.yaml")
    assert (
        embedded.run == original.run
        and embedded.fetch == original.fetch
        and embedded.engine == original.engine
        and embedded.judge == original.judge
    )


def test_unknown_profile(tmp_path):
    params = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", params)
    done = qwen_pipe("profile", "a100", "--params", str(params))
    assert done.returncode == 2 and "unknown profile 'a100'" in done.stderr and "h100" in done.stderr


def test_a_profile_of_params_yaml_adds_to_and_replaces_the_shipped_ones(tmp_path):
    params = tmp_path / "params.yaml"
    text = (ROOT / "params.yaml").read_text()
    assert "\nprofiles:" not in text  # DVC parses params.yaml once per stage: the shipped ones live apart
    params.write_text(
        text
        + "profiles:\n"
        + "  mine: {run: {models: [tiny_small], datasets: [gsm8k]}}\n"
        + "  h100: {generate: {max_new_tokens: 64}}\n"
    )
    assert qwen_pipe("profile", "mine", "--params", str(params)).returncode == 0
    mine = load_params(params)
    assert mine.profile == "mine" and mine.run.models == ["tiny_small"] and mine.run.datasets == ["gsm8k"]
    assert "models: [tiny_small]" in params.read_text()  # flow lists stay on one line
    assert qwen_pipe("profile", "h100", "--params", str(params)).returncode == 0
    assert load_params(params).generate.max_new_tokens == 64  # replaced by name: the shipped h100 is not used
    assert load_params(params).run.models == ["tiny_small"]
