"""The eval dataset schema and the feedback drafts."""

import json

import pytest

from wbl_assistant.evaluation.dataset import DatasetError, load_dataset
from wbl_assistant.evaluation.feedback import draft_items

GOOD = {"id": "a", "question": "How many hours?", "answerable": True, "gold_docs": ["cde-toolkit"],
        "key_facts": [["60 hours"]]}


def write(tmp_path, *items, raw=None):
    path = tmp_path / "set.jsonl"
    path.write_text(raw if raw is not None else "\n".join(json.dumps(i) for i in items) + "\n")
    return path


def test_a_valid_dataset_loads(tmp_path):
    out_of_scope = {"id": "b", "question": "Recipe?", "answerable": False, "gold_docs": [], "key_facts": []}
    follow_up = {**GOOD, "id": "c", "history": [{"role": "user", "content": "What is a CDE?"}],
                 "gold_pages": [3], "tags": ["follow-up"]}
    items = load_dataset(write(tmp_path, GOOD, out_of_scope, follow_up))
    assert [i.id for i in items] == ["a", "b", "c"]
    assert items[2].history[0]["role"] == "user" and items[2].gold_pages == [3]


@pytest.mark.parametrize(("item", "message"), [
    ({**GOOD, "answerable": "yes"}, "'answerable' must be a bool"),
    ({**GOOD, "gold_docs": []}, "needs at least one gold doc"),
    ({**GOOD, "key_facts": ["60 hours"]}, "'key_facts' must be a list of non-empty lists"),
    ({**GOOD, "answerable": False}, "unanswerable item has no gold docs"),
    ({**GOOD, "history": [{"role": "bot", "content": "x"}]}, "'history' must be a list"),
    ({**GOOD, "gold_pages": [0]}, "1-based"),
])
def test_schema_errors_name_the_line(tmp_path, item, message):
    with pytest.raises(DatasetError, match=f"set.jsonl:2: .*{message}"):
        load_dataset(write(tmp_path, GOOD, item))


def test_invalid_json_and_duplicates(tmp_path):
    with pytest.raises(DatasetError, match=r"set\.jsonl:1: not valid JSON"):
        load_dataset(write(tmp_path, raw="{nope\n"))
    with pytest.raises(DatasetError, match="duplicate id 'a'"):
        load_dataset(write(tmp_path, GOOD, GOOD))


def test_thumbs_down_feedback_becomes_draft_items():
    entries = [
        {"vote": "up", "question": "Fine?"},
        {"vote": "down", "question": "How long is a CDE?", "answer": "A CDE is ... [1]", "comment": "wrong",
         "history": [{"role": "user", "content": "Hi"}], "citations": [{"doc_id": "cde-toolkit"}]},
        {"vote": "down", "question": "How long is a CDE?", "history": [{"role": "user", "content": "Hi"}]},
    ]
    [draft] = draft_items(entries)
    assert draft["question"] == "How long is a CDE?" and draft["history"][0]["content"] == "Hi"
    assert draft["gold_docs"] == [] and draft["tags"] == ["from-feedback"]
    assert draft["_feedback"]["comment"] == "wrong" and draft["_feedback"]["cited"] == ["cde-toolkit"]
