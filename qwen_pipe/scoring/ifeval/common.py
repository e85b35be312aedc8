"""Pieces the checker modules share."""

from __future__ import annotations

RELATIONS = ("less than", "at least")


class InvalidArgument(ValueError):
    """A kwarg value an instruction cannot use; ``evaluate`` reports it with the instruction id."""


def compare(count: int, threshold: int, relation: str) -> bool:
    """``count < threshold`` for "less than", ``count >= threshold`` for "at least"."""
    if relation == "less than":
        return count < threshold
    if relation == "at least":
        return count >= threshold
    raise InvalidArgument(f"relation must be one of {RELATIONS}, got {relation!r}")
