"""The extractive answerer's sentence selection on hand-made candidates (vectors chosen so the numbers are known)."""

import numpy as np

from wbl_assistant.answering import AnswerContext, Candidate, select_sentences
from wbl_assistant.gate import Evidence
from wbl_assistant.retrieval import Retrieval, RetrievedChunk, SentenceRecord
from wbl_assistant.text import terms

META = {"doc_id": "hours", "title": "Hours", "edition": "2024", "page": 2, "page_end": 2}
CHUNK = RetrievedChunk("hours:1", "", META, 0.1, 0.8, 1.0, 1)


def unit(*values: float) -> np.ndarray:
    vector = np.asarray(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def candidate(text: str, position: int, vector: np.ndarray, relevance: float) -> Candidate:
    record = SentenceRecord(text, CHUNK.chunk_id, 2, "row", position, vector, paragraph=position)
    return Candidate(record, CHUNK, relevance, relevance, 0.0, set(terms(text)))


def chosen_texts(candidates: list[Candidate]) -> list[str]:
    retrieval = Retrieval("q", unit(1, 0, 0), [CHUNK], snapshot=None, ranking=[CHUNK])
    context = AnswerContext("q", "q", [], retrieval, {}, Evidence({}, 0.9))
    return [c.record.text for c in select_sentences(context, 60, candidates)]


def test_a_sibling_row_with_another_number_is_kept_a_repeat_of_the_same_number_is_not():
    opener = candidate("School week: max 18 hrs", 0, unit(1, 0.1, 0), 0.80)
    # cosine to the opener 0.99: read alike, but the second states a quantity the first does not.
    sibling = candidate("Non-school week: max 40 hrs", 1, unit(1, 0.12, 0.05), 0.79)
    repeat = candidate("School weeks: at most 18 hrs", 2, unit(1, 0.11, 0.02), 0.79)
    texts = chosen_texts([opener, sibling, repeat])
    assert texts[0] == "School week: max 18 hrs"
    assert "Non-school week: max 40 hrs" in texts
    assert "School weeks: at most 18 hrs" not in texts
