"""The HTTP service: rerank candidates and search a store over HTTP.

``create_app`` builds the FastAPI application from a :class:`ServiceSettings` (which loads the model
and opens the store) or from a ready :class:`~edgecolbert.scoring.reranker.Reranker` and store; ``edgecolbert
serve`` runs it with uvicorn. Model and store calls run in a dedicated, bounded thread pool so the
event loop (and ``/health``) keeps answering while they work.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import secrets
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edgecolbert.documents import present
from edgecolbert.encoding.defaults import default_model_name
from edgecolbert.encoding.encoder import ColBERT
from edgecolbert.encoding.exported import runs_on_onnx
from edgecolbert.errors import (
    DocumentNotFoundError,
    EdgeColbertError,
    InvalidInputError,
    InvalidTypeError,
    ServiceError,
    require,
)
from edgecolbert.scoring.explain import Explanation, explain, highlight_texts, highlights, matched_spans
from edgecolbert.scoring.reranker import Reranker, RerankResults
from edgecolbert.serving.schemas import (
    AddDocumentsRequest,
    AddDocumentsResponse,
    DeleteDocumentsRequest,
    DeleteDocumentsResponse,
    ErrorResponse,
    ExplainRequest,
    ExplainResponse,
    HealthResponse,
    HighlightOptions,
    RerankRequest,
    RerankResponse,
    RerankResultItem,
    ResultDocument,
    ResultHighlights,
    SearchHit,
    SearchRequest,
    SearchResponse,
    StoreStatus,
    TeiRank,
    TeiRerankRequest,
    highlight_options,
)
from edgecolbert.serving.ui import ui_router
from edgecolbert.store.base import BaseStore
from edgecolbert.store.connect import open_store
from edgecolbert.store.defaults import DEFAULT_COLLECTION, URL_ENV_VAR
from edgecolbert.store.documents import StoreDocument

logger = logging.getLogger(__name__)

API_KEY_ENV_VAR = "EDGECOLBERT_API_KEY"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000

T = TypeVar("T")


class ServiceLimits(BaseModel):
    """What one request may ask for; anything larger is refused with 413 before any work starts."""

    model_config = ConfigDict(frozen=True)

    max_documents: int = Field(default=1000, ge=1, description="documents per rerank request or per add")
    max_document_chars: int = Field(default=50_000, ge=1, description="characters per document")
    max_query_chars: int = Field(default=4_000, ge=1, description="characters per query")
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1, description="bytes per request body")
    max_k: int = Field(default=1000, ge=1, description="largest top_k and prefetch_k of a search")
    workers: int = Field(default=1, ge=1, description="model and store calls running at once")
    max_pending: int = Field(default=512, ge=1, description="calls running or waiting; more get 503")


class ServiceSettings(BaseModel):
    """Everything ``edgecolbert serve`` needs; :meth:`open` loads the model and the store."""

    model: str | None = None
    store: Path | None = None
    qdrant_url: str | None = None
    collection: str = DEFAULT_COLLECTION
    qdrant_api_key: SecretStr | None = None
    api_key: SecretStr | None = None
    device: str | None = None
    batch_size: int = Field(default=16, ge=1)
    backend: Literal["torch", "onnx"] | None = Field(
        default=None, description="None: torch for a checkpoint, onnx for an `edgecolbert export` folder"
    )
    quantize: Literal["int8"] | None = None
    compile: bool = Field(default=False, description="compile the torch backbone with TorchInductor")
    pool_factor: int | None = Field(default=None, ge=1, description="None: no pooling, or a store's own")
    document_length: int | None = Field(default=None, ge=3, description="None: the checkpoint's own")
    limits: ServiceLimits = ServiceLimits()

    @model_validator(mode="after")
    def _one_store(self) -> ServiceSettings:
        if self.store is not None and self.qdrant_url is not None:
            raise ValueError("Give a store folder or a Qdrant URL, not both.")
        if self.quantize is not None and not runs_on_onnx(self.model or default_model_name(), self.backend):
            raise ValueError(f"quantize={self.quantize!r} needs backend='onnx' (the torch backend runs float weights).")
        if self.compile and self.backend == "onnx":
            raise ValueError("compile=True compiles the torch backend; drop it with backend='onnx'.")
        return self

    def model_kwargs(self) -> dict[str, Any]:
        """How the model is loaded; a pool factor left unset lets an opened store keep its own."""
        kwargs: dict[str, Any] = {"device": self.device, "backend": self.backend, "quantize": self.quantize}
        if self.pool_factor is not None:
            kwargs["pool_factor"] = self.pool_factor
        if self.compile:
            kwargs["compile"] = True
        if self.document_length is not None:
            kwargs["document_length"] = self.document_length
        return kwargs

    def open(self) -> tuple[Reranker, BaseStore | None]:
        """Load the model and open the store (none unless a folder or a Qdrant URL is set).

        With a store, the reranker shares the store's model, so both endpoints score with the model the
        stored vectors came from.
        """
        if self.store is None and not (self.qdrant_url or os.environ.get(URL_ENV_VAR)):
            return Reranker.from_pretrained(self.model, batch_size=self.batch_size, **self.model_kwargs()), None
        store = open_store(
            store=self.store,
            qdrant_url=self.qdrant_url,
            collection=self.collection,
            api_key=self.qdrant_api_key.get_secret_value() if self.qdrant_api_key else None,
            model=self.model,
            encode_batch_size=self.batch_size,
            **self.model_kwargs(),
        )
        return Reranker(store.model, batch_size=self.batch_size), store


def create_app(
    settings: ServiceSettings | None = None,
    *,
    reranker: Reranker | None = None,
    store: BaseStore | None = None,
    api_key: str | None = None,
    limits: ServiceLimits | None = None,
) -> FastAPI:
    """The service as an ASGI application.

    Either ``settings`` (the model and store are loaded here and the store is closed on shutdown), or a
    ``reranker`` and optionally a ``store`` you own (left open). ``api_key`` and ``limits`` override the
    settings' ones.
    """
    owned_store = False
    settings = settings or ServiceSettings()
    if reranker is None:
        if store is not None:
            reranker = Reranker(store.model)
        else:
            reranker, store = settings.open()
            owned_store = store is not None
    key = api_key if api_key is not None else (settings.api_key.get_secret_value() if settings.api_key else None)
    service = Service(reranker, store, limits or settings.limits, api_key=key, close_store=owned_store)

    app = FastAPI(
        title="edgecolbert",
        summary="Late-interaction (ColBERT) reranking and multivector search.",
        version=_version(),
        lifespan=service.lifespan,
        responses={413: {"model": ErrorResponse, "description": "The request body is larger than the limit."}},
    )
    app.state.service = service
    app.add_middleware(BodySizeLimit, max_bytes=service.limits.max_body_bytes)
    app.add_middleware(UnexpectedErrors)
    app.add_exception_handler(EdgeColbertError, _library_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.include_router(_health_router)
    app.include_router(_api_router)
    app.include_router(ui_router)
    return app


class Service:
    """The state the endpoints share: model, store, limits, key and the bounded worker pool."""

    def __init__(
        self,
        reranker: Reranker,
        store: BaseStore | None,
        limits: ServiceLimits,
        *,
        api_key: str | None,
        close_store: bool,
    ) -> None:
        self.reranker = reranker
        self.store = store
        self.limits = limits
        self.model_name = public_model_name(reranker.model.name)
        self.private_paths = _private_paths(reranker, store)
        self._key = None if api_key is None else api_key.encode("utf-8")
        self._close_store = close_store
        self._executor = ThreadPoolExecutor(limits.workers, thread_name_prefix="edgecolbert-worker")
        self._pending = 0  # touched only on the event loop thread

    async def run(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking call in the pool; refuse with 503 when ``max_pending`` calls are already queued."""
        if self._pending >= self.limits.max_pending:
            raise HTTPException(
                503,
                f"The service is busy ({self._pending} requests in progress, limit {self.limits.max_pending}); "
                "retry shortly.",
                headers={"Retry-After": "1"},
            )
        self._pending += 1
        try:
            call = functools.partial(function, *args, **kwargs)
            return await asyncio.get_running_loop().run_in_executor(self._executor, call)
        finally:
            self._pending -= 1

    @property
    def pending(self) -> int:
        """Calls running or waiting in the pool."""
        return self._pending

    def authorized(self, credentials: HTTPAuthorizationCredentials | None) -> bool:
        if self._key is None:
            return True
        if credentials is None:
            return False
        # Starlette decodes header bytes as Latin-1: encoding back gives the bytes the client sent.
        return secrets.compare_digest(credentials.credentials.encode("latin-1"), self._key)

    def require_store(self) -> BaseStore:
        if self.store is None:
            raise HTTPException(
                503,
                "No store is configured: start the service with --store DIR or --qdrant-url URL to use "
                "/v1/search and /v1/documents (/v1/rerank works without one).",
            )
        return self.store

    @asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            self._executor.shutdown(wait=True)
            if self._close_store and self.store is not None:
                self.store.close()


def _private_paths(reranker: Reranker, store: BaseStore | None) -> dict[str, str]:
    """Server paths that error messages may hold, longest first, each with what answers show instead."""
    named: dict[str, str] = {}
    spec = getattr(reranker.model, "spec", None)
    for path, label in ((getattr(store, "path", None), "<store>"), (getattr(spec, "path", None), "<model>")):
        if path is not None:
            for form in (str(path), str(Path(path).resolve())):
                named.setdefault(form, label)
    home = str(Path.home())
    if len(home) > 1:
        named.setdefault(home, "~")
    return dict(sorted(named.items(), key=lambda item: -len(item[0])))


def public_message(message: str, private_paths: dict[str, str]) -> str:
    """``message`` without the server's folders: callers need what was wrong, not where the files live."""
    for path, label in private_paths.items():
        message = message.replace(path, label)
    return message


def public_model_name(name: str) -> str:
    """A local checkpoint's folder name rather than its path: responses should not reveal the file system."""
    return Path(name).name if os.path.isdir(name) else name


def _version() -> str:
    from edgecolbert import __version__

    return __version__


# ---- request body size -----------------------------------------------------------------------------


class BodySizeLimit:
    """Refuse request bodies over ``max_bytes`` with 413, before they are read into memory.

    A declared Content-Length over the limit is refused at once, without reading the body; a body
    streamed without one (chunked) is counted as it arrives and refused as soon as it passes the limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # FastAPI passes an HTTPException raised while reading the body through as the answer.
                    raise HTTPException(413, self._message())
            return message

        await self.app(scope, counting_receive, send)

    def _message(self) -> str:
        return (
            f"The request body is larger than the limit of {self.max_bytes} bytes (--max-body-bytes); "
            "send fewer or shorter documents per request."
        )

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        await JSONResponse({"detail": self._message()}, status_code=413)(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


# ---- errors ----------------------------------------------------------------------------------------


def _library_error(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, DocumentNotFoundError):
        status = 404
    elif isinstance(exc, (InvalidInputError, InvalidTypeError)):
        status = 400
    else:
        status = 409
    # The log keeps the full message (paths included); the caller gets it without the server's folders.
    logger.warning("%s %s refused (%d): %s: %s", request.method, request.url.path, status, type(exc).__name__, exc)
    return JSONResponse({"detail": public_message(str(exc), _service(request).private_paths)}, status_code=status)


def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422, without echoing the input: a NaN or a lone surrogate in it cannot be written as JSON."""
    assert isinstance(exc, RequestValidationError)
    detail = [
        {"loc": list(error["loc"]), "msg": _printable(str(error["msg"])), "type": error["type"]}
        for error in exc.errors()
    ]
    return JSONResponse({"detail": detail}, status_code=422)


def _printable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


# What a store's engine raises for values it cannot use (a field path it cannot parse, a number it
# cannot hold): the request is at fault, not the service.
_VALUE_ERRORS = (ValueError, TypeError, OverflowError, RecursionError)


async def _store_call(service: Service, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``service.run`` for a store call with request values; the engine's refusal of a value answers 400."""
    try:
        return await service.run(function, *args, **kwargs)
    except EdgeColbertError:
        raise  # the library's own refusals have their own statuses (_library_error)
    except _VALUE_ERRORS as exc:
        logger.warning("The store refused the request's values: %s: %s", type(exc).__name__, exc)
        message = public_message(str(exc), service.private_paths)
        raise HTTPException(400, f"The store cannot use the request's values: {message}") from exc


class UnexpectedErrors:
    """Answer 500 for an exception nothing else handled, logging its traceback.

    Answering here rather than in Starlette's last-resort handler matters: that one re-raises to the
    server, which then drops the connection, failing the client's next request on it too.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            logger.exception("%s %s failed", scope.get("method"), scope.get("path"))
            if started:  # too late to answer: let the server end the connection
                raise
            response = JSONResponse({"detail": "Internal error; the service log has the details."}, status_code=500)
            await response(scope, receive, send)


# ---- authentication and request checks -------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False, description="The key given to `edgecolbert serve --api-key`, when set.")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(_service)]


def _require_key(service: ServiceDep, credentials: Credentials) -> None:
    if service.authorized(credentials):
        return
    if credentials is None:
        raise HTTPException(
            401, "Missing API key: send the header 'Authorization: Bearer <key>'.", {"WWW-Authenticate": "Bearer"}
        )
    raise HTTPException(401, "Wrong API key.", {"WWW-Authenticate": 'Bearer error="invalid_token"'})


def _check_query(query: str, limits: ServiceLimits) -> None:
    if not query.strip():
        raise HTTPException(400, "The query is empty or whitespace only: there is nothing to rank against.")
    if len(query) > limits.max_query_chars:
        raise HTTPException(
            413, f"The query has {len(query)} characters; the limit is {limits.max_query_chars} (--max-query-chars)."
        )
    _check_unicode(query, "The query")


def _check_documents(texts: Sequence[str], limits: ServiceLimits) -> None:
    if len(texts) > limits.max_documents:
        raise HTTPException(
            413,
            f"{len(texts)} documents in one request; the limit is {limits.max_documents} (--max-documents). "
            "Split them over several requests.",
        )
    for position, text in enumerate(texts):
        if len(text) > limits.max_document_chars:
            raise HTTPException(
                413,
                f"Document {position} has {len(text)} characters; the limit is {limits.max_document_chars} "
                "(--max-document-chars). Split it into passages.",
            )
        _check_unicode(text, f"Document {position}")


def _check_unicode(text: str, what: str) -> None:
    # JSON can carry lone surrogates ("\ud800"), which no tokenizer accepts.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise HTTPException(400, f"{what} is not valid Unicode ({exc.reason} at {exc.start}).") from exc


def _check_k(name: str, value: int, limits: ServiceLimits) -> None:
    if value > limits.max_k:
        raise HTTPException(413, f"{name} is {value}; the limit is {limits.max_k} (--max-k).")


_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in {
        400: "Unusable input (empty query, bad filter, invalid text).",
        401: "Missing or wrong API key.",
        409: "The store or model refused the request.",
        413: "More documents, characters or bytes than the limits allow.",
        503: "Busy (retry), or no store configured.",
    }.items()
}


# ---- endpoints -------------------------------------------------------------------------------------

_health_router = APIRouter()
_api_router = APIRouter(dependencies=[Depends(_require_key)], responses=_ERRORS)


@_health_router.get("/health", response_model_exclude_none=True)
async def health(service: ServiceDep, credentials: Credentials) -> HealthResponse:
    """Liveness for anyone; the model and the store's document count for authorised callers."""
    if not service.authorized(credentials):
        return HealthResponse()
    store = service.store
    if store is None:
        return HealthResponse(model=service.model_name)
    # Counting is quick: it runs beside the model pool, so a saturated pool does not delay it.
    count = await asyncio.to_thread(store.count)
    return HealthResponse(model=service.model_name, store=StoreStatus(kind=type(store).__name__, count=count))


@_api_router.post("/v1/rerank", response_model_exclude_none=True)
@_api_router.post("/v2/rerank", response_model_exclude_none=True, include_in_schema=False)
async def rerank(body: RerankRequest, service: ServiceDep) -> RerankResponse:
    """Rank documents for a query by MaxSim (Cohere / Jina request and response shape)."""
    texts = [document if isinstance(document, str) else document.text for document in body.documents]
    results = await _rerank(service, body.query, texts, body.top_n)
    shown = await _highlights(
        service, service.reranker.model, body.query, [result.document for result in results], body.highlights
    )
    return RerankResponse(
        id=str(uuid.uuid4()),
        model=service.model_name,
        results=[
            RerankResultItem(
                index=present(result.index, "index"),
                relevance_score=result.score,
                normalized_score=present(result.normalized_score, "normalized_score"),
                document=ResultDocument(text=result.text) if body.return_documents else None,
                highlights=shown[position],
            )
            for position, result in enumerate(results)
        ],
    )


@_api_router.post("/rerank", response_model_exclude_none=True)
async def rerank_tei(body: TeiRerankRequest, service: ServiceDep) -> list[TeiRank]:
    """Text Embeddings Inference's rerank shape: ``texts`` in, a bare list of ``{index, score, text?}`` out."""
    results = await _rerank(service, body.query, body.texts, None)
    return [
        TeiRank(
            index=present(result.index, "index"),
            score=result.score if body.raw_scores else present(result.normalized_score, "normalized_score"),
            text=result.text if body.return_text else None,
        )
        for result in results
    ]


async def _rerank(service: Service, query: str, texts: list[str], top_n: int | None) -> RerankResults:
    _check_query(query, service.limits)
    _check_documents(texts, service.limits)
    return await service.run(service.reranker.rerank, query, texts, top_n)


@_api_router.post("/v1/search", response_model_exclude_none=True)
async def search(body: SearchRequest, service: ServiceDep) -> SearchResponse:
    """First stage (BM25, dense or hybrid) then MaxSim over the stored vectors, in one store query."""
    store = service.require_store()
    _check_query(body.query, service.limits)
    _check_k("top_k", body.top_k, service.limits)
    _check_k("prefetch_k", body.prefetch_k, service.limits)
    hits = await _store_call(
        service,
        store.search,
        body.query,
        top_k=body.top_k,
        prefetch_k=body.prefetch_k,
        first_stage=body.first_stage,
        filter=body.filter,
        dense_vector=body.dense_vector,
    )
    shown = await _highlights(service, store.model, body.query, [hit.text for hit in hits], body.highlights)
    return SearchResponse(
        model=service.model_name,
        hits=[
            SearchHit(
                id=present(hit.id, "id"),
                score=hit.score,
                normalized_score=present(hit.normalized_score, "normalized_score"),
                text=hit.text,
                metadata=hit.metadata,
                highlights=shown[position],
            )
            for position, hit in enumerate(hits)
        ],
    )


async def _highlights(
    service: Service, model: ColBERT, query: str, texts: list[str], asked: bool | HighlightOptions
) -> list[ResultHighlights | None]:
    """Highlights of each returned text when the request asked for them, else None for each (no work)."""
    options = highlight_options(asked)
    if options is None or not texts:
        return [None] * len(texts)
    shown = await service.run(
        highlight_texts,
        model,
        query,
        texts,
        max_passages=options.max_passages,
        fragment_chars=options.fragment_chars,
    )
    return [ResultHighlights.model_validate(item.to_dict()) for item in shown]


@_api_router.post(
    "/v1/explain", responses={404: {"model": ErrorResponse, "description": "No stored document has this id."}}
)
async def explain_document(body: ExplainRequest, service: ServiceDep) -> ExplainResponse:
    """Why a document scores what it does: each query token's best document token, its span and similarity.

    The document is a text, or the id of a stored one (read and encoded once, unpooled).
    """
    _check_query(body.query, service.limits)
    if body.id is not None:
        store = service.require_store()
        text, explanation = await _store_call(service, _explain_stored, store, body.query, body.id)
    else:
        text = body.document or ""
        _check_documents([text], service.limits)
        explanation = await service.run(explain, service.reranker.model, body.query, text)
    passages = highlights(explanation, text, max_passages=body.max_passages, fragment_chars=body.fragment_chars)
    return ExplainResponse(
        model=service.model_name,
        text=text,
        spans=[span.to_dict() for span in matched_spans(explanation)],
        passages=[passage.to_dict() for passage in passages],
        **{key: value for key, value in explanation.to_dict().items() if key != "document_chars"},
    )


def _explain_stored(store: BaseStore, query: str, doc_id: str | int) -> tuple[str, Explanation]:
    # What store.explain does, keeping the text it read: the passages must cut that very text.
    text = store.stored_text(doc_id)
    return text, explain(store.model, query, text)


@_api_router.post("/v1/documents")
async def add_documents(body: AddDocumentsRequest, service: ServiceDep) -> AddDocumentsResponse:
    """Store documents (idempotent: unchanged ones are not encoded again)."""
    store = service.require_store()
    _check_documents([document.text for document in body.documents], service.limits)
    documents = [StoreDocument(text=d.text, id=d.id, metadata=d.metadata or {}) for d in body.documents]
    return await _store_call(service, _add, store, documents)


def _add(store: BaseStore, documents: list[StoreDocument]) -> AddDocumentsResponse:
    ids: list[str] = []
    report = store.add_documents(documents, batch_size=max(1, len(documents)), on_batch=ids.extend)
    return AddDocumentsResponse(
        ids=ids,
        added=report.added,
        reencoded=report.reencoded,
        metadata_updated=report.metadata_updated,
        unchanged=report.unchanged,
        truncated=report.truncated,
        count=store.count(),
    )


@_api_router.delete("/v1/documents")
async def delete_documents(body: DeleteDocumentsRequest, service: ServiceDep) -> DeleteDocumentsResponse:
    """Remove documents by id; ids that are not stored are ignored."""
    store = service.require_store()
    if len(body.ids) > service.limits.max_documents:
        raise HTTPException(413, f"{len(body.ids)} ids in one request; the limit is {service.limits.max_documents}.")
    return await _store_call(service, _delete, store, body.ids)


def _delete(store: BaseStore, ids: list[str | int]) -> DeleteDocumentsResponse:
    store.delete(ids)
    return DeleteDocumentsResponse(requested=len({str(doc_id) for doc_id in ids}), count=store.count())


# ---- running -----------------------------------------------------------------------------------------


# Loggers whose warnings describe one call (truncated texts): a service would repeat them on every request.
_PER_CALL_LOGGERS = ("edgecolbert.encoding.encoder", "edgecolbert.store.base")


class RepeatFilter(logging.Filter):
    """Let a given warning through at most once per ``interval`` seconds."""

    def __init__(self, interval: float = 60.0) -> None:
        super().__init__()
        self.interval = interval
        self._last: dict[tuple[str, object], float] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.msg)  # the unformatted template: counts differ, the warning is the same
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval:
                return False
            self._last[key] = now
        return True


def serve(app: FastAPI, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *, log_level: str = "info") -> None:
    """Run the service in this process until interrupted (Ctrl-C or SIGTERM)."""
    uvicorn = require("uvicorn", "serve", "Running the service")

    repeat_filter = RepeatFilter()
    for name in _PER_CALL_LOGGERS:
        logging.getLogger(name).addFilter(repeat_filter)
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=10)


@contextmanager
def serve_in_background(
    app: FastAPI, host: str = DEFAULT_HOST, port: int = 0, *, startup_timeout: float = 60.0
) -> Iterator[str]:
    """Run the service on a thread for the ``with`` block and yield its base URL (port 0: a free one).

    For notebooks, tests and benchmarks; the server shuts down cleanly when the block ends.
    """
    uvicorn = require("uvicorn", "serve", "Running the service")

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="edgecolbert-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise ServiceError(f"The service did not start on {host}:{port}; the log above says why.")
        time.sleep(0.01)
    bound_port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
