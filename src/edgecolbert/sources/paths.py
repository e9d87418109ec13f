"""Turn a path named on the command line into the documents to index.

Accepted sources:

* a BEIR folder holding ``corpus.jsonl``, or a JSONL file whose lines carry ``_id``;
* a JSONL file whose lines carry ``text`` and optionally ``id``, ``title`` and ``metadata``.
  In either, a line's id is under ``_id`` or ``id``, and two lines with one id must be identical;
* a ``.txt`` / ``.md`` file, or a folder searched recursively for them. Each file is cut into
  passages of at most ``max_tokens`` tokens, each with ``metadata = {"source", "start", "end"}``
  such that ``Path(file).read_text(encoding="utf-8", errors="replace")[start:end]`` is the passage.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Callable, Iterator, Sequence
from itertools import chain
from pathlib import Path
from typing import Any

from edgecolbert.errors import InvalidInputError, SourceError
from edgecolbert.sources.beir import Document
from edgecolbert.sources.jsonl import IdRegister, jsonl_records
from edgecolbert.store.documents import StoreDocument

TokenCounter = Callable[[Sequence[str]], list[int]]
Span = tuple[int, int]

TEXT_SUFFIXES = frozenset({".txt", ".md"})
JSONL_SUFFIX = ".jsonl"
BEIR_CORPUS = "corpus.jsonl"
# A line's id is under whichever of these keys it has (BEIR uses `_id`); both, differing, is an error.
ID_KEYS = ("_id", "id")
ACCEPTED = (
    "expected a BEIR folder holding corpus.jsonl, a .jsonl file with one JSON object per line, "
    "a .txt or .md file, or a folder holding .txt / .md files"
)

_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
# A line break inside a paragraph (lists, verse, code) is as good a cut as a full stop.
_SENTENCE_END = re.compile(r"[.!?\u2026]+[\"'\u2019\u201d\u00bb)\]]*\s+|[\u3002\uff01\uff1f]+\s*|\s*\n\s*")
_WORD_BREAK = re.compile(r"\s+")

logger = logging.getLogger(__name__)


def read_documents(
    path: str | os.PathLike[str],
    *,
    count_tokens: TokenCounter | None = None,
    max_tokens: int = 256,
) -> Iterator[StoreDocument]:
    """Stream the documents held at ``path``.

    The path is checked before this returns, so a missing or unsupported source fails here rather
    than at the first ``next``. A JSONL file is read through once here too: a malformed line, or one
    id given to two lines with different content, fails before any document is yielded (exact
    repeats of a line are yielded once).
    ``count_tokens`` measures text files' passages (a whitespace word count when ``None``).
    """
    if max_tokens < 1:
        raise InvalidInputError(f"max_tokens must be at least 1, got {max_tokens}.")
    counter = count_tokens or _count_words
    source = Path(path)
    if source.is_dir():
        return _read_folder(source, counter, max_tokens)
    if not source.is_file():
        problem = _not_regular_file(source) if source.exists() or source.is_symlink() else "does not exist"
        raise SourceError(f"{source} {problem}; {ACCEPTED}.")
    suffix = source.suffix.lower()
    if suffix == JSONL_SUFFIX:
        return _read_jsonl(_require_jsonl_content(source))
    if suffix in TEXT_SUFFIXES:
        return _read_text_file(source, counter, max_tokens)
    raise SourceError(f"{source} has unsupported extension {source.suffix!r}; {ACCEPTED}.")


def count_documents(path: str | os.PathLike[str]) -> int | None:
    """How many documents ``read_documents(path)`` yields, where knowable without reading them.

    Only JSONL sources (BEIR or plain) have a known count; text files' passage counts depend on the
    tokenizer, so they, and anything that is not a readable source, give ``None``.
    """
    jsonl = _jsonl_path(Path(path))
    if jsonl is None:
        return None
    with jsonl.open("rb") as handle:
        return sum(1 for raw in handle if raw.strip())


def _jsonl_path(source: Path) -> Path | None:
    if source.is_dir() and (source / BEIR_CORPUS).is_file():
        return source / BEIR_CORPUS
    if source.is_file() and source.suffix.lower() == JSONL_SUFFIX:
        return source
    return None


# ---------------------------------------------------------------------------------------------
# JSONL: BEIR corpus or plain records


def _require_jsonl_content(path: Path) -> Path:
    try:
        with path.open("rb") as handle:
            if not any(raw.strip() for raw in handle):
                raise SourceError(f"{path} is empty; {ACCEPTED}.")
    except OSError as exc:
        raise SourceError(f"{path} cannot be read ({exc.strerror or exc}).") from exc
    return path


def _read_jsonl(path: Path) -> Iterator[StoreDocument]:
    """Check the whole file, then stream one document per non-blank line.

    The check runs before this returns, so a malformed line or an id given to two different records
    stops a run before any document is written; exact repeats of an earlier line are left out.
    """
    repeats = _repeated_lines(path)
    return (document for line_no, document in _numbered_documents(path) if line_no not in repeats)


def _repeated_lines(path: Path) -> frozenset[int]:
    """Line numbers that repeat an earlier line's id and content; the same id with other content raises."""
    register = IdRegister(path, SourceError)
    return frozenset(
        line_no
        for line_no, document in _numbered_documents(path)
        if document.id is not None
        and register.is_repeat(str(document.id), line_no, [document.text, dict(document.metadata)])
    )


def _numbered_documents(path: Path) -> Iterator[tuple[int, StoreDocument]]:
    # A first line with `_id` marks a BEIR corpus, whose every line must carry an id.
    ids_required: bool | None = None
    for line_no, record in jsonl_records(path, SourceError):
        if ids_required is None:
            ids_required = "_id" in record
        yield line_no, _record_document(record, ids_required, f"{path} line {line_no}")


def _record_document(record: dict[str, Any], ids_required: bool, where: str) -> StoreDocument:
    text = record.get("text")
    if not isinstance(text, str):
        raise SourceError(f"{where} needs a string 'text' field.")
    title = _record_title(record, where)
    metadata = {**_record_metadata(record, where), **({"title": title} if title else {})}
    return StoreDocument(text=_full_text(title, text), id=_record_id(record, ids_required, where), metadata=metadata)


def _record_id(record: dict[str, Any], ids_required: bool, where: str) -> str | None:
    """The line's id under whichever of ``_id`` / ``id`` it has, so no line's id is ever dropped."""
    ids = {key: _id_value(record[key], key, where) for key in ID_KEYS if record.get(key) is not None}
    if len(set(ids.values())) > 1:
        raise SourceError(f"{where} has both '_id' {ids['_id']!r} and 'id' {ids['id']!r}; give it one id.")
    if ids:
        return next(iter(ids.values()))
    if ids_required:
        raise SourceError(
            f"{where} needs a non-empty string or integer '_id' (the file's first line has one), got none."
        )
    return None


def _id_value(value: object, key: str, where: str) -> str:
    # bool is an int subclass, but `true` as an id is a mistake rather than a number.
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        raise SourceError(f"{where} needs a non-empty string or integer '{key}', got {value!r}.")
    return str(value)


def _record_title(record: dict[str, Any], where: str) -> str:
    title = record.get("title")
    if title is None:
        return ""
    if not isinstance(title, str):
        raise SourceError(f"{where} has a non-string 'title': {title!r}.")
    return title


def _record_metadata(record: dict[str, Any], where: str) -> dict[str, Any]:
    metadata = record.get("metadata")
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise SourceError(f"{where} has 'metadata' that is not a JSON object: {metadata!r}.")
    return metadata


def _full_text(title: str, text: str) -> str:
    # Same join as the BEIR reader, so an index built here scores exactly what BEIR evaluation reads.
    return Document(id="", title=title, text=text).full_text


# ---------------------------------------------------------------------------------------------
# Text files: passages of at most max_tokens tokens


def _read_folder(folder: Path, counter: TokenCounter, max_tokens: int) -> Iterator[StoreDocument]:
    if (folder / BEIR_CORPUS).is_file():
        return _read_jsonl(_require_jsonl_content(folder / BEIR_CORPUS))
    files = _text_files(folder)
    if not files:
        raise SourceError(f"{folder} holds neither {BEIR_CORPUS} nor any .txt / .md file; {ACCEPTED}.")
    # The generator reads each file only when the stream reaches it, holding one file at a time.
    return chain.from_iterable(_folder_file_documents(folder, name, counter, max_tokens) for name in files)


def _folder_file_documents(folder: Path, name: str, counter: TokenCounter, max_tokens: int) -> Iterator[StoreDocument]:
    # One unreadable file in a folder is skipped, so it does not cost the rest of the folder.
    read = _text_or_problem(folder / name)
    if read[0] is None:
        _warn_skipped(folder / name, read[1])
        return iter(())
    return _passage_documents(read[0], name, counter, max_tokens)


def _read_text_file(path: Path, counter: TokenCounter, max_tokens: int) -> Iterator[StoreDocument]:
    text = _read_text(path)
    if not text.strip():
        raise SourceError(f"{path} is empty; {ACCEPTED}.")
    return _passage_documents(text, path.name, counter, max_tokens)


def _text_files(folder: Path) -> list[str]:
    """POSIX paths, relative to ``folder``, of its non-hidden regular .txt / .md files, sorted.

    Anything else with such a name (a broken link, a FIFO, a device) is skipped with a warning and
    never opened: reading a FIFO would wait forever.
    """
    found = []
    for root, dirs, names in os.walk(folder):
        # Pruning in place keeps os.walk out of .git, .venv and the like.
        dirs[:] = [name for name in dirs if not name.startswith(".")]
        relative_root = Path(root).relative_to(folder)
        for name in names:
            if not name.startswith(".") and Path(name).suffix.lower() in TEXT_SUFFIXES:
                problem = _not_regular_file(Path(root) / name)
                if problem is None:
                    found.append((relative_root / name).as_posix())
                else:
                    _warn_skipped(Path(root) / name, problem)
    return sorted(found)


def _not_regular_file(path: Path) -> str | None:
    """Why ``path`` (links followed) is no regular file, as "<path> <why>" reads, or ``None`` if it is one."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "is a broken symbolic link" if path.is_symlink() else "does not exist"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    return None if stat.S_ISREG(mode) else "is not a regular file (a FIFO, socket, device or the like)"


def _warn_skipped(path: Path, problem: str) -> None:
    logger.warning("Skipped %s: it %s.", path, problem)


def _read_text(path: Path) -> str:
    text, problem = _text_or_problem(path)
    if text is None:
        raise SourceError(f"{path} {problem}.")
    return text


def _text_or_problem(path: Path) -> tuple[str, None] | tuple[None, str]:
    """The text of a regular file, or why there is none (as "<path> <why>" reads).

    Stray invalid UTF-8 bytes become U+FFFD, so one bad byte does not cost a file; a NUL byte marks
    a binary file, which is not text at all.
    """
    problem = _not_regular_file(path)
    if problem is not None:
        return None, problem
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or exc})"
    if "\0" in text:
        return None, "holds NUL bytes: it is a binary file, not text"
    return text, None


def _passage_documents(text: str, name: str, counter: TokenCounter, max_tokens: int) -> Iterator[StoreDocument]:
    for start, end in split_passages(text, counter, max_tokens):
        yield StoreDocument(
            text=text[start:end],
            id=f"{name}#{start}-{end}",
            metadata={"source": name, "start": start, "end": end},
        )


def split_passages(text: str, count_tokens: TokenCounter, max_tokens: int) -> list[Span]:
    """``(start, end)`` spans of ``text`` that each count at most ``max_tokens`` tokens.

    Paragraphs (split at blank lines) are packed together while they fit; a paragraph too long on
    its own is cut at sentences, a sentence at words, and a word in halves until the pieces fit.
    Spans never begin or end with whitespace and never overlap.
    """
    paragraphs = _paragraphs(text, 0, len(text))
    if not paragraphs:
        return []
    groups = _fit(text, paragraphs, 0, count_tokens, max_tokens)
    return _enforce_limit(text, groups, count_tokens, max_tokens)


def _fit(text: str, spans: list[Span], level: int, counter: TokenCounter, max_tokens: int) -> list[list[Span]]:
    """Group consecutive spans whose counts sum within the limit; spans over it are cut one level finer."""
    counts = counter([text[start:end] for start, end in spans])
    groups: list[list[Span]] = []
    fitting: list[tuple[Span, int]] = []
    for span, tokens in zip(spans, counts, strict=True):
        if tokens <= max_tokens:
            fitting.append((span, tokens))
            continue
        groups += _pack(fitting, max_tokens)
        fitting = []
        finer = min(level + 1, len(_SPLITTERS) - 1)
        groups += _fit(text, _split(text, span, finer, tokens, max_tokens), finer, counter, max_tokens)
    return groups + _pack(fitting, max_tokens)


def _pack(units: list[tuple[Span, int]], max_tokens: int) -> list[list[Span]]:
    groups: list[list[Span]] = []
    total = 0
    for span, tokens in units:
        if groups and total + tokens <= max_tokens:
            groups[-1].append(span)
            total += tokens
        else:
            groups.append([span])
            total = tokens
    return groups


def _enforce_limit(text: str, groups: list[list[Span]], counter: TokenCounter, max_tokens: int) -> list[Span]:
    """Recount packed groups as one text each and halve those over the limit.

    Summed unit counts are only an estimate of the joined text's count: a tokenizer may give the
    blank lines between paragraphs tokens of their own. Single units were counted exactly already.
    """
    joined = [group for group in groups if len(group) > 1]
    counts = iter(counter([text[group[0][0] : group[-1][1]] for group in joined]) if joined else [])
    spans: list[Span] = []
    for group in groups:
        if len(group) == 1 or next(counts) <= max_tokens:
            spans.append((group[0][0], group[-1][1]))
        else:
            half = len(group) // 2
            spans += _enforce_limit(text, [group[:half], group[half:]], counter, max_tokens)
    return spans


def _split(text: str, span: Span, level: int, tokens: int, max_tokens: int) -> list[Span]:
    start, end = span
    if end - start == 1:
        raise InvalidInputError(
            f"max_tokens={max_tokens} is too small: the single character {text[start]!r} counts {tokens} tokens."
        )
    return _SPLITTERS[level](text, start, end)


def _paragraphs(text: str, start: int, end: int) -> list[Span]:
    return _cut(text, start, end, _PARAGRAPH_BREAK)


def _sentences(text: str, start: int, end: int) -> list[Span]:
    return _cut(text, start, end, _SENTENCE_END)


def _words(text: str, start: int, end: int) -> list[Span]:
    return _cut(text, start, end, _WORD_BREAK)


def _halves(text: str, start: int, end: int) -> list[Span]:
    middle = (start + end) // 2
    return [span for span in (_strip(text, start, middle), _strip(text, middle, end)) if span[0] < span[1]]


_SPLITTERS: tuple[Callable[[str, int, int], list[Span]], ...] = (
    _paragraphs,
    _sentences,
    _words,
    _halves,
)


def _cut(text: str, start: int, end: int, separator: re.Pattern[str]) -> list[Span]:
    """Non-blank stripped pieces of ``text[start:end]``, cut after each match of ``separator``."""
    cuts = [match.end() for match in separator.finditer(text, start, end)]
    pieces = (_strip(text, left, right) for left, right in zip([start, *cuts], [*cuts, end]))
    return [piece for piece in pieces if piece[0] < piece[1]]


def _strip(text: str, start: int, end: int) -> Span:
    # A byte-order mark left at the top of a file is invisible, so it is trimmed like whitespace.
    while start < end and (text[start].isspace() or text[start] == "\ufeff"):
        start += 1
    while end > start and (text[end - 1].isspace() or text[end - 1] == "\ufeff"):
        end -= 1
    return start, end


def _count_words(texts: Sequence[str]) -> list[int]:
    return [len(text.split()) for text in texts]
