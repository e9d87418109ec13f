"""Parity with sentence-transformers 6.2 MultiVectorEncoder on the same checkpoint files.

Published quality only carries over if our vectors are the reference's vectors: same kept
tokens, per-token cosine >= 0.99999, MaxSim scores within 1e-4 relative.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import edgecolbert
from checkpoints import (
    build_edge_checkpoint,
    build_minilm_checkpoint,
    build_st_native_checkpoint,
    build_stanford_checkpoint,
    requires_minilm,
    requires_shared,
)

st = pytest.importorskip("sentence_transformers", reason="sentence-transformers is the parity reference")

MIN_COSINE = 0.99999
MAX_RELATIVE_SCORE_DIFF = 1e-4

QUERIES = [
    "What is late interaction retrieval?",
    "",
    "   ",
    "?!",
    "Ποιος έγραψε την ΟΔΥΣΣΕΙΑ;",
    "東京の人口は何人ですか",
    "covid-19 vaccine efficacy in adults over 65 " * 8,  # longer than the query budget
    "  leading and trailing spaces  ",
]
DOCUMENTS = [
    "Late interaction models keep one vector per token and score with MaxSim.",
    "",
    " \t\n ",
    "!!! ... ??? ,,,",
    "ΟΔΟΣ Σίσυφος — Greek capitals lowercase with a final sigma.",
    "Привет, мир! Это документ на русском языке.",
    "日本語のテキストも正しく扱えるはずです。",
    "Mixed CASE Text With Numbers 12345 and symbols #@%&*.",
    "x [MASK] marker-like text [Q] [D] [unused0] in the middle",
    " ".join(f"token{i}, word{i}." for i in range(400)),  # longer than document_length
]

Builder = Callable[[Path], Path]

CHECKPOINTS: dict[str, tuple[Builder, list[pytest.MarkDecorator]]] = {
    "edge-17m": (lambda p: build_edge_checkpoint(p, shape="17m"), [requires_shared, pytest.mark.slow]),
    "edge-cased-expansion": (
        lambda p: build_edge_checkpoint(p, num_hidden_layers=3, do_lower_case=False, do_query_expansion=True),
        [requires_shared, pytest.mark.slow],
    ),
    "edge-attend-expansion": (
        lambda p: build_edge_checkpoint(
            p, num_hidden_layers=3, do_query_expansion=True, attend_to_expansion_tokens=True, query_length=24
        ),
        [requires_shared, pytest.mark.slow],
    ),
    "stanford": (lambda p: build_stanford_checkpoint(p), []),
    "stanford-attend": (lambda p: build_stanford_checkpoint(p, attend_to_mask_tokens=True, doc_maxlen=64), []),
    "minilm": (lambda p: build_minilm_checkpoint(p), [requires_minilm, pytest.mark.slow]),
}


def _params(names: list[str]) -> list[pytest.param]:
    return [pytest.param(name, marks=CHECKPOINTS[name][1], id=name) for name in names]


@pytest.fixture(scope="module")
def checkpoint_dirs(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, bool], Path]:
    built: dict[tuple[str, bool], Path] = {}

    def get(name: str, native: bool) -> Path:
        if (name, native) not in built:
            source = CHECKPOINTS[name][0](tmp_path_factory.mktemp(name))
            built[(name, False)] = source
            if native:
                built[(name, True)] = build_st_native_checkpoint(tmp_path_factory.mktemp(f"{name}-native"), source)
        return built[(name, native)]

    return get


def _reference(path: Path) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    model = st.MultiVectorEncoder(str(path), device="cpu")
    queries = model.encode_query(QUERIES, convert_to_numpy=True, batch_size=4)
    documents = model.encode_document(DOCUMENTS, convert_to_numpy=True, batch_size=4)
    scores = model.similarity(queries, documents)
    return queries, documents, np.asarray(scores, dtype=np.float64)


def _assert_same_vectors(ours: edgecolbert.MultiVectors, reference: list[np.ndarray], texts: list[str]) -> None:
    assert len(ours) == len(reference)
    for text, mine, theirs in zip(texts, ours, reference):
        assert mine.shape == theirs.shape, f"kept-token count differs for {text[:40]!r}"
        cosine = (mine.astype(np.float64) * theirs).sum(axis=1)
        assert cosine.min() >= MIN_COSINE, f"token cosine {cosine.min()} for {text[:40]!r}"


def _assert_same_scores(ours: np.ndarray, reference: np.ndarray) -> None:
    relative = np.abs(ours - reference) / np.maximum(np.abs(reference), 1e-6)
    assert relative.max() <= MAX_RELATIVE_SCORE_DIFF, f"max relative score difference {relative.max()}"


@pytest.mark.parametrize("native", [False, True], ids=["as-shipped", "st-native-save"])
@pytest.mark.parametrize("name", _params(["edge-17m", "stanford"]))
def test_parity_with_sentence_transformers(checkpoint_dirs, name: str, native: bool) -> None:
    _check_parity(checkpoint_dirs(name, native))


@pytest.mark.parametrize(
    "name", _params(["edge-cased-expansion", "edge-attend-expansion", "stanford-attend", "minilm"])
)
def test_parity_variants(checkpoint_dirs, name: str) -> None:
    _check_parity(checkpoint_dirs(name, False))


def _check_parity(path: Path) -> None:
    model = edgecolbert.ColBERT.from_pretrained(path, device="cpu")
    # A batch size that splits the inputs exercises length sorting and order restoration.
    queries = model.encode_queries(QUERIES, batch_size=3)
    documents = model.encode_documents(DOCUMENTS, batch_size=3)
    ref_queries, ref_documents, ref_scores = _reference(path)
    _assert_same_vectors(queries, ref_queries, QUERIES)
    _assert_same_vectors(documents, ref_documents, DOCUMENTS)
    _assert_same_scores(edgecolbert.maxsim(queries, documents).astype(np.float64), ref_scores)


@pytest.mark.slow
@requires_shared
def test_expansion_queries_have_query_length_vectors(checkpoint_dirs) -> None:
    model = edgecolbert.ColBERT.from_pretrained(checkpoint_dirs("edge-cased-expansion", False), device="cpu")
    assert set(model.encode_queries(QUERIES).lengths.tolist()) == {model.query_length}


@pytest.mark.slow
@requires_shared
def test_marker_token_follows_cls(checkpoint_dirs) -> None:
    model = edgecolbert.ColBERT.from_pretrained(checkpoint_dirs("edge-17m", False), device="cpu")
    (query_ids,), _ = model.tokenizer.token_ids(["hello"], "query")
    (document_ids,), _ = model.tokenizer.token_ids(["hello"], "document")
    assert query_ids[:2] == [50281, 50368] and query_ids[-1] == 50282
    assert document_ids[:2] == [50281, 50369] and document_ids[-1] == 50282


@requires_shared
def test_lowercasing_follows_the_checkpoint(checkpoint_dirs) -> None:
    lowered = edgecolbert.ColBERT.from_pretrained(checkpoint_dirs("edge-17m", False), device="cpu")
    cased = edgecolbert.ColBERT.from_pretrained(checkpoint_dirs("edge-cased-expansion", False), device="cpu")
    for model, same in ((lowered, True), (cased, False)):
        (upper,), _ = model.tokenizer.token_ids(["ColBERT Models"], "document")
        (lower,), _ = model.tokenizer.token_ids(["colbert models"], "document")
        assert (upper == lower) is same
