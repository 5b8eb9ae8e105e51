"""Is a sentence supported by the passage it cites? Shared by the LLM citation guard and the eval metric.

A sentence is supported by a source when every number it states appears in the source and most of its
content words (lightly stemmed) do too. Cheap, deterministic, and strict about numbers, which is where
a small model's inventions do the most harm (hours, ages, dates).
"""

from __future__ import annotations

import re

from .text import numbers, split_sentences, terms

SUPPORT_THRESHOLD = 0.75
MARKER = re.compile(r"\[(\d+)\]")
_MARKERS_AFTER_STOP = re.compile(r"([.!?])((?:\s*\[\d+\])+)")


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


def split_cited(text: str) -> list[tuple[str, list[int]]]:
    """Split generated text into sentences, each with the [n] markers it carries.

    Markers may come before or after the sentence's full stop ("... hours [1]." or "... hours. [1]")."""
    text = _MARKERS_AFTER_STOP.sub(lambda m: f"{m.group(2)}{m.group(1)}", text.strip())
    out = []
    for sentence in split_sentences(text):
        markers = [int(n) for n in MARKER.findall(sentence)]
        clean = re.sub(r"\s+([.,;:!?])", r"\1", MARKER.sub("", sentence)).strip()
        clean = re.sub(r"\s{2,}", " ", clean)
        if clean.strip(" .") or markers:
            out.append((clean, markers))
    return out
