"""Highlights on /v1/rerank and /v1/search, the /v1/explain endpoint and the /ui page, on a live server."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from edgecolbert import ColBERT
from edgecolbert.scoring import explain, highlight_texts
from edgecolbert.serving.app import ServiceLimits
from store_fixtures import served

LIMITS = ServiceLimits(max_documents=8, max_document_chars=400, max_query_chars=120, max_k=100, workers=2)
KEY = "correct horse battery staple"
QUERY = "violins and comets"
DOCUMENTS = [
    "note: dogs and rivers in spring",
    "violins and comets, a short text about violins",
    "cats sleeping near the violins",
]
IDS = ["dogs", "violins", "cats"]


@pytest.fixture(scope="module")
def store_url(model: ColBERT, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    store_folder = tmp_path_factory.mktemp("served") / "store"
    with served(model, LIMITS, store_folder=store_folder, documents=DOCUMENTS, ids=IDS) as url:
        yield url


@pytest.fixture(scope="module")
def keyed_url(model: ColBERT) -> Iterator[str]:
    """No store, an API key."""
    with served(model, LIMITS, api_key=KEY) as url:
        yield url


@pytest.fixture
def client(store_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=store_url, timeout=60) as http:
        yield http


def _expected(model: ColBERT, texts: list[str], **options: int) -> list[dict]:
    return [item.to_dict() for item in highlight_texts(model, QUERY, texts, **options)]


def _same(answer: dict, expected: dict) -> None:
    assert [(p["start"], p["end"], p["text"], p["spans"]) for p in answer["passages"]] == [
        (p["start"], p["end"], p["text"], p["spans"]) for p in expected["passages"]
    ]
    assert [(s["start"], s["end"]) for s in answer["spans"]] == [(s["start"], s["end"]) for s in expected["spans"]]
    assert [s["score"] for s in answer["spans"]] == pytest.approx([s["score"] for s in expected["spans"]], abs=1e-5)


# ---- highlights on results -----------------------------------------------------------------------------


def test_rerank_answers_are_unchanged_without_highlights(client: httpx.Client) -> None:
    results = client.post("/v1/rerank", json={"query": QUERY, "documents": DOCUMENTS}).json()["results"]
    assert all(set(result) == {"index", "relevance_score", "normalized_score"} for result in results)
    tei = client.post("/rerank", json={"query": QUERY, "texts": DOCUMENTS, "highlights": True}).json()
    assert all(set(rank) == {"index", "score"} for rank in tei)


def test_rerank_highlights_each_result(client: httpx.Client, model: ColBERT) -> None:
    body = {"query": QUERY, "documents": DOCUMENTS, "top_n": 2, "highlights": True}
    results = client.post("/v1/rerank", json=body).json()["results"]
    assert len(results) == 2
    expected = _expected(model, [DOCUMENTS[result["index"]] for result in results])
    for result, wanted in zip(results, expected):
        assert "document" not in result  # highlights do not need return_documents
        _same(result["highlights"], wanted)
    options = {"max_passages": 1, "fragment_chars": 12}
    body = {"query": QUERY, "documents": DOCUMENTS, "highlights": options}
    results = client.post("/v1/rerank", json=body).json()["results"]
    for result in results:
        _same(result["highlights"], _expected(model, [DOCUMENTS[result["index"]]], **options)[0])
        assert all(len(p["text"]) <= 12 for p in result["highlights"]["passages"])


def test_search_highlights_each_hit(client: httpx.Client, model: ColBERT) -> None:
    plain = client.post("/v1/search", json={"query": QUERY, "top_k": 2}).json()["hits"]
    assert plain and all(set(hit) == {"id", "score", "normalized_score", "text", "metadata"} for hit in plain)
    hits = client.post("/v1/search", json={"query": QUERY, "top_k": 2, "highlights": True}).json()["hits"]
    assert [hit["id"] for hit in hits] == [hit["id"] for hit in plain]
    for hit, wanted in zip(hits, _expected(model, [hit["text"] for hit in hits])):
        _same(hit["highlights"], wanted)


@pytest.mark.parametrize("options", [{"fragment_chars": 0}, {"max_passages": 0}, {"max_passages": 21}, "yes"])
def test_bad_highlight_options_are_422(client: httpx.Client, options: object) -> None:
    response = client.post("/v1/rerank", json={"query": QUERY, "documents": DOCUMENTS, "highlights": options})
    assert response.status_code == 422


# ---- /v1/explain -----------------------------------------------------------------------------------------


def test_explain_a_text_gives_the_alignment(client: httpx.Client, model: ColBERT) -> None:
    text = DOCUMENTS[1]
    answer = client.post("/v1/explain", json={"query": QUERY, "document": text}).json()
    expected = explain(model, QUERY, text)
    assert answer["score"] == pytest.approx(expected.score, rel=1e-5)
    assert sum(m["similarity"] for m in answer["matches"]) == pytest.approx(answer["score"], rel=1e-5)
    assert [(m["query_token"], m["document_token"]) for m in answer["matches"]] == [
        (m.query_token, m.document_token) for m in expected.matches
    ]
    assert [m["span"] and tuple(m["span"]) for m in answer["matches"]] == [m.span for m in expected.matches]
    assert answer["text"] == text and not answer["truncated"] and answer["encoded_end"] == len(text)
    assert answer["passages"] and all(text[p["start"] : p["end"]] == p["text"] for p in answer["passages"])


def test_explain_a_stored_document_by_id(client: httpx.Client, model: ColBERT) -> None:
    answer = client.post("/v1/explain", json={"query": QUERY, "id": "violins"}).json()
    assert answer["text"] == DOCUMENTS[1]
    assert answer["score"] == pytest.approx(explain(model, QUERY, DOCUMENTS[1]).score, rel=1e-5)
    missing = client.post("/v1/explain", json={"query": QUERY, "id": "comets"})
    assert missing.status_code == 404 and "'comets'" in missing.json()["detail"]


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"query": QUERY}, 422, "exactly one"),
        ({"query": QUERY, "document": "text", "id": "violins"}, 422, "exactly one"),
        ({"query": " ", "document": "text"}, 400, "empty"),
        ({"query": QUERY, "document": "y" * 401}, 413, "--max-document-chars"),
        ({"query": "q" * 121, "id": "violins"}, 413, "--max-query-chars"),
    ],
)
def test_explain_refuses_what_the_other_endpoints_refuse(
    client: httpx.Client, body: dict, status: int, detail: str
) -> None:
    response = client.post("/v1/explain", json=body)
    assert response.status_code == status
    assert detail in str(response.json()["detail"])


def test_explain_needs_the_key_and_a_store_for_ids(keyed_url: str) -> None:
    body = {"query": QUERY, "document": DOCUMENTS[0]}
    assert httpx.post(f"{keyed_url}/v1/explain", json=body).status_code == 401
    headers = {"Authorization": f"Bearer {KEY}"}
    assert httpx.post(f"{keyed_url}/v1/explain", json=body, headers=headers, timeout=60).status_code == 200
    by_id = httpx.post(f"{keyed_url}/v1/explain", json={"query": QUERY, "id": "a"}, headers=headers)
    assert by_id.status_code == 503 and "--store" in by_id.json()["detail"]


# ---- the page --------------------------------------------------------------------------------------------


def test_the_page_loads_without_a_key_and_root_leads_to_it(keyed_url: str) -> None:
    root = httpx.get(f"{keyed_url}/")
    assert root.status_code in (302, 307) and root.headers["location"] == "/ui"
    page = httpx.get(f"{keyed_url}/ui")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    for asset, kind in (("ui.js", "text/javascript"), ("ui.css", "text/css")):
        response = httpx.get(f"{keyed_url}/ui/{asset}")
        assert response.status_code == 200 and response.headers["content-type"].startswith(kind)
        assert f"/ui/{asset}" in page.text
    assert httpx.get(f"{keyed_url}/ui/secrets.txt").status_code == 404
    assert httpx.get(f"{keyed_url}/ui/..%2Fapp.py").status_code == 404


def test_the_page_builds_no_html_from_documents() -> None:
    from importlib import resources

    script = resources.files("edgecolbert.serving").joinpath("static", "ui.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script
