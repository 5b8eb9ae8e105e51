"""Change reports between editions, on hand-made texts: alignment, facts that moved, labels, questions, review."""

from __future__ import annotations

import json

import pytest

from wbl_assistant.change_answers import is_change_question
from wbl_assistant.config import Settings
from wbl_assistant.editions import (
    ChangeReport,
    EditionInfo,
    EditionText,
    Fact,
    Line,
    Section,
    build_report,
    compare,
    edition_labels,
    facts_of,
    items_to_review,
    moved_facts,
    report_files,
    report_markdown,
    text_from_records,
)
from wbl_assistant.evaluation.dataset import parse_item
from wbl_assistant.store import Manifest


def text(*sections: tuple[str, list[str]], page: int = 1) -> EditionText:
    return EditionText([Section(path, [Line(t, page, f"c:{path}:{n}") for n, t in enumerate(lines)])
                        for path, lines in sections])


OLD = text(
    ("Guide", ["Edition: 2024", "A sample guide for coordinators."]),
    ("Hours", ["A CDE lasts at least 60 hours in total.", "Each experience lasts at least 20 hours.",
               "Supervisors keep time records."]),
    ("Dividing the work", ["The employer supervises the intern.", "The school handles paperwork."]),
    ("Phase 3: Prepare", ["Orient participants before the first day.", "Confirm transportation and schedules.",
                          "Check the rules for minors with the Department of Labor."]),
    ("Contacts", ["Call the regional office with questions."]),
)
NEW = text(
    ("Guide", ["Edition: 2025", "A sample guide for coordinators."]),
    ("Hours", ["A CDE lasts at least 80 hours in total.", "Each experience lasts at least 20 hours.",
               "Supervisors keep time records."]),
    ("Phase 3: Preparation", ["Orient participants before the first day.", "Confirm transportation and schedules.",
                              "Check the rules for minors with the Department of Labor."]),
    ("Recording hours", ["Supervisors sign hour logs every 2 weeks.", "Call the regional office with questions."]),
    ("Contacts", []),
)


def test_a_changed_removed_added_and_renamed_section_and_a_moved_sentence():
    passages, moved = compare(OLD, NEW, ("2024", "2025"))
    by_kind = {(p.kind, p.status): p for p in passages}
    assert set(by_kind) == {("changed", "same"), ("removed", "removed"), ("added", "added")}
    changed = by_kind["changed", "same"]
    assert changed.section == "Hours"
    [change] = changed.changes
    assert change.old.text == "A CDE lasts at least 60 hours in total."
    assert change.new.text == "A CDE lasts at least 80 hours in total."
    assert change.facts == [Fact("hours", "60 hours", "80 hours")]
    removed = by_kind["removed", "removed"]
    assert removed.old_section == "Dividing the work" and len(removed.changes) == 2
    added = by_kind["added", "added"]
    assert [c.new.text for c in added.changes] == ["Supervisors sign hour logs every 2 weeks."]
    assert added.changes[0].facts == [Fact("weeks", None, "2 weeks")]
    # "Call the regional office" moved from Contacts to Recording hours: not a change
    assert moved == 1
    # the renamed section with the same content has no change; the edition line differs only by its name
    assert not any(p.section == "Phase 3: Preparation" for p in passages)
    assert not any("Edition:" in (c.old or c.new).text for p in passages for c in p.changes)


def test_the_report_keeps_the_new_documents_order_and_puts_a_removed_section_where_it_stood():
    passages, _ = compare(OLD, NEW)
    sections = [p.section for p in passages]
    assert sections.index("Hours") < sections.index("Dividing the work") < sections.index("Recording hours")


def test_a_renamed_section_with_a_changed_sentence_is_one_changed_passage():
    old = text(("Phase 3: Prepare", ["Orient participants before the first day.", "Confirm transportation.",
                                     "Participants under 16 need a work permit."]))
    new = text(("Phase 3: Preparation", ["Orient participants before the first day.", "Confirm transportation.",
                                         "Participants under 18 need a work permit."]))
    [passage] = compare(old, new)[0]
    assert passage.status == "renamed" and passage.kind == "changed"
    assert passage.old_section == "Phase 3: Prepare" and passage.new_section == "Phase 3: Preparation"
    assert passage.changes[0].facts == [Fact("number", "16", "18")]


def test_a_rewritten_sentence_is_paired_and_an_unrelated_one_is_removed_and_added():
    old = text(("Rules", ["Interns may work at most 3 hours on a school day.", "Bring a lunch."]))
    new = text(("Rules", ["Interns may work at most 4 hours on a school day.", "Wear closed-toe shoes at the site."]))
    [passage] = compare(old, new)[0]
    kinds = [c.kind for c in passage.changes]
    assert kinds == ["changed", "removed", "added"]
    assert passage.changes[0].facts == [Fact("hours", "3 hours", "4 hours")]


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("Minors must be at least 16 years old.", "Minors must be at least 14 years old.",
     [Fact("age", "16 year old", "14 year old")]),
    ("The law took effect on January 1, 2025.", "The law took effect on July 1, 2025.",
     [Fact("date", "January 1, 2025", "July 1, 2025")]),
    ("A stipend of $500 is paid.", "A stipend of $750 is paid.", [Fact("money", "$500", "$750")]),
    ("It needs sixty hours.", "It needs 80 hours.", [Fact("hours", "60 hours", "80 hours")]),
    ("Interns work 10 hours and 2 days.", "Interns work 2 days and 10 hours.", []),
    ("A form is due in 30 days.", "A form is due.", [Fact("days", "30 days", None)]),
])
def test_facts_that_moved(old, new, expected):
    assert moved_facts(old, new) == expected


def test_facts_of_a_sentence():
    stated = facts_of("At least 60 hours, by June 30, 2025, for 15-year-olds, 50%, $20, 3 forms")
    kinds = [kind for kind, _, _ in stated]
    assert kinds == ["hours", "date", "age", "percent", "money", "number"]


def test_an_edition_text_from_chunk_records_skips_the_overlap_copy():
    def record(index, section, sentences):
        return (f"d:v:{index:04d}", "", {"index": index, "section": section,
                                          "sentences": json.dumps([[t, p, "sentence"] for t, p in sentences])}, None)

    records = [record(1, "A", [("Second.", 1), ("Third.", 2)]), record(0, "A", [("First.", 1), ("Second.", 1)]),
               record(2, "B", [("Fourth.", 2)])]
    edition = text_from_records(records)
    assert [(s.path, [ln.text for ln in s.lines]) for s in edition.sections] == [
        ("A", ["First.", "Second.", "Third."]), ("B", ["Fourth."])]
    assert edition.sections[0].lines[2] == Line("Third.", 2, "d:v:0001")
    assert EditionText.from_bytes(edition.to_bytes()) == edition


def report() -> ChangeReport:
    old = EditionInfo("v1", "2024", "2024", "a" * 64, 1.7e9, 12)
    new = EditionInfo("v2", "2025", "2025 | <b>draft</b>", "b" * 64, 1.8e9, 13)
    return build_report("guide", "Guide", old, new, OLD, NEW)


def test_a_report_round_trips_and_its_markdown_shows_both_sides():
    original = report()
    again = ChangeReport.from_bytes(original.to_bytes())
    assert again.to_json() == original.to_json()
    assert original.counts == {"changed": 1, "added": 1, "removed": 1, "facts": 2, "sections_added": 1,
                               "sections_removed": 1}
    markdown = report_markdown(original)
    assert "| 60 hours (p. 1) | 80 hours (p. 1) |" in markdown
    assert "2025 \\| <b>draft</b>" in markdown, "a pipe in document text must not break the tables"
    assert "#### Dividing the work (section removed)" in markdown
    assert "#### Recording hours (new section)" in markdown
    escaped = report_markdown(original, escape=lambda s: s.replace("<", "&lt;"))
    assert "<b>" not in escaped


def test_report_files_are_named_by_both_editions(tmp_path):
    settings = Settings(data_dir=tmp_path)
    json_path, md_path = report_files(settings, report())
    assert json_path == tmp_path / "changes" / "guide" / "2024→2025-b-draft-b.json"
    assert md_path.suffix == ".md"


def test_edition_labels_tell_two_editions_apart():
    day = 86400.0
    assert edition_labels({"edition": "2024"}, {"edition": "2025"}) == ("2024", "2025")
    old, new = edition_labels({"edition": "2024", "ingested_at": 1e9}, {"edition": "2024", "ingested_at": 1e9 + day})
    assert old != new and old.startswith("2024 (ingested ") and new.startswith("2024 (ingested ")
    old, new = edition_labels({"edition": "2024", "ingested_at": 1e9, "sha256": "aa" * 32},
                              {"edition": "2024", "ingested_at": 1e9 + 60, "sha256": "bb" * 32})
    assert (old, new) == ("2024 (aaaaaaaa)", "2024 (bbbbbbbb)")


@pytest.mark.parametrize("question", [
    "What changed in the new CDE toolkit?", "Did the hour requirement change?", "What's new in the ISBE manual?",
    "Has the hour rule changed?", "What are the differences between the editions?", "Was the toolkit updated?",
    "What is different since the last edition?", "Any changes to the forms?",
    "What did the previous edition say about hours?",
])
def test_change_questions(question):
    assert is_change_question(question)


@pytest.mark.parametrize("question", [
    "How many hours does a CDE require?", "Does the law change for 16-year-olds?", "When was the toolkit last updated?",
    "How often must the plan be updated, and who signs it?", "Can a student change placements?",
    "What's the difference between an internship and a CDE?", "What is a new teacher mentor?",
])
def test_other_questions(question):
    assert not is_change_question(question)


class Blobs:
    """The one thing `items_to_review` asks of a store: blobs by name."""

    prefix = "unit"
    settings = Settings()

    def __init__(self, blobs: dict[str, bytes]) -> None:
        self.blobs = blobs

    def load_blob(self, name: str) -> bytes | None:
        return self.blobs.get(name)


def test_items_whose_gold_pages_or_key_facts_changed_are_to_review(tmp_path):
    changed = report()
    changed.passages[0].changes[0].old = Line("A CDE lasts at least 60 hours in total.", 4, "x")
    changed.passages[0].changes[0].new = Line("A CDE lasts at least 80 hours in total.", 5, "y")
    entry = {"version": "v2", "edition": "2025", "history": [{"version": "v1", "edition": "2024"}],
             "changes": [{"from": "v1", "to": "v2", "from_edition": "2024", "to_edition": "2025",
                          "report_blob": "unit-report"}]}
    manifest = Manifest("s", {"guide": entry}, {})
    store = Blobs({"unit-report": changed.to_bytes()})

    def item(n, **fields):
        data = {"id": f"q{n}", "question": "How many hours?", "answerable": True, "gold_docs": ["guide"],
                "key_facts": [["20 hours"]], **fields}
        return parse_item(data, tmp_path / "items.jsonl", n)

    items = [item(1, gold_pages=[5]), item(2, gold_pages=[4], edition="2024"), item(3, gold_pages=[9]),
             item(4, gold_pages=[5], edition="2025"), item(5, key_facts=[["60 hours"]]),
             item(6, edition="2019")]
    review = {r["id"]: r for r in items_to_review(items, manifest, store)}
    assert set(review) == {"q1", "q2", "q5", "q6"}
    assert "gold page 5 changed" in review["q1"]["why"] and review["q1"]["editions"] == "2024 → 2025"
    assert "gold page 4 changed" in review["q2"]["why"]
    assert "key fact “60 hours”" in review["q5"]["why"]
    assert "no longer kept" in review["q6"]["why"]


def test_the_edition_field_of_an_eval_item_must_be_text(tmp_path):
    from wbl_assistant.evaluation.dataset import DatasetError

    with pytest.raises(DatasetError, match="'edition' must be a string"):
        parse_item({"id": "a", "question": "q?", "answerable": False, "edition": 2024}, tmp_path / "x.jsonl", 3)


def test_the_ingest_history_names_an_updated_documents_change_report():
    from wbl_assistant.app import history_markdown
    from wbl_assistant.history import run_entry
    from wbl_assistant.ingest_state import DocumentResult, IngestReport

    updated = DocumentResult(file="guide.pdf", doc_id="guide", status="updated", changes=report())
    added = DocumentResult(file="new.pdf", doc_id="new", status="added")
    entry = json.loads(json.dumps(run_entry(IngestReport([updated, added]), "cli test", "ingest")))
    assert entry["updated"] == [{"doc_id": "guide", "file": "guide.pdf",
                                 "change_report": "changes/guide/2024→2025-b-draft-b.md",
                                 "change_counts": report().counts}]
    assert entry["added"] == [{"doc_id": "new", "file": "new.pdf"}]
    shown = history_markdown([entry])
    assert "change report of guide.pdf (1 changed, 1 added, 1 removed" in shown
    assert "1 removed): changes/guide/2024→2025\\-b\\-draft\\-b.md in the data folder" in shown
