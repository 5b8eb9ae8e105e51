"""Ask benchmark (not a test): warm p50/p95 of `Assistant.ask` beside the retrieval floor, same run.

    .venv/bin/python benchmarks/ask.py [--rounds 5]

The floor is what no grounded answer can skip: embedding the question and one Chroma query. Goal: p50 of
ask <= 2x the floor's p50. Uses the index in WBL_DATA_DIR (default ./data), ingesting the corpus if empty.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from wbl_assistant.assistant import Assistant  # noqa: E402
from wbl_assistant.config import Settings  # noqa: E402
from wbl_assistant.evaluation.metrics import percentile  # noqa: E402
from wbl_assistant.ingestion import ingest  # noqa: E402
from wbl_assistant.store import IndexStore  # noqa: E402

QUESTIONS = [
    "How many hours does a career development experience require?",
    "Does the Child Labor Law of 2024 apply to 14-year-olds in school work-based learning?",
    "What are the stages of the work-based learning continuum?",
    "Who must hold the WBL designation in ELIS?",
    "When did the PWR Act take effect?",
    "What is a team-based challenge?",
    "How long was the IMBI micro-internship?",
    "What does STAMP stand for and who launched it?",
    "What are the seven endorsement areas?",
    "How old must a youth apprentice be?",
    "What is the deadline to submit an endorsement plan?",
    "What is the capital of France?",
    "Which schools piloted math badges?",
    "What is transitional math?",
    "Who supervises minors at work?",
    "What does the Companion Piece add to the CDE Toolkit?",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    settings = Settings.from_env()
    if IndexStore(settings).active() is None:
        ingest(settings)
    assistant = Assistant(settings)
    assistant.warm_up()
    reader = assistant.reader
    collection = reader.snapshot().collection
    for question in QUESTIONS:
        assistant.ask(question)

    asks, floors = [], []
    for _ in range(args.rounds):
        for question in QUESTIONS:
            started = time.perf_counter()
            vector = reader.embed_query(question)
            collection.query(query_embeddings=[vector.tolist()], n_results=settings.top_k)
            floors.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            assistant.ask(question)
            asks.append((time.perf_counter() - started) * 1000)

    p50, p95 = percentile(asks, 50), percentile(asks, 95)
    f50, f95 = percentile(floors, 50), percentile(floors, 95)
    print(f"{len(QUESTIONS)} questions x {args.rounds} rounds, warm")
    print(f"ask:    p50 {p50:7.1f} ms   p95 {p95:7.1f} ms   mean {statistics.mean(asks):7.1f} ms")
    print(f"floor:  p50 {f50:7.1f} ms   p95 {f95:7.1f} ms   (question embedding + one Chroma query)")
    print(f"ratio:  p50 {p50 / f50:5.2f}x   p95 {p95 / f95:5.2f}x   (goal: p50 <= 2x)")


if __name__ == "__main__":
    main()
