"""One entry point to a store: a folder (Qdrant Edge, embedded) or a Qdrant server, as the arguments say."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from edgecolbert.encoding.encoder import ColBERT
from edgecolbert.errors import StoreError
from edgecolbert.store.base import BaseStore
from edgecolbert.store.defaults import DEFAULT_COLLECTION, DEFAULT_STORE_PATH, URL_ENV_VAR
from edgecolbert.store.edge import SCHEMA_FILE, EdgeStore


def open_store(
    *,
    store: str | os.PathLike[str] | None = None,
    qdrant_url: str | None = None,
    collection: str = DEFAULT_COLLECTION,
    api_key: str | None = None,
    model: ColBERT | str | os.PathLike[str] | None = None,
    create: bool = True,
    **options: Any,
) -> BaseStore:
    """The store a command addresses: a folder (the embedded default) or a Qdrant server.

    ``--store`` wins; otherwise ``--qdrant-url`` or ``QDRANT_URL`` selects the server; otherwise the
    default folder ``./edgecolbert_data``. ``create=False`` (the reading commands) refuses a folder
    that holds no store instead of making an empty one there.
    """
    if store is None and (qdrant_url or os.environ.get(URL_ENV_VAR)):
        from edgecolbert.store.qdrant import QdrantStore

        return QdrantStore(collection, model, url=qdrant_url, api_key=api_key, **options)
    folder = Path(store if store is not None else DEFAULT_STORE_PATH)
    check_store_folder(folder, create=create)
    return EdgeStore(folder, model, **options)


def check_store_folder(folder: Path, *, create: bool) -> None:
    """Refuse, naming it, a store folder that cannot be used, before anything is opened or created.

    Without ``create`` a folder that holds no store is a mistyped path, not a new store.
    """
    # os.path.isfile, unlike Path.is_file, answers False rather than raising where access is denied.
    if os.path.isfile(folder / SCHEMA_FILE):
        if not os.access(folder, os.R_OK | os.W_OK | os.X_OK):
            raise StoreError(f"{folder} is a store, but it is not readable and writable here; check its permissions.")
        return
    hint = f"check the path, or build a store there first with `edgecolbert index PATH --store {folder}`"
    if not create:
        if os.path.isdir(folder):
            raise StoreError(f"{folder} is not an edgecolbert store (it holds no {SCHEMA_FILE}): {hint}.")
        raise StoreError(f"No store at {folder}: the folder does not exist; {hint}.")
    existing = next(path for path in (folder, *folder.parents) if os.path.lexists(path))
    if not existing.is_dir():
        raise StoreError(f"Cannot make a store at {folder}: {existing} is a file, not a folder.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise StoreError(f"Cannot make a store at {folder}: {existing} is not writable here; check its permissions.")
