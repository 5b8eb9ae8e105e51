"""Structure-aware chunking on hand-made blocks (what extraction produces)."""

import itertools

from wbl_assistant.chunking import chunk_blocks
from wbl_assistant.extraction import Block


def heading(text, level, page=1):
    return Block("heading", text, page, page, level=level)


def para(text, page=1):
    return Block("paragraph", text, page, page)


def item(text, page=1):
    return Block("item", text, page, page)


def row(text, page=1):
    return Block("row", text, page, page)


SENTENCE = "Students keep a weekly journal about what they learned at the site."


def test_chunks_stay_inside_their_section_and_carry_its_path():
    blocks = [heading("Manual", 0), heading("Safety", 1), para(SENTENCE), heading("Training", 2),
              para("Training happens before the first day."), heading("Insurance", 1), para("Check coverage.")]
    chunks = chunk_blocks(blocks, "doc", "0123456789abcdef", 900, 150)
    assert [c.section for c in chunks] == ["Safety", "Safety > Training", "Insurance"]
    assert chunks[2].text == "Check coverage."


def test_chunk_ids_are_stable_and_name_the_document_version():
    blocks = [heading("A", 1), para(SENTENCE)]
    first = chunk_blocks(blocks, "doc", "0123456789abcdef", 900, 150)
    second = chunk_blocks(blocks, "doc", "0123456789abcdef", 900, 150)
    changed = chunk_blocks(blocks, "doc", "fedcba9876543210", 900, 150)
    assert [c.chunk_id for c in first] == [c.chunk_id for c in second] == ["doc:0123456789ab:0000"]
    assert changed[0].chunk_id != first[0].chunk_id


def test_a_list_stays_with_its_lead_in():
    blocks = [heading("Roles", 1), para("Employers agree to:"), item("supervise the student."),
              item("provide a safe site.")]
    [chunk] = chunk_blocks(blocks, "doc", "0" * 16, 900, 150)
    assert chunk.text == "Employers agree to:\n- supervise the student.\n- provide a safe site."
    assert [s.kind for s in chunk.sentences] == ["sentence", "item", "item"]


def test_a_long_list_splits_between_items_and_repeats_the_lead_in():
    items = [item(f"Item number {n} is a task that the coordinator must finish before placement.")
             for n in range(12)]
    blocks = [heading("Checklist", 1), para("Before placement:"), *items]
    chunks = chunk_blocks(blocks, "doc", "0" * 16, 300, 0)
    assert len(chunks) > 2
    for chunk in chunks:
        assert chunk.text.startswith("Before placement:\n- Item number")
        assert len(chunk.text) <= 300
    texts = [s.text for c in chunks for s in c.sentences if s.kind == "item"]
    assert len(texts) == 12


def test_table_rows_become_labelled_sentences_and_the_header_repeats_when_split():
    rows = [row("Stage | Who leads")] + [row(f"Stage {n} of the continuum | Teacher number {n}") for n in range(20)]
    blocks = [heading("Continuum", 1), para("Table 1: Stages"), *rows]
    chunks = chunk_blocks(blocks, "doc", "0" * 16, 300, 0)
    assert len(chunks) > 1
    for chunk in chunks:
        assert chunk.text.splitlines()[:2] == ["Table 1: Stages", "Stage | Who leads"]
    first_row = chunks[0].sentences[1]
    assert first_row.kind == "row"
    assert first_row.text == "Stage: Stage 0 of the continuum; Who leads: Teacher number 0."


def test_a_prose_cell_is_quoted_sentence_by_sentence_led_by_its_row_labels():
    turn = ("Yes, a student can count two placements toward the sixty hours if each one runs at least twenty "
            "hours. Keep the timesheets from both sites in the student's file so the hours can be checked.")
    blocks = [heading("Transcript", 1), row("Speaker | What was said"), row(f"Coordinator | {turn}")]
    sentences = chunk_blocks(blocks, "doc", "0" * 16, 300, 0)[0].sentences
    texts = [s.text for s in sentences if s.kind == "sentence"]
    assert texts == ["Speaker: Coordinator; What was said: Yes, a student can count two placements toward the "
                     "sixty hours if each one runs at least twenty hours.",
                     "Keep the timesheets from both sites in the student's file so the hours can be checked."]


def test_a_first_row_of_sentences_is_not_taken_for_a_header():
    blocks = [heading("Facts", 1), row("Students may start at 14. | Hours are capped on school days."),
              row("Permits come from the school. | Employers keep a copy.")]
    sentences = chunk_blocks(blocks, "doc", "0" * 16, 300, 0)[0].sentences
    assert [s.text for s in sentences if s.kind == "row"] == [
        "Students may start at 14; Hours are capped on school days.",
        "Permits come from the school; Employers keep a copy."]


def test_long_paragraph_splits_at_sentences_with_overlap():
    text = " ".join(f"Sentence {n} explains one rule about student placements." for n in range(30))
    chunks = chunk_blocks([heading("Rules", 1), para(text)], "doc", "0" * 16, 400, 120)
    assert len(chunks) > 2
    for before, after in itertools.pairwise(chunks):
        assert after.text.startswith(before.sentences[-1].text)
        assert len(after.text) <= 400 + 120


def test_pages_of_a_chunk_span_its_sentences():
    blocks = [heading("A", 1), para("First page sentence here.", page=3),
              para("Second page sentence here.", page=4)]
    [chunk] = chunk_blocks(blocks, "doc", "0" * 16, 900, 0)
    assert (chunk.page, chunk.page_end) == (3, 4)
    assert [s.page for s in chunk.sentences] == [3, 4]


def test_a_paragraph_crossing_a_page_break_cites_the_page_each_sentence_starts_on():
    block = Block("paragraph", "One sentence on page five. Another sentence begins on page six.", 5, 6,
                  page_starts=[(27, 6)])
    [chunk] = chunk_blocks([heading("A", 1), block], "doc", "0" * 16, 900, 0)
    assert [s.page for s in chunk.sentences] == [5, 6]
