"""The index in Chroma, embedded (PersistentClient) or on a server (HttpClient), by the same code.

An index is a *generation*: one collection of chunks, written once and never modified. Each chunk record
carries its sentences and their vectors (the units the answerer quotes) in its metadata.
A pointer record in the `<prefix>_meta` collection names the active generation and holds its manifest
(one entry per document: file hash, catalog metadata, chunk count). Ingestion writes a new generation
beside the active one and switches the pointer in a single write, so a reader always sees one complete
index, and an ingest that dies midway leaves only an orphan generation that the next run deletes.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import chromadb
from chromadb.config import Settings as ChromaSettings
from chromadb.errors import NotFoundError

from .config import Settings
from .embeddings import ChromaEmbeddings

logger = logging.getLogger(__name__)

POINTER_ID = "active"


class StoreError(RuntimeError):
    """Chroma cannot be reached or the index is not usable; the message says what to do."""


@dataclass
class Generation:
    name: str
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    pipeline: dict[str, Any] = field(default_factory=dict)
    created: float = 0.0

    def to_json(self) -> str:
        return json.dumps({"generation": self.name, "documents": self.documents, "pipeline": self.pipeline,
                           "created": self.created}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Generation:
        data = json.loads(text)
        return cls(data["generation"], data.get("documents", {}), data.get("pipeline", {}),
                   data.get("created", 0.0))


def connect(settings: Settings) -> chromadb.ClientAPI:
    """A Chroma client for the configured index; a clear StoreError when the server is unreachable."""
    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if settings.uses_server:
        try:
            client = chromadb.HttpClient(host=settings.chroma_host, port=settings.chroma_port,
                                         settings=chroma_settings)
            client.heartbeat()
        except Exception as error:
            raise StoreError(
                f"cannot reach the Chroma server at {settings.chroma_host}:{settings.chroma_port} ({error})"
            ) from None
        return client
    settings.chroma_path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(settings.chroma_path), settings=chroma_settings)


class IndexStore:
    """Generations of the index in one Chroma database, under one collection prefix."""

    def __init__(self, settings: Settings, client: chromadb.ClientAPI | None = None) -> None:
        self.settings = settings
        self.prefix = settings.collection_prefix
        self.client = client or connect(settings)
        self.embedding_function = ChromaEmbeddings(settings.embedding_model, settings.embed_batch_size)

    def _meta(self):
        return self.client.get_or_create_collection(
            f"{self.prefix}_meta", embedding_function=self.embedding_function,
            configuration={"hnsw": {"space": "cosine"}},
        )

    def collection_name(self, generation: str) -> str:
        return f"{self.prefix}_{generation}_chunks"

    def active(self) -> Generation | None:
        """The generation readers should use, or None when nothing was ingested yet."""
        try:
            found = self._meta().get(ids=[POINTER_ID], include=["documents"])
        except NotFoundError:
            return None
        if not found["ids"]:
            return None
        return Generation.from_json(found["documents"][0])

    def new_generation(self) -> str:
        name = time.strftime("g%Y%m%dt%H%M%S", time.gmtime()) + secrets.token_hex(3)
        self.client.create_collection(self.collection_name(name), embedding_function=self.embedding_function,
                                      configuration={"hnsw": {"space": "cosine"}})
        return name

    def collection(self, generation: str):
        return self.client.get_collection(self.collection_name(generation),
                                          embedding_function=self.embedding_function)

    def activate(self, generation: Generation) -> None:
        """Point readers at `generation` in one write; the previous one is then dropped."""
        generation.created = generation.created or time.time()
        self._meta().upsert(ids=[POINTER_ID], documents=[generation.to_json()], embeddings=[[1.0, 0.0]])
        self.drop_inactive()

    def drop_generation(self, name: str) -> None:
        try:
            self.client.delete_collection(self.collection_name(name))
        except (NotFoundError, ValueError):
            return

    def drop_inactive(self) -> list[str]:
        """Delete generations other than the active one: leftovers of an interrupted ingest."""
        active = self.active()
        keep = {self.collection_name(active.name)} if active else set()
        dropped = []
        for name in self._collection_names():
            if name.startswith(f"{self.prefix}_g") and name not in keep:
                try:
                    self.client.delete_collection(name)
                    dropped.append(name)
                except (NotFoundError, ValueError):
                    continue
        return dropped

    def _collection_names(self) -> list[str]:
        names = []
        for item in self.client.list_collections():
            names.append(item if isinstance(item, str) else item.name)
        return names

    def add(self, collection, ids: list[str], documents: list[str], metadatas: list[dict],
            embeddings: Any) -> None:
        step = max(1, min(self.client.get_max_batch_size(), 2000))
        for start in range(0, len(ids), step):
            end = start + step
            collection.add(ids=ids[start:end], documents=documents[start:end], metadatas=metadatas[start:end],
                           embeddings=embeddings[start:end])

    def records(self, collection, where: dict | None = None, include_embeddings: bool = False,
                page_size: int = 2000) -> Iterator[tuple[str, str, dict, Any]]:
        """Every record of a collection (or those matching `where`), read page by page."""
        include = ["documents", "metadatas"] + (["embeddings"] if include_embeddings else [])
        offset = 0
        while True:
            batch = collection.get(where=where, include=include, limit=page_size, offset=offset)
            ids = batch["ids"]
            if not ids:
                return
            vectors = batch.get("embeddings") if include_embeddings else None
            for n, record_id in enumerate(ids):
                yield (record_id, batch["documents"][n], batch["metadatas"][n],
                       vectors[n] if vectors is not None else None)
            if len(ids) < page_size:
                return
            offset += page_size
