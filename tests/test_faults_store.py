"""Faults in the store: a write failing mid-stream, a damaged or half-written store folder, a kill during optimize."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from edgecolbert import ColBERT
from edgecolbert.errors import InvalidInputError, ModelMismatchError, StoreDiskFullError, StoreError, StoreLockedError
from edgecolbert.store import EdgeStore
from edgecolbert.store.schema import model_identity
from store_fixtures import CountingModel, copy_store, open_store

ENGINES = ["edge", "qdrant"]


class WriteFailure(RuntimeError):
    """What the injected engine fault raises."""


class FailingWrites:
    """Delegates to the real write method, failing the ``fail_on``-th call (1-based) while ``armed``."""

    def __init__(self, write: Callable[..., Any], fail_on: int) -> None:
        self._write = write
        self.fail_on = fail_on
        self.calls = 0
        self.armed = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.armed and self.calls == self.fail_on:
            raise WriteFailure(f"write {self.calls} failed: no space left on device")
        return self._write(*args, **kwargs)


class ShardProxy:
    """Stands in for the embedded shard so one of its updates can fail like the engine would."""

    def __init__(self, shard: Any, fail_on: int) -> None:
        self._shard = shard
        self.update = FailingWrites(shard.update, fail_on)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._shard, name)


def inject_write_failure(store: Any, engine: str, fail_on: int) -> FailingWrites:
    """Fail the engine's ``fail_on``-th upsert below the store's own code, where disk or network faults arise."""
    if engine == "edge":
        proxy = ShardProxy(store.engine.shard, fail_on)
        store.engine.shard = proxy
        return proxy.update
    failing = FailingWrites(store.client.upsert, fail_on)
    store.client.upsert = failing
    return failing


def documents(n: int) -> list[dict[str, Any]]:
    return [{"id": f"doc-{i}", "text": f"passage {i} about the river delta and its {i % 7} channels"} for i in range(n)]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_write_failing_mid_stream_loses_no_acknowledged_batch(engine: str, tmp_path: Path, model: ColBERT) -> None:
    store = open_store(engine, tmp_path, model)
    failing = inject_write_failure(store, engine, fail_on=3)
    acknowledged: list[str] = []
    with pytest.raises(WriteFailure, match="no space left"):
        store.add_documents(documents(100), batch_size=10, on_batch=acknowledged.extend)
    assert acknowledged == [f"doc-{i}" for i in range(20)]
    # The acknowledged batches are stored whole and the failed one not at all.
    assert [hit.id for hit in store.get(acknowledged)] == acknowledged
    assert store.count() == 20
    assert store.get(["doc-20", "doc-29"]) == []
    # The store keeps serving reads and writes.
    assert store.search("river delta channels", top_k=3)
    failing.armed = False
    counting = CountingModel(model)
    store.model = counting
    report = store.add_documents(documents(100), batch_size=10)
    assert (report.added, report.unchanged) == (80, 20)
    assert len(counting.encoded) == 80  # the rerun encoded only what was missing
    assert store.count() == 100
    store.close()


def test_acknowledged_batches_survive_a_reopen_after_a_failed_write(tmp_path: Path, model: ColBERT) -> None:
    store = open_store("edge", tmp_path, model)
    inject_write_failure(store, "edge", fail_on=2)
    acknowledged: list[str] = []
    with pytest.raises(WriteFailure):
        store.add_documents(documents(30), batch_size=10, on_batch=acknowledged.extend)
    store.close()
    with EdgeStore(tmp_path / "store") as reopened:
        assert reopened.count() == 10
        assert [hit.id for hit in reopened.get(acknowledged)] == acknowledged


@pytest.mark.parametrize("engine", ENGINES)
def test_a_failed_metadata_update_or_delete_surfaces(engine: str, tmp_path: Path, model: ColBERT) -> None:
    store = open_store(engine, tmp_path, model)
    store.add(["a text", "b text"], ids=["a", "b"])
    if engine == "edge":
        store.engine.shard = ShardProxy(store.engine.shard, fail_on=1)
    else:
        store.client.set_payload = FailingWrites(store.client.set_payload, fail_on=1)
        store.client.delete = FailingWrites(store.client.delete, fail_on=1)
    with pytest.raises(WriteFailure):
        store.add(["a text"], ids=["a"], metadatas=[{"changed": True}])
    assert store.get(["a"])[0].metadata == {}
    if engine == "qdrant":
        with pytest.raises(WriteFailure):
            store.delete(["b"])
    assert store.count() == 2
    store.close()


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"k": value}
    return value


def _cyclic() -> dict[str, Any]:
    value: dict[str, Any] = {}
    value["self"] = value
    return value


@pytest.mark.parametrize("metadata", [_nested(125), _nested(33), _cyclic()], ids=["125-deep", "33-deep", "cycle"])
def test_a_refused_payload_leaves_a_store_that_reopens_whole(tmp_path: Path, model: ColBERT, metadata: Any) -> None:
    """Qdrant Edge takes a payload nested ~123 levels deep but cannot read its log back: refuse it first."""
    folder = tmp_path / "store"
    with EdgeStore(folder, model) as store:
        store.add(["hello world", "a second text"], ids=["a", "b"])
        # As a new document and as a metadata-only update of a stored one.
        with pytest.raises(InvalidInputError, match="not plain JSON the store can keep"):
            store.add(["new text"], ids=["c"], metadatas=[metadata])
        with pytest.raises(InvalidInputError, match="not plain JSON the store can keep"):
            store.add(["hello world"], ids=["a"], metadatas=[metadata])
    with EdgeStore(folder) as reopened:
        assert reopened.count() == 2
        assert [hit.text for hit in reopened.get(["a", "b"])] == ["hello world", "a second text"]


def test_metadata_at_the_depth_limit_is_stored_and_read_back(tmp_path: Path, model: ColBERT) -> None:
    folder = tmp_path / "store"
    with EdgeStore(folder, model) as store:
        store.add(["deep"], ids=["d"], metadatas=[_nested(32)])
    with EdgeStore(folder) as reopened:
        assert reopened.get(["d"])[0].metadata == _nested(32)


# ---- damaged and half-written store folders ----------------------------------------------------


@pytest.fixture(scope="module")
def built_store(tmp_path_factory: pytest.TempPathFactory, model: ColBERT) -> Path:
    folder = tmp_path_factory.mktemp("built") / "store"
    with EdgeStore(folder, model) as store:
        store.add(["hello world", "a second text"], ids=["a", "b"])
    return folder


def damaged_copy(built: Path, tmp_path: Path, damage: Callable[[Path], object]) -> Path:
    folder = copy_store(built, tmp_path / "copy")
    damage(folder)
    return folder


def _set_format(folder: Path, number: int) -> None:
    record = json.loads((folder / "edgecolbert.json").read_text(encoding="utf-8"))
    (folder / "edgecolbert.json").write_text(json.dumps({**record, "format": number}), encoding="utf-8")


def test_a_collection_recorded_in_an_unknown_format_is_refused(model: ColBERT) -> None:
    qdrant_client = pytest.importorskip("qdrant_client")
    from edgecolbert.store import QdrantStore

    client = qdrant_client.QdrantClient(":memory:")
    QdrantStore("docs", model, client=client).close()
    record = client.get_collection("docs").config.metadata["edgecolbert"]
    client.update_collection("docs", metadata={"edgecolbert": {**record, "format": 7}})
    with pytest.raises(StoreError, match="'docs' has an edgecolbert record .* store format 7 is not the format 1"):
        QdrantStore("docs", model, client=client)


def _truncate(file: Path) -> None:
    file.write_bytes(file.read_bytes()[: len(file.read_bytes()) // 2])


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda f: _truncate(f / "edgecolbert.json"), "edgecolbert.json is unreadable"),
        (lambda f: (f / "edgecolbert.json").write_text(""), "edgecolbert.json is unreadable"),
        (lambda f: (f / "edgecolbert.json").write_text("[1, 2]"), "edgecolbert.json is unreadable"),
        (lambda f: (f / "edgecolbert.json").write_text('{"format": 1}'), "edgecolbert.json is unreadable"),
        (lambda f: (f / "edgecolbert.json").write_bytes(b"\xff\xfe\x00garbage"), "edgecolbert.json is unreadable"),
        (lambda f: (f / "edgecolbert.json").unlink(), "holds a shard but no edgecolbert.json"),
        (lambda f: _set_format(f, 2), "store format 2 is not the format 1 this edgecolbert reads"),
        (lambda f: _set_format(f, 0), "store format 0 is not the format 1"),
        (lambda f: _truncate(f / "shard" / "edge_config.json"), "Could not open the Qdrant Edge shard"),
    ],
)
def test_a_damaged_store_folder_gives_a_store_error_naming_it(
    built_store: Path, tmp_path: Path, model: ColBERT, damage: Callable[[Path], object], message: str
) -> None:
    folder = damaged_copy(built_store, tmp_path, damage)
    before = sorted(path.relative_to(folder) for path in folder.rglob("*"))
    with pytest.raises(StoreError, match=message) as caught:
        EdgeStore(folder, model)
    assert str(folder) in str(caught.value)
    # A failed open repairs nothing and deletes nothing: the folder is as it was, for a backup restore.
    assert sorted(path.relative_to(folder) for path in folder.rglob("*")) == before


def _segment(folder: Path) -> Path:
    return next((folder / "shard" / "segments").iterdir())


@pytest.mark.parametrize(
    "damaged",
    ["vector_storage-colbert/vectors/chunk_0.mmap", "payload_storage/page_0.dat"],
)
def test_a_truncated_engine_file_gives_a_store_error_naming_the_store(
    built_store: Path, tmp_path: Path, damaged: str
) -> None:
    folder = damaged_copy(built_store, tmp_path, lambda f: (_segment(f) / damaged).write_bytes(b"\0" * 64))
    with EdgeStore(folder) as store, pytest.raises(StoreError, match="its files are damaged: restore") as caught:
        store.search("hello", top_k=2)
    assert str(folder) in str(caught.value)


def _garble_internal_id(folder: Path) -> None:
    mappings = _segment(folder) / "mutable_id_tracker.mappings"
    data = bytearray(mappings.read_bytes())
    # The first entry inserts a UUID: type byte, 16 id bytes, then its u32 slot.
    data[17:21] = b"\xff\xff\xff\xf0"
    mappings.write_bytes(bytes(data))


@pytest.mark.slow
def test_a_garbled_id_mapping_is_refused_before_the_engine_reads_it(built_store: Path, tmp_path: Path) -> None:
    """The engine would size a table by the garbled slot (about 32 GB) and abort the process."""
    folder = damaged_copy(built_store, tmp_path, _garble_internal_id)
    script = "import sys\nfrom edgecolbert.store import EdgeStore, StoreError\ntry:\n    EdgeStore(sys.argv[1])\n"
    script += "except StoreError as exc:\n    print(exc)\n"
    done = subprocess.run(
        [sys.executable, "-c", script, str(folder)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "mutable_id_tracker.mappings is damaged" in done.stdout and str(folder) in done.stdout


@pytest.mark.slow
def test_a_deleted_segment_is_found_by_the_count_at_the_last_close(tmp_path: Path, model: ColBERT) -> None:
    folder = tmp_path / "store"
    with EdgeStore(folder, model) as store:
        store.add_documents(
            ({"text": f"text {i} about topic {i % 7}", "id": f"d{i}"} for i in range(200)), batch_size=50
        )
    with EdgeStore(folder) as reopened:
        assert reopened.count() == 200
    # The write-ahead log replays only the last batches; the rest lived in the segment alone.
    shutil.rmtree(_segment(folder))
    with pytest.raises(StoreError, match="held 200 documents when it was last closed but opens with") as caught:
        EdgeStore(folder)
    assert str(folder) in str(caught.value)
    # Still refused on the next try; deleting the count file, as the message says, opens what is left.
    with pytest.raises(StoreError, match="last closed"):
        EdgeStore(folder)
    (folder / "closed-count.json").unlink()
    with EdgeStore(folder) as store:
        assert store.count() < 200


def test_a_store_path_under_a_regular_file_is_a_store_error(tmp_path: Path, model: ColBERT) -> None:
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(StoreError, match="Cannot create the store folder .*file/store"):
        EdgeStore(tmp_path / "file" / "store", model)


def test_a_lost_engine_config_is_rebuilt_from_the_segments(built_store: Path, tmp_path: Path) -> None:
    folder = damaged_copy(built_store, tmp_path, lambda f: (f / "shard" / "edge_config.json").unlink())
    with EdgeStore(folder) as store:
        assert [hit.id for hit in store.get(["a", "b"])] == ["a", "b"]


def test_a_crash_while_writing_the_schema_leaves_a_folder_that_opens_as_new(tmp_path: Path, model: ColBERT) -> None:
    folder = tmp_path / "store"
    folder.mkdir()
    # The schema is written to a temporary file and renamed; a crash before the rename leaves only that.
    (folder / ".edgecolbert.json.0123abcd.tmp").write_text('{"format": 1, "mod')
    with EdgeStore(folder, model) as store:
        store.add(["text"], ids=["x"])
    with EdgeStore(folder) as reopened:
        assert [hit.id for hit in reopened.get(["x"])] == ["x"]


def test_a_record_without_its_shard_is_refused_not_opened_empty(
    built_store: Path, tmp_path: Path, model: ColBERT
) -> None:
    folder = damaged_copy(built_store, tmp_path, lambda f: shutil.rmtree(f / "shard"))
    with pytest.raises(StoreError, match="has its edgecolbert.json but no shard folder") as caught:
        EdgeStore(folder)
    assert str(folder) in str(caught.value)
    assert not (folder / "shard").exists()


# ---- two creators of one new folder ------------------------------------------------------------


def _record(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "edgecolbert.json").read_text(encoding="utf-8"))


def _stale_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """The second creator looked at the folder before the first one had recorded anything."""
    import edgecolbert.store.edge as edge_module

    real = edge_module._read_schema
    reads: list[Path] = []

    def stale_once(path: Path) -> Any:
        reads.append(path)
        return None if len(reads) == 1 else real(path)

    monkeypatch.setattr(edge_module, "_read_schema", stale_once)


@contextmanager
def _raced_folder(
    tmp_path: Path, model: ColBERT, monkeypatch: pytest.MonkeyPatch, *, first_holds_lock: bool
) -> Iterator[tuple[Path, dict[str, Any]]]:
    """A folder a first creator made and recorded one document in, and its record, with the next creator's
    look at it made stale; with ``first_holds_lock`` the first creator keeps the folder open meanwhile."""
    folder = tmp_path / "store"
    with ExitStack() as held:
        first = held.enter_context(EdgeStore(folder, model))
        first.add(["hello world"], ids=["a"])
        if not first_holds_lock:
            held.close()
        recorded = _record(folder)
        _stale_read(monkeypatch)
        yield folder, recorded


def test_the_creator_that_loses_the_lock_writes_nothing(
    tmp_path: Path, model: ColBERT, other_model: ColBERT, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _raced_folder(tmp_path, model, monkeypatch, first_holds_lock=True) as (folder, recorded):
        with pytest.raises(StoreLockedError):
            EdgeStore(folder, other_model)
        assert _record(folder) == recorded
    monkeypatch.undo()
    with EdgeStore(folder) as reopened:
        assert reopened.search("hello", top_k=1)[0].id == "a"


def test_a_second_creator_that_gets_the_lock_later_keeps_the_first_record(
    tmp_path: Path, model: ColBERT, other_model: ColBERT, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _raced_folder(tmp_path, model, monkeypatch, first_holds_lock=False) as (folder, recorded):
        with pytest.raises(ModelMismatchError):
            EdgeStore(folder, other_model)
        assert _record(folder) == recorded
        # The refused creator released the folder again.
        with EdgeStore(folder, model) as reopened:
            assert reopened.count() == 1


_CREATOR = textwrap.dedent(
    """
    import sys
    from edgecolbert import ColBERT
    from edgecolbert.store import EdgeStore
    from edgecolbert.errors import StoreError

    model = ColBERT.from_pretrained(sys.argv[2], device="cpu")
    print("READY", flush=True)
    sys.stdin.readline()
    try:
        store = EdgeStore(sys.argv[1], model)
    except StoreError as exc:
        print("REFUSED", type(exc).__name__, flush=True)
    else:
        print("CREATED", flush=True)
        sys.stdin.readline()
        store.close()
    """
)


@pytest.mark.slow
def test_two_processes_creating_one_folder_leave_one_consistent_store(
    tmp_path: Path, model: ColBERT, other_model: ColBERT
) -> None:
    folder = tmp_path / "store"
    creators = [
        subprocess.Popen(
            [sys.executable, "-c", _CREATOR, str(folder), checkpoint.name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for checkpoint in (model, other_model)
    ]
    for creator in creators:
        assert creator.stdout is not None and creator.stdout.readline().strip() == "READY"
    for creator in creators:
        assert creator.stdin is not None
        creator.stdin.write("go\n")
        creator.stdin.flush()
    outcomes = [creator.stdout.readline().split()[0] for creator in creators if creator.stdout]
    for creator in creators:
        creator.communicate("done\n", timeout=120)
    assert sorted(outcomes) == ["CREATED", "REFUSED"]
    winner = (model, other_model)[outcomes.index("CREATED")]
    with EdgeStore(folder) as reopened:
        assert reopened.schema.model_identity == model_identity(winner)


# ---- kill -9 during optimize and close ---------------------------------------------------------

_OPTIMIZER = textwrap.dedent(
    """
    import sys
    from edgecolbert.store import EdgeStore

    store = EdgeStore(sys.argv[1])
    for start in range(0, 400, 100):
        ids = store.add([f"text {i} about topic {i % 13}" for i in range(start, start + 100)],
                        ids=[f"k{i}" for i in range(start, start + 100)])
    print("STORED", flush=True)
    while True:
        store.optimize()
        store.add(["late text"], ids=["late"])
        print("OPTIMIZED", flush=True)
        if sys.argv[2] == "close":
            store.close()
            store = EdgeStore(sys.argv[1])
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("phase", ["optimize", "close"])
def test_kill_during_optimize_or_close_keeps_every_acknowledged_write(
    tmp_path: Path, model: ColBERT, phase: str
) -> None:
    store = tmp_path / "store"
    with EdgeStore(store, model):
        pass  # the subprocess reopens the folder with the model recorded here
    process = subprocess.Popen(
        [sys.executable, "-c", _OPTIMIZER, str(store), phase],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    lines = []
    # The subprocess loops optimize (or close and reopen) and a write; the kill lands inside that cycle.
    for line in process.stdout:
        lines.append(line.strip())
        if lines.count("OPTIMIZED") >= 2:
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=120)
    assert lines[0] == "STORED" and process.returncode == -signal.SIGKILL
    with EdgeStore(store) as reopened:
        assert reopened.count() == 401
        assert len(reopened.get([f"k{i}" for i in range(400)] + ["late"])) == 401
        assert reopened.search("topic 5", top_k=3)


def test_schema_file_is_plain_json_written_whole(built_store: Path) -> None:
    schema = json.loads((built_store / "edgecolbert.json").read_text(encoding="utf-8"))
    assert schema["model_dim"] > 0 and schema["model"]
    assert not list(built_store.glob(".edgecolbert.json.*.tmp"))


# ---- a (nearly) full disk ----------------------------------------------------------------------


def _disk_with(monkeypatch: pytest.MonkeyPatch, free: int) -> None:
    """Qdrant Edge dies with SIGBUS when a mapped page cannot be backed; the store must stop before that."""
    import edgecolbert.store.edge as edge_module

    monkeypatch.setattr(edge_module, "free_bytes", lambda path: free)


def test_a_write_that_would_fill_the_disk_is_refused_whole(
    tmp_path: Path, model: ColBERT, monkeypatch: pytest.MonkeyPatch
) -> None:
    import edgecolbert.store.edge as edge_module

    folder = tmp_path / "store"
    with EdgeStore(folder, model) as store:
        store.add(["hello world", "a second text"], ids=["a", "b"], metadatas=[{"n": 1}, {"n": 2}])
        # Room for the margin and a little more, not for a batch of documents.
        _disk_with(monkeypatch, edge_module.DISK_MARGIN_BYTES + 1024)
        with pytest.raises(StoreDiskFullError, match="Free some space") as caught:
            store.add_documents([{"text": f"document {i} " * 20, "id": f"new{i}"} for i in range(50)])
        assert str(folder) in str(caught.value)
        _disk_with(monkeypatch, edge_module.DISK_MARGIN_BYTES - 1)
        for write in (
            lambda: store.add(["hello world"], ids=["a"], metadatas=[{"n": 9}]),
            lambda: store.delete(["b"]),
            store.optimize,
        ):
            with pytest.raises(StoreDiskFullError):
                write()
        assert store.count() == 2
        monkeypatch.undo()
        store.add(["third"], ids=["c"])
    with EdgeStore(folder) as reopened:
        assert reopened.count() == 3
        assert [hit.metadata for hit in reopened.get(["a", "b"])] == [{"n": 1}, {"n": 2}]


def test_optimize_asks_for_the_size_of_its_segments_once(
    tmp_path: Path, model: ColBERT, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Merging writes new segments beside the old ones; asking for four times their size refused 100,000
    documents' merge (10 GB of segments) on a disk with 33 GB free."""
    import edgecolbert.store.edge as edge_module

    folder = tmp_path / "store"
    with EdgeStore(folder, model) as store:
        store.add([f"document {i} about rivers" for i in range(40)], ids=[f"d{i}" for i in range(40)])
        stored = edge_module._stored_bytes(folder / edge_module.SHARD_DIR)
        _disk_with(monkeypatch, 2 * stored + edge_module.DISK_MARGIN_BYTES)
        store.optimize()
        stored = edge_module._stored_bytes(folder / edge_module.SHARD_DIR)
        _disk_with(monkeypatch, stored // 2 + edge_module.DISK_MARGIN_BYTES)
        with pytest.raises(StoreDiskFullError, match="optimizing needs about"):
            store.optimize()
        monkeypatch.undo()
        assert store.count() == 40


def test_opening_or_creating_a_store_on_a_full_disk_is_a_clear_error(
    built_store: Path, tmp_path: Path, model: ColBERT, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = damaged_copy(built_store, tmp_path, lambda f: None)
    _disk_with(monkeypatch, 10 * 2**20)
    with pytest.raises(StoreDiskFullError, match="opening the store needs about") as caught:
        EdgeStore(folder)
    assert str(folder) in str(caught.value)
    new = tmp_path / "new"
    with pytest.raises(StoreDiskFullError):
        EdgeStore(new, model)
    assert not new.exists()
    monkeypatch.undo()
    with EdgeStore(folder) as reopened:
        assert reopened.count() == 2
