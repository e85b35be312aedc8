"""``startend:*``, ``combination:*`` and ``punctuation:*`` instructions."""

from __future__ import annotations


def end_checker(response: str, *, end_phrase: str) -> bool:
    """Ends with the phrase (case-insensitive), ignoring surrounding whitespace and double quotes."""
    return response.strip().strip('"').lower().endswith(end_phrase.strip().lower())


def quotation(response: str) -> bool:
    """The whole response is wrapped in double quotation marks."""
    response = response.strip()
    return len(response) > 1 and response[0] == '"' and response[-1] == '"'


def repeat_prompt(response: str, *, prompt_to_repeat: str) -> bool:
    """Starts with the request repeated word for word (case-insensitive, outer whitespace ignored)."""
    return response.strip().lower().startswith(prompt_to_repeat.strip().lower())


def two_responses(response: str) -> bool:
    """Two different non-empty responses separated by ``******``; only the ends may be empty."""
    answers = []
    pieces = response.split("******")
    for index, piece in enumerate(pieces):
        if piece.strip():
            answers.append(piece.strip())
        elif index not in (0, len(pieces) - 1):
            return False
    return len(answers) == 2 and answers[0] != answers[1]


def no_comma(response: str) -> bool:
    return "," not in response
