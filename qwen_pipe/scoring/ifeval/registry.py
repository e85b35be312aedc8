"""Instruction id -> checker. Every checker takes the response and the instruction's kwargs as keyword
arguments and returns whether the response follows the instruction."""

from __future__ import annotations

from collections.abc import Callable

from qwen_pipe.scoring.ifeval import formats, keywords, language, length, startend

Checker = Callable[..., bool]

INSTRUCTIONS: dict[str, Checker] = {
    "keywords:existence": keywords.existence,
    "keywords:frequency": keywords.frequency,
    "keywords:forbidden_words": keywords.forbidden_words,
    "keywords:letter_frequency": keywords.letter_frequency,
    "language:response_language": language.response_language,
    "length_constraints:number_sentences": length.number_sentences,
    "length_constraints:number_paragraphs": length.number_paragraphs,
    "length_constraints:number_words": length.number_words,
    "length_constraints:nth_paragraph_first_word": length.nth_paragraph_first_word,
    "detectable_content:number_placeholders": formats.number_placeholders,
    "detectable_content:postscript": formats.postscript,
    "detectable_format:number_bullet_lists": formats.number_bullet_lists,
    "detectable_format:constrained_response": formats.constrained_response,
    "detectable_format:number_highlighted_sections": formats.number_highlighted_sections,
    "detectable_format:multiple_sections": formats.multiple_sections,
    "detectable_format:json_format": formats.json_format,
    "detectable_format:title": formats.title,
    "combination:two_responses": startend.two_responses,
    "combination:repeat_prompt": startend.repeat_prompt,
    "startend:end_checker": startend.end_checker,
    "startend:quotation": startend.quotation,
    "change_case:capital_word_frequency": language.capital_word_frequency,
    "change_case:english_capital": language.english_capital,
    "change_case:english_lowercase": language.english_lowercase,
    "punctuation:no_comma": startend.no_comma,
}
