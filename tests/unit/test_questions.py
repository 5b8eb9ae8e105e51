"""Reading a question's form: its ask inside a long story, the names it uses, the kind of answer it wants;
and where a chunk's lines start."""

from wbl_assistant.gate import named_terms
from wbl_assistant.questions import LIST, QUANTITY, YES_NO, answers_quantity, focus_of, shape_of
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


def test_a_question_asking_how_to_reach_someone_wants_a_contact():
    shape = shape_of("What is the department's toll-free phone number?")
    assert (shape.kind, shape.unit) == (QUANTITY, "contact")
    assert answers_quantity("Call 1-800-555-0199 with questions.", "contact")
    assert answers_quantity("Questions go to wbl@district.org.", "contact")
    assert not answers_quantity("Call the department with questions.", "contact")
    assert shape_of("Can I email the coordinator?").kind == YES_NO
    assert shape_of("Before we post write-ups on the district website, what should we ask for?").unit != "contact"


def test_a_wage_question_wants_pay_stated_as_a_rate():
    assert shape_of("what's the hourly wage for interns").unit == "rate"
    assert answers_quantity("Interns earned $15 an hour.", "rate")
    assert answers_quantity("The stipend was $12.50/hour.", "rate")
    assert not answers_quantity("The district received a $60,000 grant.", "rate")


def test_how_fast_asks_for_a_duration():
    assert shape_of("and how fast does the employer have to report it").unit == "duration"
    assert shape_of("How quickly must an injury be reported?").unit == "duration"
    assert answers_quantity("Report it within 24 hours.", "duration")
    assert not answers_quantity("Report it to the department.", "duration")


def test_the_latest_in_the_evening_asks_for_a_time_and_a_weekly_max_for_hours():
    assert shape_of("what's the latest in the evening a minor can be on the clock?").unit == "time"
    assert shape_of("What is the latest edition of the manual?").unit != "time"
    assert shape_of("whats the weekly max for a 14 year old?").unit == "hour"


def test_which_with_a_plural_two_words_on_asks_for_a_list():
    assert shape_of("Which high schools did the interns come from?").kind == LIST
    assert shape_of("Which school ran the pilot?").kind != LIST


def test_paragraph_numbers_count_lines_and_table_cells():
    text = "First rule. Second rule.\nNext paragraph.\nName | Long cell text here."
    units = ["First rule.", "Second rule.", "Next paragraph.", "Long cell text here.", "Not in the text."]
    assert paragraph_numbers(text, units) == [0, 0, 1, 3, 3]


def test_a_short_question_with_a_remark_is_focused_on_its_ask():
    assert focus_of("what are the 3 strands of the PaCE framework again? board member asked and i blanked") == (
        "what are the 3 strands of the PaCE framework again?")
    assert focus_of("Is a CDE 60 hours? Thanks.") == "Is a CDE 60 hours?"
    assert focus_of("Why? Asking for a friend.") == ""  # an ask under three words is no focus
    assert focus_of("How many hours? And who signs the form?") == ""  # two asks: the whole question is the ask


def test_a_question_is_shaped_by_its_ask_not_its_story():
    assert shape_of("is there a cap on the total the state gives out each year?").kind == QUANTITY
    assert shape_of("is there a reason to join?").kind == YES_NO
    assert shape_of("by what grade should kids have done a workplace visit").kind == QUANTITY
    assert shape_of("which grade does the rule cover").kind != LIST  # "does" is no plural noun
    assert shape_of("what is the toll free number for questions").unit == "contact"


def test_a_leading_if_or_when_clause_does_not_shape_the_question():
    assert shape_of("If our district misses one of the quality criteria, are we out of compliance?").kind == YES_NO
    assert shape_of("When a 15 year old works in the summer, how many hours can she work?").kind == QUANTITY
    assert shape_of("When was the guide released?").kind == QUANTITY


def test_the_ask_shapes_a_question_unless_it_has_no_form_of_its_own():
    from wbl_assistant.questions import shape_of_ask

    story = "Our seniors take a welding class at the community college. Could that class count as their CDE?"
    assert shape_of_ask(focus_of(story), story).kind == YES_NO
    long = ("our super forwarded the memo on what the 2024 child labor law changed for placements. what does "
            "it tell districts to actually get done this spring? list them")
    assert focus_of(long) and shape_of(focus_of(long)).kind not in (LIST, QUANTITY, YES_NO)
    assert shape_of_ask(focus_of(long), long).kind == LIST


def test_how_many_things_asks_for_a_number_of_those_things():
    shape = shape_of("How many IMBI math badges does a student have to stack?")
    assert (shape.kind, shape.unit, shape.counted) == (QUANTITY, "count", terms("badges")[0])
    assert shape_of("how many of the students took part").counted == terms("students")[0]
    assert answers_quantity("Twelve students from three schools took part.", "count", terms("students")[0])
    assert answers_quantity("HOSA offers more than 60 competitive events.", "count", terms("events")[0])
    assert not answers_quantity("Since 2024, students have earned badges in 3 schools.", "count",
                                terms("badges")[0])
    hours = shape_of("How many hours does a CDE take?")
    assert (hours.unit, hours.counted) == ("hour", "")


def test_a_reply_that_is_the_count_itself_answers_a_count_question():
    area = terms("areas")[0]
    assert answers_quantity("A: Seven: Agriculture, Food and Natural Resources; Arts.", "count", area)
    assert answers_quantity("Three. Each is described below.", "count", area)
    assert not answers_quantity("2024: the law changed.", "count", area)
    assert not answers_quantity("1.5 hours of work a day.", "count", area)
