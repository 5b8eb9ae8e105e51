"""Small text utilities shared by chunking, retrieval, answering and the eval metrics."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import Stemmer

ABBREVIATIONS = {
    "e.g", "i.e", "etc", "vs", "gov", "sen", "rep", "st", "no", "nos", "ill", "adm", "reg", "stat", "dr", "mr",
    "mrs", "ms", "jr", "sr", "inc", "co", "corp", "dept", "u.s", "u.s.a", "a.m", "p.m", "approx", "sec", "art",
    "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "fig", "p", "pp",
}

_BOUNDARY = re.compile(r"(?<=[.!?])[\"'\u201d\u2019)\]]*\s+(?=[\"'\u201c\u2018(\[]?[A-Z0-9])")

STOPWORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from further had has have having
he her here hers herself him himself his how i if in into is it its itself just me more most my myself no
nor not now of off on once only or other our ours ourselves out over own same she should so some such than
that the their theirs them themselves then there these they this those through to too under until up very
was we were what when where which while who whom why will with would you your yours yourself yourselves may
might must shall us let lets get gets got tell say says said according does do did done please want wants
need know kind sort thing things way ways make makes made use used using one ones much many well also still
yet
""".split())


def normalize(text: str) -> str:
    """Lower-case, Unicode-folded, punctuation to spaces (hyphens and slashes too): for matching text."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text)
    text = re.sub(r"[^a-z0-9$%.]+", " ", text)
    text = re.sub(r"(?<!\d)\.|\.(?!\d)", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def tokens(text: str) -> list[str]:
    return normalize(text).split()


def content_words(text: str) -> list[str]:
    """Tokens that carry meaning: no stopwords, no one-letter words (numbers are kept)."""
    return [t for t in tokens(text) if t not in STOPWORDS and (len(t) > 1 or t.isdigit())]


def numbers(text: str) -> set[str]:
    """The numbers a text states (1,000 and 1000 are the same number)."""
    return set(re.findall(r"\d+(?:\.\d+)?", re.sub(r"(?<=\d),(?=\d{3})", "", text)))


_STEMMER = Stemmer.Stemmer("english")


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """Snowball (Porter 2) stem, so that 'supervised' matches 'supervise' and 'notices' matches 'notice'."""
    return _STEMMER.stemWord(word)


_NUMBER_WORDS = {
    "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
    "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17,
    "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100,
}
_TENS = "twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety"
_UNITS = "one|two|three|four|five|six|seven|eight|nine"
#: Ways of writing the same quantity, rewritten to one form before terms are taken (order matters).
_CANONICAL = [
    # times of day: 9 pm, 9pm, 9 p.m., 9:00 p.m. -> "9 9pm"
    (re.compile(r"\b(\d{1,2})(?::00)?\s*([ap])\.?\s?m\b\.?", re.IGNORECASE),
     lambda m: f"{m.group(1)} {m.group(1)}{m.group(2).lower()}m"),
    # ages: 15-year-old(s), 15 year old, 15 yr old, 15yo, 15 y/o, 15-yr-olds -> "15 year old"
    (re.compile(r"\b(\d{1,2})\s*-?\s*(?:years?|yrs?)\s*-?\s*olds?\b", re.IGNORECASE), r"\1 year old"),
    (re.compile(r"\b(\d{1,2})\s*(?:yo|y/o|y\.o\.)(?=\W|$)", re.IGNORECASE), r"\1 year old"),
    # units written short after a number: 18 hrs, 30 min, 2 wks, 3 yrs
    (re.compile(r"\b(\d+)\s*(?:hrs?)\b", re.IGNORECASE), r"\1 hours"),
    (re.compile(r"\b(\d+)\s*(?:mins?)\b", re.IGNORECASE), r"\1 minutes"),
    (re.compile(r"\b(\d+)\s*(?:wks?)\b", re.IGNORECASE), r"\1 weeks"),
    (re.compile(r"\b(\d+)\s*(?:yrs?)\b", re.IGNORECASE), r"\1 years"),
    # the same words alone
    (re.compile(r"\bhrs?\b", re.IGNORECASE), "hours"),
    (re.compile(r"\byrs?\b", re.IGNORECASE), "years"),
    (re.compile(r"\bwks?\b", re.IGNORECASE), "weeks"),
    (re.compile(r"\bmax\b", re.IGNORECASE), "maximum"),
    # numbers in words: sixty -> 60, twenty-one -> 21
    (re.compile(rf"\b({_TENS})[\s-]({_UNITS})\b", re.IGNORECASE),
     lambda m: str(_NUMBER_WORDS[m.group(1).lower()] + (_NUMBER_WORDS.get(m.group(2).lower()) or 1))),
    (re.compile(r"\b(" + "|".join(_NUMBER_WORDS) + r")\b", re.IGNORECASE),
     lambda m: str(_NUMBER_WORDS[m.group(1).lower()])),
]


@lru_cache(maxsize=50_000)
def canonical(text: str) -> str:
    """One spelling for things people write several ways: times of day, ages, short units, numbers in words.

    Shared by retrieval, the abstention gate and the answerer through `terms`, so "9 pm" meets "9:00 p.m."
    and "15 yr old" meets "15-year-olds"."""
    for pattern, replacement in _CANONICAL:
        text = pattern.sub(replacement, text)
    return text


def terms(text: str) -> list[str]:
    """Lexical terms: content words of the canonical text, stemmed. BM25, the gate, the answerer and the
    guard share them."""
    return list(_terms(text))


@lru_cache(maxsize=100_000)
def _terms(text: str) -> tuple[str, ...]:
    """Cached: the same sentences come back question after question."""
    out = []
    for word in content_words(canonical(text)):
        stemmed = stem(word)
        if stemmed not in STOPWORDS:
            out.append(stemmed)
    return tuple(out)


#: A list item's number or letter ("2.", "(b)", "iv)"); `split_sentences` leaves it a piece of its own.
LABEL = r"\(?(\d+|[ivx]+|[a-z])[.)]"
BARE_LABEL = re.compile(rf"^\s*{LABEL}\s*$", re.IGNORECASE)


def split_sentences(text: str) -> list[str]:
    """Split prose into sentences, keeping abbreviations (e.g., Gov., U.S., a.m.) inside their sentence."""
    text = re.sub(r"\s+", " ", text).strip()
    if not text:
        return []
    pieces: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        candidate = text[start : match.start()].rstrip()
        last_word = re.split(r"[\s(]", candidate)[-1].rstrip(".!?\"')\u201d\u2019]").lower()
        if last_word in ABBREVIATIONS or re.search(r"(?:^|[\s(])[A-Z]\.$", candidate):
            continue
        pieces.append(text[start : match.end()].strip())
        start = match.end()
    pieces.append(text[start:].strip())
    merged: list[str] = []
    for piece in pieces:
        if merged and len(piece) < 12:
            merged[-1] = f"{merged[-1]} {piece}"
        else:
            merged.append(piece)
    return [p for p in merged if p]
