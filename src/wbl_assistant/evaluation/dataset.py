"""Eval datasets: JSON Lines, one item per line, validated with line numbers in every error.

    {"id": "...", "question": "...", "history": [{"role": "user", "content": "..."}],
     "answerable": true, "gold_docs": ["slug"], "gold_pages": [3], "key_facts": [["60 hours", "sixty hours"]],
     "tags": ["cde"], "split": "dev", "edition": "2019, updated August 2024"}

`history`, `gold_pages`, `tags`, `split` and `edition` are optional. An unanswerable item has no gold docs and
no key facts. `split` is "dev" (tune on it) or "test" (held out: report it, never tune on it); see
evals/assign_splits.py. `edition` names the edition of the gold documents the item was written against: after
an update, `eval` lists the items whose gold pages or key facts changed since then (without it, since the last
update) under "Items to review".
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SPLITS = ("dev", "test")


class DatasetError(ValueError):
    """The dataset file is not in the eval schema; the message names the line."""


@dataclass
class EvalItem:
    id: str
    question: str
    answerable: bool
    gold_docs: list[str]
    key_facts: list[list[str]]
    history: list[dict[str, str]] = field(default_factory=list)
    gold_pages: list[int] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    split: str = ""
    raw: dict[str, Any] = field(default_factory=dict)
    edition: str = ""


def _fail(path: Path, line: int, message: str) -> DatasetError:
    return DatasetError(f"{path}:{line}: {message}")


def _string_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value)


def parse_item(data: Any, path: Path, line: int) -> EvalItem:
    if not isinstance(data, dict):
        raise _fail(path, line, "each line must be a JSON object")
    for key, kind in (("id", str), ("question", str), ("answerable", bool)):
        if not isinstance(data.get(key), kind):
            raise _fail(path, line, f"'{key}' must be a {kind.__name__}")
    if not data["question"].strip() or not data["id"].strip():
        raise _fail(path, line, "'id' and 'question' must not be empty")
    gold_docs = data.get("gold_docs", [])
    key_facts = data.get("key_facts", [])
    if not isinstance(gold_docs, list) or not all(isinstance(d, str) for d in gold_docs):
        raise _fail(path, line, "'gold_docs' must be a list of document slugs")
    if not isinstance(key_facts, list) or not all(_string_list(alts) and alts for alts in key_facts):
        raise _fail(path, line, "'key_facts' must be a list of non-empty lists of strings (alternatives)")
    if data["answerable"] and not gold_docs:
        raise _fail(path, line, "an answerable item needs at least one gold doc")
    if not data["answerable"] and (gold_docs or key_facts):
        raise _fail(path, line, "an unanswerable item has no gold docs and no key facts")
    history = data.get("history", [])
    if not isinstance(history, list) or not all(
            isinstance(t, dict) and t.get("role") in ("user", "assistant") and isinstance(t.get("content"), str)
            for t in history):
        raise _fail(path, line, "'history' must be a list of {role: user|assistant, content: string}")
    pages = data.get("gold_pages", [])
    if not isinstance(pages, list) or not all(isinstance(p, int) and p >= 1 for p in pages):
        raise _fail(path, line, "'gold_pages' must be a list of page numbers (1-based)")
    tags = data.get("tags", [])
    if not _string_list(tags) and tags != []:
        raise _fail(path, line, "'tags' must be a list of strings")
    split = data.get("split", "")
    if split not in (*SPLITS, ""):
        raise _fail(path, line, f"'split' must be one of {', '.join(SPLITS)}")
    edition = data.get("edition", "")
    if not isinstance(edition, str):
        raise _fail(path, line, "'edition' must be a string (the edition's name, as the catalog gives it)")
    return EvalItem(data["id"], data["question"], data["answerable"], gold_docs, key_facts, history, pages,
                    tags, split, data, edition)


def load_dataset(path: Path) -> list[EvalItem]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise DatasetError(f"cannot read {path} ({error.strerror})") from None
    except UnicodeDecodeError:
        raise DatasetError(f"{path} is not UTF-8 text") from None
    items: list[EvalItem] = []
    ids: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as error:
            raise _fail(path, number, f"not valid JSON ({error.msg})") from None
        item = parse_item(data, path, number)
        if item.id in ids:
            raise _fail(path, number, f"duplicate id {item.id!r}")
        ids.add(item.id)
        items.append(item)
    if not items:
        raise DatasetError(f"{path} holds no items")
    return items
