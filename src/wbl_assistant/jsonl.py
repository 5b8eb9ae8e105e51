"""Append-only JSON Lines files (feedback, ingest history): read leniently, since a crash can tear the last
line and a hand edit can break one; the readable entries are kept and the others counted."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class JsonLines:
    entries: list[dict[str, Any]] = field(default_factory=list)
    #: 1-based numbers of the lines that are not a JSON object.
    skipped_lines: list[int] = field(default_factory=list)


def parse_json_lines(data: bytes) -> JsonLines:
    """Every line that holds a JSON object; blank lines are ignored, the others are skipped by number."""
    out = JsonLines()
    for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            out.skipped_lines.append(number)
            continue
        if isinstance(entry, dict):
            out.entries.append(entry)
        else:
            out.skipped_lines.append(number)
    return out
