"""Reading JSON Lines files one record at a time, with errors that name the file and line."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_UTF8_BOM = b"\xef\xbb\xbf"


def jsonl_records(path: Path, error: type[Exception]) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for each non-blank line; a bad line raises ``error`` naming it."""
    # Bytes keep line numbers exact: a decoding error is pinned to its line, not the whole file.
    with path.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            if line_no == 1:
                raw = raw.removeprefix(_UTF8_BOM)
            if raw.strip():
                yield line_no, _parse_line(raw, f"{path} line {line_no}", error)


def _parse_line(raw: bytes, where: str, error: type[Exception]) -> dict[str, Any]:
    try:
        record = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise error(f"{where} is not valid UTF-8: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise error(f"{where} is not valid JSON: {exc}") from exc
    if not isinstance(record, dict):
        raise error(f"{where} should be a JSON object, got {type(record).__name__}.")
    return record


class IdRegister:
    """Catches one id given to two different records, remembering ids and fingerprints, never texts.

    Memory grows with the number of ids (a couple of hundred bytes each), not with the records' size.
    """

    def __init__(self, path: Path, error: type[Exception]) -> None:
        self._path = path
        self._error = error
        self._first: dict[str, tuple[int, bytes]] = {}

    def is_repeat(self, doc_id: str, line_no: int, content: Any) -> bool:
        """True when an earlier line had this id and the same ``content``; a different content raises."""
        fingerprint = _fingerprint(content)
        first_line, first_fingerprint = self._first.setdefault(doc_id, (line_no, fingerprint))
        if first_line == line_no:
            return False
        if first_fingerprint != fingerprint:
            raise self._error(
                f"{self._path} lines {first_line} and {line_no} both have the id {doc_id!r} but different "
                "content; ids must be unique: give one of them another id, or remove one. Nothing was indexed."
            )
        return True


def _fingerprint(content: Any) -> bytes:
    canonical = json.dumps(content, sort_keys=True, ensure_ascii=False, default=repr)
    return hashlib.blake2b(canonical.encode("utf-8", "surrogatepass"), digest_size=16).digest()
