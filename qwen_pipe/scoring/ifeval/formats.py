"""``detectable_format:*`` and ``detectable_content:*`` instructions."""

from __future__ import annotations

import json
import re

CONSTRAINED_OPTIONS = ("My answer is yes.", "My answer is no.", "My answer is maybe.")


def count_placeholders(response: str) -> int:
    return len(re.findall(r"\[.*?\]", response))


def number_placeholders(response: str, *, num_placeholders: int) -> bool:
    """At least ``num_placeholders`` square-bracket placeholders such as ``[address]``."""
    return count_placeholders(response) >= num_placeholders


def postscript(response: str, *, postscript_marker: str) -> bool:
    """A postscript starting with the marker; ``P.S.`` and ``P.P.S`` also match spaced or lower-case
    forms (``p. s.``, ``P.P.S.``)."""
    marker = postscript_marker.strip()
    if marker == "P.P.S":
        pattern = r"\s*p\.\s?p\.\s?s.*$"
    elif marker == "P.S.":
        pattern = r"\s*p\.\s?s\..*$"
    else:
        pattern = r"\s*" + re.escape(marker.lower()) + r".*$"
    return re.search(pattern, response.lower(), flags=re.MULTILINE) is not None


def count_bullets(response: str) -> int:
    """Markdown bullet lines, ``* item`` or ``- item`` (a ``**bold**`` line is not one)."""
    stars = re.findall(r"^\s*\*[^\*].*$", response, flags=re.MULTILINE)
    dashes = re.findall(r"^\s*-.*$", response, flags=re.MULTILINE)
    return len(stars) + len(dashes)


def number_bullet_lists(response: str, *, num_bullets: int) -> bool:
    """Exactly ``num_bullets`` bullet lines."""
    return count_bullets(response) == num_bullets


def constrained_response(response: str) -> bool:
    """Contains one of "My answer is yes.", "My answer is no.", "My answer is maybe."."""
    response = response.strip()
    return any(option in response for option in CONSTRAINED_OPTIONS)


def count_highlights(response: str) -> int:
    """Non-blank ``*highlighted*`` spans on one line, plus non-blank ``**bold**`` spans (the reference
    counts both patterns)."""
    singles = re.findall(r"\*[^\n\*]*\*", response)
    doubles = re.findall(r"\*\*[^\n\*]*\*\*", response)
    count = sum(1 for h in singles if h.strip("*").strip())
    return count + sum(1 for h in doubles if h.removeprefix("**").removesuffix("**").strip())


def number_highlighted_sections(response: str, *, num_highlights: int) -> bool:
    return count_highlights(response) >= num_highlights


def multiple_sections(response: str, *, section_spliter: str, num_sections: int) -> bool:
    """At least ``num_sections`` sections, each starting with the (case-sensitive) splitter and a number,
    e.g. ``SECTION 1``."""
    pattern = r"\s?" + re.escape(section_spliter.strip()) + r"\s?\d+\s?"
    return len(re.split(pattern, response)) - 1 >= num_sections


def json_format(response: str) -> bool:
    """The whole response parses as JSON, optionally fenced in ```` ```json ... ``` ````."""
    value = response.strip()
    for fence in ("```json", "```Json", "```JSON", "```"):
        value = value.removeprefix(fence)
    value = value.removesuffix("```").strip()
    try:
        json.loads(value)
    except ValueError:
        return False
    return True


def title(response: str) -> bool:
    """A non-blank title in double angular brackets, ``<<like this>>``, on one line."""
    return any(t.lstrip("<").rstrip(">").strip() for t in re.findall(r"<<[^\n]+>>", response))
