"""The chosen letter of a generative multiple-choice answer, read the way lighteval's extractive match reads it.

lighteval grades letter answers (`Metrics.pass_at_k_letters`, its `mmlu_redux_2` task) with a fixed list of
patterns, each with a priority (src/lighteval/metrics/utils/extractive_match_utils.py, `lazy_indices_regex`
and `extract_target_from_pred`, English literals). The first priority that matches anywhere decides, and
within it the match that ends last (then the one that starts first) gives the letter. Nothing is rejected:
a reply that lists several letters is read by the same rules ("A, B, C or D" is A, by the start-of-reply
pattern), and as a last resort any capital among the valid letters counts, even inside a word ("Because"
is B). `choice_letter` (extract.py) is the project's own reader; this one exists to grade a task exactly as
the lighteval setting it reproduces.
"""

from __future__ import annotations

import functools
import re

from qwen_pipe.scoring.extract import strip_thinking

_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@functools.cache
def _patterns(n_choices: int) -> tuple[re.Pattern[str], ...]:
    """The patterns for the first `n_choices` letters, highest priority first (no DOTALL: `.` stops at a newline)."""
    letters = _LETTERS[: max(1, min(n_choices, 26))]
    index = "(?P<index>" + "|".join(f"{c}|\\({c}\\)" for c in letters) + ")"  # "B" or "(B)"
    after = r"(?:\*\*)?(?:[.,: ]|$)"  # optional bold close, then a full stop, comma, colon, space or the end
    alone = rf"(?:^| )(?:\*\*)?{index}{after}"  # the letter as a word of its own
    answer = "(?i:answer)"
    return tuple(
        re.compile(p)
        for p in (
            rf"(?i:final answer is):?\s*{index}\.?\s?I hope",
            rf"(?i:final answer.{{0,100}}?)\s+is:?\s*{index}",
            rf"{answer}:.{{0,50}}?{alone}",
            rf"{answer}.{{0,50}}?{alone}",
            rf"^(?:\*\*)?{index}{after}",
            rf"\n(?:\*\*)?{index}{after}",
            alone,
            index,
        )
    )


def extractive_letter(text: str, n_choices: int) -> str | None:
    """The letter lighteval's extractive match reads from a reply (after `strip_thinking`), or None."""
    text = strip_thinking(text)
    for pattern in _patterns(n_choices):
        matches = list(pattern.finditer(text))
        if matches:
            best = max(matches, key=lambda m: (m.end(), -m.start()))
            return best["index"].strip("()")
    return None
