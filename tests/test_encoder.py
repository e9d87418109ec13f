"""Encoder behaviour beyond parity: batching, long documents, conversion, defaults."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import edgecolbert
from checkpoints import MINILM_DIR, build_edge_checkpoint, requires_minilm, requires_shared
from edgecolbert import InvalidInputError
from edgecolbert.encoding.convert import from_sentence_transformer
from edgecolbert.encoding.defaults import DEFAULT_MODEL, MODEL_ENV_VAR, default_model_name

TEXTS = [f"document number {i} " + "with several words " * (i % 7) for i in range(23)]


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> edgecolbert.ColBERT:
    path = build_edge_checkpoint(tmp_path_factory.mktemp("edge"), num_hidden_layers=3)
    return edgecolbert.ColBERT.from_pretrained(path, device="cpu", document_length=4096)


@requires_shared
@pytest.mark.parametrize("batch_size", [1, 4, 64])
def test_batch_size_does_not_change_results(edge: edgecolbert.ColBERT, batch_size: int) -> None:
    reference = edge.encode_documents(TEXTS, batch_size=7)
    other = edge.encode_documents(TEXTS, batch_size=batch_size)
    np.testing.assert_array_equal(reference.lengths, other.lengths)
    for want, got in zip(reference, other):
        assert (want * got).sum(axis=1).min() > 0.99999


@requires_shared
def test_vectors_are_unit_length_float32(edge: edgecolbert.ColBERT) -> None:
    vectors = edge.encode_documents(TEXTS)
    assert vectors.data.dtype == np.float32
    assert vectors.dim == 48
    np.testing.assert_allclose(np.linalg.norm(vectors.data, axis=1), 1.0, rtol=1e-5)
    assert len(vectors) == len(TEXTS)


@requires_shared
def test_long_documents_are_encoded_whole_up_to_the_override(edge: edgecolbert.ColBERT) -> None:
    text = " ".join(f"w{i}" for i in range(1500))
    (ids,), truncated = edge.tokenizer.token_ids([text], "document")
    assert truncated == 0 and len(ids) > 1500
    (vectors,) = edge.encode_documents([text])
    assert vectors.shape[0] == len(ids) - int(np.isin(ids, edge.tokenizer.skiplist_ids).sum())


@requires_shared
def test_lengths_beyond_the_backbone_are_rejected(edge: edgecolbert.ColBERT) -> None:
    with pytest.raises(InvalidInputError, match="position embeddings"):
        edgecolbert.ColBERT.from_pretrained(edge.spec.path, device="cpu", document_length=10_000)
    with pytest.raises(InvalidInputError, match="at least 3"):
        edgecolbert.ColBERT.from_pretrained(edge.spec.path, device="cpu", query_length=1)


@requires_shared
def test_one_query_equals_the_same_query_in_a_list(edge: edgecolbert.ColBERT, caplog: pytest.LogCaptureFixture) -> None:
    for text in ["capital of France", "", "?!", "word " * 100]:
        np.testing.assert_array_equal(edge.encode_query(text), edge.encode_queries([text])[0])
    caplog.clear()
    with caplog.at_level("WARNING", logger="edgecolbert"):
        edge.encode_query("word " * 100)
    assert ["1 of 1 queries exceed" in record.getMessage() for record in caplog.records] == [True]
    with pytest.raises(TypeError, match="position 0"):
        edge.encode_query(None)  # type: ignore[arg-type]


@requires_shared
def test_bad_encode_arguments(edge: edgecolbert.ColBERT) -> None:
    with pytest.raises(InvalidInputError, match="batch_size"):
        edge.encode_documents(TEXTS, batch_size=0)
    with pytest.raises(TypeError, match="position 1"):
        edge.encode_queries(["fine", None])  # type: ignore[list-item]
    assert len(edge.encode_documents([])) == 0


@requires_shared
def test_fingerprint_tracks_what_vectors_depend_on(edge: edgecolbert.ColBERT) -> None:
    same = edgecolbert.ColBERT.from_pretrained(edge.spec.path, device="cpu", document_length=4096)
    shorter = edgecolbert.ColBERT.from_pretrained(edge.spec.path, device="cpu", document_length=128)
    assert same.fingerprint == edge.fingerprint
    assert shorter.fingerprint != edge.fingerprint


def test_default_model_honours_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MODEL_ENV_VAR, raising=False)
    assert default_model_name() == DEFAULT_MODEL == "mixedbread-ai/mxbai-edge-colbert-v0-17m"
    monkeypatch.setenv(MODEL_ENV_VAR, "/models/mine")
    assert default_model_name() == "/models/mine"


@requires_minilm
def test_converted_sentence_transformer_matches_the_reference_build(tmp_path: Path, shared_minilm: Path) -> None:
    assert MINILM_DIR is not None
    converted = edgecolbert.ColBERT.from_pretrained(from_sentence_transformer(MINILM_DIR, tmp_path / "c"))
    reference = edgecolbert.ColBERT.from_pretrained(shared_minilm)
    for kind in ("encode_queries", "encode_documents"):
        ours, theirs = getattr(converted, kind)(TEXTS[:5]), getattr(reference, kind)(TEXTS[:5])
        np.testing.assert_allclose(ours.data, theirs.data, atol=1e-6)
    with pytest.raises(InvalidInputError, match="not empty"):
        from_sentence_transformer(MINILM_DIR, tmp_path / "c")
