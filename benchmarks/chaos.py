"""Chaos benchmark (not a test): concurrent chat sessions while the index is re-ingested and a second,
competing ingest starts; on the embedded index and on a `chroma run` server.

    .venv/bin/python benchmarks/chaos.py [--sessions 20] [--questions 2] [--mode both|embedded|server]

It copies the sample corpus to a temp dir, ingests it, starts the chat page (`app.launch`) and measures
one lone session asking the questions (idle: first text and full answer). Then, at once: a re-ingest
(`wbl-assistant ingest` in a subprocess) of a changed edition of one document, a second competing
`wbl-assistant ingest` a moment later, and N sessions through `gradio_client` (threads of one process of
their own, as browsers are not in the page's process), each asking its questions in turn, downloading the
cited page's image as a browser would. Pass: no failed request, no traceback (page log and the web server's
own log, both ingests), no cross-talk (each session's
final answer equals what a lone `Assistant.ask` gives for the same question and history on the index after
the ingest; for the changed document the answer from before is accepted too), the index consistent after.
Prints idle p50 beside p50/p95 under load. `tests/e2e/test_chaos.py` runs a smaller version.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import multiprocessing
import os
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "ingest"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

CHANGED = "hosa-competition"
QUESTIONS = [
    "What is the registration deadline for the HOSA State Leadership Conference?",
    "How many hours does a career development experience require?",
    "What are the stages of the work-based learning continuum?",
    "Who can coordinate work-based learning in a CTE program?",
    "How long was the IMBI micro-internship, and how many students took part?",
    "How old must a youth apprentice be?",
    "What does STAMP stand for and who launched it?",
    "What is the capital of France?",
    "What fee does Illinois HOSA list for the conference?",
    "What are the seven endorsement areas?",
]
#: Questions whose answer may come from the changed document: before or after the switch is right.
ABOUT_CHANGED = {QUESTIONS[0], QUESTIONS[8]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def changed_edition(path: Path) -> None:
    """Render a new edition of the changed document: another deadline and fee."""
    import build_sample

    source = ROOT / "ingest" / "sample" / f"{CHANGED}.md"
    text = source.read_text(encoding="utf-8").replace("February 1", "March 15").replace("$100", "$125")
    with tempfile.TemporaryDirectory() as folder:
        edited = Path(folder) / source.name
        edited.write_text(text, encoding="utf-8")
        entry = next(d for d in build_sample.load_documents() if d.slug == CHANGED)
        doc = build_sample.Document(entry.slug, entry.title, entry.publisher, entry.edition, entry.kind, edited, path)
        path.write_bytes(build_sample.render(doc))


@contextlib.contextmanager
def chroma_server(folder: Path):
    chroma = shutil.which("chroma") or str(Path(sys.executable).parent / "chroma")
    port = free_port()
    log = (folder / "chroma.log").open("w")
    process = subprocess.Popen([chroma, "run", "--path", str(folder / "chroma-db"), "--host", "127.0.0.1",
                                "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    deadline = time.time() + 60
    while True:
        try:
            chromadb.HttpClient(host="127.0.0.1", port=port,
                                settings=ChromaSettings(anonymized_telemetry=False)).heartbeat()
            break
        except Exception:
            if process.poll() is not None or time.time() > deadline:
                process.kill()
                raise RuntimeError("chroma run did not start") from None
            time.sleep(0.3)
    try:
        yield "127.0.0.1", port
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@dataclass
class Request:
    session: int
    question: str
    first: float = 0.0
    full: float = 0.0
    answer: str = ""
    error: str = ""
    during_ingest: bool = False


@dataclass
class ChaosResult:
    mode: str
    idle_first: list[float] = field(default_factory=list)
    idle_full: list[float] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    cross_talk: list[str] = field(default_factory=list)
    tracebacks: list[str] = field(default_factory=list)
    ingests: list[str] = field(default_factory=list)
    consistency: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[Request]:
        return [r for r in self.requests if r.error]

    @property
    def ok(self) -> bool:
        return not (self.errors or self.cross_talk or self.tracebacks or self.consistency)

    def summary(self) -> str:
        loaded = [r.full for r in self.requests if not r.error]
        first = [r.first for r in self.requests if not r.error]
        overlapped = sum(r.during_ingest for r in self.requests)
        return "\n".join([
            f"[{self.mode}] idle: first text p50 {statistics.median(self.idle_first) * 1000:.0f} ms, "
            f"full answer p50 {statistics.median(self.idle_full) * 1000:.0f} ms",
            f"[{self.mode}] load: {len(self.requests)} requests ({overlapped} while an ingest ran): first text "
            f"p50 {percentile(first, 50) * 1000:.0f} ms / p95 {percentile(first, 95) * 1000:.0f} ms; full answer "
            f"p50 {percentile(loaded, 50) * 1000:.0f} ms / p95 {percentile(loaded, 95) * 1000:.0f} ms "
            f"(x{percentile(loaded, 95) / statistics.median(self.idle_full):.1f} of idle p50)",
            f"[{self.mode}] errors {len(self.errors)}, cross-talk {len(self.cross_talk)}, tracebacks "
            f"{len(self.tracebacks)}, index {'consistent' if not self.consistency else self.consistency}",
            *[f"[{self.mode}] ingest: {line}" for line in self.ingests],
            *[f"[{self.mode}] ERROR {r.session} {r.question[:40]}: {r.error}" for r in self.errors[:5]],
            *[f"[{self.mode}] CROSS-TALK {line}" for line in self.cross_talk[:5]],
            *[f"[{self.mode}] TRACEBACK {line[:300]}" for line in self.tracebacks[:3]],
        ])


def text_of(message: dict) -> str:
    """A chat message's text: Gradio gives a string or a list of content parts."""
    content = message.get("content", "")
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return str(content or "")


#: gradio_client builds a new SSL context for every HTTP call it makes (about 40 ms of CPU each, even for
#: plain http, about 300 ms per question). The sessions run on the same two cores as the page, so they share
#: one context: otherwise the benchmark measures the client library's set-up, not the page.
SHARED_TLS = ssl.create_default_context()


def ask_session(base: str, session: int, questions: list[str], ingest_running: threading.Event) -> list[Request]:
    """One chat session (its own gradio_client, so its own Gradio session and state): asks in turn."""
    from gradio_client import Client

    client = Client(base, verbose=False, ssl_verify=SHARED_TLS)
    chat: list = []
    out = []
    for question in questions:
        request = Request(session, question, during_ingest=ingest_running.is_set())
        started = time.perf_counter()
        try:
            job = client.submit(question, chat, api_name="/respond")
            for update in job:
                text = text_of(update[0][-1]) if update and update[0] else ""
                if text and not request.first and update[0][-1].get("role") == "assistant":
                    request.first = time.perf_counter() - started
            final = job.outputs()[-1]
            request.full = time.perf_counter() - started
            chat = final[0]
            request.answer = text_of(chat[-1])
            if "went wrong" in request.answer or "can't take that" in request.answer:
                request.error = request.answer
        except Exception as error:
            request.error = f"{type(error).__name__}: {error}"
        request.during_ingest = request.during_ingest or ingest_running.is_set()
        out.append(request)
    return out


def run_sessions(base: str, plan: list[list[str]], ingest_running, answers) -> None:
    """Every session of `plan` at once, each on its own thread; puts their requests on `answers`."""
    results: list[list[Request]] = [[] for _ in plan]
    threads = [threading.Thread(target=lambda s=s: results.__setitem__(s, ask_session(base, s, plan[s],
                                                                                      ingest_running)))
               for s in range(len(plan))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    answers.put(results)


def lone_answers(settings, plan: list[list[str]]) -> dict[tuple[str, ...], str]:
    """What one session alone gets, by (question, earlier questions) — the page's escaped text."""
    from wbl_assistant.app import escape_text
    from wbl_assistant.assistant import Assistant

    assistant = Assistant(settings)
    out: dict[tuple[str, ...], str] = {}
    for questions in {tuple(q) for q in plan}:
        history: list[dict[str, str]] = []
        for n, question in enumerate(questions):
            answer = assistant.ask(question, history)
            out[questions[: n + 1]] = escape_text(answer.answer)
            history += [{"role": "user", "content": question}, {"role": "assistant", "content": answer.answer}]
    return out


class TracebackCollector(logging.Handler):
    """Keeps every logged traceback (warnings and up), the page's and the web server's."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or "Traceback" in record.getMessage():
            self.records.append(self.format(record))


def watch_page_logs(collector: TracebackCollector, stack: contextlib.ExitStack) -> None:
    """Attach `collector` to the root logger and to uvicorn's: the web server's own errors ("Exception in ASGI
    application") go to uvicorn's loggers, which do not propagate to the root logger and are configured when
    the server starts, so call this after the page is up."""
    for name in ("", "uvicorn"):
        logging.getLogger(name).addHandler(collector)
        stack.callback(logging.getLogger(name).removeHandler, collector)


def run_chaos(mode: str, sessions: int, questions: int, workdir: Path, docs: list[str] | None = None,
              nice: int = 10, model_threads: int = 1, log=print) -> ChaosResult:
    """One chaos run on `mode` ("embedded" or "server"), everything under `workdir`."""
    from wbl_assistant.app import launch
    from wbl_assistant.assistant import Assistant
    from wbl_assistant.config import Settings
    from wbl_assistant.ingestion import ingest
    from wbl_assistant.store import IndexStore

    result = ChaosResult(mode)
    corpus = workdir / "corpus"
    corpus.mkdir(parents=True)
    catalog = workdir / "catalog.toml"
    import tomllib

    entries = tomllib.loads((ROOT / "ingest" / "catalog.toml").read_text(encoding="utf-8"))["documents"]
    keep = [e for e in entries if docs is None or e["slug"] in docs]
    for entry in keep:
        shutil.copy(ROOT / "corpus" / entry["file"], corpus / entry["file"])
    lines = []
    for entry in keep:
        lines.append("[[documents]]")
        lines += [f"{k} = {json.dumps(v)}" if isinstance(v, str) else f"{k} = {str(v).lower()}"
                  for k, v in entry.items()]
    catalog.write_text("\n".join(lines) + "\n", encoding="utf-8")

    with contextlib.ExitStack() as stack:
        settings = Settings(data_dir=workdir / "data", corpus_dir=corpus, catalog_path=catalog,
                            page_model_threads=model_threads)
        if mode == "server":
            host, port = stack.enter_context(chroma_server(workdir))
            settings = settings.with_changes(chroma_host=host, chroma_port=port, collection_prefix="chaos")
        started = time.perf_counter()
        report = ingest(settings)
        log(f"[{mode}] initial ingest: {len(report.results)} documents in {time.perf_counter() - started:.1f} s")
        if report.failed or not report.switched:
            raise RuntimeError(f"[{mode}] the initial ingest did not complete: "
                               + "; ".join(f"{r.file}: {r.reason}" for r in report.failed))
        plan = [[QUESTIONS[(s * questions + n) % len(QUESTIONS)] for n in range(questions)] for s in range(sessions)]
        before = lone_answers(settings, plan)

        collector = TracebackCollector()
        assistant = Assistant(settings)
        assistant.warm_up()
        port = free_port()
        app = launch(settings, "127.0.0.1", port, assistant=assistant, block=False)
        stack.callback(app.close)
        watch_page_logs(collector, stack)
        base = f"http://127.0.0.1:{port}"

        idle = threading.Event()
        for question in QUESTIONS[:6]:
            ask_session(base, -1, [question], idle)  # warm the page, the renderer and the caches
        for question in QUESTIONS[:6]:
            [request] = ask_session(base, -1, [question], idle)
            if request.error:
                result.requests.append(request)
            result.idle_first.append(request.first)
            result.idle_full.append(request.full)

        changed_edition(corpus / f"{CHANGED}.pdf")
        env = {**os.environ, "WBL_DATA_DIR": str(settings.data_dir), "WBL_CORPUS_DIR": str(corpus),
               "WBL_CATALOG": str(catalog), "WBL_COLLECTION_PREFIX": settings.collection_prefix, "COLUMNS": "200",
               "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
        if mode == "server":
            env.update(WBL_CHROMA_HOST=settings.chroma_host, WBL_CHROMA_PORT=str(settings.chroma_port))
        command = [sys.executable, "-m", "wbl_assistant.cli", "ingest"]
        spawn = multiprocessing.get_context("spawn")
        running = spawn.Event()
        running.set()
        # The sessions run in a process of their own, as browsers would: in the page's process their client
        # work would compete with the page for one interpreter lock, and the benchmark would measure that.
        answers = spawn.Queue()
        clients = spawn.Process(target=run_sessions, args=(base, plan, running, answers))
        lower = (lambda: os.nice(nice)) if nice else None
        first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 preexec_fn=lower)
        time.sleep(1.0)
        second = subprocess.Popen(command, env={**env, "WBL_INGEST_WAIT": "3"}, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, preexec_fn=lower)
        threading.Thread(target=lambda: (first.wait(), second.wait(), running.clear()), daemon=True).start()
        clients.start()
        results: list[list[Request]] = answers.get(timeout=900)
        clients.join(timeout=60)
        result.requests += [r for rs in results for r in rs]
        for name, process in (("re-ingest", first), ("competing ingest", second)):
            out, err = process.communicate(timeout=600)
            tail = (err.strip().splitlines() or [""])[-1]
            result.ingests.append(f"{name}: exit {process.returncode}: {tail}")
            if "Traceback" in out + err:
                result.tracebacks.append(f"{name}: {err[-2000:]}")
            if process.returncode not in (0, 1) or (process.returncode == 1 and "another ingest" not in err):
                result.consistency.append(f"{name} failed: exit {process.returncode}: {err[-500:]}")
        result.tracebacks += collector.records

        after = lone_answers(settings, plan)
        for s, requests in enumerate(results):
            for n, request in enumerate(requests):
                key = tuple(plan[s][: n + 1])
                accepted = {after[key]}
                if set(key) & ABOUT_CHANGED:
                    accepted.add(before[key])
                if not request.error and request.answer not in accepted:
                    result.cross_talk.append(f"session {s} question {n + 1}: {request.answer[:100]!r} "
                                             f"expected {after[key][:100]!r}")

        store = IndexStore(settings)
        manifest = store.active()
        if manifest is None or store.missing_chunks(manifest):
            result.consistency.append("no complete live index after the run")
        else:
            from wbl_assistant.ingestion import file_sha256

            entry = manifest.documents.get(CHANGED, {})
            if entry.get("sha256") != file_sha256(corpus / f"{CHANGED}.pdf"):
                result.consistency.append("the changed document's new edition is not the live one")
            live = manifest.live_versions
            present = sum(1 for r in store.records() if r[2]["version"] in live)
            if present != sum(int(d.get("chunks", 0)) for d in manifest.documents.values()):
                result.consistency.append(f"live chunks {present} differ from the manifest's count")
        again = ingest(settings)
        if again.switched or again.failed:
            result.consistency.append("a final ingest still found work to do")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--questions", type=int, default=2)
    parser.add_argument("--mode", choices=["both", "embedded", "server"], default="both")
    parser.add_argument("--nice", type=int, default=10, help="niceness of the ingest subprocesses (0: none)")
    parser.add_argument("--model-threads", type=int, default=1, help="WBL_PAGE_MODEL_THREADS of the page")
    parser.add_argument("--docs", help="comma-separated slugs of the sample documents to use (default: all)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=io.StringIO())
    ok = True
    for mode in (["embedded", "server"] if args.mode == "both" else [args.mode]):
        with tempfile.TemporaryDirectory(prefix=f"chaos-{mode}-") as folder:
            result = run_chaos(mode, args.sessions, args.questions, Path(folder), nice=args.nice,
                               model_threads=args.model_threads, docs=args.docs.split(",") if args.docs else None)
        print(result.summary(), flush=True)
        ok = ok and result.ok
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
