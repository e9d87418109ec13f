"""langchain-tests' standard retriever suite, run against EdgeColbertRetriever and RerankRetriever.

langchain-tests ships no unit-test suite for retrievers (its unit suites cover chat models,
embeddings and tools), so the integration suite is the one that applies.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from edgecolbert import ColBERT, Reranker
from edgecolbert.store import EdgeStore
from store_fixtures import corpus

pytest.importorskip("langchain_core", reason="langchain-core is not installed (pip install -e '.[test]')")
pytest.importorskip("langchain_tests", reason="langchain-tests is not installed (pip install -e '.[test]')")
# The package in this checkout, whether or not (or from wherever) it was pip-installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_tests.integration_tests import RetrieversIntegrationTests

from langchain_edgecolbert import EdgeColbertRerank, EdgeColbertRetriever, RerankRetriever

# The suite's one async test carries no asyncio mark of its own (langchain-tests runs in auto mode, this
# project in strict mode): mark the module, and silence pytest-asyncio's note that the sync tests need no mark.
pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.filterwarnings(
        "ignore:The test <Function .* is marked with '@pytest.mark.asyncio':pytest.PytestWarning"
    ),
]


@pytest.fixture(scope="module")
def edge_store(tmp_path_factory: pytest.TempPathFactory, model: ColBERT) -> Iterator[EdgeStore]:
    texts, ids, metadatas = corpus(30)
    with EdgeStore(tmp_path_factory.mktemp("standard"), model) as store:
        store.add(texts, ids, metadatas)
        yield store


class TestEdgeColbertRetrieverStandard(RetrieversIntegrationTests):
    @pytest.fixture(autouse=True)
    def _store(self, edge_store: EdgeStore) -> None:
        self._edge_store = edge_store

    @property
    def retriever_constructor(self) -> type[EdgeColbertRetriever]:
        return EdgeColbertRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"store": self._edge_store, "k": 5, "prefetch_k": 20}

    @property
    def retriever_query_example(self) -> str:
        return "a short text about rivers and mountains"


class TestRerankRetrieverStandard(RetrieversIntegrationTests):
    """A first stage that is not ours (langchain-core's in-memory vector store) under the rerank."""

    @pytest.fixture(autouse=True)
    def _parts(self, model: ColBERT) -> None:
        texts, ids, metadatas = corpus(30)
        vector_store = InMemoryVectorStore(DeterministicFakeEmbedding(size=16))
        vector_store.add_texts(texts, metadatas=metadatas, ids=ids)
        self._base = vector_store.as_retriever(search_kwargs={"k": 10})
        self._reranker = EdgeColbertRerank(model=Reranker(model))

    @property
    def retriever_constructor(self) -> type[RerankRetriever]:
        return RerankRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"base_retriever": self._base, "reranker": self._reranker, "k": 4}

    @property
    def retriever_query_example(self) -> str:
        return "violins seen in year 3"
