"""Answer extraction filters: thinking blocks, GSM8K numbers, multiple-choice letters, BBH answers."""

from __future__ import annotations

import json
import re

import pytest

from qwen_pipe.scoring.extract import (
    bbh_answer,
    choice_letter,
    gsm8k_flexible,
    gsm8k_strict,
    normalize_bbh,
    normalize_number,
    strip_thinking,
)

from support import data_file

# ---------------------------------------------------------------- strip_thinking


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<think>\nLet me add 2 and 2.\n</think>\n\nThe answer is 4.", "The answer is 4."),
        ("<think>a</think>one<think>b</think> two", "one two"),
        ("<think>\n\n</think>\n\n#### 7", "#### 7"),  # Qwen3 non-thinking mode: an empty block
        ("Okay, the user wants 12.\n</think>\n\nAnswer: 12", "Answer: 12"),  # opening tag was in the prompt
        ("<think>\nFirst, 3 * 4 = 12. Then #### 12 would be", ""),  # cut off while thinking: no answer
        ("The answer is 5.\n<think>never closed", "The answer is 5."),
        ("no tags at all\n    indented code stays", "no tags at all\n    indented code stays"),
        ("", ""),
    ],
)
def test_strip_thinking(text: str, expected: str) -> None:
    assert strip_thinking(text) == expected
    assert strip_thinking(strip_thinking(text)) == strip_thinking(text)


def test_extractors_ignore_the_thinking_block() -> None:
    text = (
        "<think>Maybe #### 10? The answer is (A). So the answer is (A).</think>\n#### 12\nThe answer is (C)."
    )
    assert gsm8k_strict(text) == "12"
    assert choice_letter(text, 4) == "C"
    assert bbh_answer("<think>So the answer is (A).</think> So the answer is (B).") == "B"
    unterminated = "<think>\nThe answer is (B). #### 12. So the answer is (B)."
    assert gsm8k_strict(unterminated) is None
    assert gsm8k_flexible(unterminated) is None
    assert choice_letter(unterminated, 4) is None
    assert bbh_answer(unterminated) is None


# ---------------------------------------------------------------- numbers


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1,234", "1234"),
        ("1,234,567.50", "1234567.5"),
        ("$5", "5"),
        ("\\$5", "5"),
        ("$1,234.50.", "1234.5"),
        ("5.", "5"),
        ("5.00", "5"),
        ("-3", "-3"),
        ("−3", "-3"),
        ("+3", "3"),
        ("-0", "0"),
        ("0.50", "0.5"),
        (".5", "0.5"),
        ("007", "7"),
        ("12 dollars", "12"),
        ("12 dollars.", "12"),
        ("50%", "50"),
        ("50 %", "50"),
        ("**42**", "42"),
        ("1/2", "0.5"),
        ("2/4", "0.5"),
        ("4/2", "2"),
        ("-3/4", "-0.75"),
        ("1/3", "1/3"),
        ("2/6", "1/3"),
        (" 18 \n", "18"),
    ],
)
def test_normalize_number(raw: str, expected: str) -> None:
    assert normalize_number(raw) == expected


@pytest.mark.parametrize(
    "raw", ["", "abc", "twelve", "5 3", "3 + 4", "1,23", "1/0", "1.5/2", "--5", "5 cm^2", "x = 5", "$"]
)
def test_normalize_number_rejects_non_numbers(raw: str) -> None:
    assert normalize_number(raw) is None


def test_gsm8k_strict_takes_the_last_marked_answer() -> None:
    text = "Natalia sold 48/2 = 24 clips in May.\n#### 24\nWait, she sold 48 + 24 = 72 clips in all.\n#### 72"
    assert gsm8k_strict(text) == "72"
    assert gsm8k_strict("She pays $1,200 a month, so 12 * 1,200 = 14,400.\n#### $14,400") == "14400"
    assert gsm8k_strict("The change is 5 - 8 = -3 degrees.\n#### -3") == "-3"
    assert gsm8k_strict("Each gets 7.50 dollars.\n#### 7.50") == "7.5"
    assert gsm8k_strict("####18") == "18"
    assert gsm8k_strict("#### 18 dollars") == "18"


def test_gsm8k_strict_is_strict() -> None:
    assert gsm8k_strict("She has 3 + 4 = 7 apples. The answer is 7.") is None
    assert gsm8k_strict("#### 5\nthen more: #### seven") is None  # the last mark decides
    assert gsm8k_strict("#### 7 or 8") is None
    assert gsm8k_strict("") is None


def test_gsm8k_flexible() -> None:
    chat = (
        "Janet's ducks lay 16 eggs per day. She eats 3 and bakes with 4, so 16 - 3 - 4 = 9 eggs remain.\n"
        "She sells them at $2 each: 9 * 2 = 18.\n\nThe answer is $18. She started with 16 eggs."
    )
    assert gsm8k_flexible(chat) == "18"
    assert gsm8k_flexible("It costs 2 * 3 = 6, so the total is $1,206.50") == "1206.5"
    assert gsm8k_flexible("The temperature drops to -5 degrees.") == "-5"
    assert gsm8k_flexible("10 - 3 = 7") == "7"  # a binary minus is not a sign
    assert gsm8k_flexible("He loses 3, ending at 12 - 15 = -3.") == "-3"
    assert gsm8k_flexible("Step 1: 40% of 50 is 20. Step 2: 20 + 5 = 25\n") == "25"
    assert gsm8k_flexible("So each person gets 3/4 of a pizza") == "0.75"
    assert gsm8k_flexible("The final answer is: **1,000**. (That is 10 times 100.)") == "1000"
    assert gsm8k_flexible("<think>It is 3.</think>Thus $\\boxed{42}$.") == "42"
    assert gsm8k_flexible("I cannot solve this.") is None
    assert gsm8k_flexible("") is None


def test_gsm8k_filters_on_the_reference_solutions() -> None:
    """On GSM8K's own solutions both filters give the gold answer (calculator annotations removed)."""
    with data_file("gsm8k/test.jsonl").open(encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    assert len(rows) == 1319
    for row in rows:
        gold = normalize_number(row["answer"].rsplit("####", 1)[1])
        assert gold is not None, row["answer"]
        solution = re.sub(r"<<.*?>>", "", row["answer"])
        assert gsm8k_strict(solution) == gold
        assert gsm8k_flexible(solution) == gold


# ---------------------------------------------------------------- multiple choice


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is (B).", "B"),
        ("Answer: C", "C"),
        ("answer: (d)", "D"),
        ("The correct answer is **B**.", "B"),
        ("Let me think. Paris is the capital, so the answer is B) Paris.", "B"),
        ("The answer is: $\\boxed{C}$", "C"),
        ("The answer is $\\boxed{\\text{(A)}}$", "A"),
        ("The answer is A because the others are wrong.", "A"),
        ("Option (A) is too small and (B) too big, so (C) fits. Answer: D", "D"),
        ("**B**", "B"),
        ("**(B)**", "B"),
        ("B) Paris", "B"),
        ("C. 42", "C"),
        ("B", "B"),
        ("b", "B"),
        ("  (C)  ", "C"),
        ("(A) is wrong, (B) is wrong, so it must be (C).", "C"),
        ("Answer: I think it is C, so the answer is (C).", "C"),
        ("I think A car cannot do that; the answer is D", "D"),
        ("<think>The answer is (A).</think>The answer is (B).", "B"),
    ],
)
def test_choice_letter(text: str, expected: str) -> None:
    assert choice_letter(text, 4) == expected


def test_choice_letter_only_counts_offered_letters() -> None:
    assert choice_letter("The answer is (E).", 4) is None
    assert choice_letter("The answer is (E).", 5) == "E"
    assert choice_letter("The answer is (C), not (E).", 4) == "C"
    assert choice_letter("Answer: J", 10) == "J"
    assert choice_letter("Answer: I", 10) == "I"


@pytest.mark.parametrize(
    "text",
    ["", "I don't know.", "A car and I went there.", "The answer is Apple.", "None of the options", "42"],
)
def test_choice_letter_missing(text: str) -> None:
    assert choice_letter(text, 4) is None


# ---------------------------------------------------------------- BBH


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Eli finished last. So the answer is (B).", "B"),
        ("Plugging in, Z = not True = False. So the answer is False.", "False"),
        ("So, it is true that ... So the answer is valid.", "valid"),
        ("We know from (5) that Jamey lies. So the answer is No.", "No"),
        ("Touchdown is part of American football. So the answer is no.", "no"),
        ("A - B = -163 - 56 = -219. So the answer is -219.", "-219"),
        ('So, we need "}", "]", ">". So the answer is } ] >.', "} ] >"),
        ("Hence ... So the answer is arson aspect census mugho newt.", "arson aspect census mugho newt"),
        ("So the answer is **(C)**.", "C"),
        ("So the answer is (D) Edge of Tomorrow.", "D"),
        ("So the answer is Monsters, Inc.", "Monsters, Inc"),
        ("So the answer is (A).\nQ: next question... So the answer is (C).", "C"),
        ("The answer is: (E)", "E"),
    ],
)
def test_bbh_answer(text: str, expected: str) -> None:
    assert bbh_answer(text) == expected


@pytest.mark.parametrize("text", ["", "Let's think step by step. The shape is a kite.", "So the answer is ."])
def test_bbh_answer_missing(text: str) -> None:
    assert bbh_answer(text) is None


def test_bbh_every_target_round_trips() -> None:
    """For all 6,511 targets, "So the answer is <target>." extracts to the target's comparable form."""
    files = sorted(data_file("bbh/boolean_expressions.json").parent.glob("*.json"))
    assert len(files) == 27
    count = 0
    for path in files:
        for example in json.loads(path.read_text(encoding="utf-8"))["examples"]:
            target = example["target"]
            output = f"Let's think step by step. So the answer is {target}."
            assert bbh_answer(output) == normalize_bbh(target)
            count += 1
    assert count == 6511
    assert normalize_bbh("(A)") == "A"
    assert normalize_bbh("] ) >") == "] ) >"


def test_bbh_official_exemplars_extract_to_target_forms() -> None:
    """The answers of the official 3-shot CoT exemplars come out in the form of that task's targets."""
    prompts = sorted(data_file("bbh/cot-prompts/boolean_expressions.txt").parent.glob("*.txt"))
    assert len(prompts) == 27
    for prompt in prompts:
        task = json.loads((prompt.parent.parent / f"{prompt.stem}.json").read_text(encoding="utf-8"))
        targets = {normalize_bbh(example["target"]) for example in task["examples"]}
        exemplars = re.split(r"\n\nQ:", prompt.read_text(encoding="utf-8"))[1:]
        assert len(exemplars) == 3, prompt.name
        answers = [bbh_answer(exemplar) for exemplar in exemplars]
        assert all(answers), (prompt.name, answers)
        if len(targets) <= 20:  # a closed answer set: letters, True/False, Yes/No, valid/invalid, yes/no
            assert set(answers) <= targets, (prompt.name, answers)
