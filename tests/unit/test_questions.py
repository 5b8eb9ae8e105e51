"""Reading a question's form: its ask inside a long story, the names it uses; and where a chunk's lines start."""

from wbl_assistant.gate import named_terms
from wbl_assistant.questions import focus_of
from wbl_assistant.retrieval import paragraph_numbers
from wbl_assistant.text import terms


def test_a_short_question_has_no_separate_focus():
    assert focus_of("Can a 15 year old work until 9 pm on a school night?") == ""


def test_the_focus_of_a_long_question_is_its_last_ask():
    question = ("We have a student who did a short summer placement at an engineering firm, only about fifteen "
                "hours because the firm got busy. She starts another one in the fall. Can both count toward "
                "her CDE hours?")
    assert focus_of(question) == "Can both count toward her CDE hours?"


def test_a_long_run_on_question_is_focused_on_its_last_interrogative_clause():
    question = ("ok so our board keeps going back and forth about the sample policy and the members who run "
                "businesses have opinions, so what does the policy say about visiting the work site")
    assert focus_of(question) == "what does the policy say about visiting the work site"


def test_a_place_is_a_name_however_it_is_typed():
    assert set(terms("indiana")) <= named_terms("does indiana let 15 yr olds work til 9pm")
    assert set(terms("york")) <= named_terms("what are new york's rules")
    assert named_terms("can a student work til 9pm") == set()


def test_paragraph_numbers_count_lines_and_table_cells():
    text = "First rule. Second rule.\nNext paragraph.\nName | Long cell text here."
    units = ["First rule.", "Second rule.", "Next paragraph.", "Long cell text here.", "Not in the text."]
    assert paragraph_numbers(text, units) == [0, 0, 1, 3, 3]
