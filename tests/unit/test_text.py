from wbl_assistant.text import content_words, normalize, numbers, split_sentences, terms


def test_sentences_split_at_boundaries_not_at_abbreviations():
    text = ("Gov. Pritzker signed it on July 30, 2024. It took effect on Jan. 1, 2025, e.g. for employers. "
            "Work ends by 7 p.m. on school days. The U.S. Department of Labor answers questions.")
    assert split_sentences(text) == [
        "Gov. Pritzker signed it on July 30, 2024.",
        "It took effect on Jan. 1, 2025, e.g. for employers.",
        "Work ends by 7 p.m. on school days.",
        "The U.S. Department of Labor answers questions.",
    ]


def test_normalize_folds_case_punctuation_and_thousands():
    assert normalize("The CDE’s 60-hour rule (8,185 students)!") == "the cde s 60 hour rule 8185 students"
    assert normalize("3.5 hours.") == "3.5 hours"


def test_content_words_drop_stopwords_keep_numbers():
    assert content_words("How many hours are in a CDE, at least 60?") == ["hours", "cde", "least", "60"]


def test_numbers():
    assert numbers("8,185 students in 19 districts; 9.5% of jobs") == {"8185", "19", "9.5"}


def test_terms_are_stemmed_content_words():
    assert terms("Employers must post notices of internships; students need hours.") == [
        "employ", "post", "notic", "internship", "student", "hour"]
    assert terms("supervised, supervise, supervision") == ["supervis"] * 3


def test_sentence_split_after_a_closing_parenthesis_but_not_after_an_initial():
    text = "It does not apply (Section 20(e)). Students aged 16 follow federal rules. Ask J. Smith first."
    assert split_sentences(text) == ["It does not apply (Section 20(e)).", "Students aged 16 follow federal rules.",
                                     "Ask J. Smith first."]


def test_json_lines_keep_objects_and_number_the_lines_that_are_not():
    from wbl_assistant.jsonl import parse_json_lines

    data = b'{"a": 1}\n\n[1, 2]\n{"b": "\xc3\xa9"}\n{"torn": \n' + b"[" * 100_000 + b"\n"
    parsed = parse_json_lines(data)
    assert parsed.entries == [{"a": 1}, {"b": "é"}]
    assert parsed.skipped_lines == [3, 5, 6]
