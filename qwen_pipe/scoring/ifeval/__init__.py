"""IFEval (Zhou et al. 2023) instruction checkers, our own implementation of the reference semantics
(google-research ``instruction_following_eval``), strict and loose."""

from qwen_pipe.scoring.ifeval.evaluate import (
    IFEvalResult,
    Instruction,
    aggregate,
    evaluate,
    instructions_of,
    loose_variants,
)
from qwen_pipe.scoring.ifeval.oracle import oracle_gap, oracle_response
from qwen_pipe.scoring.ifeval.registry import INSTRUCTIONS

__all__ = [
    "INSTRUCTIONS",
    "IFEvalResult",
    "Instruction",
    "aggregate",
    "evaluate",
    "instructions_of",
    "loose_variants",
    "oracle_gap",
    "oracle_response",
]
