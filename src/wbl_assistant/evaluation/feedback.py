"""Turn thumbs-down feedback from the chat page into draft eval items for a person to complete."""

from __future__ import annotations

import hashlib
import json
from typing import Any

TODO = ("Draft from user feedback: decide whether the documents answer this (answerable), then fill "
        "gold_docs and key_facts (or set answerable to false and empty both), and delete _todo and _feedback.")


def draft_items(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One draft per thumbs-down entry (the same question asked twice gives one draft)."""
    drafts, seen = [], set()
    for entry in entries:
        if entry.get("vote") != "down" or not str(entry.get("question", "")).strip():
            continue
        question = entry["question"].strip()
        history = [t for t in entry.get("history") or [] if isinstance(t, dict) and {"role", "content"} <= set(t)]
        key = hashlib.sha1(json.dumps([question, history], sort_keys=True).encode()).hexdigest()[:10]
        if key in seen:
            continue
        seen.add(key)
        drafts.append({
            "id": f"feedback-{key}",
            "question": question,
            **({"history": history} if history else {}),
            "answerable": True,
            "gold_docs": [],
            "key_facts": [],
            "tags": ["from-feedback"],
            "_todo": TODO,
            "_feedback": {"time": entry.get("time"), "answer": entry.get("answer"),
                          "comment": entry.get("comment", ""),
                          "cited": [c.get("doc_id") for c in entry.get("citations") or [] if isinstance(c, dict)]},
        })
    return drafts
