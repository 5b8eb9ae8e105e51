"""Cited text: the one parser of `[n]` markers, and whether a sentence is supported by the passage it cites.

Shared by the extractive answerer (streaming its own answer), the LLM citation guard and the eval metrics.
A sentence is supported by a source when every number it states appears in the source and most of its
content words (stemmed) do too. Cheap, deterministic, and strict about numbers, which is where a small
model's inventions do the most harm (hours, ages, dates).
"""

from __future__ import annotations

import re

from .text import BARE_LABEL, numbers, split_sentences, terms

SUPPORT_THRESHOLD = 0.75
#: One marker: [3], or several numbers in one bracket: [1, 2].
MARKER = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
_MARKERS_AFTER_STOP = re.compile(r"([.!?])((?:\s*\[\d+(?:\s*,\s*\d+)*\])+)")
_MARKER_GROUP_END = re.compile(r"(?:\s*\[\d+(?:\s*,\s*\d+)*\])+[.!?]?(?=\s|$)")


def markers_in(text: str) -> list[int]:
    """Every source number the text's markers name, in order ("[1, 2] ... [3]" -> [1, 2, 3])."""
    return [int(n) for group in MARKER.findall(text) for n in group.split(",")]


def split_cited(text: str) -> list[tuple[str, list[int]]]:
    """Split cited text into sentences, each with the source numbers its markers name.

    A group of markers ends a sentence (list items and table rows carry no full stop); markers may come
    before or after the full stop ("... hours [1]." or "... hours. [1]"); a list item's number stays with its
    item ("2. A curriculum ... [1]"); a sentence without markers gets an empty list."""
    text = _MARKERS_AFTER_STOP.sub(lambda m: f"{m.group(2)}{m.group(1)}", text.strip())
    segments, start = [], 0
    for group in _MARKER_GROUP_END.finditer(text):
        segments.append(text[start:group.end()])
        start = group.end()
    segments.append(text[start:])
    out, label = [], ""
    for sentence in (s for segment in segments for s in split_sentences(segment)):
        if BARE_LABEL.match(sentence):  # "2." belongs to the item it numbers
            label = sentence.strip() + " "
            continue
        sentence, label = label + sentence, ""
        markers = markers_in(sentence)
        clean = re.sub(r"\s+([.,;:!?])", r"\1", MARKER.sub("", sentence)).strip()
        clean = re.sub(r"\s{2,}", " ", clean)
        if clean.strip(" .") or markers:
            out.append((clean, markers))
    return out


def cited_text(sentence: str, numbers_: list[int]) -> str:
    """A sentence followed by its markers, as answers show it: "The rule applies. [1]"."""
    return f"{sentence} " + "".join(f"[{n}]" for n in numbers_)


def sentence_support(sentence: str, source: str) -> float:
    """0 when a number of the sentence is missing from the source, else the share of the sentence's
    content words (stemmed) that the source contains."""
    if not numbers(sentence) <= numbers(source):
        return 0.0
    words = terms(sentence)
    if not words:
        return 1.0
    available = set(terms(source))
    return sum(w in available for w in words) / len(words)
