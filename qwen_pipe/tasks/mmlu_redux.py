"""MMLU-Redux 2.0 (Gema et al., "Are We Done with MMLU?", NAACL 2025): 5,700 MMLU test questions, 100 from
each of the 57 subjects, re-annotated by experts; answered generatively, 0-shot, graded on the letter.

The setting: the Qwen3 technical report scores post-trained models on MMLU-Redux generatively but publishes
no prompt, and Qwen's public repositories hold no MMLU-Redux code (see ../shared/datasets/QWEN_EVAL_SETTINGS.md).
Three harnesses implement it, each differently:

- lighteval `mmlu_redux_2` (src/lighteval/tasks/tasks/mmlu_redux.py): 0-shot, the prompt
  "The following are multiple choice questions (with answers) about {subject}.\\n\\n{question}\\nA. ..\\nD. ..\\n
  Answer: ", all 5,700 rows, gold = the original MMLU `answer`; letters read by its extractive match
  (`Metrics.pass_at_k_letters`); with a chat template it sends no stop strings. A run of it on Qwen3-8B,
  non-thinking, gave 79.7 against the report's 79.5 (huggingface/lighteval issue #1094).
- evalscope `mmlu_redux` (evalscope/benchmarks/mmlu_redux/mmlu_redux_adapter.py): 0-shot chain of thought
  ending "ANSWER: [LETTER]", all 5,700 rows, the gold moved or widened by the annotators' `correct_answer`;
  a Qwen3-8B thinking run gave 78.98 against 87.5 (modelscope/ms-swift issue #5382).
- lm-evaluation-harness `mmlu_redux_generative` (lm_eval/tasks/mmlu-redux/generative/, v4+): a "respond with
  the correct letter" prompt, only the rows annotated `ok` (hub copy fxmarty/mmlu-redux-2.0-ok, 5,330 rows),
  the first standalone letter.

qwen-pipe follows lighteval's, the only one with a published reproduction of a Qwen3 number: the same prompt,
as the single user turn for chat models and as plain text for base models (lighteval sends the same text),
every row, gold = `answer`, and the reply's letter read by `extractive_letter` (a re-implementation of
lighteval's extractive match, scoring/choice_extract.py) after the `<think>` block is stripped. The metric
is accuracy, `acc` (lighteval's pass@1 with one sample). Output budget: chat 2,048 tokens (lighteval passes
the run's own budget; a non-thinking reply to this prompt is a line or two), thinking mode 32,768 (the
pipeline's rule), base models 32 tokens up to the first newline (lighteval: 1 token, stop "\\n").

The annotations stay in every record, so an analysis can re-score any subset (lm-eval's `ok` rows, or the
rows evalscope re-keys): `error_type` (the mirror's spellings, "OK", "Wrong groundtruth", "wrong_groundtruth ",
normalised to the hub's snake_case: ok 5,330, bad_question_clarity 132, wrong_groundtruth 107,
multiple_correct_answers 39, no_correct_answer 35, expert 32, bad_options_clarity 25), `correct_answer`
(the annotators' free-text fix, null when empty), `source` and `potential_reason`. Each score row carries
the sample's `error_type`, and the aggregate holds the accuracy per error type under `_per_error_type`
(its `ok` entry is lm-eval's denominator).

The mirror holds the authors' 57 annotation CSVs (github aryopg/mmlu-redux), read in place: 9 use ";" as
the delimiter (found from the header line), 3 order their columns differently (read by name),
econometrics has two empty-named trailing columns (ignored), `choices` is a Python literal
(`ast.literal_eval`), and mmlu_moral_scenarios.csv has one byte that is not UTF-8 (0xD5, Mac Roman's
right single quote: decoded as such, which gives MMLU's own text "my sister’s head").
"""

from __future__ import annotations

import ast
import csv
import hashlib
import io
import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import ClassVar

from qwen_pipe.engines.base import SamplingParams
from qwen_pipe.errors import QwenPipeError
from qwen_pipe.protocols import DEFAULT_PROTOCOL
from qwen_pipe.scoring.choice_extract import extractive_letter
from qwen_pipe.scoring.lm_eval import exact_match, regex_filter
from qwen_pipe.scoring.stats import group_means, mean_and_stderr
from qwen_pipe.sources.hub import load_hub_split
from qwen_pipe.sources.mirror import mirror_file, require_fields
from qwen_pipe.tasks.common.base import (
    DataSource,
    GenerationTask,
    Prompt,
    PromptStyle,
    Response,
    SampleScore,
)
from qwen_pipe.tasks.common.multiple_choice import GEN_BASE_TOKENS, GEN_CHAT_TOKENS, LETTERS
from qwen_pipe.tasks.common.registry import register

SUBJECTS = (
    "abstract_algebra", "anatomy", "astronomy", "business_ethics", "clinical_knowledge", "college_biology",
    "college_chemistry", "college_computer_science", "college_mathematics", "college_medicine",
    "college_physics", "computer_security", "conceptual_physics", "econometrics", "electrical_engineering",
    "elementary_mathematics", "formal_logic", "global_facts", "high_school_biology", "high_school_chemistry",
    "high_school_computer_science", "high_school_european_history", "high_school_geography",
    "high_school_government_and_politics", "high_school_macroeconomics", "high_school_mathematics",
    "high_school_microeconomics", "high_school_physics", "high_school_psychology", "high_school_statistics",
    "high_school_us_history", "high_school_world_history", "human_aging", "human_sexuality",
    "international_law", "jurisprudence", "logical_fallacies", "machine_learning", "management", "marketing",
    "medical_genetics", "miscellaneous", "moral_disputes", "moral_scenarios", "nutrition", "philosophy",
    "prehistory", "professional_accounting", "professional_law", "professional_medicine",
    "professional_psychology", "public_relations", "security_studies", "sociology", "us_foreign_policy",
    "virology", "world_religions",
)  # fmt: skip
CSV_FIELDS = ("question", "choices", "answer", "error_type", "source", "correct_answer", "potential_reason")
FIELDS = ("subject", *CSV_FIELDS)
ID_FIELDS = ("subject", "question", "choices", "answer")
ANNOTATIONS = ("source", "correct_answer", "potential_reason")  # free text; an empty cell is null
PER_ERROR_TYPE = "_per_error_type"  # aggregate key holding the accuracy of each error type (not a metric)


def mirror_path(subject: str) -> str:
    return f"mmlu_redux/mmlu_{subject}.csv"


def decode(data: bytes) -> str:
    """UTF-8, with any byte that is not valid UTF-8 read as Mac Roman (the one such byte in the mirror, 0xD5,
    is the right single quote U+2019, as MMLU has it)."""
    parts = []
    while True:
        try:
            parts.append(data.decode("utf-8"))
            return "".join(parts)
        except UnicodeDecodeError as error:
            parts.append(data[: error.start].decode("utf-8"))
            parts.append(data[error.start : error.end].decode("mac_roman"))
            data = data[error.end :]


def read_csv_rows(path: Path) -> list[dict]:
    """The rows of one annotation CSV as dicts by header name, whichever delimiter and column order it has."""
    text = decode(path.read_bytes())
    header = text.split("\n", 1)[0]
    delimiter = ";" if header.count(";") > header.count(",") else ","
    rows = list(csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter))
    return require_fields(rows, CSV_FIELDS, path)


def error_type(value: str | None) -> str:
    """The hub's snake_case spelling of an annotation ("Wrong groundtruth", "OK " -> wrong_groundtruth, ok)."""
    return (value or "").strip().lower().replace(" ", "_")


def to_record(subject: str, row: dict, where: str) -> dict:
    """A CSV row or hub row as a hub-schema record: `choices` a list of 4 strings, `answer` an int 0-3."""
    choices = row["choices"]
    if isinstance(choices, str):
        try:
            choices = ast.literal_eval(choices)
        except (ValueError, SyntaxError):
            choices = None
    answer = str(row["answer"]).strip()
    if not (isinstance(choices, list) and len(choices) == 4 and all(isinstance(c, str) for c in choices)):
        raise QwenPipeError(
            f"{where}: choices is not a list of 4 strings: {str(row['choices'])[:80]!r}",
            "point the data dir at the MMLU-Redux 2.0 annotation files (docs/tasks.md)",
        )
    if answer not in ("0", "1", "2", "3"):
        raise QwenPipeError(
            f"{where}: answer must be 0-3, got {answer!r}",
            "point the data dir at the MMLU-Redux 2.0 annotation files (docs/tasks.md)",
        )
    return {
        "subject": subject,
        "question": row["question"],
        "choices": choices,
        "answer": int(answer),
        "error_type": error_type(row["error_type"]),
        **{field: row[field] or None for field in ANNOTATIONS},
    }


# lm-eval `mmlu_redux_generative` (fxmarty/mmlu-redux-2.0-ok: the rows annotated `ok`)
LM_EVAL_INSTRUCTION = "Please respond with the correct letter (A, B, C or D) without any additional comments, only the correct letter:"
LM_EVAL_MAX_NEW_TOKENS = 256  # lm-eval's default max_gen_toks (the task sets none)


def subject_name(subject: str) -> str:
    return subject.replace("_", " ")


def gold_letter(sample: dict) -> str:
    return LETTERS[sample["answer"]]


@register
class MMLURedux(GenerationTask):
    name = "mmlu_redux"
    kind = "multiple_choice"
    source = DataSource(
        hub_id="edinburgh-dawg/mmlu-redux-2.0",
        hub_config=None,  # one config per subject (SUBJECTS), each a test split of 100
        split="test",
        rows=5700,
        mirror_files=tuple(mirror_path(s) for s in SUBJECTS),
        embedded=(
            "8 questions in 3 subjects written by qwen-pipe in MMLU-Redux's hub format, annotations included "
            "(a sample, not the benchmark)"
        ),
        fields=FIELDS,
        embedded_file="mmlu_redux_sample.jsonl",
    )
    primary_metric = "acc"
    metrics = ("acc",)
    lm_eval_task = "mmlu_redux_generative"
    protocol_settings: ClassVar[dict[str, tuple[int, str]]] = {
        "lm-eval": (
            0,
            "lm-eval `mmlu_redux_generative`: only the 5,330 rows annotated `ok` (its fxmarty/mmlu-redux-2.0-ok), "
            "the subject's description, the question stripped, options 'A. ..', then 'Please respond with the "
            "correct letter (A, B, C or D) without any additional comments, only the correct letter:' for every "
            "model; 256 tokens, sampled at temperature 1.0 as lm-eval's vLLM backend does for a task that sets none; "
            "the first of A-D in the reply, exact match ignoring case and punctuation",
        )
    }
    published_setting = (
        "Qwen3 report (post-trained models): MMLU-Redux, generative, no prompt published; qwen-pipe follows "
        "lighteval `mmlu_redux_2` (reproduced Qwen3-8B non-thinking: 79.7 vs 79.5, lighteval issue #1094): "
        "0-shot, all 5,700 rows, gold = the original MMLU answer, the letter read by lighteval's extractive "
        "match (`extractive_letter`); annotations kept per record, accuracy per error type in `_per_error_type` "
        "(lm-eval scores only `ok` rows; evalscope re-keys rows from `correct_answer`)"
    )
    prompt_format = (
        "'The following are multiple choice questions (with answers) about {subject}.\\n\\n{question}\\n"
        "A. a\\nB. b\\nC. c\\nD. d\\nAnswer: ' (trailing space); chat: the only user turn; base: plain text, "
        "stop at a newline"
    )

    def __init__(self, shots: int | None = None, protocol: str = DEFAULT_PROTOCOL):
        super().__init__(shots, protocol)
        if self.shots:
            raise QwenPipeError(
                f"mmlu_redux: {self.shots}-shot asked, but MMLU-Redux has only its test split (0-shot only)",
                "set tasks.mmlu_redux.shots to 0 or remove it",
            )

    # --- data ---------------------------------------------------------------------------------
    def load_mirror(self, root: Path) -> list[dict]:
        records = []
        for subject in SUBJECTS:
            path = mirror_file(root, mirror_path(subject))
            for row_number, row in enumerate(read_csv_rows(path), start=2):  # line 1 is the header
                records.append(to_record(subject, row, f"{path} row {row_number}"))
        return self._rows(records)

    def load_hub(self) -> list[dict]:
        return self._rows(
            [
                to_record(subject, row, f"{self.source.hub_id} ({subject})")
                for subject in SUBJECTS
                for row in load_hub_split(self.source.hub_id, subject, self.source.split)
            ]
        )

    def load_embedded(self) -> list[dict]:
        return self._rows(super().load_embedded())

    def _rows(self, records: list[dict]) -> list[dict]:
        """lm-eval evaluates only the rows whose annotation is `ok`; the other protocols every row."""
        return [r for r in records if r["error_type"] == "ok"] if self.lm_eval else records

    def sample_id(self, record: dict, index: int) -> str:
        """Position and content, as mmlu's ids: the same row gets the same id from the mirror and the hub."""
        payload = json.dumps([record[f] for f in ID_FIELDS], ensure_ascii=False)
        return f"mmlu_redux-{index:04d}-{hashlib.sha256(payload.encode()).hexdigest()[:8]}"

    # --- prompt -------------------------------------------------------------------------------
    def query(self, sample: dict) -> str:
        """lighteval's `mmlu_redux_2` prompt, byte for byte (the question as found, not stripped)."""
        options = "".join(f"{LETTERS[i]}. {choice}\n" for i, choice in enumerate(sample["choices"]))
        return (
            f"The following are multiple choice questions (with answers) about {subject_name(sample['subject'])}."
            f"\n\n{sample['question']}\n{options}Answer: "
        )

    def lm_eval_query(self, sample: dict) -> str:
        options = "".join(f"{LETTERS[i]}. {choice}\n" for i, choice in enumerate(sample["choices"]))
        return (
            f"The following are multiple choice questions (with answers) about {subject_name(sample['subject'])}."
            f"\n\n{sample['question'].strip()}\n{options}{LM_EVAL_INSTRUCTION}"
        )

    def prompt(self, sample: dict, style: PromptStyle, history: Sequence[str] = ()) -> Prompt:
        if self.lm_eval:
            return self.lm_eval_query(sample)
        if style.chat:
            return [{"role": "user", "content": self.query(sample)}]
        return self.query(sample)

    def sampling(self, style: PromptStyle) -> SamplingParams:
        if self.lm_eval:
            return SamplingParams(max_new_tokens=LM_EVAL_MAX_NEW_TOKENS, stop=("</s>",))
        if style.chat:
            return SamplingParams(max_new_tokens=GEN_CHAT_TOKENS)
        return SamplingParams(max_new_tokens=GEN_BASE_TOKENS, stop=("\n",))

    def sample_sampling(self, sample: dict, sampling: SamplingParams) -> SamplingParams:
        # lm-eval's task sets neither do_sample nor temperature, so its vLLM backend leaves vLLM's default,
        # temperature 1.0: lm-eval samples this task (seeded per request here, from its global seed there)
        if self.lm_eval:
            return replace(sampling, temperature=1.0, top_p=1.0, top_k=-1, presence_penalty=0.0)
        return sampling

    def gold_output(self, sample: dict, turn: int = 0) -> str | None:
        return gold_letter(sample)

    # --- scoring ------------------------------------------------------------------------------
    def score(self, sample: dict, responses: Sequence[Response], style: PromptStyle) -> SampleScore:
        gold = gold_letter(sample)
        if self.lm_eval:
            letter = regex_filter(responses[0].text, "([ABCD])")
            correct = exact_match(letter, gold, ignore_case=True, ignore_punctuation=True)
        else:
            letter = extractive_letter(responses[0].text, len(sample["choices"]))  # type: ignore[union-attr]
            correct = letter == gold
        return SampleScore(
            {"acc": float(correct)},
            {"letter": letter, "gold": gold, "error_type": sample["error_type"]},
        )

    def aggregate(self, samples: Sequence[dict], scores: Sequence[SampleScore]) -> dict[str, dict]:
        return {
            "acc": mean_and_stderr([s.metrics["acc"] for s in scores]),
            PER_ERROR_TYPE: group_means(
                (sample["error_type"], score.metrics["acc"])
                for sample, score in zip(samples, scores, strict=True)
            ),
        }
