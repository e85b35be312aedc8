"""``language:*`` and ``change_case:*`` instructions.

Language is judged by langdetect with a fixed seed. As in the reference, text in which langdetect
finds nothing to judge (digits and punctuation only) counts as following the instruction.
"""

from __future__ import annotations

from qwen_pipe.scoring.ifeval.common import compare
from qwen_pipe.scoring.ifeval.text import detect_language, word_tokens


def _is_language(response: str, language: str) -> bool:
    detected = detect_language(response)
    return detected is None or detected == language


def response_language(response: str, *, language: str) -> bool:
    return _is_language(response, language)


def english_capital(response: str) -> bool:
    return response.isupper() and _is_language(response, "en")


def english_lowercase(response: str) -> bool:
    return response.islower() and _is_language(response, "en")


def count_capital_words(response: str) -> int:
    """Word tokens in all capital letters (``NOTE``, ``U.S.``, also ``I`` and ``A``)."""
    return sum(1 for token in word_tokens(response) if token.isupper())


def capital_word_frequency(response: str, *, capital_frequency: int, capital_relation: str) -> bool:
    return compare(count_capital_words(response), capital_frequency, capital_relation)
