"""What opening an EdgeStore costs: the engine's log holds no token vectors to replay after a close."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from checkpoints import requires_minilm
from edgecolbert import ColBERT
from edgecolbert.store import EdgeStore
from store_fixtures import corpus

pytestmark = requires_minilm  # the tiny Stanford checkpoint borrows MiniLM's WordPiece tokenizer


class RecordingShard:
    """Passes every call to the engine's shard and keeps the name of each call, with its arguments."""

    def __init__(self, shard: Any) -> None:
        self._shard = shard
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._shard, name)

        def recorded(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, args))
            return method(*args, **kwargs)

        return recorded


class RecordingOperations:
    """The engine's ``UpdateOperation`` constructors, each operation made remembered with its arguments."""

    def __init__(self, operations: Any) -> None:
        self._operations = operations
        self.made: dict[int, tuple[str, tuple[Any, ...]]] = {}

    def __getattr__(self, name: str) -> Any:
        def make(*args: Any) -> Any:
            operation = getattr(self._operations, name)(*args)
            self.made[id(operation)] = (name, args)
            return operation

        return make


def test_close_writes_an_empty_operation_last_so_the_next_open_replays_no_vectors(
    tmp_path: Path, model: ColBERT, monkeypatch: pytest.MonkeyPatch
) -> None:
    import qdrant_edge as edge

    folder = tmp_path / "store"
    texts, ids, metadatas = corpus()
    store = EdgeStore(folder, model)
    store.add(texts, ids=ids, metadatas=metadatas)
    before = [hit.to_dict() for hit in store.search("rivers and mountains", top_k=5)]
    recording = RecordingShard(store.engine.shard)
    store.engine.shard = recording  # type: ignore[assignment]
    operations = RecordingOperations(edge.UpdateOperation)
    engine_module = SimpleNamespace(**{name: getattr(edge, name) for name in dir(edge) if not name.startswith("_")})
    engine_module.UpdateOperation = operations
    monkeypatch.setattr(store.engine, "_edge", engine_module)
    store.close()
    # The engine replays its log from the newest operation on at every load: that operation must be
    # the empty one, not the last batch of documents, and it must be flushed with everything else.
    names = [name for name, _ in recording.calls]
    assert names[-3:] == ["update", "flush", "close"], names
    (operation,) = recording.calls[-3][1]
    assert operations.made[id(operation)] == ("delete_points", ([],))
    with EdgeStore(folder, model) as reopened:
        assert reopened.count() == len(texts)
        assert [hit.to_dict() for hit in reopened.search("rivers and mountains", top_k=5)] == before
