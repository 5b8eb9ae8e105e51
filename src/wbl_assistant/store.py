"""The index in Chroma, embedded (PersistentClient) or on a server (HttpClient), by the same code.

Under one collection prefix P, the index is two collections:

- `P_chunks`: the chunk records of every ingested *document version*. A version is written once and never
  modified; its records carry the chunk text, its place (page, section) and its sentences with their vectors
  (the units the answerer quotes). Catalog fields (title, edition, ...) are not in the records: they live in
  the manifest, so a catalog edit changes no record.
- `P_meta`: the pointer record (the *manifest*: which version of each document is live, with its catalog
  fields, file hash and counts) and, in server mode, the writers' lease.

An ingest adds the versions of changed documents beside the live ones and switches the pointer in one
write, so a reader always sees one complete index and an update costs O(changed documents). Versions that
are no longer live are deleted a grace period later, so a question in flight keeps its chunks; versions of
an ingest that died midway are orphans that the next ingest deletes. One writer at a time: a file lock in
the data dir (embedded), or a lease record with an expiry in `P_meta` (server).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import itertools
import json
import logging
import os
import secrets
import socket
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import chromadb
import numpy as np
from chromadb.config import Settings as ChromaSettings
from chromadb.errors import NotFoundError

from .config import Settings
from .embeddings import ChromaEmbeddings
from .index_names import GARBAGE_OWED_ID, POINTER_ID

logger = logging.getLogger(__name__)

#: Bump when what a record holds changes: every document is then re-ingested.
RECORD_FORMAT = 6
LEASE_ID = "writer-lease"
BLOB_PREFIX = "blob:"
#: Characters of base64 per blob record (about 3 MB of data).
BLOB_PART_CHARS = 4_000_000
#: The meta collection's records need a vector; they all get this one.
META_VECTOR = [1.0, 0.0]
LEASE_SECONDS = 60.0


class SwitchCounter:
    """Counts the index switches made in this process (`IndexStore.activate`), so that a reader that skips
    its pointer check for a moment (`retrieval.POINTER_CHECK_SECONDS`) still sees those at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def bump(self) -> None:
        with self._lock:
            self.value += 1


LOCAL_SWITCHES = SwitchCounter()


class StoreError(RuntimeError):
    """Chroma cannot be reached or the index is not usable; the message says what to do."""


class WriterBusyError(StoreError):
    """Another ingest holds the index's writer lock."""


#: Embedded Chroma keeps one in-memory vector index per data dir and process, and does not see what another
#: process (or another client in this one) writes to it later: queries return deleted ids and new ids are
#: "not found". So a writer and each new snapshot of a reader open the data dir afresh, under an alias path
#: (`<dir>/./.` ...): a new alias is a new Chroma system that loads the current state from disk.
#: Stopping a Chroma system while a question still queries it aborts the process, so each view counts its
#: holders (the store whose client it is, every snapshot loaded from it) and is stopped only once it has had
#: none for `VIEW_LINGER` seconds.
VIEW_LINGER = 120.0


@dataclass
class _View:
    holders: int = 0
    idle_since: float | None = None


_views: dict[str, _View] = {}
_views_lock = threading.RLock()


def _fresh_embedded(settings: Settings, chroma_settings: ChromaSettings) -> chromadb.ClientAPI:
    base = str(settings.chroma_path)
    now = time.monotonic()
    with _views_lock:
        alias = next(a for a in (os.path.join(base, *["."] * n) for n in itertools.count(1)) if a not in _views)
        _views[alias] = _View(idle_since=now)
        stale = [name for name, view in list(_views.items())
                 if view.holders == 0 and view.idle_since is not None and now - view.idle_since >= VIEW_LINGER]
    for name in stale:
        _stop_view(name)
    return _persistent_client(alias, chroma_settings)


def _persistent_client(path: str, chroma_settings: ChromaSettings) -> chromadb.ClientAPI:
    """A PersistentClient, made one at a time: Chroma registers a path's system before starting it, so a
    second thread opening the same path meanwhile gets a half-started system, fails, and stops it under the
    first (KeyError, "no attribute 'bindings'")."""
    with _views_lock:
        return chromadb.PersistentClient(path=path, settings=chroma_settings)


def hold_view(alias: str | None, owner: object) -> weakref.finalize | None:
    """Count `owner` as a holder of the view `alias` until it is garbage-collected or the returned finalizer
    is called (None, and nothing held, for a client that is not a fresh view)."""
    with _views_lock:
        view = _views.get(alias) if alias else None
        if view is None:
            return None
        view.holders += 1
        view.idle_since = None
    return weakref.finalize(owner, release_view, alias)


def release_view(alias: str | None) -> None:
    with _views_lock:
        view = _views.get(alias) if alias else None
        if view is None or view.holders == 0:
            return
        view.holders -= 1
        if view.holders == 0:
            view.idle_since = time.monotonic()


def _stop_view(alias: str, only_if_idle: bool = True) -> None:
    from chromadb.api.shared_system_client import SharedSystemClient

    with _views_lock:
        view = _views.get(alias)
        if view is None or (only_if_idle and view.holders):
            return
        del _views[alias]
        system = SharedSystemClient._identifier_to_system.pop(alias, None)
        SharedSystemClient._identifier_to_refcount.pop(alias, None)
    if system is not None:
        with contextlib.suppress(Exception):
            system.stop()


def connect(settings: Settings, fresh: bool = False) -> chromadb.ClientAPI:
    """A Chroma client for the configured index; a clear StoreError when the server is unreachable.

    `fresh` (embedded only): a client that sees every write made so far, by any process (see above)."""
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
    if fresh:
        return _fresh_embedded(settings, chroma_settings)
    return _persistent_client(str(settings.chroma_path), chroma_settings)


# -- the record format ------------------------------------------------------------------------------------


def encode_vectors(vectors: np.ndarray) -> str:
    """Unit vectors as base64 float16: they ride in their chunk's metadata."""
    return base64.b64encode(np.asarray(vectors, dtype=np.float16).tobytes()).decode("ascii")


def decode_vectors(text: str, dims: int) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=np.float16).astype(np.float32).reshape(-1, dims)


@dataclass(frozen=True)
class SentenceRow:
    """A quotable unit of a chunk: a prose sentence, a list item or a table row, with its page."""

    text: str
    page: int
    unit: str


@dataclass(frozen=True)
class ChunkRecord:
    """One chunk as stored: what the writer puts in Chroma and the reader gets back."""

    chunk_id: str
    doc_id: str
    version: str
    index: int
    text: str
    page: int
    page_end: int
    section: str
    sentences: tuple[SentenceRow, ...]

    @property
    def heading(self) -> str:
        """The innermost heading the chunk sits under ("" in front matter)."""
        return self.section.rsplit(" > ", 1)[-1] if self.section else ""

    def metadata(self, sentence_vectors: np.ndarray, heading_vector: np.ndarray | None = None) -> dict[str, Any]:
        out = {
            "doc_id": self.doc_id, "version": self.version, "index": self.index, "page": self.page,
            "page_end": self.page_end, "section": self.section,
            "sentences": json.dumps([[s.text, s.page, s.unit] for s in self.sentences], ensure_ascii=False),
            "sentence_vectors": encode_vectors(sentence_vectors),
        }
        if heading_vector is not None:
            out["heading_vector"] = encode_vectors(heading_vector[None, :])
        return out

    @classmethod
    def from_chroma(cls, chunk_id: str, text: str, metadata: dict[str, Any]) -> ChunkRecord:
        rows = tuple(SentenceRow(t, int(p), u) for t, p, u in json.loads(metadata.get("sentences", "[]")))
        return cls(chunk_id, metadata["doc_id"], metadata["version"], int(metadata["index"]), text,
                   int(metadata["page"]), int(metadata["page_end"]), metadata.get("section", ""), rows)


def sentence_vectors_of(metadata: dict[str, Any], dims: int) -> np.ndarray:
    encoded = metadata.get("sentence_vectors", "")
    return decode_vectors(encoded, dims) if encoded else np.zeros((0, dims), dtype=np.float32)


def heading_vector_of(metadata: dict[str, Any], dims: int) -> np.ndarray | None:
    encoded = metadata.get("heading_vector", "")
    return decode_vectors(encoded, dims)[0] if encoded else None


# -- the manifest -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Manifest:
    """The pointer record: one index state. `documents` maps doc_id to its live version and catalog fields."""

    snapshot: str
    documents: dict[str, dict[str, Any]]
    pipeline: dict[str, Any]
    created: float = 0.0
    retired: tuple[tuple[str, float], ...] = ()
    lexical: str = ""

    @property
    def live_versions(self) -> set[str]:
        return {entry["version"] for entry in self.documents.values()}

    @property
    def live_chunks(self) -> int:
        return sum(int(entry.get("chunks", 0)) for entry in self.documents.values())

    @property
    def blobs(self) -> set[str]:
        """The blobs this state names: its lexical index, and each document's kept edition texts and change
        reports (see editions.py)."""
        names = {self.lexical}
        for entry in self.documents.values():
            names |= {item.get("text_blob", "") for item in entry.get("history", [])}
            names |= {change.get("report_blob", "") for change in entry.get("changes", [])}
        return names - {""}

    @property
    def dims(self) -> int:
        return int(self.pipeline.get("dims", 0))

    def to_json(self) -> str:
        return json.dumps({"format": RECORD_FORMAT, "snapshot": self.snapshot, "documents": self.documents,
                           "pipeline": self.pipeline, "created": self.created, "lexical": self.lexical,
                           "retired": [list(r) for r in self.retired]}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Manifest | None:
        """The manifest, or None for a pointer of another record format (an older install)."""
        data = json.loads(text)
        if data.get("format") != RECORD_FORMAT:
            return None
        return cls(data["snapshot"], data["documents"], data["pipeline"], data.get("created", 0.0),
                   tuple((v, float(t)) for v, t in data.get("retired", [])), data.get("lexical", ""))


def new_id(prefix: str) -> str:
    """A sortable unique id: UTC time and random hex."""
    return prefix + time.strftime("%Y%m%dt%H%M%S", time.gmtime()) + secrets.token_hex(3)


# -- the store --------------------------------------------------------------------------------------------


class IndexStore:
    """The chunk and meta collections of one index (one collection prefix) in one Chroma database."""

    def __init__(self, settings: Settings, client: chromadb.ClientAPI | None = None) -> None:
        self.settings = settings
        self.prefix = settings.collection_prefix
        self._own_client = client is None
        #: Embedded, opened on first use: a writer's first use is its fresh view (opening a Chroma system
        #: costs seconds on a big index). A server is checked at once.
        self._client = client if client is not None or not settings.uses_server else connect(settings)
        self.embedding_function = ChromaEmbeddings(settings.embedding_model, settings.embed_batch_size)
        self._chunks = None
        self._meta = None
        #: The pointer's snapshot id when this store's view was opened; a reader reopens when it moved.
        self._view_of: str | None = None
        self._writing = False
        #: Releases this store's hold on its fresh view (see `hold_view`); None while it has none.
        self._hold: weakref.finalize | None = None
        self._view_lock = threading.RLock()

    @property
    def client(self) -> chromadb.ClientAPI:
        client = self._client
        if client is None:
            with self._view_lock:
                if self._client is None:
                    self._client = connect(self.settings)
                client = self._client
        return client

    @property
    def chunks_name(self) -> str:
        return self.settings.chunks_collection

    @property
    def meta_name(self) -> str:
        return self.settings.meta_collection

    def refresh(self) -> None:
        """Embedded: open the data dir afresh, so that what other processes wrote is seen."""
        if self._own_client and not self.settings.uses_server:
            with self._view_lock:
                client = connect(self.settings, fresh=True)
                previous, self._hold = self._hold, hold_view(self.view_alias(client), self)
                self._client = client
                self.forget_collections()
            if previous is not None:
                previous()

    @staticmethod
    def view_alias(client: Any) -> str | None:
        return getattr(client, "_identifier", None)

    def pinned_chunks(self) -> tuple[Any, str | None]:
        """A reader's chunk collection with the alias of the view it belongs to (for `hold_view`)."""
        with self._view_lock:
            return self.chunks(create=False), self.view_alias(self._client)

    def close_view(self) -> None:
        """Stop this store's fresh view (a writer's, once it is done) and go back to the shared client; a view
        that a snapshot still holds is stopped once it is released."""
        with self._view_lock:
            held, self._hold = self._hold, None
            alias = self.view_alias(self._client)
            if held is None:
                return
            self._client = None
            self.forget_collections()
        held()
        _stop_view(alias)

    def chunks(self, create: bool = True):
        """The chunk collection (created on first use by a writer; a reader gets NotFoundError if absent).

        Embedded, for a reader: reopened when the pointer moved since the view was opened (a new snapshot)."""
        if not create and not self._writing and self._own_client and not self.settings.uses_server:
            live = self.active_snapshot_id()
            if live != self._view_of:
                with self._view_lock:
                    if live != self._view_of:
                        self.refresh()
                        self._view_of = live
        chunks = self._chunks
        if chunks is None:
            if create:
                chunks = self.client.get_or_create_collection(
                    self.chunks_name, embedding_function=self.embedding_function,
                    configuration={"hnsw": {"space": "cosine"}})
            else:
                chunks = self.client.get_collection(self.chunks_name, embedding_function=self.embedding_function)
            self._chunks = chunks
        return chunks

    def meta(self):
        if self._meta is None:
            self._meta = self.client.get_or_create_collection(
                self.meta_name, embedding_function=self.embedding_function,
                configuration={"hnsw": {"space": "cosine"}})
        return self._meta

    def forget_collections(self) -> None:
        """Drop cached collection handles (after the collections were deleted or recreated elsewhere)."""
        self._chunks = self._meta = None

    def active(self) -> Manifest | None:
        """The live index state, or None when nothing (usable) was ingested yet."""
        try:
            found = self.meta().get(ids=[POINTER_ID], include=["documents"])
        except NotFoundError:
            self.forget_collections()
            return None
        if not found["ids"]:
            return None
        return Manifest.from_json(found["documents"][0])

    def active_snapshot_id(self) -> str | None:
        """The live snapshot's id alone: a cheap check whether a reader is current."""
        try:
            found = self.meta().get(ids=[POINTER_ID], include=["metadatas"])
        except NotFoundError:
            self.forget_collections()
            return None
        if not found["ids"]:
            return None
        return (found["metadatas"][0] or {}).get("snapshot")

    def activate(self, manifest: Manifest) -> None:
        """Point readers at `manifest` in one write."""
        self.meta().upsert(ids=[POINTER_ID], documents=[manifest.to_json()], embeddings=[META_VECTOR],
                           metadatas=[{"snapshot": manifest.snapshot, "format": RECORD_FORMAT}])
        LOCAL_SWITCHES.bump()

    def missing_chunks(self, manifest: Manifest) -> bool:
        """Whether the live versions' chunks are gone (their collection was deleted). Asks only whether the
        collection exists: the first read of a large collection costs about half a second (Chroma loads it),
        which a no-op ingest should not pay."""
        try:
            self.chunks(create=False)
        except NotFoundError:
            self.forget_collections()
            return manifest.live_chunks > 0
        return False

    def owe_garbage_collection(self) -> None:
        """Record, before writing chunks, that the next garbage collection must look for orphans (a run that
        dies before activating leaves some)."""
        self.meta().upsert(ids=[GARBAGE_OWED_ID], documents=[str(time.time())], embeddings=[META_VECTOR],
                           metadatas=[{"owed": True}])

    def _garbage_owed(self) -> bool:
        return bool(self.meta().get(ids=[GARBAGE_OWED_ID], include=[])["ids"])

    def add(self, ids: list[str], documents: list[str], metadatas: list[dict], embeddings: Any) -> None:
        chunks = self.chunks()
        step = max(1, min(self.client.get_max_batch_size(), 2000))
        for start in range(0, len(ids), step):
            end = start + step
            chunks.add(ids=ids[start:end], documents=documents[start:end], metadatas=metadatas[start:end],
                       embeddings=embeddings[start:end])

    def collect_garbage(self, manifest: Manifest | None, grace_seconds: float) -> Manifest | None:
        """Delete chunks of versions, and blobs (lexical indexes, edition texts, change reports), that are
        neither live (named by the manifest) nor retired less than `grace_seconds` ago; returns the manifest
        in force (re-activated without the retired versions it deleted). Only the writer calls this (it holds
        the lock), so nothing being written can be an orphan. Free when there is nothing to delete (the common
        case): with no retired version past its grace and no garbage owed, the chunk collection is not touched."""
        keep = set(manifest.live_versions) if manifest else set()
        retired = manifest.retired if manifest else ()
        recent = {name for name, at in retired if time.time() - at < grace_seconds}
        self._drop_blobs((manifest.blobs if manifest else set()) | recent)
        expired = any(name not in recent for name, _ in retired)
        if manifest is not None and not expired and not self._garbage_owed():
            return manifest
        try:
            chunks = self.chunks(create=False)
        except NotFoundError:
            self.forget_collections()
            return manifest
        before = chunks.count()
        keep |= recent
        only_live = manifest is not None and before == manifest.live_chunks and not recent
        if keep and not only_live:
            chunks.delete(where={"version": {"$nin": sorted(keep)}})
        elif before and not keep:
            chunks.delete(where={"version": {"$ne": ""}})
        removed = before - chunks.count()
        if removed:
            logger.info("deleted %d chunks of retired or orphaned versions", removed)
        if manifest is not None and expired:
            manifest = replace(manifest, retired=tuple(item for item in retired if item[0] in recent))
            self.activate(manifest)
        self.meta().delete(ids=[GARBAGE_OWED_ID])
        return manifest

    # -- blobs: the lexical index, stored in the meta collection so that every reader (and replica) finds it

    def save_blob(self, name: str, data: bytes) -> None:
        """Store `data` under `name`, in parts small enough for any Chroma server."""
        text = base64.b64encode(data).decode("ascii")
        parts = [text[start:start + BLOB_PART_CHARS] for start in range(0, len(text), BLOB_PART_CHARS)] or [""]
        for n, part in enumerate(parts):
            self.meta().upsert(ids=[f"{BLOB_PREFIX}{name}:{n}"], embeddings=[META_VECTOR],
                               metadatas=[{"blob": name, "part": n, "parts": len(parts), "data": part}])

    def load_blob(self, name: str) -> bytes | None:
        """The bytes stored under `name`, or None when they are missing or incomplete."""
        found = self.meta().get(where={"blob": name}, include=["documents", "metadatas"])
        # blobs written by earlier versions hold their data in the document (indexed for full-text search:
        # slow to write), now in metadata
        parts = {int(m["part"]): (m.get("data", doc), int(m["parts"]))
                 for doc, m in zip(found["documents"], found["metadatas"], strict=True)}
        if not parts or len(parts) != next(iter(parts.values()))[1]:
            return None
        return base64.b64decode("".join(parts[n][0] for n in range(len(parts))))

    def has_blob(self, name: str) -> bool:
        return bool(name) and bool(self.meta().get(ids=[f"{BLOB_PREFIX}{name}:0"], include=[])["ids"])

    def _drop_blobs(self, keep: set[str]) -> None:
        """Delete the blobs not in `keep`. Reads ids only (a part's id names its blob): the parts' data, tens
        of megabytes for a large index's lexical blob, stays where it is."""
        ids = self.meta().get(include=[])["ids"]
        stale = [record_id for record_id in ids if record_id.startswith(BLOB_PREFIX)
                 and record_id[len(BLOB_PREFIX):].rpartition(":")[0] not in keep]
        if stale:
            self.meta().delete(ids=stale)

    def drop_legacy_collections(self) -> list[str]:
        """Delete this prefix's collections from older record formats (one collection per generation)."""
        pattern = self.settings.legacy_collection_pattern
        dropped = []
        for item in self.client.list_collections():
            name = item if isinstance(item, str) else item.name
            if pattern.match(name):
                with contextlib.suppress(NotFoundError, ValueError):
                    self.client.delete_collection(name)
                    dropped.append(name)
        return dropped

    def records(self, where: dict | None = None, include_embeddings: bool = False,
                page_size: int = 2000) -> Iterator[tuple[str, str, dict, Any]]:
        """Every chunk record (or those matching `where`), read page by page."""
        include = ["documents", "metadatas"] + (["embeddings"] if include_embeddings else [])
        chunks = self.chunks(create=False)
        offset = 0
        while True:
            batch = chunks.get(where=where, include=include, limit=page_size, offset=offset)
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

    def writer_lock(self, wait_seconds: float) -> WriterLock:
        if self.settings.uses_server:
            return LeaseLock(self, wait_seconds)
        return _FreshWriter(self, FileLock(self.settings.data_dir / "ingest.lock", wait_seconds))


# -- one writer at a time ---------------------------------------------------------------------------------


def _holder() -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time(), "token": secrets.token_hex(8)}


def busy_message(holder: dict[str, Any]) -> str:
    since = time.strftime("%H:%M", time.localtime(float(holder.get("since", time.time()))))
    where = f" on {holder['host']}" if holder.get("host") and holder["host"] != socket.gethostname() else ""
    return f"another ingest has been running since {since} (pid {holder.get('pid', '?')}{where}); try again later"


class WriterLock:
    """Held by an ingest from start to finish. `check()` raises when the lock was lost (a lease expired)."""

    def __enter__(self) -> WriterLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.release()

    def acquire(self) -> None: ...

    def release(self) -> None: ...

    def check(self) -> None: ...


class _FreshWriter(WriterLock):
    """The file lock of an embedded writer, which opens the data dir afresh once it holds the lock: it then
    sees (and keeps) what the previous writer, maybe another process, wrote."""

    def __init__(self, store: IndexStore, lock: WriterLock) -> None:
        self.store = store
        self.lock = lock

    def acquire(self) -> None:
        self.lock.acquire()
        self.store.refresh()
        self.store._writing = True

    def release(self) -> None:
        self.store._writing = False
        self.store.close_view()
        self.lock.release()

    def check(self) -> None:
        self.lock.check()


class FileLock(WriterLock):
    """An advisory lock on a file in the data dir: released by the OS when the process dies (kill -9 too)."""

    def __init__(self, path: Path, wait_seconds: float) -> None:
        self.path = path
        self.wait_seconds = wait_seconds
        self._handle = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+", encoding="utf-8")
        deadline = time.monotonic() + self.wait_seconds
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.seek(0)
                    try:
                        holder = json.loads(handle.read() or "{}")
                    except json.JSONDecodeError:
                        holder = {}
                    handle.close()
                    raise WriterBusyError(busy_message(holder)) from None
                time.sleep(0.2)
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(_holder()))
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


class LeaseLock(WriterLock):
    """A lease record in the meta collection, for writers on several machines sharing one Chroma server.

    Taken by adding a record with a fixed id (Chroma keeps the first of two adds), renewed by a heartbeat,
    taken over only when expired (a conditional delete on the expired holder's token)."""

    def __init__(self, store: IndexStore, wait_seconds: float, lease_seconds: float = LEASE_SECONDS) -> None:
        self.store = store
        self.wait_seconds = wait_seconds
        self.lease_seconds = lease_seconds
        self.holder = _holder()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lost = False

    def _current(self) -> dict[str, Any] | None:
        found = self.store.meta().get(ids=[LEASE_ID], include=["documents"])
        return json.loads(found["documents"][0]) if found["ids"] else None

    def _write(self, method: str) -> None:
        record = {**self.holder, "expires": time.time() + self.lease_seconds}
        getattr(self.store.meta(), method)(ids=[LEASE_ID], documents=[json.dumps(record)],
                                           embeddings=[META_VECTOR], metadatas=[{"token": self.holder["token"]}])

    def acquire(self) -> None:
        deadline = time.monotonic() + self.wait_seconds
        while True:
            current = self._current()
            if current is not None and current.get("token") == self.holder["token"]:
                break
            if current is not None and float(current.get("expires", 0)) < time.time():
                self.store.meta().delete(ids=[LEASE_ID], where={"token": current.get("token", "")})
                continue
            if current is None:
                self._write("add")
                continue
            if time.monotonic() >= deadline:
                raise WriterBusyError(busy_message(current))
            time.sleep(0.5)
        self._thread = threading.Thread(target=self._renew, name="ingest-lease", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.lease_seconds / 4):
            try:
                current = self._current()
                if current is None or current.get("token") != self.holder["token"]:
                    self._lost = True
                    return
                self._write("upsert")
            except Exception as error:  # a passing server error: the next beat retries; expiry is the backstop
                logger.warning("could not renew the ingest lease: %s", error)

    def check(self) -> None:
        current = self._current()
        if self._lost or current is None or current.get("token") != self.holder["token"]:
            raise WriterBusyError("this ingest lost its writer lease (it stalled past the lease); nothing was "
                                  "switched: run it again")

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with contextlib.suppress(Exception):
            self.store.meta().delete(ids=[LEASE_ID], where={"token": self.holder["token"]})

