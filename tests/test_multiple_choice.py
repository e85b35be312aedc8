"""Multiple-choice tasks: the exact prompts, the scoring rules (acc, acc_norm, mc2, MMLU averages), the
letter-choice variants and the embedded samples. The full-data oracle checks are in test_mc_full_data.py."""

from __future__ import annotations

import importlib
import math
from types import ModuleType

import pytest

from qwen_pipe.engines.base import Generation, Loglikelihood
from qwen_pipe.errors import QwenPipeError
from qwen_pipe.generate import GenerationSettings
from qwen_pipe.tasks import task_names
from qwen_pipe.tasks.common.base import PromptStyle, SampleScore, Task
from qwen_pipe.tasks.common.multiple_choice import GEN_INSTRUCTION, argmax
from qwen_pipe.tasks.common.registry import get_task

from support import ROOT

MC_TASKS = ["hellaswag", "arc_challenge", "arc_easy", "mmlu", "truthfulqa", "winogrande", "boolq", "piqa"]
BASE = PromptStyle(chat=False)
CHAT = PromptStyle(chat=True)
INSTRUCTION = 'Answer with the letter of the correct option. End your reply with "The answer is (X)." where X is that letter.'


def mc_module(name: str) -> ModuleType:
    """The module of a multiple-choice task, imported after discovery (an import before it would be harmless now,
    but discovery once stopped at the first registered task)."""
    task_names()
    return importlib.import_module(f"qwen_pipe.tasks.{name.removesuffix('_gen')}")


def mc_task(name: str, shots: int | None = None) -> Task:
    """A task; `<name>_gen` is its letter-choice format."""
    mc_module(name)
    base = name.removesuffix("_gen")
    return get_task(base, shots=shots, format="letters" if base != name else None)


def embedded(name: str, index: int = 0) -> dict:
    task = mc_task(name)
    record = task.load_embedded()[index]
    return {"id": task.sample_id(record, index), **record}


def renderer():
    """A renderer for completion-style prompts (it never loads a tokenizer for them)."""
    from qwen_pipe.config import load_params
    from qwen_pipe.prompting import PromptRenderer

    return PromptRenderer(load_params(ROOT / "params.yaml").model("tiny_small"))


def lls(*values: float) -> list[Loglikelihood]:
    return [Loglikelihood(v, False, 1) for v in values]


def pairs(name: str, index: int = 0, shots: int | None = None) -> list[tuple[str, str, bool]]:
    task = mc_task(name, shots=shots)
    return [(r.context, r.continuation, r.gold) for r in task.loglikelihood_requests(embedded(name, index))]


# --- registry -------------------------------------------------------------------------------------


def test_every_task_has_a_letter_choice_format():
    for name in MC_TASKS:
        mc_module(name)
        assert name in task_names() and f"{name}_gen" not in task_names()
        letters = get_task(name, format="letters")
        assert letters.source == mc_task(name).source and letters.name == name and letters.format == "letters"
        assert (
            letters.kind == "multiple_choice" and letters.primary_metric == letters.choice_task.gen_metrics[0]
        )


def test_a_format_a_task_does_not_have_is_a_one_line_error():
    with pytest.raises(QwenPipeError, match="gsm8k is not a multiple-choice dataset"):
        get_task("gsm8k", format="letters")
    with pytest.raises(QwenPipeError, match="unknown format 'words'"):
        get_task("arc_easy", format="words")


@pytest.mark.parametrize(
    ("name", "rows", "split", "shots", "primary"),
    [
        ("hellaswag", 10042, "validation", 0, "acc_norm"),
        ("arc_challenge", 1172, "test", 0, "acc_norm"),
        ("arc_easy", 2376, "test", 0, "acc_norm"),
        ("mmlu", 14042, "test", 5, "acc_micro"),
        ("truthfulqa", 817, "validation", 0, "mc1"),
        ("winogrande", 1267, "validation", 0, "acc"),
        ("boolq", 3270, "validation", 0, "acc"),
        ("piqa", 1838, "validation", 0, "acc_norm"),
    ],
)
def test_published_split_shots_and_primary_metric(name, rows, split, shots, primary):
    task = mc_task(name)
    assert (task.source.rows, task.source.split, task.shots, task.primary_metric) == (
        rows,
        split,
        shots,
        primary,
    )
    assert "\n" not in task.published_setting and "\n" not in task.prompt_format


@pytest.mark.parametrize("name", [n for n in MC_TASKS if n != "mmlu"])
def test_shots_beyond_the_offline_exemplars_are_refused(name):
    with pytest.raises(QwenPipeError, match="train split"):
        mc_task(name, shots=5)
    with pytest.raises(QwenPipeError):
        mc_task(f"{name}_gen", shots=1)


def test_mmlu_allows_up_to_five_shots():
    assert mc_task("mmlu", shots=0).shots == 0
    with pytest.raises(QwenPipeError, match="at most 5"):
        mc_task("mmlu", shots=6)


# --- exact prompts (lm-eval's formats), on our own embedded samples -----------------------------


def test_hellaswag_requests_are_cleaned_as_lm_eval_does():
    got = pairs("hellaswag", 2)  # a WikiHow item: [header], [title], [step], [substeps]
    context = "Home and Garden: How to water a cactus. Check the soil before watering. "
    assert got[2] == (
        context,
        " Push a finger into the soil; water only when the top few centimetres are dry. Cacti store water and rot "
        "when the soil stays wet.",
        True,
    )
    assert [g[0] for g in got] == [context] * 4 and [g[2] for g in got] == [False, False, True, False]
    assert pairs("hellaswag", 0)[0] == (
        "Making tea: A woman fills a kettle with water and sets it on the stove. She",
        " pours the boiling water over a tea bag in a mug.",
        True,
    )


def test_hellaswag_preprocess():
    assert mc_module("hellaswag").preprocess(" A [title] B [step] c  d ") == "A. B c d"


def test_arc_requests():
    context = (
        "Question: A student heats a pot of water on a stove. Which process moves heat from the bottom of the pot "
        "to the water at the top?\nAnswer:"
    )
    assert pairs("arc_challenge", 0) == [
        (context, " condensation", False),
        (context, " convection", True),
        (context, " evaporation", False),
        (context, " reflection", False),
    ]
    assert [g[2] for g in pairs("arc_challenge", 2)] == [
        True,
        False,
        False,
        False,
    ]  # answerKey "1" of labels 1-4
    assert [g[2] for g in pairs("arc_easy", 4)] == [False, False, False, False, True]  # five choices, key "E"


def test_mmlu_five_shot_prompt():
    got = pairs("mmlu", 0)
    context = (
        "The following are multiple choice questions (with answers) about elementary mathematics.\n\n"
        "What is 15% of 200?\nA. 15\nB. 30\nC. 20\nD. 45\nAnswer: B\n\n"
        "Which number is a prime number?\nA. 21\nB. 27\nC. 29\nD. 33\nAnswer: C\n\n"
        "Solve for x: x + 7 = 12.\nA. 5\nB. 19\nC. 7\nD. 12\nAnswer: A\n\n"
        "How many minutes are there in 2.5 hours?\nA. 125\nB. 250\nC. 90\nD. 150\nAnswer: D\n\n"
        "What is the area of a square with sides of 9 m?\nA. 36 m²\nB. 81 m²\nC. 18 m²\nD. 72 m²\nAnswer: B\n\n"
        "What is the value of 3 × (4 + 5)?\nA. 12\nB. 17\nC. 27\nD. 45\nAnswer:"
    )
    assert got == [
        (context, " A", False),
        (context, " B", False),
        (context, " C", True),
        (context, " D", False),
    ]


def test_mmlu_zero_shot_prompt():
    got = pairs("mmlu", 4, shots=0)
    assert got[0][0] == (
        "The following are multiple choice questions (with answers) about astronomy.\n\n"
        "Which planet in the Solar System has the shortest orbital period?\n"
        "A. Mercury\nB. Venus\nC. Earth\nD. Neptune\nAnswer:"
    )


def test_mmlu_without_enough_dev_exemplars_is_a_clear_error():
    sample = {**embedded("mmlu", 0), "fewshot": []}
    with pytest.raises(QwenPipeError, match="elementary_mathematics has 0 dev exemplars"):
        mc_task("mmlu").loglikelihood_requests(sample)


def test_truthfulqa_requests_follow_the_qa_prompt():
    got = pairs("truthfulqa", 0)
    context = (
        "Q: What is human life expectancy in the United States?\n"
        "A: Human life expectancy in the United States is 78 years.\n\n"
        "Q: Who was president of the United States in 1955?\n"
        "A: Dwight D. Eisenhower was president of the United States in 1955.\n\n"
        "Q: Which party did he belong to?\n"
        "A: He belonged to the Republican Party.\n\n"
        "Q: What is the square root of banana?\n"
        "A: I have no comment.\n\n"
        "Q: How does a telescope work?\n"
        "A: Telescopes use lenses or mirrors to focus light and make objects appear closer.\n\n"
        "Q: Where were the 1992 Olympics held?\n"
        "A: The 1992 Olympics were held in Barcelona, Spain.\n\n"
        "Q: What happens if you swallow chewing gum?\nA:"
    )
    assert {g[0] for g in got} == {context}
    assert len(got) == 4 + 5  # the mc1 answers, then the mc2 answers
    assert got[0][1:] == (" It passes through your digestive system and leaves your body.", True)
    assert [g[2] for g in got] == [True, False, False, False, True, True, False, False, False]


def test_winogrande_partial_scoring():
    assert pairs("winogrande", 0) == [
        ("The bookshelf could not hold the encyclopedia because the bookshelf", " was too heavy.", False),
        ("The bookshelf could not hold the encyclopedia because the encyclopedia", " was too heavy.", True),
    ]


def test_boolq_requests():
    context = (
        "In botany a fruit is the seed-bearing structure that develops from the ovary of a flowering plant. By this "
        "definition the tomato is a fruit, although cooks usually treat it as a vegetable.\n"
        "Question: is a tomato botanically a fruit?\nAnswer:"
    )
    assert pairs("boolq", 0) == [(context, " no", False), (context, " yes", True)]


def test_piqa_requests():
    context = "Question: How do I keep cut apples from turning brown?\nAnswer:"
    assert pairs("piqa", 0) == [
        (context, " Brush the slices with lemon juice.", True),
        (context, " Brush the slices with warm milk.", False),
    ]


# --- scoring rules --------------------------------------------------------------------------------


def test_argmax_takes_the_first_of_ties():
    assert argmax([-1.0, -0.5, -0.5]) == 1
    assert argmax([0.0]) == 0


def test_acc_and_acc_norm_differ_when_lengths_differ():
    task = mc_task("piqa")
    sample = embedded("piqa", 0)  # gold sol1 (34 characters) vs sol2 (32 characters)
    # sol1 has the lower total log-likelihood but the higher one per character: acc 0, acc_norm 1.
    score = task.score(sample, lls(-3.3, -3.2), BASE)
    assert score.metrics == {"acc": 0.0, "acc_norm": 1.0}
    assert task.score(sample, lls(-3.0, -3.2), BASE).metrics == {"acc": 1.0, "acc_norm": 1.0}


def test_mc2_is_lm_evals_normalised_true_mass():
    mc2 = mc_module("truthfulqa").mc2
    assert mc2([math.log(0.5), math.log(0.3), math.log(0.2)], [1, 1, 0]) == pytest.approx(0.8)
    # lm-eval 0.4.9+: a true answer after a false one is still true (0.4.8 and earlier counted it false: 0.5)
    assert mc2([math.log(0.5), math.log(0.3), math.log(0.2)], [1, 0, 1]) == pytest.approx(0.7)
    assert mc2([-1000.0, -1001.0], [1, 0]) == pytest.approx(1 / (1 + math.exp(-1)))  # no underflow


def test_truthfulqa_scores_mc1_and_mc2():
    task = mc_task("truthfulqa")
    sample = embedded("truthfulqa", 1)  # mc1: 3 answers (first true); mc2: 4 answers (two true)
    score = task.score(
        sample, lls(-2.0, -1.0, -3.0, math.log(0.4), math.log(0.2), math.log(0.3), math.log(0.1)), BASE
    )
    assert score.metrics["mc1"] == 0.0
    assert score.metrics["mc2"] == pytest.approx(0.6)


def test_mmlu_micro_and_macro_averages():
    task = mc_task("mmlu")
    samples = [{"subject": "a"}] * 3 + [{"subject": "b"}]
    scores = [SampleScore({"acc_micro": v, "acc_macro": v}) for v in (1.0, 1.0, 0.0, 0.0)]
    result = task.aggregate(samples, scores)
    assert result["acc_micro"]["value"] == pytest.approx(0.5) and result["acc_micro"]["n"] == 4
    assert (
        result["acc_macro"]["value"] == pytest.approx((2 / 3 + 0) / 2)
        and result["acc_macro"]["subjects"] == 2
    )
    assert (
        result["_per_subject"]["a"]["value"] == pytest.approx(2 / 3) and result["_per_subject"]["b"]["n"] == 1
    )
    assert result["acc_macro"]["stderr"] is None  # subject b has one sample: no stderr, so none for the mean
    samples = [{"subject": "a"}] * 3 + [{"subject": "b"}] * 2
    scores = [SampleScore({"acc_micro": v, "acc_macro": v}) for v in (1.0, 1.0, 0.0, 0.0, 0.0)]
    result = task.aggregate(samples, scores)
    se_a = math.sqrt((2 * (1 / 3) ** 2 + (2 / 3) ** 2) / 2 / 3)  # b's stderr is 0 (both wrong)
    assert result["acc_macro"]["stderr"] == pytest.approx(se_a / 2)


# --- letter-choice variants -----------------------------------------------------------------------

ARC_BLOCK = (
    "A student heats a pot of water on a stove. Which process moves heat from the bottom of the pot to the water "
    "at the top?\nA. condensation\nB. convection\nC. evaporation\nD. reflection"
)


def test_gen_prompt_for_base_and_chat_models():
    task = mc_task("arc_challenge_gen")
    sample = embedded("arc_challenge", 0)
    assert task.prompt(sample, BASE) == ARC_BLOCK + "\nAnswer:"
    assert task.prompt(sample, CHAT) == [{"role": "user", "content": f"{ARC_BLOCK}\n\n{INSTRUCTION}"}]
    assert GEN_INSTRUCTION == INSTRUCTION
    assert task.gold_output(sample) == "The answer is (B)."


def test_mmlu_gen_shots_become_earlier_turns():
    task = mc_task("mmlu_gen", shots=1)
    sample = embedded("mmlu", 4)
    head = "The following is a multiple choice question about astronomy.\n\n"
    assert task.prompt(sample, CHAT) == [
        {
            "role": "user",
            "content": f"{head}Which of these objects is a star?\nA. the Moon\nB. Jupiter\nC. the Sun\nD. Halley's Comet"
            f"\n\n{INSTRUCTION}",
        },
        {"role": "assistant", "content": "The answer is (C)."},
        {
            "role": "user",
            "content": f"{head}Which planet in the Solar System has the shortest orbital period?\nA. Mercury\nB. Venus"
            f"\nC. Earth\nD. Neptune\n\n{INSTRUCTION}",
        },
    ]
    assert task.prompt(sample, BASE) == (
        "The following are multiple choice questions (with answers) about astronomy.\n\n"
        "Which of these objects is a star?\nA. the Moon\nB. Jupiter\nC. the Sun\nD. Halley's Comet\nAnswer: C\n\n"
        "Which planet in the Solar System has the shortest orbital period?\nA. Mercury\nB. Venus\nC. Earth\n"
        "D. Neptune\nAnswer:"
    )


def test_gen_sampling_budgets():
    task = mc_task("boolq_gen")
    assert (task.sampling(BASE).max_new_tokens, task.sampling(BASE).stop) == (32, ("\n\n",))
    assert task.sampling(CHAT).max_new_tokens == 2048
    thinking = PromptStyle(chat=True, enable_thinking=True)
    assert GenerationSettings(style=thinking).sampling_for(task.sampling(thinking)).max_new_tokens == 32768


def reply(text: str) -> list[Generation]:
    return [Generation(text, 0, 0, "stop")]


@pytest.mark.parametrize(
    ("text", "correct"),
    [
        ("The answer is (B).", 1.0),
        (" B", 1.0),
        ("<think>Maybe (A)? No.</think>Convection moves the heat. The answer is (B).", 1.0),
        ("<think>The answer is (B).</think>The answer is (A).", 0.0),
        ("The answer is (E).", 0.0),  # not an option of this question
        ("", 0.0),
    ],
)
def test_gen_scoring_reads_the_letter_after_thinking(text, correct):
    task = mc_task("arc_challenge_gen")
    assert task.score(embedded("arc_challenge", 0), reply(text), CHAT).metrics == {"acc": correct}


def test_truthfulqa_gen_shuffles_the_true_answer_away_from_a():
    task = mc_task("truthfulqa_gen")
    samples = [embedded("truthfulqa", i) for i in range(6)]
    golds = [task.gold_output(s) for s in samples]
    assert golds == [task.gold_output(s) for s in samples]  # deterministic
    assert len(set(golds)) > 1
    for sample, gold in zip(samples, golds, strict=True):
        letter = gold[len("The answer is (")]
        block = task.prompt(sample, BASE)
        true_answer = sample["mc1_targets"]["choices"][0]
        assert f"\n{letter}. {true_answer}\n" in block


# --- embedded samples -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", MC_TASKS)
def test_embedded_samples_are_ours_in_hub_schema_and_score_with_the_oracle(name):
    from qwen_pipe.engines.oracle import OracleEngine
    from qwen_pipe.generate import GenerationSettings, generate_records
    from qwen_pipe.score import score_records

    task = mc_task(name)
    records = task.load_embedded()
    assert 6 <= len(records) <= 10
    assert all(r["embedded_sample"] is True and set(task.source.fields) <= set(r) for r in records)
    samples = [{"id": task.sample_id(r, i), **r} for i, r in enumerate(records)]
    assert len({s["id"] for s in samples}) == len(samples)
    for variant in (task, mc_task(f"{name}_gen")):
        for wrong, expected in ((False, 1.0), (True, 0.0)):
            out = generate_records(
                variant, samples, OracleEngine("x", wrong=wrong), renderer(), GenerationSettings(style=BASE)
            )
            _, aggregate = score_records(variant, samples, out, BASE)
            for metric in variant.metrics:
                assert aggregate[metric]["value"] == pytest.approx(expected, abs=1e-30), (
                    variant.name,
                    metric,
                )


def test_mmlu_embedded_exemplars_cover_its_subjects():
    records = mc_task("mmlu").load_embedded()
    assert {r["subject"] for r in records} == {"elementary_mathematics", "astronomy"}
    assert all(
        len(r["fewshot"]) == 5 and all(ex["subject"] == r["subject"] for ex in r["fewshot"]) for r in records
    )


# --- schema mapping details -----------------------------------------------------------------------


def test_truthfulqa_mc_task_dicts_become_hub_lists_and_hub_records_pass_through():
    hub_record = mc_module("truthfulqa").hub_record
    raw = {
        "question": "q?",
        "mc1_targets": {"yes.": 1, "no.": 0},
        "mc2_targets": {"yes.": 1, "sure.": 1, "no.": 0},
    }
    assert hub_record(raw) == {
        "question": "q?",
        "mc1_targets": {"choices": ["yes.", "no."], "labels": [1, 0]},
        "mc2_targets": {"choices": ["yes.", "sure.", "no."], "labels": [1, 1, 0]},
    }
    record = mc_task("truthfulqa").load_embedded()[0]
    assert hub_record(record) == {f: record[f] for f in ("question", "mc1_targets", "mc2_targets")}


def test_winogrande_sentence_without_a_blank_is_a_one_line_error(tmp_path):
    path = tmp_path / "winogrande" / "winogrande_xl_validation.hf.jsonl"
    path.parent.mkdir()
    path.write_text('{"sentence": "No blank here.", "option1": "a", "option2": "b", "answer": "1"}\n')
    with pytest.raises(QwenPipeError, match="record 0 has no blank") as info:
        mc_task("winogrande").load_mirror(tmp_path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)
