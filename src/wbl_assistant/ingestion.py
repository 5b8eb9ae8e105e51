"""Make the index match the corpus folder: new documents added, changed ones replaced, removed ones gone,
unchanged ones skipped, bad files reported (never a traceback) while the others are ingested.

Only changed documents are read and embedded: each becomes a new *version* written beside the live ones,
and the manifest naming the live versions is switched in one write at the end (see store.py). An ingest
that fails or is killed midway leaves the previous index serving, complete; the next run cleans up.
One ingest at a time per index: a second one waits `WBL_INGEST_WAIT` seconds, then gives up with a reason.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .catalog import CatalogEntry, load_catalog, slugify
from .chunking import Chunk, chunk_blocks
from .config import Settings
from .editions import ChangeReport, record_edition
from .embeddings import MODEL_NAME, embed_matrix, embedding_dims, load_embeddings
from .extraction import DocumentError
from .ingest_state import (
    DocumentResult,
    IngestBusyError,
    IngestError,
    IngestReport,
    Progress,
    clear_state,
    corpus_pdfs,
    inputs_digest,
    save_state,
    unchanged_report,
)
from .lexical import LexicalIndex, LexicalRow
from .ocr import OcrOptions
from .sandbox import Sandbox, SandboxLimits
from .store import ChunkRecord, IndexStore, Manifest, SentenceRow, WriterBusyError, new_id
from .text import terms
from .vocabulary import GlossaryError, find_acronyms, load_glossary

logger = logging.getLogger(__name__)

#: Bump when extraction or chunking changes what is stored: every document is then re-ingested.
PIPELINE_FORMAT = 9
#: Catalog fields copied into a document's manifest entry (and from there into its citations).
CATALOG_FIELDS = ("title", "publisher", "edition", "kind", "audience", "sample", "catalogued")


@dataclass
class _Planned:
    doc_id: str
    path: Path | None
    sha256: str
    meta: dict[str, Any]
    previous: dict[str, Any] | None
    status: str = ""
    reason: str = ""
    warning: str = ""
    version: str = ""
    chunks: list[Chunk] = field(default_factory=list)
    pages: int = 0
    acronyms: dict[str, str] = field(default_factory=dict)
    ocr_pages: list[dict[str, Any]] = field(default_factory=list)
    size: int = 0
    mtime_ns: int = 0
    changes: ChangeReport | None = None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pipeline_fingerprint(settings: Settings) -> dict[str, Any]:
    """What a stored version depends on besides its file: when it changes, every document is re-read."""
    return {
        "format": PIPELINE_FORMAT,
        "chunk_size": settings.chunk_size,
        "chunk_overlap": settings.chunk_overlap,
        "embedding_model": settings.embedding_model or MODEL_NAME,
    }


#: Weight of a chunk's heading (document title and section path) in its vector, beside its sentences' mean.
HEADING_WEIGHT = 0.5
#: Sentences embedded per pass: documents are grouped so that the model sees full, length-sorted batches.
EMBED_WINDOW = 512


def chunk_vectors(chunks: list[Chunk], title: str, sentence_vectors: np.ndarray, owners: list[int],
                  heading_vectors: dict[str, np.ndarray]) -> np.ndarray:
    """A chunk's vector: the mean of its sentences' vectors, nudged towards its heading, normalized.

    Embedding sentences once serves both retrieval (chunks) and answering (sentences) at about the cost of
    embedding the chunks themselves."""
    dims = sentence_vectors.shape[1]
    sums = np.zeros((len(chunks), dims), dtype=np.float32)
    np.add.at(sums, np.asarray(owners, dtype=int), sentence_vectors)
    out = _unit(sums)
    for n, chunk in enumerate(chunks):
        out[n] += HEADING_WEIGHT * heading_vectors[heading_text(title, chunk)]
    return _unit(out)


def heading_text(title: str, chunk: Chunk) -> str:
    return f"{title} > {chunk.section}" if chunk.section and chunk.section != title else title


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1, norms)


def ingest(settings: Settings, *, rebuild: bool = False, progress: Progress | None = None,
           store: IndexStore | None = None, clock: Callable[[], float] = time.perf_counter) -> IngestReport:
    """Bring the index in line with `settings.corpus_dir`. See the module docstring."""
    started = clock()
    corpus = settings.corpus_dir
    if not corpus.is_dir():
        raise IngestError(f"no corpus folder at {corpus}")
    pdfs = corpus_pdfs(corpus)
    if not pdfs:
        raise IngestError(f"{corpus} holds no PDF files; nothing was changed")
    digest = inputs_digest(settings, pdfs)  # before anything is read: a file changed after this is seen next run
    if not rebuild and store is None and (quick := unchanged_report(settings, digest, clock)) is not None:
        quick.seconds = clock() - started
        return quick
    try:
        catalog = load_catalog(settings.catalog_path, cache_dir=settings.data_dir)
        glossary = load_glossary(settings.glossary_path)
    except (ValueError, GlossaryError) as error:
        raise IngestError(str(error)) from None
    store = store or IndexStore(settings)
    try:
        with store.writer_lock(settings.ingest_wait) as lock:
            clear_state(settings)
            run = _Run(settings, store, progress or Progress(), rebuild)
            report = run.run(pdfs, catalog, [list(pair) for pair in glossary], lock.check)
            save_state(settings, digest, report, run.gc_due())
    except WriterBusyError as error:
        raise IngestBusyError(str(error)) from None
    report.seconds = clock() - started
    return report


class _Run:
    """One ingest, under the writer lock."""

    def __init__(self, settings: Settings, store: IndexStore, progress: Progress, rebuild: bool) -> None:
        self.settings = settings
        self.store = store
        self.progress = progress
        self.rebuild = rebuild
        self.written: list[str] = []
        self.rows: list[LexicalRow] = []
        self.manifest: Manifest | None = None

    def gc_due(self) -> float | None:
        """When the oldest retired version left by this run becomes due for deletion (None: none is left)."""
        retired = self.manifest.retired if self.manifest else ()
        return min(at for _, at in retired) + self.settings.retire_grace if retired else None

    def run(self, pdfs: list[Path], catalog: dict[str, CatalogEntry], glossary: list[list[str]],
            check_lock: Callable[[], None]) -> IngestReport:
        store, settings = self.store, self.settings
        store.drop_legacy_collections()
        active = store.active()
        if active is not None and store.missing_chunks(active):
            logger.warning("the live index is incomplete (its chunks are missing): re-ingesting everything")
            active = None
        active = store.collect_garbage(active, settings.retire_grace)
        pipeline = pipeline_fingerprint(settings)
        reusable = (active is not None and not self.rebuild
                    and all(active.pipeline.get(k) == v for k, v in pipeline.items()))
        previous_docs = active.documents if active else {}
        plans, report = _plan(pdfs, catalog, settings.corpus_dir, previous_docs if reusable else {}, previous_docs)
        to_process = [p for p in plans if p.status in ("added", "updated")]
        present = {p.doc_id for p in plans}
        removed = [d for d in previous_docs if d not in present]
        metadata_changed = (any(_meta_differs(p) for p in plans if p.status == "unchanged")
                            or (active is not None and active.pipeline.get("glossary") != glossary)
                            or (active is not None and not store.has_blob(active.lexical)))
        self.progress.planned(len(plans), len(to_process))
        if active is not None and not to_process and not removed and not metadata_changed:
            report.results += [_result(p, reusable) for p in plans]
            report.snapshot = active.snapshot
            self.manifest = active
            return report
        try:
            if to_process:
                store.owe_garbage_collection()
            documents, dims = self._process(plans, to_process, reusable)
            report.results += [_result(p, reusable) for p in plans]
            report.results += [DocumentResult(d, previous_docs[d].get("file", ""), "removed") for d in removed]
            now = time.time()
            old_live = active.live_versions if active else set()
            new_live = {entry["version"] for entry in documents.values()}
            retired = tuple(active.retired if active else ()) + tuple((v, now) for v in sorted(old_live - new_live))
            snapshot = new_id("s")
            lexical = self._lexical(active if reusable else None, documents)
            if lexical is None:
                lexical_name = active.lexical
            else:
                lexical_name = snapshot
                store.save_blob(snapshot, lexical.to_bytes())
                if active is not None and active.lexical:
                    retired += ((active.lexical, now),)
            manifest = Manifest(snapshot, documents, {**pipeline, "dims": dims or (active.dims if active else 0),
                                                      "glossary": glossary}, now, retired, lexical=lexical_name)
            check_lock()
            store.activate(manifest)
        except BaseException:
            self._discard_written()
            raise
        report.snapshot, report.switched = manifest.snapshot, True
        self.manifest = store.collect_garbage(manifest, settings.retire_grace)
        return report

    def _process(self, plans: list[_Planned], to_process: list[_Planned],
                 reusable: bool) -> tuple[dict[str, dict[str, Any]], int]:
        """Read and embed the changed documents; the manifest entries of every document that stays."""
        documents: dict[str, dict[str, Any]] = {}
        for plan in plans:
            if plan.status == "unchanged":
                documents[plan.doc_id] = {**plan.previous, **_manifest_meta(plan)}
            elif plan.status == "failed" and plan.previous and reusable:
                documents[plan.doc_id] = plan.previous
        model = load_embeddings(self.settings.embedding_model, self.settings.embed_batch_size) if to_process else None
        dims = embedding_dims(model) if model is not None else 0
        with Sandbox(SandboxLimits.from_settings(self.settings)) as sandbox:
            self._read_and_write(to_process, documents, model, sandbox, reusable)
        return documents, dims

    def _read_and_write(self, to_process: list[_Planned], documents: dict[str, dict[str, Any]], model: Any,
                        sandbox: Sandbox, reusable: bool) -> None:
        pending: list[_Planned] = []
        for n, plan in enumerate(to_process):
            name = plan.path.name
            self.progress.processing(name)
            try:
                _extract(plan, self.settings, sandbox, self.progress)
            except DocumentError as error:
                plan.status, plan.reason = "failed", str(error)
                if plan.previous and reusable:
                    documents[plan.doc_id] = plan.previous
                self.progress.processed(name, 0)
            else:
                pending.append(plan)
            last = n == len(to_process) - 1
            if pending and (last or sum(_sentence_count(p) for p in pending) >= EMBED_WINDOW):
                self.written += [p.version for p in pending]
                _write_documents(self.store, model, pending)
                self.rows += [lexical_row(c.chunk_id, p.doc_id, p.meta["title"], c.section, c.text)
                              for p in pending for c in p.chunks]
                for written in pending:
                    entry = {**_manifest_meta(written), "version": written.version, "pages": written.pages,
                             "chunks": len(written.chunks), "acronyms": written.acronyms, "ingested_at": time.time(),
                             **({"ocr_pages": written.ocr_pages} if written.ocr_pages else {})}
                    editions, written.changes = record_edition(self.store, self.settings, written.doc_id,
                                                               written.previous, entry, written.chunks)
                    documents[written.doc_id] = {**entry, **editions}
                    self.progress.processed(written.path.name, len(written.chunks))
                pending = []

    def _lexical(self, active: Manifest | None, documents: dict[str, dict[str, Any]]) -> LexicalIndex | None:
        """The lexical index of the new state (None: the previous one serves unchanged): the previous one
        without the documents that changed (or whose title changed: titles are part of a chunk's terms), plus
        the rows of what changed. Rows are read back from the index only when the previous lexical index is
        missing or a kept document was retitled."""
        old = active.documents if active is not None else {}
        kept = {d for d, entry in documents.items()
                if d in old and old[d]["version"] == entry["version"] and old[d].get("title") == entry.get("title")}
        if kept == set(documents) == set(old) and active is not None and self.store.has_blob(active.lexical):
            return None
        data = self.store.load_blob(active.lexical) if active is not None and active.lexical else None
        previous = LexicalIndex.from_bytes(data) if data is not None else None
        if previous is None:
            kept = set()
        written = {row.doc_id for row in self.rows}
        reread = {entry["version"]: entry["title"] for d, entry in documents.items()
                  if d not in kept and d not in written}
        rows = list(self.rows)
        if reread:
            for record_id, text, metadata, _ in self.store.records(where={"version": {"$in": sorted(reread)}}):
                rows.append(lexical_row(record_id, metadata["doc_id"], reread[metadata["version"]],
                                        metadata.get("section", ""), text))
        return (previous or LexicalIndex.empty()).updated(kept, rows)

    def _discard_written(self) -> None:
        """Delete what this run wrote before it failed (best effort: the next run's clean-up is the backstop)."""
        if not self.written:
            return
        try:
            self.store.chunks().delete(where={"version": {"$in": self.written}})
        except Exception as error:  # the store may be what failed; the next ingest removes the orphans
            logger.warning("could not delete this run's partial chunks (the next ingest will): %s", error)


def _plan(pdfs, catalog, corpus, reusable_docs, previous_docs):
    report = IngestReport()
    plans: list[_Planned] = []
    seen: dict[str, str] = {}
    present = {p.name for p in pdfs}
    for entry in catalog.values():
        if entry.file not in present and not entry.retired:
            report.results.append(DocumentResult(
                entry.slug, entry.file, "failed",
                reason=f"the catalog lists {entry.file} but it is not in {corpus}",
            ))
    for path in pdfs:
        entry = catalog.get(path.name)
        doc_id = entry.slug if entry else slugify(path.name)
        if doc_id in seen:
            report.results.append(DocumentResult(doc_id, path.name, "failed",
                                                 reason=f"same document id as {seen[doc_id]}; rename the file"))
            continue
        seen[doc_id] = path.name
        try:
            sha, size, mtime = _fingerprint(path, previous_docs.get(doc_id))
        except OSError as error:
            plans.append(_Planned(doc_id, None, "", {}, previous_docs.get(doc_id), "failed",
                                  f"cannot read the file ({error.strerror})"))
            continue
        meta = _catalog_meta(entry, path)
        previous = reusable_docs.get(doc_id)
        plan = _Planned(doc_id, path, sha, meta, previous_docs.get(doc_id), size=size, mtime_ns=mtime)
        if not entry:
            plan.warning = "no catalog entry: title taken from the PDF; add it to the catalog for citations"
        if previous and previous.get("sha256") == sha and previous.get("file") == path.name:
            plan.status = "unchanged"
            if not entry:
                plan.meta["title"] = previous.get("title", plan.meta["title"])
        else:
            plan.status = "updated" if previous_docs.get(doc_id) else "added"
            plan.version = sha[:6] + secrets.token_hex(3)
        plans.append(plan)
    return plans, report


def _fingerprint(path: Path, previous: dict[str, Any] | None) -> tuple[str, int, int]:
    """(sha256, size, mtime) of a file; the hash is taken again only when size or mtime moved, so an ingest
    with nothing changed reads no file."""
    stat = path.stat()
    if previous and previous.get("size") == stat.st_size and previous.get("mtime_ns") == stat.st_mtime_ns:
        return previous["sha256"], stat.st_size, stat.st_mtime_ns
    return file_sha256(path), stat.st_size, stat.st_mtime_ns


def _catalog_meta(entry: CatalogEntry | None, path: Path) -> dict[str, Any]:
    if entry:
        return {"title": entry.title, "publisher": entry.publisher, "edition": entry.edition,
                "kind": entry.kind, "audience": entry.audience, "sample": entry.sample, "catalogued": True}
    return {"title": path.stem.replace("_", " ").replace("-", " ").strip() or path.name, "publisher": "",
            "edition": "", "kind": "document", "audience": "", "sample": False, "catalogued": False}


def _manifest_meta(plan: _Planned) -> dict[str, Any]:
    return {**plan.meta, "file": plan.path.name if plan.path else "", "sha256": plan.sha256, "size": plan.size,
            "mtime_ns": plan.mtime_ns}


def _meta_differs(plan: _Planned) -> bool:
    previous = plan.previous or {}
    return any(previous.get(key) != value for key, value in plan.meta.items())


def _result(plan: _Planned, reusable: bool) -> DocumentResult:
    file = plan.path.name if plan.path else ""
    if plan.status == "failed":
        reason = plan.reason
        if plan.previous and reusable:
            reason += "; the previously ingested version stays in the index"
        return DocumentResult(plan.doc_id, file, "failed", reason=reason, warning=plan.warning)
    chunks = len(plan.chunks) if plan.chunks else int((plan.previous or {}).get("chunks", 0))
    pages = plan.pages or int((plan.previous or {}).get("pages", 0))
    ocr_pages = list((plan.previous or {}).get("ocr_pages", [])) if plan.status == "unchanged" else plan.ocr_pages
    return DocumentResult(plan.doc_id, file, plan.status, chunks=chunks, pages=pages, warning=plan.warning,
                          ocr_pages=ocr_pages, changes=plan.changes)


def _extract(plan: _Planned, settings: Settings, sandbox: Sandbox, progress: Progress) -> None:
    name = plan.path.name
    extracted = sandbox.extract(plan.path, OcrOptions.from_settings(settings, sha256=plan.sha256),
                                on_page=lambda done, total: progress.page(name, done, total),
                                on_ocr_page=lambda page, pages: progress.ocr_page(name, page, pages))
    if not plan.meta["catalogued"] and extracted.info_title:
        plan.meta["title"] = extracted.info_title
    plan.pages = extracted.page_count
    plan.ocr_pages = extracted.ocr_pages
    plan.warning = "; ".join(filter(None, [plan.warning, *extracted.warnings]))
    plan.acronyms = find_acronyms(" ".join(block.text for block in extracted.blocks))
    plan.chunks = chunk_blocks(extracted.blocks, plan.doc_id, plan.version, settings.chunk_size,
                               settings.chunk_overlap)
    if not plan.chunks:
        raise DocumentError("no text to index after extraction")


def chunk_record(chunk: Chunk, version: str) -> ChunkRecord:
    return ChunkRecord(chunk.chunk_id, chunk.doc_id, version, chunk.index, chunk.text, chunk.page, chunk.page_end,
                       chunk.section, tuple(SentenceRow(s.text, s.page, s.kind) for s in chunk.sentences))


def lexical_row(chunk_id: str, doc_id: str, title: str, section: str, text: str) -> LexicalRow:
    """A chunk's terms for lexical search: its document's title and its section path count with its text."""
    return LexicalRow(chunk_id, doc_id, terms(f"{title} {section} {text}"))


def _sentence_count(plan: _Planned) -> int:
    return sum(len(chunk.sentences) for chunk in plan.chunks)


def _write_documents(store: IndexStore, model: Any, plans: list[_Planned]) -> None:
    """Embed the documents' sentences (each distinct text once) and headings in one pass, derive the chunk
    vectors, and write the chunks with their sentences."""
    headings = {p.doc_id: [heading_text(p.meta["title"], chunk) for chunk in p.chunks] for p in plans}
    records = {p.doc_id: [chunk_record(c, p.version) for c in p.chunks] for p in plans}
    leaves = [r.heading for rs in records.values() for r in rs if r.heading]
    texts = [s.text for p in plans for chunk in p.chunks for s in chunk.sentences]
    distinct = list(dict.fromkeys(texts + [h for hs in headings.values() for h in hs] + leaves))
    row = {text: n for n, text in enumerate(distinct)}
    embedded = embed_matrix(model, distinct)
    ids, documents, metadatas, vectors = [], [], [], []
    for plan in plans:
        doc_texts = [s.text for chunk in plan.chunks for s in chunk.sentences]
        sentence_vectors = embedded[[row[t] for t in doc_texts]]
        owners = [c for c, chunk in enumerate(plan.chunks) for _ in chunk.sentences]
        heading_vectors = {h: embedded[row[h]] for h in headings[plan.doc_id]}
        bounds = np.cumsum([0] + [len(c.sentences) for c in plan.chunks])
        ids += [c.chunk_id for c in plan.chunks]
        documents += [c.text for c in plan.chunks]
        metadatas += [record.metadata(sentence_vectors[bounds[n]:bounds[n + 1]],
                                      embedded[row[record.heading]] if record.heading else None)
                      for n, record in enumerate(records[plan.doc_id])]
        vectors.append(chunk_vectors(plan.chunks, plan.meta["title"], sentence_vectors, owners, heading_vectors))
    store.add(ids, documents, metadatas, np.concatenate(vectors))
