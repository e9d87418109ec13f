"""How an EdgeStore keeps its token vectors: float32 and memory-mapped for new stores, as recorded for existing ones."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from checkpoints import requires_minilm
from edgecolbert import ColBERT, InvalidInputError
from edgecolbert.store import EdgeStore, StoreError
from edgecolbert.store.edge import SCHEMA_FILE, SHARD_CONFIG_FILE, SHARD_DIR
from store_fixtures import corpus

pytestmark = requires_minilm  # the tiny Stanford checkpoint borrows MiniLM's WordPiece tokenizer

QUERIES = ["cats in the year 12", "rivers and mountains", "violins", "comets and dogs seen in year 40"]
# float16 keeps 11 significant bits: each stored value moves by at most 2**-11 of itself, so a unit-norm
# document vector by at most 2**-11 in norm, and each query vector's max similarity by at most its norm times that.
FLOAT16_STEP = 2.0**-11


def _filled(folder: Path, model: ColBERT, **options: Any) -> EdgeStore:
    store = EdgeStore(folder, model, **options)
    texts, ids, metadatas = corpus()
    store.add(texts, ids=ids, metadatas=metadatas)
    return store


def _stored_layout(folder: Path) -> dict[str, Any]:
    config = json.loads((folder / SHARD_DIR / SHARD_CONFIG_FILE).read_text(encoding="utf-8"))
    return config["vectors"]["colbert"]


def _rounding_bound(model: ColBERT, query: str) -> float:
    norms = np.linalg.norm(model.encode_query(query), axis=1)
    return float(norms.sum()) * FLOAT16_STEP


def test_new_stores_keep_float32_vectors(tmp_path: Path, model: ColBERT) -> None:
    _filled(tmp_path / "store", model).close()
    with EdgeStore(tmp_path / "store") as reopened:
        assert reopened.schema.datatype == "float32"
        assert reopened.search("violins", top_k=3)
    assert _stored_layout(tmp_path / "store")["datatype"] == "float32"


def test_new_stores_map_their_vectors_from_disk_and_old_ones_keep_reading_them_in(
    tmp_path: Path, model: ColBERT
) -> None:
    _filled(tmp_path / "mapped", model).close()
    _filled(tmp_path / "in-memory", model, on_disk=False).close()
    assert _stored_layout(tmp_path / "mapped")["on_disk"] is True
    assert _stored_layout(tmp_path / "in-memory")["on_disk"] is False
    mapped = EdgeStore(tmp_path / "mapped")
    in_memory = EdgeStore(tmp_path / "in-memory")  # the default does not move an existing store's vectors
    try:
        for query in QUERIES:
            assert [hit.to_dict() for hit in mapped.search(query, top_k=10)] == [
                hit.to_dict() for hit in in_memory.search(query, top_k=10)
            ]
    finally:
        mapped.close()
        in_memory.close()
    assert _stored_layout(tmp_path / "in-memory")["on_disk"] is False


@pytest.mark.parametrize(
    "options",
    [{}, {"vector_size": 24}, {"datatype": "float32", "vector_size": 64}, {"datatype": "float16", "vector_size": 24}],
    ids=["default", "float32-unpadded", "float32-64", "float16-unpadded"],
)
def test_every_layout_ranks_like_float16(tmp_path: Path, model: ColBERT, options: dict[str, Any]) -> None:
    reference = _filled(tmp_path / "float16", model, datatype="float16")
    store = _filled(tmp_path / "other", model, **options)
    _, ids, _ = corpus()
    for query in QUERIES:
        bound = _rounding_bound(model, query)
        expected = {hit.id: hit.score for hit in reference.rerank(query, ids)}
        got = {hit.id: hit.score for hit in store.rerank(query, ids)}
        assert got.keys() == expected.keys()
        np.testing.assert_allclose([got[i] for i in ids], [expected[i] for i in ids], rtol=0, atol=bound)
        _assert_same_order_up_to_rounding(list(got), expected, 2 * bound)
        top = [hit.id for hit in store.search(query, top_k=10)]
        _assert_same_order_up_to_rounding(top, expected, 2 * bound)
        reference_top = reference.search(query, top_k=10)
        cut = reference_top[-1].score
        assert len(top) == len(reference_top)
        assert all(expected[doc] >= cut - 2 * bound for doc in top), "a document far below the float16 top 10"
    reference.close()
    store.close()


def _assert_same_order_up_to_rounding(ranking: list[str], reference: dict[str, float], tolerance: float) -> None:
    """Every pair ranked against the reference's order is a pair the reference scores within ``tolerance``."""
    for position, earlier in enumerate(ranking):
        for later in ranking[position + 1 :]:
            assert reference[earlier] >= reference[later] - tolerance, f"{later} belongs well before {earlier}"


def test_a_store_reopens_with_the_layout_it_was_created_with(tmp_path: Path, model: ColBERT) -> None:
    folder = tmp_path / "store"
    old = _filled(folder, model, datatype="float16")  # what every store was created with before float32
    before = [hit.to_dict() for hit in old.search("rivers and mountains", top_k=10)]
    old.close()
    with EdgeStore(folder, model) as reopened:
        assert reopened.schema.datatype == "float16"
        assert [hit.to_dict() for hit in reopened.search("rivers and mountains", top_k=10)] == before
        reopened.add(["a new note about violins"], ids=["new"])
        assert reopened.count() == len(corpus()[0]) + 1
    assert _stored_layout(folder)["datatype"] == "float16"
    with pytest.raises(StoreError, match="created with datatype='float16'.*datatype='float32'"):
        EdgeStore(folder, model, datatype="float32")


def test_a_record_without_a_datatype_opens_as_float16(tmp_path: Path, model: ColBERT) -> None:
    """Records written before the datatype was recorded: those stores were all float16."""
    folder = tmp_path / "store"
    _filled(folder, model, datatype="float16").close()
    record = json.loads((folder / SCHEMA_FILE).read_text(encoding="utf-8"))
    del record["datatype"]
    (folder / SCHEMA_FILE).write_text(json.dumps(record), encoding="utf-8")
    with EdgeStore(folder, model) as reopened:
        assert reopened.schema.datatype == "float16"
        assert reopened.search("violins", top_k=3)


@pytest.mark.parametrize(
    ("created", "recorded", "message"),
    [
        (
            {},
            {"datatype": "float16"},
            "records token vectors as float16, 32 dimensions, but the shard .* stores them as float32, 32 dimensions",
        ),
        ({"datatype": "float16"}, {"vector_size": 64}, "as float16, 64 dimensions, but .* float16, 32 dimensions"),
        ({}, {"quantization": "int8"}, "as float32, 32 dimensions, int8-quantized, but .* float32, 32 dimensions:"),
    ],
    ids=["datatype", "vector_size", "quantization"],
)
def test_a_record_that_disagrees_with_its_shard_is_refused(
    tmp_path: Path, model: ColBERT, created: dict[str, Any], recorded: dict[str, Any], message: str
) -> None:
    folder = tmp_path / "store"
    _filled(folder, model, **created).close()
    original = (folder / SCHEMA_FILE).read_text(encoding="utf-8")
    (folder / SCHEMA_FILE).write_text(json.dumps({**json.loads(original), **recorded}), encoding="utf-8")
    with pytest.raises(StoreError, match=message):
        EdgeStore(folder, model)
    (folder / SCHEMA_FILE).write_text(original, encoding="utf-8")
    with EdgeStore(folder, model) as restored:  # nothing was lost by refusing
        assert restored.count() == len(corpus()[0])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"datatype": "bfloat16"}, "datatype is one of"),
        ({"datatype": "uint8"}, "datatype is one of"),
        ({"quantization": "int4"}, "quantization is None or one of"),
    ],
)
def test_unknown_layouts_are_refused(tmp_path: Path, model: ColBERT, options: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        EdgeStore(tmp_path / "store", model, **options)
    assert not (tmp_path / "store").exists(), "a refused option must not leave a folder behind"
