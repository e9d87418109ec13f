"""A Qdrant server that is down, failing transiently or hanging: clear errors, bounded retries, nothing lost.

The server here is a small in-memory stand-in for the REST endpoints a store uses to create a
collection, write and count, on loopback, with faults injected per endpoint.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from edgecolbert import ColBERT
from edgecolbert.errors import InvalidInputError, QdrantRequestError, QdrantUnavailableError, StoreError
from edgecolbert.store.retry import RetryPolicy, call_with_retries

qdrant_client = pytest.importorskip("qdrant_client")
pytestmark = pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection")

FAST = {"retries": 3, "retry_backoff": 0.01}
SECRET = "sk-test-7f3a9c1e55d2b4"


@dataclass
class Fault:
    """Answer ``status`` (or hang ``hang_s`` seconds first) the next ``times`` requests matching ``pattern``."""

    pattern: str
    times: int
    status: int | None = None
    hang_s: float = 0.0
    after: int = 0  # matching requests let through before the fault starts
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class FakeQdrant:
    """What the server holds and saw."""

    faults: list[Fault] = field(default_factory=list)
    points: dict[Any, dict[str, Any]] = field(default_factory=dict)
    collections: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    upserted: list[Any] = field(default_factory=list)
    api_keys: set[str] = field(default_factory=set)
    released: threading.Event = field(default_factory=threading.Event)
    url: str = ""

    def fault_for(self, line: str) -> Fault | None:
        for fault in self.faults:
            if fault.times > 0 and re.search(fault.pattern, line):
                if fault.after > 0:
                    fault.after -= 1
                    continue
                fault.times -= 1
                return fault
        return None


def _handler(state: FakeQdrant) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            return None

        def _reply(self, status: int, result: Any, headers: dict[str, str] | None = None) -> None:
            body = json.dumps({"result": result, "status": "ok", "time": 0.0}).encode()
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}") if length else {}
            line = f"{self.command} {self.path.split('?')[0]}"
            state.requests.append(line)
            if key := self.headers.get("api-key"):
                state.api_keys.add(key)
            fault = state.fault_for(line)
            if fault is not None:
                if fault.hang_s:
                    state.released.wait(fault.hang_s)
                if fault.status is not None:
                    self._reply(fault.status, None, fault.headers)
                    return
            self._reply(200, self._answer(line, body))

        def _answer(self, line: str, body: dict[str, Any]) -> Any:
            if line == "GET /":
                return None
            if match := re.fullmatch(r"GET /collections/([^/]+)/exists", line):
                return {"exists": match.group(1) in state.collections}
            if match := re.fullmatch(r"PUT /collections/([^/]+)", line):
                state.collections[match.group(1)] = body
                return True
            if re.fullmatch(r"PUT /collections/[^/]+/points", line):
                for point in body["points"]:
                    state.points[point["id"]] = point
                    state.upserted.append(point["id"])
                return {"operation_id": len(state.upserted), "status": "completed"}
            if re.fullmatch(r"POST /collections/[^/]+/points", line):
                wanted = [state.points[i] for i in body["ids"] if i in state.points]
                return [{"id": p["id"], "payload": p["payload"], "vector": None} for p in wanted]
            if re.fullmatch(r"POST /collections/[^/]+/points/count", line):
                return {"count": len(state.points)}
            raise AssertionError(f"the stand-in server does not answer {line}")

        do_GET = do_PUT = do_POST = _handle

    return Handler


class QuietServer(ThreadingHTTPServer):
    """A client that timed out and hung up is what the hanging faults provoke, not a server failure."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


@pytest.fixture
def server() -> Iterator[FakeQdrant]:
    state = FakeQdrant()
    httpd = QuietServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state
    state.released.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=10)


def open_remote(server: FakeQdrant, model: ColBERT, **options: Any) -> Any:
    from edgecolbert.store import QdrantStore

    return QdrantStore("docs", model, url=server.url, api_key=SECRET, timeout=2, **{**FAST, **options})


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_503_twice_is_retried_and_every_point_is_stored_once(
    server: FakeQdrant, model: ColBERT, caplog: pytest.LogCaptureFixture
) -> None:
    store = open_remote(server, model)
    server.faults.append(Fault(r"PUT /collections/docs/points$", times=2, status=503))
    texts = [f"document number {i} about rivers" for i in range(10)]
    with caplog.at_level(logging.WARNING, logger="edgecolbert"):
        ids = store.add(texts, ids=[f"d{i}" for i in range(10)])
    assert store.count() == 10
    assert [hit.text for hit in store.get(ids)] == texts
    # Three upsert requests reached the server (two refused), and the retries were logged.
    assert server.requests.count("PUT /collections/docs/points") == 3
    assert sum("retry" in record.getMessage() for record in caplog.records) == 2


@pytest.mark.parametrize("status", [502, 504])
def test_gateway_errors_on_reads_are_retried(server: FakeQdrant, model: ColBERT, status: int) -> None:
    store = open_remote(server, model)
    store.add(["a text"], ids=["x"])
    server.faults.append(Fault(r"POST /collections/docs/points/count", times=2, status=status))
    assert store.count() == 1
    assert server.requests.count("POST /collections/docs/points/count") == 3


@pytest.mark.parametrize("headers", [{"Retry-After": "0"}, {}], ids=["retry-after", "no-header"])
def test_rate_limited_writes_are_retried(server: FakeQdrant, model: ColBERT, headers: dict[str, str]) -> None:
    store = open_remote(server, model)
    server.faults.append(Fault(r"PUT /collections/docs/points$", times=2, status=429, headers=headers))
    store.add(["one", "two"], ids=["1", "2"])
    assert store.count() == 2
    assert server.requests.count("PUT /collections/docs/points") == 3


@pytest.mark.parametrize(("asked", "waited"), [(2, 2.0), (600, 8.0)])
def test_retry_after_is_honoured_up_to_the_cap(asked: int, waited: float) -> None:
    from qdrant_client.common.client_exceptions import ResourceExhaustedResponse

    attempts: list[int] = []
    waits: list[float] = []

    def rate_limited() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise ResourceExhaustedResponse("slow down", asked)
        return "done"

    policy = RetryPolicy(backoff=0.01, max_delay=8.0, deadline=1000.0)
    assert call_with_retries(rate_limited, what="upsert", where="http://q", policy=policy, sleep=waits.append) == "done"
    assert waits == [waited, waited]


def test_creating_the_collection_is_retried(server: FakeQdrant, model: ColBERT) -> None:
    server.faults.append(Fault(r"PUT /collections/docs$", times=2, status=503))
    store = open_remote(server, model)
    assert "docs" in server.collections
    assert server.requests.count("PUT /collections/docs") == 3
    store.add(["one"], ids=["1"])
    assert store.count() == 1


@pytest.mark.parametrize("status", [400, 403, 404, 409, 500])
def test_client_errors_are_not_retried(server: FakeQdrant, model: ColBERT, status: int) -> None:
    store = open_remote(server, model)
    server.faults.append(Fault(r"PUT /collections/docs/points$", times=5, status=status))
    with pytest.raises(QdrantRequestError, match=rf"Qdrant at {re.escape(server.url)}.*refused upsert.*{status}"):
        store.add(["one"], ids=["one"])
    assert server.requests.count("PUT /collections/docs/points") == 1
    assert store.count() == 0


def test_persistent_503_gives_up_after_the_retries_naming_the_url(server: FakeQdrant, model: ColBERT) -> None:
    store = open_remote(server, model, retries=2)
    server.faults.append(Fault(r"PUT /collections/docs/points$", times=100, status=503))
    with pytest.raises(QdrantUnavailableError, match=re.escape(server.url)) as caught:
        store.add(["one"], ids=["one"])
    assert "3 time(s)" in str(caught.value) and "503" in str(caught.value)
    assert server.requests.count("PUT /collections/docs/points") == 3
    # The store stays usable once the server recovers, and a rerun writes the document.
    server.faults.clear()
    store.add(["one"], ids=["one"])
    assert store.count() == 1


def test_a_server_down_mid_stream_loses_no_acknowledged_batch_and_a_rerun_completes(
    server: FakeQdrant, model: ColBERT
) -> None:
    store = open_remote(server, model, retries=1)
    server.faults.append(Fault(r"PUT /collections/docs/points$", times=100, status=503, after=2))
    docs = [{"id": f"n{i}", "text": f"note {i} on glaciers"} for i in range(50)]
    acknowledged: list[str] = []
    with pytest.raises(QdrantUnavailableError, match=re.escape(server.url)):
        store.add_documents(docs, batch_size=10, on_batch=acknowledged.extend)
    assert acknowledged == [f"n{i}" for i in range(20)]
    assert store.count() == 20 and len(store.get(acknowledged)) == 20
    server.faults.clear()
    report = store.add_documents(docs, batch_size=10)
    assert (report.added, report.unchanged) == (30, 20)
    assert store.count() == 50
    # Each point was written exactly once: retried upserts rewrote nothing twice that was acknowledged.
    assert sorted(server.upserted) == sorted(set(server.upserted))


def test_a_hanging_server_times_out_and_the_retry_succeeds(server: FakeQdrant, model: ColBERT) -> None:
    store = open_remote(server, model)
    server.faults.append(Fault(r"POST /collections/docs/points/count", times=1, hang_s=5))
    started = time.monotonic()
    assert store.count() == 0
    assert time.monotonic() - started < 5
    assert server.requests.count("POST /collections/docs/points/count") == 2


@pytest.mark.slow
def test_a_server_that_always_hangs_fails_in_bounded_time(server: FakeQdrant, model: ColBERT) -> None:
    store = open_remote(server, model, retries=1)
    server.faults.append(Fault(r"POST /collections/docs/points/count", times=100, hang_s=30))
    started = time.monotonic()
    with pytest.raises(QdrantUnavailableError, match=re.escape(server.url)) as caught:
        store.count()
    assert time.monotonic() - started < 15  # two attempts of a 2 s timeout, not the 30 s hang
    assert "Timeout" in str(caught.value)


def test_nothing_listening_names_the_url(model: ColBERT) -> None:
    from edgecolbert.store import QdrantStore

    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(StoreError, match=rf"Could not reach Qdrant at {re.escape(url)}") as caught:
        QdrantStore("docs", model, url=url, api_key=SECRET, retries=2, retry_backoff=0.01)
    assert time.monotonic() - started < 10
    assert "ConnectError" in str(caught.value) and "3 time(s)" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_the_deadline_bounds_total_retry_time() -> None:
    import httpx
    from qdrant_client.http.exceptions import ResponseHandlingException

    attempts: list[float] = []
    clock = [0.0]

    def failing() -> None:
        attempts.append(clock[0])
        raise ResponseHandlingException(httpx.ConnectError("connection reset"))

    waits: list[float] = []
    policy = RetryPolicy(retries=50, backoff=1.0, max_delay=1.0, deadline=3.0)

    def fake_sleep(seconds: float) -> None:
        waits.append(seconds)
        clock[0] += seconds

    with pytest.raises(QdrantUnavailableError, match="connection reset"):
        call_with_retries(
            failing, what="count", where="http://q", policy=policy, sleep=fake_sleep, clock=lambda: clock[0]
        )
    # No retry starts past the deadline, so far fewer than the 50 allowed attempts ran.
    assert attempts[-1] <= 3.0 and 2 <= len(attempts) < 50
    assert all(0.0 <= wait <= 1.0 for wait in waits)


def test_backoff_is_exponential_with_jitter() -> None:
    import random

    policy = RetryPolicy(backoff=0.1, max_delay=10.0)
    rng = random.Random(7)
    for retry in range(6):
        caps = [policy.delay(retry, rng) for _ in range(200)]
        assert max(caps) <= 0.1 * 2**retry and min(caps) >= 0
        assert max(caps) > 0.5 * 0.1 * 2**retry  # spread over the whole interval, not a fixed delay
        assert len(set(caps)) > 100


def test_an_unexpected_error_is_not_retried() -> None:
    calls: list[int] = []

    def broken() -> None:
        calls.append(1)
        raise KeyError("a bug, not the network")

    with pytest.raises(KeyError):
        call_with_retries(broken, what="count", where="http://q", policy=RetryPolicy(backoff=0.0))
    assert calls == [1]


@pytest.mark.parametrize("options", [{"retries": -1}, {"retry_backoff": -0.5}, {"retry_deadline": 0}])
def test_bad_retry_settings_are_refused(model: ColBERT, options: dict[str, Any]) -> None:
    from edgecolbert.store import QdrantStore

    with pytest.raises(InvalidInputError, match="retry settings"):
        QdrantStore("docs", model, url="http://127.0.0.1:1", **options)


def test_the_api_key_reaches_the_server_but_no_log_repr_or_error(
    server: FakeQdrant, model: ColBERT, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        store = open_remote(server, model)
        server.faults.append(Fault(r"PUT /collections/docs/points$", times=1, status=503))
        store.add(["text"], ids=["t"])
        server.faults.append(Fault(r"PUT /collections/docs/points$", times=1, status=401))
        with pytest.raises(QdrantRequestError) as caught:
            store.add(["other"], ids=["o"])
    assert server.api_keys == {SECRET}
    assert SECRET not in caplog.text
    assert SECRET not in repr(store) and SECRET not in str(store)
    assert SECRET not in str(caught.value) and SECRET not in repr(caught.value)
