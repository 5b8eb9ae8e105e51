"""Vocabulary bridging: the several names one thing goes by, so a question and a passage meet.

- Acronyms and their long forms, mined from each document at ingest ("Career Development Experience (CDE)",
  found with the Schwartz–Hearst algorithm) and from the staff-editable glossary (`ingest/glossary.toml`).
  A question using either form is matched with both, by BM25, the abstention gate and the answerer.
- Misspellings: a question word the corpus never uses is matched to the closest word it does use, when one
  is close enough (rapidfuzz edit distance), so "aprenticeship" finds "apprenticeship".

Times, ages, short units and numbers in words are made canonical earlier, in `text.canonical`.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from .text import STOPWORDS, terms

#: A corpus word this close to an unknown question word (normalized edit similarity) stands in for it.
TYPO_SIMILARITY = 0.8
#: Words shorter than this are not corrected: short words are too often other short words.
TYPO_MIN_LENGTH = 5

_PAREN = re.compile(r"\(([A-Za-z][A-Za-z0-9&/.\-]{1,11})\)")


class GlossaryError(ValueError):
    """The glossary file cannot be read; the message says why."""


def find_acronyms(text: str) -> dict[str, str]:
    """Acronyms defined in `text` as "long form (SHORT)", with their long forms (Schwartz & Hearst, 2003).

    The long form is the shortest run of words before the parenthesis whose letters contain the acronym's
    letters in order, the first letter starting a word."""
    found: dict[str, str] = {}
    for match in _PAREN.finditer(text):
        short = match.group(1).rstrip(".")
        letters = [c.lower() for c in short if c.isalnum()]
        if len(letters) < 2 or not any(c.isupper() for c in short) or not short[0].isalnum():
            continue
        before = re.split(r"\s+", text[max(0, match.start() - 200): match.start()].strip())
        window = before[-min(len(letters) + 5, len(letters) * 2):]
        long_form = _best_long_form(letters, window)
        if long_form and long_form.lower() != short.lower():
            found.setdefault(short, long_form)
    return found


def _best_long_form(letters: list[str], words: list[str]) -> str:
    """Schwartz–Hearst: match the acronym's letters right to left in the words, the first at a word start."""
    text = " ".join(words)
    s, t = len(letters) - 1, len(text) - 1
    while s >= 0:
        c = letters[s]
        while t >= 0 and (text[t].lower() != c or (s == 0 and t > 0 and text[t - 1].isalnum())):
            t -= 1
        if t < 0:
            return ""
        s -= 1
        t -= 1
    start = text.rfind(" ", 0, t + 1) + 1
    long_form = text[start:].strip(" ,;:-\u2013\u2014\"'(")
    if len(long_form.split()) > len(letters) + 2 or not re.search(r"[A-Za-z]{3}", long_form):
        return ""
    return long_form


def load_glossary(path: Path) -> list[tuple[str, str]]:
    """(short, long) pairs from the glossary; a missing file is an empty glossary."""
    if not path.exists():
        return []
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError) as error:
        raise GlossaryError(f"{path}: cannot be read ({error})") from None
    pairs = []
    for n, entry in enumerate(data.get("terms", []), start=1):
        short, longs = entry.get("short"), entry.get("long")
        longs = [longs] if isinstance(longs, str) else longs
        if not isinstance(short, str) or not short.strip() or not isinstance(longs, list) or not longs \
                or not all(isinstance(x, str) and x.strip() for x in longs):
            raise GlossaryError(f"{path}: term {n} needs short = \"...\" and long = \"...\" (or a list)")
        pairs += [(short.strip(), long.strip()) for long in longs]
    return pairs


@dataclass(frozen=True)
class Concept:
    """One thing the question asks about, with every way of writing it (each a tuple of terms)."""

    forms: tuple[tuple[str, ...], ...]
    asked: tuple[str, ...]


class Lexicon:
    """Alias groups (acronym ↔ long form, glossary synonyms) and the corpus vocabulary, for query terms."""

    def __init__(self, pairs: Iterable[tuple[str, str]], vocabulary: Iterable[str]) -> None:
        self.vocabulary = frozenset(vocabulary)
        self._forms: dict[tuple[str, ...], set[tuple[str, ...]]] = {}
        for short, long in pairs:
            a, b = tuple(terms(short)), tuple(terms(long))
            if not a or not b or a == b:
                continue
            group = self._forms.get(a, {a}) | self._forms.get(b, {b})
            for form in list(group):
                group |= self._forms.get(form, set())
            for form in group:
                self._forms[form] = group
        self._longest = max((len(f) for f in self._forms), default=0)
        self._by_initial: dict[str, list[str]] = {}
        for word in sorted(self.vocabulary):
            self._by_initial.setdefault(word[:1], []).append(word)
        self._corrections: dict[str, str | None] = {}

    def concepts(self, query_terms: list[str]) -> list[Concept]:
        """The query's terms grouped into concepts: an aliased phrase is one concept with all its forms; a
        word the corpus never uses gets its closest corpus word as another form."""
        out: list[Concept] = []
        i = 0
        while i < len(query_terms):
            for size in range(min(self._longest, len(query_terms) - i), 0, -1):
                phrase = tuple(query_terms[i:i + size])
                group = self._forms.get(phrase)
                if group:
                    out.append(Concept(tuple(sorted(group, key=lambda f: (f != phrase, f))), phrase))
                    i += size
                    break
            else:
                term = query_terms[i]
                forms = [(term,)]
                corrected = self.correct(term)
                if corrected:
                    forms.append((corrected,))
                out.append(Concept(tuple(forms), (term,)))
                i += 1
        return out

    def correct(self, term: str) -> str | None:
        """The corpus word closest to a word the corpus never uses, when close enough; else None."""
        if term in self.vocabulary or len(term) < TYPO_MIN_LENGTH or not term.isalpha() or term in STOPWORDS:
            return None
        if term not in self._corrections:
            candidates = [w for w in self._by_initial.get(term[0], []) if abs(len(w) - len(term)) <= 2]
            found = process.extractOne(term, candidates, scorer=Levenshtein.normalized_similarity,
                                       score_cutoff=TYPO_SIMILARITY)
            self._corrections[term] = found[0] if found else None
        return self._corrections[term]

    def expanded_terms(self, query_terms: list[str]) -> list[str]:
        """The query's terms and every other form of its concepts, for lexical search."""
        out = list(query_terms)
        for concept in self.concepts(query_terms):
            for form in concept.forms:
                out += [t for t in form if t not in out]
        return out
