"""The citation guard's decisions on hand-made generations (the real-model tests are in e2e)."""

import numpy as np

from wbl_assistant.answering import AnswerContext
from wbl_assistant.backends import CitationGuard, LLMBackend
from wbl_assistant.config import Settings
from wbl_assistant.gate import Evidence
from wbl_assistant.grounding import split_cited
from wbl_assistant.retrieval import Retrieval, RetrievedChunk, SentenceRecord

A = {"doc_id": "doc-a", "title": "Model", "edition": "2024", "page": 3, "page_end": 3}
B = {"doc_id": "doc-b", "title": "Manual", "edition": "2022", "page": 9, "page_end": 10}
CHUNKS = [
    RetrievedChunk("doc-a:1", "The micro-internship was paid, virtual, six weeks long and 30 hours in total.", A,
                   0.1, 0.8, 1.0, 1),
    RetrievedChunk("doc-b:1", "Minors must be supervised on site at all times by an adult aged 21 or older.", B,
                   0.1, 0.7, 1.0, 2),
]


def context():
    sentences = {c.chunk_id: (SentenceRecord(c.text, c.chunk_id, c.page, "sentence", 0, np.zeros(3)),)
                 for c in CHUNKS}
    retrieval = Retrieval("q", np.zeros(3), CHUNKS, snapshot=None, ranking=CHUNKS)
    return AnswerContext("q", "q", [], retrieval, sentences, Evidence({}, 0.9))


def run(text, mode="drop"):
    guard = CitationGuard(context(), mode)
    for sentence, markers in split_cited(text):
        guard.check(sentence, markers)
    return guard


def test_supported_cited_sentences_are_kept_with_their_page():
    guard = run("The micro-internship lasted six weeks and 30 hours [1]. An adult aged 21 or older "
                "supervises minors on site [2].")
    assert [(s, c.doc_id, page) for s, c, page in guard.result.kept] == [
        ("The micro-internship lasted six weeks and 30 hours.", "doc-a", 3),
        ("An adult aged 21 or older supervises minors on site.", "doc-b", 9)]
    assert guard.result.dropped == []


def test_a_wrong_number_an_invented_claim_a_missing_or_bad_citation_are_dropped():
    guard = run("The micro-internship lasted 40 hours [1]. It was funded by a federal grant in 2019 [1]. "
                "Minors need supervision by an adult aged 21 or older. Interns were paid [7].")
    reasons = [d["reason"] for d in guard.result.dropped]
    assert len(guard.result.kept) == 0 and len(reasons) == 4
    assert reasons[0].startswith("not supported") and reasons[1].startswith("not supported")
    assert reasons[2] == "no citation" and reasons[3] == "cites no given source"


def test_fallback_to_extractive_when_nothing_survives_and_mark_mode():
    backend = LLMBackend(Settings(), chat_model=None)
    guard = run("Interns earned college credit [1].")
    composed = backend._finish(context(), guard)
    assert composed.guard["fallback"] and composed.guard["dropped"] == 1

    marked = run("The micro-internship was 30 hours [1]. Interns earned college credit [1].", mode="mark")
    composed = LLMBackend(Settings(guard_mode="mark"), chat_model=None)._finish(context(), marked)
    assert composed.text.startswith("The micro-internship was 30 hours. [1]")
    assert composed.text.endswith("Interns earned college credit. [not supported by the cited source]")
