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


def _doc(env: str, doc: str) -> dict[str, str]:
    return {"env": env, "doc": doc}


@dataclass(frozen=True)
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
    chroma_host: str = field(
        default="", metadata=_doc("WBL_CHROMA_HOST", "When set, use this Chroma server instead of the embedded index.")
    )
    chroma_port: int = field(default=8000, metadata=_doc("WBL_CHROMA_PORT", "Port of the Chroma server."))
    collection_prefix: str = field(
        default="wbl",
        metadata=_doc("WBL_COLLECTION_PREFIX", "Prefix of Chroma collection names (indexes can share a server)."),
    )
    embedding_model: str = field(
        default="",
        metadata=_doc("WBL_EMBEDDING_MODEL", "Path of a sentence-transformers model; empty: the bundled MiniLM-L6-v2."),
    )
    embed_batch_size: int = field(default=64, metadata=_doc("WBL_EMBED_BATCH_SIZE", "Texts per embedding batch."))
    chunk_size: int = field(default=900, metadata=_doc("WBL_CHUNK_SIZE", "Target chunk length in characters."))
    chunk_overlap: int = field(
        default=150,
        metadata=_doc("WBL_CHUNK_OVERLAP", "Characters of the previous chunk repeated at the start of the next."),
    )
    top_k: int = field(default=6, metadata=_doc("WBL_TOP_K", "Chunks passed from retrieval to the answerer."))
    answer_words: int = field(default=120, metadata=_doc("WBL_ANSWER_WORDS", "About how long an extractive answer is."))
    min_evidence: float = field(
        default=0.5,
        metadata=_doc("WBL_MIN_EVIDENCE", "Abstention gate: the evidence score under which the assistant abstains."),
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
        default="", metadata=_doc("WBL_OPENAI_API_KEY", "API key for that endpoint, if it needs one.")
    )
    llm_condense: bool = field(
        default=False,
        metadata=_doc("WBL_LLM_CONDENSE", "Let the LLM backend rewrite follow-ups into standalone questions."),
    )
    llm_timeout: float = field(default=120.0, metadata=_doc("WBL_LLM_TIMEOUT", "Seconds to wait for the LLM."))
    llamacpp_model_path: str = field(
        default="", metadata=_doc("WBL_LLAMACPP_MODEL", "GGUF file for the llamacpp backend.")
    )
    guard_mode: str = field(
        default="drop",
        metadata=_doc("WBL_GUARD_MODE", "What the citation guard does with unsupported LLM sentences: drop or mark."),
    )
    admin_password: str = field(
        default="",
        metadata=_doc("WBL_ADMIN_PASSWORD", "Enables the chat page's admin tab (upload and re-ingest); unset: no tab."),
    )
    upload_max_mb: int = field(default=50, metadata=_doc("WBL_UPLOAD_MAX_MB", "Largest PDF the admin tab accepts."))
    ocr: str = field(
        default="auto",
        metadata=_doc("WBL_OCR", "OCR of scanned pages: off, auto (pages without a text layer, when Tesseract is "
                                 "installed) or force (every page)."),
    )
    ocr_min_confidence: float = field(
        default=80.0,
        metadata=_doc("WBL_OCR_MIN_CONFIDENCE", "Confidence floor (0-100): an OCR'd page under it is skipped "
                                                "with a warning, not indexed."),
    )
    ocr_dpi: int = field(default=200, metadata=_doc("WBL_OCR_DPI", "Resolution at which pages are rendered for OCR."))
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
        if self.chunk_size < 200:
            raise ConfigError("WBL_CHUNK_SIZE must be at least 200 characters")
        if not 0 <= self.chunk_overlap < self.chunk_size // 2:
            raise ConfigError("WBL_CHUNK_OVERLAP must be between 0 and half of WBL_CHUNK_SIZE")
        if self.top_k < 1:
            raise ConfigError("WBL_TOP_K must be at least 1")
        if self.backend not in ("extractive", "openai", "llamacpp"):
            raise ConfigError(f"WBL_BACKEND must be extractive, openai or llamacpp, not {self.backend!r}")
        if self.guard_mode not in ("drop", "mark"):
            raise ConfigError(f"WBL_GUARD_MODE must be drop or mark, not {self.guard_mode!r}")
        if self.ocr not in ("off", "auto", "force"):
            raise ConfigError(f"WBL_OCR must be off, auto or force, not {self.ocr!r}")
        if not 0 <= self.ocr_min_confidence <= 100:
            raise ConfigError("WBL_OCR_MIN_CONFIDENCE must be between 0 and 100")
        if not 70 <= self.ocr_dpi <= 600:
            raise ConfigError("WBL_OCR_DPI must be between 70 and 600")
        if not re.fullmatch(r"[A-Za-z_]+(\+[A-Za-z_]+)*", self.ocr_language):
            raise ConfigError(f"WBL_OCR_LANGUAGE must be Tesseract language codes joined by +, not "
                              f"{self.ocr_language!r}")
        return self

    def with_changes(self, **changes: Any) -> Settings:
        return replace(self, **changes).validated()

    @property
    def chroma_path(self) -> Path:
        return self.data_dir / "chroma"

    @property
    def feedback_path(self) -> Path:
        return self.data_dir / "feedback.jsonl"

    @property
    def ocr_cache_dir(self) -> Path:
        """OCR words per scanned document, by file hash: a re-ingest does not OCR an unchanged scan again."""
        return self.data_dir / "ocr"

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
