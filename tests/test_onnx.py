"""The ONNX Runtime backend: parity with torch, the export cache, int8, and the errors users meet."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import edgecolbert
from checkpoints import (
    build_edge_checkpoint,
    build_stanford_checkpoint,
    requires_minilm,
    requires_shared,
)
from edgecolbert import ColBERT, InvalidInputError
from edgecolbert.encoding.backends import onnx as onnx_backend
from edgecolbert.encoding.backends.base import Backend
from edgecolbert.encoding.backends.eager import TorchBackend
from edgecolbert.errors import MissingDependencyError

pytest.importorskip("onnxruntime", reason="the ONNX backend needs onnxruntime (the 'onnx' extra)")

MAX_RELATIVE_SCORE_DIFF = 1e-4

QUERIES = ["What is late interaction retrieval?", "capital of France", "?!", "東京の人口は何人ですか"]
DOCUMENTS = [
    "Late interaction models keep one vector per token and score with MaxSim.",
    "",
    "!!! ... ??? ,,,",
    "Paris is the capital and largest city of France.",
    "Привет, мир! Это документ на русском языке.",
    " ".join(f"token{i}, word{i}." for i in range(400)),  # longer than document_length
]


def _relative_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-6)))


def _scores(model: ColBERT) -> tuple[np.ndarray, edgecolbert.MultiVectors]:
    docs = model.encode_documents(DOCUMENTS, batch_size=4)
    return edgecolbert.maxsim(model.encode_queries(QUERIES), docs), docs


@pytest.fixture(autouse=True)
def _quiet_truncation() -> Iterator[None]:
    # Restored afterwards: tests elsewhere assert that truncation is warned about.
    encoder_logger = logging.getLogger("edgecolbert.encoding.encoder")
    level = encoder_logger.level
    encoder_logger.setLevel(logging.ERROR)
    yield
    encoder_logger.setLevel(level)


@pytest.fixture(scope="module")
def stanford_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_stanford_checkpoint(tmp_path_factory.mktemp("stanford"))


def _assert_parity(folder: Path, cache: Path) -> None:
    torch_model = ColBERT.from_pretrained(folder, device="cpu")
    onnx_model = ColBERT.from_pretrained(folder, backend="onnx", onnx_cache_dir=cache)
    assert onnx_model.backend == "onnx" and isinstance(onnx_model.engine, onnx_backend.OnnxBackend)
    expected, torch_docs = _scores(torch_model)
    got, onnx_docs = _scores(onnx_model)
    np.testing.assert_array_equal(onnx_docs.lengths, torch_docs.lengths)
    assert _relative_diff(got, expected) < MAX_RELATIVE_SCORE_DIFF
    np.testing.assert_allclose(np.linalg.norm(onnx_docs.data, axis=1), 1.0, atol=1e-5)


def test_stanford_layout_matches_torch(stanford_dir: Path, tmp_path: Path) -> None:
    _assert_parity(stanford_dir, tmp_path / "cache")


def test_query_expansion_attended_matches_torch(tmp_path: Path) -> None:
    # [MASK]-padded queries with a full attention mask: the graph must not assume padding is masked.
    folder = build_stanford_checkpoint(tmp_path / "attend", attend_to_mask_tokens=True, doc_maxlen=64, seed=3)
    _assert_parity(folder, tmp_path / "cache")


@pytest.mark.slow
@requires_shared
def test_edge_17m_layout_matches_torch(tmp_path: Path) -> None:
    # Full depth: local and global attention layers alternate, and documents pass the 128-token window.
    _assert_parity(build_edge_checkpoint(tmp_path / "edge", shape="17m"), tmp_path / "cache")


@pytest.mark.slow
@requires_minilm
def test_minilm_layout_matches_torch_and_int8_stays_close(shared_minilm: Path, shared_onnx_cache: Path) -> None:
    folder = shared_minilm
    _assert_parity(folder, shared_onnx_cache)
    fp32 = ColBERT.from_pretrained(folder, backend="onnx", onnx_cache_dir=shared_onnx_cache)
    int8 = ColBERT.from_pretrained(folder, backend="onnx", quantize="int8", onnx_cache_dir=shared_onnx_cache)
    assert fp32.fingerprint != int8.fingerprint
    reference, ref_docs = _scores(fp32)
    approx, int8_docs = _scores(int8)
    np.testing.assert_array_equal(int8_docs.lengths, ref_docs.lengths)
    np.testing.assert_allclose(np.linalg.norm(int8_docs.data, axis=1), 1.0, atol=1e-5)
    # Real weights: int8 moves scores by a few percent and keeps each query's best document.
    assert float(np.mean(np.abs(approx - reference) / np.abs(reference))) < 0.05
    np.testing.assert_array_equal(approx.argmax(axis=1), reference.argmax(axis=1))


def test_bert_int8_keeps_each_feed_forward_output_and_the_projection_float(stanford_dir: Path, tmp_path: Path) -> None:
    import onnx

    int8 = ColBERT.from_pretrained(stanford_dir, backend="onnx", quantize="int8", onnx_cache_dir=tmp_path / "cache")
    nodes = onnx.load(str(int8.engine.path)).graph.node
    layers = len(ColBERT.from_pretrained(stanford_dir, device="cpu").engine.backbone.encoder.layer)
    float_outputs = [n.name for n in nodes if n.op_type == "MatMul" and n.name.endswith("/output/dense/MatMul")]
    expected = [f"/backbone/encoder/layer.{index}/output/dense/MatMul" for index in range(layers)]
    assert [name for name in float_outputs if "attention" not in name] == expected
    quantized = [n.name for n in nodes if n.op_type == "MatMulInteger"]
    assert sum("intermediate/dense" in name for name in quantized) == layers
    projection = [n.name for n in nodes if n.name.startswith("/projection/")]
    assert any(n.op_type == "MatMul" for n in nodes if n.name in projection), projection
    assert not [name for name in quantized if name.startswith("/projection/")]


def test_second_load_reuses_the_export(stanford_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    first = ColBERT.from_pretrained(stanford_dir, backend="onnx", quantize="int8", onnx_cache_dir=cache)
    files = sorted(cache.rglob("*"))
    names = [path.name for path in files if path.is_file()]
    assert names[:2] == ["model.int8.onnx", "model.onnx"]
    assert len(names) == 3 and names[2].startswith("prepared-")  # what the load worked out with transformers
    stamps = {path: path.stat().st_mtime_ns for path in files}

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("exported again although the cache holds the model")

    monkeypatch.setattr(onnx_backend, "export_onnx", refuse)
    monkeypatch.setattr(onnx_backend, "quantize_int8", refuse)
    monkeypatch.setattr(edgecolbert.encoding.encoder, "_load_backbone", refuse)
    second = ColBERT.from_pretrained(stanford_dir, backend="onnx", quantize="int8", onnx_cache_dir=cache)
    fp32 = ColBERT.from_pretrained(stanford_dir, backend="onnx", onnx_cache_dir=cache)
    assert {path: path.stat().st_mtime_ns for path in sorted(cache.rglob("*"))} == stamps
    assert second.engine.path == first.engine.path
    assert fp32.engine.path.name == "model.onnx"
    np.testing.assert_array_equal(second.encode_query("late interaction"), first.encode_query("late interaction"))


LOAD_PROBE = """
import json, sys
from edgecolbert import ColBERT
model = ColBERT.from_pretrained(sys.argv[1], backend="onnx", onnx_cache_dir=sys.argv[2])
print(json.dumps({
    "heavy": [name for name in ("torch", "transformers") if name in sys.modules],
    "fingerprint": model.fingerprint,
    "queries": [model.encode_query(text).tolist() for text in json.loads(sys.argv[3])],
}))
"""

# Markers in the text, a lone surrogate, a final sigma, a query past the length: each tokenizes its own way.
TRICKY = ["[unused0] [Q] marker in the text", "bad \ud800 decode", "ΟΔΟΣ uppercase Greek", "long " * 80, "?!"]


def _load_in_a_fresh_process(folder: Path, cache: Path) -> dict[str, Any]:
    probe = subprocess.run(
        [sys.executable, "-c", LOAD_PROBE, str(folder), str(cache), json.dumps(TRICKY)],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert probe.returncode == 0, probe.stderr
    return json.loads(probe.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_a_load_that_finds_its_export_imports_neither_torch_nor_transformers(
    stanford_dir: Path, tmp_path: Path
) -> None:
    first = _load_in_a_fresh_process(stanford_dir, tmp_path / "cache")
    second = _load_in_a_fresh_process(stanford_dir, tmp_path / "cache")
    assert first["heavy"] == ["torch", "transformers"]  # the export needs both
    assert second["heavy"] == []
    assert second["fingerprint"] == first["fingerprint"]
    assert second["queries"] == first["queries"]


@pytest.mark.parametrize("layout", ["stanford", pytest.param("minilm", marks=[requires_minilm, pytest.mark.slow])])
def test_a_recorded_load_tokenizes_and_encodes_as_the_first(
    layout: str, stanford_dir: Path, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    folder = stanford_dir if layout == "stanford" else request.getfixturevalue("shared_minilm")
    cache = tmp_path / "cache"
    first = ColBERT.from_pretrained(folder, backend="onnx", onnx_cache_dir=cache, query_length=24)
    [record] = cache.rglob("prepared-*.json")
    stamp = record.stat().st_mtime_ns
    second = ColBERT.from_pretrained(folder, backend="onnx", onnx_cache_dir=cache, query_length=24)
    assert record.stat().st_mtime_ns == stamp  # read, not made again
    assert second.tokenizer.state() == first.tokenizer.state()
    for kind in ("query", "document"):
        ids, truncated = first.tokenizer.token_ids(TRICKY, kind)
        assert second.tokenizer.token_ids(TRICKY, kind) == (ids, truncated)
        expected, got = first.tokenizer.pad(ids, kind), second.tokenizer.pad(ids, kind)
        for field in ("input_ids", "attention_mask", "keep_mask"):
            np.testing.assert_array_equal(getattr(got, field), getattr(expected, field))
    assert (second.query_length, second.document_length, second.fingerprint) == (
        24,
        first.document_length,
        first.fingerprint,
    )
    np.testing.assert_array_equal(second.encode_documents(DOCUMENTS).data, first.encode_documents(DOCUMENTS).data)


def test_a_changed_checkpoint_file_or_a_damaged_record_is_worked_out_again(
    stanford_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "model"
    shutil.copytree(stanford_dir, folder)
    cache = tmp_path / "cache"
    first = ColBERT.from_pretrained(folder, backend="onnx", onnx_cache_dir=cache)
    [record] = cache.rglob("prepared-*.json")
    # Edited tokenizer settings name another record; the old one is not read.
    config = folder / "tokenizer_config.json"
    config.write_text(config.read_text())
    ColBERT.from_pretrained(folder, backend="onnx", onnx_cache_dir=cache)
    assert len(list(cache.rglob("prepared-*.json"))) == 2
    [newest] = [path for path in cache.rglob("prepared-*.json") if path != record]
    newest.write_text("{half a record")
    with caplog.at_level(logging.WARNING, logger="edgecolbert.encoding.prepared"):
        again = ColBERT.from_pretrained(folder, backend="onnx", onnx_cache_dir=cache)
    assert "unreadable load record" in caplog.text
    assert json.loads(newest.read_text())["tokenizer"] == first.tokenizer.state()
    np.testing.assert_array_equal(again.encode_query("late interaction"), first.encode_query("late interaction"))


def test_model_folder_is_left_untouched(stanford_dir: Path, tmp_path: Path) -> None:
    before = {path: path.stat().st_mtime_ns for path in stanford_dir.rglob("*")}
    ColBERT.from_pretrained(stanford_dir, backend="onnx", onnx_cache_dir=tmp_path / "cache")
    assert {path: path.stat().st_mtime_ns for path in stanford_dir.rglob("*")} == before


def test_default_cache_follows_the_environment(
    stanford_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(onnx_backend.CACHE_ENV_VAR, str(tmp_path / "home-cache"))
    model = ColBERT.from_pretrained(stanford_dir, backend="onnx")
    assert model.engine.path.parent.parent == tmp_path / "home-cache" / "onnx"
    assert model.engine.path.parent.name == onnx_backend.export_key(model.spec)


def test_interrupted_export_leaves_no_cache_entry(
    stanford_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    real_export = onnx_backend.export_onnx

    def crash_midway(module: torch.nn.Module, target: Path) -> None:
        target.write_bytes(b"half a graph")
        raise KeyboardInterrupt

    monkeypatch.setattr(onnx_backend, "export_onnx", crash_midway)
    with pytest.raises(KeyboardInterrupt):
        ColBERT.from_pretrained(stanford_dir, backend="onnx", onnx_cache_dir=cache)
    assert [path for path in cache.rglob("*") if path.is_file()] == []
    monkeypatch.setattr(onnx_backend, "export_onnx", real_export)
    model = ColBERT.from_pretrained(stanford_dir, backend="onnx", onnx_cache_dir=cache)
    assert model.encode_query("works now").shape[1] == model.dim


def test_damaged_cache_file_is_exported_again(
    stanford_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "cache"
    good = ColBERT.from_pretrained(stanford_dir, backend="onnx", onnx_cache_dir=cache)
    good.engine.path.write_bytes(b"\x00garbage")
    with caplog.at_level(logging.WARNING, logger="edgecolbert.encoding.backends.onnx"):
        again = ColBERT.from_pretrained(stanford_dir, backend="onnx", onnx_cache_dir=cache)
    assert "unreadable ONNX file" in caplog.text
    np.testing.assert_allclose(again.encode_query("late interaction"), good.encode_query("late interaction"))


def test_session_uses_torch_thread_count(stanford_dir: Path, tmp_path: Path) -> None:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = ColBERT.from_pretrained(stanford_dir, backend="onnx", onnx_cache_dir=tmp_path)
    finally:
        torch.set_num_threads(previous)
    assert model.engine.threads == 1
    options = model.engine.session.get_session_options()
    assert options.intra_op_num_threads == 1
    # Workers block between runs rather than spin, leaving the cores to tokenization and to other work.
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    spinning = onnx_backend.OnnxBackend(model.engine.path, threads=1, spinning=True)
    assert spinning.session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == "1"
    # A single short text (a query) runs on a spinning session for latency; batches stay on the blocking one.
    latency = model.engine.latency_session.get_session_options()
    assert latency.get_session_config_entry("session.intra_op.allow_spinning") == "1"
    assert latency.intra_op_num_threads == 1
    # ...and its workers stop spinning when the run returns, leaving the cores to the MaxSim that follows.
    assert latency.get_session_config_entry("session.force_spinning_stop") == "1"
    blocking_only = onnx_backend.OnnxBackend(model.engine.path, threads=1, latency_spinning=False)
    assert blocking_only.latency_session is blocking_only.session


def test_a_query_alone_makes_one_session_and_batches_one_per_worker(
    stanford_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[tuple[int, bool]] = []
    real_make_session = onnx_backend.make_session

    def recording(path: Path, *, threads: int, spinning: bool = False) -> Any:
        made.append((threads, spinning))
        return real_make_session(path, threads=threads, spinning=spinning)

    monkeypatch.setattr(onnx_backend, "make_session", recording)
    model = _onnx_model(stanford_dir, tmp_path, threads=2)
    del made[:-1]  # the load's own engine, which _onnx_model replaces
    query = model.encode_query("late interaction")
    assert made == [(2, True)]  # a search process never pays for the batch sessions' copies of the weights
    documents = model.encode_documents(["two documents", "in two batches, one per worker"])
    model.encode_documents(["and two more", "on the same sessions"])
    assert made == [(2, True), (1, False), (1, False)]
    model.encode_documents([" ".join(["a lone document longer than a query"] * 20)])
    assert made[3:] == [(2, False)]  # a lone batch runs on every thread
    np.testing.assert_array_equal(model.encode_query("late interaction"), query)
    assert len(documents) == 2


def test_queries_and_batches_give_the_same_vectors_on_either_session(stanford_dir: Path, tmp_path: Path) -> None:
    model = _onnx_model(stanford_dir, tmp_path, threads=2, workers=1)
    texts = ["a short query", "another one about glaciers", "a third text"]
    one_by_one = [model.encode_query(text) for text in texts]
    batched = model.encode_queries(texts)
    for single, row in zip(one_by_one, batched, strict=True):
        np.testing.assert_allclose(single, row, atol=1e-6)
    calls: list[str] = []
    for name in ("session", "latency_session"):
        session = getattr(model.engine, name)
        setattr(model.engine, name, _Recording(session, name, calls))
    model.encode_query("one query")
    model.encode_queries(texts)
    assert calls == ["latency_session", "session"]


def test_batches_run_one_per_worker_and_give_the_vectors_of_one_session_in_input_order(
    stanford_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serial = _onnx_model(stanford_dir, tmp_path, threads=2, workers=1)
    concurrent = _onnx_model(stanford_dir, tmp_path, threads=2, workers=2)
    # Lengths mixed on purpose: batches are sorted by length and the input order must come back.
    texts = [" ".join(["word"] * (1 + (7 * i) % 40)) + f" document {i}." for i in range(23)] + DOCUMENTS
    running: list[int] = []
    most = [0]
    lock = threading.Lock()
    real_run = onnx_backend._run

    def overlapping(session: Any, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        with lock:
            running.append(1)
            most[0] = max(most[0], len(running))
        try:
            time.sleep(0.02)  # long enough for the other worker to start its batch
            return real_run(session, input_ids, attention_mask)
        finally:
            with lock:
                running.pop()

    expected = serial.encode_documents(texts, batch_size=4)
    monkeypatch.setattr(onnx_backend, "_run", overlapping)
    got = concurrent.encode_documents(texts, batch_size=4)
    assert most[0] == 2
    assert len(got) == len(expected)
    for ours, theirs in zip(got, expected, strict=True):
        np.testing.assert_allclose(ours, theirs, atol=1e-6)


def test_many_threads_share_out_among_a_few_batch_sessions(
    stanford_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _onnx_model(stanford_dir, tmp_path, threads=8)
    made: list[int] = []
    real_make_session = onnx_backend.make_session

    def recording(path: Path, *, threads: int, spinning: bool = False) -> Any:
        made.append(threads)
        return real_make_session(path, threads=threads, spinning=spinning)

    monkeypatch.setattr(onnx_backend, "make_session", recording)
    model.encode_documents([f"document {i}" for i in range(12)], batch_size=2)
    # Each session holds its own weights, so their number is capped; the threads are shared out.
    assert made == [2] * onnx_backend.MAX_DEFAULT_WORKERS == [2, 2, 2, 2]


def test_fewer_texts_than_batch_size_still_give_every_worker_a_batch(stanford_dir: Path, tmp_path: Path) -> None:
    model = _onnx_model(stanford_dir, tmp_path, threads=2, workers=2)
    seen: list[int] = []
    real = model.engine.forward_batches

    def recording(batches: Iterator[Any]) -> Iterator[np.ndarray]:
        def counted() -> Iterator[Any]:
            for batch in batches:
                seen.append(batch.input_ids.shape[0])
                yield batch

        return real(counted())

    model.engine.forward_batches = recording  # type: ignore[method-assign]
    vectors = model.encode_documents([f"document number {i}" for i in range(5)], batch_size=16)
    assert seen == [3, 2]
    assert len(vectors) == 5


def test_a_failing_batch_raises_in_the_caller(
    stanford_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _onnx_model(stanford_dir, tmp_path, threads=2, workers=2)

    def broken(session: Any, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        raise RuntimeError("the runtime failed on this batch")

    monkeypatch.setattr(onnx_backend, "_run", broken)
    with pytest.raises(RuntimeError, match="failed on this batch"):
        model.encode_documents([f"document {i}" for i in range(8)], batch_size=2)


def _onnx_model(folder: Path, cache: Path, **engine: Any) -> ColBERT:
    """An ONNX encoder whose engine runs with the given OnnxBackend settings (threads, workers)."""
    model = ColBERT.from_pretrained(folder, backend="onnx", onnx_cache_dir=cache)
    model.engine = onnx_backend.OnnxBackend(model.engine.path, **engine)
    return model


class _Recording:
    def __init__(self, session: Any, name: str, calls: list[str]) -> None:
        self.session, self.name, self.calls = session, name, calls

    def run(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(self.name)
        return self.session.run(*args, **kwargs)


def test_fingerprints_tell_backends_apart(stanford_dir: Path, tmp_path: Path) -> None:
    torch_model = ColBERT.from_pretrained(stanford_dir, device="cpu")
    again = ColBERT.from_pretrained(stanford_dir, device="cpu")
    fp32 = ColBERT.from_pretrained(stanford_dir, backend="onnx", onnx_cache_dir=tmp_path)
    int8 = ColBERT.from_pretrained(stanford_dir, backend="onnx", quantize="int8", onnx_cache_dir=tmp_path)
    assert torch_model.fingerprint == again.fingerprint
    assert len({torch_model.fingerprint, fp32.fingerprint, int8.fingerprint}) == 3
    assert "backend='onnx'" in repr(int8) and "int8" in repr(int8)


def test_each_backend_is_one_engine_behind_the_encoder(stanford_dir: Path, tmp_path: Path) -> None:
    torch_model = ColBERT.from_pretrained(stanford_dir, device="cpu")
    fp32 = ColBERT.from_pretrained(stanford_dir, backend="onnx", onnx_cache_dir=tmp_path)
    int8 = ColBERT.from_pretrained(stanford_dir, backend="onnx", quantize="int8", onnx_cache_dir=tmp_path)
    for model, name, quantize in ((torch_model, "torch", None), (fp32, "onnx", None), (int8, "onnx", "int8")):
        assert isinstance(model.engine, Backend)
        assert (model.backend, model.quantize) == (model.engine.name, model.engine.quantize) == (name, quantize)
    assert isinstance(torch_model.engine, TorchBackend) and isinstance(int8.engine, onnx_backend.OnnxBackend)
    # A pooled copy shares the engine, so weights and sessions are not loaded twice.
    assert int8.with_pool_factor(2).engine is int8.engine


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"backend": "tensorrt"}, "backend 'tensorrt' is not supported"),
        ({"backend": "onnx", "quantize": "int4"}, "quantize 'int4' is not supported"),
        ({"quantize": "int8"}, "needs backend='onnx'"),
        ({"backend": "onnx", "dtype": "bfloat16"}, "float32"),
        ({"backend": "onnx", "device": "cuda"}, "runs on the CPU"),
    ],
)
def test_bad_backend_arguments(stanford_dir: Path, tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        ColBERT.from_pretrained(stanford_dir, onnx_cache_dir=tmp_path, **kwargs)
    assert not any(tmp_path.iterdir())


def test_missing_onnxruntime_names_the_extra(
    stanford_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(MissingDependencyError, match=r"edgecolbert\[onnx\]") as caught:
        ColBERT.from_pretrained(stanford_dir, backend="onnx", onnx_cache_dir=tmp_path)
    assert isinstance(caught.value, ImportError)
    # The torch backend does not need it.
    assert ColBERT.from_pretrained(stanford_dir, device="cpu").backend == "torch"
