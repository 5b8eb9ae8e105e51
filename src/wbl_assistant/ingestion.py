"""Make the index match the corpus folder: new documents added, changed ones replaced, removed ones gone,
unchanged ones skipped, bad files reported (never a traceback) while the others are ingested.

The new index is written as a fresh generation (see store.py) and switched to in one write, so an ingest
that fails or is killed midway leaves the previous index serving, complete; the next run repairs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .catalog import CatalogEntry, load_catalog, slugify
from .chunking import Chunk, chunk_blocks
from .config import Settings
from .embeddings import MODEL_NAME, embed_matrix, load_embeddings
from .extraction import DocumentError, read_pdf
from .ocr import OcrOptions
from .store import Generation, IndexStore

logger = logging.getLogger(__name__)

#: Bump when extraction or chunking changes what is stored: every document is then re-ingested.
INDEX_FORMAT = 4
STATUSES = ("added", "updated", "unchanged", "removed", "failed")


class IngestError(RuntimeError):
    """The run as a whole cannot proceed (no corpus folder, unreadable catalog, Chroma unreachable)."""


@dataclass
class DocumentResult:
    doc_id: str
    file: str
    status: str
    chunks: int = 0
    pages: int = 0
    reason: str = ""
    warning: str = ""
    #: Pages read by OCR: {"page", "confidence", "words", "indexed"}.
    ocr_pages: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class IngestReport:
    results: list[DocumentResult] = field(default_factory=list)
    seconds: float = 0.0
    generation: str = ""
    switched: bool = False

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def chunks(self) -> int:
        return sum(r.chunks for r in self.results if r.status != "removed")

    @property
    def failed(self) -> list[DocumentResult]:
        return [r for r in self.results if r.status == "failed"]

    @property
    def warnings(self) -> list[DocumentResult]:
        return [r for r in self.results if r.warning]


class Progress:
    """Receives ingest progress; the CLI and the chat page's admin tab render it. Defaults do nothing."""

    def planned(self, documents: int, to_process: int) -> None: ...

    def processing(self, name: str) -> None: ...

    def processed(self, name: str, chunks: int) -> None: ...

    def ocr_page(self, name: str, page: int, pages: int) -> None:
        """OCR starts on page `page` of the `pages` of document `name` (a few seconds per page)."""


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
    chunks: list[Chunk] = field(default_factory=list)
    pages: int = 0
    ocr_pages: list[dict[str, Any]] = field(default_factory=list)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pipeline_fingerprint(settings: Settings) -> dict[str, Any]:
    return {
        "format": INDEX_FORMAT,
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
    progress = progress or Progress()
    corpus = settings.corpus_dir
    if not corpus.is_dir():
        raise IngestError(f"no corpus folder at {corpus}")
    pdfs = sorted(p for p in corpus.iterdir() if p.is_file() and p.suffix.lower() == ".pdf")
    if not pdfs:
        raise IngestError(f"{corpus} holds no PDF files; nothing was changed")
    try:
        catalog = load_catalog(settings.catalog_path)
    except ValueError as error:
        raise IngestError(str(error)) from None
    store = store or IndexStore(settings)
    store.drop_inactive()
    active = store.active()
    pipeline = pipeline_fingerprint(settings)
    reusable = active is not None and active.pipeline == pipeline and not rebuild
    previous_docs = active.documents if active else {}

    plans, report = _plan(pdfs, catalog, corpus, previous_docs if reusable else {}, previous_docs)
    to_process = [p for p in plans if p.status in ("added", "updated")]
    kept = [p for p in plans if p.status == "unchanged"]
    unreadable_kept = [p for p in plans if p.status == "failed" and p.previous and reusable]
    present = {p.doc_id for p in plans}
    removed = [d for d in previous_docs if d not in present]
    metadata_changed = any(_meta_differs(p) for p in kept)
    progress.planned(len(plans), len(to_process))
    if active is not None and not to_process and not removed and not metadata_changed:
        report.results += [_result(p, reusable) for p in plans]
        report.generation = active.name
        report.seconds = clock() - started
        return report

    generation = store.new_generation()
    try:
        documents: dict[str, dict[str, Any]] = {}
        if kept or unreadable_kept:
            _copy_documents(store, active.name, generation, kept + unreadable_kept)
            documents.update({p.doc_id: {**p.previous, **_manifest_meta(p)} for p in kept})
            documents.update({p.doc_id: p.previous for p in unreadable_kept})
        model = load_embeddings(settings.embedding_model, settings.embed_batch_size) if to_process else None
        pending: list[_Planned] = []
        for n, plan in enumerate(to_process):
            progress.processing(plan.path.name)
            try:
                _extract(plan, settings, progress)
            except DocumentError as error:
                plan.status, plan.reason = "failed", str(error)
                if plan.previous and reusable:
                    _copy_documents(store, active.name, generation, [plan])
                    documents[plan.doc_id] = plan.previous
                progress.processed(plan.path.name, 0)
            else:
                pending.append(plan)
            last = n == len(to_process) - 1
            if pending and (last or sum(_sentence_count(p) for p in pending) >= EMBED_WINDOW):
                _write_documents(store, model, generation, pending)
                for written in pending:
                    documents[written.doc_id] = {**_manifest_meta(written), "pages": written.pages,
                                                 "chunks": len(written.chunks),
                                                 **({"ocr_pages": written.ocr_pages} if written.ocr_pages else {})}
                    progress.processed(written.path.name, len(written.chunks))
                pending = []
        report.results += [_result(p, reusable) for p in plans]
        report.results += [DocumentResult(d, previous_docs[d].get("file", ""), "removed") for d in removed]
        changed = any(p.status in ("added", "updated") for p in plans) or removed or metadata_changed
        if changed or active is None:
            store.activate(Generation(generation, documents, pipeline))
            report.generation, report.switched = generation, True
        else:
            store.drop_generation(generation)
            report.generation = active.name
    except BaseException:
        store.drop_generation(generation)
        raise
    report.seconds = clock() - started
    return report


def _plan(pdfs, catalog, corpus, reusable_docs, previous_docs):
    report = IngestReport()
    plans: list[_Planned] = []
    seen: dict[str, str] = {}
    present = {p.name for p in pdfs}
    for entry in catalog.values():
        if entry.file not in present:
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
            sha = file_sha256(path)
        except OSError as error:
            plans.append(_Planned(doc_id, None, "", {}, previous_docs.get(doc_id), "failed",
                                  f"cannot read the file ({error.strerror})"))
            continue
        meta = _catalog_meta(entry, path)
        previous = reusable_docs.get(doc_id)
        plan = _Planned(doc_id, path, sha, meta, previous_docs.get(doc_id))
        if not entry:
            plan.warning = "no catalog entry: title taken from the PDF; add it to the catalog for citations"
        if previous and previous.get("sha256") == sha and previous.get("file") == path.name:
            plan.status = "unchanged"
            if not entry:
                plan.meta["title"] = previous.get("title", plan.meta["title"])
        else:
            plan.status = "updated" if previous_docs.get(doc_id) else "added"
        plans.append(plan)
    return plans, report


def _catalog_meta(entry: CatalogEntry | None, path: Path) -> dict[str, Any]:
    if entry:
        return {"title": entry.title, "publisher": entry.publisher, "edition": entry.edition,
                "kind": entry.kind, "audience": entry.audience, "sample": entry.sample, "catalogued": True}
    return {"title": path.stem.replace("_", " ").replace("-", " ").strip() or path.name, "publisher": "",
            "edition": "", "kind": "document", "audience": "", "sample": False, "catalogued": False}


def _manifest_meta(plan: _Planned) -> dict[str, Any]:
    return {**plan.meta, "file": plan.path.name if plan.path else "", "sha256": plan.sha256}


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
                          ocr_pages=ocr_pages)


def _extract(plan: _Planned, settings: Settings, progress: Progress) -> None:
    name = plan.path.name
    ocr = OcrOptions.from_settings(settings, sha256=plan.sha256,
                                   on_page=lambda page, pages: progress.ocr_page(name, page, pages))
    extracted = read_pdf(plan.path, ocr=ocr)
    if not plan.meta["catalogued"] and extracted.info_title:
        plan.meta["title"] = extracted.info_title
    plan.pages = extracted.page_count
    plan.ocr_pages = extracted.ocr_pages
    plan.warning = "; ".join(filter(None, [plan.warning, *extracted.warnings]))
    plan.chunks = chunk_blocks(extracted.blocks, plan.doc_id, plan.sha256, settings.chunk_size,
                               settings.chunk_overlap)
    if not plan.chunks:
        raise DocumentError("no text to index after extraction")


def chunk_metadata(chunk: Chunk, meta: dict[str, Any], sha256: str, sentence_vectors: np.ndarray) -> dict[str, Any]:
    return {
        "doc_id": chunk.doc_id, "chunk_id": chunk.chunk_id, "index": chunk.index, "page": chunk.page,
        "page_end": chunk.page_end, "section": chunk.section, "sha256": sha256, "title": meta["title"],
        "publisher": meta["publisher"], "edition": meta["edition"], "kind": meta["kind"],
        "sentences": json.dumps([[s.text, s.page, s.kind] for s in chunk.sentences], ensure_ascii=False),
        "sentence_vectors": encode_vectors(sentence_vectors),
    }


def encode_vectors(vectors: np.ndarray) -> str:
    """Unit vectors as base64 float16: they ride in their chunk's metadata."""
    return base64.b64encode(np.asarray(vectors, dtype=np.float16).tobytes()).decode("ascii")


def decode_vectors(text: str, dims: int = 384) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=np.float16).astype(np.float32).reshape(-1, dims)


def _sentence_count(plan: _Planned) -> int:
    return sum(len(chunk.sentences) for chunk in plan.chunks)


def _write_documents(store: IndexStore, model: Any, generation: str, plans: list[_Planned]) -> None:
    """Embed the documents' sentences (each distinct text once) and headings in one pass, derive the chunk
    vectors, and write the chunks with their sentences."""
    headings = {p.doc_id: [heading_text(p.meta["title"], chunk) for chunk in p.chunks] for p in plans}
    texts = [s.text for p in plans for chunk in p.chunks for s in chunk.sentences]
    distinct = list(dict.fromkeys(texts + [h for hs in headings.values() for h in hs]))
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
        metadatas += [chunk_metadata(c, plan.meta, plan.sha256, sentence_vectors[bounds[n]:bounds[n + 1]])
                      for n, c in enumerate(plan.chunks)]
        vectors.append(chunk_vectors(plan.chunks, plan.meta["title"], sentence_vectors, owners, heading_vectors))
    store.add(store.collection(generation), ids, documents, metadatas, np.concatenate(vectors))


def _copy_documents(store: IndexStore, source: str, target: str, plans: list[_Planned]) -> None:
    """Carry unchanged documents into the new generation without re-embedding; refresh catalog fields."""
    meta_by_doc = {p.doc_id: p.meta for p in plans if p.status == "unchanged"}
    ids, documents, metadatas, vectors = [], [], [], []
    for record_id, document, metadata, vector in store.records(
            store.collection(source), where={"doc_id": {"$in": [p.doc_id for p in plans]}},
            include_embeddings=True):
        meta = meta_by_doc.get(metadata["doc_id"])
        if meta:
            metadata = {**metadata, **{k: meta[k] for k in ("title", "publisher", "edition", "kind")}}
        ids.append(record_id)
        documents.append(document)
        metadatas.append(metadata)
        vectors.append(vector)
    if ids:
        store.add(store.collection(target), ids, documents, metadatas, np.asarray(vectors, dtype=np.float32))
