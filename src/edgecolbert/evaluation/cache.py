"""Where an evaluation keeps corpus vectors: one embedded store per (model, corpus content)."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from edgecolbert.encoding.encoder import ColBERT
from edgecolbert.store.schema import model_identity

CACHE_ENV_VAR = "EDGECOLBERT_EVAL_CACHE"


def default_cache_dir() -> Path:
    """``$EDGECOLBERT_EVAL_CACHE``, else ``$XDG_CACHE_HOME/edgecolbert/eval``, else ``~/.cache/edgecolbert/eval``."""
    configured = os.environ.get(CACHE_ENV_VAR)
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "edgecolbert" / "eval"


def model_key(model: ColBERT) -> str:
    """What stored document vectors depend on: the weights, the document length (truncation), the dtype,
    the runtime (torch or ONNX, fp32 or int8) and the pooling.

    A store accepts queries from any runtime of its checkpoint, but an evaluation judges one
    configuration, so int8 or pooled vectors must never be read back as fp32 unpooled ones.
    """
    parts = [model_identity(model), str(model.document_length), model.dtype_name]
    parts += [model.backend, model.quantize or "fp32", f"pool{model.pool_factor}"]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def store_folder(
    cache_dir: str | os.PathLike[str], dataset: str | os.PathLike[str], corpus_hash: str, model: ColBERT
) -> Path:
    """``<cache>/<dataset name>-<corpus hash>-<model key>``: the name says what it holds, the hashes key it."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(dataset).resolve().name) or "dataset"
    return Path(cache_dir) / f"{name}-{corpus_hash[:16]}-{model_key(model)}"
