"""Reading JSON Lines files one record at a time, with errors that name the file and line."""

from __future__ import annotations

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
