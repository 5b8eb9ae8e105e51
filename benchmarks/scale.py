"""Scale benchmark (not a test): a state-wide index of N chunks, embedded and on a `chroma run` server.

    .venv/bin/python benchmarks/scale.py [--sizes 1000,10000,100000] [--modes embedded,server]

For each size it builds a synthetic index through the project's own store code (documents of 40 chunks;
texts composed from sentences of the sample corpus plus words of their own; sentence vectors from the real
model for the sentence pool, chunk vectors derived from them as ingest derives them; written by a child
process that then exits, as an ingest run does), then prints, in a
fresh serving process: cold start to the first answer (and how much of it is the model), warm ask p50/p95,
peak RSS; and for the writer: a one-document update (a real PDF replacing one document, with that
document's own extraction and embedding time beside it) and a no-op re-ingest as a new CLI process.
Goals at 100k chunks: update <= 5 s + the document's own time, cold start <= 10 s, warm p95 <= 150 ms,
RSS <= 1.5 GB, no-op <= 2 s.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from wbl_assistant.catalog import load_catalog  # noqa: E402
from wbl_assistant.config import Settings  # noqa: E402
from wbl_assistant.ingestion import (  # noqa: E402
    _catalog_meta,
    chunk_vectors,
    file_sha256,
    ingest,
    lexical_row,
    pipeline_fingerprint,
)
from wbl_assistant.lexical import LexicalIndex  # noqa: E402
from wbl_assistant.store import ChunkRecord, IndexStore, Manifest, SentenceRow, new_id  # noqa: E402
from wbl_assistant.vocabulary import load_glossary  # noqa: E402

CHUNKS_PER_DOC = 40
SENTENCES_PER_CHUNK = 4
QUESTIONS = [
    "How many hours does a career development experience require?",
    "Does the Child Labor Law of 2024 apply to a 15 year old in a school WBL program?",
    "What are the stages of the work-based learning continuum?",
    "Who must hold the WBL designation in ELIS?",
    "When did the PWR Act take effect?",
    "What is a team-based challenge?",
    "How late can a 15-year-old work on a school night?",
    "What does STAMP stand for and who launched it?",
    "What are the seven endorsement areas?",
    "What is the capital of France?",
]
SERVE = r"""
import json, os, resource, statistics, sys, time
started = time.perf_counter()


def peak_rss_mb():
    # VmHWM is this program's own peak; ru_maxrss keeps the parent's peak across fork and exec
    try:
        status = open("/proc/self/status").read()
        return int(status.split("VmHWM:")[1].split()[0]) / 1024
    except (OSError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


from wbl_assistant.assistant import Assistant
from wbl_assistant.config import Settings
from wbl_assistant.embeddings import load_query_encoder
settings = Settings.from_env()
imported = time.perf_counter()
load_query_encoder(settings.embedding_model, settings.embed_batch_size).embed_query("warm")
model = time.perf_counter()
assistant = Assistant(settings)
questions = json.loads(sys.argv[1])
assistant.ask(questions[0])
first = time.perf_counter()
times = []
for _ in range(3):
    for q in questions:
        t = time.perf_counter(); assistant.ask(q); times.append((time.perf_counter() - t) * 1000)
times.sort()
print(json.dumps({"import_s": imported - started, "model_s": model - imported, "first_answer_s": first - model,
                  "cold_total_s": first - started, "p50_ms": times[len(times) // 2],
                  "p95_ms": times[int(len(times) * 0.95) - 1],
                  "rss_mb": peak_rss_mb()}))
"""


def sentence_pool(settings: Settings) -> tuple[list[str], np.ndarray]:
    """Sentences of the sample corpus and their real vectors, from an ingest of it."""
    sample = settings.with_changes(data_dir=settings.data_dir / "sample", corpus_dir=ROOT / "corpus",
                                   catalog_path=ROOT / "ingest" / "catalog.toml", collection_prefix="sample")
    ingest(sample)
    from wbl_assistant.store import sentence_vectors_of

    store = IndexStore(sample)
    dims = store.active().dims
    texts, vectors = [], []
    for _, _, metadata, _ in store.records():
        rows = json.loads(metadata["sentences"])
        texts += [row[0] for row in rows]
        vectors.append(sentence_vectors_of(metadata, dims))
    return texts, np.concatenate(vectors)


def build(settings: Settings, chunks: int, pool: tuple[list[str], np.ndarray]) -> float:
    """Write a synthetic index of `chunks` chunks; returns the seconds it took."""
    started = time.perf_counter()
    texts, vectors = pool
    rng = random.Random(7)
    store = IndexStore(settings)
    settings.corpus_dir.mkdir(parents=True, exist_ok=True)
    documents, rows = {}, []
    count = chunks // CHUNKS_PER_DOC
    settings.catalog_path.write_text("".join(
        f'[[documents]]\nslug = "district-{d:05d}"\nfile = "district-{d:05d}.pdf"\n'
        f'title = "District {d} Work-Based Learning Handbook"\npublisher = "District {d}"\nedition = "2026"\n'
        f'kind = "handbook"\n\n' for d in range(count)), encoding="utf-8")
    catalog = load_catalog(settings.catalog_path)
    for d in range(count):
        doc_id = f"district-{d:05d}"
        path = settings.corpus_dir / f"{doc_id}.pdf"
        path.write_bytes(f"%PDF-1.4\n% synthetic document {d}\n%%EOF\n".encode())
        version = f"{d:06x}000000"[:12]
        title = f"District {d} Work-Based Learning Handbook"
        ids, docs, metas, chunk_list, sentence_vecs, owners = [], [], [], [], [], []
        for c in range(CHUNKS_PER_DOC):
            picks = [rng.randrange(len(texts)) for _ in range(SENTENCES_PER_CHUNK)]
            sentences = tuple(SentenceRow(f"{texts[p]} District {d} note {c}.", 1 + c // 4, "sentence")
                              for p in picks)
            text = " ".join(s.text for s in sentences)
            record = ChunkRecord(f"{doc_id}:{version}:{c:04d}", doc_id, version, c, text, 1 + c // 4,
                                 1 + c // 4, f"Part {c // 8}", sentences)
            ids.append(record.chunk_id)
            docs.append(text)
            metas.append(record.metadata(vectors[picks]))
            chunk_list.append(record)
            sentence_vecs.append(vectors[picks])
            owners += [c] * SENTENCES_PER_CHUNK
            rows.append(lexical_row(record.chunk_id, doc_id, title, record.section, text))
        heading = vectors[rng.randrange(len(vectors))]
        chunk_vecs = chunk_vectors(chunk_list, title, np.concatenate(sentence_vecs), owners,
                                   {f"{title} > {r.section}": heading for r in chunk_list})
        store.add(ids, docs, metas, chunk_vecs)
        stat = path.stat()
        documents[doc_id] = {**_catalog_meta(catalog[path.name], path), "file": path.name, "sha256": file_sha256(path),
                             "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "version": version,
                             "pages": CHUNKS_PER_DOC // 4, "chunks": CHUNKS_PER_DOC, "acronyms": {},
                             "ingested_at": time.time()}
    snapshot = new_id("s")
    store.save_blob(snapshot, LexicalIndex.build(rows).to_bytes())
    glossary = [list(pair) for pair in load_glossary(settings.glossary_path)]
    store.activate(Manifest(snapshot, documents, {**pipeline_fingerprint(settings), "dims": vectors.shape[1],
                                                  "glossary": glossary}, time.time(), (), lexical=snapshot))
    return time.perf_counter() - started


def environment(settings: Settings) -> dict[str, str]:
    env = {**os.environ, "WBL_DATA_DIR": str(settings.data_dir), "WBL_CORPUS_DIR": str(settings.corpus_dir),
           "WBL_CATALOG": str(settings.catalog_path), "WBL_COLLECTION_PREFIX": settings.collection_prefix,
           "PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1"}
    if settings.chroma_host:
        env |= {"WBL_CHROMA_HOST": settings.chroma_host, "WBL_CHROMA_PORT": str(settings.chroma_port)}
    return env


def measure(settings: Settings) -> dict[str, float]:
    serve = subprocess.run([sys.executable, "-c", SERVE, json.dumps(QUESTIONS)], env=environment(settings),
                           capture_output=True, text=True, check=True)
    out = json.loads(serve.stdout.strip().splitlines()[-1])
    replacement = sorted((ROOT / "corpus").glob("*.pdf"))[0]
    shutil.copy(replacement, settings.corpus_dir / "district-00000.pdf")
    report = ingest(settings)
    [updated] = [r for r in report.results if r.status == "updated"]
    own = settings.with_changes(data_dir=settings.data_dir / "own", collection_prefix="own",
                                corpus_dir=settings.data_dir / "own-corpus")
    own.corpus_dir.mkdir(parents=True)
    shutil.copy(replacement, own.corpus_dir / "district-00000.pdf")
    alone = ingest(own)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "wbl_assistant.cli", "ingest"], env=environment(settings),
                   capture_output=True, check=True)
    noop = time.perf_counter() - started
    return {**out, "update_s": report.seconds, "update_doc_alone_s": alone.seconds, "updated_chunks": updated.chunks,
            "noop_cli_s": noop}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--modes", default="embedded,server")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        base = Settings.from_env(data_dir=Path(root) / "pool")
        pool = sentence_pool(base)
        print(f"sentence pool: {len(pool[0])} sentences with real vectors", flush=True)
        for mode in args.modes.split(","):
            server = None
            for size in [int(s) for s in args.sizes.split(",")]:
                folder = Path(root) / f"{mode}-{size}"
                settings = Settings.from_env(data_dir=folder / "data", corpus_dir=folder / "corpus",
                                             catalog_path=folder / "catalog.toml", collection_prefix=f"s{size}")
                if mode == "server":
                    if server is None:
                        port = free_port()
                        server = subprocess.Popen([str(Path(sys.executable).parent / "chroma"), "run", "--path",
                                                   str(Path(root) / "server"), "--port", str(port)],
                                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                        time.sleep(8)
                    settings = settings.with_changes(chroma_host="127.0.0.1", chroma_port=port)
                with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as builder:
                    built = builder.submit(build, settings, size, pool).result()
                result = measure(settings)
                print(f"{mode:8} {size:>7} chunks (built in {built:5.0f} s): "
                      f"cold start {result['cold_total_s']:5.1f} s "
                      f"(import {result['import_s']:.1f}, model {result['model_s']:.1f}, index + first answer "
                      f"{result['first_answer_s']:.1f}) · warm p50 {result['p50_ms']:6.1f} ms p95 "
                      f"{result['p95_ms']:6.1f} ms · RSS {result['rss_mb']:6.0f} MB · one-document update "
                      f"{result['update_s']:5.1f} s ({result['updated_chunks']} chunks; the same document alone "
                      f"{result['update_doc_alone_s']:.1f} s) · no-op re-ingest (CLI) {result['noop_cli_s']:.1f} s",
                      flush=True)
            if server is not None:
                server.terminate()
                server.wait(timeout=30)


if __name__ == "__main__":
    main()
