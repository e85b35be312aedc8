"""Multiple-choice tasks: log-likelihood scoring as lm-evaluation-harness does it, and a letter-choice format.

A `MultipleChoiceTask` turns a record into one (context, continuation) request per choice and scores
acc (the choice with the highest log-likelihood) and acc_norm (the highest log-likelihood per character of
the choice), with ties going to the first choice (numpy argmax, as lm-eval).

The oracle engine answers by the requests' gold flags. A request is marked gold when its option's text equals
a gold option's text, so the oracle behaves like a perfect model that can only judge text: an item where a
wrong option repeats the gold text before it is a tie that argmax resolves against the key. Each task lists
such items in its `oracle_exceptions`; the letter-choice format has none (the gold letter is never tied).

`letter_choice(cls)` derives the letter-choice format of a task (`format: letters`): the question with
lettered options and an instruction to answer with the letter, for chat models through the chat template and
for base models as a plain completion ending "Answer:"; the reply's letter is read with `choice_letter` after
`strip_thinking`.
"""

from __future__ import annotations

import functools
from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from qwen_pipe.engines.base import LoglikelihoodRequest, SamplingParams
from qwen_pipe.errors import QwenPipeError
from qwen_pipe.protocols import DEFAULT_PROTOCOL
from qwen_pipe.scoring.extract import choice_letter, strip_thinking
from qwen_pipe.scoring.stats import mean_and_stderr
from qwen_pipe.tasks.common.base import (
    GenerationTask,
    LoglikelihoodTask,
    Prompt,
    PromptStyle,
    Response,
    SampleScore,
)

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
GEN_INSTRUCTION = (
    'Answer with the letter of the correct option. End your reply with "The answer is (X)." '
    "where X is that letter."
)
# Output budgets of the letter-choice format: a base model names a letter, a chat model may reason first,
# and a thinking model gets the Qwen3 report's maximum output length.
GEN_BASE_TOKENS = 32
GEN_CHAT_TOKENS = 2048


def argmax(values: Sequence[float]) -> int:
    """Index of the largest value; the first one on ties (numpy's argmax, as lm-eval uses)."""
    best = 0
    for i, value in enumerate(values):
        if value > values[best]:
            best = i
    return best


def check_shots(name: str, shots: int, max_shots: int) -> None:
    if shots > max_shots:
        raise QwenPipeError(
            f"{name}: {shots}-shot needs {shots} exemplars per question; {max_shots} are available offline "
            "(lm-eval draws them from the train split, which the mirror does not hold)",
            f"use at most {max_shots} shots for {name}",
        )


class MultipleChoiceTask(LoglikelihoodTask):
    """A benchmark scored by comparing the log-likelihoods of its choices (lm-eval's `multiple_choice`)."""

    kind = "multiple_choice"
    metrics: ClassVar[tuple[str, ...]] = ("acc", "acc_norm")
    primary_metric = "acc_norm"
    gen_metrics: ClassVar[tuple[str, ...]] = ("acc",)  # per-sample metrics of the letter-choice format
    letters_setting: ClassVar[str | None] = None  # the published setting of the letter-choice format, if any
    max_shots: ClassVar[int] = 0  # exemplars available offline per question

    def __init__(self, shots: int | None = None, protocol: str = DEFAULT_PROTOCOL):
        super().__init__(shots, protocol)
        check_shots(self.name, self.shots, self.max_shots)

    # --- what each task defines ---------------------------------------------------------------
    @abstractmethod
    def query(self, sample: dict) -> str:
        """lm-eval's doc_to_text: the text before the choice (without few-shot examples)."""

    @abstractmethod
    def choices(self, sample: dict) -> list[str]:
        """lm-eval's doc_to_choice: what is scored after the context; its length normalises acc_norm."""

    @abstractmethod
    def gold(self, sample: dict) -> list[int]:
        """Indices of the correct choices."""

    def options(self, sample: dict) -> list[str]:
        """The answer texts as a reader sees them (the letter-choice options; equal texts tie)."""
        return self.choices(sample)

    def gen_question(self, sample: dict) -> str:
        """The question text above the lettered options of the letter-choice format."""
        return self.query(sample)

    def gen_order(self, sample: dict, n: int) -> list[int]:
        """The order in which the letter-choice format lists the `n` options (indices into `options`)."""
        return list(range(n))

    def description(self, sample: dict) -> str:
        """Text before everything else (lm-eval's `description`)."""
        return ""

    def gen_description(self, sample: dict) -> str:
        return ""

    def fewshot_examples(self, sample: dict) -> list[dict]:
        """The exemplars for this sample, `self.shots` of them (tasks with exemplars override this)."""
        return []

    # --- requests and scores ------------------------------------------------------------------
    def prefix(self, sample: dict) -> str:
        """The description and the answered exemplars, each followed by a blank line (lm-eval's fewshot_context)."""
        shots = "".join(
            f"{self.query(ex)} {self.choices(ex)[self.gold(ex)[0]]}\n\n"
            for ex in self.fewshot_examples(sample)
        )
        return self.description(sample) + shots

    def context(self, sample: dict) -> str:
        return self.prefix(sample) + self.query(sample)

    def pairs(self, sample: dict) -> list[tuple[str, str]]:
        """(context, continuation) per choice; the continuation is " " + choice (lm-eval's target delimiter)."""
        context = self.context(sample)
        return [(context, " " + choice) for choice in self.choices(sample)]

    def gold_flags(self, sample: dict) -> list[bool]:
        options = self.options(sample)
        gold_texts = {options[i] for i in self.gold(sample)}
        return [option in gold_texts for option in options]

    def loglikelihood_requests(self, sample: dict) -> list[LoglikelihoodRequest]:
        flags = self.gold_flags(sample)
        return [
            LoglikelihoodRequest(context, continuation, gold=flag)
            for (context, continuation), flag in zip(self.pairs(sample), flags, strict=True)
        ]

    def score(self, sample: dict, responses: Sequence[Response], style: PromptStyle) -> SampleScore:
        logprobs = [r.logprob for r in responses]  # type: ignore[union-attr]
        lengths = [max(len(c), 1) for c in self.choices(sample)]
        gold = self.gold(sample)
        pred = argmax(logprobs)
        pred_norm = argmax([lp / n for lp, n in zip(logprobs, lengths, strict=True)])
        values = {"acc": float(pred in gold), "acc_norm": float(pred_norm in gold)}
        return SampleScore(
            {m: values[m] for m in self.metrics}, {"pred": pred, "pred_norm": pred_norm, "gold": gold}
        )

    def aggregate_metrics(
        self, samples: Sequence[dict], scores: Sequence[SampleScore], metrics: Sequence[str]
    ) -> dict[str, dict]:
        return {m: mean_and_stderr([s.metrics[m] for s in scores]) for m in metrics}

    def aggregate(self, samples: Sequence[dict], scores: Sequence[SampleScore]) -> dict[str, dict]:
        return self.aggregate_metrics(samples, scores, self.metrics)


class GenerativeChoiceTask(GenerationTask):
    """The letter-choice format of a `MultipleChoiceTask`: same data, lettered options, the reply names one."""

    kind = "multiple_choice"
    format = "letters"
    choice_task: ClassVar[type[MultipleChoiceTask]]
    default_shots = 0

    def __init__(self, shots: int | None = None, protocol: str = DEFAULT_PROTOCOL):
        super().__init__(shots, protocol)
        check_shots(self.name, self.shots, self.choice_task.max_shots)
        self.mc = self.choice_task(shots=self.shots)

    def load_mirror(self, root: Path) -> list[dict]:
        return self.mc.load_mirror(root)

    def load_embedded(self) -> list[dict]:
        return self.mc.load_embedded()

    def load_hub(self) -> list[dict]:
        return self.mc.load_hub()

    def sample_id(self, record: dict, index: int) -> str:
        return self.mc.sample_id(record, index)

    # --- prompt -------------------------------------------------------------------------------
    def lettered(self, sample: dict) -> tuple[str, list[str]]:
        """The question with its lettered options, and the letters of the correct options."""
        options = self.mc.options(sample)
        order = self.mc.gen_order(sample, len(options))
        lines = [f"{LETTERS[k]}. {options[i]}" for k, i in enumerate(order)]
        return self.mc.gen_question(sample) + "\n" + "\n".join(lines), self._letters(sample, order)

    def _letters(self, sample: dict, order: list[int]) -> list[str]:
        gold = set(self.mc.gold(sample))
        return [LETTERS[k] for k, i in enumerate(order) if i in gold]

    def gold_letters(self, sample: dict) -> tuple[list[str], int]:
        """The letters of the correct options, and the number of options."""
        n = len(self.mc.options(sample))
        return self._letters(sample, self.mc.gen_order(sample, n)), n

    def prompt(self, sample: dict, style: PromptStyle, history: Sequence[str] = ()) -> Prompt:
        shots = [self.lettered(ex) for ex in self.mc.fewshot_examples(sample)]
        block, _ = self.lettered(sample)
        if style.chat:
            head = self.mc.gen_description(sample)
            messages: list[dict[str, str]] = []
            for shot_block, letters in shots:
                messages.append({"role": "user", "content": f"{head}{shot_block}\n\n{GEN_INSTRUCTION}"})
                messages.append({"role": "assistant", "content": f"The answer is ({letters[0]})."})
            messages.append({"role": "user", "content": f"{head}{block}\n\n{GEN_INSTRUCTION}"})
            return messages
        examples = "".join(f"{shot_block}\nAnswer: {letters[0]}\n\n" for shot_block, letters in shots)
        return f"{self.mc.description(sample)}{examples}{block}\nAnswer:"

    def sampling(self, style: PromptStyle) -> SamplingParams:
        if not style.chat:
            return SamplingParams(max_new_tokens=GEN_BASE_TOKENS, stop=("\n\n",))
        return SamplingParams(max_new_tokens=GEN_CHAT_TOKENS)

    def gold_output(self, sample: dict, turn: int = 0) -> str | None:
        letters, _ = self.gold_letters(sample)
        return f"The answer is ({letters[0]})."

    def score(self, sample: dict, responses: Sequence[Response], style: PromptStyle) -> SampleScore:
        letters, n = self.gold_letters(sample)
        letter = choice_letter(strip_thinking(responses[0].text), n)  # type: ignore[union-attr]
        correct = float(letter in letters)
        return SampleScore({m: correct for m in self.metrics}, {"letter": letter, "gold": letters})

    def aggregate(self, samples: Sequence[dict], scores: Sequence[SampleScore]) -> dict[str, dict]:
        return self.mc.aggregate_metrics(samples, scores, self.metrics)


@functools.cache
def letter_choice(cls: type[MultipleChoiceTask]) -> type[GenerativeChoiceTask]:
    """The letter-choice format of a multiple-choice task (same name, same data)."""
    attrs = {
        "name": cls.name,
        "source": cls.source,
        "choice_task": cls,
        "metrics": cls.gen_metrics,
        "primary_metric": cls.gen_metrics[0],
        "published_setting": cls.letters_setting
        or (
            f"qwen-pipe's letter-choice form of {cls.name} for chat models (no published generative setting); "
            "0-shot, the reply's last stated letter is graded"
        ),
        "prompt_format": (
            "question, options 'A. text' one a line; chat: one user turn ending with the instruction to answer "
            "'The answer is (X).'; base: the same block ending 'Answer:' (few-shot: 'Answer: X' blocks)"
        ),
        "__module__": cls.__module__,
        "__doc__": f"{cls.__name__} as a generative letter choice.",
    }
    return type(f"{cls.__name__}Letters", (GenerativeChoiceTask,), attrs)
