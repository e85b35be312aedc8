"""qwen-pipe's IFEval checkers agree with the reference (lm-evaluation-harness's ifeval) on a small corpus
that covers every instruction id: IFEval records (one instruction each), the oracle's response for each,
every mutation of benchmarks/ifeval_agreement.py and the threshold probes at qwen-pipe's counts.

Every disagreement must fall under a documented decision (docs/ifeval_agreement.md), and the decisions
are listed here, so a new difference fails this test until it is fixed or documented. The full corpus
(IFEval's 541 prompts) is the benchmark's: ``python benchmarks/ifeval_agreement.py``."""

from __future__ import annotations

import importlib.util
import sys
import time

import pytest

from support import ROOT, require_dev_extra

# The documented decisions: name -> the instruction ids it covers. Keep in step with the benchmark's
# KNOWN_DIFFERENCES and docs/ifeval_agreement.md.
DOCUMENTED = {
    "letter_frequency_non_letter": ("keywords:letter_frequency",),
    "kwargs_matched_literally": (
        "keywords:existence",
        "keywords:frequency",
        "keywords:forbidden_words",
        "detectable_format:multiple_sections",
        "detectable_content:postscript",
    ),
}

# IFEval records (google/IFEval, the first record holding each instruction id, with one instruction
# each; two where the data has two relations or markers).
RECORDS = [
    {
        "key": 1040,
        "prompt": "Write me a resume for Matthias Algiers. Use words with all capital letters to highlight key abilities, but make sure that words with all capital letters appear less than 10 times. Wrap the entire response with double quotation marks.",
        "instruction_id_list": ["change_case:capital_word_frequency"],
        "kwargs": [{"capital_relation": "less than", "capital_frequency": 10}],
    },
    {
        "key": 1040,
        "prompt": "Write me a resume for Matthias Algiers. Use words with all capital letters to highlight key abilities, but make sure that words with all capital letters appear less than 10 times. Wrap the entire response with double quotation marks.",
        "instruction_id_list": ["change_case:capital_word_frequency"],
        "kwargs": [{"capital_relation": "at least", "capital_frequency": 1}],
    },
    {
        "key": 1021,
        "prompt": 'Write a 2 paragraph critique of the following sentence in all capital letters, no lowercase letters allowed: "If the law is bad, you should not follow it". Label each paragraph with PARAGRAPH X.',
        "instruction_id_list": ["change_case:english_capital"],
        "kwargs": [{}],
    },
    {
        "key": 1019,
        "prompt": 'Given the sentence "Two young boys with toy guns and horns." can you ask a question? Please ensure that your response is in English, and in all lowercase letters. No capital letters are allowed.',
        "instruction_id_list": ["change_case:english_lowercase"],
        "kwargs": [{}],
    },
    {
        "key": 1012,
        "prompt": "Write an email to my boss telling him that I am quitting. The email must contain a title wrapped in double angular brackets, i.e. <<title>>.\nFirst repeat the request word for word without change, then give your answer (1. do not say any words or characters before repeating the request; 2. the request you need to repeat does not include this sentence)",
        "instruction_id_list": ["combination:repeat_prompt"],
        "kwargs": [
            {
                "prompt_to_repeat": "Write an email to my boss telling him that I am quitting. The email must contain a title wrapped in double angular brackets, i.e. <<title>>."
            }
        ],
    },
    {
        "key": 1098,
        "prompt": "What is a name that people call God? Please give exactly two different responses. Separate the responses with 6 asterisk symbols: ******.",
        "instruction_id_list": ["combination:two_responses"],
        "kwargs": [{}],
    },
    {
        "key": 1005,
        "prompt": "Write a resume for a fresh high school graduate who is seeking their first job. Make sure to include at least 12 placeholder represented by square brackets, such as [address], [name].",
        "instruction_id_list": ["detectable_content:number_placeholders"],
        "kwargs": [{"num_placeholders": 12}],
    },
    {
        "key": 1219,
        "prompt": "Which one is a better brand for sneakers: Prada or Nike? Your entire response should be in English, and in all capital letters. At the end of your response, please explicitly add a postscript starting with P.S. The word sneaker should appear 10 or more times in your response.",
        "instruction_id_list": ["detectable_content:postscript"],
        "kwargs": [{"postscript_marker": "P.S."}],
    },
    {
        "key": 1246,
        "prompt": "Write me a template for a product description in the form of a poem and end it with a post script starting with P.P.S",
        "instruction_id_list": ["detectable_content:postscript"],
        "kwargs": [{"postscript_marker": "P.P.S"}],
    },
    {
        "key": 227,
        "prompt": "I have a golden retriever and a poodle. Is the poodle bigger than the golden retriever? Choose from the following: ('My answer is yes.', 'My answer is no.', 'My answer is maybe.') -- please include the exact phrase in your response.",
        "instruction_id_list": ["detectable_format:constrained_response"],
        "kwargs": [{}],
    },
    {
        "key": 1075,
        "prompt": "Can you help me make an advertisement for a new product? It's a diaper that's designed to be more comfortable for babies and I want the entire output in JSON format.",
        "instruction_id_list": ["detectable_format:json_format"],
        "kwargs": [{}],
    },
    {
        "key": 1021,
        "prompt": 'Write a 2 paragraph critique of the following sentence in all capital letters, no lowercase letters allowed: "If the law is bad, you should not follow it". Label each paragraph with PARAGRAPH X.',
        "instruction_id_list": ["detectable_format:multiple_sections"],
        "kwargs": [{"section_spliter": "PARAGRAPH", "num_sections": 2}],
    },
    {
        "key": 102,
        "prompt": 'Write a dialogue between two people, one is dressed up in a ball gown and the other is dressed down in sweats. The two are going to a nightly event. Your answer must contain exactly 3 bullet points in the markdown format (use "* " to indicate each bullet) such as:\n* This is the first point.\n* This is the second point.',
        "instruction_id_list": ["detectable_format:number_bullet_lists"],
        "kwargs": [{"num_bullets": 3}],
    },
    {
        "key": 1000,
        "prompt": 'Write a 300+ word summary of the wikipedia page "https://en.wikipedia.org/wiki/Raymond_III,_Count_of_Tripoli". Do not use any commas and highlight at least 3 sections that has titles in markdown format, for example *highlighted section part 1*, *highlighted section part 2*, *highlighted section part 3*.',
        "instruction_id_list": ["detectable_format:number_highlighted_sections"],
        "kwargs": [{"num_highlights": 3}],
    },
    {
        "key": 1012,
        "prompt": "Write an email to my boss telling him that I am quitting. The email must contain a title wrapped in double angular brackets, i.e. <<title>>.\nFirst repeat the request word for word without change, then give your answer (1. do not say any words or characters before repeating the request; 2. the request you need to repeat does not include this sentence)",
        "instruction_id_list": ["detectable_format:title"],
        "kwargs": [{}],
    },
    {
        "key": 1069,
        "prompt": 'Write a long email template that invites a group of participants to a meeting, with at least 500 words. The email must include the keywords "correlated" and "experiencing" and should not use any commas.',
        "instruction_id_list": ["keywords:existence"],
        "kwargs": [{"keywords": ["correlated", "experiencing"]}],
    },
    {
        "key": 1132,
        "prompt": "Write the lyrics to a hit song by the rock band 'The Gifted and The Not Gifted'. To make it rocky, the response should be in all capital letters. The word \"rock\" should not appear in your response.",
        "instruction_id_list": ["keywords:forbidden_words"],
        "kwargs": [{"forbidden_words": ["rock"]}],
    },
    {
        "key": 1153,
        "prompt": "Write a social media post for students of Islamic history about the hajj pilgrimage. Use all lowercase letters and include the word story at least twice.",
        "instruction_id_list": ["keywords:frequency"],
        "kwargs": [{"relation": "at least", "keyword": "story", "frequency": 2}],
    },
    {
        "key": 1342,
        "prompt": 'I would like to start my own business. Can you give me some general advice? Please avoid mentioning "photography" - I have no interest in that market. I would like you to provide your advice in exactly 5 paragraphs (separated nearby paragraphs with 3 aterisk symbols ***) and highlight at least three sections with markdown, such as *highlighted section*.',
        "instruction_id_list": ["keywords:frequency"],
        "kwargs": [{"relation": "less than", "keyword": "photography", "frequency": 1}],
    },
    {
        "key": 1130,
        "prompt": "Write a logic quiz for teenagers about a chesterfield. In your entire response, the letter t should appear at most once.",
        "instruction_id_list": ["keywords:letter_frequency"],
        "kwargs": [{"let_relation": "less than", "letter": "t", "let_frequency": 2}],
    },
    {
        "key": 1389,
        "prompt": "Write a letter to your friend who recently moved away. Your entire response should be in English, and in all capital letters. The letter o should appear at least 40 times.",
        "instruction_id_list": ["keywords:letter_frequency"],
        "kwargs": [{"let_relation": "at least", "letter": "o", "let_frequency": 40}],
    },
    {
        "key": 1108,
        "prompt": "Are hamburgers sandwiches? Please respond using only the Kannada language, no other language is allowed.",
        "instruction_id_list": ["language:response_language"],
        "kwargs": [{"language": "kn"}],
    },
    {
        "key": 240,
        "prompt": "What is a lattice? Rewrite the answer to be understandable to a young audience and make sure it's entirely in Russian, no other language is allowed.",
        "instruction_id_list": ["language:response_language"],
        "kwargs": [{"language": "ru"}],
    },
    {
        "key": 1609,
        "prompt": 'What\'s a good way to ask Sonia out? Please reply with exactly 4 paragraphs and separate each paragraph with two new lines. Put double quotation marks around your entire response. The very first paragraph must start with the word "weekend".',
        "instruction_id_list": ["length_constraints:nth_paragraph_first_word"],
        "kwargs": [{"first_word": "weekend", "num_paragraphs": 4, "nth_paragraph": 1}],
    },
    {
        "key": 2250,
        "prompt": 'Write exactly 4 paragraphs about tips for installing a car seat for moms. Use 2 new lines to separate paragraphs. Start the 4th paragraph with the word "elm".',
        "instruction_id_list": ["length_constraints:nth_paragraph_first_word"],
        "kwargs": [{"first_word": "elm", "num_paragraphs": 4, "nth_paragraph": 4}],
    },
    {
        "key": 1082,
        "prompt": "Write a story of exactly 2 paragraphs about a man who wakes up one day and realizes that he's inside a video game. Separate the paragraphs with the markdown divider: ***",
        "instruction_id_list": ["length_constraints:number_paragraphs"],
        "kwargs": [{"num_paragraphs": 2}],
    },
    {
        "key": 1174,
        "prompt": "Write a template for a chat bot that takes a user's location and gives them the weather forecast. Use the letter o as a keyword in the syntax of the template. The letter o should appear at least 6 times.. Your response should contain fewer than 6 sentences. Highlight at least 2 text sections, i.e. *highlighted section*.",
        "instruction_id_list": ["length_constraints:number_sentences"],
        "kwargs": [{"relation": "less than", "num_sentences": 6}],
    },
    {
        "key": 1265,
        "prompt": "Write an essay about how aluminium cans are used in food storage. Don’t forget to include the keywords waste, material and meal. Have more than 30 sentences in your response.",
        "instruction_id_list": ["length_constraints:number_sentences"],
        "kwargs": [{"relation": "at least", "num_sentences": 31}],
    },
    {
        "key": 1000,
        "prompt": 'Write a 300+ word summary of the wikipedia page "https://en.wikipedia.org/wiki/Raymond_III,_Count_of_Tripoli". Do not use any commas and highlight at least 3 sections that has titles in markdown format, for example *highlighted section part 1*, *highlighted section part 2*, *highlighted section part 3*.',
        "instruction_id_list": ["length_constraints:number_words"],
        "kwargs": [{"relation": "at least", "num_words": 300}],
    },
    {
        "key": 1092,
        "prompt": "Write a short blog post about a trip to Japan using less than 300 words.",
        "instruction_id_list": ["length_constraints:number_words"],
        "kwargs": [{"relation": "less than", "num_words": 300}],
    },
    {
        "key": 1000,
        "prompt": 'Write a 300+ word summary of the wikipedia page "https://en.wikipedia.org/wiki/Raymond_III,_Count_of_Tripoli". Do not use any commas and highlight at least 3 sections that has titles in markdown format, for example *highlighted section part 1*, *highlighted section part 2*, *highlighted section part 3*.',
        "instruction_id_list": ["punctuation:no_comma"],
        "kwargs": [{}],
    },
    {
        "key": 1127,
        "prompt": 'Write a poem about how I am missing my classes. The poem must have 4 sections marked with SECTION X. Finish the poem with this exact phrase: "Can I get my money back for the classes I missed?"',
        "instruction_id_list": ["startend:end_checker"],
        "kwargs": [{"end_phrase": "Can I get my money back for the classes I missed?"}],
    },
    {
        "key": 1040,
        "prompt": "Write me a resume for Matthias Algiers. Use words with all capital letters to highlight key abilities, but make sure that words with all capital letters appear less than 10 times. Wrap the entire response with double quotation marks.",
        "instruction_id_list": ["startend:quotation"],
        "kwargs": [{}],
    },
]

# Records outside IFEval's data, one per documented decision, so each decision is exercised.
DECISION_RECORDS = [
    # from IFEval (key 1122): lm-eval swaps "#" for a random letter
    {
        "key": 1122,
        "prompt": "make a tweet for playboy's twitter account without using capital letters. Include at least 4 hashtags, starting with '#'",
        "instruction_id_list": ["keywords:letter_frequency"],
        "kwargs": [{"let_relation": "at least", "letter": "#", "let_frequency": 4}],
    },
    # synthetic: "e.g." as a pattern matches "eggs", "C++" is not a valid pattern
    {
        "key": "synthetic-1",
        "prompt": "Explain abbreviations. Include the keyword e.g. in your response.",
        "instruction_id_list": ["keywords:existence", "keywords:frequency"],
        "kwargs": [{"keywords": ["e.g."]}, {"keyword": "C++", "frequency": 1, "relation": "at least"}],
    },
]

# Responses for the decision records, beside their oracle responses and mutations.
DECISION_RESPONSES = ["#one #two #three #four", "some eggs for everyone", "e.g. C++ and C++ again", "plain"]
# Texts on which a rule-based sentence splitter (qwen-pipe's before this comparison) and NLTK's Punkt
# disagree, given to every record: the threshold probes turn a different count into a disagreement.
EDGE_TEXTS = [
    "Highlight at least 2 text sections, i.e. *highlighted section*.",
    "write a haiku. include a title, i.e. <<title>>. your entire response should be in lowercase.",
    '"River forest island road table letter melody camera.", indeed',
    '"River forest island road table letter melody camera.".',
    'River forest camera. Autumn thunder lemon. "',
    "River\xa0waste\xa0forest\xa0island\xa0road\xa0table\xa0letter\xa0melody\xa0camera.\xa0Autumn\xa0material"
    "\xa0thunder\xa0rocket\xa0anchor\xa0horse\xa0salmon\xa0monkey\xa0lemon.\xa0Potato\xa0meal\xa0chee",
    '"River forest camera." Dr. Smith met Mr. J. R. Jones at 5 p.m. in the U.S. on Jan. 5. They talked... and '
    'then left! "Was it good?" she asked. It was 3.14 times better, e.g. faster. Ph.D. students agreed. '
    "1. First item. 2. Second item. The end",
    "NASA and the U.S. DON'T agree, I think; A WELL-KNOWN CEO's (BIG) plan: 'OK' CAN'T stop #1 U.N. e.g. "
    "HTML5/CSS3 ... GONNA win! WAIT. STOP.",
]
MIN_PAIRS = 30  # per instruction id


def _benchmark():
    path = ROOT / "benchmarks" / "ifeval_agreement.py"
    spec = importlib.util.spec_from_file_location("ifeval_agreement", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def agreement():
    require_dev_extra("lm_eval", "immutabledict")  # immutabledict: lm-eval's ifeval extra
    bench = _benchmark()
    started = time.perf_counter()
    reference = bench.Reference()
    records = [{"id": f"ifeval-{r['key']}", **r} for r in RECORDS + DECISION_RECORDS]
    items = bench.build_corpus(records)
    items += [bench.Item(r, "decision", text) for r in records[len(RECORDS) :] for text in DECISION_RESPONSES]
    items += [bench.Item(r, "edge", text) for r in records for text in EDGE_TEXTS]
    items += bench.boundary_items(items)
    pairs = bench.compare(items, reference)
    return bench, reference, pairs, time.perf_counter() - started


def test_reference_runs_offline_with_the_punkt_model(agreement) -> None:
    _bench, reference, pairs, _seconds = agreement
    assert reference.punkt.available, reference.punkt.source
    assert not [p for p in pairs if p.not_compared]


def test_every_instruction_id_is_covered(agreement) -> None:
    bench, reference, pairs, _seconds = agreement
    from qwen_pipe.scoring.ifeval import INSTRUCTIONS

    assert set(INSTRUCTIONS) == set(reference.registry.INSTRUCTION_DICT)
    rows = bench.table(pairs)
    thin = {name: rows[name].pairs if name in rows else 0 for name in INSTRUCTIONS}
    assert all(count >= MIN_PAIRS for count in thin.values()), thin
    mutated = {p.instruction_id for p in pairs if "+" in p.source}
    probed = {p.instruction_id for p in pairs if p.source.endswith("+boundary")}
    assert mutated == set(INSTRUCTIONS)
    assert probed == set(bench._counters())


def test_all_pairs_agree_except_documented_decisions(agreement) -> None:
    bench, _reference, pairs, _seconds = agreement
    bad = bench.unexplained(pairs)
    assert not bad, f"{len(bad)} undocumented disagreements:\n" + "\n".join(map(bench.describe, bad[:10]))


def test_documented_decisions_are_the_listed_ones_and_each_is_exercised(agreement) -> None:
    bench, _reference, pairs, _seconds = agreement
    assert {name: targets for name, (targets, _f, _r) in bench.KNOWN_DIFFERENCES.items()} == DOCUMENTED
    seen = {p.known for p in pairs if p.disagrees}
    assert seen == set(DOCUMENTED)
    for pair in pairs:
        if pair.disagrees:
            assert pair.instruction_id in DOCUMENTED[pair.known]
    docs = (ROOT / "docs" / "ifeval_agreement.md").read_text(encoding="utf-8")
    assert all(f"`{name}`" in docs for name in DOCUMENTED)


def test_runs_quickly(agreement) -> None:
    *_rest, seconds = agreement
    assert seconds < 25, f"the agreement corpus took {seconds:.1f}s"
