"""A constructive "gold" response for an IFEval record, to prove the checkers end to end.

``oracle_response(record)`` turns the record's instructions into a specification (counts and ranges,
layout, casing, language), renders a response from simple filler sentences, then measures the response
with the checkers' own counters and corrects the plan (more or fewer sentences, words, keyword or letter
insertions) until ``evaluate`` says every instruction is followed strictly. It returns None when the
instructions cannot all hold (e.g. "no commas" with a prompt to repeat that holds commas, a forbidden
word inside the prompt to repeat, or ranges that do not intersect) or when the corrections do not
converge. The text is meant for machines: well-formed, not meaningful.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from qwen_pipe.scoring.ifeval.evaluate import evaluate, instructions_of
from qwen_pipe.scoring.ifeval.formats import count_bullets, count_highlights, count_placeholders
from qwen_pipe.scoring.ifeval.keywords import keyword_occurrences
from qwen_pipe.scoring.ifeval.language import count_capital_words
from qwen_pipe.scoring.ifeval.text import count_sentences, count_words

_VOCABULARY = """
river garden morning evening window market village forest meadow valley harbor bridge castle tower
island mountain ocean desert lake hill field road street station library museum school kitchen table
chair lamp candle mirror basket bottle letter paper pencil notebook painting music rhythm melody song
poem novel chapter story picture camera journey travel holiday weekend summer winter autumn spring
weather rain snow wind cloud thunder sunshine moon star planet comet galaxy rocket engine machine
clock compass ladder rope anchor sail boat ship train bicycle wagon horse rabbit squirrel fox owl
sparrow eagle salmon turtle dolphin whale tiger lion zebra monkey elephant giraffe kitten puppy
apple orange lemon cherry grape melon peach banana carrot potato tomato pepper onion garlic bread
butter cheese honey sugar coffee juice water soup salad pizza cookie muffin pancake biscuit jam
quick quiet quilt queen quest quote square equal quality question quartz quarter unique antique
jazz joy jump judge jolly jacket jungle jewel juggle jigsaw jaguar jelly journal
box six relax next text mixer boxer axle oxygen
zoo zero zone fizz buzz maze prize puzzle breeze frozen lazy crazy dozen blizzard gazebo
calm bright gentle happy brave clever simple modern ancient golden silver purple yellow green
little tiny huge wide narrow tall short early late warm cool cold hot soft loud smooth rough
careful patient honest friendly curious polite humble proud busy lucky sunny windy snowy
walk run swim climb dance sing paint draw build plant grow cook bake read write learn teach
listen watch visit explore gather carry follow open close share help find keep bring hold
always often never sometimes together slowly gently quickly brightly softly nearly almost
plan idea method pattern signal detail answer choice reason result effect value balance system
circle cycle cactus concert accept access account accurate acoustic cocoa cubic
hobby happy puppy pepper paper hippo lollipop bubble pebble gobble
mud fun sun run gum bug hut cup bus tub drum plum lung pulp gulf
dog cat cow pig hen owl ant bat elk yak
gold cloud blood world word sword north forth
moon spoon noon food mood hood wood book cook look brook
bark card yard farm harm calm palm salt malt halt walk talk chalk
slim swim will hill mill fill spin twin dim
fly dry shy sky try spy
"""

_PLACEHOLDERS = (
    "name",
    "address",
    "date",
    "city",
    "phone",
    "email",
    "company",
    "position",
    "school",
    "salary",
)

# Sentences for responses required in a language other than English (all checked with langdetect).
LANGUAGE_SENTENCES: dict[str, tuple[str, ...]] = {
    "de": (
        "Der Fluss fließt langsam durch das kleine Dorf.",
        "Wir arbeiten jeden Tag zusammen an einem neuen Projekt.",
        "Die Kinder spielen gern im Garten hinter dem Haus.",
        "Am Abend trinken wir Tee und lesen ein gutes Buch.",
    ),
    "it": (
        "Il fiume scorre lentamente attraverso il piccolo paese.",
        "Ogni giorno lavoriamo insieme a un nuovo progetto.",
        "I bambini giocano nel giardino dietro la casa.",
        "La sera beviamo un tè e leggiamo un buon libro.",
    ),
    "pt": (
        "O rio corre devagar pela pequena aldeia.",
        "Todos os dias trabalhamos juntos num projeto novo.",
        "As crianças brincam no jardim atrás da casa.",
        "À noite bebemos chá e lemos um bom livro.",
    ),
    "fi": (
        "Joki virtaa hitaasti pienen kylän läpi.",
        "Teemme joka päivä töitä yhdessä uuden projektin parissa.",
        "Lapset leikkivät talon takana olevassa puutarhassa.",
        "Illalla juomme teetä ja luemme hyvää kirjaa.",
    ),
    "vi": (
        "Dòng sông chảy chậm qua ngôi làng nhỏ.",
        "Mỗi ngày chúng tôi cùng nhau làm một dự án mới.",
        "Những đứa trẻ chơi trong khu vườn phía sau nhà.",
        "Buổi tối chúng tôi uống trà và đọc một cuốn sách hay.",
    ),
    "sw": (
        "Mto unatiririka polepole kupitia kijiji kidogo.",
        "Kila siku tunafanya kazi pamoja kwenye mradi mpya.",
        "Watoto wanacheza katika bustani nyuma ya nyumba.",
        "Jioni tunakunywa chai na kusoma kitabu kizuri.",
    ),
    "ru": (
        "Река медленно течёт через маленькую деревню.",
        "Каждый день мы вместе работаем над новым проектом.",
        "Дети играют в саду за домом.",
        "Вечером мы пьём чай и читаем хорошую книгу.",
    ),
    "bg": (
        "Реката тече бавно през малкото село.",
        "Всеки ден работим заедно по нов проект.",
        "Децата играят в градината зад къщата.",
        "Вечер пием чай и четем хубава книга.",
    ),
    "ar": (
        "يجري النهر ببطء عبر القرية الصغيرة.",
        "نعمل معا كل يوم على مشروع جديد.",
        "يلعب الأطفال في الحديقة خلف البيت.",
        "في المساء نشرب الشاي ونقرأ كتابا جيدا.",
    ),
    "fa": (
        "رودخانه به آرامی از میان روستای کوچک می‌گذرد.",
        "ما هر روز با هم روی یک پروژه تازه کار می‌کنیم.",
        "بچه‌ها در باغ پشت خانه بازی می‌کنند.",
        "شب‌ها چای می‌نوشیم و کتاب خوبی می‌خوانیم.",
    ),
    "ur": (
        "دریا چھوٹے گاؤں میں سے آہستہ آہستہ بہتا ہے۔",
        "ہم ہر روز مل کر ایک نئے منصوبے پر کام کرتے ہیں۔",
        "بچے گھر کے پیچھے باغ میں کھیلتے ہیں۔",
        "شام کو ہم چائے پیتے ہیں اور ایک اچھی کتاب پڑھتے ہیں۔",
    ),
    "hi": (
        "नदी छोटे से गाँव से धीरे धीरे बहती है।",
        "हम हर दिन मिलकर एक नई परियोजना पर काम करते हैं।",
        "बच्चे घर के पीछे बगीचे में खेलते हैं।",
        "शाम को हम चाय पीते हैं और एक अच्छी किताब पढ़ते हैं।",
    ),
    "mr": (
        "नदी लहान गावातून हळूहळू वाहते.",
        "आम्ही दररोज एकत्र एका नवीन प्रकल्पावर काम करतो.",
        "मुले घराच्या मागच्या बागेत खेळतात.",
        "संध्याकाळी आम्ही चहा पितो आणि एक चांगले पुस्तक वाचतो.",
    ),
    "ne": (
        "नदी सानो गाउँबाट बिस्तारै बग्छ।",
        "हामी हरेक दिन सँगै एउटा नयाँ परियोजनामा काम गर्छौं।",
        "केटाकेटीहरू घरको पछाडिको बगैंचामा खेल्छन्।",
        "साँझमा हामी चिया पिउँछौं र एउटा राम्रो किताब पढ्छौं।",
    ),
    "bn": (
        "নদীটি ছোট গ্রামের মধ্য দিয়ে ধীরে ধীরে বয়ে যায়।",
        "আমরা প্রতিদিন একসাথে একটি নতুন প্রকল্পে কাজ করি।",
        "শিশুরা বাড়ির পিছনের বাগানে খেলা করে।",
        "সন্ধ্যায় আমরা চা পান করি এবং একটি ভালো বই পড়ি।",
    ),
    "gu": (
        "નદી નાના ગામમાંથી ધીમે ધીમે વહે છે.",
        "અમે દરરોજ સાથે મળીને એક નવા પ્રોજેક્ટ પર કામ કરીએ છીએ.",
        "બાળકો ઘરની પાછળના બગીચામાં રમે છે.",
        "સાંજે અમે ચા પીએ છીએ અને એક સારું પુસ્તક વાંચીએ છીએ.",
    ),
    "pa": (
        "ਨਦੀ ਛੋਟੇ ਪਿੰਡ ਵਿੱਚੋਂ ਹੌਲੀ ਹੌਲੀ ਵਗਦੀ ਹੈ।",
        "ਅਸੀਂ ਹਰ ਰੋਜ਼ ਮਿਲ ਕੇ ਇੱਕ ਨਵੇਂ ਪ੍ਰੋਜੈਕਟ ਉੱਤੇ ਕੰਮ ਕਰਦੇ ਹਾਂ।",
        "ਬੱਚੇ ਘਰ ਦੇ ਪਿੱਛੇ ਬਾਗ਼ ਵਿੱਚ ਖੇਡਦੇ ਹਨ।",
        "ਸ਼ਾਮ ਨੂੰ ਅਸੀਂ ਚਾਹ ਪੀਂਦੇ ਹਾਂ ਅਤੇ ਇੱਕ ਚੰਗੀ ਕਿਤਾਬ ਪੜ੍ਹਦੇ ਹਾਂ।",
    ),
    "ta": (
        "ஆறு சிறிய கிராமத்தின் வழியாக மெதுவாக ஓடுகிறது.",
        "நாங்கள் ஒவ்வொரு நாளும் ஒன்றாக ஒரு புதிய திட்டத்தில் வேலை செய்கிறோம்.",
        "குழந்தைகள் வீட்டின் பின்னால் உள்ள தோட்டத்தில் விளையாடுகிறார்கள்.",
        "மாலையில் நாங்கள் தேநீர் குடித்து ஒரு நல்ல புத்தகம் படிக்கிறோம்.",
    ),
    "te": (
        "నది చిన్న గ్రామం గుండా నెమ్మదిగా ప్రవహిస్తుంది.",
        "మేము ప్రతి రోజు కలిసి ఒక కొత్త ప్రాజెక్టుపై పని చేస్తాము.",
        "పిల్లలు ఇంటి వెనుక ఉన్న తోటలో ఆడుకుంటారు.",
        "సాయంత్రం మేము టీ తాగి ఒక మంచి పుస్తకం చదువుతాము.",
    ),
    "kn": (
        "ನದಿ ಸಣ್ಣ ಹಳ್ಳಿಯ ಮೂಲಕ ನಿಧಾನವಾಗಿ ಹರಿಯುತ್ತದೆ.",
        "ನಾವು ಪ್ರತಿದಿನ ಒಟ್ಟಿಗೆ ಒಂದು ಹೊಸ ಯೋಜನೆಯಲ್ಲಿ ಕೆಲಸ ಮಾಡುತ್ತೇವೆ.",
        "ಮಕ್ಕಳು ಮನೆಯ ಹಿಂದಿನ ತೋಟದಲ್ಲಿ ಆಟವಾಡುತ್ತಾರೆ.",
        "ಸಂಜೆ ನಾವು ಚಹಾ ಕುಡಿದು ಒಂದು ಒಳ್ಳೆಯ ಪುಸ್ತಕ ಓದುತ್ತೇವೆ.",
    ),
    "th": (
        "แม่น้ำไหลผ่านหมู่บ้านเล็กๆ อย่างช้าๆ",
        "เราทำงานร่วมกันในโครงการใหม่ทุกวัน",
        "เด็กๆ เล่นอยู่ในสวนหลังบ้าน",
        "ตอนเย็นเราดื่มชาและอ่านหนังสือดีๆ",
    ),
    "ko": (
        "강이 작은 마을을 천천히 흐릅니다.",
        "우리는 매일 함께 새로운 프로젝트를 진행합니다.",
        "아이들은 집 뒤의 정원에서 놉니다.",
        "저녁에는 차를 마시고 좋은 책을 읽습니다.",
    ),
}

_MAX_ROUNDS = 60
_LANGUAGE_KINDS = ("response_language", "english_capital", "english_lowercase")
_ENDINGS = ".!?।۔"


@dataclass
class _Range:
    """Integer range lo <= n < hi; None means unbounded."""

    lo: int | None = None
    hi: int | None = None

    def add(self, relation: str, value: int) -> None:
        if relation == "at least":
            self.lo = value if self.lo is None else max(self.lo, value)
        else:
            self.hi = value if self.hi is None else min(self.hi, value)

    @property
    def empty(self) -> bool:
        return self.lo is not None and self.hi is not None and self.lo >= self.hi

    def contains(self, n: int) -> bool:
        return (self.lo is None or n >= self.lo) and (self.hi is None or n < self.hi)


@dataclass
class _Spec:
    prompt: str | None = None
    language: str = "en"
    case: str | None = None  # "upper" or "lower"
    json: bool = False
    quotation: bool = False
    two_responses: bool = False
    title: bool = False
    constrained: bool = False
    end_phrase: str | None = None
    postscript: str | None = None
    placeholders: int = 0
    highlights: int = 0
    bullets: int = 0
    sections: tuple[str, int] | None = None
    star_paragraphs: int | None = None
    nth: tuple[int, int, str] | None = None  # num_paragraphs, nth_paragraph, first_word
    required: list[str] = field(default_factory=list)
    forbidden: list[str] = field(default_factory=list)
    keywords: dict[str, _Range] = field(default_factory=dict)
    letters: dict[str, _Range] = field(default_factory=dict)
    capitals: _Range = field(default_factory=_Range)
    sentences: _Range = field(default_factory=_Range)
    words: _Range = field(default_factory=_Range)


def _spec(record: dict) -> _Spec:
    spec = _Spec()
    for instruction in instructions_of(record):
        kind, args = instruction.id.split(":", 1)[1], instruction.kwargs
        if kind == "repeat_prompt":
            spec.prompt = args["prompt_to_repeat"].strip()
        elif kind == "response_language":
            spec.language = args["language"]
        elif kind in ("english_capital", "english_lowercase"):
            spec.case = "upper" if kind == "english_capital" else "lower"
        elif kind in ("json_format", "quotation", "two_responses", "title"):
            setattr(spec, kind.replace("_format", ""), True)
        elif kind == "constrained_response":
            spec.constrained = True
        elif kind == "end_checker":
            spec.end_phrase = args["end_phrase"].strip()
        elif kind == "postscript":
            spec.postscript = args["postscript_marker"].strip()
        elif kind == "number_placeholders":
            spec.placeholders = max(spec.placeholders, args["num_placeholders"])
        elif kind == "number_highlighted_sections":
            spec.highlights = max(spec.highlights, args["num_highlights"])
        elif kind == "number_bullet_lists":
            spec.bullets = args["num_bullets"]
        elif kind == "multiple_sections":
            spec.sections = (args["section_spliter"].strip(), args["num_sections"])
        elif kind == "number_paragraphs":
            spec.star_paragraphs = args["num_paragraphs"]
        elif kind == "nth_paragraph_first_word":
            spec.nth = (args["num_paragraphs"], args["nth_paragraph"], args["first_word"].lower())
        elif kind == "existence":
            spec.required.extend(args["keywords"])
        elif kind == "forbidden_words":
            spec.forbidden.extend(args["forbidden_words"])
        elif kind == "frequency":
            spec.keywords.setdefault(args["keyword"].strip().lower(), _Range()).add(
                args["relation"], args["frequency"]
            )
        elif kind == "letter_frequency":
            spec.letters.setdefault(args["letter"].strip().lower(), _Range()).add(
                args["let_relation"], args["let_frequency"]
            )
        elif kind == "capital_word_frequency":
            spec.capitals.add(args["capital_relation"], args["capital_frequency"])
        elif kind == "number_sentences":
            spec.sentences.add(args["relation"], args["num_sentences"])
        elif kind == "number_words":
            spec.words.add(args["relation"], args["num_words"])
    return spec


def _target(r: _Range, margin: int) -> int | None:
    """A value well inside the range: the middle when bounded on both sides, else a small margin away
    from the bound (so that a slightly different counter would still agree)."""
    if r.lo is not None and r.hi is not None:
        return (r.lo + r.hi - 1) // 2
    if r.lo is not None:
        return r.lo + margin
    if r.hi is not None:
        return max(1, min(r.hi - 1, r.hi - 1 - margin))
    return None


def _allowed(word: str, spec: _Spec) -> bool:
    """Whether a filler word is safe: it cannot break a "less than", "forbidden" or section instruction
    (keywords to count are left out too, so that their counts are exactly the insertions)."""
    if word in {w.lower() for w in spec.forbidden}:
        return False
    if any(k.lower() in word for k in [*spec.keywords, *spec.required]):
        return False
    if any(letter in word for letter, r in spec.letters.items() if r.hi is not None):
        return False
    return not (spec.sections and spec.sections[0].lower() == word)


def _vocabulary(spec: _Spec) -> list[str]:
    return list(dict.fromkeys(w for w in _VOCABULARY.split() if _allowed(w, spec)))


@dataclass
class _Plan:
    lengths: list[int]  # words per filler sentence (English only)
    bullets: int
    keywords: dict[str, int]
    letters: dict[str, int]
    capitals: int
    highlights: int
    placeholders: int


class _Words:
    """Deterministic stream of filler words."""

    def __init__(self, vocabulary: list[str]):
        self.vocabulary = vocabulary
        self.index = 0

    def take(self) -> str:
        word = self.vocabulary[(self.index * 7) % len(self.vocabulary)]
        self.index += 1
        return word


def _rich_words(vocabulary: list[str], letter: str) -> list[str]:
    """A few words dense in ``letter`` (for letters that are not alphanumeric: the letter glued to a word)."""
    if not letter.isalnum():
        return [letter + word for word in vocabulary[:4]]
    candidates = [w for w in vocabulary if letter in w] or [letter * 3]
    return sorted(candidates, key=lambda w: (-w.count(letter) / len(w), len(w)))[:4]


def _inserts(spec: _Spec, plan: _Plan, vocabulary: list[str], words: _Words) -> list[str]:
    tokens = list(spec.required)
    for keyword, count in plan.keywords.items():
        tokens += [keyword] * count
    for letter, count in plan.letters.items():
        if letter != "!":
            rich = _rich_words(vocabulary, letter)
            tokens += [rich[i % len(rich)] for i in range(count)]
    tokens += [words.take().upper() for _ in range(plan.capitals)]
    tokens += [f"*{words.take()} {words.take()}*" for _ in range(plan.highlights)]
    holders = [w for w in _PLACEHOLDERS if _allowed(w, spec)] or vocabulary
    tokens += [f"[{holders[i % len(holders)]}{i // len(holders) or ''}]" for i in range(plan.placeholders)]
    return tokens


def _sentences(spec: _Spec, plan: _Plan, vocabulary: list[str]) -> tuple[list[str], list[str]]:
    """Regular filler sentences (with the insertions spread over them) and bullet items."""
    words = _Words(vocabulary)
    inserts = _inserts(spec, plan, vocabulary, words)
    count = len(plan.lengths)
    bank = LANGUAGE_SENTENCES.get(spec.language)
    exclaims = plan.letters.get("!", 0)
    regular = []
    for i, length in enumerate(plan.lengths):
        extra = inserts[i::count]
        if bank:
            base = bank[i % len(bank)]
            stem, end = (base[:-1], base[-1]) if base[-1] in _ENDINGS else (base, "")
            sentence = " ".join([stem, *extra]) + end
        else:
            body = [words.take() for _ in range(length)]
            body[1:1] = extra
            sentence = " ".join(body)
            sentence = sentence[0].upper() + sentence[1:]
            sentence += "!" if i < exclaims else "."
        regular.append(sentence)
    if exclaims > count and regular:
        regular[-1] += "!" * (exclaims - count)
    if bank:
        items = [bank[(i + 1) % len(bank)] for i in range(plan.bullets)]
    else:
        items = [" ".join(words.take() for _ in range(4)).capitalize() + "." for _ in range(plan.bullets)]
    return regular, items


def _title(spec: _Spec, vocabulary: list[str]) -> str:
    bank = LANGUAGE_SENTENCES.get(spec.language)
    if bank:
        return "<<" + " ".join(bank[0].rstrip(_ENDINGS).split()[:3]) + ">>"
    return "<<" + " ".join(w.capitalize() for w in vocabulary[1:4]) + ">>"


def _split(items: list[str], groups: int) -> list[list[str]]:
    groups = max(1, groups)
    size, extra = divmod(len(items), groups)
    out, start = [], 0
    for g in range(groups):
        end = start + size + (1 if g < extra else 0)
        out.append(items[start:end])
        start = end
    return out


def _document(spec: _Spec, regular: list[str], items: list[str], first: bool, last: bool, title: str) -> str:
    """One response: [prompt] [title] [constrained answer] body [P.S.] [end phrase]."""
    head = []
    if first and spec.prompt:
        head.append(spec.prompt)
    if spec.title:
        head.append(title)
    if spec.constrained:
        head.append("My answer is yes.")
    body = list(regular)
    tail = ""
    if last and spec.postscript:
        tail = f"{spec.postscript} {body.pop()}" if len(body) > 1 else spec.postscript
    if last and spec.end_phrase:
        tail = f"{tail} {spec.end_phrase}".strip()
    bullets = [f"* {item}" for item in items]

    if spec.star_paragraphs or spec.nth:
        groups = spec.star_paragraphs or spec.nth[0]
        paragraphs = [[" ".join(g)] if g else [] for g in _split(body, groups)]
        if spec.nth:
            n = spec.nth[1] - 1
            if 0 <= n < len(paragraphs) and paragraphs[n]:
                rest = paragraphs[n][0]
                paragraphs[n][0] = f"{spec.nth[2].capitalize()} {rest[:1].lower()}{rest[1:]}"
        if bullets:
            paragraphs[-1 if len(paragraphs) > 1 else 0] += bullets
        paragraphs[0] = head + paragraphs[0]
        if tail:
            paragraphs[-1].append(tail)
        separator = "\n\n***\n\n" if spec.star_paragraphs else "\n\n"
        return separator.join("\n".join(p) for p in paragraphs)

    blocks = ["\n".join(head)] if head else []
    if spec.sections:
        splitter, count = spec.sections
        for i, group in enumerate(_split(body, count), start=1):
            lines = [f"{splitter} {i}", " ".join(group)]
            if i == 1 and bullets:
                lines += bullets
            blocks.append("\n".join(line for line in lines if line))
    else:
        groups = _split(body, (len(body) + 3) // 4)
        blocks.append(" ".join(groups[0]))
        if bullets:
            blocks.append("\n".join(bullets))
        blocks += [" ".join(g) for g in groups[1:]]
    if tail:
        blocks.append(tail)
    return "\n\n".join(b for b in blocks if b)


def _render(spec: _Spec, plan: _Plan, vocabulary: list[str]) -> str:
    regular, items = _sentences(spec, plan, vocabulary)
    title = _title(spec, vocabulary)
    if spec.two_responses:
        half = max(1, len(regular) // 2)
        text = "\n\n******\n\n".join(
            [
                _document(spec, regular[:half], items, first=True, last=False, title=title),
                _document(spec, regular[half:], [], first=False, last=True, title=title),
            ]
        )
    else:
        text = _document(spec, regular, items, first=True, last=True, title=title)
    if spec.case == "upper":
        text = text.upper()
    elif spec.case == "lower":
        text = text.lower()
    if spec.json:
        text = json.dumps({"response": text}, ensure_ascii=False, indent=2)
    if spec.quotation:
        text = f'"{text}"'
    return text


def _fix_count(current: int, measured: int, wanted: _Range, target: int | None) -> int | None:
    """New insertion count so that the measured total reaches ``target`` (or stays in range); None when
    the fixed part of the response alone is already out of range."""
    if wanted.contains(measured):
        return current
    goal = target if target is not None else (wanted.lo or 0)
    new = current + goal - measured
    return new if new >= 0 else None


def _min_sentences(spec: _Spec) -> int:
    groups = max(
        spec.star_paragraphs or 1, spec.nth[0] if spec.nth else 1, spec.sections[1] if spec.sections else 1
    )
    return groups + (1 if spec.postscript else 0) + (1 if spec.two_responses else 0)


def _adjust(spec: _Spec, plan: _Plan, text: str, broken: list[str]) -> bool:
    """Move the plan towards the spec from what ``text`` measures; False when no move can help."""
    changed = False
    minimum = _min_sentences(spec)
    english = spec.language not in LANGUAGE_SENTENCES

    def resize(delta: int) -> None:
        if delta > 0:
            plan.lengths += [8] * delta
        else:
            del plan.lengths[max(minimum, len(plan.lengths) + delta) :]

    sentence_target = _target(spec.sentences, 1)
    measured = count_sentences(text)
    if sentence_target is not None and not spec.sentences.contains(measured):
        before = len(plan.lengths)
        resize(sentence_target - measured)
        changed |= len(plan.lengths) != before
    word_target = _target(spec.words, max(2, (spec.words.lo or 0) // 20))
    measured = count_words(text)
    if english and word_target is not None and not spec.words.contains(measured):
        total = sum(plan.lengths) + word_target - measured
        count = (
            len(plan.lengths) if sentence_target is not None else max(minimum, min(total, round(total / 10)))
        )
        if count < 1 or total < count:
            return False
        lengths = [len(group) for group in _split([1] * total, count)]
        changed |= lengths != plan.lengths
        plan.lengths = lengths
    for keyword, wanted in spec.keywords.items():
        new = _fix_count(
            plan.keywords.get(keyword, 0), keyword_occurrences(keyword, text), wanted, _target(wanted, 0)
        )
        if new is None:
            return False
        changed |= new != plan.keywords.get(keyword, 0)
        plan.keywords[keyword] = new
    for letter, wanted in spec.letters.items():
        new = _fix_count(plan.letters.get(letter, 0), text.lower().count(letter), wanted, _target(wanted, 0))
        if new is None:
            return False
        changed |= new != plan.letters.get(letter, 0)
        plan.letters[letter] = new
    new = _fix_count(plan.capitals, count_capital_words(text), spec.capitals, _target(spec.capitals, 0))
    if new is None:
        return False
    changed |= new != plan.capitals
    plan.capitals = new
    if count_highlights(text) < spec.highlights:
        plan.highlights += spec.highlights - count_highlights(text)
        changed = True
    if count_placeholders(text) < spec.placeholders:
        plan.placeholders += spec.placeholders - count_placeholders(text)
        changed = True
    bullets = count_bullets(text)
    if spec.bullets and bullets != spec.bullets:
        plan.bullets += spec.bullets - bullets
        if plan.bullets < 0:
            return False
        changed = True
    language_only = all(i.split(":")[1] in _LANGUAGE_KINDS for i in broken)
    if (
        not changed
        and language_only
        and len(plan.lengths) < 100
        and sentence_target is None
        and word_target is None
    ):
        plan.lengths += [8] * 3  # more text for langdetect to judge
        changed = True
    return changed


def _attempt(record: dict) -> tuple[str | None, str]:
    spec = _spec(record)
    ranges = {"capital words": spec.capitals, "sentences": spec.sentences, "words": spec.words}
    ranges |= {f"keyword {k!r}": r for k, r in spec.keywords.items()}
    ranges |= {f"letter {k!r}": r for k, r in spec.letters.items()}
    empty = [name for name, r in ranges.items() if r.empty]
    if empty:
        return None, f"contradictory ranges for {', '.join(empty)}"
    vocabulary = _vocabulary(spec)
    if len(vocabulary) < 20:
        return None, "too few filler words avoid the forbidden words and letters"
    start = max(_min_sentences(spec), _target(spec.sentences, 1) or 5)
    plan = _Plan(
        lengths=[8] * start,
        bullets=spec.bullets,
        keywords={k: r.lo or 0 for k, r in spec.keywords.items()},
        letters={k: 0 for k in spec.letters},
        capitals=spec.capitals.lo or 0,
        highlights=spec.highlights,
        placeholders=spec.placeholders,
    )
    broken: list[str] = []
    for _ in range(_MAX_ROUNDS):
        text = _render(spec, plan, vocabulary)
        result = evaluate(record, text)
        if result.prompt_strict:
            return text, ""
        broken = [i for i, ok in zip(result.instruction_id_list, result.inst_strict, strict=True) if not ok]
        if not _adjust(spec, plan, text, broken):
            return None, f"no adjustment repairs {', '.join(broken)}"
    return None, f"not converged after {_MAX_ROUNDS} rounds; still broken: {', '.join(broken)}"


def oracle_response(record: dict) -> str | None:
    """A response that follows every instruction of ``record`` strictly, or None (see module doc)."""
    return _attempt(record)[0]


def oracle_gap(record: dict) -> str | None:
    """Why ``oracle_response`` gives None for ``record`` (None when it gives a response)."""
    text, reason = _attempt(record)
    return None if text is not None else reason
