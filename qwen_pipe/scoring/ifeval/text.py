"""Text measures shared by the IFEval checkers: words, sentences, word tokens, language.

The reference implementation counts words with NLTK's ``RegexpTokenizer(r"\\w+")`` (reproduced exactly
here), sentences with NLTK's pre-trained English Punkt model and capital words with
``nltk.word_tokenize``. NLTK data cannot be downloaded in this project, so the sentence splitter and
the word tokenizer below are rule-based re-implementations of the behaviour that matters for IFEval:

* sentences end at ``.``, ``?`` or ``!`` (runs allowed, closing quotes/brackets/asterisks kept with the
  sentence) followed by whitespace and more text; line breaks alone never end a sentence;
* a final period does not end a sentence after a known abbreviation (``Mr.``, ``e.g.``, ``U.S.``),
  after a single-letter initial (``J. Smith``), after a number or an ellipsis when the next word starts
  in lower case.

Punkt's learned statistics (collocations, orthographic context of the next word) are not reproduced,
so counts can differ from the reference on unusual text; ordinary prose counts the same.
"""

from __future__ import annotations

import functools
import re

_WORD = re.compile(r"\w+")

# Abbreviations whose final period does not end a sentence (compared lower-case, without the final period).
# fmt: off
ABBREVIATIONS = frozenset({
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "ft", "vs", "etc", "e.g", "i.e", "cf", "al",
    "inc", "ltd", "co", "corp", "dept", "est", "approx", "fig", "vol", "gen", "col", "capt", "lt",
    "sgt", "rev", "gov", "sen", "rep", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept",
    "oct", "nov", "dec", "a.m", "p.m", "u.s", "u.k", "u.n", "u.s.a", "ph.d",
})
# fmt: on

# A candidate sentence end: the last non-space run of a token that ends in . ? or ! (possibly followed by
# closing quotes, brackets or asterisks), then whitespace, then the first character of the next token.
_CANDIDATE = re.compile(r"(\S*?)([.?!]+)([\"'”’)\]}*]*)(?=\s+(\S))")
_NUMBER = re.compile(r"^[-+$€£(]?\d[\d,.:/-]*$")
_INITIAL = re.compile(r"^[^\W\d_]$")


def count_words(text: str) -> int:
    """Number of ``\\w+`` runs, as the reference's ``RegexpTokenizer(r"\\w+")``."""
    return len(_WORD.findall(text))


def _ends_sentence(token: str, marks: str, next_char: str) -> bool:
    if "?" in marks or "!" in marks:
        return True
    next_lower = next_char.islower()
    if len(marks) > 1:  # an ellipsis
        return not next_lower
    stem = token.lstrip("\"'“‘([{*")
    if stem.lower() in ABBREVIATIONS or _INITIAL.match(stem):
        return False
    return not (_NUMBER.match(stem) and next_lower)


def split_sentences(text: str) -> list[str]:
    """Split ``text`` into sentences (stripped, none empty)."""
    sentences: list[str] = []
    start = 0
    for match in _CANDIDATE.finditer(text):
        token, marks, _closing, next_char = match.group(1), match.group(2), match.group(3), match.group(4)
        if _ends_sentence(token, marks, next_char):
            sentences.append(text[start : match.end()])
            start = match.end()
    sentences.append(text[start:])
    return [s.strip() for s in sentences if s.strip()]


def count_sentences(text: str) -> int:
    return len(split_sentences(text))


# Characters the Treebank tokenizer always splits off as their own tokens.
_SPLIT_PUNCT = re.compile(r"([\[\](){}<>;@#$%&?!\"“”`]|,(?!\d)|:(?!\d)|\.\.\.|--)")
_CONTRACTION = re.compile(r"(?i)^(.+?)('s|'m|'d|'ll|'re|'ve|n't|')$")
_SPLIT_WORDS = re.compile(r"(?i)^(can)(not)$|^(gon|got|wan)(na|ta)$|^(lem|gim)(me)$")


def word_tokens(text: str) -> list[str]:
    """Word tokens close to ``nltk.word_tokenize``: punctuation split off, contractions separated
    (``DON'T`` -> ``DO`` ``N'T``), hyphenated and dotted words (``WELL-KNOWN``, ``U.S.``) kept whole."""
    tokens: list[str] = []
    for chunk in text.split():
        for piece in _SPLIT_PUNCT.split(chunk):
            if not piece:
                continue
            split = _SPLIT_WORDS.match(piece)
            if split:
                tokens.extend(part for part in split.groups() if part)
                continue
            contraction = _CONTRACTION.match(piece)
            if contraction:
                tokens.extend(contraction.groups())
            else:
                tokens.append(piece)
    return tokens


@functools.lru_cache(maxsize=1)
def _detector_factory():
    from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory

    factory = DetectorFactory()
    factory.load_profile(PROFILES_DIRECTORY)
    factory.seed = 0  # an instance attribute: deterministic without touching langdetect's global factory
    return factory


def detect_language(text: str) -> str | None:
    """ISO 639-1 code langdetect gives ``text`` (seeded, so deterministic), or None when it finds no
    features to judge (the reference then counts the instruction as followed)."""
    from langdetect.lang_detect_exception import LangDetectException

    detector = _detector_factory().create()
    detector.append(text)
    try:
        return detector.detect()
    except LangDetectException:
        return None
