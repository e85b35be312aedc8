"""MATH-style answers: extract the final answer of a solution and decide whether two LaTeX answers are equal.

`is_equiv` first compares Hendrycks-style normalised strings, then parses both strings with the small
LaTeX parser below into sympy objects and compares values: exactly for exact expressions, within a
relative 1e-4 when a decimal is involved (the tolerance of the Qwen2.5-Math grader), at random points
when variables are involved. Tuples and intervals compare element-wise in order, answer lists ("1, -2"),
sets and "a \\pm b" as unordered collections, matrices entry-wise, equations up to a constant factor.
"""

from __future__ import annotations

import math
import random
import re
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import sympy

from qwen_pipe.scoring.extract import strip_thinking

# ---------------------------------------------------------------- extraction


def _skip_group(text: str, start: int) -> int | None:
    """Index just past the `{...}` group opening at text[start], or None when it is never closed."""
    depth = 0
    i = start
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2  # an escaped brace "\{" does not count
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return None


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` or `\\fbox{...}` (nested braces kept), also of `\\boxed 5`.

    None when there is no box, the last one is empty, or its braces never close (a truncated generation).
    """
    at = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if at < 0:
        return None
    rest = text[at:]
    rest = rest[len("\\boxed") :] if rest.startswith("\\boxed") else rest[len("\\fbox") :]
    if rest.lstrip().startswith("{"):
        start = len(rest) - len(rest.lstrip())
        end = _skip_group(rest, start)
        content = rest[start + 1 : end - 1] if end is not None else None
    elif rest[:1].isspace():
        content = re.split(r"[$\n]", rest.strip(), maxsplit=1)[0]
    else:
        content = None
    if content is None or not content.strip():
        return None
    return content.strip()


_ANSWER_PHRASE = re.compile(r"(?:final answer|answer)\s*(?:is|:)\s*:?", re.IGNORECASE)
_MATH_DELIMS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))


def extract_math_answer(text: str) -> str | None:
    """The last boxed answer; else the X of the last "The final answer is X" / "The answer is X".

    Covers the Minerva format `Final Answer: The final answer is $X$. I hope it is correct.`; math
    delimiters around X are removed.
    """
    text = strip_thinking(text)
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed
    marks = list(_ANSWER_PHRASE.finditer(text))
    if not marks:
        return None
    rest = text[marks[-1].end() :].strip()
    for left, right in _MATH_DELIMS:
        # an escaped dollar "\$" inside "$...$" does not close it
        close = re.compile(r"(?<!\\)" + re.escape(right)).search(rest, len(left))
        if rest.startswith(left) and close:
            answer = rest[len(left) : close.start()]
            break
    else:
        answer = re.split(r"\.(?:\s|$)", rest.split("\n", 1)[0], maxsplit=1)[0]
    answer = re.sub(r"(?<!\\)\$", "", answer).strip()
    return answer or None


# ---------------------------------------------------------------- string normalisation

_UNIT_WORDS = (
    "square units|sq units|units?|degrees?|cm|centimeters?|mm|meters?|km|kilometers?|inches|inch|feet|foot|ft"
    "|miles?|mph|hours?|minutes?|seconds?|days?|weeks?|years?|cents?|dollars?|pounds?|ounces?|grams?|kg"
)
_TRAILING_TEXT_UNIT = re.compile(
    r"(?P<value>.*\S)\s*\\(?:text|textrm|mbox|mathrm)\s*\{\s*[A-Za-z][A-Za-z .]*\}\s*(?:\^\s*(?:\{\d\}|\d))?\s*"
)
_TRAILING_UNIT = re.compile(rf"(?P<value>.*[\d}}])\s*(?:{_UNIT_WORDS})(?:\^\s*(?:\{{\d\}}|\d))?\s*")
_TEXT_WRAPPER = re.compile(
    r"\\(?:text|textbf|textrm|textit|mathrm|mathbf|mathit|mbox|operatorname|boxed)\s*\{([^{}]*)\}"
)
_DECIMAL = re.compile(r"-?(?:\d+\.?\d*|\.\d+)")
_UNICODE = {"−": "-", "π": "\\pi", "∞": "\\infty", "×": "\\times", "·": "\\cdot", "÷": "\\div", "√": "\\sqrt"}


_FRAC_OR_SQRT = re.compile(r"\\(frac|sqrt)(?![a-zA-Z])")
_COMMAND = re.compile(r"\\[a-zA-Z]+|\\.")


def _fix_args(s: str) -> str:
    """Brace the arguments of \\frac and \\sqrt: `\\frac12` -> `\\frac{1}{2}`, `\\sqrt3` -> `\\sqrt{3}`."""
    out: list[str] = []
    i = 0
    while i < len(s):
        m = _FRAC_OR_SQRT.match(s, i)
        if m is None:
            out.append(s[i])
            i += 1
            continue
        i = m.end()
        out.append(m.group(0))
        if m[1] == "sqrt" and s.startswith("[", i):
            close = s.find("]", i)
            if close > 0:
                out.append(s[i : close + 1])
                i = close + 1
        for _ in range(2 if m[1] == "frac" else 1):
            while i < len(s) and s[i] == " ":
                i += 1
            if i >= len(s):
                break
            if s[i] == "{":
                end = _skip_group(s, i)
                if end is None:
                    out.append(s[i:])
                    return "".join(out)
                arg = s[i + 1 : end - 1]
                i = end
            elif s[i] == "\\":
                name = _COMMAND.match(s, i)
                arg = name.group(0) if name else s[i]
                i += len(arg)
            else:
                arg = s[i]
                i += 1
            out.append("{" + _fix_args(arg) + "}")
    return "".join(out)


def _decimal_text(s: str) -> str:
    """'5.00' -> '5', '0.50' -> '0.5', '007' -> '7', '-0' -> '0'."""
    negative = s.startswith("-")
    body = s.lstrip("-")
    if "." in body:
        body = body.rstrip("0").rstrip(".")
    body = body.lstrip("0")
    if not body:
        return "0"
    if body.startswith("."):
        body = "0" + body
    return "-" + body if negative else body


def normalize_math(s: str) -> str:
    """Hendrycks-style normal form of a LaTeX answer, for string comparison.

    Removes math delimiters, `\\$`, spacing commands, `\\left`/`\\right`, degrees, percent signs, trailing
    units (`\\text{ cm}^2`, "5 inches") and wrappers (`\\text{...}`, `\\mathrm{...}`); `dfrac`/`tfrac` ->
    `frac`; braces missing arguments (`\\frac12`, `\\sqrt3`); drops "x =" / "x \\in" before an answer,
    thousands separators, a final period, spaces (one is kept between a command and a letter: `\\pi r`);
    adds the leading 0 of ".5"; writes whole numbers and decimals canonically ("5.00" -> "5"), "a/b" as
    `\\frac{a}{b}` and a choice "(B)" as "B".
    """
    s = str(s).strip()
    for old, new in _UNICODE.items():
        s = s.replace(old, new)
    s = s.replace("\n", " ").replace("\\$", "").replace("$", "")
    s = re.sub(r"(?<!\\)\\[()\[\]]", "", s)
    s = re.sub(r"(?<!\\)\\[,:;! ]|~", " ", s).replace("{,}", ",")
    s = re.sub(r"\\(?:displaystyle|textstyle)(?![a-zA-Z])", "", s)
    s = re.sub(r"\\(?:left|right)\.", "", s)
    s = re.sub(r"\\(?:left|right|bigl|bigr|Bigl|Bigr|big|Big|biggl|biggr|bigg|Bigg)(?![a-zA-Z])", "", s)
    s = re.sub(r"\\[dtc]frac(?![a-zA-Z])", r"\\frac", s)
    s = re.sub(r"\^\s*(?:\{\s*\\circ\s*\}|\\circ)|\\circ(?![a-zA-Z])|°|\\degree(?![a-zA-Z])", "", s)
    s = s.replace("\\%", "").replace("%", "")
    s = s.strip()
    for pattern in (_TRAILING_TEXT_UNIT, _TRAILING_UNIT):
        m = pattern.fullmatch(s)
        if m:
            s = m["value"].strip()
    while True:
        unwrapped = _TEXT_WRAPPER.sub(r"\1", s)
        if unwrapped == s:
            break
        s = unwrapped
    s = re.sub(r"^\s*[a-zA-Z]\s*\\in(?![a-zA-Z])", "", s)
    s = re.sub(r"\s+", " ", s).strip()
    s = re.sub(r"(\\[a-zA-Z]+) (?=[a-zA-Z])", "\\1\0", s).replace(" ", "").replace("\0", " ")
    if s.count("=") == 1:
        lhs, rhs = s.split("=")
        if re.fullmatch(r"[a-zA-Z](?:_\{?\w+\}?)?|\\[a-zA-Z]+", lhs):
            s = rhs
    s = s.rstrip(".")
    s = re.sub(r"(?<![\w.}])\.(\d)", r"0.\1", s)
    s = _fix_args(s)
    s = re.sub(r"([\^_])\{(\w)\}", r"\1\2", s)
    if re.fullmatch(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?", s):
        s = s.replace(",", "")
    if _DECIMAL.fullmatch(s):
        s = _decimal_text(s)
    m = re.fullmatch(r"(-?)(\d+)/(\d+)", s)
    if m:
        s = f"{m[1]}\\frac{{{m[2]}}}{{{m[3]}}}"
    m = re.fullmatch(r"\(([A-Z])\)", s)
    if m:
        s = m[1]
    return s


# ---------------------------------------------------------------- LaTeX -> sympy


class _ParseError(ValueError):
    pass


class _Timeout(BaseException):
    """Derives from BaseException so that no `except Exception` inside sympy swallows it."""


_TOKEN = re.compile(r"\d+(?:\.\d*)?|\.\d+|\\[a-zA-Z]+|\\.|[a-zA-Z]|\S")
_FUNCTIONS = {
    "sin": sympy.sin, "cos": sympy.cos, "tan": sympy.tan, "cot": sympy.cot, "sec": sympy.sec,
    "csc": sympy.csc, "arcsin": sympy.asin, "arccos": sympy.acos, "arctan": sympy.atan,
    "sinh": sympy.sinh, "cosh": sympy.cosh, "tanh": sympy.tanh, "ln": sympy.log, "log": sympy.log,
    "exp": sympy.exp,
}  # fmt: skip
_GREEK = {
    "alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "zeta", "eta", "theta", "vartheta", "iota",
    "kappa", "lambda", "mu", "nu", "xi", "rho", "sigma", "tau", "upsilon", "phi", "varphi", "chi", "psi",
    "omega", "Gamma", "Delta", "Theta", "Lambda", "Xi", "Sigma", "Phi", "Psi", "Omega",
}  # fmt: skip
_PRODUCT_OPS = {"*", "\\cdot", "\\times", "/", "\\div"}
_MAX_EXPONENT = 1000  # above this a numeric power stays unevaluated (sympy would build a huge integer)
_MAX_DIGITS = 1e15  # a power with more digits (9^{9^{9^9}}) would need that much precision to evaluate


@dataclass
class _Expr:
    value: sympy.Expr
    inexact: bool  # a decimal literal took part: compare within a tolerance


class _Parser:
    """Recursive descent over the tokens of one normalised LaTeX expression."""

    def __init__(self, text: str):
        if re.search(r"(?<![\\a-zA-Z])[a-zA-Z]{3,}", text):
            raise _ParseError("words are compared as text only")
        self.tokens = _TOKEN.findall(text)
        self.pos = 0
        self.inexact = False
        self.abs_depth = 0

    def parse(self) -> _Expr:
        value = self.expr()
        if self.pos != len(self.tokens):
            raise _ParseError(f"unexpected {self.peek()!r}")
        return _Expr(value, self.inexact)

    def peek(self, offset: int = 0) -> str | None:
        at = self.pos + offset
        return self.tokens[at] if at < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        tok = self.peek()
        if tok is None or (expected is not None and tok != expected):
            raise _ParseError(f"expected {expected!r}, got {tok!r}")
        self.pos += 1
        return tok

    def expr(self) -> sympy.Expr:
        value = self.unary()
        while self.peek() in ("+", "-"):
            op = self.take()
            rhs = self.unary()
            value = value + rhs if op == "+" else value - rhs
        return value

    def unary(self) -> sympy.Expr:
        if self.peek() == "-":
            self.take()
            return -self.unary()
        if self.peek() == "+":
            self.take()
            return self.unary()
        return self.term()

    def term(self) -> sympy.Expr:
        value = self.power()
        while True:
            tok = self.peek()
            if tok in _PRODUCT_OPS:
                self.take()
                rhs = self.signed_power()
                value = value / rhs if tok in ("/", "\\div") else value * rhs
            elif self.starts_atom(tok):
                value = value * self.power()
            else:
                return value

    def signed_power(self) -> sympy.Expr:
        if self.peek() == "-":
            self.take()
            return -self.signed_power()
        return self.power()

    def starts_atom(self, tok: str | None) -> bool:
        if tok is None:
            return False
        if tok == "|":
            return self.abs_depth == 0
        if tok.startswith("\\") and len(tok) > 1 and tok[1].isalpha():
            return tok[1:] not in ("cdot", "times", "div", "pm", "mp", "right", "rfloor", "rceil")
        return tok[0].isdigit() or tok[0] == "." or tok.isalpha() or tok in ("(", "[", "{")

    def power(self) -> sympy.Expr:
        base = self.postfix(self.atom())
        if self.peek() == "^":
            self.take()
            exponent = self.exponent()
            return _pow(base, exponent)
        return base

    def exponent(self) -> sympy.Expr:
        """The argument of `^` or `_`: a braced group or one token, as LaTeX reads it (x^23 is x^2 * 3)."""
        tok = self.peek()
        if tok == "-":
            self.take()
            return -self.exponent()
        if tok is not None and tok[0].isdigit() and len(tok) > 1:
            self.tokens[self.pos : self.pos + 1] = [tok[0], tok[1:]]
        return self.atom()

    def postfix(self, value: sympy.Expr) -> sympy.Expr:
        while self.peek() == "!":
            self.take()
            if not (value.is_Integer and 0 <= value <= _MAX_EXPONENT):
                raise _ParseError("factorial of a non-integer or huge value")
            value = sympy.factorial(value)
        return value

    def group(self) -> sympy.Expr:
        """A braced argument `{...}`, or a single atom as LaTeX allows (`\\frac12` is normalised away)."""
        if self.peek() == "{":
            self.take()
            value = self.expr()
            self.take("}")
            return value
        return self.atom()

    def atom(self) -> sympy.Expr:
        tok = self.take()
        if tok[0].isdigit() or tok[0] == ".":
            return self.number(tok)
        if tok in ("(", "[", "{"):
            value = self.expr()
            self.take({"(": ")", "[": "]", "{": "}"}[tok])
            return value
        if tok == "|":
            self.abs_depth += 1
            value = self.expr()
            self.take("|")
            self.abs_depth -= 1
            return sympy.Abs(value)
        if tok.isalpha():
            return self.variable(tok)
        if tok.startswith("\\"):
            return self.command(tok[1:])
        raise _ParseError(f"unexpected {tok!r}")

    def number(self, tok: str) -> sympy.Expr:
        if self.peek() == "_":
            raise _ParseError("numbers in another base are compared as text only")
        if "." in tok:
            self.inexact = True
        value = sympy.Rational(tok.rstrip(".") or "0")
        fraction = None if "." in tok else self.proper_fraction()
        if fraction is not None:  # a mixed number: 1\frac{4}{5} is 1 + 4/5
            self.pos += 7
            return value + fraction
        return value

    def proper_fraction(self) -> sympy.Rational | None:
        """The value of a following `\\frac{p}{q}` with integer literals 0 < p < q, else None."""
        window = self.tokens[self.pos : self.pos + 7]
        if len(window) < 7 or window[:2] != ["\\frac", "{"] or window[3:5] != ["}", "{"] or window[6] != "}":
            return None
        num, den = window[2], window[5]
        ok = num.isdigit() and den.isdigit() and 0 < int(num) < int(den)
        return sympy.Rational(int(num), int(den)) if ok else None

    def variable(self, name: str) -> sympy.Expr:
        if self.peek() == "_":
            self.take()
            sub = self.take()
            if sub[0].isdigit() and len(sub) > 1:  # x_12 is x_1 * 2, as LaTeX reads it
                self.tokens.insert(self.pos, sub[1:])
                sub = sub[0]
            if sub == "{":
                parts = []
                while self.peek() != "}":
                    parts.append(self.take())
                self.take("}")
                sub = "".join(parts)
            return sympy.Symbol(f"{name}_{sub}")
        return sympy.I if name == "i" else sympy.Symbol(name)

    def command(self, name: str) -> sympy.Expr:
        if name == "frac":
            num = self.group()
            return num / self.group()
        if name == "sqrt":
            if self.peek() == "[":
                self.take()
                index = self.expr()
                self.take("]")
                return sympy.root(self.group(), index)
            return sympy.sqrt(self.group())
        if name == "binom":
            n, k = self.group(), self.group()
            if n.is_Integer and k.is_Integer and min(k, n - k) > _MAX_EXPONENT:
                raise _ParseError("a binomial coefficient too large to evaluate")
            return sympy.binomial(n, k)
        if name == "pi":
            return sympy.pi
        if name == "infty":
            return sympy.oo
        if name in _GREEK:
            return sympy.Symbol(name)
        if name in ("lfloor", "lceil"):
            value = self.expr()
            self.take("\\rfloor" if name == "lfloor" else "\\rceil")
            return sympy.floor(value) if name == "lfloor" else sympy.ceiling(value)
        if name in _FUNCTIONS:
            return self.function(name)
        raise _ParseError(f"unsupported command \\{name}")

    def function(self, name: str) -> sympy.Expr:
        base = None
        power = None
        for _ in range(2):
            if self.peek() == "_" and name == "log":
                self.take()
                base = self.exponent()
            elif self.peek() == "^":
                self.take()
                power = self.exponent()
        if self.peek() in ("(", "[", "{"):
            arg = self.atom()
        else:  # "\sin 2x": the argument runs over the numbers and letters that follow
            arg = self.power()
            while self.peek() is not None and (self.peek()[0].isdigit() or self.peek().isalpha()):
                arg = arg * self.power()
        value = _FUNCTIONS[name](arg) if base is None else sympy.log(arg, base)
        if power is not None:
            value = _pow(value, power)
        return value


def _pow(base: sympy.Expr, exponent: sympy.Expr) -> sympy.Expr:
    """base^exponent; a numeric power with a huge exponent stays unevaluated (2^{10^6} is cheap to
    evaluate numerically, not as an integer), and a tower whose value has over 10^15 digits is refused."""
    if not (base.is_number and exponent.is_number):
        return base**exponent
    size = abs(complex(exponent.evalf(15)))
    if size <= _MAX_EXPONENT:
        return base**exponent
    scale = abs(complex(base.evalf(15)))
    if scale not in (0.0, 1.0) and size * abs(math.log10(scale)) > _MAX_DIGITS:
        raise _ParseError("a number with too many digits")
    return sympy.Pow(base, exponent, evaluate=False)


# ---------------------------------------------------------------- answer structure

Node = tuple  # ("expr", _Expr) | ("eq", _Expr) | ("seq", brackets, items) | ("bag", items) | ("matrix", rows)


_MATRIX = re.compile(r"\\begin\{([pbvBV]?matrix|array)\}(?:\{[^{}]*\})?(.*)\\end\{\1\}", re.DOTALL)


def _split_top(s: str, sep: str) -> list[str]:
    """Split on `sep` outside any (), [], {}, \\{\\} (an interval "(3,4]" counts as one bracket pair)."""
    parts: list[str] = []
    depth = 0
    start = 0
    i = 0
    while i < len(s):
        if depth == 0 and s.startswith(sep, i):
            parts.append(s[start:i])
            start = i = i + len(sep)
            continue
        if s[i] == "\\":  # "\\{" and "\\}" are brackets; "\\\\" and a command's backslash are not
            if s.startswith(("\\{", "\\}"), i):
                depth += 1 if s[i + 1] == "{" else -1
            i += 2 if s.startswith(("\\\\", "\\{", "\\}"), i) else 1
            continue
        if s[i] in "([{":
            depth += 1
        elif s[i] in ")]}":
            depth -= 1
        i += 1
    parts.append(s[start:])
    return parts


def _bag(items: list[Node]) -> Node:
    """An unordered collection; collections inside it (from "\\pm") are merged into it."""
    flat: list[Node] = []
    for item in items:
        flat.extend(item[1] if item[0] == "bag" else [item])
    return ("bag", flat)


def _wrapped(s: str) -> bool:
    """Whether the bracket at s[0] closes only at the last character: "(1,2)" yes, "(a+5)(b+2)" no."""
    if len(s) < 2 or s[0] not in "([" or s[-1] not in ")]":
        return False
    depth = 0
    for i, ch in enumerate(s):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0 and i < len(s) - 1:
                return False
    return depth == 0


def _parse_answer(s: str) -> Node:
    m = _MATRIX.fullmatch(s)
    if m:
        rows = [r for r in _split_top(m[2], "\\\\") if r.strip()]
        return ("matrix", [[_parse_answer(cell) for cell in _split_top(row, "&")] for row in rows])
    parts = _split_top(s, "\\cup")
    if len(parts) > 1:
        return _bag([_parse_answer(p) for p in parts])
    if s.startswith("\\{") and s.endswith("\\}"):
        return _bag([_parse_answer(p) for p in _split_top(s[2:-2], ",")])
    if _wrapped(s):
        items = _split_top(s[1:-1], ",")
        if len(items) > 1:
            return ("seq", s[0] + s[-1], [_parse_answer(p) for p in items])
    items = _split_top(s, ",")
    if len(items) > 1:
        return _bag([_parse_answer(p) for p in items])
    if "=" in s:
        sides = s.split("=")
        if len(sides) != 2:
            raise _ParseError("more than one '='")
        lhs, rhs = (_Parser(side).parse() for side in sides)
        return ("eq", _Expr(lhs.value - rhs.value, lhs.inexact or rhs.inexact))
    for pm in ("\\pm", "\\mp"):
        if pm in s:
            if s.count(pm) > 1:
                raise _ParseError("more than one \\pm")
            return _bag([_parse_answer(s.replace(pm, "+")), _parse_answer(s.replace(pm, "-"))])
    return ("expr", _Parser(s).parse())


def _close(a: complex, b: complex, rel_tol: float) -> bool:
    if not all(math.isfinite(v) for v in (a.real, a.imag, b.real, b.imag)):
        return False  # an overflow or a pole proves nothing
    return abs(a - b) <= max(rel_tol * max(abs(a), abs(b)), 1e-12)


def _points(symbols: set[sympy.Symbol]) -> Iterator[dict[sympy.Symbol, sympy.Float]]:
    rng = random.Random(20240501)
    ordered = sorted(symbols, key=lambda sym: sym.name)
    for _ in range(3):
        yield {sym: sympy.Float(rng.uniform(0.3, 2.7), 30) for sym in ordered}


def _expr_equal(a: _Expr, b: _Expr) -> bool:
    x, y = a.value, b.value
    if x == y:
        return True
    if any(v.has(sympy.oo, -sympy.oo, sympy.zoo, sympy.nan) for v in (x, y)):
        return False
    rel_tol = 1e-4 if a.inexact or b.inexact else 1e-20
    symbols = x.free_symbols | y.free_symbols
    if not symbols:
        if x.is_Rational and y.is_Rational and rel_tol < 1e-4:
            return False  # two different exact rationals
        return _close(complex(x.evalf(40)), complex(y.evalf(40)), rel_tol)
    rel_tol = max(rel_tol, 1e-12)
    return all(
        _close(complex(x.evalf(40, subs=point)), complex(y.evalf(40, subs=point)), rel_tol)
        for point in _points(symbols)
    )


def _equations_equal(a: _Expr, b: _Expr) -> bool:
    """lhs - rhs of one equation is a nonzero constant multiple of the other's."""
    x, y = a.value, b.value
    if x == y or x == -y:
        return True
    ratios = []
    for point in _points(x.free_symbols | y.free_symbols):
        vx, vy = complex(x.evalf(40, subs=point)), complex(y.evalf(40, subs=point))
        if abs(vy) < 1e-12:
            if abs(vx) > 1e-12:
                return False
            continue
        ratios.append(vx / vy)
    return bool(ratios) and abs(ratios[0]) > 1e-12 and all(_close(r, ratios[0], 1e-9) for r in ratios)


def _nodes_equal(a: Node, b: Node) -> bool:
    if a[0] == "bag" and b[0] != "bag":
        b = ("bag", [b])
    if b[0] == "bag" and a[0] != "bag":
        a = ("bag", [a])
    if a[0] != b[0]:
        return False
    kind = a[0]
    if kind == "expr":
        return _expr_equal(a[1], b[1])
    if kind == "eq":
        return _equations_equal(a[1], b[1])
    if kind == "seq":
        return a[1] == b[1] and len(a[2]) == len(b[2]) and all(map(_nodes_equal, a[2], b[2]))
    if kind == "matrix":
        return [len(r) for r in a[1]] == [len(r) for r in b[1]] and all(
            _nodes_equal(p, q) for ra, rb in zip(a[1], b[1], strict=True) for p, q in zip(ra, rb, strict=True)
        )
    # bag: unordered, with multiplicity
    left, right = list(a[1]), list(b[1])
    if len(left) != len(right):
        return False
    for item in left:
        match = next((j for j, other in enumerate(right) if _nodes_equal(item, other)), None)
        if match is None:
            return False
        right.pop(match)
    return True


@contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Raise _Timeout after `seconds` (SIGALRM). Only in the main thread and when no other timer runs;
    elsewhere the parser's own guards (no huge powers or factorials, numeric evaluation) bound the work."""
    usable = (
        seconds > 0
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
        and signal.getitimer(signal.ITIMER_REAL)[0] == 0
    )
    if not usable:
        yield
        return

    def on_alarm(signum: int, frame: object) -> None:
        raise _Timeout

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _is_text(s: str) -> bool:
    return re.fullmatch(r"[A-Za-z][A-Za-z ',.-]*", s) is not None and re.search(r"[A-Za-z]{3}", s) is not None


def is_equiv(pred: str | None, gold: str, timeout_s: float = 5.0) -> bool:
    """Whether a predicted answer equals the gold answer; never raises (anything unparsable is unequal)."""
    if pred is None:
        return False
    started = time.monotonic()
    try:
        p, g = normalize_math(pred), normalize_math(gold)
        if p == g:
            return True
        if not p or not g:
            return False
        if _is_text(p) or _is_text(g):
            return p.casefold() == g.casefold()
        with _time_limit(max(timeout_s - (time.monotonic() - started), 0.01)):
            return _nodes_equal(_parse_answer(p), _parse_answer(g))
    except (Exception, _Timeout):  # noqa: BLE001 - a parse or sympy failure means "not shown equal"
        return False
