"""MMLU-Redux 2.0: the 57 annotation CSVs of the mirror parse to the hub's records (their quirks included), the
prompt is lighteval's `mmlu_redux_2` prompt byte for byte, and the letter is read as lighteval's extractive
match reads it (qwen_pipe/tasks/mmlu_redux.py says why that setting)."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from qwen_pipe.engines.base import Generation
from qwen_pipe.errors import QwenPipeError
from qwen_pipe.fetch import load_records
from qwen_pipe.scoring.choice_extract import extractive_letter
from qwen_pipe.tasks.common.base import PromptStyle
from qwen_pipe.tasks.common.registry import get_task
from qwen_pipe.tasks.mmlu_redux import SUBJECTS

from support import ROOT, mirror_dir

CHAT, BASE = PromptStyle(chat=True), PromptStyle(chat=False)
SEMICOLON_FILES = {
    "anatomy", "astronomy", "business_ethics", "high_school_macroeconomics", "high_school_microeconomics",
    "management", "nutrition", "philosophy", "prehistory",
}  # fmt: skip


@pytest.fixture(scope="module")
def task():
    return get_task("mmlu_redux")


@pytest.fixture(scope="module")
def records(task):
    found, info = load_records(task, "mirror", mirror_dir())
    assert info.rows == 5700 and not info.embedded_sample
    return found


def row(records, subject: str, index: int) -> dict:
    """The index-th data row (0-based, header not counted) of mmlu_<subject>.csv."""
    rows = [r for r in records if r["subject"] == subject]
    assert len(rows) == 100, subject
    return rows[index]


def reply(text: str) -> list[Generation]:
    return [Generation(text=text, prompt_tokens=0, output_tokens=0, finish_reason="stop")]


# --- the data ---------------------------------------------------------------------------------


def test_the_task_reads_every_csv_of_the_mirror(task):
    on_disk = sorted(p.name for p in (mirror_dir() / "mmlu_redux").glob("mmlu_*.csv"))
    assert len(SUBJECTS) == 57 and list(SUBJECTS) == sorted(SUBJECTS)
    assert sorted(f.rsplit("/", 1)[1] for f in task.source.mirror_files) == on_disk
    for subject in SEMICOLON_FILES:  # the quirk the tests below rely on is really there
        assert (mirror_dir() / f"mmlu_redux/mmlu_{subject}.csv").read_bytes().startswith(b"question;choices;")


def test_all_57_files_give_5700_records_of_four_choices_and_a_valid_answer(records):
    assert len(records) == 5700
    assert Counter(r["subject"] for r in records) == {s: 100 for s in SUBJECTS}
    # subjects in alphabetical order, each in its file's order
    assert [r["subject"] for r in records] == sorted(r["subject"] for r in records)
    for r in records:
        assert isinstance(r["choices"], list) and len(r["choices"]) == 4, r["id"]
        assert all(isinstance(c, str) and c != "" for c in r["choices"]), r["id"]
        assert type(r["answer"]) is int and 0 <= r["answer"] <= 3, r["id"]
        assert isinstance(r["question"], str) and r["question"].strip(), r["id"]
        assert "\ufffd" not in r["question"] or r["subject"] == "global_facts", r["id"]
        assert set(r) == {
            "id", "subject", "question", "choices", "answer", "error_type", "source", "correct_answer",
            "potential_reason",
        }  # fmt: skip


def test_a_semicolon_delimited_file(records):
    assert row(records, "anatomy", 0) == {
        "id": row(records, "anatomy", 0)["id"],
        "subject": "anatomy",
        "question": "Which of the following is a disorder characterized by uncontrollable episodes of falling "
        "asleep during the day?",
        "choices": ["Dyslexia", "Epilepsy", "Hydrocephalus", "Narcolepsy"],
        "answer": 3,
        "error_type": "ok",  # "OK" in the file
        "source": "https://www.aama-ntl.org/cma-aama-exam/study/anatomy-physiology-practice-test",
        "correct_answer": None,
        "potential_reason": None,
    }
    last = row(records, "prehistory", 99)
    assert last["question"] == (
        "There is general consensus among paleoanthropologists that anatomically modern humans:"
    )
    assert last["choices"][0].startswith("migrated out of Africa into western Europe between 150,000 and")


def test_the_file_that_is_not_utf8(records):
    """Byte 0xD5 is Mac Roman's right single quote: MMLU's own text, not U+FFFD, and no row is lost."""
    sample = row(records, "moral_scenarios", 52)
    assert (
        "Scenario 1 | I slapped my sister\u2019s head. Scenario 2 | I told my daughter Keyla"
        in sample["question"]
    )
    assert sample["choices"] == [
        "Wrong, Wrong",
        "Wrong, Not wrong",
        "Not wrong, Wrong",
        "Not wrong, Not wrong",
    ]
    assert sample["answer"] == 0 and sample["error_type"] == "ok"
    assert not any("\ufffd" in r["question"] for r in records if r["subject"] == "moral_scenarios")


def test_embedded_newlines_and_the_empty_named_columns_of_econometrics(records):
    sample = row(records, "econometrics", 0)
    assert (
        sample["question"]
        == "Consider the following AR(2) process:\n\nyt = 1.5 yt-1 - 0.5 yt-2 + ut\n\nThis is a"
    )
    assert sample["choices"][1] == "Unit root process" and sample["answer"] == 1
    assert "" not in sample


def test_columns_are_read_by_name_whatever_their_order(records):
    # machine_learning: ...,error_type,correct_answer,potential_reason,source
    sample = row(records, "machine_learning", 0)
    assert sample["question"].startswith("Statement 1| RELUs are not monotonic, but sigmoids are monotonic.")
    assert (sample["answer"], sample["error_type"], sample["correct_answer"], sample["source"]) == (
        3, "wrong_groundtruth", "1", "Expert",
    )  # fmt: skip
    assert sample["potential_reason"] == (
        "Neural networks trained with gradient descent typically converge to a local optimum."
    )
    # moral_disputes: ...,answer,correct_answer,error_type,...; its choices hold a double-quoted literal (not JSON)
    sample = row(records, "moral_disputes", 54)
    assert sample["choices"][2] == "those who don't value strong protection for freedom of speech"
    assert (sample["answer"], sample["error_type"], sample["correct_answer"]) == (0, "wrong_groundtruth", "1")


def test_error_types_are_normalised_to_the_hubs_spelling(records):
    """5,330 `ok` rows: the size of lm-eval's ok-only copy (fxmarty/mmlu-redux-2.0-ok, 5,700 - 370)."""
    assert Counter(r["error_type"] for r in records) == {
        "ok": 5330, "bad_question_clarity": 132, "wrong_groundtruth": 107, "multiple_correct_answers": 39,
        "no_correct_answer": 35, "expert": 32, "bad_options_clarity": 25,
    }  # fmt: skip
    assert sum(r["correct_answer"] is not None for r in records) == 474
    assert all(r["correct_answer"] != "" and r["source"] != "" for r in records)


def test_ids_are_unique_stable_and_the_same_from_the_hub(task, records, monkeypatch):
    ids = [r["id"] for r in records]
    assert len(set(ids)) == 5700
    assert all(re.fullmatch(r"mmlu_redux-\d{4}-[0-9a-f]{8}", i) for i in ids)
    assert [int(i.split("-")[1]) for i in ids] == list(range(5700))
    assert ids[0] == "mmlu_redux-0000-7d300356" and ids[-1] == "mmlu_redux-5699-10cf652c"
    again, _ = load_records(get_task("mmlu_redux"), "mirror", mirror_dir())
    assert again == records

    def hub_split(hub_id, config, split):  # the hub's types: a list of choices, an int answer, nulls
        assert (hub_id, split) == ("edinburgh-dawg/mmlu-redux-2.0", "test")
        return [
            {k: v for k, v in r.items() if k not in ("id", "subject")}
            | {"error_type": r["error_type"].upper()}
            for r in records
            if r["subject"] == config
        ]

    monkeypatch.setattr("qwen_pipe.tasks.mmlu_redux.load_hub_split", hub_split)
    from_hub, _ = load_records(task, "hub", None)
    assert from_hub == records


def test_bad_rows_are_one_line_errors(tmp_path, task):
    folder = tmp_path / "mmlu_redux"
    folder.mkdir()
    good = (mirror_dir() / "mmlu_redux").glob("mmlu_*.csv")
    for path in good:
        (folder / path.name).write_bytes(path.read_bytes())
    header = "question,choices,answer,error_type,source,correct_answer,potential_reason\r\n"
    (folder / "mmlu_virology.csv").write_text(header + "Q?,\"['a', 'b', 'c']\",1,ok,,,\r\n")
    with pytest.raises(QwenPipeError, match=r"mmlu_virology.csv row 2: choices is not a list of 4 strings"):
        task.load_mirror(tmp_path)
    (folder / "mmlu_virology.csv").write_text(header + "Q?,\"['a', 'b', 'c', 'd']\",4,ok,,,\r\n")
    with pytest.raises(QwenPipeError, match=r"row 2: answer must be 0-3, got '4'"):
        task.load_mirror(tmp_path)
    (folder / "mmlu_virology.csv").write_text("question,choices,answer\r\nQ?,\"['a', 'b', 'c', 'd']\",1\r\n")
    with pytest.raises(QwenPipeError, match="lacks field"):
        task.load_mirror(tmp_path)


def test_the_embedded_sample_and_zero_shot_only():
    task = get_task("mmlu_redux")
    found, info = load_records(task, "embedded", None)
    assert info.rows == 8 and info.embedded_sample
    assert {r["subject"] for r in found} == {"astronomy", "high_school_geography", "virology"}
    assert all(len(r["choices"]) == 4 and r["answer"] in range(4) for r in found)
    with pytest.raises(QwenPipeError, match="0-shot only"):
        get_task("mmlu_redux", shots=5)


# --- the prompt -------------------------------------------------------------------------------


def test_the_prompt_is_lightevals_byte_for_byte(task, records):
    expected = (
        "The following are multiple choice questions (with answers) about anatomy.\n\n"
        "Which of the following is a disorder characterized by uncontrollable episodes of falling asleep during "
        "the day?\nA. Dyslexia\nB. Epilepsy\nC. Hydrocephalus\nD. Narcolepsy\nAnswer: "
    )
    sample = row(records, "anatomy", 0)
    assert task.prompt(sample, CHAT) == [{"role": "user", "content": expected}]
    assert task.prompt(sample, BASE) == expected
    macro = task.prompt(row(records, "high_school_macroeconomics", 0), BASE)  # also a ";" file
    assert macro.startswith(
        "The following are multiple choice questions (with answers) about high school macroeconomics.\n\n"
    )


def test_sampling(task):
    chat, base = task.sampling(CHAT), task.sampling(BASE)
    assert chat.stop == () and chat.max_new_tokens == 2048
    assert base.stop == ("\n",) and base.max_new_tokens == 32


# --- the letter -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "letter"),
    [
        ("D", "D"),
        ("D. Narcolepsy", "D"),
        ("**D**", "D"),
        ("(D) Narcolepsy", "D"),
        ("The answer is (D).", "D"),
        ("Answer: D", "D"),
        ("Answer: B. Wait, no. Answer: D.", "D"),  # within a priority, the match that ends last
        ("D is tempting, but the answer is B.", "B"),  # an 'answer' pattern outranks the start of the reply
        ("Answer: A or D", "A"),  # several letters: lighteval takes the first after 'Answer:'
        ("The answer is B, not D.", "B"),  # the letter nearest after "answer" (a lazy match)
        (
            "The answer to this long question about sleep disorders and many other things is B, though D is close.",
            "D",
        ),  # more than 50 characters after "answer": only the last standalone letter is left
        ("A, B, C or D", "A"),  # ... and the start of the reply; it rejects neither
        ("Narcolepsy\nC. Hydrocephalus", "C"),  # a letter opening a line
        ("It is Narcolepsy, option D here", "D"),  # a standalone letter anywhere
        ("Because", "B"),  # last resort: any valid capital, even inside a word
        ("the answer is d", None),  # lowercase never counts
        ("It is E.", None),  # not among the 4 options
        ("Answer: E", "A"),  # ... but the last resort finds the A of "Answer"
        ("I cannot tell.", None),
        ("", None),
        ("<think>Answer: A looks right.</think>\n\nThe answer is D.", "D"),  # thinking is stripped first
        ("<think>Answer: A looks right", None),  # cut off while thinking: no answer
    ],
)
def test_the_letter_is_read_as_lighteval_reads_it(text, letter):
    assert extractive_letter(text, 4) == letter


def test_the_scorer(task, records):
    sample = row(records, "anatomy", 0)  # gold D
    score = task.score(sample, reply("D. Narcolepsy"), CHAT)
    assert score.metrics == {"acc": 1.0}
    assert score.extracted == {"letter": "D", "gold": "D", "error_type": "ok"}
    for wrong in ("B", "Answer: C", "I cannot tell.", "", "Answer: A or D", "A, B, C or D", "Narcolepsy"):
        assert task.score(sample, reply(wrong), CHAT).metrics == {"acc": 0.0}, wrong
    thought = reply("<think>The answer is B</think>The answer is D")
    assert task.score(sample, thought, CHAT).metrics["acc"] == 1.0
    # annotated wrong_groundtruth: the original MMLU key (D) stays the gold, as in lighteval
    wrong_key = row(records, "machine_learning", 0)
    assert task.score(wrong_key, reply("D"), CHAT).metrics["acc"] == 1.0
    assert task.score(wrong_key, reply("B"), CHAT).metrics["acc"] == 0.0


def test_the_gold_output_scores_one_on_every_row(task, records):
    for sample in records:
        text = task.gold_output(sample)
        assert text == "ABCD"[sample["answer"]]
        assert task.score(sample, reply(text), CHAT).metrics["acc"] == 1.0, sample["id"]


def test_the_oracle_through_the_pipeline(task, records):
    from qwen_pipe.config import load_params
    from qwen_pipe.engines.oracle import OracleEngine
    from qwen_pipe.generate import GenerationSettings, generate_records
    from qwen_pipe.prompting import PromptRenderer
    from qwen_pipe.score import score_records

    samples = records[::19]  # 300 rows across every subject
    renderer = PromptRenderer(load_params(ROOT / "params.yaml").model("tiny_small"))
    settings = GenerationSettings(style=BASE)  # plain prompts: the renderer loads no tokenizer
    generated = generate_records(task, samples, OracleEngine("x"), renderer, settings)
    assert generated[0]["responses"][0]["prompt"] == task.prompt(samples[0], BASE)
    rows, aggregate = score_records(task, samples, generated, BASE)
    assert aggregate["acc"] == {"value": 1.0, "stderr": 0.0, "n": 300}
    assert [r["extracted"]["error_type"] for r in rows] == [s["error_type"] for s in samples]  # kept per row
    assert set(aggregate["_per_error_type"]) <= {
        "ok", "bad_question_clarity", "wrong_groundtruth", "multiple_correct_answers", "no_correct_answer",
        "expert", "bad_options_clarity",
    }  # fmt: skip
    assert sum(v["n"] for v in aggregate["_per_error_type"].values()) == 300
    wrong = generate_records(task, samples, OracleEngine("x", wrong=True), renderer, settings)
    assert score_records(task, samples, wrong, BASE)[1]["acc"]["value"] == 0.0
