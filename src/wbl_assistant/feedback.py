"""Feedback from the chat page: one JSON line per vote in the data dir, written durably, read forgivingly.

Anyone using the page can vote, so what a vote stores is capped (question, answer, comment, the last few
turns of history) and the file stops growing at a size cap. Each line is flushed and fsynced; a reader
skips a torn or corrupt line and reports it instead of rejecting the whole file.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from .jsonl import JsonLines, parse_json_lines

MAX_TEXT_CHARS = 4000
MAX_COMMENT_CHARS = 2000
MAX_HISTORY_TURNS = 6
MAX_FILE_BYTES = 50 * 1024 * 1024


class FeedbackError(ValueError):
    """The feedback file cannot be read or written; the message says why."""


def _clip(text: Any, limit: int) -> str:
    text = str(text or "")
    return text if len(text) <= limit else text[:limit] + " ..."


class FeedbackLog:
    """Appends one capped JSON line per vote."""

    def __init__(self, path: Path, max_bytes: int = MAX_FILE_BYTES) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._lock = threading.Lock()

    def record(self, question: str, answer: str, abstained: bool, citations: list[dict[str, Any]],
               history: list[dict[str, str]], vote: str, comment: str = "") -> dict[str, Any]:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "question": _clip(question, MAX_TEXT_CHARS), "answer": _clip(answer, MAX_TEXT_CHARS),
            "abstained": bool(abstained), "citations": citations[:20],
            "history": [{"role": t["role"], "content": _clip(t["content"], MAX_TEXT_CHARS)}
                        for t in history[-MAX_HISTORY_TURNS:]],
            "vote": "up" if vote == "up" else "down", "comment": _clip(comment.strip(), MAX_COMMENT_CHARS),
        }
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            size = self.path.stat().st_size if self.path.exists() else 0
            if size + len(line.encode()) > self.max_bytes:
                raise FeedbackError("the feedback file is full; ask the site's staff to collect it")
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
        return entry


def read_feedback(path: Path) -> JsonLines:
    """Every readable entry; the numbers of the lines that are not (a torn last line, a corrupt one)."""
    try:
        return parse_json_lines(path.read_bytes())
    except OSError as error:
        raise FeedbackError(f"cannot read {path} ({error.strerror})") from None
