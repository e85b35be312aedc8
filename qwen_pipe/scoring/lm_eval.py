"""lm-evaluation-harness's extraction filters and exact-match metric, re-implemented (the `lm-eval` protocol).

Kept to lm-eval 0.4.13's behaviour exactly: `regex_filter` is its `regex` filter followed by `take_first`,
`exact_match` its `exact_match` metric (HF evaluate's, with its options). benchmarks/vs_lm_eval.py compares
both per sample against lm-eval itself.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

INVALID = "[invalid]"  # lm-eval's fallback when the pattern does not match


def regex_filter(text: str, pattern: str, group_select: int = 0, fallback: str = INVALID) -> str:
    """The `group_select`-th match of `pattern` (of a pattern with groups: its first non-empty group), stripped."""
    matches = re.findall(pattern, text)
    if not matches:
        return fallback
    match = matches[group_select]
    if isinstance(match, tuple):
        groups = [m for m in match if m]
        match = groups[0] if groups else fallback
    return match.strip()


def exact_match(
    prediction: str,
    reference: str,
    regexes_to_ignore: Sequence[str] = (),
    ignore_case: bool = False,
    ignore_punctuation: bool = False,
) -> bool:
    for pattern in regexes_to_ignore:
        prediction, reference = re.sub(pattern, "", prediction), re.sub(pattern, "", reference)
    if ignore_case:
        prediction, reference = prediction.lower(), reference.lower()
    if ignore_punctuation:
        table = str.maketrans("", "", string.punctuation)
        prediction, reference = prediction.translate(table), reference.translate(table)
    return prediction == reference
