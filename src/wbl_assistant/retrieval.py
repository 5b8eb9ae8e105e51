"""Hybrid retrieval: dense (Chroma) and lexical (BM25 over the same chunks), fused by reciprocal rank.

`IndexSnapshot` is one index state loaded whole (chunk texts and metadata, BM25, term statistics, the
sentences the answerer quotes) and never changed afterwards. `IndexReader` holds the current snapshot and
replaces it in one assignment when an ingest switches the manifest, so a question runs start to finish on
one snapshot while other threads move on to the next.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import bm25s
import numpy as np
from chromadb.errors import NotFoundError

from .config import Settings
from .embeddings import load_embeddings
from .store import ChunkRecord, IndexStore, Manifest, heading_vector_of, sentence_vectors_of
from .text import terms
from .vocabulary import Concept, Lexicon

logger = logging.getLogger(__name__)

RRF_K = 60
# A query term found in at most this many chunks (a name, a code) makes the BM25 ranking count double.
RARE_TERM_CHUNKS = 2
#: Manifest fields a chunk's metadata gets from its document (the citation shows them).
DOCUMENT_FIELDS = ("title", "publisher", "edition", "kind", "audience")


class NotIngestedError(RuntimeError):
    """Nothing has been ingested yet."""


@dataclass
class RetrievedChunk:
    chunk_id: str
    text: str
    metadata: dict[str, Any]
    score: float
    dense: float
    lexical: float
    rank: int = 0

    @property
    def doc_id(self) -> str:
        return self.metadata["doc_id"]

    @property
    def page(self) -> int:
        return int(self.metadata["page"])


@dataclass(frozen=True)
class SentenceRecord:
    text: str
    chunk_id: str
    page: int
    unit: str
    position: int
    vector: np.ndarray


@dataclass(frozen=True)
class IndexSnapshot:
    """One index state, loaded whole and never modified."""

    manifest: Manifest
    collection: Any
    ids: tuple[str, ...]
    texts: tuple[str, ...]
    metas: tuple[dict[str, Any], ...]
    index_of: dict[str, int]
    bm25: bm25s.BM25
    document_frequency: Counter
    chunk_terms: tuple[frozenset[str], ...]
    sentence_records: dict[str, tuple[SentenceRecord, ...]]
    heading_records: dict[str, SentenceRecord]
    lexicon: Lexicon

    @classmethod
    def load(cls, store: IndexStore, manifest: Manifest) -> IndexSnapshot:
        """Read the live versions' chunk records and build the lexical index over them."""
        collection = store.chunks(create=False)
        live = sorted(manifest.live_versions)
        ids, texts, metas, sentences, headings = [], [], [], {}, {}
        for record_id, document, metadata, _ in store.records(where={"version": {"$in": live}}):
            record = ChunkRecord.from_chroma(record_id, document, metadata)
            entry = manifest.documents.get(record.doc_id)
            if entry is None or entry["version"] != record.version:
                continue
            vectors = sentence_vectors_of(metadata, manifest.dims)
            sentences[record_id] = tuple(SentenceRecord(row.text, record_id, row.page, row.unit, n, vectors[n])
                                         for n, row in enumerate(record.sentences))
            heading_vector = heading_vector_of(metadata, manifest.dims)
            if heading_vector is not None:
                headings[record_id] = SentenceRecord(record.heading, record_id, record.page, "heading", -1,
                                                     heading_vector)
            ids.append(record_id)
            texts.append(document)
            metas.append({"doc_id": record.doc_id, "chunk_id": record_id, "version": record.version,
                          "index": record.index, "page": record.page, "page_end": record.page_end,
                          "section": record.section, **{k: entry.get(k, "") for k in DOCUMENT_FIELDS}})
        tokenized = [terms(f"{m['title']} {m['section']} {t}") for t, m in zip(texts, metas, strict=True)]
        logging.getLogger("bm25s").setLevel(logging.WARNING)  # bm25s sets it to DEBUG when imported
        bm25 = bm25s.BM25()
        bm25.index(tokenized, show_progress=False)
        document_frequency = Counter(term for tokens in tokenized for term in set(tokens))
        aliases = [tuple(pair) for pair in manifest.pipeline.get("glossary", [])]
        aliases += [pair for entry in manifest.documents.values() for pair in entry.get("acronyms", {}).items()]
        return cls(manifest, collection, tuple(ids), tuple(texts), tuple(metas),
                   {chunk_id: n for n, chunk_id in enumerate(ids)}, bm25, document_frequency,
                   tuple(frozenset(tokens) for tokens in tokenized), sentences, headings,
                   Lexicon(aliases, document_frequency))

    @property
    def snapshot_id(self) -> str:
        return self.manifest.snapshot

    @property
    def documents(self) -> dict[str, dict[str, Any]]:
        return self.manifest.documents

    @property
    def chunk_count(self) -> int:
        return len(self.ids)

    def knows(self, term: str) -> bool:
        """Whether any chunk uses `term`."""
        return term in self.document_frequency

    def idf(self, term: str) -> float:
        """Inverse document frequency over chunks; a term the corpus never uses gets the highest value."""
        df = self.document_frequency.get(term, 0)
        return math.log((self.chunk_count + 1) / (df + 0.5))

    def chunk_text(self, chunk_id: str) -> str:
        return self.texts[self.index_of[chunk_id]]

    def terms_of(self, chunk_id: str) -> frozenset[str]:
        return self.chunk_terms[self.index_of[chunk_id]]

    def sentences(self, chunk_ids: list[str]) -> dict[str, tuple[SentenceRecord, ...]]:
        """The sentences (with their vectors) of the given chunks, in document order."""
        return {chunk_id: self.sentence_records.get(chunk_id, ()) for chunk_id in chunk_ids}

    def heading(self, chunk_id: str) -> SentenceRecord | None:
        """The innermost heading the chunk sits under, with its vector (unit "heading")."""
        return self.heading_records.get(chunk_id)

    def lexical_scores(self, query_terms: list[str]) -> np.ndarray:
        known = [t for t in query_terms if self.knows(t)]
        if not known:
            return np.zeros(self.chunk_count, dtype=np.float32)
        return np.asarray(self.bm25.get_scores(known), dtype=np.float32)

    def allowed(self, kinds: list[str] | None, doc_ids: list[str] | None) -> np.ndarray | None:
        """Mask of the chunks that pass the filters, or None when there are none."""
        if not kinds and not doc_ids:
            return None
        return np.asarray([(not kinds or m["kind"] in kinds) and (not doc_ids or m["doc_id"] in doc_ids)
                           for m in self.metas])

    def filter_doc_ids(self, kinds: list[str] | None, doc_ids: list[str] | None) -> list[str] | None:
        """The documents a filter admits (kinds are catalog fields, so they resolve to documents here)."""
        if not kinds and not doc_ids:
            return None
        return [d for d, entry in self.documents.items()
                if (not kinds or entry.get("kind") in kinds) and (not doc_ids or d in doc_ids)]


@dataclass
class Retrieval:
    """What retrieval found for one query, with the evidence the abstention gate reads."""

    query: str
    query_vector: np.ndarray
    chunks: list[RetrievedChunk]
    snapshot: IndexSnapshot
    ranking: list[RetrievedChunk] = field(default_factory=list)
    query_terms: list[str] = field(default_factory=list)
    term_weights: dict[str, float] = field(default_factory=dict)
    concepts: list[Concept] = field(default_factory=list)


class IndexReader:
    """Read side of the index: one per process, shared by every question and thread."""

    def __init__(self, settings: Settings, store: IndexStore | None = None) -> None:
        self.settings = settings
        self.store = store or IndexStore(settings)
        self._snapshot: IndexSnapshot | None = None
        self._loading = threading.Lock()

    def snapshot(self) -> IndexSnapshot:
        """The current snapshot: loaded on first use, replaced in one assignment when the manifest moved.

        While one thread loads the next snapshot, the others keep answering from the one they have."""
        current = self._snapshot
        live = self.store.active_snapshot_id()
        if current is not None and live == current.snapshot_id:
            return current
        if current is not None and not self._loading.acquire(blocking=False):
            return current
        if current is None:
            self._loading.acquire()
        try:
            current = self._snapshot
            if current is not None and current.snapshot_id == self.store.active_snapshot_id():
                return current
            manifest = self.store.active()
            if manifest is None or not manifest.documents:
                raise NotIngestedError("nothing has been ingested yet: run `wbl-assistant ingest` first")
            try:
                snapshot = IndexSnapshot.load(self.store, manifest)
            except NotFoundError:
                self.store.forget_collections()
                raise NotIngestedError("the index is incomplete (its chunks are missing): run "
                                       "`wbl-assistant ingest` to repair it") from None
            self._snapshot = snapshot
            return snapshot
        finally:
            self._loading.release()

    def embedder(self):
        return load_embeddings(self.settings.embedding_model, self.settings.embed_batch_size)

    def embed_query(self, text: str) -> np.ndarray:
        return np.asarray(self.embedder().embed_query(text), dtype=np.float32)

    def retrieve(self, query: str, k: int, kinds: list[str] | None = None, doc_ids: list[str] | None = None,
                 query_vector: np.ndarray | None = None, depth: int = 10) -> Retrieval:
        """Top-k chunks for `query` by reciprocal rank fusion of dense and BM25 rankings.

        BM25 weighs double when the query holds a rare term: embeddings blur names and codes, exact matching
        does not. `ranking` holds the fused ranking `depth` deep (at least k), for reporting and evaluation.
        A question that meets chunks deleted under it (its snapshot was retired) retries once on the new one."""
        vector = self.embed_query(query) if query_vector is None else query_vector
        snapshot = self.snapshot()
        try:
            return _retrieve(snapshot, query, vector, k, kinds, doc_ids, depth)
        except _SnapshotGone:
            self.store.forget_collections()
            return _retrieve(self.snapshot(), query, vector, k, kinds, doc_ids, depth)


class _SnapshotGone(Exception):
    """The snapshot's chunks were deleted while a question used it."""


def _dense(snapshot: IndexSnapshot, vector: np.ndarray, pool: int, doc_ids: list[str] | None) -> dict[str, float]:
    """Cosine similarity of the `pool` nearest live chunks (versions being written or retired are skipped)."""
    where = {"doc_id": {"$in": doc_ids}} if doc_ids is not None else None
    if doc_ids is not None and not doc_ids:
        return {}
    wanted = min(pool, snapshot.chunk_count)
    for attempt_where in (where, _with_versions(where, snapshot)):
        try:
            found = snapshot.collection.query(query_embeddings=[vector.tolist()], n_results=wanted * 2,
                                              where=attempt_where, include=["distances"])
        except NotFoundError:
            raise _SnapshotGone() from None
        live = {cid: 1.0 - float(d) for cid, d in zip(found["ids"][0], found["distances"][0], strict=True)
                if cid in snapshot.index_of}
        if len(live) >= wanted or attempt_where is not where:
            break
    if not live and wanted:
        raise _SnapshotGone()
    return dict(list(live.items())[:pool])


def _with_versions(where: dict | None, snapshot: IndexSnapshot) -> dict:
    versions = {"version": {"$in": sorted(snapshot.manifest.live_versions)}}
    return versions if where is None else {"$and": [where, versions]}


def _retrieve(snapshot: IndexSnapshot, query: str, vector: np.ndarray, k: int, kinds: list[str] | None,
              doc_ids: list[str] | None, depth: int) -> Retrieval:
    pool = max(k * 4, 20)
    dense_sim = _dense(snapshot, vector, pool, snapshot.filter_doc_ids(kinds, doc_ids))
    dense_ids = list(dense_sim)

    query_terms = list(dict.fromkeys(terms(query)))
    concepts = snapshot.lexicon.concepts(query_terms)
    search_terms = list(dict.fromkeys(t for concept in concepts for form in concept.forms for t in form))
    lexical = snapshot.lexical_scores(search_terms)
    allowed = snapshot.allowed(kinds, doc_ids)
    if allowed is not None:
        lexical = np.where(allowed, lexical, 0.0)
    lexical_order = [int(i) for i in np.argsort(-lexical)[:pool] if lexical[i] > 0]

    rare = any(snapshot.knows(t) and snapshot.document_frequency[t] <= RARE_TERM_CHUNKS for t in search_terms)
    lexical_weight = 2.0 if rare else 1.0
    fused: dict[str, float] = {}
    for rank, chunk_id in enumerate(dense_ids):
        fused[chunk_id] = fused.get(chunk_id, 0.0) + 1.0 / (RRF_K + rank + 1)
    for rank, index in enumerate(lexical_order):
        chunk_id = snapshot.ids[index]
        fused[chunk_id] = fused.get(chunk_id, 0.0) + lexical_weight / (RRF_K + rank + 1)
    top = sorted(fused, key=lambda cid: -fused[cid])[: max(k, depth)]
    missing = [cid for cid in top if cid not in dense_sim]
    if missing:
        dense_sim.update(_similarities(snapshot, vector, missing))
    chunks = []
    for rank, chunk_id in enumerate(top, start=1):
        n = snapshot.index_of[chunk_id]
        chunks.append(RetrievedChunk(chunk_id, snapshot.texts[n], snapshot.metas[n], fused[chunk_id],
                                     dense_sim.get(chunk_id, 0.0), float(lexical[n]), rank))
    weights = {t: snapshot.idf(t) for t in search_terms}
    return Retrieval(query, vector, chunks[:k], snapshot, chunks, query_terms, weights, concepts)


def _similarities(snapshot: IndexSnapshot, vector: np.ndarray, chunk_ids: list[str]) -> dict[str, float]:
    try:
        found = snapshot.collection.get(ids=chunk_ids, include=["embeddings"])
    except NotFoundError:
        raise _SnapshotGone() from None
    return {cid: float(np.dot(vector, np.asarray(v, dtype=np.float32)))
            for cid, v in zip(found["ids"], found["embeddings"], strict=True)}
