"""The one configuration object. Every setting has an environment variable `WBL_*` and a default.

Modules receive a `Settings`; none reads the environment on its own, so tests isolate everything (data
dir, corpus, Chroma) by building a `Settings` or by setting `WBL_*` variables for a subprocess.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A `WBL_*` variable holds a value the assistant cannot use."""


#: An admin password shorter than this is refused at start: the Admin tab can replace the corpus.
ADMIN_PASSWORD_MIN = 12


def _doc(env: str, doc: str, low: float | None = None, high: float | None = None,
         secret: bool = False) -> dict[str, Any]:
    """Field metadata: its variable, its meaning, its valid range (numbers) and whether it is a secret."""
    return {"env": env, "doc": doc, "low": low, "high": high, "secret": secret}


@dataclass(frozen=True, repr=False)
class Settings:
    data_dir: Path = field(
        default=Path("data"),
        metadata=_doc("WBL_DATA_DIR", "Where the embedded Chroma index and the feedback file live."),
    )
    corpus_dir: Path = field(default=Path("corpus"), metadata=_doc("WBL_CORPUS_DIR", "The folder of PDFs to ingest."))
    catalog_path: Path = field(
        default=Path("ingest/catalog.toml"),
        metadata=_doc("WBL_CATALOG", "Document metadata (title, publisher, edition, kind)."),
    )
    glossary_path: Path = field(
        default=Path("ingest/glossary.toml"),
        metadata=_doc("WBL_GLOSSARY", "Other names for the same thing (acronyms) that questions and documents use."),
    )
    chroma_host: str = field(
        default="", metadata=_doc("WBL_CHROMA_HOST", "When set, use this Chroma server instead of the embedded index.")
    )
    chroma_port: int = field(default=8000, metadata=_doc("WBL_CHROMA_PORT", "Port of the Chroma server.", 1, 65535))
    collection_prefix: str = field(
        default="wbl",
        metadata=_doc("WBL_COLLECTION_PREFIX", "Prefix of Chroma collection names (indexes can share a server)."),
    )
    embedding_model: str = field(
        default="",
        metadata=_doc("WBL_EMBEDDING_MODEL", "Path of a sentence-transformers model; empty: the bundled MiniLM-L6-v2."),
    )
    embed_batch_size: int = field(
        default=64, metadata=_doc("WBL_EMBED_BATCH_SIZE", "Texts per embedding batch.", 1, 4096)
    )
    chunk_size: int = field(
        default=900, metadata=_doc("WBL_CHUNK_SIZE", "Target chunk length in characters.", 200, 20000)
    )
    chunk_overlap: int = field(
        default=150,
        metadata=_doc("WBL_CHUNK_OVERLAP", "Characters of the previous chunk repeated at the start of the next."),
    )
    top_k: int = field(default=6, metadata=_doc("WBL_TOP_K", "Chunks passed from retrieval to the answerer.", 1, 50))
    answer_words: int = field(
        default=120, metadata=_doc("WBL_ANSWER_WORDS", "About how long an extractive answer is.", 10, 2000)
    )
    min_evidence: float = field(
        default=0.5,
        metadata=_doc("WBL_MIN_EVIDENCE", "Abstention gate: the assistant abstains when the gate's probability that "
                      "the documents answer is under this (0-1).", 0, 1),
    )
    backend: str = field(
        default="extractive", metadata=_doc("WBL_BACKEND", "Answer backend: extractive, openai or llamacpp.")
    )
    openai_base_url: str = field(
        default="http://127.0.0.1:11434/v1",
        metadata=_doc("WBL_OPENAI_BASE_URL", "OpenAI-compatible endpoint (Ollama, vLLM, llama.cpp server, ...)."),
    )
    openai_model: str = field(default="", metadata=_doc("WBL_OPENAI_MODEL", "Model name on that endpoint."))
    openai_api_key: str = field(
        default="", metadata=_doc("WBL_OPENAI_API_KEY", "API key for that endpoint, if it needs one.", secret=True)
    )
    llm_condense: bool = field(
        default=False,
        metadata=_doc("WBL_LLM_CONDENSE", "Let the LLM backend rewrite follow-ups into standalone questions."),
    )
    llm_timeout: float = field(default=120.0, metadata=_doc("WBL_LLM_TIMEOUT", "Seconds to wait for the LLM.", 1, 3600))
    llamacpp_model_path: str = field(
        default="", metadata=_doc("WBL_LLAMACPP_MODEL", "GGUF file for the llamacpp backend.")
    )
    guard_mode: str = field(
        default="drop",
        metadata=_doc("WBL_GUARD_MODE", "What the citation guard does with unsupported LLM sentences: drop or mark."),
    )
    admin_password: str = field(
        default="",
        metadata=_doc("WBL_ADMIN_PASSWORD", "Enables the chat page's Admin and Library tabs (uploads, catalog edits, "
                      f"retiring documents, re-ingest); unset: no such tabs. At least {ADMIN_PASSWORD_MIN} characters.",
                      secret=True),
    )
    upload_max_mb: int = field(
        default=50, metadata=_doc("WBL_UPLOAD_MAX_MB", "Largest PDF the Admin and Library tabs accept.", 1, 1024)
    )
    ingest_wait: float = field(
        default=30.0,
        metadata=_doc("WBL_INGEST_WAIT", "Seconds an ingest waits for another one to finish before giving up.",
                      0, 86400),
    )
    retire_grace: float = field(
        default=120.0,
        metadata=_doc("WBL_RETIRE_GRACE", "Seconds a replaced document's chunks stay for questions in flight.",
                      0, 86400),
    )
    editions_kept: int = field(
        default=3,
        metadata=_doc("WBL_EDITIONS_KEPT", "Previous editions of a document whose text (not vectors) is kept, with "
                      "the change reports between them.", 1, 100),
    )
    pdf_page_seconds: float = field(
        default=60.0,
        metadata=_doc("WBL_PDF_PAGE_SECONDS", "A PDF page that takes longer to read stops that document.", 1, 3600),
    )
    pdf_seconds: float = field(
        default=120.0,
        metadata=_doc("WBL_PDF_SECONDS", "A PDF that takes longer than this to read in all is stopped.", 5, 86400),
    )
    pdf_memory_mb: int = field(
        default=1536,
        metadata=_doc("WBL_PDF_MEMORY_MB", "Memory a PDF's reader process may use.", 128, 65536),
    )
    pdf_max_pages: int = field(
        default=3000, metadata=_doc("WBL_PDF_MAX_PAGES", "PDFs with more pages are refused.", 1, 1_000_000)
    )
    pdf_max_chars: int = field(
        default=20_000_000,
        metadata=_doc("WBL_PDF_MAX_CHARS", "PDFs yielding more characters of text are refused.", 1000, 1_000_000_000),
    )
    page_model_threads: int = field(
        default=1,
        metadata=_doc("WBL_PAGE_MODEL_THREADS", "Threads the chat page's models may use for one question (questions "
                      "run side by side instead).", 1, 256),
    )
    render_max_px: int = field(
        default=2000,
        metadata=_doc("WBL_RENDER_MAX_PX", "Longest side, in pixels, of a cited page shown on the chat page.",
                      200, 8000),
    )
    ocr: str = field(
        default="auto",
        metadata=_doc("WBL_OCR", "OCR of scanned pages: off, auto (pages without a text layer, when Tesseract is "
                                 "installed) or force (every page)."),
    )
    ocr_min_confidence: float = field(
        default=80.0,
        metadata=_doc("WBL_OCR_MIN_CONFIDENCE", "Confidence floor (0-100): an OCR'd page under it is skipped "
                                                "with a warning, not indexed.", 0, 100),
    )
    ocr_dpi: int = field(
        default=200, metadata=_doc("WBL_OCR_DPI", "Resolution at which pages are rendered for OCR.", 70, 600)
    )
    ocr_language: str = field(
        default="eng",
        metadata=_doc("WBL_OCR_LANGUAGE", "Tesseract language(s), e.g. eng+spa (each needs its tesseract-ocr-* "
                                          "package)."),
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then `WBL_*` variables, then explicit overrides."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get(f.metadata["env"])
            if raw is None or (raw == "" and f.default != ""):
                continue
            values[f.name] = _parse(f.metadata["env"], raw, type(f.default))
        values.update(overrides)
        return cls(**values).validated()

    def validated(self) -> Settings:
        for f in fields(self):
            low, high, value = f.metadata["low"], f.metadata["high"], getattr(self, f.name)
            if low is not None and not low <= value <= high:
                raise ConfigError(f"{f.metadata['env']}={value} is out of range: it must be between {low:g} "
                                  f"and {high:g}")
        if not 0 <= self.chunk_overlap < self.chunk_size // 2:
            raise ConfigError("WBL_CHUNK_OVERLAP must be between 0 and half of WBL_CHUNK_SIZE")
        if self.backend not in ("extractive", "openai", "llamacpp"):
            raise ConfigError(f"WBL_BACKEND must be extractive, openai or llamacpp, not {self.backend!r}")
        if self.guard_mode not in ("drop", "mark"):
            raise ConfigError(f"WBL_GUARD_MODE must be drop or mark, not {self.guard_mode!r}")
        if self.admin_password and len(self.admin_password) < ADMIN_PASSWORD_MIN:
            raise ConfigError(f"WBL_ADMIN_PASSWORD is too short: use at least {ADMIN_PASSWORD_MIN} characters "
                              "(it guards uploads that change what the assistant answers from)")
        if self.ocr not in ("off", "auto", "force"):
            raise ConfigError(f"WBL_OCR must be off, auto or force, not {self.ocr!r}")
        if not re.fullmatch(r"[A-Za-z_]+(\+[A-Za-z_]+)*", self.ocr_language):
            raise ConfigError(f"WBL_OCR_LANGUAGE must be Tesseract language codes joined by +, not "
                              f"{self.ocr_language!r}")
        return self

    def __repr__(self) -> str:
        """Every setting, secrets masked: settings end up in logs and tracebacks."""
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            shown.append(f"{f.name}={'***' if f.metadata['secret'] and value else repr(value)}")
        return f"Settings({', '.join(shown)})"

    def with_changes(self, **changes: Any) -> Settings:
        return replace(self, **changes).validated()

    @property
    def chroma_path(self) -> Path:
        return self.data_dir / "chroma"

    @property
    def feedback_path(self) -> Path:
        return self.data_dir / "feedback.jsonl"

    @property
    def ingest_history_path(self) -> Path:
        """One line per ingest run (who, when, counts, failures): the Library tab's history."""
        return self.data_dir / "ingest-history.jsonl"

    @property
    def retired_dir(self) -> Path:
        """Where a retired document's PDF goes: inside the corpus folder (not ingested), so it can come back."""
        return self.corpus_dir / "retired"

    @property
    def ocr_cache_dir(self) -> Path:
        """OCR words per scanned document, by file hash: a re-ingest does not OCR an unchanged scan again."""
        return self.data_dir / "ocr"

    @property
    def page_cache_dir(self) -> Path:
        """Rendered cited pages, encoded once and served as files (see pages.py)."""
        return self.data_dir / "pages"

    @property
    def chunks_collection(self) -> str:
        """The Chroma collection holding the chunks of every stored document version."""
        return f"{self.collection_prefix}_chunks"

    @property
    def meta_collection(self) -> str:
        """The Chroma collection holding the manifest pointer and the blobs (see store.py)."""
        return f"{self.collection_prefix}_meta"

    @property
    def legacy_collection_pattern(self) -> re.Pattern[str]:
        """Names of this prefix's collections in the older format (one collection per generation)."""
        return re.compile(rf"^{re.escape(self.collection_prefix)}_g\d{{8}}t\d{{6}}[0-9a-f]{{6}}_chunks$")

    @property
    def uses_server(self) -> bool:
        return bool(self.chroma_host)


def _parse(env: str, raw: str, kind: type) -> Any:
    try:
        if kind is bool:
            return raw.strip().lower() in ("1", "true", "yes", "on")
        if issubclass(kind, Path):
            return Path(raw).expanduser()
        return kind(raw)
    except ValueError:
        raise ConfigError(f"{env}={raw!r} is not a valid {kind.__name__}") from None


def settings_table() -> list[tuple[str, str, str]]:
    """(variable, default, meaning) for every setting: the README's configuration table."""
    rows = []
    for f in fields(Settings):
        default = f.default
        shown = "(empty)" if default == "" else str(default)
        rows.append((f.metadata["env"], shown, f.metadata["doc"]))
    return rows
