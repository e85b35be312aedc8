"""math500, bbh, ifeval and mt_bench: full mirror data, the oracle, answer extraction, exact prompts, errors."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import pytest

from qwen_pipe.config import load_params
from qwen_pipe.engines.base import EngineInfo, Generation, GenerationRequest
from qwen_pipe.engines.oracle import OracleEngine
from qwen_pipe.errors import QwenPipeError
from qwen_pipe.fetch import load_records
from qwen_pipe.generate import GenerationSettings, generate_records
from qwen_pipe.prompting import PromptRenderer
from qwen_pipe.score import score_records
from qwen_pipe.scoring.ifeval import aggregate as ifeval_aggregate
from qwen_pipe.scoring.ifeval import evaluate, oracle_gap
from qwen_pipe.tasks.common.base import PromptStyle, SampleScore
from qwen_pipe.tasks.common.registry import get_task

from support import ROOT, qwen_pipe

TASKS = ("math500", "bbh", "ifeval", "mt_bench")
BASE = PromptStyle(chat=False)
CHAT = PromptStyle(chat=True)
THINKING = PromptStyle(chat=True, enable_thinking=True)


def task_module(name: str):
    """A task's module, reached through the registry: importing a task module directly before the registry
    has discovered the others would hide them (the registry discovers only while it is empty)."""
    return sys.modules[type(get_task(name)).__module__]


def sha(prompt) -> str:
    text = prompt if isinstance(prompt, str) else json.dumps(prompt, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def gen(text: str, finish_reason: str = "stop") -> Generation:
    return Generation(text=text, prompt_tokens=0, output_tokens=0, finish_reason=finish_reason)


@pytest.fixture(scope="module")
def renderer() -> PromptRenderer:
    # completion-style prompts are strings: the renderer never loads a tokenizer for them
    return PromptRenderer(load_params(ROOT / "params.yaml").model("tiny_small"))


@pytest.fixture(scope="module")
def data(mirror: Path) -> dict[str, list[dict]]:
    return {name: load_records(get_task(name), "mirror", mirror)[0] for name in TASKS}


def run_oracle(name: str, samples: list[dict], renderer: PromptRenderer, wrong: bool = False):
    task = get_task(name)
    engine = OracleEngine("oracle", wrong=wrong)
    records = generate_records(task, samples, engine, renderer, GenerationSettings(style=BASE))
    return score_records(task, samples, records, BASE)


# --- data ---------------------------------------------------------------------------------------------


def test_full_mirror_row_counts_equal_the_published_splits(data):
    for name in TASKS:
        assert len(data[name]) == get_task(name).source.rows, name
    assert [len(data[name]) for name in TASKS] == [500, 6511, 541, 80]
    subtasks = task_module("bbh").SUBTASKS
    per_subtask = {t: sum(r["subtask"] == t for r in data["bbh"]) for t in subtasks}
    small = {"causal_judgement": 187, "penguins_in_a_table": 146, "snarks": 178}
    assert per_subtask == {t: small.get(t, 250) for t in subtasks}
    assert all(len(r["turns"]) == 2 for r in data["mt_bench"])
    assert sum(bool(r.get("reference")) for r in data["mt_bench"]) == 39


def test_sample_ids_are_stable(data):
    assert data["math500"][0]["id"] == "math500-test-precalculus-807"
    assert data["bbh"][0]["id"] == "bbh-boolean_expressions-0000"
    assert data["bbh"][-1]["id"] == "bbh-word_sorting-6510"
    assert data["ifeval"][0]["id"] == "ifeval-1000"
    assert data["mt_bench"][0]["id"] == "mt_bench-81"


def test_every_official_bbh_prompt_parses_into_three_cot_exemplars(mirror):
    bbh = task_module("bbh")
    assert len(bbh.SUBTASKS) == 27
    for subtask in bbh.SUBTASKS:
        text = bbh.cot_prompt_text(
            (mirror / "bbh" / "cot-prompts" / f"{subtask}.txt").read_text(encoding="utf-8")
        )
        assert not text.startswith("BENCHMARK DATA") and "canary" not in text
        description, exemplars = bbh.parse_cot_prompt(text)
        assert len(exemplars) == 3, subtask
        # nothing is lost: the parts rebuild the official text
        assert description + "".join(f"\n\nQ: {q}\nA: {a}" for q, a in exemplars) == text
        for _, answer in exemplars:
            assert answer.startswith("Let's think step by step.") and "So the answer is " in answer


# --- the oracle over the full data -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["math500", "bbh"])
def test_oracle_scores_one_and_empty_output_zero_on_the_full_data(name, data, renderer):
    rows, metrics = run_oracle(name, data[name], renderer)
    assert all(m["value"] == 1.0 for m in metrics.values()), {
        k: v for k, v in metrics.items() if v["value"] != 1.0
    }
    assert metrics["exact_match"]["n"] == len(data[name]) and all(r["correct"] for r in rows)
    _, wrong = run_oracle(name, data[name], renderer, wrong=True)
    assert all(m["value"] == 0.0 for m in wrong.values())


def test_ifeval_oracle_scores_536_of_541_with_the_listed_exceptions(data, renderer):
    exceptions = get_task("ifeval").oracle_exceptions
    assert set(exceptions) == {f"ifeval-{key}" for key in (374, 1627, 3369, 3371, 3718)}
    rows, metrics = run_oracle("ifeval", data["ifeval"], renderer)
    failed = {r["id"] for r in rows if not r["correct"]}
    assert failed == set(exceptions)
    assert metrics["prompt_level_strict_acc"]["value"] == 536 / 541
    assert metrics["prompt_level_loose_acc"]["value"] == 536 / 541
    by_id = {f"ifeval-{r['key']}": r for r in data["ifeval"]}
    assert {sample_id: oracle_gap(by_id[sample_id]) for sample_id in exceptions} == exceptions
    # every instruction of the 536 other prompts is followed
    assert all(all(r["extracted"]["inst_strict"]) for r in rows if r["id"] not in failed)
    # instruction-level values pool instructions, exactly as the reference aggregation
    results = [evaluate(s, (r["output"] or [""])[0]) for s, r in zip(data["ifeval"], rows, strict=True)]
    reference = ifeval_aggregate(results)
    assert {m: metrics[m]["value"] for m in reference} == pytest.approx(reference, abs=1e-12)
    assert metrics["inst_level_strict_acc"]["n"] == sum(len(r["instruction_id_list"]) for r in data["ifeval"])
    _, wrong = run_oracle("ifeval", data["ifeval"], renderer, wrong=True)
    assert all(m["value"] == 0.0 for m in wrong.values())


def test_mt_bench_has_no_gold_so_the_oracle_refuses_it_and_empty_answers_score_zero(data, renderer):
    task = get_task("mt_bench")
    assert all(task.gold_output(s, turn) is None for s in data["mt_bench"] for turn in (0, 1))
    with pytest.raises(QwenPipeError, match="needs a gold answer"):
        run_oracle("mt_bench", data["mt_bench"], renderer)
    embedded, info = load_records(task, "embedded", None)
    assert info.embedded_sample and all(task.turns(s) == 2 for s in embedded)
    assert {s["category"] for s in embedded} <= set(task_module("mt_bench").FASTCHAT_TEMPERATURE)
    rows, wrong = run_oracle("mt_bench", data["mt_bench"], renderer, wrong=True)
    assert wrong["answered"]["value"] == 0.0 and wrong["answered"]["n"] == 80
    assert all(len(r["output"]) == 2 for r in rows)


def test_eval_cli_with_the_oracle_on_mt_bench_fails_with_one_clear_line(mirror, tmp_path):
    done = qwen_pipe(
        "eval", "--engine", "oracle", "--models", "tiny_small", "--datasets", "mt_bench",
        "--data-dir", str(mirror), "--output-dir", str(tmp_path),
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "mt_bench has no gold answers" in lines[0] and "fix:" in lines[0]


@pytest.mark.parametrize("name", ["math500", "bbh", "ifeval"])
def test_oracle_scores_one_on_the_embedded_sample(name, renderer):
    task = get_task(name)
    samples, info = load_records(task, "embedded", None)
    assert info.embedded_sample and len(samples) >= 6
    _, metrics = run_oracle(name, samples, renderer)
    assert metrics[task.primary_metric]["value"] == 1.0


# --- extraction on realistic outputs ---------------------------------------------------------------

MATH_SAMPLE = {"problem": "p", "solution": "s", "answer": "\\frac{19}{12}", "unique_id": "x"}


@pytest.mark.parametrize(
    ("output", "answer", "correct"),
    [
        (
            "<think>Maybe 19/12? Or \\boxed{2}.</think>\nAdding gives $\\boxed{\\dfrac{19}{12}}$.",
            "\\dfrac{19}{12}",
            1.0,
        ),
        (
            "We get 19/12.\nFinal Answer: The final answer is $\\frac{19}{12}$. I hope it is correct.",
            "\\frac{19}{12}",
            1.0,
        ),
        ("So the sum is 19/12. The answer is $19/12$.", "19/12", 1.0),
        ("First $\\boxed{2}$; no: correcting it gives $\\boxed{\\frac{19}{12}}$.", "\\frac{19}{12}", 1.0),
        ("It is $\\boxed{\\frac{19}{12}}$. Hmm, rather $\\boxed{2}$.", "2", 0.0),  # the last box counts
        ("The final answer is $\\frac{17}{12}$.", "\\frac{17}{12}", 0.0),
        ("<think>It is \\boxed{\\frac{19}{12}}", None, 0.0),  # cut off while thinking: no answer
        ("I could not solve it.", None, 0.0),
        ("", None, 0.0),
    ],
)
def test_math500_extraction(output, answer, correct):
    score = get_task("math500").score(MATH_SAMPLE, [gen(output)], CHAT)
    assert score.extracted["answer"] == answer
    assert score.metrics["exact_match"] == correct


@pytest.mark.parametrize(
    ("output", "target", "answer", "correct"),
    [
        ("Let's think step by step.\nB is leftmost. So the answer is (B).", "(B)", "B", 1.0),
        (
            "<think>So the answer is (A)? No.</think>\nStep by step: ...\n\n**The answer is: (C)**",
            "(C)",
            "C",
            1.0,
        ),
        (" not True = False. So the answer is False.", "False", "False", 1.0),
        (
            "The words sorted: so the answer is apple banana cherry.",
            "apple banana cherry",
            "apple banana cherry",
            1.0,
        ),
        ("We close the brackets. So the answer is ] ) }.", "] ) }", "] ) }", 1.0),
        ("So the answer is (A). Wait, the answer is (D).", "(A)", "D", 0.0),  # the last statement counts
        ("The expression is True.", "True", None, 0.0),  # no "the answer is"
        ("So the answer is yes.", "Yes", "yes", 0.0),  # case is kept, as the targets spell it
    ],
)
def test_bbh_extraction(output, target, answer, correct):
    score = get_task("bbh").score({"input": "q", "target": target, "subtask": "x"}, [gen(output)], BASE)
    assert (score.extracted["answer"], score.metrics["exact_match"]) == (answer, correct)


def test_ifeval_scores_the_answer_after_the_thinking_block():
    record = {"key": 1, "prompt": "p", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}
    task = get_task("ifeval")
    thought = "<think>No commas, right, none at all.</think>\n\nThe sun rose over the quiet town."
    assert task.score(record, [gen(thought)], THINKING).metrics["prompt_level_strict_acc"] == 1.0
    assert task.score(record, [gen("One, two.")], CHAT).metrics["prompt_level_strict_acc"] == 0.0
    assert (
        task.score(record, [gen("<think>still thinking, and")], THINKING).metrics["inst_level_loose_acc"]
        == 0.0
    )


def test_mt_bench_records_both_answers_without_thinking():
    task = get_task("mt_bench")
    sample = {"question_id": 1, "category": "writing", "turns": ["q1", "q2"]}
    score = task.score(sample, [gen("<think>plan</think>\n\nA poem."), gen("A new poem.", "length")], CHAT)
    assert score.metrics == {"answered": 1.0, "truncated": 1.0}
    assert score.extracted == {
        "answers": ["A poem.", "A new poem."],
        "category": "writing",
        "fastchat_temperature": 0.7,
    }
    assert task.score(sample, [gen("A poem."), gen("<think>hmm")], CHAT).metrics["answered"] == 0.0
    assert task.score(sample, [gen("A poem.")], CHAT).metrics["answered"] == 0.0


# --- aggregation ---------------------------------------------------------------------------------------


def test_bbh_aggregate_gives_the_sample_mean_the_subtask_mean_and_each_subtask():
    samples = [{"subtask": "a"}] + [{"subtask": "b"}] * 3
    scores = [SampleScore({"exact_match": v}) for v in (1.0, 0.0, 0.0, 1.0)]
    metrics = get_task("bbh").aggregate(samples, scores)
    assert metrics["exact_match"]["value"] == 0.5 and metrics["exact_match"]["n"] == 4
    assert metrics["exact_match_macro"]["value"] == pytest.approx((1.0 + 1 / 3) / 2)
    b = metrics["exact_match/b"]
    assert b["value"] == pytest.approx(1 / 3) and b["n"] == 3
    # subtask a has one sample: its stderr, and so the macro stderr, is undefined (not 0)
    assert metrics["exact_match/a"]["stderr"] is None and metrics["exact_match_macro"]["stderr"] is None
    samples = [{"subtask": "a"}] * 2 + [{"subtask": "b"}] * 3
    scores = [SampleScore({"exact_match": v}) for v in (1.0, 1.0, 0.0, 0.0, 1.0)]
    metrics = get_task("bbh").aggregate(samples, scores)  # a: stderr 0 (both right); the macro: half of b's
    assert metrics["exact_match_macro"]["stderr"] == pytest.approx(metrics["exact_match/b"]["stderr"] / 2)


def test_instruction_level_stderr_treats_a_prompt_as_one_cluster():
    # two prompts: 2 of 2 and 0 of 2 instructions followed
    ratio_and_stderr = task_module("ifeval").ratio_and_stderr
    result = ratio_and_stderr([2, 0], [2, 2])
    assert result["value"] == 0.5 and result["n"] == 4
    # sqrt(n/(n-1) * sum((y - R m)^2)) / sum(m) = sqrt(2 * (1 + 1)) / 4
    assert result["stderr"] == pytest.approx(0.5)
    assert ratio_and_stderr([1, 1], [2, 2])["stderr"] == 0.0


# --- exact prompts -------------------------------------------------------------------------------------


def test_math500_prompts(data):
    sample = data["math500"][0]
    one_shot = get_task("math500", shots=1)
    assert one_shot.prompt(sample, BASE) == (
        "Problem:\nFind the domain of the expression  $\\frac{\\sqrt{x-2}}{\\sqrt{5-x}}$.}\n\n"
        "Solution: The expressions inside each square root must be non-negative. Therefore, $x-2 \\ge 0$, so "
        "$x\\ge2$, and $5 - x \\ge 0$, so $x \\le 5$. Also, the denominator cannot be equal to zero, so $5-x>0$, "
        "which gives $x<5$. Therefore, the domain of the expression is $\\boxed{[2,5)}$.\n"
        "Final Answer: The final answer is $[2,5)$. I hope it is correct.\n\n"
        "Problem:\nConvert the point $(0,3)$ in rectangular coordinates to polar coordinates.  Enter your answer "
        "in the form $(r,\\theta),$ where $r > 0$ and $0 \\le \\theta < 2 \\pi.$\n\nSolution:"
    )
    chat = one_shot.prompt(sample, CHAT)
    assert [m["role"] for m in chat] == ["user", "assistant", "user"]
    assert chat[0]["content"] == (
        "Find the domain of the expression  $\\frac{\\sqrt{x-2}}{\\sqrt{5-x}}$.}\n"
        "Please reason step by step, and put your final answer within \\boxed{}."
    )
    assert chat[1]["content"].endswith("Final Answer: The final answer is $[2,5)$. I hope it is correct.")
    assert (
        chat[2]["content"]
        == f"{sample['problem']}\nPlease reason step by step, and put your final answer within \\boxed{{}}."
    )
    # the default: 4 Minerva shots
    task = get_task("math500")
    assert task.shots == 4
    base = task.prompt(sample, BASE)
    assert base.count("Problem:\n") == 5 and base.count("I hope it is correct.") == 4
    assert sha(base) == "38a0ec97686095dee3a2d92d5d4b9e4d3f29aeb0b5742da85947f95f46978a88"
    assert (
        sha(task.prompt(sample, CHAT)) == "8c7c9f12ca8c658bc20037f1ad558249b7c979615efa18db1e85c672fa1380bf"
    )


def test_bbh_prompts(data, mirror):
    sample = data["bbh"][0]
    official = (mirror / "bbh" / "cot-prompts" / "boolean_expressions.txt").read_text(encoding="utf-8")
    body = official.split("\n-----\n", 1)[1].rstrip("\n")
    # base: the official 3-shot prompt file, then the question
    base = get_task("bbh").prompt(sample, BASE)
    assert base == f"{body}\n\nQ: not ( True ) and ( True ) is\nA: Let's think step by step."
    assert sha(base) == "8ec807b9265d58cdf24ff423779c9c4bcda1073718c9950c7e23afd77df9633d"
    chat = get_task("bbh").prompt(sample, CHAT)
    assert [m["role"] for m in chat] == ["user", "assistant"] * 3 + ["user"]
    assert chat[0]["content"] == (
        "Evaluate the result of a random Boolean expression.\n\nQ: not ( ( not not True ) ) is"
    )
    assert chat[1]["content"].startswith("Let's think step by step.\nRemember that (i) expressions")
    assert chat[1]["content"].endswith("So the answer is False.")
    assert chat[-1]["content"] == "Q: not ( True ) and ( True ) is"
    assert sha(chat) == "51cc973a40de9c2094a757c143fa4fad61a5fd3a728b8ada6d4f6ef476e27bdb"


def test_bbh_embedded_prompts_use_our_own_exemplars():
    task = get_task("bbh", shots=1)
    sample = next(s for s in load_records(task, "embedded", None)[0] if s["subtask"] == "object_counting")
    assert task.prompt(sample, BASE) == (
        "Count the objects of the kind the question asks about.\n\n"
        "Q: I have a cat, two goldfish, and a hamster. How many animals do I have?\n"
        "A: Let's think step by step.\n"
        "The animals are: a cat (1), two goldfish (2), a hamster (1). In total 1 + 2 + 1 = 4. So the answer is 4.\n\n"
        "Q: I have a banana, two plums, a sofa, and a mango. How many fruits do I have?\n"
        "A: Let's think step by step."
    )
    assert task.prompt(sample, CHAT) == [
        {
            "role": "user",
            "content": "Count the objects of the kind the question asks about.\n\n"
            "Q: I have a cat, two goldfish, and a hamster. How many animals do I have?",
        },
        {
            "role": "assistant",
            "content": "Let's think step by step.\n"
            "The animals are: a cat (1), two goldfish (2), a hamster (1). In total 1 + 2 + 1 = 4. So the answer is 4.",
        },
        {
            "role": "user",
            "content": "Q: I have a banana, two plums, a sofa, and a mango. How many fruits do I have?",
        },
    ]


def test_ifeval_prompts(data):
    sample, task = data["ifeval"][0], get_task("ifeval")
    assert sample["prompt"].startswith("Write a 300+ word summary of the wikipedia page")
    assert task.prompt(sample, BASE) == sample["prompt"]
    assert task.prompt(sample, CHAT) == [{"role": "user", "content": sample["prompt"]}]
    assert task.shots == 0


def test_mt_bench_second_turn_carries_the_first_answer(data):
    sample, task = data["mt_bench"][0], get_task("mt_bench")
    first = (
        "Compose an engaging travel blog post about a recent trip to Hawaii, highlighting cultural experiences "
        "and must-see attractions."
    )
    second = "Rewrite your previous response. Start every sentence with the letter A."
    assert task.turns(sample) == 2
    assert task.prompt(sample, CHAT) == [{"role": "user", "content": first}]
    assert task.prompt(sample, CHAT, ["<think>plan</think>\n\nAloha!"]) == [
        {"role": "user", "content": first},
        {"role": "assistant", "content": "Aloha!"},
        {"role": "user", "content": second},
    ]
    assert task.prompt(sample, BASE) == f"User: {first}\n\nAssistant:"
    assert (
        task.prompt(sample, BASE, ["Aloha!"])
        == f"User: {first}\n\nAssistant: Aloha!\n\nUser: {second}\n\nAssistant:"
    )


def test_mt_bench_runs_two_turns_through_the_runner(data, renderer):
    class Echo:
        """Answers each request with a thinking block and a numbered answer."""

        info = EngineInfo("echo", "1", "m")

        def __init__(self) -> None:
            self.calls = 0

        def generate(self, requests: list[GenerationRequest]) -> list[Generation]:
            self.calls += 1
            return [gen(f"<think>t</think>answer of call {self.calls}") for _ in requests]

    task, samples = get_task("mt_bench"), data["mt_bench"][:3]
    records = generate_records(task, samples, Echo(), renderer, GenerationSettings(style=BASE))
    for record, sample in zip(records, samples, strict=True):
        first, second = record["responses"]
        assert first["prompt"] == f"User: {sample['turns'][0]}\n\nAssistant:"
        assert second["prompt"].endswith(
            f"Assistant: answer of call 1\n\nUser: {sample['turns'][1]}\n\nAssistant:"
        )
    rows, metrics = score_records(task, samples, records, BASE)
    assert metrics["answered"]["value"] == 1.0
    assert rows[0]["extracted"]["answers"] == ["answer of call 1", "answer of call 2"]


def test_sampling_settings():
    budgets = {name: get_task(name).sampling(CHAT).max_new_tokens for name in TASKS}
    assert budgets == {"math500": 2048, "bbh": 1024, "ifeval": 1280, "mt_bench": 1024}
    assert {name: get_task(name).sampling(BASE).stop for name in TASKS} == {
        "math500": ("Problem:",),
        "bbh": ("\n\n", "\nQ:"),
        "ifeval": (),
        "mt_bench": ("\nUser:",),
    }
    assert all(get_task(name).sampling(CHAT).stop == () for name in TASKS)
    # thinking mode: the run's settings give every task the Qwen3 budget and drop stop strings
    thinking = GenerationSettings(style=THINKING)
    assert all(thinking.sampling_for(get_task(n).sampling(THINKING)).max_new_tokens == 32768 for n in TASKS)
    assert all(thinking.sampling_for(get_task(n).sampling(BASE)).stop == () for n in TASKS)
    assert get_task("bbh").default_shots == 3 and get_task("math500").default_shots == 4


# --- errors --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "relative", "field", "renamed"),
    [
        ("math500", "math500/test.jsonl", "answer", "final_answer"),
        ("bbh", "bbh/boolean_expressions.json", "target", "label"),
        ("ifeval", "ifeval/input_data.jsonl", "instruction_id_list", "instructions"),
        ("mt_bench", "mt_bench/question.jsonl", "turns", "prompts"),
    ],
)
def test_a_renamed_field_gives_one_line_naming_the_file_and_the_fields(
    name, relative, field, renamed, mirror, tmp_path
):
    target = tmp_path / relative
    target.parent.mkdir(parents=True)
    text = (mirror / relative).read_text(encoding="utf-8")
    target.write_text(text.replace(f'"{field}":', f'"{renamed}":'), encoding="utf-8")
    if name == "bbh":
        shutil.copytree(mirror / "bbh" / "cot-prompts", tmp_path / "bbh" / "cot-prompts")
    with pytest.raises(QwenPipeError) as info:
        get_task(name).load_mirror(tmp_path)
    message = str(info.value)
    assert "\n" not in message and str(target) in message
    assert f"record 0 lacks field(s) {field}; expected fields " in message


def test_bbh_without_its_cot_prompts_names_the_missing_file(mirror, tmp_path, monkeypatch):
    (tmp_path / "bbh").mkdir()
    shutil.copy(mirror / "bbh" / "boolean_expressions.json", tmp_path / "bbh")
    with pytest.raises(QwenPipeError, match=r"bbh/cot-prompts/boolean_expressions\.txt not found"):
        get_task("bbh").load_mirror(tmp_path)
    # the hub has no CoT prompts: without a mirror, fail before any download
    monkeypatch.delenv("QWEN_PIPE_DATA_DIR", raising=False)
    with pytest.raises(QwenPipeError, match="needs the official CoT prompts"):
        get_task("bbh").load_hub()


def test_too_many_shots_is_a_clear_error(data):
    with pytest.raises(QwenPipeError, match="4 Minerva exemplars, 5 shots"):
        get_task("math500", shots=5).prompt(data["math500"][0], BASE)
    with pytest.raises(QwenPipeError, match="3 CoT exemplars, 4 shots"):
        get_task("bbh", shots=4).prompt(data["bbh"][0], BASE)
