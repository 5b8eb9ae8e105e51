"""The ingest history: one JSON line per ingest run in `data/ingest-history.jsonl` (who, when, what for,
counts per status, failures with their reasons, the documents added, updated and removed, and the index
snapshot the run produced: what a per-document change report can be keyed by).

The Library tab shows it newest first and takes each document's failure from the last run (failures are
not in the index's manifest). Lines are flushed and fsynced; past the size cap the oldest lines are dropped
(the file is rewritten atomically), so the history never stops an ingest; a reader skips a torn or corrupt
line instead of rejecting the file.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .ingest_state import STATUSES, IngestReport
from .jsonl import JsonLines, parse_json_lines

if TYPE_CHECKING:
    from .editions import ChangeReport

logger = logging.getLogger(__name__)

MAX_FILE_BYTES = 5 * 1024 * 1024
#: Documents listed per status in one line (a first ingest of a big corpus adds them all).
MAX_LISTED = 200
MAX_REASON_CHARS = 500


def cli_user() -> str:
    """Who runs the CLI, for the history: 'cli <login name>'."""
    try:
        return f"cli {getpass.getuser()}"
    except (KeyError, OSError):
        return "cli unknown"


def run_entry(report: IngestReport, who: str, action: str, target: str = "") -> dict[str, Any]:
    """The history line of one ingest run."""

    def listed(status: str) -> list[dict[str, Any]]:
        return [{"doc_id": r.doc_id, "file": r.file, **_change_report(r.changes)}
                for r in report.results if r.status == status][:MAX_LISTED]

    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "who": who, "action": action,
        "target": target, "seconds": round(report.seconds, 2), "switched": report.switched,
        "snapshot": report.snapshot,
        "counts": {status: report.count(status) for status in STATUSES}, "chunks": report.chunks,
        "failures": [{"doc_id": r.doc_id, "file": r.file, "reason": r.reason[:MAX_REASON_CHARS]}
                     for r in report.failed][:MAX_LISTED],
        "added": listed("added"), "updated": listed("updated"), "removed": listed("removed"),
    }


def _change_report(changes: ChangeReport | None) -> dict[str, Any]:
    """An updated document's change report, for the history: where it is (under the data dir) and its counts."""
    if changes is None:
        return {}
    from .editions import report_path  # editions needs Chroma; a run without changes does not import it

    return {"change_report": report_path(changes).as_posix(), "change_counts": changes.counts}


class IngestHistory:
    """Appends one line per run; keeps the file under `max_bytes` by dropping its oldest lines."""

    def __init__(self, path: Path, max_bytes: int = MAX_FILE_BYTES) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._lock = threading.Lock()

    def record(self, report: IngestReport, who: str, action: str, target: str = "") -> dict[str, Any] | None:
        """Append the run's line. A history that cannot be written is logged, not raised: the run is done."""
        entry = run_entry(report, who, action, target)
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        try:
            with self._lock:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                size = self.path.stat().st_size if self.path.exists() else 0
                if size + len(line.encode()) > self.max_bytes:
                    self._drop_oldest(len(line.encode()))
                with self.path.open("a", encoding="utf-8") as handle:
                    handle.write(line)
                    handle.flush()
                    os.fsync(handle.fileno())
        except OSError as error:
            logger.warning("could not write the ingest history %s: %s", self.path, error)
            return None
        return entry

    def _drop_oldest(self, room: int) -> None:
        """Keep the newest lines that fill at most half the cap (less `room`), in one atomic rewrite."""
        lines = self.path.read_bytes().splitlines(keepends=True)
        kept: list[bytes] = []
        budget = self.max_bytes // 2 - room
        for line in reversed(lines):
            budget -= len(line)
            if budget < 0:
                break
            kept.append(line)
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with temp.open("wb") as handle:
            handle.write(b"".join(reversed(kept)))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, self.path)

    def read(self) -> JsonLines:
        """Every readable entry, oldest first; a missing file is an empty history."""
        try:
            return parse_json_lines(self.path.read_bytes())
        except FileNotFoundError:
            return JsonLines()
        except OSError as error:
            logger.warning("cannot read the ingest history %s: %s", self.path, error)
            return JsonLines()

    def newest_first(self, limit: int | None = None) -> list[dict[str, Any]]:
        entries = self.read().entries[::-1]
        return entries[:limit] if limit else entries

    def last_failures(self) -> dict[str, str]:
        """The failure reasons of the last run, by file (or doc_id when there is no file)."""
        entries = self.read().entries
        if not entries:
            return {}
        failures = entries[-1].get("failures") or []
        return {str(f.get("file") or f.get("doc_id")): str(f.get("reason", "")) for f in failures
                if isinstance(f, dict)}
