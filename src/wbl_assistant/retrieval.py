"""Hybrid retrieval: dense (Chroma) and lexical (BM25 over the same chunks), fused by reciprocal rank.

`IndexSnapshot` is one index state: its manifest, its lexical index (built at ingest, loaded whole: a
second even for 100k chunks) and a handle on its chunks in Chroma. Nothing else of the corpus is held in
memory: a question fetches the few chunks it ranks on top (text, sentences and their vectors), and a cache
keeps the recently used ones (a chunk version never changes, so a cached chunk is never stale). The reader
replaces its snapshot in one assignment when an ingest switches the manifest, so a question runs start to
finish on one snapshot while other threads move on to the next.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from time import monotonic
from typing import Any, Generic, TypeVar

import numpy as np
from chromadb.errors import ChromaError, NotFoundError

from .config import Settings
from .embeddings import load_query_encoder
from .lexical import LexicalIndex
from .store import LOCAL_SWITCHES, ChunkRecord, IndexStore, Manifest, heading_vector_of, hold_view, sentence_vectors_of
from .text import terms
from .vocabulary import Concept, Lexicon

logger = logging.getLogger(__name__)
T = TypeVar("T")

RRF_K = 60
# A query term found in at most this many chunks (a name, a code) makes the BM25 ranking count double.
RARE_TERM_CHUNKS = 2
#: Manifest fields a chunk's metadata gets from its document (the citation shows them).
DOCUMENT_FIELDS = ("title", "publisher", "edition", "kind", "audience")
#: Chunks kept decoded in memory between questions.
CHUNK_CACHE = 4096
#: Question texts whose vectors a reader keeps: the same question (an example clicked on the page, a retry,
#: a follow-up's standalone form asked again) is embedded once, about 20 ms of CPU each.
QUERY_VECTORS = 2048
#: How long a reader trusts its snapshot without reading the live pointer again. Each check is a read of the
#: index (a Chroma call); under load the page made two per question. A switch made by another process is
#: seen up to this much later (a replaced generation stays WBL_RETIRE_GRACE seconds, far longer); one made in
#: this process is seen at once.
POINTER_CHECK_SECONDS = 0.5


class NotIngestedError(RuntimeError):
    """Nothing has been ingested yet, or the index is incomplete; the message says what to do."""


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
    #: Which line of the chunk's text (a paragraph, a list item, a table row) the unit starts on.
    paragraph: int = 0


@dataclass(frozen=True)
class Chunk:
    """One chunk as a question uses it: text, place, quotable sentences (with vectors), its vector."""

    chunk_id: str
    text: str
    metadata: dict[str, Any]
    vector: np.ndarray
    sentences: tuple[SentenceRecord, ...]
    heading: SentenceRecord | None


class RecentlyUsed(Generic[T]):
    """A thread-safe map of at most `size` items, the least recently used dropped first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[str, T] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> T | None:
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
            return item

    def put(self, key: str, item: T) -> None:
        with self._lock:
            self._items[key] = item
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


class ChunkCache(RecentlyUsed[Chunk]):
    """Decoded chunks by id; shared by a reader's snapshots."""

    def __init__(self, size: int = CHUNK_CACHE) -> None:
        super().__init__(size)


def paragraph_numbers(text: str, units: list[str]) -> list[int]:
    """For each unit (in order), the number of the line of `text` it starts on (a table's cells count as
    lines of their own); a unit not found verbatim (text cleaned differently) stays on the line before."""
    out, cursor, line = [], 0, 0
    for unit in units:
        found = text.find(unit[:40], cursor) if unit else -1
        if found >= 0:
            line += text.count("\n", cursor, found) + text.count(" | ", cursor, found)
            cursor = found
        out.append(line)
    return out


class SnapshotGone(RuntimeError):
    """The snapshot's chunks were deleted (or its view went stale) while a question used it."""


@dataclass(frozen=True)
class IndexSnapshot:
    """One index state. Its lexical index is in memory; its chunks are fetched as questions need them."""

    manifest: Manifest
    collection: Any
    lexical: LexicalIndex
    lexicon: Lexicon
    cache: ChunkCache = field(default_factory=ChunkCache)

    @classmethod
    def load(cls, store: IndexStore, manifest: Manifest, cache: ChunkCache | None = None) -> IndexSnapshot:
        collection, view = store.pinned_chunks()
        data = store.load_blob(manifest.lexical) if manifest.lexical else None
        if data is None:
            raise NotIngestedError("the index is incomplete (its lexical index is missing): run "
                                   "`wbl-assistant ingest` to repair it")
        lexical = LexicalIndex.from_bytes(data)
        aliases = [tuple(pair) for pair in manifest.pipeline.get("glossary", [])]
        aliases += [pair for entry in manifest.documents.values() for pair in entry.get("acronyms", {}).items()]
        vocabulary = [term for term, df in zip(lexical.terms, lexical.document_frequency, strict=True) if df]
        snapshot = cls(manifest, collection, lexical, Lexicon(aliases, vocabulary), cache or ChunkCache())
        hold_view(view, snapshot)
        return snapshot

    @property
    def snapshot_id(self) -> str:
        return self.manifest.snapshot

    @property
    def documents(self) -> dict[str, dict[str, Any]]:
        return self.manifest.documents

    @property
    def chunk_count(self) -> int:
        return self.lexical.chunk_count

    def has(self, chunk_id: str) -> bool:
        """Whether the chunk belongs to this snapshot (other versions share the collection)."""
        return chunk_id in self.lexical.row_of

    def df(self, term: str) -> int:
        """In how many chunks `term` occurs."""
        return self.lexical.df(term)

    def knows(self, term: str) -> bool:
        """Whether any chunk uses `term`."""
        return self.lexical.df(term) > 0

    def idf(self, term: str) -> float:
        """Inverse document frequency over chunks; a term the corpus never uses gets the highest value."""
        return math.log((self.chunk_count + 1) / (self.lexical.df(term) + 0.5))

    def chunks(self, chunk_ids: list[str]) -> dict[str, Chunk]:
        """The chunks, from the cache or fetched from the index in one call."""
        found: dict[str, Chunk] = {}
        missing = []
        for chunk_id in dict.fromkeys(chunk_ids):
            cached = self.cache.get(chunk_id)
            if cached is not None:
                found[chunk_id] = cached
            else:
                missing.append(chunk_id)
        if missing:
            try:
                got = self.collection.get(ids=missing, include=["documents", "metadatas", "embeddings"])
            except (NotFoundError, ChromaError) as error:
                raise SnapshotGone(str(error)) from None
            for n, chunk_id in enumerate(got["ids"]):
                chunk = self._decode(chunk_id, got["documents"][n], got["metadatas"][n], got["embeddings"][n])
                self.cache.put(chunk.chunk_id, chunk)
                found[chunk_id] = chunk
            if len(found) < len(set(chunk_ids)):
                raise SnapshotGone("chunks of this snapshot are no longer in the index")
        return found

    def _decode(self, chunk_id: str, text: str, metadata: dict[str, Any], vector: Any) -> Chunk:
        record = ChunkRecord.from_chroma(chunk_id, text, metadata)
        dims = self.manifest.dims
        vectors = sentence_vectors_of(metadata, dims)
        lines = paragraph_numbers(text, [row.text for row in record.sentences])
        sentences = tuple(SentenceRecord(row.text, chunk_id, row.page, row.unit, n, vectors[n], lines[n])
                          for n, row in enumerate(record.sentences))
        heading_vector = heading_vector_of(metadata, dims)
        heading = (SentenceRecord(record.heading, chunk_id, record.page, "heading", -1, heading_vector)
                   if heading_vector is not None else None)
        meta = {"doc_id": record.doc_id, "chunk_id": chunk_id, "version": record.version, "index": record.index,
                "page": record.page, "page_end": record.page_end, "section": record.section}
        return Chunk(chunk_id, text, meta, np.asarray(vector, dtype=np.float32), sentences, heading)

    def metadata(self, chunk: Chunk) -> dict[str, Any]:
        """The chunk's metadata with its document's catalog fields (from this snapshot's manifest)."""
        entry = self.documents.get(chunk.metadata["doc_id"], {})
        return {**chunk.metadata, **{k: entry.get(k, "") for k in DOCUMENT_FIELDS}}

    def chunk_text(self, chunk_id: str) -> str:
        return self.chunks([chunk_id])[chunk_id].text

    def terms_of(self, chunk_id: str) -> frozenset[str]:
        """The chunk's lexical terms (as the lexical index counts them: title and section path included)."""
        chunk = self.chunks([chunk_id])[chunk_id]
        meta = self.metadata(chunk)
        return frozenset(terms(f"{meta['title']} {meta['section']} {chunk.text}"))

    def sentences(self, chunk_ids: list[str]) -> dict[str, tuple[SentenceRecord, ...]]:
        """The sentences (with their vectors) of the given chunks, in document order."""
        chunks = self.chunks(chunk_ids)
        return {chunk_id: chunks[chunk_id].sentences for chunk_id in chunk_ids}

    def heading(self, chunk_id: str) -> SentenceRecord | None:
        """The innermost heading the chunk sits under, with its vector (unit "heading")."""
        return self.chunks([chunk_id])[chunk_id].heading

    def lexical_scores(self, query_terms: list[str]) -> np.ndarray:
        return self.lexical.scores([t for t in query_terms if self.knows(t)])

    def allowed(self, kinds: list[str] | None, doc_ids: list[str] | None) -> np.ndarray | None:
        """Mask of the chunks that pass the filters, or None when there are none."""
        admitted = self.filter_doc_ids(kinds, doc_ids)
        if admitted is None:
            return None
        docs = [n for n, d in enumerate(self.lexical.docs) if d in set(admitted)]
        return np.isin(self.lexical.doc_of_row, docs)

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
    #: The embedding of the ask inside a long question (`questions.focus_of`), when it has one.
    focus_vector: np.ndarray | None = None

    def similarity(self, vectors: np.ndarray) -> np.ndarray | float:
        """Cosine of unit vectors (one, or a matrix of rows) to the question: to the whole question or to its
        ask, whichever is closer, so a long story before the question does not dilute the match."""
        found = vectors @ self.query_vector
        return found if self.focus_vector is None else np.maximum(found, vectors @ self.focus_vector)


class IndexReader:
    """Read side of the index: one per process, shared by every question and thread."""

    def __init__(self, settings: Settings, store: IndexStore | None = None) -> None:
        self.settings = settings
        self.store = store or IndexStore(settings)
        self.cache = ChunkCache()
        self._vectors: RecentlyUsed[np.ndarray] = RecentlyUsed(QUERY_VECTORS)
        self._snapshot: IndexSnapshot | None = None
        self._loading = threading.Lock()
        self._checked = (-POINTER_CHECK_SECONDS, -1)  # (when the pointer was last read, switches made here then)

    def snapshot(self, reload: bool = False) -> IndexSnapshot:
        """The current snapshot: loaded on first use, replaced in one assignment when the manifest moved.

        While one thread loads the next snapshot, the others keep answering from the one they have.
        `reload`: load again even when the manifest did not move (its view of the index went stale)."""
        current = self._snapshot
        checked_at, switches = self._checked
        if (current is not None and not reload and switches == LOCAL_SWITCHES.value
                and monotonic() - checked_at < POINTER_CHECK_SECONDS):
            return current
        switches, live = LOCAL_SWITCHES.value, self.store.active_snapshot_id()
        if current is not None and live == current.snapshot_id and not reload:
            self._checked = (monotonic(), switches)
            return current
        if current is not None and not reload and not self._loading.acquire(blocking=False):
            return current
        if current is None or reload:
            self._loading.acquire()
        try:
            current = self._snapshot
            if current is not None and current.snapshot_id == self.store.active_snapshot_id() and not reload:
                return current
            manifest = self.store.active()
            if manifest is None or not manifest.documents:
                raise NotIngestedError("nothing has been ingested yet: run `wbl-assistant ingest` first")
            if reload:
                self.store.refresh()
            try:
                snapshot = IndexSnapshot.load(self.store, manifest, self.cache)
            except NotFoundError:
                self.store.forget_collections()
                raise NotIngestedError("the index is incomplete (its chunks are missing): run "
                                       "`wbl-assistant ingest` to repair it") from None
            self._snapshot = snapshot
            self._checked = (monotonic(), switches)
            return snapshot
        finally:
            self._loading.release()

    def embedder(self):
        return load_query_encoder(self.settings.embedding_model, self.settings.embed_batch_size)

    def embed_query(self, text: str) -> np.ndarray:
        """The query's unit vector (read-only: it is shared with later askers of the same text)."""
        vector = self._vectors.get(text)
        if vector is None:
            vector = np.asarray(self.embedder().embed_query(text), dtype=np.float32)
            vector.flags.writeable = False
            self._vectors.put(text, vector)
        return vector

    def retrieve(self, query: str, k: int, kinds: list[str] | None = None, doc_ids: list[str] | None = None,
                 query_vector: np.ndarray | None = None, depth: int = 10, focus: str = "") -> Retrieval:
        """Top-k chunks for `query` by reciprocal rank fusion of dense and BM25 rankings.

        BM25 weighs double when the query holds a rare term: embeddings blur names and codes, exact matching
        does not. `ranking` holds the fused ranking `depth` deep (at least k), for reporting and evaluation.
        A question that meets chunks deleted under it (its snapshot was retired, or its view of an embedded
        index went stale) retries once on a snapshot loaded afresh. `focus`: the ask inside a long question;
        the dense ranking and `Retrieval.similarity` take the closer of its match and the whole question's."""
        vector = self.embed_query(query) if query_vector is None else query_vector
        focus_vector = self.embed_query(focus) if focus else None
        snapshot = self.snapshot()
        try:
            found = _retrieve(snapshot, query, vector, k, kinds, doc_ids, depth, focus_vector)
        except SnapshotGone as error:
            logger.info("snapshot %s went away under a question (%s): retrying on a fresh one",
                        snapshot.snapshot_id, error)
            self.store.forget_collections()
            try:
                found = _retrieve(self.snapshot(reload=True), query, vector, k, kinds, doc_ids, depth, focus_vector)
            except SnapshotGone:
                raise NotIngestedError("the index is incomplete (chunks it lists are missing): run "
                                       "`wbl-assistant ingest` to repair it") from None
        found.focus_vector = focus_vector
        return found


def _dense(snapshot: IndexSnapshot, vector: np.ndarray, pool: int, doc_ids: list[str] | None) -> dict[str, float]:
    """Cosine similarity of the `pool` nearest chunks of this snapshot (versions being written or retired,
    which share the collection, are skipped)."""
    if doc_ids is not None and not doc_ids:
        return {}
    where = {"doc_id": {"$in": doc_ids}} if doc_ids is not None else None
    wanted = min(pool, snapshot.chunk_count)
    for attempt_where in (where, _with_versions(where, snapshot)):
        try:
            found = snapshot.collection.query(query_embeddings=[vector.tolist()], n_results=wanted * 2,
                                              where=attempt_where, include=["distances"])
        except (NotFoundError, ChromaError) as error:
            raise SnapshotGone(str(error)) from None
        live = {cid: 1.0 - float(d) for cid, d in zip(found["ids"][0], found["distances"][0], strict=True)
                if snapshot.has(cid)}
        if len(live) >= wanted or attempt_where is not where:
            break
    if not live and wanted:
        raise SnapshotGone("no chunk of this snapshot is in the index")
    return dict(list(live.items())[:pool])


def _with_versions(where: dict | None, snapshot: IndexSnapshot) -> dict:
    versions = {"version": {"$in": sorted(snapshot.manifest.live_versions)}}
    return versions if where is None else {"$and": [where, versions]}


def _retrieve(snapshot: IndexSnapshot, query: str, vector: np.ndarray, k: int, kinds: list[str] | None,
              doc_ids: list[str] | None, depth: int, focus_vector: np.ndarray | None = None) -> Retrieval:
    pool = max(k * 4, 20)
    scope = snapshot.filter_doc_ids(kinds, doc_ids)
    dense_sim = _dense(snapshot, vector, pool, scope)
    if focus_vector is not None:  # a long question's story can drown its ask: a chunk counts its closer match
        for chunk_id, similarity in _dense(snapshot, focus_vector, pool, scope).items():
            dense_sim[chunk_id] = max(similarity, dense_sim.get(chunk_id, -1.0))
    dense_ids = sorted(dense_sim, key=lambda cid: -dense_sim[cid])

    query_terms = list(dict.fromkeys(terms(query)))
    concepts = snapshot.lexicon.concepts(query_terms)
    search_terms = list(dict.fromkeys(t for concept in concepts for form in concept.forms for t in form))
    lexical = snapshot.lexical_scores(search_terms)
    allowed = snapshot.allowed(kinds, doc_ids)
    if allowed is not None:
        lexical = np.where(allowed, lexical, 0.0)
    lexical_order = [int(i) for i in np.argsort(-lexical)[:pool] if lexical[i] > 0]

    rare = any(snapshot.knows(t) and snapshot.df(t) <= RARE_TERM_CHUNKS for t in search_terms)
    lexical_weight = 2.0 if rare else 1.0
    fused: dict[str, float] = {}
    for rank, chunk_id in enumerate(dense_ids):
        fused[chunk_id] = fused.get(chunk_id, 0.0) + 1.0 / (RRF_K + rank + 1)
    for rank, index in enumerate(lexical_order):
        chunk_id = snapshot.lexical.chunk_ids[index]
        fused[chunk_id] = fused.get(chunk_id, 0.0) + lexical_weight / (RRF_K + rank + 1)
    top = sorted(fused, key=lambda cid: -fused[cid])[: max(k, depth)]
    found = snapshot.chunks(top)
    row_of = snapshot.lexical.row_of
    chunks = []
    for rank, chunk_id in enumerate(top, start=1):
        chunk = found[chunk_id]
        dense = dense_sim[chunk_id] if chunk_id in dense_sim else float(np.dot(vector, chunk.vector))
        chunks.append(RetrievedChunk(chunk_id, chunk.text, snapshot.metadata(chunk), fused[chunk_id], dense,
                                     float(lexical[row_of[chunk_id]]), rank))
    weights = {t: snapshot.idf(t) for t in search_terms}
    return Retrieval(query, vector, chunks[:k], snapshot, chunks, query_terms, weights, concepts)
