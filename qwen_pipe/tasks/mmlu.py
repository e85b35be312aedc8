"""MMLU (Hendrycks et al., 2021): 57 subjects of four-option questions, 5-shot from each subject's dev split.

Each record carries its subject's dev exemplars under `fewshot` (hub-schema dev records, in dev order, as
lm-eval's first_n sampler takes them), so a prompt can be built from the record alone.

Accuracy is reported two ways: `acc_micro`, the mean over all questions (the primary metric: lm-eval's
`mmlu` group weights subjects by size, and Hendrycks' evaluate.py and Qwen's evaluate_mmlu.py report the
question-weighted average), and `acc_macro`, the mean of the 57 subject accuracies. The aggregate also holds
each subject's accuracy under `_per_subject`.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from qwen_pipe.errors import QwenPipeError
from qwen_pipe.protocols import DEFAULT_PROTOCOL
from qwen_pipe.scoring.stats import group_means, macro_average, mean_and_stderr
from qwen_pipe.sources.hub import load_hub_split
from qwen_pipe.sources.mirror import read_mirror_jsonl
from qwen_pipe.tasks.common.base import DataSource, PromptStyle, Response, SampleScore, embedded_records
from qwen_pipe.tasks.common.multiple_choice import LETTERS, MultipleChoiceTask, argmax
from qwen_pipe.tasks.common.registry import register

FIELDS = ("question", "subject", "choices", "answer")
PER_SUBJECT = "_per_subject"  # aggregate key holding each subject's accuracy (not a metric)
# Items where a perfect answerer scores below 1.0, and why (the oracle prefers every option whose text is the key's).
ORACLE_EXCEPTIONS: dict[str, str] = {
    "mmlu-04021-35bc78e1": "high_school_macroeconomics: options A and D are the same text ('Increase    Increase') "
    "and the key is D; tied log-likelihoods go to the first option (lm-eval's argmax)",
}


def with_fewshot(records: list[dict], dev: list[dict]) -> list[dict]:
    """Each record with its subject's dev exemplars under `fewshot`."""
    by_subject: dict[str, list[dict]] = defaultdict(list)
    for example in dev:
        by_subject[example["subject"]].append({f: example[f] for f in FIELDS})
    return [{**r, "fewshot": by_subject.get(r["subject"], [])} for r in records]


def subject_name(subject: str) -> str:
    return subject.replace("_", " ")


def subject_aggregate(
    samples: Sequence[dict], scores: Sequence[SampleScore], metric: str
) -> tuple[dict, dict]:
    """The macro average over subjects (its stderr from the subjects' stderrs), and each subject's stats."""
    per_subject = group_means(
        (sample["subject"], score.metrics[metric]) for sample, score in zip(samples, scores, strict=True)
    )
    return {**macro_average(per_subject, len(samples)), "subjects": len(per_subject)}, per_subject


@register
class MMLU(MultipleChoiceTask):
    name = "mmlu"
    lm_eval_task = "mmlu"
    oracle_exceptions = ORACLE_EXCEPTIONS
    source = DataSource(
        hub_id="cais/mmlu",
        hub_config="all",
        split="test",
        rows=14042,
        mirror_files=("mmlu/mmlu_test.hf.jsonl.gz", "mmlu/mmlu_dev.hf.jsonl"),
        embedded=(
            "8 questions in 2 subjects written by qwen-pipe in MMLU's hub format, with 5 dev-style exemplars "
            "each (a sample, not the benchmark)"
        ),
        fields=FIELDS,
        embedded_file="mmlu_sample.jsonl",
    )
    metrics = ("acc_micro", "acc_macro")
    primary_metric = "acc_micro"
    gen_metrics = ("acc_micro", "acc_macro")
    max_shots = 5
    default_shots = 5
    protocol_settings: ClassVar[dict[str, tuple[int, str]]] = {
        "lm-eval": (
            0,
            "lm-eval `mmlu` as it runs by default: 0-shot (set tasks.mmlu.shots: 5 for `--num_fewshot 5`, the "
            "published setting), Hendrycks' format, letters scored by log-likelihood; acc_micro = its group score",
        )
    }
    letters_setting = (
        "qwen-pipe's letter-choice MMLU for chat models, 0-shot by default (the Qwen3 report grades chat models "
        "generatively on MMLU-Redux; MMLU itself is published 5-shot log-likelihood); shots become earlier turns"
    )
    published_setting = (
        "Qwen3 report / Qwen-1 README: MMLU 5-shot; lm-eval `mmlu` prompt (Hendrycks' format), first 5 dev "
        "examples of the subject, letters scored; acc_micro = lm-eval's size-weighted group score"
    )
    prompt_format = (
        "'The following are multiple choice questions (with answers) about {subject}.\\n\\n', then per shot "
        "'q\\nA. a\\nB. b\\nC. c\\nD. d\\nAnswer: X\\n\\n', then the question block ending 'Answer:'; "
        "' A'..' D' scored"
    )

    def __init__(self, shots: int | None = None, protocol: str = DEFAULT_PROTOCOL):
        super().__init__(shots, protocol)
        self._prefixes: dict[tuple, str] = {}  # every question of a subject shares its few-shot prefix

    def load_mirror(self, root: Path) -> list[dict]:
        test, dev = self.source.mirror_files
        return with_fewshot(read_mirror_jsonl(root, test, FIELDS), read_mirror_jsonl(root, dev, FIELDS))

    def load_hub(self) -> list[dict]:
        test = load_hub_split(self.source.hub_id, self.source.hub_config, "test")
        return with_fewshot(test, load_hub_split(self.source.hub_id, self.source.hub_config, "dev"))

    def load_embedded(self) -> list[dict]:
        return with_fewshot(super().load_embedded(), embedded_records("mmlu_fewshot.jsonl"))

    def sample_id(self, record: dict, index: int) -> str:
        """Position and content: the test split holds 27 exact duplicate rows, so content alone is not unique."""
        payload = json.dumps([record[f] for f in FIELDS], ensure_ascii=False)
        return f"mmlu-{index:05d}-{hashlib.sha256(payload.encode()).hexdigest()[:8]}"

    def description(self, sample: dict) -> str:
        return f"The following are multiple choice questions (with answers) about {subject_name(sample['subject'])}.\n\n"

    def gen_description(self, sample: dict) -> str:
        return f"The following is a multiple choice question about {subject_name(sample['subject'])}.\n\n"

    def query(self, sample: dict) -> str:
        options = "".join(f"\n{LETTERS[i]}. {c}" for i, c in enumerate(sample["choices"]))
        return f"{sample['question'].strip()}{options}\nAnswer:"

    def choices(self, sample: dict) -> list[str]:
        return list(LETTERS[: len(sample["choices"])])

    def options(self, sample: dict) -> list[str]:
        return list(sample["choices"])

    def gold(self, sample: dict) -> list[int]:
        return [int(sample["answer"])]

    def gen_question(self, sample: dict) -> str:
        return sample["question"].strip()

    def fewshot_examples(self, sample: dict) -> list[dict]:
        examples = sample.get("fewshot", [])
        if len(examples) < self.shots:
            raise QwenPipeError(
                f"mmlu: {self.shots}-shot asked, but subject {sample['subject']} has {len(examples)} dev exemplars",
                "lower the shot count or load the dev split with the test split (mirror or hub source)",
            )
        return examples[: self.shots]

    def prefix(self, sample: dict) -> str:
        examples = self.fewshot_examples(sample)
        key = (sample["subject"], *((ex["question"], tuple(ex["choices"]), ex["answer"]) for ex in examples))
        if key not in self._prefixes:
            self._prefixes[key] = super().prefix(sample)
        return self._prefixes[key]

    def score(self, sample: dict, responses: Sequence[Response], style: PromptStyle) -> SampleScore:
        logprobs = [r.logprob for r in responses]  # type: ignore[union-attr]
        pred = argmax(logprobs)
        correct = float(pred in self.gold(sample))
        return SampleScore(
            {m: correct for m in self.metrics}, {"pred": LETTERS[pred], "gold": LETTERS[self.gold(sample)[0]]}
        )

    def aggregate_metrics(
        self, samples: Sequence[dict], scores: Sequence[SampleScore], metrics: Sequence[str]
    ) -> dict[str, dict]:
        micro, macro = metrics
        result = {micro: mean_and_stderr([s.metrics[micro] for s in scores])}
        result[macro], per_subject = subject_aggregate(samples, scores, macro)
        return {**result, PER_SUBJECT: per_subject}
