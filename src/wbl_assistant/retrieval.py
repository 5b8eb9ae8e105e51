"""Hybrid retrieval: dense (Chroma) and lexical (BM25 over the same chunks), fused by reciprocal rank.

`IndexReader` holds what retrieval needs from the active index generation (chunk texts and metadata, the
BM25 index, term statistics for the abstention gate) and reloads it when a re-ingest switches generations.
`HybridRetriever` is a LangChain retriever over it, so the answer chain is built from Runnables.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import bm25s
import numpy as np
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from .config import Settings
from .embeddings import load_embeddings
from .store import Generation, IndexStore
from .text import terms

RRF_K = 60
# A query term found in at most this many chunks (a name, a code) makes the BM25 ranking count double.
RARE_TERM_CHUNKS = 2
logging.getLogger("bm25s").setLevel(logging.WARNING)


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


@dataclass
class SentenceRecord:
    text: str
    chunk_id: str
    page: int
    unit: str
    position: int
    vector: np.ndarray


@dataclass
class Retrieval:
    """What retrieval found for one query, with the evidence the abstention gate reads."""

    query: str
    query_vector: np.ndarray
    chunks: list[RetrievedChunk]
    ranking: list[RetrievedChunk] = field(default_factory=list)
    query_terms: list[str] = field(default_factory=list)
    term_weights: dict[str, float] = field(default_factory=dict)


class IndexReader:
    """Read side of the index: one per process, shared by every question."""

    def __init__(self, settings: Settings, store: IndexStore | None = None) -> None:
        self.settings = settings
        self.store = store or IndexStore(settings)
        self._lock = threading.Lock()
        self.generation: Generation | None = None
        self.model = None

    def load(self) -> None:
        """(Re)load the active generation: chunk records, BM25, term statistics."""
        generation = self.store.active()
        if generation is None or not generation.documents:
            raise NotIngestedError("nothing has been ingested yet: run `wbl-assistant ingest` first")
        chunks = self.store.collection(generation.name)
        ids, texts, metas, sentences = [], [], [], {}
        for record_id, document, metadata, _ in self.store.records(chunks):
            ids.append(record_id)
            texts.append(document)
            sentences[record_id] = _sentence_records(record_id, metadata)
            metas.append({k: v for k, v in metadata.items() if k not in ("sentences", "sentence_vectors")})
        tokenized = [terms(f"{m['title']} {m['section']} {t}") for t, m in zip(texts, metas, strict=True)]
        bm25 = bm25s.BM25()
        bm25.index(tokenized, show_progress=False)
        document_frequency = Counter(term for tokens in tokenized for term in set(tokens))
        self.ids, self.texts, self.metas = ids, texts, metas
        self.index_of = {chunk_id: n for n, chunk_id in enumerate(ids)}
        self.bm25 = bm25
        self.vocabulary = set(bm25.vocab_dict)
        self.document_frequency = document_frequency
        self.chunk_count = len(ids)
        self.chunk_terms = [set(tokens) for tokens in tokenized]
        self.chunks_collection = chunks
        self.sentence_records = sentences
        self.generation = generation

    def ensure_current(self) -> None:
        """Load on first use, and again when a re-ingest has switched the active generation."""
        with self._lock:
            if self.generation is None:
                self.load()
                return
            active = self.store.active()
            if active is None or active.name != self.generation.name:
                self.load()

    def embedder(self):
        if self.model is None:
            self.model = load_embeddings(self.settings.embedding_model, self.settings.embed_batch_size)
        return self.model

    def embed_query(self, text: str) -> np.ndarray:
        return np.asarray(self.embedder().embed_query(text), dtype=np.float32)

    def idf(self, term: str) -> float:
        """Inverse document frequency over chunks; a term the corpus never uses gets the highest value."""
        df = self.document_frequency.get(term, 0)
        return math.log((self.chunk_count + 1) / (df + 0.5))

    def sentences(self, chunk_ids: list[str]) -> dict[str, list[SentenceRecord]]:
        """The sentences (with their vectors) of the given chunks, in document order."""
        return {chunk_id: self.sentence_records.get(chunk_id, []) for chunk_id in chunk_ids}

    def retrieve(self, query: str, k: int, kinds: list[str] | None = None, doc_ids: list[str] | None = None,
                 query_vector: np.ndarray | None = None, depth: int = 10) -> Retrieval:
        """Top-k chunks for `query` by reciprocal rank fusion of dense and BM25 rankings.

        BM25 weighs double when the query holds a rare term: embeddings blur names and codes, exact matching does not.

        `ranking` holds the fused ranking `depth` deep (at least k), for reporting and evaluation."""
        self.ensure_current()
        vector = self.embed_query(query) if query_vector is None else query_vector
        where = _where(kinds, doc_ids)
        pool = max(k * 4, 20)
        dense = self.chunks_collection.query(query_embeddings=[vector.tolist()], n_results=min(pool, self.chunk_count),
                                             where=where, include=["distances"])
        dense_ids = dense["ids"][0]
        dense_sim = {cid: 1.0 - float(d) for cid, d in zip(dense_ids, dense["distances"][0], strict=True)}

        query_terms = [t for t in dict.fromkeys(terms(query))]
        known = [t for t in query_terms if t in self.vocabulary]
        lexical = np.zeros(self.chunk_count, dtype=np.float32)
        if known:
            lexical = np.asarray(self.bm25.get_scores(known), dtype=np.float32)
        allowed = self._allowed(kinds, doc_ids)
        if allowed is not None:
            lexical = np.where(allowed, lexical, 0.0)
        lexical_order = [int(i) for i in np.argsort(-lexical)[:pool] if lexical[i] > 0]

        rare = any(self.document_frequency.get(t, 0) <= RARE_TERM_CHUNKS for t in known)
        lexical_weight = 2.0 if rare else 1.0
        fused: dict[str, float] = {}
        for rank, chunk_id in enumerate(dense_ids):
            fused[chunk_id] = fused.get(chunk_id, 0.0) + 1.0 / (RRF_K + rank + 1)
        for rank, index in enumerate(lexical_order):
            chunk_id = self.ids[index]
            fused[chunk_id] = fused.get(chunk_id, 0.0) + lexical_weight / (RRF_K + rank + 1)
        top = sorted(fused, key=lambda cid: -fused[cid])[: max(k, depth)]
        missing = [cid for cid in top if cid not in dense_sim]
        if missing:
            dense_sim.update(self._similarities(vector, missing))
        chunks = []
        for rank, chunk_id in enumerate(top, start=1):
            n = self.index_of[chunk_id]
            chunks.append(RetrievedChunk(chunk_id, self.texts[n], self.metas[n], fused[chunk_id],
                                         dense_sim[chunk_id], float(lexical[n]), rank))
        weights = {t: self.idf(t) for t in query_terms}
        return Retrieval(query, vector, chunks[:k], chunks, query_terms, weights)

    def _similarities(self, vector: np.ndarray, chunk_ids: list[str]) -> dict[str, float]:
        found = self.chunks_collection.get(ids=chunk_ids, include=["embeddings"])
        return {cid: float(np.dot(vector, np.asarray(v, dtype=np.float32)))
                for cid, v in zip(found["ids"], found["embeddings"], strict=True)}

    def _allowed(self, kinds: list[str] | None, doc_ids: list[str] | None) -> np.ndarray | None:
        if not kinds and not doc_ids:
            return None
        return np.asarray([(not kinds or m["kind"] in kinds) and (not doc_ids or m["doc_id"] in doc_ids)
                           for m in self.metas])


def _sentence_records(chunk_id: str, metadata: dict[str, Any]) -> list[SentenceRecord]:
    from .ingestion import decode_vectors

    rows = json.loads(metadata.get("sentences", "[]"))
    vectors = decode_vectors(metadata["sentence_vectors"]) if rows else np.zeros((0, 384), dtype=np.float32)
    return [SentenceRecord(text, chunk_id, int(page), unit, n, vectors[n])
            for n, (text, page, unit) in enumerate(rows)]


def _where(kinds: list[str] | None, doc_ids: list[str] | None) -> dict | None:
    clauses = []
    if kinds:
        clauses.append({"kind": {"$in": list(kinds)}})
    if doc_ids:
        clauses.append({"doc_id": {"$in": list(doc_ids)}})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


class HybridRetriever(BaseRetriever):
    """LangChain retriever over `IndexReader.retrieve`: Documents carry the chunk metadata and scores."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    reader: Any
    k: int = 6
    kinds: list[str] | None = None
    doc_ids: list[str] | None = None

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun
                                ) -> list[Document]:
        found = self.reader.retrieve(query, self.k, self.kinds, self.doc_ids)
        return [Document(page_content=c.text, id=c.chunk_id,
                         metadata={**c.metadata, "score": c.score, "dense": c.dense, "lexical": c.lexical,
                                   "rank": c.rank})
                for c in found.chunks]
