"""Shared fixtures: isolated settings (data dir, corpus, Chroma collections), real PDFs, a real Chroma server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_CORPUS = ROOT / "corpus"
CATALOG = ROOT / "ingest" / "catalog.toml"
sys.path.insert(0, str(ROOT / "ingest"))

from wbl_assistant.config import Settings  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings that touch nothing outside this test's temp dir: an empty corpus, no catalog."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    return Settings(data_dir=tmp_path / "data", corpus_dir=corpus, catalog_path=tmp_path / "catalog.toml")


@pytest.fixture
def make_pdf(tmp_path: Path):
    """Render Markdown (the sample corpus format) to a real PDF with the sample builder."""
    import build_sample

    def make(markdown: str, path: Path, title: str = "Test Document", publisher: str = "Test Publisher",
             edition: str = "2024") -> Path:
        source = tmp_path / f"{path.stem}.md"
        source.write_text(markdown, encoding="utf-8")
        doc = build_sample.Document(path.stem, title, publisher, edition, "guide", source, path)
        path.write_bytes(build_sample.render(doc))
        return path

    return make


def drop_chunk_collections(settings: Settings) -> list[str]:
    """Delete this prefix's chunk data, as a competing ingest used to (the pointer then names nothing)."""
    from wbl_assistant.store import connect

    client = connect(settings)
    dropped = []
    for item in client.list_collections():
        name = item if isinstance(item, str) else item.name
        if name.startswith(settings.collection_prefix + "_") and name != f"{settings.collection_prefix}_meta":
            client.delete_collection(name)
            dropped.append(name)
    return dropped


def copy_sample(settings: Settings, slugs: list[str]) -> None:
    """Put some sample-corpus PDFs in the test's corpus, with their catalog entries."""
    import tomllib

    entries = tomllib.loads(CATALOG.read_text(encoding="utf-8"))["documents"]
    lines = []
    for entry in entries:
        if entry["slug"] in slugs:
            shutil.copy(SAMPLE_CORPUS / entry["file"], settings.corpus_dir / entry["file"])
            lines.append("[[documents]]")
            lines += [f"{key} = {value!r}".replace("'", '"') if isinstance(value, str)
                      else f"{key} = {str(value).lower()}" for key, value in entry.items()]
    with settings.catalog_path.open("a", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


@pytest.fixture(scope="session")
def sample_index(tmp_path_factory) -> Settings:
    """The whole sample corpus ingested once per test session into a temp data dir."""
    from wbl_assistant.ingestion import ingest

    data = tmp_path_factory.mktemp("sample-index")
    settings = Settings(data_dir=data, corpus_dir=SAMPLE_CORPUS, catalog_path=CATALOG)
    report = ingest(settings)
    assert not report.failed, [(r.file, r.reason) for r in report.failed]
    return settings


#: Debian's chromium, driven by Playwright (browser tests).
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium per test module; a missing browser fails (it is part of the test set-up)."""
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian chromium is not installed (scripts/setup.sh --dev installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory):
    """A real `chroma run` server on a free loopback port; yields (host, port)."""
    chroma = shutil.which("chroma") or str(Path(sys.executable).parent / "chroma")
    path = tmp_path_factory.mktemp("chroma-server")
    port = free_port()
    log = (path / "server.log").open("w")
    process = subprocess.Popen([chroma, "run", "--path", str(path / "db"), "--host", "127.0.0.1",
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
                pytest.fail(f"chroma run did not start: {(path / 'server.log').read_text()[-2000:]}")
            time.sleep(0.3)
    yield "127.0.0.1", port
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()
