"""Retrying idempotent calls to a Qdrant server through transient failures.

Every call the store makes on a server is idempotent (reads, and upserts, payload updates and deletes
keyed by point id), so repeating one after a dropped connection, a timeout or a 502/503/504 cannot
duplicate or lose anything. A 429 (rate limited) is retried after the server's ``Retry-After``, capped
by ``max_delay``. Other failures (4xx, 500, malformed answers) are not retried: repeating them would
give the same answer.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgecolbert.errors import InvalidInputError, QdrantRequestError, QdrantUnavailableError

logger = logging.getLogger(__name__)

T = TypeVar("T")

TRANSIENT_STATUS = frozenset({429, 502, 503, 504})


class RetryPolicy(BaseModel):
    """How often and how long to retry: exponential backoff with full jitter, bounded in attempts and time."""

    model_config = ConfigDict(frozen=True)

    retries: int = Field(default=3, ge=0, description="attempts after the first")
    backoff: float = Field(default=0.5, ge=0, description="seconds; the n-th wait is uniform in [0, backoff * 2**n]")
    max_delay: float = Field(default=8.0, ge=0, description="cap on one wait, in seconds")
    deadline: float = Field(default=60.0, gt=0, description="no retry starts after this many seconds")

    @classmethod
    def build(cls, **values: float) -> RetryPolicy:
        try:
            return cls(**values)
        except ValidationError as exc:
            raise InvalidInputError(f"Invalid retry settings: {exc.errors()[0]['msg']} ({values}).") from exc

    def delay(self, retry: int, rng: random.Random, retry_after: float | None = None) -> float:
        # Full jitter spreads clients that failed together, so they do not return together.
        jitter = rng.uniform(0.0, min(self.max_delay, self.backoff * 2**retry))
        # A rate-limited server says when to come back; waiting less would only be refused again.
        return jitter if retry_after is None else min(self.max_delay, max(jitter, retry_after))


def is_transient(exc: BaseException) -> bool:
    """Whether repeating the same idempotent request may succeed."""
    import httpx
    from qdrant_client.common.client_exceptions import ResourceExhaustedResponse
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    if isinstance(exc, ResourceExhaustedResponse):
        return True
    if isinstance(exc, UnexpectedResponse):
        return exc.status_code in TRANSIENT_STATUS
    if isinstance(exc, ResponseHandlingException):
        # qdrant-client wraps transport failures (refused, reset, timed out) and unparsable answers alike.
        return isinstance(exc.source, (httpx.TransportError, ConnectionError, TimeoutError))
    return isinstance(exc, (httpx.TransportError, ConnectionError, TimeoutError))


def retry_after(exc: BaseException) -> float | None:
    """The wait a 429 answer asked for, in seconds; None when it named none (or an HTTP date)."""
    seconds = getattr(exc, "retry_after_s", None)  # qdrant-client's ResourceExhaustedResponse
    if seconds is None:
        headers = getattr(exc, "headers", None)
        seconds = headers.get("Retry-After") if headers is not None else None
    try:
        return max(0.0, float(seconds)) if seconds is not None else None
    except ValueError:
        return None


def call_with_retries(
    call: Callable[[], T],
    *,
    what: str,
    where: str,
    policy: RetryPolicy,
    secrets: tuple[str, ...] = (),
    rng: random.Random | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Run ``call``, retrying transient failures; raise a :class:`StoreError` naming ``where`` otherwise."""
    from qdrant_client.http.exceptions import ApiException

    rng = rng or random.Random()
    started = clock()
    retry = 0
    while True:
        try:
            return call()
        except Exception as exc:
            if not is_transient(exc):
                if isinstance(exc, ApiException):
                    raise QdrantRequestError(f"Qdrant at {where} refused {what}: {_redact(str(exc), secrets)}") from exc
                raise
            elapsed = clock() - started
            wait = policy.delay(retry, rng, retry_after(exc))
            if retry >= policy.retries or elapsed + wait > policy.deadline:
                raise QdrantUnavailableError(
                    f"Could not reach Qdrant at {where}: {what} failed {retry + 1} time(s) over {elapsed:.1f}s, "
                    f"last with {_describe(exc, secrets)}. Check that the server runs and the URL is right "
                    "(--qdrant-url / QDRANT_URL), or raise retries= / timeout=."
                ) from exc
            retry += 1
            logger.warning(
                "Qdrant at %s: %s failed (%s); retry %d of %d in %.2fs.",
                where,
                what,
                _describe(exc, secrets),
                retry,
                policy.retries,
                wait,
            )
            sleep(wait)


def _describe(exc: BaseException, secrets: tuple[str, ...]) -> str:
    source = getattr(exc, "source", None)
    status = getattr(exc, "status_code", None)
    retry_after = getattr(exc, "retry_after_s", None)
    if retry_after is not None:
        text = f"HTTP 429 rate limited, Retry-After {retry_after}s"
    elif status is not None:
        text = f"HTTP {status} {getattr(exc, 'reason_phrase', '')}".strip()
    elif source is not None:
        text = f"{type(source).__name__}: {source}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return _redact(text, secrets)


def _redact(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text
