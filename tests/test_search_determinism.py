"""Identical searches on an unchanged store give identical hits, on both engines and every first stage.

The corpus repeats each text under several ids, so BM25, dense, RRF and MaxSim scores all tie in runs
that every limit here cuts through: any cut that leaves ties to the engine shows up as a second answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from checkpoints import requires_minilm
from edgecolbert import ColBERT
from edgecolbert.store.schema import point_id
from store_fixtures import HashEmbedder, open_store

pytestmark = requires_minilm  # the tiny Stanford checkpoint borrows MiniLM's WordPiece tokenizer

QUERY = "rivers and comets seen from the mountains"
TOPICS = ["rivers", "comets", "mountains", "violins", "rivers and comets", "cats"]
COPIES = 5
FIRST_STAGES = ["bm25", "dense", "hybrid"]
REPEATS = 12
THREADS = 4


def tied_corpus() -> tuple[list[str], list[str]]:
    """Each text ``COPIES`` times under unrelated ids, interleaved so insertion order is not id order."""
    texts, ids = [], []
    for copy in range(COPIES):
        for number, topic in enumerate(TOPICS):
            texts.append(f"a note about {topic}")
            ids.append(f"tie-{(number * 37 + copy * 11) % 97}-{copy}")
    return texts, ids


@pytest.fixture(scope="module", params=["edge", "qdrant"])
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, model: ColBERT) -> Iterator[Any]:
    if request.param == "qdrant":
        pytest.importorskip("qdrant_client")
    texts, ids = tied_corpus()
    with open_store(request.param, tmp_path_factory.mktemp("store"), model, dense=HashEmbedder()) as opened:
        # Several writes leave several segments, whose results the engine merges.
        for start in range(0, len(texts), 7):
            opened.add(texts[start : start + 7], ids[start : start + 7])
        yield opened


def _answer(hits: list[Any]) -> tuple[tuple[str, float], ...]:
    return tuple((hit.id, hit.score) for hit in hits)


def _calls(call: Any) -> set[tuple[tuple[str, float], ...]]:
    answers = {_answer(call()) for _ in range(REPEATS)}
    with ThreadPoolExecutor(THREADS) as pool:
        answers |= set(pool.map(lambda _: _answer(call()), range(THREADS * REPEATS)))
    return answers


def _tie_order(hit: Any) -> tuple[float, int, int, str]:
    """The documented rule: best score first, equal scores by point id (integers, then UUIDs, ascending)."""
    pid = point_id(hit.id)
    return (-hit.score, 0, pid, "") if isinstance(pid, int) else (-hit.score, 1, 0, str(pid))


@pytest.mark.parametrize("first_stage", FIRST_STAGES)
def test_repeated_searches_give_one_answer(store: Any, first_stage: str) -> None:
    answers = _calls(lambda: store.search(QUERY, top_k=7, prefetch_k=9, first_stage=first_stage))
    assert len(answers) == 1, answers
    (hits,) = answers
    assert len(hits) == 7


@pytest.mark.parametrize("first_stage", FIRST_STAGES)
def test_repeated_first_stages_give_one_answer(store: Any, first_stage: str) -> None:
    answers = _calls(lambda: store.search_first_stage(QUERY, top_k=8, first_stage=first_stage))
    assert len(answers) == 1, answers


def test_repeated_reranks_give_one_answer(store: Any) -> None:
    _, ids = tied_corpus()
    answers = _calls(lambda: store.rerank(QUERY, ids[::-1], top_k=8))
    assert len(answers) == 1, answers


@pytest.mark.parametrize("first_stage", FIRST_STAGES)
def test_every_cut_keeps_ties_in_point_id_order(store: Any, first_stage: str) -> None:
    everything = store.search_first_stage(QUERY, top_k=len(tied_corpus()[1]), first_stage=first_stage)
    assert [hit.id for hit in everything] == [hit.id for hit in sorted(everything, key=_tie_order)]
    if first_stage != "hybrid":  # fused scores depend on each stage's cut, so only the full ranking compares
        for k in (1, 3, 4, 8, 13):
            assert store.search_first_stage(QUERY, top_k=k, first_stage=first_stage) == everything[:k]
    for prefetch_k in (3, 4, 8, 13):
        candidates = store.search_first_stage(QUERY, top_k=prefetch_k, first_stage=first_stage)
        ids = [hit.id for hit in candidates]
        reranked = store.rerank(QUERY, ids)
        assert [hit.id for hit in reranked] == [hit.id for hit in sorted(reranked, key=_tie_order)]
        for k in (1, 2, prefetch_k):
            hits = store.search(QUERY, top_k=k, prefetch_k=prefetch_k, first_stage=first_stage)
            assert hits == reranked[:k]


def test_both_engines_share_the_rule(tmp_path: Path, model: ColBERT) -> None:
    pytest.importorskip("qdrant_client")
    texts, ids = tied_corpus()
    answers = []
    for engine in ("edge", "qdrant"):
        with open_store(engine, tmp_path / engine, model, dense=HashEmbedder(), datatype="float32") as opened:
            opened.add(texts, ids)
            answers.append(
                [
                    [hit.id for hit in opened.search(QUERY, top_k=7, prefetch_k=9, first_stage=first_stage)]
                    for first_stage in FIRST_STAGES
                ]
            )
    assert answers[0] == answers[1]
