"""Ingest benchmark (not a test): cold ingest throughput beside raw embedding throughput, and a no-op re-ingest.

    .venv/bin/python benchmarks/ingest.py [--corpus corpus]

Prints pages/s and chunks/s of a cold ingest into an empty temp index (embedding model already loaded),
the raw embedding throughput of the same chunks measured in the same run, their ratio (goal >= 0.8), and
the time of a re-ingest with nothing changed (goal <= 2 s on the sample corpus), in-process and as a
fresh `wbl-assistant ingest` process.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from wbl_assistant.config import Settings  # noqa: E402
from wbl_assistant.embeddings import load_embeddings  # noqa: E402
from wbl_assistant.ingestion import ingest  # noqa: E402
from wbl_assistant.store import IndexStore  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=ROOT / "corpus")
    parser.add_argument("--catalog", type=Path, default=ROOT / "ingest" / "catalog.toml")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as data:
        settings = Settings(data_dir=Path(data), corpus_dir=args.corpus, catalog_path=args.catalog)
        started = time.perf_counter()
        model = load_embeddings(settings.embedding_model, settings.embed_batch_size)
        model.embed_documents(["warm-up"])
        load_seconds = time.perf_counter() - started

        report = ingest(settings)
        pages = sum(r.pages for r in report.results if r.status == "added")
        chunks = report.chunks
        cold = report.seconds

        store = IndexStore(settings)
        texts = [doc for _, doc, _, _ in store.records()]
        started = time.perf_counter()
        model.embed_documents(texts)
        raw = time.perf_counter() - started

        noop = ingest(settings)
        assert not noop.switched, "a re-ingest with nothing changed must not rewrite the index"
        env = {**os.environ, "WBL_DATA_DIR": data, "WBL_CORPUS_DIR": str(args.corpus),
               "WBL_CATALOG": str(args.catalog)}
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "wbl_assistant.cli", "ingest"], env=env, check=False,
                       capture_output=True)
        noop_process = time.perf_counter() - started

    ingest_rate, raw_rate = chunks / cold, len(texts) / raw
    print(f"corpus: {len(report.results)} documents, {pages} pages, {chunks} chunks")
    print(f"model load (excluded below):       {load_seconds:6.2f} s")
    print(f"cold ingest:                       {cold:6.2f} s   {pages / cold:7.1f} pages/s   "
          f"{ingest_rate:7.1f} chunks/s")
    print(f"raw embedding of the same chunks:  {raw:6.2f} s   {'':17}{raw_rate:7.1f} chunks/s")
    print(f"ratio ingest / raw embedding:      {ingest_rate / raw_rate:6.2f}   (goal >= 0.8)")
    print(f"re-ingest, nothing changed:        {noop.seconds:6.2f} s in-process   "
          f"{noop_process:.2f} s as a new `wbl-assistant ingest` process   (goal <= 2 s)")


if __name__ == "__main__":
    main()
