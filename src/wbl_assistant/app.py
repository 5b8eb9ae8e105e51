"""The chat page (Gradio): streamed cited answers, a sources panel with the cited PDF page, feedback, and two
tabs that exist only when WBL_ADMIN_PASSWORD is set: Admin (upload a PDF, re-ingest) and Library (what is in
the index; upload with metadata, edit an entry, retire and restore a document; the ingest history).

`build_layout` places the components and wires them to the handlers of `ChatPage`; the work behind the
handlers lives in the library (assistant, pages, feedback, corpus). Everything shown that comes from a
document or a user is escaped first: a PDF or a question holding HTML or script is displayed as text.
Admin handlers are not part of the page's public API, failed passwords cost increasing waits, and an
unexpected error shows the user an id while the details go to the log.
"""

from __future__ import annotations

import hmac
import html
import logging
import math
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from .answering import Answer
from .assistant import Assistant, QuestionError
from .catalog import EDITABLE, CatalogConflict, CatalogError
from .change_answers import replaced_edition_note
from .config import Settings
from .corpus import STATUS_RETIRED, CorpusManager, LibraryError, LibraryRow, UploadRefused
from .editions import report_markdown
from .embeddings import limit_threads
from .feedback import FeedbackError, FeedbackLog
from .ingest_state import STATUSES, IngestError, IngestReport
from .pages import PageError, render_page
from .store import StoreError

logger = logging.getLogger(__name__)

EXAMPLE_QUESTIONS = [
    "How many hours does a career development experience require?",
    "Does the Child Labor Law of 2024 apply to a 15-year-old in a school work-based learning program?",
    "What are the stages of the work-based learning continuum?",
    "Who can coordinate work-based learning in a CTE program?",
]
MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+!|~>-])")
CSS = """
.wbl-sources blockquote {margin: .3rem 0 .8rem 0; padding-left: .6rem; border-left: 3px solid #c9a227;}
.wbl-sources .src {margin-bottom: .4rem;}
.wbl-refusal {color: #7a4b00;}
"""
#: With the Admin tab off, the page accepts no uploads at all: Gradio's upload route refuses anything bigger.
NO_UPLOADS = 1
#: Gradio's cache of uploads and rendered pages: checked every 10 minutes, files older than an hour deleted.
CACHE_CLEANUP = (600, 3600)
#: Streamed text is sent at most this often (seconds), the first time after one interval. Each update costs
#: the page's one Python thread about 10 ms (it serializes every output), and the extractive answer is
#: complete within the first interval: it goes out once, with its sources; an LLM's text streams.
STREAM_INTERVAL = 0.1


def escape_text(text: str) -> str:
    """Text safe for a Markdown component: HTML escaped, Markdown syntax neutralized."""
    return MARKDOWN_SPECIALS.sub(r"\\\1", html.escape(text, quote=False))


def sources_html(answer: Answer | None) -> str:
    if answer is None:
        return "<div class='wbl-sources'><p>Sources of the selected answer appear here.</p></div>"
    if answer.abstained or not answer.citations:
        return ("<div class='wbl-sources wbl-refusal'><p><b>No sources:</b> the documents don't cover this "
                "question.</p></div>")
    parts = ["<div class='wbl-sources'>"]
    for c in answer.citations:
        edition = f", {html.escape(c.edition)}" if c.edition else ""
        parts.append(f"<div class='src'><b>[{c.n}]</b> {html.escape(c.title)}{edition}, page {c.page}"
                     f"<blockquote>{html.escape(c.quote)}</blockquote></div>")
    parts.append("</div>")
    return "".join(parts)


def source_choices(answer: Answer | None) -> list[tuple[str, str]]:
    if answer is None or answer.abstained:
        return []
    return [(f"[{c.n}] {c.title[:60]}, p. {c.page}", str(c.n)) for c in answer.citations]


def ingest_summary(report: IngestReport) -> str:
    counts = " · ".join(f"{s}: {report.count(s)}" for s in STATUSES)
    lines = [f"**Ingest finished** in {report.seconds:.1f} s — {counts} · chunks: {report.chunks}"]
    lines += [f"- failed {escape_text(r.file or r.doc_id)}: {escape_text(r.reason)}" for r in report.failed]
    lines += [f"- warning {escape_text(r.file)}: {escape_text(r.warning)}" for r in report.warnings]
    lines += [f"- changes in {escape_text(r.file)}: {escape_text(r.changes.summary())}"
              for r in report.results if r.changes]
    return "\n".join(lines)


def change_reports(report: IngestReport) -> str:
    """The change report of each document the ingest replaced with a new edition (document text escaped)."""
    return "".join(f"\n\n{report_markdown(r.changes, escape_text)}" for r in report.results if r.changes)


@dataclass
class Turn:
    question: str
    answer: Answer


def history_of(turns: list[Turn]) -> list[dict[str, str]]:
    out = []
    for turn in turns:
        out += [{"role": "user", "content": turn.question}, {"role": "assistant", "content": turn.answer.answer}]
    return out


@dataclass
class _Failures:
    count: int = 0
    locked_until: float = 0.0


@dataclass
class AdminGate:
    """The admin password check. After `free` failures from one client (or `global_limit` from all in
    ten minutes) every attempt must wait, twice as long after each failure, up to `max_wait` seconds.
    Every failure and lockout is logged with the client's address."""

    password: str
    free: int = 3
    base_wait: float = 5.0
    max_wait: float = 900.0
    global_limit: int = 30
    clock: Any = time.monotonic
    _clients: dict[str, _Failures] = field(default_factory=dict)
    _recent: list[float] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def check(self, password: str | None, client: str) -> str | None:
        """None when the password is right and the client may try; else the refusal to show."""
        now = self.clock()
        with self._lock:
            self._recent = [t for t in self._recent if now - t < 600]
            state = self._clients.setdefault(client, _Failures())
            if state.locked_until > now:
                return f"too many wrong passwords: try again in {math.ceil(state.locked_until - now)} s"
            if len(self._recent) >= self.global_limit:
                logger.warning("admin login locked for everyone: %d failures in 10 minutes", len(self._recent))
                return "too many wrong passwords on this site: try again in a few minutes"
            if self.password and hmac.compare_digest((password or "").encode(), self.password.encode()):
                state.count = 0
                return None
            state.count += 1
            self._recent.append(now)
            logger.warning("wrong admin password from %s (failure %d)", client, state.count)
            if state.count >= self.free:
                wait = min(self.max_wait, self.base_wait * 2 ** (state.count - self.free))
                state.locked_until = now + wait
                logger.warning("admin login locked for %s for %.0f s", client, wait)
            return "wrong or missing admin password"


def _client(request: gr.Request | None) -> str:
    return getattr(getattr(request, "client", None), "host", None) or "unknown"


class ChatPage:
    """The page's event handlers. State travels in Gradio's per-session `gr.State` (the list of turns)."""

    def __init__(self, settings: Settings, assistant: Assistant) -> None:
        self.settings = settings
        self.assistant = assistant
        self.feedback = FeedbackLog(settings.feedback_path)
        self.corpus = CorpusManager(settings)
        self.gate = AdminGate(settings.admin_password)
        self.library = LibraryTab(settings, self.corpus, self.gate)

    def respond(self, message: str, chat: list, turns: list[Turn]):
        """Stream the answer into the chat, then show its sources and its first cited page.

        Every yield sends plain values except the source choices at the start and the end: Gradio answers
        a prop update, even an empty `gr.update()`, by building a new component and its config for the
        session, which cost the page more CPU than the answer itself when twenty sessions asked at once."""
        message = (message or "").strip()
        if not message:
            yield chat, turns, "", sources_html(None), gr.update(), None, ""
            return
        chat = [*chat, {"role": "user", "content": escape_text(message)}, {"role": "assistant", "content": ""}]
        yield chat, turns, "", sources_html(None), gr.update(choices=[], value=None), None, ""
        answer = None
        try:
            text, sent = "", time.monotonic()
            for event in self.assistant.stream(message, history_of(turns)):
                if isinstance(event, Answer):
                    answer = event
                    continue
                text += event
                if time.monotonic() - sent >= STREAM_INTERVAL:
                    sent = time.monotonic()
                    chat[-1] = {"role": "assistant", "content": escape_text(text)}
                    yield chat, turns, "", sources_html(None), None, None, ""
        except QuestionError as error:
            chat[-1] = {"role": "assistant", "content": escape_text(f"I can't take that question: {error}.")}
            yield chat, turns, "", sources_html(None), None, None, ""
            return
        except Exception:  # the page must stay usable: a short message with an id, the details in the log
            error_id = secrets.token_hex(4)
            logger.exception("answering failed [error %s]", error_id)
            chat[-1] = {"role": "assistant", "content": escape_text(
                f"Something went wrong on our side (error {error_id}). Please try again in a moment.")}
            yield chat, turns, "", sources_html(None), None, None, ""
            return
        chat[-1] = {"role": "assistant", "content": escape_text(answer.answer)}
        turns = [*turns, Turn(message, answer)]
        choices = source_choices(answer)
        first = choices[0][1] if choices else None
        image, caption = self.page_image(answer, first)
        yield chat, turns, "", sources_html(answer), gr.update(choices=choices, value=first), image, caption

    def page_image(self, answer: Answer | None, choice: str | None):
        """The cited page of the selected source, rendered from the PDF in the corpus folder."""
        if answer is None or not choice or answer.abstained:
            return None, ""
        citation = next((c for c in answer.citations if str(c.n) == str(choice)), None)
        if citation is None:
            return None, ""
        title = escape_text(citation.title)
        try:
            snapshot = self.assistant.reader.snapshot()
        except Exception:  # the index went away under the page: say so, keep the answer
            logger.exception("cannot read the index to show a page")
            return None, f"Cannot show page {citation.page} of {title} now."
        if not snapshot.has(citation.chunk_id):  # a replaced edition's page ("what changed?"): its PDF is gone
            return None, replaced_edition_note(citation, escape_text)
        entry = snapshot.documents.get(citation.doc_id, {})
        file = entry.get("file", "")
        corpus = self.settings.corpus_dir.resolve()
        path = (corpus / file).resolve()
        if not file or path.parent != corpus or not path.is_file():
            return None, f"The PDF of {title} is no longer in the corpus folder."
        ocr_words = (self.settings.ocr_cache_dir, entry.get("sha256", "")) if entry.get("ocr_pages") else None
        try:
            image = render_page(path, citation.page, citation.quote, self.settings.render_max_px,
                                self.settings.page_cache_dir, ocr_words)
        except PageError as error:
            return None, f"Cannot show page {citation.page} of {title}: {escape_text(str(error))}"
        return image, f"\\[{citation.n}\\] {title}, page {citation.page} (cited passage highlighted)"

    def show_page(self, choice: str | None, turns: list[Turn]):
        return self.page_image(turns[-1].answer if turns else None, choice)

    def _record(self, turn: Turn, history: list[Turn], vote: str, comment: str = "") -> None:
        citations = [{"n": c.n, "doc_id": c.doc_id, "page": c.page, "chunk_id": c.chunk_id}
                     for c in turn.answer.citations]
        self.feedback.record(turn.question, turn.answer.answer, turn.answer.abstained, citations,
                             history_of(history), vote, comment)

    def vote(self, kind: str, comment: str, turns: list[Turn]):
        if not turns:
            return "Ask a question first; then rate its answer.", comment
        try:
            self._record(turns[-1], turns[:-1], kind, comment or "")
        except FeedbackError as error:
            return escape_text(f"Your vote could not be recorded: {error}."), comment
        return f"Thanks — your vote ({'helpful' if kind == 'up' else 'not helpful'}) was recorded.", ""

    def vote_up(self, comment: str, turns: list[Turn]):
        return self.vote("up", comment, turns)

    def vote_down(self, comment: str, turns: list[Turn]):
        return self.vote("down", comment, turns)

    def liked(self, data: gr.LikeData, turns: list[Turn]):
        index = data.index[0] if isinstance(data.index, list | tuple) else data.index
        number = int(index) // 2
        if not 0 <= number < len(turns):
            return ""
        try:
            self._record(turns[number], turns[:number], "up" if data.liked else "down")
        except FeedbackError as error:
            return escape_text(f"Your feedback could not be recorded: {error}.")
        return "Thanks — your feedback was recorded."

    @staticmethod
    def example(data: gr.SelectData) -> str:
        value = data.value
        return value.get("text", "") if isinstance(value, dict) else str(value)

    def admin_upload(self, password: str | None, file: str | None, request: gr.Request = None) -> str:
        refusal = self.gate.check(password, _client(request))
        try:
            if refusal:
                return f"**Refused:** {escape_text(refusal)}. Nothing was uploaded."
            if not file:
                return "Choose a PDF to upload first."
            try:
                change = self.corpus.add_pdf(Path(file), who=f"admin {_client(request)}")
            except UploadRefused as error:
                return f"**Refused:** {escape_text(str(error))}. Nothing was uploaded."
            except IngestError as error:
                return f"**Not uploaded:** {escape_text(str(error))}. The corpus is unchanged."
            logger.info("admin %s %s %s", _client(request), "replaced" if change.replaced else "added", change.name)
            if change.restored:
                note = (f"The new {escape_text(change.name)} could not be ingested; the previous edition was put "
                        "back.\n\n")
            else:
                note = f"{'Replaced' if change.replaced else 'Added'} {escape_text(change.name)} in the corpus.\n\n"
            return note + ingest_summary(change.report) + change_reports(change.report)
        finally:
            if file:
                Path(file).unlink(missing_ok=True)

    def admin_reingest(self, password: str | None, request: gr.Request = None) -> str:
        refusal = self.gate.check(password, _client(request))
        if refusal:
            return f"**Refused:** {escape_text(refusal)}."
        try:
            report = self.corpus.reingest(who=f"admin {_client(request)}")
        except IngestError as error:
            return f"**Ingest failed:** {escape_text(str(error))}"
        return ingest_summary(report) + change_reports(report)


#: The Library table's columns; a row is identified by its File cell.
LIBRARY_COLUMNS = ("Title", "Publisher", "Edition", "Kind", "Pages", "Chunks", "File", "SHA-256", "Ingested at",
                   "Status", "First page")
LIBRARY_TYPES = ("str", "str", "str", "str", "number", "number", "str", "str", "str", "str", "str")
LIBRARY_WIDTHS = (280, 170, 110, 100, 80, 80, 210, 120, 150, 220, 120)
FILE_COLUMN = LIBRARY_COLUMNS.index("File")
#: Runs of the ingest history shown in the Library tab.
HISTORY_SHOWN = 30
#: Errors of a library action that the admin can act on: the message is shown, nothing was changed.
LIBRARY_ERRORS = (CatalogError, LibraryError, UploadRefused, IngestError, StoreError)


def library_status(row: LibraryRow) -> str:
    if row.status == STATUS_RETIRED:
        return f"retired {row.retired_at.replace('T', ' ').rstrip('Z')}".strip()
    return f"{row.status}: {row.reason}" if row.reason else row.status


def library_table(rows: list[LibraryRow]) -> list[list[Any]]:
    """The rows as the Library table shows them (plain text cells: the Dataframe displays them as text)."""
    return [[row.title, row.publisher, row.edition, row.kind, row.pages, row.chunks, row.file, row.sha256[:12],
             time.strftime("%Y-%m-%d %H:%M", time.localtime(row.ingested_at)) if row.ingested_at else "",
             library_status(row), "open page 1" if row.file else ""] for row in rows]


def library_choices(rows: list[LibraryRow]) -> list[tuple[str, str]]:
    def label(row: LibraryRow) -> str:
        title = row.title if len(row.title) <= 70 else row.title[:69] + "…"
        return f"{title} — {row.file}" + (" (retired)" if row.status == STATUS_RETIRED else "")

    return [(label(row), row.file) for row in rows if row.file]


def history_markdown(entries: list[dict[str, Any]]) -> str:
    """The ingest history, newest first: when, who, what for, counts, failures with reasons, changed files."""
    if not entries:
        return "No ingest recorded yet."
    lines = []
    for entry in entries:
        counts = entry.get("counts") or {}
        shown = " · ".join(f"{status} {counts.get(status, 0)}" for status in STATUSES)
        action = " ".join(filter(None, [str(entry.get("action", "")), str(entry.get("target", ""))]))
        when = str(entry.get("time", "")).replace("T", " ").replace("Z", " UTC")
        lines.append(f"- **{escape_text(when)}** · {escape_text(str(entry.get('who', '')))} · "
                     f"{escape_text(action)} — {escape_text(shown)}")
        for key in ("added", "updated", "removed"):
            files = [str(d.get("file") or d.get("doc_id")) for d in entry.get(key) or [] if isinstance(d, dict)]
            if files:
                lines.append(f"  - {key}: {escape_text(', '.join(files[:20]))}" + (" …" if len(files) > 20 else ""))
        for updated in entry.get("updated") or []:
            if isinstance(updated, dict) and updated.get("change_report"):
                counts = updated.get("change_counts") or {}
                shown = ", ".join(f"{counts.get(kind, 0)} {kind}" for kind in ("changed", "added", "removed"))
                name = escape_text(str(updated.get("file") or updated.get("doc_id")))
                lines.append(f"  - change report of {name} ({shown}): "
                             f"{escape_text(str(updated['change_report']))} in the data folder; the chat "
                             "answers \"what changed in …?\"")
        for failure in entry.get("failures") or []:
            if isinstance(failure, dict):
                lines.append(f"  - failed {escape_text(str(failure.get('file') or failure.get('doc_id')))}: "
                             f"{escape_text(str(failure.get('reason', '')))}")
    return "\n".join(lines)


class LibraryTab:
    """The Library tab's handlers. Every one checks the admin password first, with the Admin tab's gate (its
    backoff counts failures from either tab); the work is CorpusManager's, shared with the CLI."""

    def __init__(self, settings: Settings, corpus: CorpusManager, gate: AdminGate) -> None:
        self.settings = settings
        self.corpus = corpus
        self.gate = gate

    def _refusal(self, password: str | None, request: gr.Request | None, what: str) -> str | None:
        refusal = self.gate.check(password, _client(request))
        return f"**Refused:** {escape_text(refusal)}. {what}" if refusal else None

    @staticmethod
    def _failure(error: Exception, what: str) -> str:
        if isinstance(error, LIBRARY_ERRORS):
            return f"**{what}:** {escape_text(str(error))}. Nothing was changed."
        error_id = secrets.token_hex(4)
        logger.exception("library action failed [error %s]", error_id)
        return f"**{what}:** something went wrong on our side (error {error_id}). Nothing was changed."

    def _listing(self, selected: str | None = None, rows: list[LibraryRow] | None = None) -> tuple:
        """(table, document picker, history) as they are now; `selected` stays picked if it is still listed."""
        rows = self.corpus.library() if rows is None else rows
        choices = library_choices(rows)
        value = selected if selected in {file for _, file in choices} else None
        history = history_markdown(self.corpus.history.newest_first(HISTORY_SHOWN))
        return library_table(rows), gr.update(choices=choices, value=value), history

    def _after_change(self, note: str, file: str | None, form: bool = True, page: bool = False) -> tuple:
        """The status, then the listing (and the form, and the first page) as they are after a change. The
        change is done: if the view cannot be rebuilt, the status says so instead of failing the event."""
        try:
            return (note, *self._listing(file), *(self._form(file) if form else ()),
                    *(self.first_page(file) if page else ()))
        except Exception:
            logger.exception("library: cannot show the library after a change to %s", file)
            count = 3 + (len(EDITABLE) + 1 if form else 0) + (2 if page else 0)
            return note + "\n\nShow the library again to see the change.", *(gr.update(),) * count

    def _form(self, file: str | None) -> tuple:
        """(title, publisher, edition, kind, audience, loaded values) of the document `file`."""
        if not file:
            return *([""] * len(EDITABLE)), {}
        values = self.corpus.editable_values(self.corpus.find(file))
        return *[values[key] for key in EDITABLE], values

    def show(self, password: str | None, request: gr.Request = None) -> tuple:
        refusal = self._refusal(password, request, "The library is not shown.")
        if refusal:
            return refusal, gr.update(), gr.update(), gr.update()
        try:
            rows = self.corpus.library()
            return f"{len(rows)} documents.", *self._listing(rows=rows)
        except Exception as error:
            return self._failure(error, "Cannot show the library"), gr.update(), gr.update(), gr.update()

    def pick(self, password: str | None, file: str | None, request: gr.Request = None) -> tuple:
        """Fill the edit form with the document's catalog values and show its first page."""
        refusal = self._refusal(password, request, "")
        if refusal:
            return refusal, *(gr.update(),) * (len(EDITABLE) + 3)
        return self._picked(file)

    def pick_row(self, password: str | None, data: gr.SelectData, request: gr.Request = None) -> tuple:
        """A click in the table (any cell; the last column says "open page 1"): that row's document is picked,
        the form filled and its first page shown."""
        refusal = self._refusal(password, request, "")
        if refusal:
            return gr.update(), refusal, *(gr.update(),) * (len(EDITABLE) + 3)
        row = data.row_value if isinstance(data.row_value, list) else []
        file = str(row[FILE_COLUMN]) if len(row) > FILE_COLUMN else None
        return gr.update(value=file), *self._picked(file)

    def _picked(self, file: str | None) -> tuple:
        try:
            form = self._form(file)
            image, caption = self.first_page(file)
        except Exception as error:
            return self._failure(error, "Cannot open the document"), *(gr.update(),) * (len(EDITABLE) + 3)
        return "", *form, image, caption

    def open_page(self, password: str | None, file: str | None, request: gr.Request = None) -> tuple:
        refusal = self._refusal(password, request, "")
        if refusal:
            return refusal, gr.update(), gr.update()
        try:
            return "", *self.first_page(file)
        except Exception as error:
            return self._failure(error, "Cannot open the document"), gr.update(), gr.update()

    def first_page(self, file: str | None) -> tuple[Any, str]:
        """Page 1 of the document's PDF (a retired one's from retired/), as the sources viewer renders pages."""
        if not file:
            return None, "Pick a document first."
        row = self.corpus.find(file)
        title = escape_text(row.title or row.file)
        path = self.corpus.pdf_path(row)
        if path is None:
            return None, f"The PDF of {title} is not in the corpus folder."
        try:
            image = render_page(path, 1, "", self.settings.render_max_px, self.settings.page_cache_dir)
        except PageError as error:
            return None, f"Cannot show page 1 of {title}: {escape_text(str(error))}"
        pages = f" of {row.pages}" if row.pages else ""
        return image, f"{title}, page 1{pages} ({escape_text(row.file)}{', retired' if row.retired_file else ''})"

    def save(self, password: str | None, file: str | None, title: str, publisher: str, edition: str, kind: str,
             audience: str, loaded: dict[str, str] | None, request: gr.Request = None) -> tuple:
        """Write the fields the admin changed (since they picked the document) to its catalog entry; ingest."""
        unchanged = (gr.update(),) * (3 + len(EDITABLE) + 1)
        refusal = self._refusal(password, request, "Nothing was saved.")
        if refusal:
            return refusal, *unchanged
        if not file:
            return "Pick a document first.", *unchanged
        values = dict(zip(EDITABLE, (title, publisher, edition, kind, audience), strict=True))
        try:
            change = self.corpus.set_metadata(file, values, expected=loaded or None, who=f"admin {_client(request)}")
        except CatalogConflict as error:
            return f"**Not saved:** {escape_text(str(error))}.", *unchanged
        except Exception as error:
            return self._failure(error, "Not saved"), *unchanged
        if not change.changed:
            note = f"Nothing to save: the entry of {escape_text(file)} already has these values."
        elif change.report is None:
            note = f"Saved the catalog entry of {escape_text(file)}. It is retired: the index is unchanged."
        else:
            note = f"Saved the catalog entry of {escape_text(file)}.\n\n" + ingest_summary(change.report)
        return self._after_change(note, file)

    def retire(self, password: str | None, file: str | None, request: gr.Request = None) -> tuple:
        unchanged = (gr.update(),) * (3 + len(EDITABLE) + 1 + 2)
        refusal = self._refusal(password, request, "Nothing was retired.")
        if refusal:
            return refusal, *unchanged
        if not file:
            return "Pick a document first.", *unchanged
        try:
            change = self.corpus.retire(file, who=f"admin {_client(request)}")
        except Exception as error:
            return self._failure(error, "Not retired"), *unchanged
        moved = (change.entry or {}).get("retired_file")
        note = (f"Retired {escape_text(file)}" + (f": its PDF is now corpus/{escape_text(moved)}" if moved else "")
                + ". **Restore** undoes it.\n\n" + ingest_summary(change.report))
        return self._after_change(note, file, page=True)

    def restore(self, password: str | None, file: str | None, request: gr.Request = None) -> tuple:
        unchanged = (gr.update(),) * (3 + len(EDITABLE) + 1 + 2)
        refusal = self._refusal(password, request, "Nothing was restored.")
        if refusal:
            return refusal, *unchanged
        if not file:
            return "Pick a document first.", *unchanged
        try:
            change = self.corpus.restore(file, who=f"admin {_client(request)}")
        except Exception as error:
            return self._failure(error, "Not restored"), *unchanged
        note = f"Restored {escape_text(file)} to the corpus and the index.\n\n" + ingest_summary(change.report)
        return self._after_change(note, file, page=True)

    def prefill(self, password: str | None, file: str | None, request: gr.Request = None) -> tuple:
        """The upload form's fields for the chosen PDF: the entry of the document it replaces, else the PDF's
        own title and author."""
        unchanged = (gr.update(),) * len(EDITABLE)
        if not file:
            return "", *unchanged
        refusal = self._refusal(password, request, "Enter the admin password, then choose the PDF again.")
        if refusal:
            return refusal, *unchanged
        try:
            defaults = self.corpus.upload_defaults(Path(file))
        except Exception as error:
            return self._failure(error, "Cannot use this PDF"), *unchanged
        name = escape_text(defaults.name)
        if defaults.replaces is not None:
            edition = escape_text(defaults.replaces.edition or "no edition")
            note = (f"{name} replaces **{escape_text(defaults.replaces.title)}** ({edition}): the fields hold its "
                    "catalog entry; update the edition.")
        else:
            note = f"{name} is a new document: the title and publisher come from the PDF; check them."
        return note, *[defaults.values.get(key, "") for key in EDITABLE]

    def upload(self, password: str | None, file: str | None, title: str, publisher: str, edition: str, kind: str,
               audience: str, request: gr.Request = None) -> tuple:
        """Check the fields, put the PDF in the corpus with its catalog entry, ingest."""
        unchanged = (gr.update(),) * 3
        try:
            refusal = self._refusal(password, request, "Nothing was uploaded; choose the PDF again.")
            if refusal:
                return refusal, *unchanged, None
            if not file:
                return "Choose a PDF to upload first.", *unchanged, None
            values = dict(zip(EDITABLE, (title, publisher, edition, kind, audience), strict=True))
            try:
                change = self.corpus.add_pdf(Path(file), metadata=values, who=f"admin {_client(request)}")
            except Exception as error:
                return self._failure(error, "Not uploaded") + " Choose the PDF again.", *unchanged, None
            logger.info("admin %s %s %s with its catalog entry", _client(request),
                        "replaced" if change.replaced else "added", change.name)
            name = escape_text(change.name)
            if any(r.file == change.name for r in change.report.failed):
                note = (f"The new {name} could not be ingested; "
                        + ("the previous edition was put back" if change.restored else "it was not added")
                        + " and the catalog is unchanged.\n\n")
            else:
                note = f"{'Replaced' if change.replaced else 'Added'} {name} with its catalog entry.\n\n"
            return *self._after_change(note + ingest_summary(change.report) + change_reports(change.report),
                                       change.name, form=False), None
        finally:
            if file:
                Path(file).unlink(missing_ok=True)


def build_layout(settings: Settings, page: ChatPage) -> gr.Blocks:
    """The components, and which handler each event calls."""
    with gr.Blocks(title="WBL Assistant", analytics_enabled=False, delete_cache=CACHE_CLEANUP) as app:
        turns = gr.State([])
        gr.Markdown("## Illinois Work-Based Learning Assistant\nAnswers come only from the guidance documents, "
                    "with the page they come from. When the documents don't say, the assistant says so.")
        with gr.Tab("Chat"), gr.Row():
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(
                    label="Chat", height=520, elem_id="chat",
                    examples=[{"text": q} for q in EXAMPLE_QUESTIONS],
                    placeholder="Ask about work-based learning in Illinois: CDE hours, the WBL continuum, "
                                "endorsements, internships, child labor rules for students, ...",
                    feedback_options=("Like", "Dislike"),
                )
                with gr.Row():
                    question = gr.Textbox(placeholder="Type a question and press Enter", show_label=False,
                                          scale=5, elem_id="question", max_length=2000)
                    send = gr.Button("Ask", variant="primary", scale=1, elem_id="ask")
                with gr.Row():
                    comment = gr.Textbox(placeholder="Optional comment on the last answer", show_label=False,
                                         scale=4, elem_id="comment", max_length=2000)
                    up = gr.Button("Helpful", scale=1, elem_id="vote-up")
                    down = gr.Button("Not helpful", scale=1, elem_id="vote-down")
                thanks = gr.Markdown(elem_id="feedback-status")
            with gr.Column(scale=2):
                gr.Markdown("### Sources")
                sources = gr.HTML(sources_html(None), elem_id="sources")
                source_pick = gr.Radio(label="Show the cited page", choices=[], elem_id="source-pick")
                caption = gr.Markdown(elem_id="page-caption")
                image = gr.Image(label="Cited page", type="filepath", interactive=False, elem_id="page-image",
                                 height=600)
        if settings.admin_password:
            with gr.Tab("Admin"):
                gr.Markdown("Upload a new edition or a new document (PDF), then re-ingest. "
                            f"PDFs only, up to {settings.upload_max_mb} MB.")
                password = gr.Textbox(label="Admin password", type="password", elem_id="admin-password")
                upload = gr.File(label="PDF", file_types=[".pdf"], type="filepath", elem_id="admin-file")
                with gr.Row():
                    upload_button = gr.Button("Upload and re-ingest", variant="primary", elem_id="admin-upload")
                    reingest_button = gr.Button("Re-ingest the corpus folder", elem_id="admin-reingest")
                admin_status = gr.Markdown(elem_id="admin-status")
                private = {"api_visibility": "private", "concurrency_limit": 1, "concurrency_id": "admin"}
                upload_button.click(page.admin_upload, [password, upload], admin_status, **private)
                reingest_button.click(page.admin_reingest, [password], admin_status, **private)
            with gr.Tab("Library"):
                library_layout(settings, page.library)

        outputs = [chatbot, turns, question, sources, source_pick, image, caption]
        question.submit(page.respond, [question, chatbot, turns], outputs)
        send.click(page.respond, [question, chatbot, turns], outputs)
        chatbot.example_select(page.example, None, question).then(page.respond, [question, chatbot, turns], outputs)
        source_pick.change(page.show_page, [source_pick, turns], [image, caption])
        up.click(page.vote_up, [comment, turns], [thanks, comment])
        down.click(page.vote_down, [comment, turns], [thanks, comment])
        chatbot.like(page.liked, [turns], thanks)
    app.queue(default_concurrency_limit=4, api_open=False)
    return app


def _metadata_fields(prefix: str) -> list[gr.Textbox]:
    """The catalog fields of a document, as text boxes with ids `<prefix>-<field>`."""
    hints = {"title": "As citations show it", "publisher": "e.g. Illinois State Board of Education (ISBE)",
             "edition": "e.g. 2026, or 2019, updated August 2024", "kind": "manual, guide, toolkit, reference, ...",
             "audience": "Who it is for (optional)"}
    with gr.Row():
        boxes = [gr.Textbox(label=key.capitalize(), placeholder=hints[key], elem_id=f"{prefix}-{key}",
                            max_length=600, scale=2 if key in ("title", "audience") else 1) for key in EDITABLE]
    return boxes


def library_layout(settings: Settings, tab: LibraryTab) -> None:
    """The Library tab's components and events (inside its `gr.Tab`). Every event is private (not part of the
    page's API) and checks the admin password; changes run one at a time with the Admin tab's."""
    gr.Markdown("What is in the index, and changes to it. Enter the admin password, then **Show the library**. "
                "Sort or filter by a column from the ⋮ menu of its header, or type in the search box; click a "
                "row to edit that document or see its first page. Nothing is deleted: a retired document's PDF "
                "moves to `corpus/retired/` and **Restore** brings it back.")
    with gr.Row():
        password = gr.Textbox(label="Admin password", type="password", elem_id="library-password", scale=3)
        show = gr.Button("Show the library", variant="primary", elem_id="library-show", scale=1)
    status = gr.Markdown(elem_id="library-status")
    table = gr.Dataframe(headers=list(LIBRARY_COLUMNS), datatype=list(LIBRARY_TYPES), interactive=False,
                         show_search="search", wrap=True, max_height=460, elem_id="library-table",
                         column_widths=list(LIBRARY_WIDTHS),
                         label="Documents", buttons=["fullscreen", "copy"])
    with gr.Row():
        with gr.Column(scale=3):
            gr.Markdown("### Edit, retire or restore a document")
            picked = gr.Dropdown(label="Document", choices=[], elem_id="library-doc", interactive=True)
            fields = _metadata_fields("library-edit")
            with gr.Row():
                save = gr.Button("Save metadata and re-ingest", variant="primary", elem_id="library-save")
                open_page = gr.Button("Open page 1", elem_id="library-open")
                retire = gr.Button("Retire", variant="stop", elem_id="library-retire")
                restore = gr.Button("Restore", elem_id="library-restore")
        with gr.Column(scale=2):
            caption = gr.Markdown(elem_id="library-caption")
            image = gr.Image(label="First page", type="filepath", interactive=False, elem_id="library-page", height=520)
    gr.Markdown(f"### Add or replace a PDF\nPDFs only, up to {settings.upload_max_mb} MB. Choosing the file fills "
                "the fields from the entry of the document it replaces (same file name) or from the PDF itself.")
    upload = gr.File(label="PDF", file_types=[".pdf"], type="filepath", elem_id="library-file")
    new_fields = _metadata_fields("library-new")
    upload_button = gr.Button("Upload, catalog and ingest", variant="primary", elem_id="library-upload")
    upload_status = gr.Markdown(elem_id="library-upload-status")
    gr.Markdown("### Ingest history (newest first)")
    history = gr.Markdown(elem_id="library-history")
    loaded = gr.State({})

    changing = {"api_visibility": "private", "concurrency_limit": 1, "concurrency_id": "admin"}
    reading = {"api_visibility": "private", "concurrency_limit": 2, "concurrency_id": "library-read"}
    listing, form, page = [table, picked, history], [*fields, loaded], [image, caption]
    show.click(tab.show, [password], [status, *listing], **reading)
    table.select(tab.pick_row, [password], [picked, status, *form, *page], **reading)
    picked.input(tab.pick, [password, picked], [status, *form, *page], **reading)
    open_page.click(tab.open_page, [password, picked], [status, *page], **reading)
    save.click(tab.save, [password, picked, *fields, loaded], [status, *listing, *form], **changing)
    retire.click(tab.retire, [password, picked], [status, *listing, *form, *page], **changing)
    restore.click(tab.restore, [password, picked], [status, *listing, *form, *page], **changing)
    upload.upload(tab.prefill, [password, upload], [upload_status, *new_fields], **reading)
    upload_button.click(tab.upload, [password, upload, *new_fields], [upload_status, *listing, upload], **changing)


class RouteGuard:
    """ASGI middleware in front of Gradio's routes.

    - The named routes (`/gradio_api/call/NAME`, `/api/NAME`, `/run/NAME`) answer only the page's public
      events: Gradio still resolves a private event (the admin handlers) by its name there, so any other name
      gets a 404 (and an unknown one no traceback in the log).
      The page itself calls events through `/gradio_api/queue/join` with their index, as any client can, so
      the admin handlers are never unreachable: the password gate (with its backoff) is what guards them.
    - With the Admin tab off, the page takes no files at all: the upload routes answer 403 and nothing is kept.
    """

    NAMED = re.compile(r"^/gradio_api/(?:call/v2|call|api|run)/([^/]+)/?$")
    UPLOADS = ("/gradio_api/upload", "/gradio_api/process_recording")

    def __init__(self, app: Any, public_names: frozenset[str] = frozenset(), uploads: bool = False) -> None:
        self.app = app
        self.public_names = public_names
        self.uploads = uploads

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope.get("method") == "POST":
            path = scope.get("path", "")
            named = self.NAMED.match(path)
            if named and named.group(1) not in self.public_names:
                await _plain(send, 404, "Not found")
                return
            if not self.uploads and path.rstrip("/") in self.UPLOADS:
                await _plain(send, 403, "This page does not accept uploads.")
                return
        await self.app(scope, receive, send)


async def _plain(send: Any, status: int, text: str) -> None:
    body = text.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def public_api_names(app: gr.Blocks) -> frozenset[str]:
    """The names of the events that are part of the page's public API."""
    return frozenset(fn.api_name for fn in app.fns.values()
                     if isinstance(fn.api_name, str) and fn.api_visibility == "public")


def build_app(settings: Settings, assistant: Assistant | None = None) -> gr.Blocks:
    return build_layout(settings, ChatPage(settings, assistant or Assistant(settings)))


def launch(settings: Settings, host: str, port: int, assistant: Assistant | None = None,
           block: bool = True) -> gr.Blocks:
    app = build_app(settings, assistant)
    from starlette.middleware import Middleware

    limit_threads(settings.page_model_threads)
    max_upload = f"{settings.upload_max_mb}mb" if settings.admin_password else NO_UPLOADS
    guard = Middleware(RouteGuard, public_names=public_api_names(app), uploads=bool(settings.admin_password))
    app.launch(server_name=host, server_port=port, prevent_thread_lock=not block, quiet=True,
               max_file_size=max_upload, css=CSS, footer_links=[], allowed_paths=[str(settings.page_cache_dir)],
               show_error=False,
               app_kwargs={"middleware": [guard]})
    return app
