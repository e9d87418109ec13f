"""Property-based tests of the live service against its own OpenAPI schema (schemathesis).

Generated requests, valid and invalid, must never get a 5xx, and every answer must match the
schema: documented status code, content type, headers and body.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from edgecolbert import ColBERT, Reranker
from edgecolbert.serving.app import ServiceLimits, create_app, serve_in_background
from edgecolbert.store import EdgeStore

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Small limits so generated inputs reach the 413 answers as well as the successful ones.
LIMITS = ServiceLimits(max_documents=16, max_document_chars=300, max_query_chars=200, max_body_bytes=64_000)


@pytest.fixture(scope="module")
def service_url(model: ColBERT, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with EdgeStore(tmp_path_factory.mktemp("schema") / "store", model) as store:
        store.add(
            ["violins and comets", "rivers in spring"], ids=["a", "b"], metadatas=[{"year": 2020}, {"year": 2021}]
        )
        with serve_in_background(create_app(reranker=Reranker(model), store=store, limits=LIMITS)) as url:
            yield url


@pytest.fixture(scope="module")
def api(service_url: str) -> Any:
    return schemathesis.openapi.from_url(f"{service_url}/openapi.json")


OPERATIONS = [
    ("GET", "/health"),
    ("POST", "/v1/rerank"),
    ("POST", "/rerank"),
    ("POST", "/v1/search"),
    ("POST", "/v1/documents"),
    ("DELETE", "/v1/documents"),
]


def test_the_operations_below_are_all_the_schema_has(api: Any) -> None:
    listed = {(operation.ok().method.upper(), operation.ok().path) for operation in api.get_all_operations()}
    assert listed == set(OPERATIONS)


# One strategy per operation and mode, driven by hypothesis directly (schemathesis' fixture-based
# parametrisation does not run under this pytest version).
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_every_answer_conforms_and_none_is_a_server_error(api: Any, method: str, path: str, mode: Any) -> None:
    @given(case=api[path][method].as_strategy(generation_mode=mode))
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case: Any) -> None:
        case.call_and_validate(checks=CHECKS, timeout=60)

    check()
