"""`qwen-pipe plan`, as a careless user (or an attacker) meets it: token counts that match a count made by hand,
measured numbers that win over the defaults, GPU packing, one-line errors for bad input, and a profile planned
without touching params.yaml."""

from __future__ import annotations

import copy
import json
import random
from dataclasses import asdict
from pathlib import Path

import pytest
import yaml

from support import ROOT

TINY_SMALL = "tiny_small"


def params_with(changes: dict):
    """params.yaml (the embedded default) with `changes` merged in, validated as params.yaml is."""
    from qwen_pipe.config import Params

    data = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))

    def merge(into: dict, values: dict) -> None:
        for key, value in values.items():
            if isinstance(value, dict) and isinstance(into.get(key), dict):
                merge(into[key], value)
            else:
                into[key] = copy.deepcopy(value)

    merge(data, changes)
    return Params.model_validate(data)


def one_run(models: list[str], datasets: dict[str, dict], **generate) -> dict:
    return {
        "run": {"models": models, "datasets": list(datasets)},
        "tasks": datasets,
        "generate": {"presets": ["balanced"], **generate},
    }


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A working folder whose tiny model is only its tokenizer (the Qwen BPE and chat template qwen-pipe
    ships, as the tiny models have it): what the plan needs of a model. The folder is the plan's own stand-in
    (.cache/plan, written once)."""
    from qwen_pipe.plan import STAND_IN_DIR, stand_in_folder

    root = tmp_path_factory.mktemp("plan")
    (root / "data" / "models").mkdir(parents=True)
    (root / "data" / "models" / TINY_SMALL).symlink_to(stand_in_folder(ROOT / STAND_IN_DIR).resolve())
    return root


@pytest.fixture
def here(workdir, monkeypatch) -> Path:
    monkeypatch.chdir(workdir)
    return workdir


@pytest.fixture(scope="module")
def hf_tokenizer(workdir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(workdir / "data" / "models" / TINY_SMALL))


def options(root: Path, **fields):
    from qwen_pipe.plan import PlanOptions

    return PlanOptions(
        generations_dir=root / "data" / "generations",
        coverage_dir=root / "metrics" / "coverage",
        stand_in_dir=root / "data" / "models" / TINY_SMALL,  # the same files: never rebuilt
        **fields,
    )


@pytest.fixture(scope="module")
def tokenizers(workdir):
    """Loaded once for the module's plans (each plan of a fresh process loads its own)."""
    from qwen_pipe.plan import Tokenizers

    return Tokenizers(workdir / "data" / "models" / TINY_SMALL)


def plan_of(params, root: Path, tokenizers=None, **fields) -> dict:
    from qwen_pipe.plan import make_plan, source_records

    return make_plan(params, source_records(params), options(root, **fields), tokenizers=tokenizers)


def cell(plan: dict, model: str, dataset: str, preset: str = "balanced") -> dict:
    [found] = [
        c for c in plan["cells"] if (c["model"], c["dataset"], c["preset"]) == (model, dataset, preset)
    ]
    return found


def samples_of(params, dataset: str) -> list[dict]:
    from qwen_pipe.fetch import load_records
    from qwen_pipe.generate import pick_samples
    from qwen_pipe.tasks.common.registry import task_for

    records, _ = load_records(task_for(params, dataset), "embedded", None)
    return pick_samples(params, dataset, records)


# --- counts against a count made by hand ----------------------------------------------------------------


def test_a_chat_prompt_counted_by_hand(here, hf_tokenizer, tokenizers):
    """<|im_start|> user \\n Hello ␣world <|im_end|> \\n: seven tokens, with the model's tokenizer and with
    the stand-in."""
    from qwen_pipe.plan import Tokenizer

    text = "<|im_start|>user\nHello world<|im_end|>\n"
    assert len(hf_tokenizer(text, add_special_tokens=False)["input_ids"]) == 7
    real = tokenizers.get(params_with({}).model(TINY_SMALL), chat=True)
    assert not real.stand_in and real.count([text, ""]) == [7, 0]
    stand_in = Tokenizer("stand-in", "qwen-bpe-stand-in", real.renderer, True)
    assert stand_in.count([text, "", text + text]) == [7, 0, 14]


def test_generation_prompts_match_the_chat_template_counted_by_hand(here, hf_tokenizer, tokenizers):
    """gsm8k, 3 samples, 4 shots as earlier chat turns: each prompt rendered with the model's own chat
    template and tokenized by hand; the output is half the run's 32-token budget per request."""
    from qwen_pipe.tasks.common.base import PromptStyle
    from qwen_pipe.tasks.common.registry import task_for

    params = params_with(one_run([TINY_SMALL], {"gsm8k": {"sample_limit": 3}}, max_new_tokens=32))
    task = task_for(params, "gsm8k")
    by_hand = 0
    for sample in samples_of(params, "gsm8k"):
        messages = task.prompt(sample, PromptStyle(chat=True), [])
        text = hf_tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True, enable_thinking=False
        )
        assert text.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")  # the template really ran
        by_hand += len(hf_tokenizer(text, add_special_tokens=False)["input_ids"])
    plan = plan_of(params, here, tokenizers, measured=False)
    got = cell(plan, TINY_SMALL, "gsm8k")
    assert (got["samples"], got["requests"], got["prompt_tokens"]) == (3, 3, by_hand)
    assert got["output_tokens"] == 3 * 16 and got["output_source"] == "budget x 0.5"
    assert got["mode"] == "chat" and plan["units"][0]["tokenizer"].endswith("(local folder)")


def test_loglikelihood_requests_count_what_the_engine_sends(here, hf_tokenizer, tokenizers):
    """arc_easy: every choice is a request of context + continuation, split as the engine splits them, no
    output; the counts equal the engine's own token ids."""
    from qwen_pipe.engines.tokens import context_continuation_ids
    from qwen_pipe.tasks.common.registry import task_for

    params = params_with(one_run([TINY_SMALL], {"arc_easy": {"sample_limit": 4}}))
    task = task_for(params, "arc_easy")
    requests = [r for s in samples_of(params, "arc_easy") for r in task.loglikelihood_requests(s)]
    assert len(requests) > 4  # several choices per question
    by_engine = sum(
        sum(map(len, context_continuation_ids(hf_tokenizer, r.context, r.continuation))) for r in requests
    )
    got = cell(plan_of(params, here, tokenizers), TINY_SMALL, "arc_easy")
    assert (got["requests"], got["prompt_tokens"], got["output_tokens"]) == (len(requests), by_engine, 0)
    assert got["mode"] == "log-likelihood" and got["output_source"].startswith("none")


def test_a_second_turn_holds_the_first_answer(here, hf_tokenizer, tokenizers):
    """mt_bench: two requests per sample; turn 2's prompt is its own tokens plus turn 1's expected answer."""
    from qwen_pipe.plan import Counter
    from qwen_pipe.tasks.common.base import PromptStyle
    from qwen_pipe.tasks.common.registry import task_for

    params = params_with(one_run([TINY_SMALL], {"mt_bench": {"sample_limit": 2}}, max_new_tokens=32))
    task, samples = task_for(params, "mt_bench"), samples_of(params, "mt_bench")
    tokenizer = tokenizers.get(params.model(TINY_SMALL), chat=True)
    counted = Counter().generation(tokenizer, task, samples, PromptStyle(chat=True), True)
    assert counted.turn == [0, 1, 0, 1]
    got = cell(plan_of(params, here, tokenizers, measured=False), TINY_SMALL, "mt_bench")
    assert got["requests"] == 4 and got["prompt_tokens"] == sum(counted.tokens) + 2 * 16


def test_prompts_that_fill_the_context_are_not_run_and_budgets_are_capped(here, tokenizers):
    """A 200-token context: gsm8k's few-shot chat prompts do not fit (not run), the others' outputs are
    capped at what the context leaves."""
    from qwen_pipe.plan import Counter
    from qwen_pipe.tasks.common.base import PromptStyle
    from qwen_pipe.tasks.common.registry import task_for

    changes = one_run(
        [TINY_SMALL], {"gsm8k": {"sample_limit": 4}, "ifeval": {"sample_limit": 4}}, max_new_tokens=512
    )
    changes["presets"] = {"balanced": {"max_model_len": 200}}
    params = params_with(changes)
    plan = plan_of(params, here, tokenizers, measured=False)
    gsm8k, ifeval = cell(plan, TINY_SMALL, "gsm8k"), cell(plan, TINY_SMALL, "ifeval")
    assert (gsm8k["requests"], gsm8k["prompt_too_long"], gsm8k["prompt_tokens"]) == (0, 4, 0)
    tokenizer = tokenizers.get(params.model(TINY_SMALL), chat=True)
    sizes = (
        Counter()
        .generation(
            tokenizer, task_for(params, "ifeval"), samples_of(params, "ifeval"), PromptStyle(chat=True), True
        )
        .tokens
    )
    fits = [n for n in sizes if n < 200]
    assert fits and ifeval["requests"] == len(fits) and ifeval["prompt_too_long"] == len(sizes) - len(fits)
    assert ifeval["output_tokens"] == round(sum(0.5 * min(512, 200 - n) for n in fits))
    assert plan["total"]["prompt_too_long"] == 4 + len(sizes) - len(fits)


def test_thinking_gets_its_32768_budget_and_base_models_their_task_budget(here, monkeypatch):
    """Hub models whose tokenizers are not here are counted with the stand-in, and say so; a thinking run
    gives Qwen3 32,768 output tokens (long_context), its base twin the task's own budget, plain prompts."""
    import qwen_pipe.plan as plan_module
    from qwen_pipe.tasks.common.base import PromptStyle
    from qwen_pipe.tasks.common.registry import task_for

    monkeypatch.setattr(plan_module, "_cached_snapshot", lambda spec: None)  # whatever this host has cached
    changes = one_run(["qwen3_8b", "qwen3_8b_base"], {"gsm8k": {"sample_limit": 2}}, thinking=True)
    changes["generate"].update(presets=["long_context"], max_new_tokens=None)
    params = params_with(changes)
    plan = plan_of(params, here, measured=False)
    thinking, base = (
        cell(plan, "qwen3_8b", "gsm8k", "long_context"),
        cell(plan, "qwen3_8b_base", "gsm8k", "long_context"),
    )
    assert (thinking["mode"], base["mode"]) == ("thinking", "base")
    assert thinking["output_tokens"] == 2 * 16384
    task_budget = task_for(params, "gsm8k").sampling(PromptStyle(chat=False)).max_new_tokens
    assert base["output_tokens"] == 2 * task_budget // 2
    labels = {u["model"]: u["tokenizer"] for u in plan["units"]}
    assert labels["qwen3_8b"].startswith("stand-in") and "Qwen3-style chat template" in labels["qwen3_8b"]
    assert "plain prompts" in labels["qwen3_8b_base"]


def test_the_stand_in_counts_by_pieces_exactly_as_the_whole_text(here, monkeypatch):
    """The stand-in counts shared pieces once; its sums must equal the BPE over each whole text, on real
    prompts and on strings built to break the cut (line breaks, odd spaces, special tokens, contractions)."""
    import qwen_pipe.plan as plan_module
    from qwen_pipe.models.tokenizer import qwen_encoding
    from qwen_pipe.plan import Tokenizers

    monkeypatch.setattr(
        plan_module, "_cached_snapshot", lambda spec: None
    )  # the stand-in, whatever is cached
    params = params_with({})
    tokenizer = Tokenizers(here / "data" / "models" / TINY_SMALL).get(params.model("qwen3_8b"), chat=True)
    encoding = qwen_encoding()
    alphabet = [
        "\n",
        "\n\n",
        " ",
        "  ",
        "\t",
        "\r\n",
        "a",
        "Q",
        ".",
        "'s",
        "'",
        "1",
        "23",
        "é",
        "\u3000",
        "\xa0",
        "\x1c",
        "\u2028",
        "<|im_start|>",
        "<|im_end|>",
        "<think>",
        "</think>",
        "<|im_start",
        "|>",
        "#",
    ]
    rng = random.Random(7)
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(3000)]
    texts += ["foo.\n\nBar", "a\n b", "x\n\n\n  y", "It\n's", "<|im_end|>\n<|im_start|>user\nHi", "\n", ""]
    from qwen_pipe.tasks.common.base import PromptStyle
    from qwen_pipe.tasks.common.registry import get_task

    bbh = get_task("bbh", protocol="qwen")
    texts += [
        tokenizer.renderer.render(bbh.prompt(s, PromptStyle(chat=True), []), PromptStyle(chat=True))
        for s in bbh.load_embedded()[:10]
    ]
    expected = [len(encoding.encode(t, allowed_special="all")) for t in texts]
    assert tokenizer.stand_in and tokenizer.count(texts) == expected
    assert tokenizer.count(texts) == expected  # again, from the memo


# --- measured numbers win over the defaults ----------------------------------------------------------------


def write_meta(root: Path, params, model: str, dataset: str, **fields) -> Path:
    from qwen_pipe.generate import generation_settings

    settings = asdict(generation_settings(params, params.model(model), "balanced"))
    meta = {"protocol": params.protocol, "settings": settings, "output_tokens": 300, "requests": 3, **fields}
    path = root / "data" / "generations" / model / "balanced" / f"{dataset}.meta.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(meta), encoding="utf-8")
    return path


def test_measured_means_override_budgets_only_when_generated_alike(here, tokenizers):
    params = params_with(one_run([TINY_SMALL], {"gsm8k": {"sample_limit": 2}}, max_new_tokens=512))
    try:
        write_meta(here, params, TINY_SMALL, "gsm8k")  # 100 tokens per request
        got = cell(plan_of(params, here, tokenizers), TINY_SMALL, "gsm8k")
        assert got["output_tokens"] == 2 * 100 and got["output_source"].startswith("measured mean 100")
        assert (
            cell(plan_of(params, here, tokenizers, measured=False), TINY_SMALL, "gsm8k")["output_tokens"]
            == 2 * 256
        )
        other = params_with(one_run([TINY_SMALL], {"gsm8k": {"sample_limit": 2}}, max_new_tokens=64))
        got = cell(
            plan_of(other, here, tokenizers), TINY_SMALL, "gsm8k"
        )  # generated with a 512 budget, planned with 64
        assert got["output_tokens"] == 2 * 32 and "other settings" in got["output_source"]
        junk = (
            {"requests": 0},
            {"requests": "3"},
            {"requests": True},
            {"output_tokens": None},
            {"output_tokens": -5},
        )
        for broken in ({"failure": {"message": "boom"}}, *junk, {"output_tokens": float("nan")}):
            write_meta(here, params, TINY_SMALL, "gsm8k", **broken)
            got = cell(plan_of(params, here, tokenizers), TINY_SMALL, "gsm8k")
            assert got["output_tokens"] == 2 * 256 and "not used" in got["output_source"], broken
        path = write_meta(here, params, TINY_SMALL, "gsm8k")
        path.write_text("{not json", encoding="utf-8")
        assert (
            "does not parse" in cell(plan_of(params, here, tokenizers), TINY_SMALL, "gsm8k")["output_source"]
        )
    finally:
        import shutil

        shutil.rmtree(here / "data" / "generations", ignore_errors=True)


def test_measured_throughput_overrides_the_default(here, tokenizers):
    params = params_with(one_run([TINY_SMALL], {"gsm8k": {"sample_limit": 2}}, max_new_tokens=32))
    folder = here / "metrics" / "coverage" / TINY_SMALL
    folder.mkdir(parents=True, exist_ok=True)
    try:
        default = plan_of(params, here, tokenizers, measured=False)["units"][0]
        assert default["throughput"]["source"].startswith("default h100")
        measured = {"prefill_tokens_per_s": 1000.0, "output_tokens_per_s": 10.0, "engine_start_seconds": 5.0}
        (folder / "balanced.json").write_text(json.dumps({**measured, "on_gpu": True}), encoding="utf-8")
        plan = plan_of(params, here, tokenizers)
        unit, got = plan["units"][0], cell(plan, TINY_SMALL, "gsm8k")
        assert unit["throughput"] == {
            "prefill_tokens_per_s": 1000.0,
            "decode_tokens_per_s": 10.0,
            "engine_start_s": 5.0,
            "source": "measured (coverage, GPU)",
        }
        assert got["seconds"] == pytest.approx(
            got["prompt_tokens"] / 1000 + got["output_tokens"] / 10, abs=0.01
        )
        assert unit["seconds"] == pytest.approx(5.0 + got["seconds"], abs=0.1)
        junk = ({"output_tokens_per_s": 0}, {"output_tokens_per_s": "fast"}, {"prefill_tokens_per_s": None})
        for failed in ({**measured, "error": {"message": "OOM"}}, *({**measured, **j} for j in junk)):
            (folder / "balanced.json").write_text(json.dumps(failed), encoding="utf-8")
            assert plan_of(params, here, tokenizers)["units"][0]["throughput"]["source"].startswith("default")
    finally:
        import shutil

        shutil.rmtree(here / "metrics", ignore_errors=True)


def test_default_throughput_by_size_class_and_tensor_parallel():
    from qwen_pipe.plan import GPU_DEFAULTS, default_throughput

    params = params_with({})
    small, large = GPU_DEFAULTS["h100"]
    eight = default_throughput(params.model("qwen3_8b"), 32, 1, "h100")
    assert (eight.prefill_tokens_per_s, eight.decode_tokens_per_s) == (small.prefill_tokens_per_s, 32 * 120)
    assert eight.source == "default h100 7-8B"
    busy = default_throughput(params.model("qwen3_8b"), 1000, 1, "h100")
    assert busy.decode_tokens_per_s == small.decode_ceiling  # saturates
    fourteen = default_throughput(params.model("qwen2.5_14b"), 4, 2, "h100")
    assert fourteen.decode_tokens_per_s == pytest.approx(4 * large.decode_per_sequence * 2 * 0.8)
    assert "scaled" in default_throughput(params.model(TINY_SMALL), 32, 1, "h100").source


# --- GPUs: packing and tensor parallelism ----------------------------------------------------------------


def test_three_equal_units_on_two_gpus_take_two_rounds():
    from qwen_pipe.plan import pack

    makespan, schedule = pack([("a", 10.0, 1), ("b", 10.0, 1), ("c", 10.0, 1)], 2)
    assert makespan == 20.0 and sorted(s["start_s"] for s in schedule) == [0.0, 0.0, 10.0]
    assert pack([("a", 10.0, 1), ("b", 10.0, 1), ("c", 10.0, 1)], 3)[0] == 10.0
    assert pack([("a", 10.0, 1), ("b", 10.0, 1), ("c", 10.0, 1)], 8)[0] == 10.0
    assert pack([("long", 30.0, 1), *((f"s{i}", 10.0, 1) for i in range(3))], 2)[0] == 30.0  # longest first


def test_a_tensor_parallel_unit_holds_all_its_gpus():
    from qwen_pipe.errors import QwenPipeError
    from qwen_pipe.plan import pack

    makespan, schedule = pack([("tp2", 10.0, 2), ("b", 10.0, 1), ("c", 10.0, 1)], 2)
    assert makespan == 20.0 and schedule[0] == {"unit": "b", "gpus": [0], "start_s": 0.0, "end_s": 10.0}
    assert {"unit": "tp2", "gpus": [0, 1], "start_s": 10.0, "end_s": 20.0} in schedule
    with pytest.raises(QwenPipeError, match="needs 2 GPUs"):
        pack([("tp2", 10.0, 2)], 1)


def test_tensor_parallel_presets_count_their_gpus(here, tokenizers):
    changes = one_run([TINY_SMALL], {"gsm8k": {"sample_limit": 2}}, max_new_tokens=32)
    changes["presets"] = {"balanced": {"tensor_parallel_size": 2}}
    params = params_with(changes)
    plan = plan_of(params, here, tokenizers, measured=False, gpus=2)
    unit = plan["units"][0]
    assert unit["tensor_parallel_size"] == 2
    assert unit["gpu_hours"] == pytest.approx(2 * unit["seconds"] / 3600, abs=1e-4)
    assert plan["wall"]["hours"] == pytest.approx(unit["seconds"] / 3600, abs=1e-4)
    from qwen_pipe.errors import QwenPipeError

    with pytest.raises(QwenPipeError, match="needs 2 GPUs"):
        plan_of(params, here, tokenizers, measured=False, gpus=1)


# --- the command, as a careless user types it ------------------------------------------------------------


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    from qwen_pipe.cli import app
    from qwen_pipe.console import run

    with pytest.raises(SystemExit) as done:
        run(app, list(argv))
    out, err = capsys.readouterr()
    return done.value.code, out, err


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--profile", "h200"], "unknown profile 'h200'"),
        (["--profile", ""], "unknown profile ''"),
        (["--gpus", "0"], "--gpus must be 1 or more, got 0"),
        (["--gpus", "-3"], "--gpus must be 1 or more, got -3"),
        (["--output-fraction", "0"], "--output-fraction must be in (0, 1]"),
        (["--output-fraction", "1.5"], "--output-fraction must be in (0, 1]"),
        (["--output-fraction", "nan"], "--output-fraction must be in (0, 1]"),
        (["--sample-limit", "0"], "--sample-limit must be 1 or more"),
        (["--gpu-kind", "a100"], "unknown GPU kind 'a100'"),
        (["--params", "nowhere.yaml"], "nowhere.yaml not found"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(capsys, monkeypatch, argv, said):
    monkeypatch.chdir(ROOT)
    code, out, err = cli(capsys, "plan", *argv)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and out == "" and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("error: ") and said in lines[0], lines[0]


def test_the_h100_profile_is_planned_without_touching_params_yaml(mirror, capsys, monkeypatch):
    """As a user types it: twelve models, and params.yaml byte for byte as it was (a sample limit keeps the
    test short; the full splits take about half a minute here, docs/plan.md)."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("QWEN_PIPE_DATA_DIR", str(mirror))
    params_file = ROOT / "params.yaml"
    before = params_file.read_bytes()
    code, out, err = cli(capsys, "plan", "--profile", "h100", "--sample-limit", "3", "--gpus", "8", "--json")
    assert params_file.read_bytes() == before
    assert code == 0, err
    plan = json.loads(out)
    assert plan["profile"] == "h100" and plan["protocol"] == "qwen" and plan["models"] == 12
    assert len(plan["per_model"]) == 12 and len({u["model"] for u in plan["units"]}) == 12
    assert len(plan["per_dataset"]) == len(plan["datasets"]) and plan["total"]["cells"] == 12 * len(
        plan["datasets"]
    )
    assert plan["total"]["gpu_hours"] == pytest.approx(sum(u["gpu_hours"] for u in plan["units"]), abs=1e-3)
    assert plan["total"]["gpu_hours"] == pytest.approx(
        sum(d["gpu_hours"] for d in plan["per_dataset"].values()) + plan["engine_starts_gpu_hours"], abs=1e-3
    )
    assert plan["wall"]["gpus"] == 8 and plan["wall"]["hours"] <= plan["total"]["gpu_hours"]
    assert plan["wall"]["hours"] >= max(u["seconds"] for u in plan["units"]) / 3600 - 1e-3


def test_text_output_names_totals_wall_time_and_assumptions(here, capsys):
    from qwen_pipe.plan import make_plan, render_text, source_records

    params = params_with(
        one_run([TINY_SMALL], {"gsm8k": {"sample_limit": 2}, "arc_easy": {"sample_limit": 2}})
    )
    text = render_text(make_plan(params, source_records(params), options(here, measured=False, gpus=3)))
    assert "GPU-hours" in text and "wall time on 3 GPUs" in text and "assumptions:" in text
    assert "per dataset" in text and "(engine starts)" in text and "docs/plan.md" in text


# --- the stage and the report ----------------------------------------------------------------------------


def test_the_stage_reads_the_fetched_files_and_writes_no_clock(here):
    from qwen_pipe.fetch import load_records, write_dataset
    from qwen_pipe.plan import fetched_records, make_plan, source_records, stage_document
    from qwen_pipe.tasks.common.registry import task_for

    params = params_with(
        one_run([TINY_SMALL], {"gsm8k": {"sample_limit": 2}, "arc_easy": {"sample_limit": 2}})
    )
    folder = here / "fetched"
    for name in params.run.datasets:
        records, info = load_records(task_for(params, name), "embedded", None)
        write_dataset(records, info, folder)
    opts = options(here, measured=False)
    fetched = make_plan(params, fetched_records(folder), opts)
    assert fetched["cells"] == make_plan(params, source_records(params), opts)["cells"]
    document = stage_document(fetched)
    assert "planned_in_s" not in document and document["total"] == fetched["total"]


def test_the_report_shows_the_cost_plan(here):
    from qwen_pipe.console import fmt
    from qwen_pipe.html_report import render_html
    from qwen_pipe.plan import make_plan, source_records, stage_document
    from qwen_pipe.report import plan_section

    params = params_with(one_run([TINY_SMALL], {"gsm8k": {"sample_limit": 2}}))
    plan = stage_document(make_plan(params, source_records(params), options(here, measured=False)))
    markdown = "\n".join(plan_section({"plan": plan}))
    assert markdown.startswith("## Cost plan") and f"| {fmt(plan['total']['gpu_hours'])} |" in markdown
    assert "Assumptions:" in markdown and plan["assumptions"][0] in markdown
    assert plan_section({"plan": None}) == [] and plan_section({}) == []
    evil = {**plan, "units": [{**plan["units"][0], "model": "<script>alert(1)</script>"}]}
    page = render_html({"plan": evil}, None)
    assert '<section id="plan">' in page and "<script>alert(1)" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
