"""An LLM judge's reply read as FastChat and Arena-Hard read it, and verdicts turned into scores.

MT-Bench (FastChat llm_judge `gen_judgment.py`, `show_result.py`): the rating is the first `[[x]]` in the
reply, else the first `[x]`; a question's score is the mean of its turns' ratings and the MT-Bench score
the mean of every rating. Arena-Hard v0.1 (`gen_judgment.py`, `show_result.py`): the verdict is the label
in `[[...]]` when the reply holds exactly one distinct label; each question is judged twice, the answers in
both orders; a strong verdict (`>>`) weighs 3, a tie counts half to each side, and the win rate against the
baseline is the weighted share of wins (for two players exactly what Arena-Hard's Bradley-Terry fit gives).

Where qwen-pipe is stricter: a reply with no verdict, a rating outside 1-10 or a label outside the five is
asked again once (Arena-Hard's own follow-up; FastChat keeps -1 and drops it), then recorded as a failure:
never scored. The interval of the win rate resamples questions (both games of a question together), where
Arena-Hard resamples battles; the point estimate is the same.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence

import numpy as np

from qwen_pipe.scoring.extract import strip_thinking
from qwen_pipe.scoring.paired import LEVEL, RESAMPLES, SEED, bootstrap_interval
from qwen_pipe.scoring.stats import mean_and_stderr

RATING = re.compile(r"\[\[(\d+\.?\d*)\]\]")  # FastChat one_score_pattern
RATING_BACKUP = re.compile(r"\[(\d+\.?\d*)\]")  # FastChat one_score_pattern_backup
RATING_SCALE = (1.0, 10.0)
VERDICT = re.compile(r"\[\[([AB<>=]+)\]\]")  # Arena-Hard v0.1 regex_pattern
VERDICTS = ("A>>B", "A>B", "A=B", "B>A", "B>>A")
STRONG_WEIGHT = 3  # Arena-Hard show_result.py: a ">>" verdict counts as three battles
# The second attempt's user turn, after the judge's first reply.
FOLLOW_UPS = {
    "rating": 'Your reply has no rating in the required format. Output your final rating strictly in this format: "[[rating]]", for example: "Rating: [[5]]".',
    "pairwise": "continue your judgment and finish by outputting a final verdict label",  # Arena-Hard's own
}


# judge.verdict "likelihood": the judge's verdict is the most likely of these continuations (no explanation)
CANDIDATES = {
    "rating": tuple(f"Rating: [[{k}]]" for k in range(1, 11)),
    "pairwise": tuple(f"My final verdict is: [[{label}]]" for label in VERDICTS),
}


def parse_rating(reply: str) -> float | None:
    """FastChat's rating: the first `[[x]]`, else the first `[x]`; None when there is none or it is not on
    the 1-10 scale (a judge's thinking is not its verdict: stripped first)."""
    text = strip_thinking(reply)
    match = RATING.search(text) or RATING_BACKUP.search(text)
    if not match:
        return None
    try:
        rating = float(ast.literal_eval(match.group(1)))
    except (ValueError, SyntaxError):
        return None
    return rating if RATING_SCALE[0] <= rating <= RATING_SCALE[1] else None


def parse_verdict(reply: str) -> str | None:
    """Arena-Hard's verdict: the one distinct `[[label]]` of the reply; None when there is none, several
    that disagree, or a label that is not one of the five."""
    labels = {m.strip("\n") for m in VERDICT.findall(strip_thinking(reply)) if m}
    if len(labels) != 1:
        return None
    label = labels.pop()
    return label if label in VERDICTS else None


PARSERS = {"rating": parse_rating, "pairwise": parse_verdict}


def carries_verdict(answer: str) -> bool:
    """An answer that itself holds a rating or a verdict label: a judge that echoes it, or follows an
    instruction hidden in it, would read the answer's verdict as its own. Counted and shown, not removed:
    the judge sees the answer as the model gave it."""
    return bool(RATING.search(answer) or VERDICT.search(answer))


def game_outcome(label: str, model_is_a: bool) -> tuple[float, float, float]:
    """(wins, losses, ties) of the judged model in one game, weighted as Arena-Hard weighs them."""
    if label == "A=B":
        return 0.0, 0.0, 1.0
    weight = float(STRONG_WEIGHT if ">>" in label else 1)
    a_wins = label.startswith("A")
    return (weight, 0.0, 0.0) if a_wins == model_is_a else (0.0, weight, 0.0)


def win_share(outcomes: Sequence[tuple[float, float, float]]) -> float | None:
    wins, losses, ties = (sum(o[i] for o in outcomes) for i in range(3))
    total = wins + losses + ties
    return (wins + ties / 2) / total if total else None


def win_rate(per_question: Sequence[Sequence[tuple[float, float, float]]]) -> dict:
    """The weighted win rate over every game of every question, with a percentile bootstrap interval over
    questions (seeded, as paired.py's)."""
    counts = np.array([[sum(o[i] for o in games) for i in range(3)] for games in per_question if games])
    if counts.size == 0:
        return {"value": None, "low": None, "high": None, "n": 0}
    totals = counts.sum(axis=1)
    value = float((counts[:, 0].sum() + counts[:, 2].sum() / 2) / totals.sum())
    rng = np.random.default_rng(SEED)
    picks = rng.integers(0, len(counts), size=(RESAMPLES, len(counts)))
    shares = (counts[picks, 0].sum(axis=1) + counts[picks, 2].sum(axis=1) / 2) / totals[picks].sum(axis=1)
    tail = (1 - LEVEL) / 2
    low, high = np.quantile(shares, [tail, 1 - tail])
    return {"value": value, "low": float(low), "high": float(high), "n": len(counts)}


def rating_summary(ratings: Sequence[float]) -> dict:
    """Mean, stderr and n of ratings, with a 95% interval (percentile bootstrap) on the 1-10 scale."""
    stats = mean_and_stderr(list(ratings))
    if stats["n"] >= 2:
        stats["low"], stats["high"] = bootstrap_interval(list(ratings))
    else:
        stats["low"] = stats["high"] = None
    return stats
