"""Property-based tests of the live service against its own OpenAPI schema (schemathesis).

Generated requests, valid and invalid, must never get a 5xx, and every answer must match the
schema: documented status code, content type, headers and body. Values the schema's generator
never produces (NaN, huge integers, odd keys) are generated and sent separately, below.
"""

from __future__ import annotations

import http.client
import json
import math
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
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


# ---- unusual values inside otherwise valid bodies ----------------------------------------------------
# What a JSON parser accepts but the schema's generator never produces: NaN and infinities (Python's
# json reads the literals), integers past 64 bits, lone surrogates, odd keys and deep nesting.

_ODD_SCALARS = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, 2**64, -(2**63) - 1, 10**30, "\ud800", "", "$", "a\x00b"]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.text(max_size=5),
    st.booleans(),
    st.none(),
)
_ODD_KEYS = st.one_of(
    st.sampled_from(["", " ", "$x", "a..b", "a.", "\ud800", "a b", "in", "gte", "a[]"]), st.text(max_size=4)
)
_ODD_VALUES = st.recursive(
    _ODD_SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_ODD_KEYS, inner, max_size=3)),
    max_leaves=8,
)


def _odd_bodies() -> st.SearchStrategy[tuple[str, str, dict[str, Any]]]:
    odd_dict = st.dictionaries(_ODD_KEYS, _ODD_VALUES, max_size=3)
    return st.one_of(
        st.builds(lambda f: ("POST", "/v1/search", {"query": "comets", "filter": f}), odd_dict),
        st.builds(
            lambda v: ("POST", "/v1/search", {"query": "comets", "first_stage": "dense", "dense_vector": v}),
            st.lists(_ODD_SCALARS, max_size=3),
        ),
        st.builds(
            lambda m, i: ("POST", "/v1/documents", {"documents": [{"text": "comets", "id": i, "metadata": m}]}),
            odd_dict,
            _ODD_SCALARS,
        ),
        st.builds(lambda i: ("DELETE", "/v1/documents", {"ids": [i]}), _ODD_VALUES),
        st.builds(
            lambda n, d: ("POST", "/v1/rerank", {"query": "comets", "documents": ["a", d], "top_n": n}),
            _ODD_SCALARS,
            st.one_of(_ODD_SCALARS, st.builds(lambda x: {"text": "b", "extra": x}, _ODD_VALUES)),
        ),
        st.builds(lambda k: ("POST", "/v1/search", {"query": "comets", "top_k": k}), _ODD_SCALARS),
    )


def _send(connection: http.client.HTTPConnection, method: str, path: str, body: Any) -> tuple[int, Any]:
    # allow_nan: send the NaN / Infinity literals a hostile client would.
    payload = json.dumps(body, allow_nan=True, ensure_ascii=True)
    connection.request(method, path, body=payload, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    return response.status, json.loads(response.read() or b"null")


def _assert_refused_or_served(status: int, answer: Any, body: Any) -> None:
    assert status < 500, (status, answer, body)
    if status >= 400:
        assert answer["detail"], (status, answer, body)


@pytest.fixture
def connection(service_url: str) -> Iterator[http.client.HTTPConnection]:
    parts = urlsplit(service_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    yield connection
    connection.close()


def test_unusual_values_inside_valid_bodies_get_a_4xx_and_keep_the_connection(
    connection: http.client.HTTPConnection,
) -> None:
    @given(request=_odd_bodies())
    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(request: tuple[str, str, dict[str, Any]]) -> None:
        method, path, body = request
        _assert_refused_or_served(*_send(connection, method, path, body), body)

    check()
    assert connection.sock is not None, "the service closed the keep-alive connection"


HAND_WRITTEN = [
    ("POST", "/v1/search", {"query": "q", "filter": {"$weird": 1}}),
    ("POST", "/v1/search", {"query": "q", "filter": {"a b": 1}}),
    ("POST", "/v1/search", {"query": "q", "filter": {"year": {"gte": math.nan}}}),
    ("POST", "/v1/search", {"query": "q", "filter": {"year": {"gte": math.inf, "lt": -math.inf}}}),
    ("POST", "/v1/search", {"query": "q", "filter": {"year": {"in": [math.nan, [1], {"x": {}}]}}}),
    ("POST", "/v1/search", {"query": "q", "filter": {"year": [[{}]]}}),
    ("POST", "/v1/search", {"query": "q", "filter": {"year": 2**100}}),
    ("POST", "/v1/search", {"query": "q", "filter": {"year": {"gte": 2**2000}}}),
    ("POST", "/v1/search", {"query": "q", "filter": {"\ud800": "x"}}),
    ("POST", "/v1/search", {"query": "q", "dense_vector": [math.nan], "first_stage": "dense"}),
    ("POST", "/v1/search", {"query": "q", "dense_vector": [1e308, -math.inf], "first_stage": "hybrid"}),
    ("POST", "/v1/documents", {"documents": [{"text": "t", "metadata": {"a": math.nan}}]}),
    ("POST", "/v1/documents", {"documents": [{"text": "t", "metadata": {"a": {"b": [1, {"c": math.inf}]}}}]}),
    ("POST", "/v1/documents", {"documents": [{"text": "t", "metadata": {"a": 2**64}}]}),
    ("POST", "/v1/documents", {"documents": [{"text": "t", "metadata": {"a": "\ud800"}}]}),
    (
        "POST",
        "/v1/documents",
        {
            "documents": [
                {
                    "text": "t",
                    "metadata": {"a": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]},
                }
            ]
        },
    ),
    ("POST", "/v1/documents", {"documents": [{"text": "t", "id": 2**64}]}),
    ("POST", "/v1/documents", {"documents": [{"text": "t", "id": "\udfff"}]}),
    ("DELETE", "/v1/documents", {"ids": [2**70, math.nan]}),
    ("POST", "/v1/rerank", {"query": "q", "documents": ["a"], "max_tokens_per_doc": math.inf}),
    ("POST", "/rerank", {"query": "q", "texts": ["a"], "truncate": math.nan}),
]


@pytest.mark.parametrize(("method", "path", "body"), HAND_WRITTEN)
def test_hand_written_odd_values_are_4xx_and_the_next_request_on_the_connection_succeeds(
    connection: http.client.HTTPConnection, method: str, path: str, body: dict[str, Any]
) -> None:
    status, answer = _send(connection, method, path, body)
    assert 400 <= status < 500 and answer["detail"], (status, answer)
    socket_before = connection.sock
    status, answer = _send(connection, "POST", "/v1/rerank", {"query": "comets", "documents": ["violins and comets"]})
    assert status == 200, answer
    assert connection.sock is socket_before, "the bad request cost the client its keep-alive connection"


def test_odd_values_in_fields_accepted_for_compatibility_are_ignored(connection: http.client.HTTPConnection) -> None:
    # Extra document fields are ignored (Jina / Cohere clients send them); a top_n above the count keeps all.
    body = {"query": "comets", "documents": [{"text": "violins and comets", "x": math.nan}], "top_n": 2**70}
    status, answer = _send(connection, "POST", "/v1/rerank", body)
    assert status == 200, answer
    assert [result["index"] for result in answer["results"]] == [0]
