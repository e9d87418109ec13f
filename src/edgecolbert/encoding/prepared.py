"""What an ONNX load works out with transformers, kept beside the export so later loads need neither it nor torch.

Importing transformers imports torch, and the two took 10-15 s on 2 busy cores, while the ONNX
backend runs its graph with ONNX Runtime alone. A load that has to ask transformers (the first
one, or any after a file changed) records the tokenizer it built and the two config values it
used; later loads rebuild the same tokenizer from that record with the tokenizers library.

The record's name is a hash of everything it was derived from: the size and modification time of
every file in the checkpoint and backbone folders, ``trust_remote_code``, and the transformers and
tokenizers versions. A change to any of them names another record, so a stale one is never read.
"""

from __future__ import annotations

import hashlib
import json
import logging
from importlib import metadata
from pathlib import Path
from typing import Any

from edgecolbert.encoding.checkpoint import CheckpointSpec

logger = logging.getLogger(__name__)

# Raised whenever what a record holds, or how it is read, changes.
_RECIPE = "prepared-v1"


def record_path(export_folder: Path, spec: CheckpointSpec, *, trust_remote_code: bool) -> Path:
    return export_folder / f"prepared-{_record_key(spec, trust_remote_code)}.json"


def read_record(path: Path) -> dict[str, Any] | None:
    """The record at ``path``, or None where there is none or it cannot be read (then it is made again)."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        logger.warning("Ignoring the unreadable load record %s (%s); it is made again.", path, exc)
        return None
    if not isinstance(record, dict) or not {"tokenizer", "max_positions", "hidden_size"} <= record.keys():
        logger.warning("Ignoring the incomplete load record %s; it is made again.", path)
        return None
    return record


def make_record(tokenizer_state: dict[str, Any], *, max_positions: int | None, hidden_size: int | None) -> str:
    return json.dumps({"tokenizer": tokenizer_state, "max_positions": max_positions, "hidden_size": hidden_size})


def _record_key(spec: CheckpointSpec, trust_remote_code: bool) -> str:
    parts = [_RECIPE, f"remote:{trust_remote_code}", *_versions()]
    for folder in dict.fromkeys((spec.path, spec.backbone_dir)):
        for file in sorted(folder.iterdir()):
            if file.is_file():
                stat = file.stat()
                parts.append(f"{file}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _versions() -> list[str]:
    versions = []
    for package in ("transformers", "tokenizers"):
        try:
            versions.append(f"{package}:{metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package}:none")
    return versions
