"""Scoring one IFEval record (strict and loose) and aggregating the four accuracies."""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from dataclasses import dataclass, field

from qwen_pipe.errors import QwenPipeError, unknown_name
from qwen_pipe.scoring.ifeval.common import RELATIONS, InvalidArgument
from qwen_pipe.scoring.ifeval.registry import INSTRUCTIONS, Checker


@dataclass(frozen=True)
class Instruction:
    """One instruction of a record, resolved: id, checker and the kwargs it takes (None values dropped)."""

    id: str
    checker: Checker
    kwargs: dict = field(default_factory=dict)

    def check(self, response: str) -> bool:
        """The reference's rule: a blank response follows nothing."""
        if not response.strip():
            return False
        try:
            return bool(self.checker(response, **self.kwargs))
        except InvalidArgument as error:
            raise QwenPipeError(
                f"IFEval instruction {self.id!r}: {error}", "fix the record's kwargs"
            ) from None


@dataclass(frozen=True)
class IFEvalResult:
    key: int | str | None
    instruction_id_list: list[str]
    prompt_strict: bool
    inst_strict: list[bool]
    prompt_loose: bool
    inst_loose: list[bool]


def instructions_of(record: dict) -> list[Instruction]:
    """The record's instructions with their kwargs; a clear error for an unknown id or unusable kwargs."""
    ids = record["instruction_id_list"]
    all_kwargs = record.get("kwargs") or [{} for _ in ids]
    if len(all_kwargs) != len(ids):
        raise QwenPipeError(
            f"IFEval record {record.get('key')!r}: {len(ids)} instruction ids but {len(all_kwargs)} kwargs",
            "give one kwargs dict per instruction id",
        )
    instructions = []
    for instruction_id, raw in zip(ids, all_kwargs, strict=True):
        checker = INSTRUCTIONS.get(instruction_id)
        if checker is None:
            raise unknown_name("IFEval instruction", instruction_id, list(INSTRUCTIONS))
        kwargs = {name: value for name, value in (raw or {}).items() if value is not None}
        try:
            inspect.signature(checker).bind("response", **kwargs)
        except TypeError as error:
            raise QwenPipeError(
                f"IFEval instruction {instruction_id!r} in record {record.get('key')!r}: {error}",
                f"pass exactly the arguments it takes: {list(inspect.signature(checker).parameters)[1:]}",
            ) from None
        problem = _invalid_value(kwargs)
        if problem:
            raise QwenPipeError(
                f"IFEval instruction {instruction_id!r} in record {record.get('key')!r}: {problem}",
                "fix the record's kwargs",
            )
        instructions.append(Instruction(instruction_id, checker, kwargs))
    return instructions


def _invalid_value(kwargs: dict) -> str | None:
    """Checked up front so that a bad record fails even when the response is blank."""
    for name in ("relation", "let_relation", "capital_relation"):
        if name in kwargs and kwargs[name] not in RELATIONS:
            return f"{name} must be one of {RELATIONS}, got {kwargs[name]!r}"
    if "letter" in kwargs and len(str(kwargs["letter"]).strip()) != 1:
        return f"letter must be a single character, got {kwargs['letter']!r}"
    return None


def loose_variants(response: str) -> list[str]:
    """The reference's eight loose-mode variants: the response as is, without its first line, without its
    last line, without both, and each of these four with every ``*`` removed."""
    lines = response.split("\n")
    remove_first = "\n".join(lines[1:]).strip()
    remove_last = "\n".join(lines[:-1]).strip()
    remove_both = "\n".join(lines[1:-1]).strip()
    return [
        response,
        response.replace("*", ""),
        remove_first,
        remove_last,
        remove_both,
        remove_first.replace("*", ""),
        remove_last.replace("*", ""),
        remove_both.replace("*", ""),
    ]


def evaluate(record: dict, response: str) -> IFEvalResult:
    """Check ``response`` against every instruction of an IFEval ``record`` (keys: key, prompt,
    instruction_id_list, kwargs), strictly and loosely."""
    instructions = instructions_of(record)
    strict = [instruction.check(response) for instruction in instructions]
    variants = loose_variants(response)
    loose = [s or any(i.check(v) for v in variants[1:]) for i, s in zip(instructions, strict, strict=True)]
    return IFEvalResult(
        key=record.get("key"),
        instruction_id_list=list(record["instruction_id_list"]),
        prompt_strict=all(strict),
        inst_strict=strict,
        prompt_loose=all(loose),
        inst_loose=loose,
    )


def aggregate(results: Iterable[IFEvalResult]) -> dict[str, float]:
    """Prompt-level accuracy (all instructions of a prompt followed) and instruction-level accuracy
    (over all instructions of all prompts), strict and loose."""
    results = list(results)
    if not results:
        raise QwenPipeError("no IFEval results to aggregate", "score at least one record")
    instructions = sum(len(r.inst_strict) for r in results)
    if not instructions:
        raise QwenPipeError("the IFEval results hold no instructions", "score records that have instructions")
    return {
        "prompt_level_strict_acc": sum(r.prompt_strict for r in results) / len(results),
        "inst_level_strict_acc": sum(sum(r.inst_strict) for r in results) / instructions,
        "prompt_level_loose_acc": sum(r.prompt_loose for r in results) / len(results),
        "inst_level_loose_acc": sum(sum(r.inst_loose) for r in results) / instructions,
    }
