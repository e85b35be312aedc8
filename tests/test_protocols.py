"""Protocols: a named setting decides prompts, shots, stops, budgets, extraction and sampling, and travels
with every result (metadata, metrics, cache keys). Written to break that: a protocol that leaks into
another's cache, a chat template under lm-eval, Qwen's sampling on a base model, a task silently run
under a protocol it does not reproduce, a score of one protocol's answers under another's rules."""

from __future__ import annotations

import json

import pytest
import yaml

from support import ROOT, lm_eval_tasks, mirror_dir, qwen_pipe


def params_with(**changes):
    from qwen_pipe.config import load_params

    params = load_params(ROOT / "params.yaml")
    generate = params.generate.model_copy(update=changes.pop("generate", {}))
    return params.model_copy(update={**changes, "generate": generate})


def oracle_records(task, samples, style):
    from qwen_pipe.engines.oracle import OracleEngine
    from qwen_pipe.generate import GenerationSettings, generate_records
    from qwen_pipe.prompting import PromptRenderer

    renderer = PromptRenderer(params_with().model("tiny_small"))
    return generate_records(task, samples, OracleEngine("x"), renderer, GenerationSettings(style=style))


def mirror_samples(task):
    return [{"id": task.sample_id(r, i), **r} for i, r in enumerate(task.load_mirror(mirror_dir()))]


# --- the setting -----------------------------------------------------------------------------------------
def test_an_unknown_protocol_is_a_one_line_error_everywhere(tmp_path):
    params = tmp_path / "params.yaml"
    text = (ROOT / "params.yaml").read_text().replace("protocol: qwen-pipe", "protocol: lm_eval")
    params.write_text(text)
    done = qwen_pipe("validate", "--params", str(params))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "unknown protocol 'lm_eval'" in done.stderr and "lm-eval, qwen, qwen-pipe" in done.stderr
    for args in (["datasets", "list", "--protocol", "qwen3"], ["eval", "--models", "tiny_small",
                 "--datasets", "gsm8k", "--protocol", "LM-EVAL", "--engine", "oracle"]):  # fmt: skip
        done = qwen_pipe(*args)
        assert done.returncode == 2 and "unknown protocol" in done.stderr and "Traceback" not in done.stderr


def test_lm_eval_gives_every_model_plain_prompts_and_never_thinks():
    from qwen_pipe.generate import generation_settings, prompt_style

    params = params_with(protocol="lm-eval", generate={"thinking": True})
    for name in ("qwen3_8b", "qwen3_8b_base", "qwen2.5_8b", "tiny_small"):
        spec = params.model(name)
        style = prompt_style(params, spec)
        assert not style.chat and not style.enable_thinking, name
        settings = generation_settings(params, spec, "balanced")
        assert settings.temperature == 0.0 and not settings.long_output, name


def test_qwen_samples_post_trained_models_as_published_and_leaves_base_models_greedy():
    from qwen_pipe.generate import generation_settings

    for thinking, expected in (
        (False, {"temperature": 0.7, "top_p": 0.8, "top_k": 20, "presence_penalty": 1.5}),
        (True, {"temperature": 0.6, "top_p": 0.95, "top_k": 20, "presence_penalty": 0.0}),
    ):
        params = params_with(protocol="qwen", generate={"thinking": thinking, "max_new_tokens": None})
        settings = generation_settings(params, params.model("qwen3_8b"), "long_context")
        assert {k: getattr(settings, k) for k in expected} == expected
        assert settings.style.chat and settings.style.enable_thinking is thinking
        assert settings.long_output and settings.budget(SamplingParams_(512)) == 32768
        base = generation_settings(params, params.model("qwen3_8b_base"), "long_context")
        assert (base.temperature, base.top_k, base.long_output) == (0.0, -1, False)
        assert base.budget(SamplingParams_(512)) == 512
    # Qwen2.5 has no thinking mode: non-thinking sampling even when thinking is asked for
    params = params_with(protocol="qwen", generate={"thinking": True})
    assert generation_settings(params, params.model("qwen2.5_8b"), "balanced").temperature == 0.7
    # qwen-pipe keeps the preset's greedy sampling for the same model
    params = params_with(protocol="qwen-pipe")
    assert generation_settings(params, params.model("qwen3_8b"), "balanced").temperature == 0.0


def SamplingParams_(budget: int):
    from qwen_pipe.engines.base import SamplingParams

    return SamplingParams(max_new_tokens=budget)


def test_two_protocols_never_share_a_cached_answer_even_for_the_same_request(tmp_path):
    from qwen_pipe.engines.base import GenerationRequest, LoglikelihoodRequest, SamplingParams
    from qwen_pipe.generate import ResponseCache

    request = GenerationRequest("Question: 1+1?\nAnswer:", SamplingParams(max_new_tokens=8))
    continuation = LoglikelihoodRequest("Question: sky?\nAnswer:", " blue")
    keys = {
        name: (
            ResponseCache(tmp_path / name, "local:abc", {"engine": "vllm"}, protocol=name).generation_key(
                request
            ),
            ResponseCache(tmp_path / name, "local:abc", {"engine": "vllm"}, protocol=name).loglikelihood_key(
                continuation
            ),
        )
        for name in ("qwen-pipe", "lm-eval", "qwen")
    }
    assert len({k[0] for k in keys.values()}) == 3 and len({k[1] for k in keys.values()}) == 3


def test_cell_inputs_and_request_fingerprints_change_with_the_protocol():
    from qwen_pipe.generate import cell_inputs
    from qwen_pipe.tasks.common.registry import get_task
    from qwen_pipe.tasks.common.requests import requests_summary

    records = get_task("gsm8k").load_embedded()[:3]
    records = [{"id": f"g{i}", **r} for i, r in enumerate(records)]
    fingerprints = {p: requests_summary(get_task("gsm8k", protocol=p), records)["sha256"] for p in
                    ("qwen-pipe", "lm-eval", "qwen")}  # fmt: skip
    assert len(set(fingerprints.values())) == 3
    # a log-likelihood task asks the same under every protocol, yet its fingerprint names the protocol
    arc = [{"id": f"a{i}", **r} for i, r in enumerate(get_task("arc_easy").load_embedded()[:3])]
    assert (
        requests_summary(get_task("arc_easy", protocol="lm-eval"), arc)["sha256"]
        != requests_summary(get_task("arc_easy"), arc)["sha256"]
    )
    info = {"rows": 3, "sha256": "x", "requests": {"sha256": "y"}}
    digests = {
        p: cell_inputs(
            params_with(protocol=p), "tiny_small", "balanced", "oracle", {"gsm8k": (records, info)}
        )
        for p in ("qwen-pipe", "lm-eval")
    }
    assert digests["qwen-pipe"] != digests["lm-eval"]


def test_answers_generated_under_one_protocol_are_never_scored_under_another(tmp_path):
    from qwen_pipe.cells import Cell, output_layout
    from qwen_pipe.errors import QwenPipeError
    from qwen_pipe.io import write_json, write_jsonl
    from qwen_pipe.score import score_cell
    from qwen_pipe.tasks.common.registry import get_task

    layout = output_layout(tmp_path, tmp_path / "cache")
    cell = Cell("tiny_small", "balanced", "gsm8k")
    write_jsonl(layout.generation(cell), [])
    write_json(layout.meta(cell), {"protocol": "qwen-pipe", "settings": {"style": {"chat": True}}})
    with pytest.raises(QwenPipeError, match="generated under protocol qwen-pipe, scored under lm-eval"):
        score_cell(get_task("gsm8k", protocol="lm-eval"), [], layout, cell)
    # a metadata file from before protocols is the default protocol's
    write_json(layout.meta(cell), {"settings": {"style": {"chat": True}}})
    with pytest.raises(QwenPipeError, match="generated under protocol qwen-pipe"):
        score_cell(get_task("gsm8k", protocol="qwen"), [], layout, cell)


# --- which tasks each protocol has ---------------------------------------------------------------------------
@pytest.mark.parametrize("dataset", ["mt_bench"])
def test_a_task_without_an_lm_eval_counterpart_refuses_the_lm_eval_protocol(dataset):
    from qwen_pipe.errors import QwenPipeError
    from qwen_pipe.tasks.common.registry import get_task

    with pytest.raises(QwenPipeError, match=f"{dataset} has no lm-evaluation-harness 0.4.13 task"):
        get_task(dataset, protocol="lm-eval")
    assert get_task(dataset, protocol="qwen").protocol == "qwen"


def test_eval_under_lm_eval_with_a_dataset_it_lacks_is_one_line_before_any_engine_starts(tmp_path):
    done = qwen_pipe("eval", "--models", "tiny_small", "--datasets", "gsm8k,mt_bench", "--protocol", "lm-eval",
                     "--engine", "vllm", "--output-dir", str(tmp_path))  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: mt_bench has no lm-evaluation-harness")
    assert not (tmp_path / "generations").exists()


def test_the_letter_format_is_not_an_lm_eval_task():
    from qwen_pipe.errors import QwenPipeError
    from qwen_pipe.tasks.common.registry import get_task

    with pytest.raises(QwenPipeError, match="not an lm-evaluation-harness task"):
        get_task("arc_easy", format="letters", protocol="lm-eval")


def test_every_lm_eval_task_named_exists_in_the_pinned_lm_eval():
    """A task's `lm_eval_task` is a real task of lm-eval 0.4.13 (its YAML names it), and its per-protocol
    settings name only protocols (a typo would fall back to the task's own setting without a word)."""
    lm_tasks = lm_eval_tasks()
    from qwen_pipe.tasks import task_names
    from qwen_pipe.tasks.common.registry import task_class

    declared = set()
    for path in lm_tasks.rglob("*.yaml"):
        text = path.read_text(encoding="utf-8", errors="replace")
        declared.update(line.split(":", 1)[1].strip().strip("\"'") for line in text.splitlines()
                        if line.startswith(("task:", "group:")))  # fmt: skip
    from qwen_pipe.protocols import PROTOCOLS

    for name in task_names():
        assert set(task_class(name).protocol_settings) <= set(PROTOCOLS), name
        named = task_class(name).lm_eval_task
        for lm_task in (named or "").split(", ") if named else ():
            assert lm_task in declared, (name, lm_task)


def test_datasets_list_shows_each_protocols_shots_budget_and_metric():
    done = qwen_pipe("datasets", "list", "--json")
    assert done.returncode == 0, done.stderr
    rows = {(r["name"], r["protocol"]): r for r in json.loads(done.stdout)}
    assert rows["gsm8k", "lm-eval"]["shots"] == 8 and rows["gsm8k", "lm-eval"]["budget"] == 256
    assert rows["gsm8k", "qwen-pipe"]["shots"] == 4 and rows["gsm8k", "qwen-pipe"]["budget"] == 512
    assert rows["mmlu", "lm-eval"]["shots"] == 0 and rows["mmlu", "qwen"]["shots"] == 5
    assert (
        rows["mt_bench", "lm-eval"]["metric"] is None
        and "not available" in rows["mt_bench", "lm-eval"]["setting"]
    )
    assert rows["arc_easy", "lm-eval"]["formats"] == [] and rows["arc_easy", "qwen"]["formats"] == ["letters"]
    only = json.loads(qwen_pipe("datasets", "list", "--protocol", "lm-eval", "--json").stdout)
    assert {r["protocol"] for r in only} == {"lm-eval"}


# --- lm-eval's prompts and filters ---------------------------------------------------------------------------
def test_gsm8k_under_lm_eval_is_gsm8k_cot_text_for_text():
    """The context lm-eval builds for gsm8k_cot: its 8 exemplars 'Q: ...\\nA: target' joined by blank lines."""
    lm_tasks = lm_eval_tasks()
    from qwen_pipe.tasks.common.base import PromptStyle
    from qwen_pipe.tasks.common.registry import get_task

    config = yaml.safe_load((lm_tasks / "gsm8k/gsm8k-cot.yaml").read_text())
    shots = config["fewshot_config"]["samples"]
    question = "Tom has 3 apples and eats one. How many are left?"
    expected = "".join(f"Q: {s['question']}\nA: {s['target']}\n\n" for s in shots) + f"Q: {question}\nA:"
    task = get_task("gsm8k", protocol="lm-eval")
    assert task.shots == config["num_fewshot"] == 8
    for style in (PromptStyle(chat=False), PromptStyle(chat=True)):  # lm-eval never uses a template
        assert task.prompt({"question": question, "answer": "#### 2"}, style) == expected
    sampling = task.sampling(PromptStyle(chat=False))
    assert list(sampling.stop) == config["generation_kwargs"]["until"] and sampling.max_new_tokens == 256


@pytest.mark.parametrize(
    ("reply", "strict", "flexible", "strict_ok", "flexible_ok"),
    [
        # the strict pattern ends in an unescaped "." (any character): at the end the group gives the
        # period back to it; mid-text it keeps it and "." takes the next character
        ("3 + 4 = 7. The answer is 7.", "7", "7.", 1, 1),
        # strict takes the FIRST "The answer is", flexible the LAST number
        ("The answer is 7. Wait, no: 9. The answer is 9.", "7.", "9.", 1, 0),
        ("The answer is $1,234.", "[invalid]", "$1,234.", 0, 0),  # "$" is not in the strict group
        ("no number at all", "[invalid]", "[invalid]", 0, 0),
        ("The answer is 7 apples.", "7", "7", 1, 1),  # "." matches the space
        ("The answer is 7", "[invalid]", "7", 0, 1),  # nothing after the number for "." to match
    ],
)
def test_gsm8k_lm_eval_filters_take_the_first_strict_and_the_last_flexible_match(
    reply, strict, flexible, strict_ok, flexible_ok
):
    from qwen_pipe.engines.base import Generation
    from qwen_pipe.tasks.common.base import PromptStyle
    from qwen_pipe.tasks.common.registry import get_task

    task = get_task("gsm8k", protocol="lm-eval")
    score = task.score({"question": "q", "answer": "work\n#### 7"}, [Generation(reply, 1, 1, "stop")],
                       PromptStyle(chat=False))  # fmt: skip
    assert (score.extracted["strict"], score.extracted["flexible"]) == (strict, flexible)
    assert (score.metrics["strict_match"], score.metrics["flexible_match"]) == (strict_ok, flexible_ok)


def test_lm_eval_exact_match_ignores_commas_dollars_and_case_as_configured():
    from qwen_pipe.scoring.lm_eval import exact_match, regex_filter

    ignore = (",", r"\$", r"(?s).*#### ", r"\.$")
    assert exact_match("$1,234.", "1234", ignore, ignore_case=True)
    assert not exact_match("1234.5", "1234", ignore, ignore_case=True)
    assert exact_match("ABC", "abc", ignore_case=True) and not exact_match("ABC", "abc")
    assert exact_match("(A)!", "A", ignore_punctuation=True)
    assert regex_filter("x 12 and 3", r"(-?[$0-9.,]{2,})|(-?[0-9]+)", -1) == "3"
    assert regex_filter("", r"(\d+)") == "[invalid]"


def test_bbh_under_lm_eval_is_bbh_cot_fewshot_text_for_text():
    lm_tasks = lm_eval_tasks()
    from qwen_pipe.tasks.common.base import PromptStyle
    from qwen_pipe.tasks.common.registry import get_task

    task = get_task("bbh", protocol="lm-eval")
    samples = [s for s in mirror_samples(task) if s["subtask"] in ("navigate", "sports_understanding")]
    for subtask in ("navigate", "sports_understanding"):  # sports_understanding's chains follow on one line
        config = yaml.safe_load((lm_tasks / f"bbh/cot_fewshot/{subtask}.yaml").read_text())
        sample = next(s for s in samples if s["subtask"] == subtask)
        turn = "Q: {q}\nA: Let's think step by step.\n"
        shots = "".join(
            turn.format(q=s["input"]) + s["target"] + "\n\n" for s in config["fewshot_config"]["samples"]
        )
        expected = config["description"] + shots + turn.format(q=sample["input"])
        assert task.prompt(sample, PromptStyle(chat=True)) == expected, subtask
    assert task.sampling(PromptStyle(chat=False)).stop == ("</s>", "Q", "\n\n")


def test_bbh_lm_eval_answer_is_the_first_the_answer_is_without_its_last_character():
    from qwen_pipe.engines.base import Generation
    from qwen_pipe.tasks.common.base import PromptStyle
    from qwen_pipe.tasks.common.registry import get_task

    task = get_task("bbh", protocol="lm-eval")
    sample = {"target": "(B)", "subtask": "snarks", "input": "x", "cot_prompt": ""}

    def score(text):
        result = task.score(sample, [Generation(text, 1, 1, "stop")], PromptStyle(chat=False))
        return result.extracted["answer"], result.metrics["exact_match"]

    assert score("... So the answer is (B).") == ("(B)", 1.0)
    assert score("So the answer is (B).\nSo the answer is (A).") == ("(B)", 1.0)  # the first match
    # `.*` runs to the end of the line: a second answer on the same line is swallowed (lm-eval's own result)
    assert score("So the answer is (B). So the answer is (A).") == ("(B). So the answer is (A)", 0.0)
    assert score("So the answer is (b).") == ("(b)", 0.0)  # no case folding in lm-eval's bbh
    assert score("So the answer is (B)") == ("(B", 0.0)  # (?=.) eats the last character: lm-eval's own quirk
    assert score("The answer: (B)") == ("[invalid]", 0.0)


def render(template: str, doc: dict) -> str:
    """A doc_to_text template rendered as lm-eval renders it (its jinja environment keeps a final newline)."""
    from jinja2 import Environment

    return Environment(keep_trailing_newline=True).from_string(template).render(**doc)


def test_mmlu_redux_under_lm_eval_is_its_generative_task_on_the_ok_rows():
    lm_tasks = lm_eval_tasks()

    from qwen_pipe.engines.base import Generation
    from qwen_pipe.tasks.common.base import PromptStyle
    from qwen_pipe.tasks.common.registry import get_task

    task = get_task("mmlu_redux", protocol="lm-eval")
    rows = task.load_mirror(mirror_dir())
    everything = get_task("mmlu_redux").load_mirror(mirror_dir())
    assert len(rows) == 5330 and len(everything) == 5700 and {r["error_type"] for r in rows} == {"ok"}
    template = yaml.safe_load((lm_tasks / "mmlu-redux/generative/_default_template_yaml").read_text())
    for row in (rows[0], rows[-1]):
        subject = yaml.safe_load((lm_tasks / f"mmlu-redux/generative/mmlu_{row['subject']}.yaml").read_text())
        expected = subject["description"] + render(template["doc_to_text"], row)
        assert task.prompt(row, PromptStyle(chat=True)) == expected
    sample = {**rows[0], "answer": 2}

    def score(text):
        result = task.score(sample, [Generation(text, 1, 1, "stop")], PromptStyle(chat=False))
        return result.extracted["letter"], result.metrics["acc"]

    assert score(" C") == ("C", 1.0)
    assert score("The answer: C") == ("C", 1.0)  # the first capital A-D anywhere: lm-eval's "([ABCD])"
    assert score("Because C") == ("B", 0.0)  # ... which can be inside a word
    assert score("c") == ("[invalid]", 0.0)


def test_mbpp_plus_under_lm_eval_is_mbpps_prompt_on_the_plus_records():
    lm_tasks = lm_eval_tasks()

    from qwen_pipe.tasks.common.base import PromptStyle
    from qwen_pipe.tasks.common.registry import get_task

    task = get_task("mbpp_plus", protocol="lm-eval")
    record = task.load_mirror(mirror_dir())[0]
    plus = yaml.safe_load((lm_tasks / "mbpp/mbpp_plus.yaml").read_text())
    text = render(plus["doc_to_text"], record)
    prompt = task.prompt(record, PromptStyle(chat=True))
    assert prompt.endswith(text) and prompt.count("[DONE]") == 3 and task.shots == 3
    program = task.test_program(record, "x = 1")
    assert program.test == "\n".join(record["test_list"][:3]) and "inputs" not in program.test
    assert task.answer_source(record, "```python\ncode\n```") == "```python\ncode\n```"
    assert task.sampling(PromptStyle(chat=True)).stop == ("[DONE]",)


def test_humaneval_and_mbpp_under_lm_eval_run_the_reply_as_lm_eval_builds_it():
    from qwen_pipe.tasks.common.base import PromptStyle
    from qwen_pipe.tasks.common.registry import get_task

    humaneval = get_task("humaneval", protocol="lm-eval")
    record = humaneval.load_embedded()[0]
    reply = "    return 1\n```\nsome prose"
    assert humaneval.answer_source(record, reply) == record["prompt"] + reply  # as is: no extraction
    assert humaneval.prompt(record, PromptStyle(chat=True)) == record["prompt"]
    assert humaneval.sampling(PromptStyle(chat=True)).stop == ("\nclass", "\ndef", "\n#", "\nif", "\nprint")
    mbpp = get_task("mbpp", protocol="lm-eval")
    row = next(r for r in mbpp.all_rows(mirror_dir()) if r["test_setup_code"])
    assert mbpp.test_program(row, "x").setup == ""  # lm-eval runs the three asserts only
    assert get_task("mbpp").test_program(row, "x").setup == row["test_setup_code"]
    assert isinstance(mbpp.prompt(row, PromptStyle(chat=True)), str)
    assert mbpp.sampling(PromptStyle(chat=True)).max_new_tokens == 256


@pytest.mark.parametrize("dataset", ["gsm8k", "bbh", "math500", "ifeval", "mmlu", "mmlu_redux"])
def test_the_oracle_scores_one_under_lm_eval_on_the_full_mirror(dataset):
    """lm-eval's gold answer passes lm-eval's extraction on every sample (bar the listed ones); the other
    protocols share the tasks' own prompts and extraction, which test_oracle.py proves."""
    from qwen_pipe.score import score_records
    from qwen_pipe.tasks.common.registry import get_task

    for protocol in ("lm-eval",):
        task = get_task(dataset, protocol=protocol)
        samples = mirror_samples(task)
        style = PromptStyleFor(task)
        _, aggregate = score_records(task, samples, oracle_records(task, samples, style), style)
        expected = 1.0 - len(task.oracle_exceptions) / len(samples)
        assert aggregate[task.primary_metric]["value"] >= expected, (dataset, protocol)
        if not task.oracle_exceptions:
            assert aggregate[task.primary_metric]["value"] == 1.0, (dataset, protocol)


def PromptStyleFor(task):
    from qwen_pipe.tasks.common.base import PromptStyle

    return PromptStyle(chat=False)


# --- validate and the budget ------------------------------------------------------------------------------------
def test_validate_caps_qwens_non_thinking_budget_at_the_context_and_keeps_thinking_strict():
    from qwen_pipe.config import GenerateParams
    from qwen_pipe.validation import request_fit

    params = params_with()
    requests = {"prompt_tokens": {"base": 900, "chat": 1000, "thinking": 1000},
                "output_tokens": {"base": 512, "chat": 512, "thinking": 512}, "turns": 1}  # fmt: skip
    qwen25 = params.model("qwen2.5_8b")  # 32,768 positions: prompt + 32,768 cannot fit
    fit = request_fit(qwen25, params.preset("long_context"), "gsm8k", requests, GenerateParams(), "qwen")
    assert fit.fits and fit.budget == 32768 and fit.output_tokens == fit.context - fit.prompt_tokens
    # the cap must still leave the task's own budget
    tight = {**requests, "prompt_tokens": {k: 3800 for k in requests["prompt_tokens"]}}
    fit = request_fit(qwen25, params.preset("balanced"), "gsm8k", tight, GenerateParams(), "qwen")
    assert not fit.fits and fit.output_tokens < 512
    from qwen_pipe.validation import _misfit

    message = _misfit(fit)  # the prompt counts the chat template's margin (64 tokens)
    assert (
        message.startswith("gsm8k: 3,864 prompt tokens leave 232 of context 4,096")
        and "long_context" in message
    )
    # thinking keeps its whole budget: 32,768 on a 4,096 preset does not fit
    fit = request_fit(params.model("qwen3_8b"), params.preset("balanced"), "gsm8k", requests,
                      GenerateParams(thinking=True), "qwen")  # fmt: skip
    assert not fit.fits and fit.budget is None and fit.output_tokens == 32768
    # a base model under qwen: plain prompt, the task's own budget
    fit = request_fit(params.model("qwen3_8b_base"), params.preset("balanced"), "gsm8k", requests,
                      GenerateParams(), "qwen")  # fmt: skip
    assert fit.fits and fit.style == "base" and fit.output_tokens == 512
    # under lm-eval a chat model is measured as a plain prompt too
    fit = request_fit(qwen25, params.preset("balanced"), "gsm8k", requests, GenerateParams(), "lm-eval")
    assert fit.style == "base" and fit.output_tokens == 512


# --- end to end through the CLI -------------------------------------------------------------------------------
def test_eval_records_the_protocol_in_every_result_and_the_report(tmp_path):
    for protocol in ("lm-eval", "qwen"):
        out = tmp_path / protocol
        done = qwen_pipe("eval", "--engine", "oracle", "--models", "tiny_small", "--datasets", "gsm8k,arc_easy",
                         "--sample-limit", "5", "--protocol", protocol, "--output-dir", str(out),
                         "--cache-dir", str(tmp_path / "cache"), "--json")  # fmt: skip
        assert done.returncode == 0, done.stderr
        summary = json.loads(done.stdout)
        assert summary["protocol"] == protocol
        for dataset in ("gsm8k", "arc_easy"):
            assert summary["results"]["tiny_small"][dataset]["protocol"] == protocol
            assert summary["results"]["tiny_small"][dataset]["score"] == 1.0
            info = json.loads((out / "scores/tiny_small/balanced" / f"{dataset}.run.json").read_text())
            assert info["protocol"] == protocol  # the metrics file's run-info sidecar
            meta = json.loads((out / "generations/tiny_small/balanced" / f"{dataset}.meta.json").read_text())
            assert meta["protocol"] == protocol
        assert f"Protocol {protocol}," in (out / "report.md").read_text()
        shots = summary["results"]["tiny_small"]["gsm8k"]["shots"]
        assert shots == (8 if protocol == "lm-eval" else 4)


# --- sampled runs: a seed per request, n repeats ---------------------------------------------------------------
class SeedEcho:
    """Answers with the request's seed, its history length and its prompt's tail: what a sampled engine
    must make distinct per request."""

    def __init__(self):
        from qwen_pipe.engines.base import EngineInfo

        self.info = EngineInfo("echo", "1", "m")
        self.seen = []

    def generate(self, requests):
        from qwen_pipe.engines.base import Generation

        self.seen += requests
        return [Generation(f"#### {r.sampling.seed % 3}", 1, 1, "stop") for r in requests]


def test_sampled_runs_answer_each_request_n_times_with_its_own_seed():
    from qwen_pipe.generate import GenerationSettings, generate_records
    from qwen_pipe.prompting import PromptRenderer
    from qwen_pipe.score import score_records
    from qwen_pipe.tasks.common.base import PromptStyle
    from qwen_pipe.tasks.common.registry import get_task

    task = get_task("gsm8k")
    samples = [{"id": f"s{i}", **r} for i, r in enumerate(task.load_embedded()[:4])]
    style = PromptStyle(chat=False)
    settings = GenerationSettings(style=style, temperature=0.7, repeats=3)
    engine = SeedEcho()
    records = generate_records(
        task, samples, engine, PromptRenderer(params_with().model("tiny_small")), settings
    )
    seeds = [r.sampling.seed for r in engine.seen]
    assert len(engine.seen) == 12 and len(set(seeds)) == 12  # every sample x repeat its own seed
    for record in records:
        assert [r["repeat"] for r in record["responses"]] == [0, 1, 2]
    again = SeedEcho()
    generate_records(task, samples, again, PromptRenderer(params_with().model("tiny_small")), settings)
    assert [r.sampling.seed for r in again.seen] == seeds  # reproducible
    rows, aggregate = score_records(task, samples, records, style, repeats=3)
    spread = aggregate.pop("_repeats")
    assert spread["n"] == 3 and len(spread["values"]) == 3
    assert aggregate["flexible_match"]["n"] == 12  # every repeat of every sample
    for row in rows:
        assert len(row["extracted"]["repeats"]) == 3
        assert 0.0 <= row["metrics"]["flexible_match"] <= 1.0
    mean = sum(spread["values"]) / 3
    assert abs(spread["mean"] - mean) < 1e-12 and abs(aggregate["flexible_match"]["value"] - mean) < 1e-12
    # a records file with responses that do not split into the repeats is a one-line error
    from qwen_pipe.errors import QwenPipeError

    with pytest.raises(QwenPipeError, match="cannot be 2 repeats"):
        score_records(task, samples, records, style, repeats=2)


def test_greedy_runs_answer_once_whatever_repeats_says():
    from qwen_pipe.generate import generation_settings

    params = params_with(protocol="qwen", generate={"repeats": 4})
    assert generation_settings(params, params.model("qwen3_8b"), "balanced").repeats == 4  # sampled
    assert generation_settings(params, params.model("qwen3_8b_base"), "balanced").repeats == 1  # greedy
    params = params_with(protocol="qwen-pipe", generate={"repeats": 4})
    assert generation_settings(params, params.model("qwen3_8b"), "balanced").repeats == 1


def test_a_repeated_conversation_sees_only_its_own_earlier_answers():
    from qwen_pipe.generate import GenerationSettings, generate_records
    from qwen_pipe.prompting import PromptRenderer
    from qwen_pipe.tasks.common.base import PromptStyle
    from qwen_pipe.tasks.common.registry import get_task

    task = get_task("mt_bench")
    samples = [{"id": f"m{i}", **r} for i, r in enumerate(task.load_embedded()[:2])]
    settings = GenerationSettings(style=PromptStyle(chat=False), temperature=0.7, repeats=2)
    records = generate_records(task, samples, SeedEcho(), PromptRenderer(params_with().model("tiny_small")),
                               settings)  # fmt: skip
    for record in records:
        first_a, second_a, first_b, second_b = record["responses"]
        assert [r["repeat"] for r in record["responses"]] == [0, 0, 1, 1]
        assert first_a["text"] in second_a["prompt"] and first_b["text"] in second_b["prompt"]
        assert second_b["prompt"].count("####") == 1  # one earlier answer: its own


# --- a request asked twice reaches the engine once ----------------------------------------------------------------
@pytest.mark.parametrize("cached", [False, True])
def test_a_request_asked_twice_reaches_the_engine_once_and_both_get_its_answer(tmp_path, cached):
    """TruthfulQA's mc1 and mc2 share continuations: each distinct (context, continuation) is computed once,
    and every copy gets that one answer, with or without a response cache."""
    from qwen_pipe.engines.base import EngineInfo, Loglikelihood
    from qwen_pipe.generate import GenerationSettings, ResponseCache, generate_records
    from qwen_pipe.prompting import PromptRenderer
    from qwen_pipe.tasks.common.base import PromptStyle
    from qwen_pipe.tasks.common.registry import get_task

    class Counting:
        info = EngineInfo("count", "1", "m")

        def __init__(self):
            self.asked = []

        def loglikelihood(self, requests):
            self.asked += [(r.context, r.continuation) for r in requests]
            return [Loglikelihood(-float(len(r.continuation)), False, 1) for r in requests]

    task = get_task("truthfulqa")
    samples = [{"id": f"t{i}", **r} for i, r in enumerate(task.load_embedded()[:3])]
    asked = [(r.context, r.continuation) for s in samples for r in task.loglikelihood_requests(s)]
    assert len(set(asked)) < len(asked)  # the data has shared continuations to begin with
    engine = Counting()
    cache = ResponseCache(tmp_path, "local:x", {"engine": "count"}) if cached else None
    records = generate_records(task, samples, engine, PromptRenderer(params_with().model("tiny_small")),
                               GenerationSettings(style=PromptStyle(chat=False)), cache)  # fmt: skip
    assert sorted(engine.asked) == sorted(set(asked))
    for record in records:
        for response in record["responses"]:
            assert response["logprob"] == -float(len(response["continuation"]))
