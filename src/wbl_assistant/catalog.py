"""What gets ingested: `ingest/catalog.toml`, one entry per document, matched to the PDFs in the corpus.

Ingestion reads the catalog with tomllib. The Library tab and `wbl-assistant library` write it with tomlkit,
which keeps the file's comments and order, so a hand-edited catalog stays readable. A write is a
read-modify-write under a lock file (two admins saving at once both land, one after the other), the entry
written is validated field by field and the whole file as ingestion would read it *before* anything is
written, and the new file replaces the old one in a single rename (a reader never sees half a file).

A retired entry (`retired = true`) names a document that was taken out of the corpus: its file is not
expected in the corpus folder, and it keeps the metadata so the document can be restored.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import AoT, Table, Whitespace

REQUIRED = ("slug", "file", "title", "publisher", "edition", "kind")
#: A retired entry may be one written for an uncatalogued document: only these need a value.
REQUIRED_RETIRED = ("slug", "file", "title")
#: The fields staff edit; `slug` and `file` identify the entry and are set when it is created.
EDITABLE = ("title", "publisher", "edition", "kind", "audience")
#: Bookkeeping of a retired entry: when, and where its file went (relative to the corpus folder).
RETIRED_KEYS = ("retired", "retired_at", "retired_file")
MAX_CHARS = {"title": 300, "publisher": 200, "edition": 100, "kind": 40, "audience": 500}
SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
#: A plain PDF name directly in the corpus folder: what `corpus.safe_upload_name` produces.
FILE_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?\.(?:pdf|PDF)")
KIND = re.compile(r"[A-Za-z][A-Za-z -]*")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: How long a writer waits for another one to finish saving before it gives up.
LOCK_WAIT = 30.0
#: The parsed catalog, kept in the data folder by `load_catalog(..., cache_dir)`.
CACHE_FILE = "catalog-cache.json"


class CatalogError(ValueError):
    """The catalog file cannot be read or written, or an entry is not valid; the message says why."""


class CatalogConflict(CatalogError):
    """Someone else changed the same field of the entry since it was opened; nothing was written."""


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
    retired: bool = False
    retired_at: str = ""
    retired_file: str = ""

    def values(self) -> dict[str, str]:
        """The editable fields, by name."""
        return {key: getattr(self, key) for key in EDITABLE}


def load_catalog(path: Path, cache_dir: Path | None = None) -> dict[str, CatalogEntry]:
    """Entries by file name, retired ones included. A missing catalog is an empty one: every PDF is then
    uncatalogued. With `cache_dir`, the parsed entries are kept there under the file's hash: a state-wide
    catalog of thousands of entries takes tomllib a fifth of a second, which every no-op ingest would pay."""
    if not path.exists():
        return {}
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    cached = _cached_entries(cache_dir, digest) if cache_dir is not None else None
    if cached is not None:
        return cached
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise CatalogError(f"{path}: not valid TOML ({error})") from None
    entries = _entries(data, path)
    if cache_dir is not None:
        _cache_entries(cache_dir, digest, entries)
    return entries


def _cached_entries(cache_dir: Path, digest: str) -> dict[str, CatalogEntry] | None:
    try:
        data = json.loads((cache_dir / CACHE_FILE).read_text(encoding="utf-8"))
        if data.get("sha256") != digest:
            return None
        return {item["file"]: CatalogEntry(**item) for item in data["entries"]}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def _cache_entries(cache_dir: Path, digest: str, entries: dict[str, CatalogEntry]) -> None:
    """Best effort: a cache that cannot be written only costs the next run a parse."""
    try:
        _write_atomically(cache_dir / CACHE_FILE,
                          json.dumps({"sha256": digest, "entries": [asdict(e) for e in entries.values()]}))
    except (CatalogError, OSError):
        return


def _entries(data: Mapping[str, Any], path: Path) -> dict[str, CatalogEntry]:
    entries: dict[str, CatalogEntry] = {}
    slugs: set[str] = set()
    documents = data.get("documents", [])
    if not isinstance(documents, list):
        raise CatalogError(f"{path}: `documents` must be an array of tables ([[documents]])")
    for n, raw in enumerate(documents, start=1):
        retired = bool(raw.get("retired", False))
        missing = [key for key in (REQUIRED_RETIRED if retired else REQUIRED) if not str(raw.get(key, "")).strip()]
        if missing:
            raise CatalogError(f"{path}: entry {n} lacks {', '.join(missing)}")
        entry = CatalogEntry(
            slug=str(raw["slug"]), file=str(raw["file"]), title=str(raw["title"]),
            publisher=str(raw.get("publisher", "")), edition=str(raw.get("edition", "")),
            kind=str(raw.get("kind", "")), audience=str(raw.get("audience", "")),
            sample=bool(raw.get("sample", False)), retired=retired, retired_at=str(raw.get("retired_at", "")),
            retired_file=str(raw.get("retired_file", "")),
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


def clean_values(values: Mapping[str, Any]) -> dict[str, str]:
    """The editable fields of `values`, trimmed and checked: what staff typed, or a CatalogError saying which
    field is wrong and how. Fields not in `values` are left out."""
    out: dict[str, str] = {}
    for key in EDITABLE:
        if key not in values:
            continue
        value = str(values[key] if values[key] is not None else "").strip()
        label = key.capitalize()
        if CONTROL.search(value):
            raise CatalogError(f"{label} must be one line of text (no line breaks or control characters)")
        if len(value) > MAX_CHARS[key]:
            raise CatalogError(f"{label} is {len(value)} characters long; at most {MAX_CHARS[key]} are allowed")
        if key == "kind" and value and not KIND.fullmatch(value):
            raise CatalogError(f"Kind must be a word or two, such as manual, guide or toolkit (not {value!r})")
        out[key] = value
    return out


def check_entry(raw: Mapping[str, Any]) -> None:
    """The checks of an entry being written: every field, a safe slug, a plain PDF name in the corpus folder."""
    clean_values(raw)
    retired = bool(raw.get("retired", False))
    for key in REQUIRED_RETIRED if retired else REQUIRED:
        if not str(raw.get(key, "")).strip():
            raise CatalogError(f"{key.capitalize()} is required")
    slug, file = str(raw["slug"]), str(raw["file"])
    if not SLUG.fullmatch(slug) or len(slug) > 100:
        raise CatalogError(f"the slug {slug!r} must be lower-case letters and digits joined by single hyphens")
    if not FILE_NAME.fullmatch(file) or len(file) > 120:
        raise CatalogError(f"the file {file!r} must be a plain PDF name (letters, digits, . _ -) ending in .pdf")
    retired_file = str(raw.get("retired_file", ""))
    if retired_file and not re.fullmatch(r"retired/" + FILE_NAME.pattern, retired_file):
        raise CatalogError(f"the retired file {retired_file!r} must be a PDF in the corpus's retired/ folder")


# -- writing ------------------------------------------------------------------------------------------------


def put_entry(path: Path, file: str, change: Callable[[dict[str, Any] | None], dict[str, Any] | None],
              dry_run: bool = False) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Replace the entry of `file` (None: there is none) by `change(current)` (None: remove it), keeping
    the rest of the file as it is. `change` runs under the lock, on the entry as it is now, so it may
    refuse a stale edit (CatalogConflict). Returns (before, after); nothing is written when they are equal,
    or with `dry_run` (every check is made: an upload's entry is checked before its file lands).

    The new entry is checked (`check_entry`) and the whole new file parsed as ingestion parses it before
    the file is replaced: an invalid value raises CatalogError and leaves the file byte for byte as it was."""
    with _locked(path):
        document = _parse(path)
        documents = document.get("documents")
        if documents is None:
            documents = tomlkit.aot()
            document.append("documents", documents)
        elif not isinstance(documents, AoT):
            raise CatalogError(f"{path}: `documents` must be an array of tables ([[documents]])")
        index = next((n for n, table in enumerate(documents) if str(table.get("file", "")) == file), None)
        before = documents[index].unwrap() if index is not None else None
        after = change(dict(before) if before is not None else None)
        if after == before:
            return before, after
        if after is None:
            del documents[index]
        else:
            check_entry(after)
            other = next((t for n, t in enumerate(documents) if n != index and str(t.get("slug", "")) == after["slug"]),
                         None)
            if other is not None:
                raise CatalogError(f"the slug {after['slug']!r} is already used by {other.get('file')}; "
                                   "choose another file name")
            if index is None:
                documents.append(_new_table(documents, after))
            else:
                _update_table(documents[index], after)
        text = tomlkit.dumps(document)
        try:
            _entries(tomllib.loads(text), path)
        except tomllib.TOMLDecodeError as error:
            raise CatalogError(f"the catalog would not be valid TOML ({error}); nothing was written") from None
        if not dry_run:
            _write_atomically(path, text)
        return before, after


def _parse(path: Path) -> tomlkit.TOMLDocument:
    try:
        return tomlkit.parse(path.read_text(encoding="utf-8")) if path.exists() else tomlkit.document()
    except (TOMLKitError, UnicodeDecodeError) as error:
        raise CatalogError(f"{path}: not valid TOML ({error})") from None
    except OSError as error:
        raise CatalogError(f"cannot read {path} ({error.strerror})") from None


def _new_table(documents: AoT, values: Mapping[str, Any]) -> Table:
    """A table for a new entry, in the catalog's usual key order, after a blank line."""
    table = tomlkit.table()
    order = [*REQUIRED, "audience", "sample", *RETIRED_KEYS]
    for key in sorted(values, key=lambda k: order.index(k) if k in order else len(order)):
        table[key] = values[key]
    body = documents[-1].value.body if len(documents) else []
    ends_blank = bool(body) and isinstance(body[-1][1], Whitespace)
    if len(documents) and not ends_blank:
        table.trivia.indent = "\n"
    return table


def _update_table(table: Table, values: Mapping[str, Any]) -> None:
    """Change the table's keys in place: a changed value keeps its line (and comment), a new key goes after
    the table's last key (not after a comment that introduces the next table), a dropped key is removed."""
    for key in [k for k in table if k not in values]:
        del table[key]
    for key, value in values.items():
        if key in table:
            if table[key] != value:
                table[key] = value
            continue
        last = [k for k, _ in table.value.body if k is not None]
        if last:
            table.value._insert_after(last[-1], key, value)
        else:
            table[key] = value


def _write_atomically(path: Path, text: str) -> None:
    """Write `text` to a temp file beside `path`, flush it to disk, then rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    try:
        with temp.open("w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if path.exists():
            os.chmod(temp, path.stat().st_mode & 0o7777)
        os.replace(temp, path)
    except OSError as error:
        temp.unlink(missing_ok=True)
        raise CatalogError(f"cannot write {path} ({error.strerror}); it is unchanged") from None
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


@contextmanager
def _locked(path: Path, wait: float = LOCK_WAIT) -> Iterator[None]:
    """An exclusive lock on `.<catalog>.lock` beside the catalog, across processes (the page and the CLI);
    the OS releases it if the holder dies."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.parent / f".{path.name}.lock"
    try:
        handle = lock_path.open("a")
    except OSError as error:
        raise CatalogError(f"cannot lock {path} ({error.strerror})") from None
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as error:
                if error.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() > deadline:
                    raise CatalogError(f"{path} is being saved by someone else; try again in a moment") from None
                time.sleep(0.05)
        yield
    finally:
        handle.close()


def set_fields(path: Path, file: str, values: Mapping[str, Any], *, slug: str | None = None,
               expected: Mapping[str, Any] | None = None, defaults: Mapping[str, Any] | None = None,
               ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Set editable fields of the entry of `file`; a missing entry is created with `slug` and `defaults`
    (the values the page showed for an uncatalogued document) under `values`.

    `expected` holds the values the editor saw when they opened the entry: a field they changed that
    someone else changed meanwhile is a conflict (nothing is written); fields they did not change are not
    written, so two admins editing different fields of one entry at once both keep their edit."""
    values = clean_values(values)
    expected = clean_values(expected) if expected is not None else None

    def change(current: dict[str, Any] | None) -> dict[str, Any]:
        if current is None:
            if slug is None:
                raise CatalogError(f"{file} has no catalog entry")
            return {"slug": slug, "file": file, **clean_values(defaults or {}), **values}
        edited = dict(values)
        if expected is not None:
            edited = {k: v for k, v in values.items() if v != expected.get(k, "")}
            for key in edited:
                now = str(current.get(key, ""))
                if now != expected.get(key, ""):
                    raise CatalogConflict(f"{key.capitalize()} of {file} was changed by someone else since you "
                                          f"opened it (it is now {now!r}); reload the document and edit again")
        return {**current, **edited}

    return put_entry(path, file, change)
