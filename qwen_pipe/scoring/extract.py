"""Answer extraction filters: turn a model's raw generation into the string a metric compares.

Every extractor returns the extracted answer or None when the text holds none; none of them decides
correctness (that is the metrics' job). Every extractor first applies `strip_thinking`, so a Qwen3
`<think>` block can never be graded (a known trap: MMLU-Redux 79.7 vs 51.8 when it is not stripped),
and a generation cut off inside its thinking has no answer at all.
"""

from __future__ import annotations

import re
from fractions import Fraction

_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL)


def strip_thinking(text: str) -> str:
    """Remove `<think>...</think>` blocks and keep what follows them.

    A lone `</think>` (the opening tag was in the prompt, as some chat templates do) drops everything
    before it. An unterminated `<think>` drops everything from it on: a generation that ends while still
    thinking has no answer, so a leading unterminated block gives "". Text without tags is returned as is.
    """
    if "<think>" not in text and "</think>" not in text:
        return text
    out = _THINK_BLOCK.sub("", text)
    if "</think>" in out:
        out = out.rsplit("</think>", 1)[1]
    if "<think>" in out:
        out = out.split("<think>", 1)[0]
    return out.strip()


# One number as it appears in running text: optional sign (only where it cannot be a binary minus),
# optional currency sign, digits with proper thousands groups, optional decimals, optional "/denominator".
_NUMBER_IN_TEXT = re.compile(
    r"(?:(?<![\w)\]}])(?P<sign>[-−])\s?)?"
    r"(?:\\?\$\s?)?"
    r"(?<![\d.])(?P<body>(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|\.\d+)"
    r"(?:/(?P<den>\d+)(?![\d.]))?"
)

# A whole string that is one number, with an optional currency sign, percent sign, unit words and final period.
_NUMBER_STRING = re.compile(
    r"(?P<sign>[-+−])?\s*(?:\\?[$€£¥]\s*)?(?P<sign2>[-+−])?"
    r"(?P<body>(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|\.\d+)"
    r"(?:\s*/\s*(?P<den>\d+))?"
    r"\s*(?:\\?%)?"
    r"(?:\s+[A-Za-z][A-Za-z ]*)?"
    r"\s*[.!]?"
)


def _format_rational(value: Fraction) -> str:
    """Canonical text of a rational: a terminating decimal when it has one, else the reduced 'p/q'."""
    sign = "-" if value < 0 else ""
    num, den = abs(value.numerator), value.denominator
    twos = fives = 0
    rest = den
    while rest % 2 == 0:
        rest //= 2
        twos += 1
    while rest % 5 == 0:
        rest //= 5
        fives += 1
    if rest != 1:
        return f"{sign}{num}/{den}"
    places = max(twos, fives)
    scaled = str(num * 10**places // den).rjust(places + 1, "0")
    whole, frac = scaled[: len(scaled) - places], scaled[len(scaled) - places :].rstrip("0")
    return f"{sign}{whole}.{frac}" if frac else f"{sign}{whole}"


def _number_value(sign: str | None, body: str, den: str | None) -> str | None:
    if den is not None and "." in body:
        return None
    value = Fraction(body.replace(",", "").rstrip(".") or "0")
    if den is not None:
        if int(den) == 0:
            return None
        value /= int(den)
    if sign in ("-", "−"):
        value = -value
    return _format_rational(value)


def normalize_number(s: str) -> str | None:
    """Canonical text of a string that is a single number, else None.

    Drops thousands separators, a currency sign ("$5", "\\$5"), a percent sign ("50%" -> "50"), trailing unit
    words ("12 dollars" -> "12") and a final period; "5.", "5.00" -> "5"; "0.50", ".5" -> "0.5"; "-0" -> "0".
    A fraction "a/b" becomes its exact value in the same canonical form as every other rational: a terminating
    decimal when it has one ("1/2" -> "0.5", "4/2" -> "2"), else the reduced fraction ("2/6" -> "1/3").
    So two strings give the same result exactly when they are the same rational number.
    """
    m = _NUMBER_STRING.fullmatch(s.strip().replace("**", "").strip("`").strip())
    if m is None or (m["sign"] and m["sign2"]):
        return None
    return _number_value(m["sign"] or m["sign2"], m["body"], m["den"])


def _numbers_in(text: str) -> list[str]:
    values = (_number_value(m["sign"], m["body"], m["den"]) for m in _NUMBER_IN_TEXT.finditer(text))
    return [v for v in values if v is not None]


def gsm8k_strict(text: str) -> str | None:
    """GSM8K's own format: the number after the LAST `####`, normalised; None if that is not a number."""
    text = strip_thinking(text)
    at = text.rfind("####")
    if at < 0:
        return None
    return normalize_number(text[at + 4 :].split("\n", 1)[0])


_ANSWER_IS = re.compile(r"\banswer\s+is\b\s*:?", re.IGNORECASE)


def gsm8k_flexible(text: str) -> str | None:
    """The first number after the last "the answer is", else the last number anywhere in the text."""
    text = strip_thinking(text)
    marks = list(_ANSWER_IS.finditer(text))
    if marks:
        found = _numbers_in(text[marks[-1].end() :].split("\n", 1)[0])
        if found:
            return found[0]
    found = _numbers_in(text)
    return found[-1] if found else None


_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
# "The answer is (B)", "Answer: C", "the correct option is **D**", "answer is option B", "Answer = (a)".
_CHOICE_STATED = re.compile(
    r"(?i:\b(?:answer|option|choice)\s*(?:is\s*:?|:|=))\s*(?i:(?:option|choice)\s+)?"
    r"[*_`\s]*(?:\$\s*)?(?:\\(?:boxed|textbf|text)\{\s*)?"
    r"(?:[(\[]\s*(?P<inner>[A-Za-z])\s*[)\]]|(?P<bare>[A-Z])(?![A-Za-z0-9]))"
)
_CHOICE_BOXED = re.compile(r"\\boxed\{\s*(?:\\text(?:bf)?\{\s*)?\(?(?P<bare>[A-Z])\)?\s*\}?\s*\}")
# "(B)", "[B]", "**B**", "**B.**", "**(B)**"
_CHOICE_MARKED = re.compile(r"[(\[](?P<a>[A-Z])[)\]]|\*\*\(?(?P<b>[A-Z])\)?[.:]?\*\*")
# A reply that starts with its choice: "B) Paris", "B. Paris", "B: Paris", "(B) Paris".
_CHOICE_LEADING = re.compile(r"\s*[*_`]*\s*\(?(?P<a>[A-Z])(?:[).:\]]|\s*[*_`.]*\s*$)")


def choice_letter(text: str, n_choices: int) -> str | None:
    """The chosen letter of a generative multiple-choice answer, among the first `n_choices` letters.

    In order: the last explicit statement ("The answer is (B)", "Answer: C", `\\boxed{B}`), else the last
    bracketed or bold letter ("(C)", "**C**"), else a reply that starts with its letter ("C) ...") or is a
    single letter. Free-standing capitals in prose ("I think", "A car") never count.
    """
    text = strip_thinking(text)
    valid = _LETTERS[: max(0, min(n_choices, 26))]
    stated: list[tuple[int, str]] = []
    for m in _CHOICE_STATED.finditer(text):
        letter = (m["inner"] or m["bare"]).upper()
        if m["bare"] == "I" and re.match(r"\s+[a-z]|'", text[m.end() :]):  # "Answer: I think ..." is prose
            continue
        stated.append((m.start(), letter))
    stated += [(m.start(), m["bare"]) for m in _CHOICE_BOXED.finditer(text)]
    stated = [(pos, letter) for pos, letter in stated if letter in valid]
    if stated:
        return max(stated)[1]
    marked = [m["a"] or m["b"] for m in _CHOICE_MARKED.finditer(text)]
    marked = [letter for letter in marked if letter in valid]
    if marked:
        return marked[-1]
    lone = text.strip().strip("*_`.()[]: ")
    if len(lone) == 1 and lone.upper() in valid:
        return lone.upper()
    m = _CHOICE_LEADING.match(text)
    if m and m["a"] in valid:
        return m["a"]
    return None


def normalize_bbh(s: str) -> str:
    """The comparable form of a BBH answer or target.

    Strips markdown and quotes, a final period and surrounding whitespace, collapses inner whitespace, and
    reduces a multiple-choice option "(A)" (also "(A) text") to its letter "A", as the targets "(A)" are
    compared. Case is kept: targets are "True", "valid", "Yes", "yes" as their prompts spell them.
    """
    out = re.sub(r"\s+", " ", s.replace("**", "").replace("`", "")).strip()
    out = out.rstrip(".").strip().strip("\"'").strip()
    m = re.fullmatch(r"\(([A-Z])\)(?:\s.*)?", out)
    return m[1] if m else out


_BBH_ANSWER = re.compile(r"the answer is\s*:?", re.IGNORECASE)


def bbh_answer(text: str) -> str | None:
    """The X of the last "So the answer is X." of a BBH chain of thought, in `normalize_bbh` form."""
    text = strip_thinking(text)
    marks = list(_BBH_ANSWER.finditer(text))
    if not marks:
        return None
    answer = normalize_bbh(text[marks[-1].end() :].split("\n", 1)[0])
    return answer or None
