"""The MUVERA first stage in both stores: the vector, its recorded settings, searches and backfills.

How well encodings rank like MaxSim is tested on the encodings themselves in test_muvera.py.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgecolbert import ColBERT
from edgecolbert.errors import InvalidInputError, InvalidTypeError, ModelMismatchError, StoreError
from edgecolbert.scoring.muvera import FdeParams, document_fde, query_fde
from edgecolbert.store import EdgeStore, QdrantStore
from edgecolbert.store.edge import SCHEMA_FILE
from edgecolbert.store.engine import StoredPoint
from edgecolbert.store.ranking import RRF_K, rank_key
from edgecolbert.store.schema import COLBERT, MUVERA, point_id
from edgecolbert.store.stages import HYBRID_MUVERA_SHARE
from store_fixtures import corpus, open_store

ENGINES = ["edge", "qdrant"]
SMALL = FdeParams(repetitions=4, simhash_bits=2, projection_dim=8, seed=3)
QUERIES = ["a short text about rivers", "violins and comets seen in year 7", "mountains"]


def _reopen(engine: str, store: Any, model: ColBERT, **options: Any) -> Any:
    """The same store opened again (the in-memory Qdrant lives as long as its client)."""
    if engine == "edge":
        store.close()
        return EdgeStore(store.path, model, **options)
    return QdrantStore("docs", model, client=store.client, **options)


def _filled(engine: str, tmp_path: Path, model: ColBERT, **options: Any) -> Any:
    texts, ids, metadatas = corpus()
    store = open_store(engine, tmp_path, model, **options)
    store.add(texts, ids, metadatas)
    return store


def _muvera_vectors(store: Any) -> dict[Any, np.ndarray]:
    ids = [point_id(doc_id) for doc_id in corpus()[1]]
    return {pid: np.asarray(vector, dtype=np.float32) for pid, vector in store.engine.vectors(ids, MUVERA).items()}


def _assert_same_vectors(got: dict[Any, np.ndarray], expected: dict[Any, np.ndarray]) -> None:
    assert got.keys() == expected.keys() and len(got) == len(corpus()[1])
    for pid, vector in expected.items():
        np.testing.assert_array_equal(got[pid], vector)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("datatype", ["float16", "float32"])
def test_a_store_made_with_muvera_encodes_its_stored_vectors(
    engine: str, datatype: str, tmp_path: Path, model: ColBERT
) -> None:
    store = _filled(engine, tmp_path, model, muvera=SMALL, datatype=datatype)
    assert store.schema.muvera == SMALL.to_dict() and store.schema.muvera_complete
    stored = store.engine.vectors([point_id(doc_id) for doc_id in corpus()[1]], COLBERT)
    # Encodings come from the values as stored: a float16 store keeps rounded ones (Qdrant's local mode
    # returns them unrounded, so they are rounded here as the store rounds them).
    expected = document_fde([np.asarray(stored[pid], dtype=datatype) for pid in stored], SMALL)
    got = _muvera_vectors(store)
    assert expected.shape[1] == SMALL.fde_dim(store.schema.vector_size)
    for row, pid in enumerate(stored):
        np.testing.assert_array_equal(got[pid], expected[row])
    store.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_stores_with_and_without_the_vector_coexist(engine: str, tmp_path: Path, model: ColBERT) -> None:
    with_vector = _filled(engine, tmp_path / "with", model, muvera=True)
    without = _filled(engine, tmp_path / "without", model)
    assert with_vector.schema.muvera == FdeParams().to_dict() and without.schema.muvera is None
    for first_stage in ("muvera", "hybrid-muvera"):
        assert len(with_vector.search(QUERIES[0], top_k=5, prefetch_k=10, first_stage=first_stage)) == 5
        with pytest.raises(InvalidInputError, match=r"has no muvera vector.*store\.add_muvera\(\)"):
            without.search(QUERIES[0], first_stage=first_stage)
        with pytest.raises(InvalidInputError, match="edgecolbert backfill-muvera"):
            without.search_first_stage(QUERIES[0], first_stage=first_stage)
    bm25 = [[hit.id for hit in s.search(QUERIES[1], top_k=5, prefetch_k=10)] for s in (with_vector, without)]
    assert bm25[0] == bm25[1]
    with_vector.close()
    without.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_settings_are_enforced_on_reopen(engine: str, tmp_path: Path, model: ColBERT) -> None:
    store = _filled(engine, tmp_path, model, muvera=SMALL)
    other = FdeParams(repetitions=4, simhash_bits=2, projection_dim=8, seed=4)
    with pytest.raises(ModelMismatchError, match=r"encodes its muvera vectors with FdeParams\(.*seed=3\)"):
        _reopen(engine, store, model, muvera=other)
    for same in (SMALL, True, False, None):
        reopened = _reopen(engine, store, model, muvera=same)
        assert reopened.schema.muvera == SMALL.to_dict()
        store = reopened
    with pytest.raises(ModelMismatchError, match="muvera"):
        store.add_muvera(other)
    store.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_a_store_without_the_vector_is_not_reopened_as_having_it(engine: str, tmp_path: Path, model: ColBERT) -> None:
    store = _filled(engine, tmp_path, model)
    with pytest.raises(StoreError, match=r"has no muvera vector; add it .*store\.add_muvera\(\)"):
        _reopen(engine, store, model, muvera=True)
    with pytest.raises(InvalidTypeError, match="muvera is True, False or an FdeParams"):
        _reopen(engine, store, model, muvera="yes")
    store.close()


def test_stores_recorded_before_the_field_open_and_search(tmp_path: Path, model: ColBERT) -> None:
    _filled("edge", tmp_path, model).close()
    record_file = tmp_path / "store" / SCHEMA_FILE
    record = json.loads(record_file.read_text())
    del record["muvera"], record["muvera_complete"]
    record_file.write_text(json.dumps(record))
    with EdgeStore(tmp_path / "store", model) as store:
        assert store.schema.muvera is None
        assert len(store.search(QUERIES[0], top_k=3)) == 3
        assert store.add_muvera() == len(corpus()[1])
        assert len(store.search(QUERIES[0], top_k=3, first_stage="muvera")) == 3


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("first_stage", ["muvera", "hybrid-muvera"])
def test_search_orders_its_first_stage_candidates_by_maxsim(
    engine: str, first_stage: str, tmp_path: Path, model: ColBERT
) -> None:
    store = _filled(engine, tmp_path, model, muvera=SMALL)
    for query in QUERIES:
        candidates = [hit.id for hit in store.search_first_stage(query, top_k=12, first_stage=first_stage)]
        hits = store.search(query, top_k=12, prefetch_k=12, first_stage=first_stage)
        assert len(candidates) == 12
        assert [(hit.id, hit.score) for hit in hits] == [(hit.id, hit.score) for hit in store.rerank(query, candidates)]
        again = store.search(query, top_k=12, prefetch_k=12, first_stage=first_stage)
        assert [(hit.id, hit.score) for hit in again] == [(hit.id, hit.score) for hit in hits]
    store.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_muvera_stage_ranks_by_the_encodings_inner_product(engine: str, tmp_path: Path, model: ColBERT) -> None:
    store = _filled(engine, tmp_path, model, muvera=SMALL)
    encodings = _muvera_vectors(store)
    query = QUERIES[1]
    encoded = query_fde(store._storage_vectors(model.encode_query(query)), SMALL)
    scored = [StoredPoint(pid, {}, float(vector @ encoded)) for pid, vector in encodings.items()]
    expected = [point.point_id for point in sorted(scored, key=rank_key)[:10]]
    got = [point_id(hit.id) for hit in store.search_first_stage(query, top_k=10, first_stage="muvera")]
    assert got == expected
    store.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_hybrid_muvera_fuses_bm25_and_muvera_like_hybrid(engine: str, tmp_path: Path, model: ColBERT) -> None:
    # BM25's branch ranks as many as are kept; MUVERA's only its share of them (4 of 15).
    store = _filled(engine, tmp_path, model, muvera=SMALL)
    depths = {"bm25": 15, "muvera": math.ceil(15 * HYBRID_MUVERA_SHARE)}
    for query in QUERIES:
        fused: dict[Any, float] = {}
        for stage, depth in depths.items():
            for rank, hit in enumerate(store.search_first_stage(query, top_k=depth, first_stage=stage)):
                fused[point_id(hit.id)] = fused.get(point_id(hit.id), 0.0) + 1.0 / (RRF_K + rank)
        expected = sorted((StoredPoint(pid, {}, score) for pid, score in fused.items()), key=rank_key)[:15]
        got = store.search_first_stage(query, top_k=15, first_stage="hybrid-muvera")
        assert [(point_id(hit.id), hit.score) for hit in got] == [(p.point_id, p.score) for p in expected]
    store.close()


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("datatype", "pool_factor"), [("float16", 1), ("float32", 1), ("float16", 2)])
def test_backfill_equals_indexing_time_vectors(
    engine: str, datatype: str, pool_factor: int, tmp_path: Path, model: ColBERT
) -> None:
    encoder = model.with_pool_factor(pool_factor)
    indexed = _filled(engine, tmp_path / "indexed", encoder, datatype=datatype, muvera=SMALL)
    later = _filled(engine, tmp_path / "later", encoder, datatype=datatype)
    batches: list[list[Any]] = []
    assert later.add_muvera(SMALL, batch_size=16, on_batch=batches.append) == len(corpus()[1])
    assert [len(batch) for batch in batches] == [16, 16, 16, 12]
    assert later.schema.muvera == SMALL.to_dict() and later.schema.muvera_complete
    _assert_same_vectors(_muvera_vectors(later), _muvera_vectors(indexed))
    assert later.add_muvera() == 0
    for query in QUERIES:
        for first_stage in ("muvera", "hybrid-muvera"):
            assert later.search(query, top_k=5, first_stage=first_stage) == indexed.search(
                query, top_k=5, first_stage=first_stage
            )
    reopened = _reopen(engine, later, encoder)
    assert reopened.schema.muvera == SMALL.to_dict() and reopened.schema.muvera_complete
    reopened.add(["a new note about comets"], ["late"])
    assert point_id("late") in reopened.engine.vectors([point_id("late")], MUVERA)
    reopened.close()
    indexed.close()


class _Interrupted(Exception):
    pass


@pytest.mark.parametrize("engine", ENGINES)
def test_an_interrupted_backfill_is_refused_by_search_and_resumed(engine: str, tmp_path: Path, model: ColBERT) -> None:
    store = _filled(engine, tmp_path, model)

    def stop_after_two(batch: list[Any]) -> None:
        stop_after_two.seen += 1  # type: ignore[attr-defined]
        if stop_after_two.seen == 2:  # type: ignore[attr-defined]
            raise _Interrupted

    stop_after_two.seen = 0  # type: ignore[attr-defined]
    with pytest.raises(_Interrupted):
        store.add_muvera(SMALL, batch_size=8, on_batch=stop_after_two)
    store = _reopen(engine, store, model)
    assert store.schema.muvera == SMALL.to_dict() and not store.schema.muvera_complete
    with pytest.raises(InvalidInputError, match=r"only some documents .*run store\.add_muvera\(\) .*again"):
        store.search(QUERIES[0], first_stage="muvera")
    with pytest.raises(ModelMismatchError):
        store.add_muvera(FdeParams())
    assert store.add_muvera() == len(corpus()[1]) - 16
    assert len(store.search(QUERIES[0], top_k=3, first_stage="muvera")) == 3
    store.close()


_BACKFILL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from edgecolbert.store import EdgeStore

    store = EdgeStore(sys.argv[1])
    batches = []

    def report(batch):
        batches.append(batch)
        print(len(batches), flush=True)
        if len(batches) == 3:
            time.sleep(600)  # the test kills the process here, two batches short of done

    store.add_muvera(batch_size=int(sys.argv[2]), on_batch=report)
    """
)


@pytest.mark.slow
def test_backfill_resumes_after_kill_9(tmp_path: Path, model: ColBERT) -> None:
    _filled("edge", tmp_path, model).close()
    shutil.copytree(tmp_path / "store", tmp_path / "clean")
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen(
        [sys.executable, "-c", _BACKFILL_SCRIPT, str(tmp_path / "store"), "12"],
        stdout=subprocess.PIPE,
        text=True,
        env=environment,
    )
    try:
        assert child.stdout is not None
        lines = [child.stdout.readline().strip() for _ in range(3)]
        assert lines == ["1", "2", "3"]
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL
    with EdgeStore(tmp_path / "store", model) as resumed:
        assert not resumed.schema.muvera_complete
        assert resumed.add_muvera() == len(corpus()[1]) - 36
        assert resumed.schema.muvera_complete
        got = _muvera_vectors(resumed)
    with EdgeStore(tmp_path / "clean", model) as clean:
        assert clean.add_muvera() == len(corpus()[1])
        _assert_same_vectors(got, _muvera_vectors(clean))
