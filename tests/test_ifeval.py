"""IFEval checkers: every instruction type strict pass/fail, loose mode, kwargs handling, aggregation,
the full data file and the constructive oracle."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from qwen_pipe.errors import QwenPipeError
from qwen_pipe.scoring.ifeval import (
    INSTRUCTIONS,
    IFEvalResult,
    aggregate,
    evaluate,
    instructions_of,
    loose_variants,
    oracle_gap,
    oracle_response,
)
from qwen_pipe.scoring.ifeval.language import count_capital_words
from qwen_pipe.scoring.ifeval.text import count_sentences, count_words, detect_language, split_sentences

GERMAN = "Der Fluss fließt langsam durch das kleine Dorf. Wir arbeiten jeden Tag zusammen an einem Projekt."
ENGLISH = "The river runs slowly through the small village. We work together on a project every day."


def data_dir() -> Path:
    env = os.environ.get("QWEN_PIPE_DATA_DIR")
    root = Path(env) if env else Path(__file__).parents[1].parent / "shared" / "datasets"
    if not (root / "ifeval" / "input_data.jsonl").is_file():
        pytest.fail(
            f"IFEval data not found at {root}/ifeval/input_data.jsonl: set QWEN_PIPE_DATA_DIR to the dataset "
            "mirror (laid out like ../shared/datasets) or place the mirror next to the repository"
        )
    return root


@pytest.fixture(scope="module")
def records() -> list[dict]:
    path = data_dir() / "ifeval" / "input_data.jsonl"
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def record(instruction_id: str, kwargs: dict | None = None, key: int = 1) -> dict:
    return {"key": key, "prompt": "p", "instruction_id_list": [instruction_id], "kwargs": [kwargs or {}]}


def strict(instruction_id: str, kwargs: dict | None, response: str) -> bool:
    return evaluate(record(instruction_id, kwargs), response).prompt_strict


# (instruction id, kwargs, a response that follows it, a response that does not)
CASES = [
    (
        "keywords:existence",
        {"keywords": ["river", "mill"]},
        "The River turned the old mill wheel all night.",
        "The stream turned the old wheel all night.",
    ),
    (
        "keywords:frequency",
        {"keyword": "war", "frequency": 2, "relation": "at least"},
        "War is costly. After the WAR the town was rebuilt.",
        "War is costly and the town was rebuilt.",
    ),
    (
        "keywords:frequency",
        {"keyword": "fake", "frequency": 2, "relation": "less than"},
        "That photo is fake.",
        "That fake photo is fake news.",
    ),
    (
        "keywords:forbidden_words",
        {"forbidden_words": ["rock", "stone"]},
        "Rocky roads and stones are hard to walk on.",
        "I listen to ROCK music on long drives.",
    ),
    (
        "keywords:letter_frequency",
        {"letter": "q", "let_frequency": 2, "let_relation": "at least"},
        "Quiet queens rule.",
        "Quiet kings rule.",
    ),
    (
        "keywords:letter_frequency",
        {"letter": "e", "let_frequency": 3, "let_relation": "less than"},
        "A big cat sat on my mat.",
        "Every evening here.",
    ),
    ("language:response_language", {"language": "de"}, GERMAN, ENGLISH),
    (
        "length_constraints:number_sentences",
        {"num_sentences": 3, "relation": "less than"},
        "Dr. Smith arrived at 5 p.m. today. He left soon after.",
        "He came. He saw. He left.",
    ),
    (
        "length_constraints:number_sentences",
        {"num_sentences": 3, "relation": "at least"},
        "He came. He saw! Did he leave?",
        "He came.\nHe saw\nHe left",
    ),
    (
        "length_constraints:number_paragraphs",
        {"num_paragraphs": 2},
        "First paragraph here.\n\n***\n\nSecond paragraph here.",
        "First paragraph here.\n\nSecond paragraph here.",
    ),
    (
        "length_constraints:number_words",
        {"num_words": 5, "relation": "at least"},
        "One two three four five.",
        "One two three four.",
    ),
    (
        "length_constraints:number_words",
        {"num_words": 5, "relation": "less than"},
        "Short and sweet.",
        "This one has far too many words.",
    ),
    (
        "length_constraints:nth_paragraph_first_word",
        {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "summary"},
        'The plan has three steps.\n\n"Summary of the plan follows."',
        "The plan has three steps.\n\nIn summary it works.",
    ),
    (
        "detectable_content:number_placeholders",
        {"num_placeholders": 2},
        "Dear [name], please come to [address].",
        "Dear [name], please come over.",
    ),
    (
        "detectable_content:postscript",
        {"postscript_marker": "P.P.S"},
        "Thanks for reading.\n\nP.P.S. See you soon.",
        "Thanks for reading.\n\nP.S. See you soon.",
    ),
    (
        "detectable_content:postscript",
        {"postscript_marker": "P.S."},
        "Thanks for reading.\n\np.s. see you soon.",
        "Thanks for reading. See you soon.",
    ),
    (
        "detectable_format:number_bullet_lists",
        {"num_bullets": 2},
        "Two points:\n* First point.\n- Second point.\n**Not a bullet**",
        "Three points:\n* First point.\n* Second point.\n* Third point.",
    ),
    (
        "detectable_format:constrained_response",
        None,
        "My answer is no.",
        "No, I do not think so.",
    ),
    (
        "detectable_format:number_highlighted_sections",
        {"num_highlights": 2},
        "This is *important* and this is **crucial**.",
        "Only *one* here and an empty ** pair.",
    ),
    (
        "detectable_format:multiple_sections",
        {"section_spliter": "SECTION", "num_sections": 2},
        "SECTION 1\nThe start.\nSECTION 2\nThe end.",
        "Section 1\nThe start.\nSection 2\nThe end.",
    ),
    (
        "detectable_format:json_format",
        None,
        '```json\n{"name": "Ada", "born": 1815}\n```',
        'Here it is: {"name": "Ada", "born": 1815}',
    ),
    (
        "detectable_format:title",
        None,
        "<<Ode to Autumn>>\nLeaves fall softly.",
        "<< >>\nLeaves fall softly.",
    ),
    (
        "combination:two_responses",
        None,
        "Paris is the capital.\n******\nThe capital is Paris.",
        "Paris is the capital.\n******\nParis is the capital.",
    ),
    (
        "combination:repeat_prompt",
        {"prompt_to_repeat": "Write a haiku about rain."},
        "write a haiku about rain.\nSoft rain on the roof.",
        "Sure! Write a haiku about rain.\nSoft rain on the roof.",
    ),
    (
        "startend:end_checker",
        {"end_phrase": "Any other questions?"},
        'That is all. "Any other questions?"',
        "Any other questions? Thanks for asking.",
    ),
    ("startend:quotation", None, '  "Hello there, friend."  ', 'Hello "there", friend.'),
    (
        "change_case:capital_word_frequency",
        {"capital_frequency": 3, "capital_relation": "at least"},
        "The NASA and ESA teams met at CERN.",
        "Only NASA came to the meeting.",
    ),
    (
        "change_case:capital_word_frequency",
        {"capital_frequency": 2, "capital_relation": "less than"},
        "Only NASA came to the meeting.",
        "DON'T do that.",
    ),
    (
        "change_case:english_capital",
        None,
        "THIS IS A SHORT ANSWER WRITTEN IN ENGLISH.",
        "This is a short answer written in English.",
    ),
    (
        "change_case:english_lowercase",
        None,
        "this is a short answer written in english.",
        "this is a short answer written in English.",
    ),
    ("punctuation:no_comma", None, "No commas appear here.", "Well, here is one."),
]


def test_cases_cover_every_instruction_type() -> None:
    assert {case[0] for case in CASES} == set(INSTRUCTIONS)
    assert len(INSTRUCTIONS) == 25


@pytest.mark.parametrize(("instruction_id", "kwargs", "good", "bad"), CASES)
def test_strict_pass_and_fail(instruction_id: str, kwargs: dict | None, good: str, bad: str) -> None:
    assert strict(instruction_id, kwargs, good) is True
    assert strict(instruction_id, kwargs, bad) is False


@pytest.mark.parametrize("instruction_id", sorted(INSTRUCTIONS))
def test_blank_response_follows_nothing(instruction_id: str) -> None:
    kwargs = next(case[1] for case in CASES if case[0] == instruction_id)
    result = evaluate(record(instruction_id, kwargs), "  \n ")
    assert result.inst_strict == [False]
    assert result.inst_loose == [False]


def test_keyword_matching_semantics() -> None:
    # existence and frequency match substrings (as the reference does); forbidden words match whole words
    assert strict("keywords:existence", {"keywords": ["le"]}, "An apple a day.")
    assert strict(
        "keywords:frequency",
        {"keyword": "the", "frequency": 3, "relation": "at least"},
        "Then there, the end.",
    )
    assert strict("keywords:forbidden_words", {"forbidden_words": ["can"]}, "I cannot go.")
    assert not strict("keywords:forbidden_words", {"forbidden_words": ["can"]}, "Yes we Can.")
    # letters other than a-z are counted as characters
    assert strict(
        "keywords:letter_frequency", {"letter": "#", "let_frequency": 2, "let_relation": "at least"}, "#a #b"
    )


def test_paragraph_rules() -> None:
    paragraphs = {"num_paragraphs": 2}
    assert strict("length_constraints:number_paragraphs", paragraphs, "***\nOne.\n***\nTwo.\n***")
    # an empty paragraph between two dividers breaks the instruction
    assert not strict("length_constraints:number_paragraphs", paragraphs, "One.\n***\n***\nTwo.")
    nth = {"num_paragraphs": 2, "nth_paragraph": 1, "first_word": "summary"}
    assert strict("length_constraints:nth_paragraph_first_word", nth, "Summary. Done.\n\nMore text.")
    # the first word is cut at . , ? ! ' " only, so "Summary:" is not "summary"
    assert not strict("length_constraints:nth_paragraph_first_word", nth, "Summary: done.\n\nMore text.")
    # three paragraphs where two are required
    assert not strict("length_constraints:nth_paragraph_first_word", nth, "Summary. A.\n\nB.\n\nC.")


def test_section_bullet_and_highlight_details() -> None:
    sections = {"section_spliter": "Day", "num_sections": 3}
    assert strict("detectable_format:multiple_sections", sections, "Day 1 rest.\nDay 2 walk.\nDay 3 swim.")
    assert not strict(
        "detectable_format:multiple_sections", sections, "Day 1 rest.\nDay two walk.\nDay 3 swim."
    )
    assert strict("detectable_format:number_bullet_lists", {"num_bullets": 1}, "Intro\n  * nested item")
    assert strict("detectable_format:number_highlighted_sections", {"num_highlights": 1}, "**bold**")
    assert not strict("detectable_format:number_highlighted_sections", {"num_highlights": 1}, "a *\nb* c")


def test_sentence_splitter() -> None:
    assert split_sentences("Mr. Smith went to Washington. He arrived at 5 p.m. yesterday.") == [
        "Mr. Smith went to Washington.",
        "He arrived at 5 p.m. yesterday.",
    ]
    assert split_sentences('He said "Stop." Then he left.') == ['He said "Stop."', "Then he left."]
    assert count_sentences("Wait... what happened? Nothing.") == 2
    assert count_sentences("Hello world!How are you? I am fine.") == 2
    assert count_sentences("A heading\nA line\n\nThe end.") == 1  # line breaks alone do not end sentences
    assert count_sentences("The U.S. Army is big. J. Smith agrees.") == 2
    assert count_sentences("It costs 5. then more.") == 1
    assert count_sentences("") == 0


def test_word_counts_and_capital_words() -> None:
    assert count_words("It's a well-known fact: 3.5 apples!") == 9  # It s a well known fact 3 5 apples
    text = "DON'T STOP, U.S. TEAM-WORK (NASA) <<TITLE>> [NAME] I am a cat"
    assert count_capital_words(text) == 9  # DO N'T STOP U.S. TEAM-WORK NASA TITLE NAME I


def test_language_detection_is_deterministic() -> None:
    text = "Ciao amico, come stai? Bene grazie."
    assert len({detect_language(text) for _ in range(5)}) == 1
    # nothing to judge: counted as followed, as in the reference
    assert strict("language:response_language", {"language": "ja"}, "12345 !!!")


def test_loose_variants_match_the_reference_list() -> None:
    response = "Sure:\n**body**\nBye"
    assert loose_variants(response) == [
        response,
        "Sure:\nbody\nBye",
        "**body**\nBye",
        "Sure:\n**body**",
        "**body**",
        "body\nBye",
        "Sure:\nbody",
        "body",
    ]


@pytest.mark.parametrize(
    ("instruction_id", "kwargs", "response"),
    [
        ("detectable_format:json_format", None, 'Sure, here is the JSON:\n{"a": 1}'),
        (
            "combination:repeat_prompt",
            {"prompt_to_repeat": "Write a haiku."},
            "Sure thing.\nWrite a haiku.\nRain.",
        ),
        ("startend:end_checker", {"end_phrase": "Peace!"}, "Bye now. Peace!\nLet me know if you need more."),
        ("startend:quotation", None, '**"Hello there."**'),
        ("punctuation:no_comma", None, "Sure, here you go:\nNo commas below."),
        ("change_case:english_lowercase", None, "Here is my answer:\nthis is all lower case english text."),
    ],
)
def test_loose_only_passes(instruction_id: str, kwargs: dict | None, response: str) -> None:
    result = evaluate(record(instruction_id, kwargs), response)
    assert (result.prompt_strict, result.prompt_loose) == (False, True)


def test_loose_can_still_fail() -> None:
    result = evaluate(record("punctuation:no_comma"), "One, two.\nThree, four.\nFive, six.")
    assert (result.prompt_strict, result.prompt_loose) == (False, False)


# The hub copy (google/IFEval) gives every kwargs dict all of these keys, unused ones None.
# fmt: off
HUB_KWARG_KEYS = (
    "num_highlights", "relation", "num_words", "num_placeholders", "prompt_to_repeat", "num_bullets",
    "section_spliter", "num_sections", "capital_relation", "capital_frequency", "keywords", "num_paragraphs",
    "language", "let_relation", "letter", "let_frequency", "end_phrase", "forbidden_words", "keyword",
    "frequency", "num_sentences", "postscript_marker", "first_word", "nth_paragraph",
)
# fmt: on


def test_none_kwargs_are_dropped() -> None:
    clean = [{}, {"relation": "less than", "num_words": 10}]
    hub = [{key: kw.get(key) for key in HUB_KWARG_KEYS} for kw in clean]
    ids = ["punctuation:no_comma", "length_constraints:number_words"]
    base = {"key": 7, "prompt": "p", "instruction_id_list": ids}
    for response in (
        "Short and sweet.",
        "Short, sweet.",
        "This one is much longer than ten words in the end.",
    ):
        assert evaluate({**base, "kwargs": hub}, response) == evaluate({**base, "kwargs": clean}, response)


def test_unknown_instruction_names_the_id() -> None:
    with pytest.raises(QwenPipeError, match="detectable_format:haiku"):
        evaluate(record("detectable_format:haiku"), "Anything.")


def test_bad_kwargs_name_the_instruction() -> None:
    with pytest.raises(QwenPipeError, match="length_constraints:number_words"):
        evaluate(record("length_constraints:number_words", {"num_words": 3, "relation": "about"}), "")
    with pytest.raises(QwenPipeError, match="keywords:letter_frequency"):
        evaluate(
            record(
                "keywords:letter_frequency", {"letter": "ab", "let_frequency": 1, "let_relation": "at least"}
            ),
            "x",
        )
    with pytest.raises(QwenPipeError, match="punctuation:no_comma"):
        evaluate(record("punctuation:no_comma", {"num_words": 3}), "One two.")
    with pytest.raises(QwenPipeError, match="keywords:frequency"):
        evaluate(record("keywords:frequency", {"keyword": "war"}), "War.")
    with pytest.raises(QwenPipeError, match="1 instruction ids but 2 kwargs"):
        evaluate({**record("punctuation:no_comma"), "kwargs": [{}, {}]}, "x")


def test_aggregate_math() -> None:
    results = [
        IFEvalResult(1, ["a", "b"], True, [True, True], True, [True, True]),
        IFEvalResult(2, ["a", "b", "c"], False, [True, False, False], True, [True, True, True]),
        IFEvalResult(3, ["a"], False, [False], False, [False]),
        IFEvalResult(4, ["a", "b"], False, [False, True], False, [False, True]),
    ]
    assert aggregate(results) == {
        "prompt_level_strict_acc": 1 / 4,
        "inst_level_strict_acc": 4 / 8,
        "prompt_level_loose_acc": 2 / 4,
        "inst_level_loose_acc": 6 / 8,
    }
    with pytest.raises(QwenPipeError):
        aggregate([])


def test_result_fields() -> None:
    rec = {
        "key": 5,
        "prompt": "p",
        "instruction_id_list": ["punctuation:no_comma", "startend:quotation"],
        "kwargs": [{}, {}],
    }
    result = evaluate(rec, '"No commas at all."')
    assert result == IFEvalResult(5, rec["instruction_id_list"], True, [True, True], True, [True, True])


def test_data_file_parses_and_every_instruction_is_known(records: list[dict]) -> None:
    assert len(records) == 541
    assert len({r["key"] for r in records}) == 541
    seen = set()
    for rec in records:
        assert {"key", "prompt", "instruction_id_list", "kwargs"} <= rec.keys()
        instructions = instructions_of(rec)  # raises on an unknown id or unusable kwargs
        assert [i.id for i in instructions] == rec["instruction_id_list"]
        hub = [{key: kwargs.get(key) for key in HUB_KWARG_KEYS} for kwargs in rec["kwargs"]]
        assert instructions_of({**rec, "kwargs": hub}) == instructions
        seen.update(rec["instruction_id_list"])
    assert seen == set(INSTRUCTIONS)


# Records no response can satisfy: each must start with a repeated prompt that itself breaks another
# instruction whose violation no continuation can undo (a comma, a forbidden word, a keyword used too often).
UNSATISFIABLE = {1627, 3718, 3369, 3371, 374}


def test_oracle_satisfies_every_satisfiable_record(records: list[dict]) -> None:
    uncovered = []
    for rec in records:
        response = oracle_response(rec)
        if response is None:
            uncovered.append(rec["key"])
            continue
        result = evaluate(rec, response)
        assert result.inst_strict == [True] * len(rec["instruction_id_list"]), (rec["key"], response)
        assert result.prompt_loose
    assert set(uncovered) == UNSATISFIABLE


def test_uncovered_records_are_unsatisfiable(records: list[dict]) -> None:
    monotone = {"punctuation:no_comma", "keywords:forbidden_words", "keywords:frequency"}
    for rec in (r for r in records if r["key"] in UNSATISFIABLE):
        assert "no adjustment repairs" in oracle_gap(rec)
        ids = rec["instruction_id_list"]
        prompt = rec["kwargs"][ids.index("combination:repeat_prompt")]["prompt_to_repeat"]
        broken = [
            i
            for i, kwargs in zip(ids, rec["kwargs"], strict=True)
            if i in monotone and not evaluate(record(i, kwargs), prompt).prompt_strict
        ]
        assert broken, rec["key"]
        if "keywords:frequency" in broken:
            kwargs = rec["kwargs"][ids.index("keywords:frequency")]
            assert kwargs["relation"] == "less than"


def test_evaluating_the_whole_set_is_fast(records: list[dict]) -> None:
    responses = [(rec, oracle_response(rec) or "") for rec in records]
    start = time.perf_counter()
    results = [evaluate(rec, response) for rec, response in responses]
    elapsed = time.perf_counter() - start
    scores = aggregate(results)
    assert scores["prompt_level_strict_acc"] == 536 / 541
    assert elapsed < 60, f"evaluating 541 responses took {elapsed:.1f}s"
