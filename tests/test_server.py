"""The HTTP service on a real uvicorn server on loopback, driven with httpx."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from checkpoints import build_stanford_checkpoint
from edgecolbert import ColBERT, Reranker
from edgecolbert.cli import main
from edgecolbert.serving.app import ServiceLimits, ServiceSettings, create_app, serve_in_background
from edgecolbert.store import EdgeStore
from store_fixtures import corpus, served

LIMITS = ServiceLimits(
    max_documents=8, max_document_chars=400, max_query_chars=120, max_body_bytes=16_000, max_k=100, workers=2
)
KEY = "correct horse battery staple"
QUERY = "a short text about violins"
DOCUMENTS = [
    "note: dogs and rivers in spring",
    "violins and comets, a short text about violins",
    "mountains seen in year twelve",
    "cats sleeping near the violins",
]


@pytest.fixture(scope="module")
def direct(model: ColBERT) -> Reranker:
    """The library's own reranker: what every answer is compared with."""
    return Reranker(model, cache_size=0)


@pytest.fixture(scope="module")
def store_url(model: ColBERT, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A service with an embedded store and no API key."""
    with served(model, LIMITS, store_folder=tmp_path_factory.mktemp("served") / "store") as url:
        yield url


@pytest.fixture(scope="module")
def bare_url(model: ColBERT) -> Iterator[str]:
    """A service without a store, with an API key."""
    with served(model, LIMITS, api_key=KEY) as url:
        yield url


@pytest.fixture
def client(store_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=store_url, timeout=60) as http:
        yield http


def _scores(response: httpx.Response) -> dict[int, float]:
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    ordered = [result["relevance_score"] for result in results]
    assert ordered == sorted(ordered, reverse=True), "results must be best first"
    return {result["index"]: result["relevance_score"] for result in results}


# ---- rerank ------------------------------------------------------------------------------------------


def test_rerank_equals_the_library_reranker(client: httpx.Client, direct: Reranker) -> None:
    response = client.post("/v1/rerank", json={"query": QUERY, "documents": DOCUMENTS})
    expected = direct.rerank(QUERY, DOCUMENTS)
    assert _scores(response) == pytest.approx({r.index: r.score for r in expected}, abs=1e-4)
    results = response.json()["results"]
    assert [r["normalized_score"] for r in results] == pytest.approx([r.normalized_score for r in expected], abs=1e-5)
    assert all("document" not in r for r in results), "documents are returned only on request"
    body = response.json()
    assert body["model"] == Path(direct.model.name).name, "a local checkpoint is named by its folder, not its path"
    assert body["id"]


def test_top_n_keeps_the_best(client: httpx.Client, direct: Reranker) -> None:
    response = client.post("/v1/rerank", json={"query": QUERY, "documents": DOCUMENTS, "top_n": 2})
    expected = direct.rerank(QUERY, DOCUMENTS, top_k=2)
    assert list(_scores(response)) == [r.index for r in expected]


def test_return_documents_and_object_documents(client: httpx.Client, direct: Reranker) -> None:
    objects = [{"text": text, "title": f"t{i}"} for i, text in enumerate(DOCUMENTS)]
    response = client.post(
        "/v1/rerank", json={"query": QUERY, "documents": objects, "return_documents": True, "model": "rerank-v3.5"}
    )
    by_index = {r["index"]: r for r in response.json()["results"]}
    assert {i: r["document"] for i, r in by_index.items()} == {i: {"text": t} for i, t in enumerate(DOCUMENTS)}
    assert _scores(response) == pytest.approx({r.index: r.score for r in direct.rerank(QUERY, DOCUMENTS)}, abs=1e-4)


def test_cohere_v2_path_and_tei_shape(client: httpx.Client, direct: Reranker) -> None:
    expected = direct.rerank(QUERY, DOCUMENTS)
    v2 = client.post("/v2/rerank", json={"model": "any", "query": QUERY, "documents": DOCUMENTS, "top_n": 1})
    assert list(_scores(v2)) == [expected[0].index]
    tei = client.post("/rerank", json={"query": QUERY, "texts": DOCUMENTS, "return_text": True})
    assert tei.status_code == 200, tei.text
    ranks = tei.json()
    assert [(r["index"], r["text"]) for r in ranks] == [(r.index, r.document) for r in expected]
    assert [r["score"] for r in ranks] == pytest.approx([r.normalized_score for r in expected], abs=1e-5)
    raw = client.post("/rerank", json={"query": QUERY, "texts": DOCUMENTS, "raw_scores": True}).json()
    assert [r["score"] for r in raw] == pytest.approx([r.score for r in expected], abs=1e-4)
    assert all("text" not in r for r in raw)


def test_no_documents_give_no_results(client: httpx.Client) -> None:
    response = client.post("/v1/rerank", json={"query": QUERY, "documents": []})
    assert response.status_code == 200 and response.json()["results"] == []


# ---- limits and bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["", "   \n"])
def test_empty_query_is_400(client: httpx.Client, query: str) -> None:
    response = client.post("/v1/rerank", json={"query": query, "documents": DOCUMENTS})
    assert response.status_code == 400
    assert "empty" in response.json()["detail"]


def test_too_many_documents_is_413(client: httpx.Client) -> None:
    response = client.post("/v1/rerank", json={"query": QUERY, "documents": ["a text"] * 9})
    assert response.status_code == 413
    assert "9 documents" in response.json()["detail"] and "8" in response.json()["detail"]


def test_too_long_document_is_413_and_names_it(client: httpx.Client) -> None:
    response = client.post("/v1/rerank", json={"query": QUERY, "documents": ["short", "x" * 401]})
    assert response.status_code == 413
    assert "Document 1 has 401 characters" in response.json()["detail"]


def test_too_long_query_is_413(client: httpx.Client) -> None:
    response = client.post("/v1/rerank", json={"query": "word " * 30, "documents": DOCUMENTS})
    assert response.status_code == 413 and "query" in response.json()["detail"]


def test_declared_body_over_the_limit_is_refused_before_it_is_sent(store_url: str) -> None:
    # Only the headers go out: the answer must come without the server waiting for 100 MB.
    address = urlsplit(store_url)
    with socket.create_connection((address.hostname, address.port), timeout=30) as connection:
        connection.sendall(
            b"POST /v1/rerank HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100000000\r\n\r\n"
        )
        answer = b""
        while b"}" not in answer:
            chunk = connection.recv(65536)
            if not chunk:
                break
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert "16000 bytes" in json.loads(body)["detail"]


def test_streamed_body_over_the_limit_is_413(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"query": "q", "documents": ["'
        for _ in range(20):
            yield b"x" * 1000
        yield b'"]}'

    response = client.post("/v1/rerank", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert "larger than the limit" in response.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [
        {"documents": DOCUMENTS},
        {"query": QUERY},
        {"query": QUERY, "documents": DOCUMENTS, "top_n": 0},
        {"query": QUERY, "documents": [1, 2]},
        {"query": QUERY, "documents": [{"title": "no text"}]},
    ],
)
def test_malformed_requests_are_422(client: httpx.Client, body: dict[str, Any]) -> None:
    response = client.post("/v1/rerank", json=body)
    assert response.status_code == 422
    assert response.json()["detail"], "FastAPI's validation errors say which field is wrong"


def test_invalid_unicode_is_400(client: httpx.Client) -> None:
    body = b'{"query": "violins", "documents": ["fine", "bad \\ud800 text"]}'
    response = client.post("/v1/rerank", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and "Document 1" in response.json()["detail"]


def test_unexpected_failure_is_a_500_without_traceback(model: ColBERT) -> None:
    class Broken(Reranker):
        def rerank(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("secret internal state /some/path")

    with serve_in_background(create_app(reranker=Broken(model))) as url:
        response = httpx.post(f"{url}/v1/rerank", json={"query": QUERY, "documents": DOCUMENTS}, timeout=60)
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    assert "secret" not in response.text and "Traceback" not in response.text


# ---- store endpoints ---------------------------------------------------------------------------------


def test_store_add_search_delete_and_health(client: httpx.Client) -> None:
    texts, ids, metadatas = corpus(8)
    documents = [{"text": t, "id": i, "metadata": m} for t, i, m in zip(texts, ids, metadatas)]
    added = client.post("/v1/documents", json={"documents": documents})
    assert added.status_code == 200, added.text
    assert added.json() | {"count": None} == {
        "ids": ids,
        "added": 8,
        "reencoded": 0,
        "metadata_updated": 0,
        "unchanged": 0,
        "truncated": 0,
        "count": None,
    }
    again = client.post("/v1/documents", json={"documents": documents}).json()
    assert (again["added"], again["unchanged"], again["count"]) == (0, 8, added.json()["count"])
    assert client.get("/health").json()["store"] == {"kind": "EdgeStore", "count": again["count"]}

    hits = client.post("/v1/search", json={"query": "a short text about violins", "top_k": 3}).json()["hits"]
    assert 0 < len(hits) <= 3
    assert [hit["score"] for hit in hits] == sorted((hit["score"] for hit in hits), reverse=True)
    assert all(hit["text"] == texts[ids.index(hit["id"])] for hit in hits)
    assert all(-1 <= hit["normalized_score"] <= 1 for hit in hits)
    # "k", the field's former name, is still read.
    legacy = client.post("/v1/search", json={"query": "a short text about violins", "k": 2}).json()["hits"]
    assert legacy == hits[:2]

    filtered = client.post("/v1/search", json={"query": "note", "top_k": 8, "filter": {"topic": "violins"}}).json()
    assert filtered["hits"] and all(hit["metadata"]["topic"] == "violins" for hit in filtered["hits"])

    deleted = client.request("DELETE", "/v1/documents", json={"ids": [hits[0]["id"], "never-stored"]})
    assert deleted.json() == {"requested": 2, "count": again["count"] - 1}
    after = client.post("/v1/search", json={"query": "a short text about violins", "top_k": 8}).json()["hits"]
    assert hits[0]["id"] not in {hit["id"] for hit in after}


@pytest.mark.parametrize(
    ("body", "status", "phrase"),
    [
        ({"query": "note", "filter": {"year": {"near": 3}}}, 400, "unknown condition"),
        ({"query": "note", "filter": {"year": 10**30}}, 400, "64-bit"),
        ({"query": "note", "first_stage": "dense"}, 400, "dense"),
        ({"query": "note", "top_k": 101}, 413, "top_k is 101"),
        ({"query": " "}, 400, "empty"),
    ],
)
def test_bad_searches_are_4xx_with_a_message(
    client: httpx.Client, body: dict[str, Any], status: int, phrase: str
) -> None:
    response = client.post("/v1/search", json=body)
    assert response.status_code == status, response.text
    assert phrase in response.json()["detail"]


# Requests the store refuses with a message naming itself (e.g. "the store at /srv/... has no dense vector").
_STORE_ERRORS = [
    ("POST", "/v1/search", {"query": "note", "first_stage": "dense"}),
    ("POST", "/v1/search", {"query": "note", "first_stage": "dense", "dense_vector": [0.5, 0.25]}),
    ("POST", "/v1/search", {"query": "note", "first_stage": "hybrid", "dense_vector": [0.5]}),
    ("POST", "/v1/search", {"query": "note", "filter": {"year": {"near": 3}}}),
    ("POST", "/v1/search", {"query": "note", "first_stage": "muvera"}),
    ("POST", "/v1/search", {"query": "note", "filter": {"$year": 3}}),
    ("POST", "/v1/documents", {"documents": [{"text": "t", "metadata": {"a": float("nan")}}]}),
    ("DELETE", "/v1/documents", {"ids": [2**70]}),
]


def test_error_answers_never_show_the_store_path(
    model: ColBERT, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "private-store-folder"
    with EdgeStore(folder, model) as store:
        app = create_app(reranker=Reranker(model), store=store, limits=LIMITS)
        with serve_in_background(app) as url, httpx.Client(base_url=url, timeout=60) as http:
            responses = [
                http.request(method, path, content=json.dumps(body), headers={"content-type": "application/json"})
                for method, path, body in _STORE_ERRORS
            ]
    for response in responses:
        assert 400 <= response.status_code < 500, response.text
        assert response.json()["detail"]
        assert str(folder) not in response.text and folder.name not in response.text, response.text
    assert "<store> has no dense vector" in responses[0].json()["detail"]
    assert "<store> has no muvera vector" in responses[4].json()["detail"]
    # The service log keeps what the answer leaves out.
    assert any(record.levelno >= logging.WARNING and str(folder) in record.getMessage() for record in caplog.records)


def test_adding_too_many_or_too_long_documents_is_413_and_stores_nothing(client: httpx.Client) -> None:
    before = client.get("/health").json()["store"]["count"]
    many = client.post("/v1/documents", json={"documents": [{"text": f"doc {i}"} for i in range(9)]})
    long = client.post("/v1/documents", json={"documents": [{"text": "fine"}, {"text": "y" * 401}]})
    assert (many.status_code, long.status_code) == (413, 413)
    assert client.get("/health").json()["store"]["count"] == before


def test_without_a_store_the_store_endpoints_say_so(bare_url: str) -> None:
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=bare_url, headers=headers, timeout=60) as http:
        search = http.post("/v1/search", json={"query": "q"})
        add = http.post("/v1/documents", json={"documents": [{"text": "t"}]})
        delete = http.request("DELETE", "/v1/documents", json={"ids": ["a"]})
        health = http.get("/health").json()
    for response in (search, add, delete):
        assert response.status_code == 503
        assert "--store" in response.json()["detail"]
    assert "store" not in health and health["model"]


# ---- authentication ----------------------------------------------------------------------------------


def test_api_key_missing_wrong_and_right(bare_url: str) -> None:
    body = {"query": QUERY, "documents": DOCUMENTS}
    missing = httpx.post(f"{bare_url}/v1/rerank", json=body)
    wrong = httpx.post(f"{bare_url}/v1/rerank", json=body, headers={"Authorization": "Bearer not the key"})
    basic = httpx.post(f"{bare_url}/v1/rerank", json=body, headers={"Authorization": f"Basic {KEY}"})
    right = httpx.post(f"{bare_url}/v1/rerank", json=body, headers={"Authorization": f"Bearer {KEY}"}, timeout=60)
    for refused in (missing, wrong, basic):
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        assert KEY not in refused.text
    assert "Authorization: Bearer" in missing.json()["detail"]
    assert wrong.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert right.status_code == 200 and len(right.json()["results"]) == len(DOCUMENTS)


def test_health_shows_details_only_to_authorised_callers(bare_url: str) -> None:
    anonymous = httpx.get(f"{bare_url}/health")
    authorised = httpx.get(f"{bare_url}/health", headers={"Authorization": f"Bearer {KEY}"})
    assert anonymous.status_code == 200 and anonymous.json() == {"status": "ok"}
    assert authorised.json()["status"] == "ok" and authorised.json()["model"]


def test_openapi_schema_lists_the_endpoints(bare_url: str) -> None:
    schema = httpx.get(f"{bare_url}/openapi.json").json()
    assert {"/v1/rerank", "/rerank", "/v1/search", "/v1/documents", "/health"} <= set(schema["paths"])
    assert {"post", "delete"} <= set(schema["paths"]["/v1/documents"])
    assert "HTTPBearer" in schema["components"]["securitySchemes"]


# ---- command line ------------------------------------------------------------------------------------


def test_serve_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "--api-key" in out and "--qdrant-api-key" in out and "--max-body-bytes" in out


def test_serve_refuses_a_folder_and_a_server_together(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--store", "somewhere", "--qdrant-url", "http://localhost:6333"])
    assert exited.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_serve_refuses_a_collection_without_a_server(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("QDRANT_URL", raising=False)
    assert main(["serve", "--collection", "docs"]) == 2
    assert "--qdrant-url" in capsys.readouterr().err


def test_serve_refuses_impossible_limits(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--max-documents", "0"]) == 2
    assert "--max-documents" in capsys.readouterr().err


def test_serve_wires_its_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from edgecolbert.serving import app as server

    started: dict[str, Any] = {}
    monkeypatch.setattr(server, "serve", lambda app, host, port, **kw: started.update(app=app, host=host, port=port))
    monkeypatch.setenv("EDGECOLBERT_API_KEY", "from-the-environment")
    checkpoint = build_stanford_checkpoint(tmp_path / "tiny", seed=0)
    store = ["--store", str(tmp_path / "store"), "--create-store"]
    code = main(["serve", "--model", str(checkpoint), *store, "--port", "9123"])
    assert code == 0
    service = started["app"].state.service
    assert (started["host"], started["port"]) == ("127.0.0.1", 9123)
    assert service.store is not None and service.reranker.model is service.store.model
    assert service.authorized(None) is False
    assert service.limits == ServiceLimits()
    assert "from-the-environment" not in capsys.readouterr().err
    service.store.close()


def test_settings_never_show_the_keys() -> None:
    settings = ServiceSettings(api_key=KEY, qdrant_api_key="qdrant-secret", qdrant_url="http://localhost:6333")
    shown = repr(settings) + str(settings) + settings.model_dump_json()
    assert KEY not in shown and "qdrant-secret" not in shown


def test_a_per_call_warning_is_logged_once_per_interval() -> None:
    import logging

    from edgecolbert.serving.app import RepeatFilter

    repeat_filter = RepeatFilter(interval=3600)

    def record(message: str, *args: object) -> logging.LogRecord:
        return logging.LogRecord("edgecolbert.encoding.encoder", logging.WARNING, __file__, 1, message, args, None)

    truncated = "%d of %d documents exceed %d tokens and were truncated"
    assert repeat_filter.filter(record(truncated, 1, 2, 300))
    assert not repeat_filter.filter(record(truncated, 5, 9, 300)), "same warning, other counts: dropped"
    assert repeat_filter.filter(record("another warning")), "a different warning still passes"
