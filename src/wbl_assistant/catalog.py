"""What gets ingested: `ingest/catalog.toml`, one entry per document, matched to the PDFs in the corpus."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

REQUIRED = ("slug", "file", "title", "publisher", "edition", "kind")


class CatalogError(ValueError):
    """The catalog file cannot be read or an entry lacks a required field."""


@dataclass(frozen=True)
class CatalogEntry:
    slug: str
    file: str
    title: str
    publisher: str
    edition: str
    kind: str
    audience: str = ""
    sample: bool = False


def load_catalog(path: Path) -> dict[str, CatalogEntry]:
    """Entries by file name. A missing catalog is an empty one: every PDF is then uncatalogued."""
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise CatalogError(f"{path}: not valid TOML ({error})") from None
    entries: dict[str, CatalogEntry] = {}
    slugs: set[str] = set()
    for n, raw in enumerate(data.get("documents", []), start=1):
        missing = [key for key in REQUIRED if not str(raw.get(key, "")).strip()]
        if missing:
            raise CatalogError(f"{path}: entry {n} lacks {', '.join(missing)}")
        entry = CatalogEntry(
            slug=str(raw["slug"]), file=str(raw["file"]), title=str(raw["title"]),
            publisher=str(raw["publisher"]), edition=str(raw["edition"]), kind=str(raw["kind"]),
            audience=str(raw.get("audience", "")), sample=bool(raw.get("sample", False)),
        )
        if entry.slug in slugs or entry.file in entries:
            raise CatalogError(f"{path}: entry {n} repeats slug {entry.slug!r} or file {entry.file!r}")
        slugs.add(entry.slug)
        entries[entry.file] = entry
    return entries


def slugify(name: str) -> str:
    """A doc_id for a PDF that has no catalog entry, from its file name."""
    stem = Path(name).stem.lower()
    return re.sub(r"[^a-z0-9]+", "-", stem).strip("-") or "document"
