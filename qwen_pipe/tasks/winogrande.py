"""WinoGrande (Sakaguchi et al., 2020): fill the blank of a sentence with one of two names or things.

Scored by partial evaluation, as lm-eval does: each option fills the blank in the context (the sentence up
to the blank), and the options are compared by the log-likelihood of the rest of the sentence.
"""

from __future__ import annotations

from pathlib import Path

from qwen_pipe.errors import QwenPipeError
from qwen_pipe.tasks.common.base import DataSource
from qwen_pipe.tasks.common.multiple_choice import MultipleChoiceTask
from qwen_pipe.tasks.common.registry import register

FIELDS = ("sentence", "option1", "option2", "answer")


@register
class WinoGrande(MultipleChoiceTask):
    name = "winogrande"
    lm_eval_task = "winogrande"
    source = DataSource(
        hub_id="allenai/winogrande",
        hub_config="winogrande_xl",
        split="validation",
        rows=1267,
        mirror_files=("winogrande/winogrande_xl_validation.hf.jsonl",),
        embedded="6 sentences written by qwen-pipe in WinoGrande's hub format (a sample, not the benchmark)",
        fields=FIELDS,
        embedded_file="winogrande_sample.jsonl",
        id_fields=FIELDS,
    )
    metrics = ("acc",)
    primary_metric = "acc"
    published_setting = (
        "lm-eval `winogrande` (xl validation, 0-shot, partial scoring, acc); the Qwen2 model cards' 5-shot "
        "draws exemplars from the train split, which is not offline"
    )
    prompt_format = (
        "context: the sentence up to '_' with the option filled in; continuation: ' ' + the rest after '_' "
        "(stripped), compared across the two options"
    )

    def load_mirror(self, root: Path) -> list[dict]:
        records = super().load_mirror(root)
        blank = next((i for i, r in enumerate(records) if "_" not in r["sentence"]), None)
        if blank is not None:
            raise QwenPipeError(
                f"{root / self.source.mirror_files[0]}: record {blank} has no blank '_' in its sentence",
                "use WinoGrande's sentence format",
            )
        return records

    def query(self, sample: dict) -> str:
        return sample["sentence"]

    def target(self, sample: dict) -> str:
        """lm-eval's partial target: everything after the blank, stripped."""
        return sample["sentence"][sample["sentence"].index("_") + 1 :].strip()

    def choices(self, sample: dict) -> list[str]:
        """lm-eval's doc_to_choice here: the sentence up to the blank with each option filled in."""
        head = sample["sentence"][: sample["sentence"].index("_")]
        return [head + sample["option1"], head + sample["option2"]]

    def options(self, sample: dict) -> list[str]:
        return [sample["option1"], sample["option2"]]

    def gold(self, sample: dict) -> list[int]:
        return [{"1": 0, "2": 1}[sample["answer"]]]

    def pairs(self, sample: dict) -> list[tuple[str, str]]:
        continuation = " " + self.target(sample)
        return [(context, continuation) for context in self.choices(sample)]

    def gen_question(self, sample: dict) -> str:
        return f"Which option fills the blank (_) best?\n\n{sample['sentence']}"
