"""``keywords:*`` instructions.

As in the reference, ``existence`` and ``frequency`` match the keyword as a case-insensitive substring
(``"le"`` is found in ``"apple"``), while ``forbidden_words`` matches whole words only (``\\b...\\b``).
Keywords are matched literally (regex-escaped); the reference passes them to ``re`` unescaped, which only
differs for keywords holding regex syntax, and none in the data do.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from qwen_pipe.scoring.ifeval.common import InvalidArgument, compare


def keyword_occurrences(keyword: str, response: str) -> int:
    return len(re.findall(re.escape(keyword.strip()), response, flags=re.IGNORECASE))


def existence(response: str, *, keywords: Sequence[str]) -> bool:
    return all(keyword_occurrences(k, response) > 0 for k in keywords)


def frequency(response: str, *, keyword: str, frequency: int, relation: str) -> bool:
    return compare(keyword_occurrences(keyword, response), frequency, relation)


def forbidden_words(response: str, *, forbidden_words: Sequence[str]) -> bool:
    return not any(
        re.search(r"\b" + re.escape(word) + r"\b", response, flags=re.IGNORECASE) for word in forbidden_words
    )


def letter_frequency(response: str, *, letter: str, let_frequency: int, let_relation: str) -> bool:
    """Occurrences of one character, case-insensitive (the data also uses ``#`` and ``!``)."""
    letter = letter.strip().lower()
    if len(letter) != 1:
        raise InvalidArgument(f"letter must be a single character, got {letter!r}")
    return compare(response.lower().count(letter), let_frequency, let_relation)
