"""Small text utilities shared by chunking, retrieval, answering and the eval metrics."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import snowballstemmer

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


_STEMMER = snowballstemmer.stemmer("english")


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """Snowball (Porter 2) stem, so that 'supervised' matches 'supervise' and 'notices' matches 'notice'."""
    return _STEMMER.stemWord(word)


def terms(text: str) -> list[str]:
    """Lexical terms: content words, lightly stemmed. BM25, the gate, the answerer and the guard share them."""
    out = []
    for word in content_words(text):
        stemmed = stem(word)
        if stemmed not in STOPWORDS:
            out.append(stemmed)
    return out


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
