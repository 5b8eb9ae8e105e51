"""Each metric on cases computed by hand."""

import math

import pytest

from wbl_assistant.evaluation import metrics as m
from wbl_assistant.grounding import markers_in, sentence_support, split_cited


def test_hit_at_k():
    assert m.hit_at_k([False, False, True], 3) == 1.0
    assert m.hit_at_k([False, False, True], 2) == 0.0
    assert m.hit_at_k([], 5) == 0.0


def test_reciprocal_rank():
    assert m.reciprocal_rank([False, True, True]) == 0.5
    assert m.reciprocal_rank([True]) == 1.0
    assert m.reciprocal_rank([False, False]) == 0.0


def test_ndcg_at_k():
    # relevant at ranks 1 and 3, two relevant in all: (1 + 1/log2(4)) / (1 + 1/log2(3))
    expected = (1 + 0.5) / (1 + 1 / math.log2(3))
    assert m.ndcg_at_k([True, False, True], 10) == pytest.approx(expected)
    assert m.ndcg_at_k([True, True], 10) == 1.0
    assert m.ndcg_at_k([False, True], 10, relevant_total=1) == pytest.approx(1 / math.log2(3))
    assert m.ndcg_at_k([False, False], 10) == 0.0


def test_doc_relevance_uses_distinct_documents_in_order():
    assert m.doc_relevance(["a", "a", "b", "c", "b"], ["b"]) == [False, True, False]


def test_page_relevance():
    retrieved = [("a", 1, 2), ("b", 4, 6), ("b", 9, 9)]
    assert m.page_relevance(retrieved, ["b"], [5]) == [False, True, False]


def test_key_facts():
    answer = "A CDE needs 60 hours in total; no single experience under 20 hours. [1]"
    facts = [["60 hours", "sixty hours"], ["20 hours"], ["paid"]]
    assert m.key_fact_recall(answer, facts) == pytest.approx(2 / 3)
    assert m.all_facts(answer, facts) == 0.0
    assert m.all_facts(answer, facts[:2]) == 1.0
    assert m.key_fact_recall("anything", []) == 1.0


def test_fact_matching_is_whole_words_after_normalizing():
    normalized = m.normalize("Minors under 16 (the Child-Labor Law).")
    assert m.fact_present(normalized, ["child labor law"])
    assert m.fact_present(normalized, ["under 16"])
    assert not m.fact_present(normalized, ["16 and"])
    assert not m.fact_present(normalized, ["6"])


def test_citation_validity():
    assert m.citation_validity("One. [1] Two. [2] Three. [4]", [1, 2, 3]) == pytest.approx(2 / 3)
    assert m.citation_validity("No markers at all.", [1]) == 0.0


def test_source_precision_and_recall():
    assert m.source_precision(["a", "b", "c", "a"], ["a", "d"]) == pytest.approx(1 / 3)
    assert m.source_recall(["a", "b"], ["a", "d"]) == 0.5
    assert m.source_precision([], ["a"]) == 0.0
    assert m.source_recall(["a"], []) == 1.0


def test_our_own_answers_parse_into_their_cited_sentences():
    assert split_cited("First claim. [1] Second claim. [1] [2]") == [("First claim.", [1]),
                                                                   ("Second claim.", [1, 2])]
    assert split_cited("A list item without a stop [3] Another one [4]") == [
        ("A list item without a stop", [3]), ("Another one", [4])]


def test_sentence_support():
    source = "Students need 60 hours in total, across one or two experiences."
    assert sentence_support("A student needs 60 hours in total.", source) == 1.0
    assert sentence_support("Students need 80 hours in total.", source) == 0.0
    # terms: student, complete, hour, total, paid -> 3 of 5 in the source
    assert sentence_support("Students complete hours in total, paid.", source) == pytest.approx(3 / 5)


def test_split_cited_handles_markers_before_and_after_the_stop():
    text = ("A CDE needs 60 hours [1]. It must be paid or for credit. [2] No marker here. Two sources [1][3]. "
            "Grouped [2, 4].")
    assert split_cited(text) == [("A CDE needs 60 hours.", [1]), ("It must be paid or for credit.", [2]),
                                 ("No marker here.", []), ("Two sources.", [1, 3]), ("Grouped.", [2, 4])]


def test_markers_in_and_validity_of_grouped_markers():
    assert markers_in("one [1] two [2, 3] [4]") == [1, 2, 3, 4]
    assert m.citation_validity("Claim. [1, 5]", [1, 2]) == 0.5


def test_citation_support():
    chunks = {1: "The law covers minors under 16.", 2: "Employers post a notice."}
    answer = "The law covers minors under 16. [1] Employers must post notices. [2] Minors earn $20. [2]"
    # sentence 2 (stemmed): employer, post, notice -> all in chunk 2: supported.
    # sentence 3: "$20" is a number chunk 2 does not state: not supported.
    assert m.citation_support(answer, chunks) == pytest.approx(2 / 3)
    assert m.citation_support("Uncited claim.", chunks) == 0.0


def test_crag_score():
    assert m.crag_score(answerable=True, abstained=False, correct=True) == 1
    assert m.crag_score(answerable=True, abstained=True, correct=False) == 0
    assert m.crag_score(answerable=True, abstained=False, correct=False) == -1
    assert m.crag_score(answerable=False, abstained=True, correct=False) == 1
    assert m.crag_score(answerable=False, abstained=False, correct=False) == -1


def test_rates_means_percentiles():
    assert m.rate([True, False, True, True]) == 0.75
    assert m.rate([]) is None
    assert m.mean([1.0, 2.0, 6.0]) == 3.0
    assert m.percentile([10, 20, 30, 40], 50) == 25
    assert m.percentile([10, 20, 30, 40], 95) == pytest.approx(38.5)
    assert m.percentile([], 50) is None
