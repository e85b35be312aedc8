"""The `lm-eval` protocol against lm-evaluation-harness itself (benchmarks/vs_lm_eval.py): a few samples of
every task both run here, on the same vLLM engine and tiny model (`--shared-engine`: qwen-pipe's generate
and score functions on the LLM lm-eval loaded, so one load); every check must agree on every sample.
Then the comparison itself is attacked: a doctored lm-eval log must show up as a disagreement."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from support import ROOT, mirror_dir, require_dev_extra

pytestmark = pytest.mark.slow


def benchmark():
    spec = importlib.util.spec_from_file_location("vs_lm_eval", ROOT / "benchmarks" / "vs_lm_eval.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def side_by_side(tmp_path_factory):
    require_dev_extra("lm_eval", "vllm")
    out = tmp_path_factory.mktemp("vs") / "result.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "vs_lm_eval.py"), "--samples", "2", "--max-gen-toks", "16",
         "--shared-engine", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=900, check=False,
        env={**os.environ, "QWEN_PIPE_DATA_DIR": str(mirror_dir())},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return json.loads(out.read_text()), done.stdout


def test_every_shared_task_agrees_sample_by_sample(side_by_side):
    result, printed = side_by_side
    bench = benchmark()
    assert set(result["tasks"]) == set(bench.SHARED)
    for task, info in result["tasks"].items():
        checks = info["checks"]
        assert {"context", "score"} <= set(checks), task
        if bench.SHARED[task].get("sampled"):  # lm-eval samples it: its outputs are re-scored, not matched
            assert "output" not in checks and "loglikelihood" not in checks, task
        else:
            assert ("loglikelihood" in checks) != ("output" in checks), task  # one kind of request per task
        for name, count in checks.items():
            assert count["total"] > 0 and count["agree"] == count["total"], (task, name, info["differences"])
        assert info["max_ll_delta"] <= 1e-4, task
    # one vLLM load serves both sides here (agreement, not timing: the benchmark times them apart)
    assert result["wall_ratio"] is None and "wall time: not measured" in printed


def test_a_doctored_lm_eval_log_is_a_disagreement(side_by_side):
    """The comparison is not a rubber stamp: change one output, one log-likelihood, one score in lm-eval's
    log and each shows up in its check."""
    from pathlib import Path

    result, _ = side_by_side
    bench = benchmark()
    work = Path(result["work"])
    log = json.loads((work / "lm_eval.json").read_text())
    order = {local: tuple(pair) for local, pair in json.loads((work / "order.json").read_text()).items()}
    log["qp_gsm8k_cot"][0]["resps"][0][0] += " tampered"
    log["qp_arc_easy"][0]["resps"][0][0][0] -= 0.01
    log["qp_winogrande"][0]["acc"] = 1 - log["qp_winogrande"][0]["acc"]
    ours = work / "qwen-pipe"
    assert bench.compare("gsm8k", log, order, ours)["checks"]["output"]["agree"] == 1
    arc = bench.compare("arc_easy", log, order, ours)
    assert arc["checks"]["loglikelihood"]["agree"] < arc["checks"]["loglikelihood"]["total"]
    assert arc["max_ll_delta"] >= 0.01
    wino = bench.compare("winogrande", log, order, ours)["checks"]["score"]
    assert wino["agree"] == wino["total"] - 1
