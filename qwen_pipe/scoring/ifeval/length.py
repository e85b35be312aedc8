"""``length_constraints:*`` instructions."""

from __future__ import annotations

import re

from qwen_pipe.scoring.ifeval.common import compare
from qwen_pipe.scoring.ifeval.text import count_sentences, count_words

# Characters that end the first word of a paragraph for nth_paragraph_first_word (as in the reference).
_FIRST_WORD_STOP = frozenset(".,?!'\"")


def number_sentences(response: str, *, num_sentences: int, relation: str) -> bool:
    return compare(count_sentences(response), num_sentences, relation)


def number_words(response: str, *, num_words: int, relation: str) -> bool:
    return compare(count_words(response), num_words, relation)


def number_paragraphs(response: str, *, num_paragraphs: int) -> bool:
    """Exactly ``num_paragraphs`` paragraphs separated by the markdown divider ``***``; an empty piece is
    allowed only before the first or after the last divider."""
    pieces = re.split(r"\s?\*\*\*\s?", response)
    count = len(pieces)
    for index, piece in enumerate(pieces):
        if not piece.strip():
            if index in (0, len(pieces) - 1):
                count -= 1
            else:
                return False
    return count == num_paragraphs


def paragraph_first_word(paragraph: str) -> str:
    """Lower-cased first word of a paragraph: leading quotes dropped, cut at the first punctuation mark."""
    word = paragraph.split()[0].lstrip("'").lstrip('"')
    first = ""
    for char in word:
        if char in _FIRST_WORD_STOP:
            break
        first += char.lower()
    return first


def nth_paragraph_first_word(
    response: str, *, num_paragraphs: int, nth_paragraph: int, first_word: str
) -> bool:
    """Exactly ``num_paragraphs`` non-empty paragraphs separated by ``\\n\\n`` and paragraph
    ``nth_paragraph`` (1-based) starts with ``first_word``.

    As in the reference, empty pieces are left out of the count but not out of the indexing, so a blank
    piece before the nth paragraph (three newlines in a row) can make the check fail."""
    pieces = response.split("\n\n")
    count = sum(1 for piece in pieces if piece.strip())
    if nth_paragraph > count:
        return False
    paragraph = pieces[nth_paragraph - 1].strip()
    if not paragraph:
        return False
    return count == num_paragraphs and paragraph_first_word(paragraph) == first_word.lower()
