"""The naive baseline: LangChain's tutorial RAG pipeline, evaluated for retrieval on the same items.

PyPDFLoader per page, RecursiveCharacterTextSplitter(1000, 200), Chroma, the same MiniLM embeddings,
top-4 similarity search with the question as asked. No cleaning, no structure, no hybrid search, no
follow-up handling: what most RAG projects start from.
"""

from __future__ import annotations

import time
from typing import Any

from ..config import Settings
from ..embeddings import load_embeddings
from . import metrics as m
from .dataset import EvalItem

TOP_K = 4


def build_naive_store(settings: Settings):
    import chromadb
    from chromadb.config import Settings as ChromaSettings
    from langchain_chroma import Chroma
    from langchain_community.document_loaders import PyPDFLoader
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    from ..catalog import load_catalog, slugify

    catalog = load_catalog(settings.catalog_path)
    pages = []
    for path in sorted(settings.corpus_dir.glob("*.pdf")):
        entry = catalog.get(path.name)
        try:
            loaded = PyPDFLoader(str(path)).load()
        except Exception:  # the baseline skips what it cannot read, as the tutorial would crash on it
            continue
        for page in loaded:
            page.metadata["doc_id"] = entry.slug if entry else slugify(path.name)
        pages.extend(loaded)
    splits = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200).split_documents(pages)
    client = chromadb.EphemeralClient(settings=ChromaSettings(anonymized_telemetry=False))
    store = Chroma(client=client, collection_name=f"naive_{int(time.time() * 1000)}",
                   embedding_function=load_embeddings(settings.embedding_model, settings.embed_batch_size))
    store.add_documents(splits)
    return store, len(splits)


def evaluate_naive(settings: Settings, items: list[EvalItem]) -> dict[str, Any]:
    """Retrieval metrics of the naive pipeline over the answerable items."""
    store, chunk_count = build_naive_store(settings)
    per_item: list[dict[str, float]] = []
    latencies = []
    for item in items:
        if not item.answerable:
            continue
        start = time.perf_counter()
        documents = store.similarity_search(item.question, k=TOP_K)
        latencies.append((time.perf_counter() - start) * 1000)
        docs = [d.metadata["doc_id"] for d in documents]
        pages = [(d.metadata["doc_id"], int(d.metadata.get("page", 0)) + 1, int(d.metadata.get("page", 0)) + 1)
                 for d in documents]
        per_item.append(m.retrieval_metrics(docs, pages, item.gold_docs, item.gold_pages))
    keys = sorted({key for row in per_item for key in row})
    summary: dict[str, Any] = {key: m.mean(row[key] for row in per_item if key in row) for key in keys}
    summary["chunks"] = chunk_count
    summary["top_k"] = TOP_K
    summary["retrieval_p50_ms"] = m.percentile(latencies, 50)
    return summary
