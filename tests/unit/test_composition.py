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


class FlatSnapshot:
    """Just enough of an index snapshot for `score_sentences`: every term known, every IDF 1, no headings."""

    def knows(self, term: str) -> bool:
        return True

    def idf(self, term: str) -> float:
        return 1.0

    def heading(self, chunk_id: str) -> None:
        return None


def scored(question: str, texts: list[str], said: set[str] | None = None) -> list[str]:
    """The texts by opener score, all equally similar to the question (their vectors are the query's)."""
    from wbl_assistant.answering import score_sentences
    from wbl_assistant.questions import shape_of
    from wbl_assistant.vocabulary import Lexicon

    vector = unit(1, 0, 0)
    records = tuple(SentenceRecord(t, CHUNK.chunk_id, 2, "sentence", n, vector, paragraph=n)
                    for n, t in enumerate(texts))
    retrieval = Retrieval(question, vector, [CHUNK], snapshot=FlatSnapshot(), ranking=[CHUNK],
                          concepts=Lexicon([], []).concepts(terms(question)))
    candidates = score_sentences(retrieval, {CHUNK.chunk_id: records}, shape_of(question), said)
    return [c.record.text for c in sorted(candidates, key=lambda c: -c.opener)]


def test_a_sentence_holding_the_quoted_phrase_in_order_opens_the_answer():
    texts = ["Conditions for working remotely must be authentic and supervised.",
             "The placement has authentic working conditions such as timekeeping."]
    assert scored("what counts as 'authentic working conditions' here?", texts)[0] == texts[1]
    # Without the quotes the words weigh as any others and the first sentence, seen first, stays ahead.
    assert scored("what counts as authentic working conditions here?", texts)[0] == texts[0]


def test_a_follow_up_does_not_open_with_what_the_last_answer_said():
    texts = ["School week: a minor may work no more than 18 hours.",
             "Summer vacation: up to 40 hours."]
    said = set(terms("A minor may work no more than 18 hours in a school week."))
    assert scored("and otherwise?", texts)[0] == texts[0]
    assert scored("and otherwise?", texts, said)[0] == texts[1]


def test_quoted_phrases_stand_at_word_edges():
    from wbl_assistant.answering import holds_phrase, last_answer_terms, quoted_phrases

    assert quoted_phrases("what is a 'school-directed' placement?") == [("school", "direct")]
    assert quoted_phrases('define "career development experience"') == [("career", "develop", "experi")]
    assert quoted_phrases("the kid's permit and the school's form") == []
    assert holds_phrase(["a", "career", "develop", "experi"], ("career", "develop", "experi"))
    assert not holds_phrase(["career", "a", "develop", "experi"], ("career", "develop", "experi"))
    history = [{"role": "user", "content": "hours?"}, {"role": "assistant", "content": "At most 18 hours."}]
    assert last_answer_terms(history) == set(terms("At most 18 hours.")) and last_answer_terms([]) == set()


def test_a_list_question_answered_in_sentences_gets_more_room():
    from wbl_assistant.answering import extractive_answer
    from wbl_assistant.questions import shape_of
    from wbl_assistant.vocabulary import Lexicon

    texts = [f"Step number {n} asks the team to finish one more planning task this week." for n in range(12)]
    records = tuple(SentenceRecord(t, CHUNK.chunk_id, 2, "sentence", n, unit(1, 0.01 * n, 0), paragraph=n)
                    for n, t in enumerate(texts))

    def words(question: str) -> int:
        retrieval = Retrieval(question, unit(1, 0, 0), [CHUNK], snapshot=FlatSnapshot(), ranking=[CHUNK],
                              concepts=Lexicon([], []).concepts(terms(question)))
        context = AnswerContext(question, question, [], retrieval, {CHUNK.chunk_id: records},
                                Evidence({}, 0.9), shape_of(question))
        return sum(len(piece.split()) for piece in extractive_answer(context, 60).pieces)

    assert words("what are the steps?") > 60 * 1.25 >= words("how does planning go?")


def test_past_the_cited_only_mark_no_new_document_is_drawn_on():
    other_chunk = RetrievedChunk("other:1", "", {**META, "doc_id": "other"}, 0.1, 0.8, 1.0, 2)
    opener = candidate("Step one: plan the placement with the host employer.", 0, unit(1, 0, 0), 0.9)
    same = candidate("Step two: sign the training agreement before work starts.", 1, unit(0.9, 0.4, 0), 0.7)
    record = SentenceRecord("Step three: another guide lists a site visit in week two.", "other:1", 2, "row", 0,
                            unit(0.9, 0, 0.4), paragraph=0)
    other = Candidate(record, other_chunk, 0.8, 0.8, 0.0, set(terms(record.text)))
    retrieval = Retrieval("q", unit(1, 0, 0), [CHUNK, other_chunk], snapshot=None, ranking=[CHUNK, other_chunk])
    context = AnswerContext("q", "q", [], retrieval, {}, Evidence({}, 0.9))
    assert other in select_sentences(context, 60, [opener, same, other])
    assert other not in select_sentences(context, 60, [opener, same, other], cited_only_after=0)
    assert same in select_sentences(context, 60, [opener, same, other], cited_only_after=0)


def test_a_memo_or_e_mail_header_row_is_never_quoted():
    from wbl_assistant.answering import score_sentences
    from wbl_assistant.questions import shape_of
    from wbl_assistant.vocabulary import Lexicon

    question = "what does the memo on the child labor law tell districts to do?"
    texts = ["TO:; District work-based learning contacts and CTE directors.",
             "RE:; What the Child Labor Law of 2024 changed for student placements.",
             "Subject:; RE: 15 yo sophomore and the vet clinic.",
             "Step 1:; Update the district's placement forms to cite the new law."]
    vector = unit(1, 0, 0)
    records = tuple(SentenceRecord(t, CHUNK.chunk_id, 2, "row", n, vector, paragraph=n) for n, t in enumerate(texts))
    retrieval = Retrieval(question, vector, [CHUNK], snapshot=FlatSnapshot(), ranking=[CHUNK],
                          concepts=Lexicon([], []).concepts(terms(question)))
    candidates = score_sentences(retrieval, {CHUNK.chunk_id: records}, shape_of(question))
    assert [c.record.text for c in candidates] == [texts[3]]


def test_a_list_items_bare_number_is_quoted_with_its_item_and_never_alone():
    from wbl_assistant.answering import _with_labels
    from wbl_assistant.grounding import split_cited

    vector = unit(1, 0, 0)
    texts = ["Six components:", "1.", "Inclusive recruitment.", "2.", "A curriculum for the industry.", "3."]
    records = [SentenceRecord(t, CHUNK.chunk_id, 2, "item", n, vector, paragraph=n) for n, t in enumerate(texts)]
    quoted = [text for text, _, _ in _with_labels([(r, CHUNK) for r in records])]
    assert quoted == ["Six components:", "1. Inclusive recruitment.", "2. A curriculum for the industry."]
    # an item quoted without its number's record stays as it is
    assert [t for t, _, _ in _with_labels([(records[0], CHUNK), (records[4], CHUNK)])] == [
        "Six components:", "A curriculum for the industry."]
    assert split_cited("Six components: [1] 1. Inclusive recruitment. [1] 2. A curriculum. [1]") == [
        ("Six components:", [1]), ("1. Inclusive recruitment.", [1]), ("2. A curriculum.", [1])]
