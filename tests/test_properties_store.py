"""Properties of store writes and reads on both engines: arbitrary input is stored exactly or refused whole."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgecolbert import ColBERT, maxsim
from edgecolbert.errors import InvalidDocumentError, InvalidInputError, InvalidTypeError
from edgecolbert.store import FIRST_STAGES
from edgecolbert.store.stages import MUVERA_STAGES
from store_fixtures import open_store
from text_strategies import QUERY, TEXT

DENSE_SIZE = 4
PROPERTY = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module", params=["edge", "qdrant"])
def store(request: pytest.FixtureRequest, model: ColBERT, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    opened = open_store(request.param, tmp_path_factory.mktemp(request.param), model, dense_size=DENSE_SIZE)
    yield opened
    opened.close()


def unique_ids(n: int) -> list[str]:
    return [f"p-{uuid.uuid4().hex[:12]}" for _ in range(n)]


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"k": value}
    return value


def dense(n: int) -> list[list[float]]:
    return [[1.0, float(i), 0.5, -1.0] for i in range(n)]


@PROPERTY
@given(texts=st.lists(TEXT, min_size=1, max_size=6))
def test_any_text_round_trips_exactly(store: Any, texts: list[str]) -> None:
    ids = unique_ids(len(texts))
    assert store.add(texts, ids=ids, dense_vectors=dense(len(texts))) == ids
    assert [(hit.id, hit.text) for hit in store.get(ids)] == list(zip(ids, texts))
    # Adding the same documents again writes nothing new.
    before = store.count()
    store.add(texts, ids=ids, dense_vectors=dense(len(texts)))
    assert store.count() == before


@pytest.mark.slow
@PROPERTY
@given(query=QUERY, texts=st.lists(TEXT, min_size=1, max_size=6))
def test_rerank_of_stored_documents_matches_numpy(store: Any, model: ColBERT, query: str, texts: list[str]) -> None:
    ids = unique_ids(len(texts))
    store.add(texts, ids=ids, dense_vectors=dense(len(texts)))
    hits = store.rerank(query, ids)
    assert sorted(hit.id for hit in hits) == sorted(ids)
    expected = dict(zip(ids, maxsim(model.encode_query(query), model.encode_documents(texts))))
    # A QdrantStore stores float16 by default, so scores agree to float16 precision, and the order is by score.
    for hit in hits:
        assert hit.score == pytest.approx(float(expected[hit.id]), rel=2e-3, abs=2e-2)
    scores = [hit.score for hit in hits]
    assert scores == sorted(scores, reverse=True)


# The stores here are made without the MUVERA vector, which those stages need (tests/test_muvera_store.py).
STAGES_WITHOUT_MUVERA = [stage for stage in FIRST_STAGES if stage not in MUVERA_STAGES]


@PROPERTY
@given(query=QUERY, k=st.integers(1, 8), first_stage=st.sampled_from(STAGES_WITHOUT_MUVERA))
def test_search_returns_at_most_k_stored_hits_best_first(store: Any, query: str, k: int, first_stage: str) -> None:
    stored = store.add(["seed document about rivers", "another about comets"], ids=["seed-1", "seed-2"])
    hits = store.search(query, top_k=k, first_stage=first_stage, dense_vector=[1.0, 0.0, 0.0, 0.0])
    assert len(hits) <= k
    assert {hit.id for hit in hits} <= {hit.id for hit in store.get([hit.id for hit in hits])} | set(stored)
    scores = [hit.score for hit in hits]
    assert all(np.isfinite(scores)) and scores == sorted(scores, reverse=True)


@PROPERTY
@given(
    position=st.integers(0, 3),
    column=st.integers(0, DENSE_SIZE - 1),
    bad=st.sampled_from([float("nan"), float("inf"), float("-inf"), "x", None]),
)
def test_a_bad_dense_vector_is_refused_and_nothing_is_written(
    store: Any, position: int, column: int, bad: object
) -> None:
    vectors: list[Any] = dense(4)
    if bad is None:
        vectors[position] = None
    else:
        vectors[position][column] = bad
    before = store.count()
    ids = unique_ids(4)
    with pytest.raises(InvalidInputError):
        store.add(["a", "b", "c", "d"], ids=ids, dense_vectors=vectors)
    assert store.count() == before and store.get(ids) == []
    with pytest.raises(InvalidInputError):
        store.search("query", first_stage="dense", dense_vector=vectors[position])


@PROPERTY
@given(size=st.integers(0, 12).filter(lambda n: n != DENSE_SIZE))
def test_a_dense_vector_of_the_wrong_size_is_refused(store: Any, size: int) -> None:
    ids = unique_ids(1)
    with pytest.raises(InvalidInputError, match=f"have {DENSE_SIZE} values"):
        store.add(["text"], ids=ids, dense_vectors=[[0.5] * size])
    assert store.get(ids) == []
    with pytest.raises(InvalidInputError, match=f"have {DENSE_SIZE} values"):
        store.search("query", first_stage="dense", dense_vector=[0.5] * size)


@PROPERTY
@given(texts=st.lists(TEXT, min_size=2, max_size=5, unique=True))
def test_duplicate_ids_in_one_batch(store: Any, texts: list[str]) -> None:
    same = unique_ids(1) * 2
    assert store.add([texts[0], texts[0]], ids=same) == same
    assert [hit.text for hit in store.get(same)] == [texts[0]]
    clash = unique_ids(1) * len(texts)
    before = store.count()
    with pytest.raises(InvalidInputError, match="appears twice"):
        store.add(texts, ids=clash)
    assert store.count() == before


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda s: s.add(["fine", "bad \ud800 text"], ids=unique_ids(2)), "lone surrogate"),
        (lambda s: s.add(["fine"], ids=["id-\udcff"]), "lone surrogate"),
        (lambda s: s.search("query \udc80"), "lone surrogate"),
        (lambda s: s.rerank("query \udc80", ["x"]), "lone surrogate"),
        (lambda s: s.rerank("query", ["\ud800"]), "lone surrogate"),
        (lambda s: s.add(["fine"], metadatas=[{"k": "\ud800"}]), "not plain JSON"),
        (lambda s: s.add(["fine"], metadatas=[{"k": float("nan")}]), "not plain JSON"),
        (lambda s: s.add(["fine"], metadatas=[{"k": [float("-inf")]}]), "not a finite number"),
        (lambda s: s.add(["fine"], metadatas=[nested(40)]), "nested more than 32 levels"),
        (lambda s: s.add(["fine"], metadatas=[{1: "int key"}]), "keys must be strings"),
        (lambda s: s.add(["fine"], metadatas=[{"k": 2**64}]), "outside 64 bits"),
        (lambda s: s.add(["fine"], metadatas=[{"k": {1, 2}}]), "is a set, not a JSON value"),
        (lambda s: s.add(["fine"], metadatas=[{"k": np.float32(1.0)}]), "not a JSON value"),
        (lambda s: s.add(["fine"], metadatas=[{"k": "x" * (17 * 2**20)}]), "over the 16777216-byte limit"),
        (lambda s: s.add_documents([{"text": "fine", "metadata": nested(200)}]), "nested more than 32 levels"),
        (lambda s: s.search("   "), "empty"),
        (lambda s: s.search("q", top_k=0), "k must be"),
        (lambda s: s.add(["a"], ids=[""]), "empty"),
        (lambda s: s.add(["a", "b"], ids=["1"]), "1 entries for 2 texts"),
    ],
)
def test_bad_values_raise_invalid_input_and_write_nothing(store: Any, call: Any, error: str) -> None:
    before = store.count()
    with pytest.raises(InvalidInputError, match=error):
        call(store)
    assert store.count() == before


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.add([b"bytes"]),
        lambda s: s.add("a single string"),
        lambda s: s.add([None]),
        lambda s: s.add([1.5]),
        lambda s: s.add(["a"], ids=[1.5]),
        lambda s: s.get("one-id"),
        lambda s: s.search(None),
        lambda s: s.search(42),
        lambda s: s.add(["a"], metadatas=[["not", "a", "mapping"]]),
        lambda s: s.add_documents([42]),
    ],
)
def test_wrong_types_raise_invalid_type_and_write_nothing(store: Any, call: Any) -> None:
    before = store.count()
    with pytest.raises(InvalidTypeError):
        call(store)
    assert store.count() == before


def test_a_100k_character_document_is_stored_whole_and_found(store: Any) -> None:
    text = " ".join(f"glacier{i % 97}" for i in range(12_000))[:100_000]
    assert len(text) == 100_000
    store.add([text], ids=["long-one"])
    [hit] = store.get(["long-one"])
    assert hit.text == text
    assert "long-one" in [h.id for h in store.search("glacier5 glacier7", top_k=50)]


def test_non_string_text_is_invalid_document(store: Any) -> None:
    with pytest.raises(InvalidDocumentError, match="position 1"):
        store.add(["fine", 3])


def test_store_path_with_unicode(model: ColBERT, tmp_path: Path) -> None:
    from edgecolbert.store import EdgeStore

    with EdgeStore(tmp_path / "דוגמה 🙂 store", model) as opened:
        opened.add(["text"], ids=["a"])
    with EdgeStore(tmp_path / "דוגמה 🙂 store") as reopened:
        assert [hit.text for hit in reopened.get(["a"])] == ["text"]
