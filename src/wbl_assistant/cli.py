"""`wbl-assistant`: a thin command line over the Python API (ingest, ask, serve, eval)."""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from .config import ConfigError, Settings
from .ingest_state import STATUSES, IngestBusyError, IngestError, IngestReport, unchanged_report
from .ingest_state import Progress as IngestProgress

console = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)
#: A history file bigger than this is refused before it is read.
MAX_HISTORY_BYTES = 1_000_000
#: Libraries whose warnings are noise for our users (pypdf on odd but readable PDFs).
QUIET_LOGGERS = {"pypdf": logging.ERROR}

#: Errors a user can act on: printed as one line, exit status 2, no traceback.
USER_ERRORS: tuple[type[Exception], ...] = (ConfigError, IngestError)


def _user_errors() -> tuple[type[Exception], ...]:
    from .assistant import QuestionError
    from .backends import LLMError
    from .catalog import CatalogError
    from .corpus import LibraryError, UploadRefused
    from .embeddings import EmbeddingModelError
    from .evaluation.compare import CompareError
    from .evaluation.dataset import DatasetError
    from .evaluation.suite import SuiteError
    from .retrieval import NotIngestedError
    from .store import StoreError

    return (*USER_ERRORS, CatalogError, StoreError, EmbeddingModelError, QuestionError, NotIngestedError, LLMError,
            UploadRefused, LibraryError, DatasetError, SuiteError, CompareError)


def friendly(command: Callable[..., Any]) -> Callable[..., Any]:
    """Run a command with user errors turned into a one-line message and exit status 2."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt:
            console.print("[yellow]interrupted[/yellow]: the previous index is unchanged")
            sys.exit(130)
        except IngestBusyError as error:
            print_error(error)
            sys.exit(1)
        except Exception as error:
            if not isinstance(error, _user_errors()):
                raise
            print_error(error)
            sys.exit(2)

    return wrapper


def print_error(error: Exception | str) -> None:
    """One line on stderr; the message is shown as text (Rich markup in it is not interpreted)."""
    console.print("[red]error:[/red] ", end="")
    console.print(str(error), markup=False)


def load_settings(**overrides: Any) -> Settings:
    return Settings.from_env(**{k: v for k, v in overrides.items() if v is not None})


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log what happens (to stderr).")
def main(verbose: bool) -> None:
    """Grounded answers about Illinois work-based learning, from the guidance documents, with citations."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(message)s")
    for name, level in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(level)


class _BarProgress(IngestProgress):
    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task = None
        self.chunks = 0

    def planned(self, documents: int, to_process: int) -> None:
        self.task = self.progress.add_task("documents", total=max(to_process, 1) if to_process else 0,
                                           chunks=0, name="")
        if not to_process:
            self.progress.update(self.task, total=1, completed=1, name="nothing changed")

    def processing(self, name: str) -> None:
        self.progress.update(self.task, name=name)

    def page(self, name: str, done: int, total: int) -> None:
        self.progress.update(self.task, name=f"{name} (page {done}/{total})")

    def processed(self, name: str, chunks: int) -> None:
        self.chunks += chunks
        self.progress.update(self.task, advance=1, chunks=self.chunks, name=name)

    def ocr_page(self, name: str, page: int, pages: int) -> None:
        self.progress.update(self.task, name=f"{name} · OCR page {page}/{pages}")


@contextmanager
def ingest_progress(quiet: bool = False) -> Iterator[IngestProgress]:
    """A progress bar on stderr (documents, chunks) for one ingest run."""
    columns = [TextColumn("[bold]ingest[/bold]"), BarColumn(), MofNCompleteColumn(),
               TextColumn("documents · {task.fields[chunks]} chunks"), TimeElapsedColumn(),
               TextColumn("{task.fields[name]}")]
    with Progress(*columns, console=console, transient=False, disable=quiet) as progress:
        yield _BarProgress(progress)


def run_ingest(settings: Settings, rebuild: bool = False, quiet: bool = False) -> IngestReport:
    """Ingest with a progress bar on stderr (documents, chunks), as `ingest` and `serve` show it. A run with
    nothing to do is answered before the ingest machinery (Chroma, the PDF libraries) is even imported."""
    if not rebuild and (quick := unchanged_report(settings)) is not None:
        return quick
    from .ingestion import ingest

    with ingest_progress(quiet) as progress:
        return ingest(settings, rebuild=rebuild, progress=progress)


def record_run(settings: Settings, report: IngestReport, action: str) -> None:
    """Add the run to the ingest history (the Library tab's), as run by this CLI's user."""
    from .history import IngestHistory, cli_user

    IngestHistory(settings.ingest_history_path).record(report, cli_user(), action)


#: A warning many files share is shown for this many of them, then counted.
SAME_WARNING_SHOWN = 5


def print_ingest_summary(report: IngestReport, settings: Settings) -> None:
    table = Table(title="Ingest summary", show_edge=False)
    for status in STATUSES:
        table.add_column(status, justify="right")
    table.add_column("chunks", justify="right")
    table.add_column("seconds", justify="right")
    table.add_row(*[str(report.count(s)) for s in STATUSES], str(report.chunks), f"{report.seconds:.1f}")
    console.print(table)
    for result in report.failed:
        console.print("[red]failed[/red] ", end="")
        console.print(f"{result.file or result.doc_id}: {result.reason}", markup=False)
    by_text: dict[str, list[str]] = {}
    for result in report.warnings:
        by_text.setdefault(result.warning, []).append(result.file)
    for warning, files in by_text.items():
        shown = files if len(files) <= SAME_WARNING_SHOWN + 1 else files[:SAME_WARNING_SHOWN]
        for file in shown:
            console.print("[yellow]warning[/yellow] ", end="")
            console.print(f"{file}: {warning}", markup=False)
        if len(shown) < len(files):
            console.print("[yellow]warning[/yellow] ", end="")
            console.print(f"... and {len(files) - len(shown)} more files: {warning}", markup=False)
    for result in (r for r in report.results if r.changes):
        from .editions import report_files

        console.print("[cyan]changes[/cyan] ", end="")
        console.print(f"{result.file}: {result.changes.summary()} ({report_files(settings, result.changes)[1]})",
                      markup=False)
    where = (f"Chroma server {settings.chroma_host}:{settings.chroma_port}" if settings.uses_server
             else str(settings.chroma_path))
    state = "index updated" if report.switched else "index unchanged"
    console.print(f"{state} ({where})")


@main.command()
@click.option("--rebuild", is_flag=True, help="Re-extract and re-embed every document.")
@click.option("--corpus", "corpus_dir", type=click.Path(path_type=Path),
              help="Folder of PDFs (default: WBL_CORPUS_DIR or ./corpus).")
@friendly
def ingest(rebuild: bool, corpus_dir: Any) -> None:
    """Make the index match the corpus folder (added, updated, unchanged, removed, failed)."""
    settings = load_settings(corpus_dir=corpus_dir)
    report = run_ingest(settings, rebuild=rebuild)
    record_run(settings, report, "rebuild" if rebuild else "ingest")
    print_ingest_summary(report, settings)
    sys.exit(1 if report.failed else 0)

def read_history(path: Path) -> list[dict[str, str]]:
    """A chat history file: a JSON list of {role, content}."""
    from .assistant import QuestionError

    try:
        if path.stat().st_size > MAX_HISTORY_BYTES:
            raise QuestionError(f"the history file {path} is over {MAX_HISTORY_BYTES // 1000} kB; keep the last "
                                "turns only")
        raw = path.read_bytes().decode("utf-8")
    except OSError as error:
        raise QuestionError(f"cannot read the history file {path} ({error.strerror})") from None
    except UnicodeDecodeError:
        raise QuestionError(f"the history file {path} is not UTF-8 text") from None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as error:
        raise QuestionError(f"the history file {path} is not valid JSON ({error.msg}, line {error.lineno})") from None
    except RecursionError:
        raise QuestionError(f'the history file {path} is nested too deeply: it must be a JSON list of '
                            '{"role", "content"} objects') from None
    if not isinstance(data, list):
        raise QuestionError(f'the history file {path} must hold a JSON list of {{"role", "content"}} objects')
    return data


def print_answer(answer) -> None:
    out.print(answer.answer, markup=False)
    if answer.citations:
        out.print()
        out.print("[bold]Sources[/bold]")
        for c in answer.citations:
            edition = f", {c.edition}" if c.edition else ""
            out.print(f"[{c.n}] {c.title}{edition}, page {c.page}", markup=False)
            out.print(f"    \u201c{c.quote}\u201d", markup=False, style="dim")


@main.command()
@click.argument("question")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@click.option("--history", "history_file", type=click.Path(path_type=Path, dir_okay=False),
              help="JSON list of earlier turns: [{\"role\": \"user\", \"content\": \"...\"}, ...]")
@click.option("--backend", type=click.Choice(["extractive", "openai", "llamacpp"]),
              help="Answer backend (default: WBL_BACKEND or extractive).")
@friendly
def ask(question: str, as_json: bool, history_file: Path | None, backend: str | None) -> None:
    """Answer QUESTION from the ingested documents, with numbered sources."""
    from .assistant import Assistant, validate
    from .backends import make_backend

    history = read_history(history_file) if history_file else None
    validate(question, history)
    settings = load_settings(backend=backend)
    answer = Assistant(settings, backend=make_backend(settings)).ask(question, history)
    if answer.guard and answer.guard.get("error"):
        console.print(f"[yellow]warning[/yellow]: {answer.guard['error']}; answered extractively")
    if as_json:
        out.print_json(json.dumps(answer.to_json(), ensure_ascii=False))
    else:
        print_answer(answer)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=7860, show_default=True, type=int, help="Port of the chat page.")
@click.option("--no-ingest", is_flag=True, help="Serve the index as it is, without syncing it to the corpus.")
@friendly
def serve(host: str, port: int, no_ingest: bool) -> None:
    """Start the chat page. First brings the index in line with the corpus folder (fast when unchanged)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from .app import launch
    from .assistant import Assistant
    from .backends import make_backend
    from .store import IndexStore

    settings = load_settings()
    if not no_ingest:
        try:
            report = run_ingest(settings)
        except IngestError as error:
            if IndexStore(settings).active() is None:
                raise
            console.print("[yellow]warning[/yellow]: ", end="")
            console.print(f"{error}; serving the existing index", markup=False)
        else:
            record_run(settings, report, "serve")
            if report.switched or report.failed:
                print_ingest_summary(report, settings)
    assistant = Assistant(settings, backend=make_backend(settings))
    assistant.warm_up()
    console.print(f"chat page: http://{host}:{port}  (Ctrl-C to stop)")
    launch(settings, host, port, assistant)


@main.group()
def library() -> None:
    """Manage the corpus and its catalog: list, add (a new document or edition), set metadata, retire, restore.

    The same operations as the chat page's Library tab; each change is ingested and added to the ingest
    history."""


#: The catalog fields that `library add` and `library set` take as options.
FIELD_OPTIONS = [
    click.option("--title", help="Title, as citations show it."),
    click.option("--publisher", help="Publisher (e.g. Illinois State Board of Education)."),
    click.option("--edition", help="Edition (e.g. 2026, or 2019, updated August 2024)."),
    click.option("--kind", help="Kind of document: manual, guide, toolkit, reference, ..."),
    click.option("--audience", help="Who the document is for."),
]


def field_options(command: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(FIELD_OPTIONS):
        command = option(command)
    return command


def _given(**fields: str | None) -> dict[str, str]:
    return {key: value for key, value in fields.items() if value is not None}


def _finish(settings: Settings, report: IngestReport | None, message: str) -> None:
    """Print the ingest summary (if there was an ingest) and the outcome; exit 1 if a document failed."""
    if report is not None:
        print_ingest_summary(report, settings)
    console.print(message, markup=False)
    sys.exit(1 if report is not None and report.failed else 0)


@library.command("add")
@click.argument("pdf", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--name", help="File name in the corpus (default: the PDF's own name, made safe).")
@field_options
@friendly
def library_add(pdf: Path, name: str | None, title: str | None, publisher: str | None, edition: str | None,
                kind: str | None, audience: str | None) -> None:
    """Check and parse PDF, put it into the corpus folder (replacing the edition of the same name) and ingest.

    With any of the field options its catalog entry is written too: fields not given keep the replaced
    edition's values (a new document needs title, publisher, edition and kind)."""
    from .corpus import CorpusManager
    from .history import cli_user

    settings = load_settings()
    manager = CorpusManager(settings)
    given = _given(title=title, publisher=publisher, edition=edition, kind=kind, audience=audience)
    metadata = None
    if given:
        from .catalog import load_catalog
        from .corpus import safe_upload_name

        current = load_catalog(settings.catalog_path).get(safe_upload_name(name or pdf.name))
        metadata = {**(current.values() if current else {}), **given}
    with ingest_progress() as progress:
        change = manager.add_pdf(pdf, name, progress=progress, metadata=metadata, who=cli_user())
    if change.restored:
        print_ingest_summary(change.report, settings)
        console.print(f"the new {change.name} could not be ingested: the previous edition was put back", markup=False)
        sys.exit(1)
    _finish(settings, change.report, f"{'replaced' if change.replaced else 'added'} {change.name}")


def _when(timestamp: Any) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp)) if timestamp else ""


@library.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@friendly
def library_list(as_json: bool) -> None:
    """Every document: in the index (with its edition, pages, chunks, file, hash, ingest time), failed (why),
    retired, or not ingested yet."""
    from .corpus import CorpusManager

    rows = CorpusManager(load_settings()).library()
    if as_json:
        out.print_json(json.dumps([row.to_json() for row in rows], ensure_ascii=False))
        return
    table = Table(show_edge=False, title=f"Library: {len(rows)} documents")
    for column in ("title", "publisher", "edition", "kind", "pages", "chunks", "file", "sha256", "ingested at",
                   "status"):
        table.add_column(column, justify="right" if column in ("pages", "chunks") else "left", overflow="fold")
    for row in rows:
        status = f"{row.status}: {row.reason}" if row.reason else row.status
        if row.retired_at:
            status += f" {row.retired_at}"
        table.add_row(*[Text(value) for value in (
            row.title, row.publisher, row.edition, row.kind, "" if row.pages is None else str(row.pages),
            "" if row.chunks is None else str(row.chunks), row.file, row.sha256[:12], _when(row.ingested_at),
            status)])
    out.print(table)


@library.command("set")
@click.argument("document")
@field_options
@friendly
def library_set(document: str, title: str | None, publisher: str | None, edition: str | None, kind: str | None,
                audience: str | None) -> None:
    """Change the catalog entry of DOCUMENT (its file name or slug) and ingest (no re-embedding)."""
    from .corpus import CorpusManager
    from .history import cli_user

    given = _given(title=title, publisher=publisher, edition=edition, kind=kind, audience=audience)
    if not given:
        raise click.UsageError("give at least one of --title, --publisher, --edition, --kind, --audience")
    settings = load_settings()
    with ingest_progress() as progress:
        change = CorpusManager(settings).set_metadata(document, given, who=cli_user(), progress=progress)
    if change.changed:
        _finish(settings, change.report, f"updated the catalog entry of {change.file}")
    else:
        _finish(settings, None, f"{change.file}: nothing to change")


@library.command("retire")
@click.argument("document")
@friendly
def library_retire(document: str) -> None:
    """Take DOCUMENT (its file name or slug) out of the index: its PDF moves to corpus/retired/, its catalog
    entry is marked retired. `library restore` undoes it."""
    from .corpus import CorpusManager
    from .history import cli_user

    settings = load_settings()
    with ingest_progress() as progress:
        change = CorpusManager(settings).retire(document, who=cli_user(), progress=progress)
    moved = (change.entry or {}).get("retired_file")
    _finish(settings, change.report, f"retired {change.file}" + (f" (its PDF is now {moved})" if moved else ""))


@library.command("restore")
@click.argument("document")
@friendly
def library_restore(document: str) -> None:
    """Undo `library retire`: DOCUMENT's PDF goes back into the corpus folder and is ingested."""
    from .corpus import CorpusManager
    from .history import cli_user

    settings = load_settings()
    with ingest_progress() as progress:
        change = CorpusManager(settings).restore(document, who=cli_user(), progress=progress)
    _finish(settings, change.report, f"restored {change.file}")


@library.command("history")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@click.option("-n", "--limit", default=20, show_default=True, help="How many runs to show, newest first.")
@friendly
def library_history(as_json: bool, limit: int) -> None:
    """The last ingest runs, newest first: when, who, what for, counts, failures."""
    from .history import IngestHistory

    settings = load_settings()
    entries = IngestHistory(settings.ingest_history_path).newest_first(limit)
    if as_json:
        out.print_json(json.dumps(entries, ensure_ascii=False))
        return
    table = Table(show_edge=False, title="Ingest history (newest first)")
    for column in ("time", "who", "action", *STATUSES):
        table.add_column(column, justify="right" if column in STATUSES else "left", overflow="fold")
    for entry in entries:
        counts = entry.get("counts") or {}
        action = " ".join(filter(None, [str(entry.get("action", "")), str(entry.get("target", ""))]))
        table.add_row(Text(str(entry.get("time", ""))), Text(str(entry.get("who", ""))), Text(action),
                      *[str(counts.get(status, "")) for status in STATUSES])
    out.print(table)
    for entry in entries:
        for failure in entry.get("failures") or []:
            out.print(f"{entry.get('time', '')} failed {failure.get('file') or failure.get('doc_id')}: "
                      f"{failure.get('reason', '')}", markup=False)
        for updated in entry.get("updated") or []:
            if updated.get("change_report"):
                out.print(f"{entry.get('time', '')} updated {updated.get('file') or updated.get('doc_id')}: "
                          f"change report {settings.data_dir / updated['change_report']}", markup=False)


@main.command()
@click.argument("doc_id", required=False)
@click.option("--rebuild", is_flag=True, help="Recompute the reports from the kept edition texts, store and "
                                              "write them again.")
@friendly
def changes(doc_id: str | None, rebuild: bool) -> None:
    """What changed between editions: the documents with a change report, or DOC_ID's latest report."""
    from .editions import latest_report, rebuild_reports, report_files, report_markdown
    from .store import IndexStore

    settings = load_settings()
    if rebuild:
        for report in rebuild_reports(settings, doc_id):
            console.print(f"rebuilt {report_files(settings, report)[1]}", markup=False)
        return
    store = IndexStore(settings)
    manifest = store.active()
    documents = manifest.documents if manifest else {}
    if doc_id is not None:
        if doc_id not in documents:
            print_error(f"no document {doc_id!r} in the index")
            sys.exit(2)
        report = latest_report(store, documents[doc_id])
        out.print(report_markdown(report) if report else f"{doc_id} has no change report (one edition so far)",
                  markup=False)
        return
    for name, entry in documents.items():
        for change in entry.get("changes", []):
            counts = change["counts"]
            out.print(f"{name}: {change['from_edition']} → {change['to_edition']}: {counts['changed']} changed, "
                      f"{counts['added']} added, {counts['removed']} removed", markup=False)


@main.group("eval", invoke_without_command=True)
@click.option("--dataset", type=click.Path(path_type=Path, dir_okay=False), help="Eval items (JSON Lines).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Folder for results.jsonl, summary.json, report.md and report.html.")
@click.option("--corpus", "corpus_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Ask the dataset of this corpus (ingested into an index of its own) instead of WBL_CORPUS_DIR.")
@click.option("--catalog", type=click.Path(path_type=Path, dir_okay=False), help="The catalog of --corpus.")
@click.option("--suite", type=click.Path(path_type=Path, dir_okay=False),
              help="Run every dataset of a suite file (e.g. evals/suite.toml), each on its own corpus.")
@click.option("--split", type=click.Choice(["dev", "test"]), help="Only the items of this split.")
@click.option("--compare", nargs=2, type=click.Path(path_type=Path, file_okay=False, exists=True),
              metavar="RUN_A RUN_B", help="Compare two earlier runs (or suite runs) instead of running one.")
@click.option("--backend", type=click.Choice(["extractive", "openai", "llamacpp"]), help="Answer backend.")
@click.option("--compare-naive", is_flag=True, help="Also evaluate the LangChain tutorial pipeline's retrieval.")
@click.pass_context
@friendly
def eval_command(ctx: click.Context, dataset: Path | None, out_dir: Path | None, corpus_dir: Path | None,
                 catalog: Path | None, suite: Path | None, split: str | None, compare: tuple[Path, Path] | None,
                 backend: str | None, compare_naive: bool) -> None:
    """Run an eval dataset (or a suite of them) through the assistant and write a report; or compare two runs.

    See also: eval feedback-to-items."""
    if ctx.invoked_subcommand is not None:
        return
    if out_dir is None:
        raise click.UsageError("eval needs --out DIR")
    if compare:
        from .evaluation.compare import compare_runs

        result = compare_runs(compare[0], compare[1], out_dir)
        for name, pair in result.items():
            console.print(f"{name}: {len(pair['fixed'])} items now right, {len(pair['broken'])} now wrong",
                          markup=False)
        console.print(f"report: {out_dir / 'compare.html'}", markup=False)
        return
    settings = load_settings(backend=backend)
    if suite:
        _run_suite(settings, suite, out_dir, split, backend)
        return
    if dataset is None:
        raise click.UsageError("eval needs --dataset FILE (or --suite FILE, or --compare RUN_A RUN_B)")
    if (corpus_dir is None) != (catalog is None):
        raise click.UsageError("--corpus and --catalog go together")
    from .assistant import Assistant
    from .backends import make_backend
    from .evaluation.dataset import load_dataset
    from .evaluation.runner import run_eval
    from .evaluation.suite import corpus_settings

    load_dataset(dataset)
    if corpus_dir is not None:
        settings = corpus_settings(settings, corpus_dir, catalog)
        report = run_ingest(settings)
        if report.failed:
            print_ingest_summary(report, settings)
    assistant = Assistant(settings, backend=make_backend(settings))
    with Progress(TextColumn("[bold]eval[/bold]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        task = progress.add_task("items", total=None)
        run = run_eval(assistant, dataset, out_dir, compare_naive=compare_naive, split=split,
                       on_item=lambda n, total: progress.update(task, completed=n, total=total))
    print_eval_summary(run.summary)
    if run.summary.get("items_to_review"):
        console.print(f"{len(run.summary['items_to_review'])} items to review: their documents changed since "
                      "they were written (see the report)", markup=False)
    console.print(f"report: {out_dir / 'report.html'}", markup=False)


def print_eval_summary(summary: dict) -> None:
    from .evaluation.metrics import METRIC_KEYS
    from .evaluation.report import fmt

    naive = summary.get("naive") or {}
    splits = summary.get("by_split", {})
    table = Table(title=f"Eval: {summary['items']} items", show_edge=False)
    table.add_column("metric")
    table.add_column("all", justify="right")
    for split in splits:
        table.add_column(split, justify="right")
    if naive:
        table.add_column("naive", justify="right")
    for key in METRIC_KEYS:
        if summary.get(key) is None:
            continue
        table.add_row(key, fmt(summary[key]), *[fmt(part.get(key)) for part in splits.values()],
                      *([fmt(naive.get(key))] if naive else []))
    console.print(table)


def _run_suite(settings: Settings, suite: Path, out_dir: Path, split: str | None, backend: str | None) -> None:
    from .evaluation.metrics import METRIC_KEYS
    from .evaluation.report import fmt
    from .evaluation.suite import run_suite

    with Progress(TextColumn("[bold]eval[/bold] {task.fields[stage]}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("items", total=None, stage="")
        summaries = run_suite(settings, suite, out_dir, split=split, backend=backend,
                              on_stage=lambda stage: progress.update(task, stage=stage, completed=0, total=None),
                              on_item=lambda n, total: progress.update(task, completed=n, total=total))
    table = Table(title="Eval suite", show_edge=False)
    table.add_column("metric")
    columns = [(name, part) for name, summary in summaries.items() for part in ["all", *summary.get("by_split", {})]]
    for name, part in columns:
        table.add_column(f"{name} {part}", justify="right")
    for key in ["items", *METRIC_KEYS]:
        table.add_row(key, *[fmt((summaries[n] if p == "all" else summaries[n]["by_split"][p]).get(key))
                             for n, p in columns])
    console.print(table)
    console.print(f"report: {out_dir / 'index.html'}", markup=False)


@eval_command.command("feedback-to-items")
@click.option("--feedback", "feedback_file", type=click.Path(path_type=Path, dir_okay=False),
              help="Feedback JSONL (default: the chat page's file in the data dir).")
@click.option("--out", "out_file", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="Where to write the draft items (JSON Lines).")
@friendly
def feedback_to_items(feedback_file: Path | None, out_file: Path) -> None:
    """Turn thumbs-down feedback into draft eval items for a person to complete."""
    from .evaluation.feedback import draft_items
    from .feedback import FeedbackError, read_feedback

    path = feedback_file or load_settings().feedback_path
    try:
        feedback = read_feedback(path)
    except FeedbackError as error:
        print_error(error)
        sys.exit(2)
    if feedback.skipped_lines:
        shown = ", ".join(map(str, feedback.skipped_lines[:10])) + (" ..." if len(feedback.skipped_lines) > 10 else "")
        console.print(f"[yellow]warning[/yellow]: skipped {len(feedback.skipped_lines)} unreadable line(s) of "
                      f"{path}: {shown}", markup=False)
    drafts = draft_items(feedback.entries)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in drafts), encoding="utf-8")
    console.print(f"{len(drafts)} draft items written to {out_file}; complete gold_docs and key_facts, "
                  "then add them to a dataset", markup=False)

if __name__ == "__main__":
    main()
