"""Webhook delivery against a real HTTP receiver on 127.0.0.1.

The receiver is a small HTTP/1.1 server on asyncio streams. Each path can be
scripted to answer its next requests with a status, to stall (never answer)
or to drop the connection; unscripted requests get 202 Accepted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import httpx
import pytest

from graphcomms import __version__
from graphcomms.notify import RetryPolicy, WebhookDelivery
from graphcomms.notify.delivery import AttemptOutcome
from graphcomms.notify.faults import FaultPlan

LOGGER = "graphcomms.notify.delivery"
SECRET = "s3cret-token"
FAST = RetryPolicy(
    attempts=3, initial_delay_s=0.01, max_delay_s=0.02, timeout_s=1.0, jitter=False
)
WAIT_S = 5.0


class Changes:
    """Wake waiters whenever a fake changes, so tests wait without polling."""

    def __init__(self) -> None:
        self._changed = asyncio.Event()

    def ping(self) -> None:
        self._changed.set()

    async def until(self, check: Callable[[], bool]) -> None:
        async with asyncio.timeout(WAIT_S):
            while not check():
                self._changed.clear()
                await self._changed.wait()


# the outbox: an in-memory fake of OutboxStore


@dataclass(frozen=True)
class Attempt:
    at: float
    status_code: int | None
    error: str | None
    outcome: AttemptOutcome


@dataclass
class Row:
    seq: int
    call_id: str
    url: str
    payload: dict[str, Any]
    status: str = "pending"
    attempts: int = 0
    history: list[Attempt] = field(default_factory=list)


class FakeOutbox:
    """Keep outbox rows in a dict, with the status moves of the real store."""

    def __init__(self) -> None:
        self.rows: dict[int, Row] = {}
        self.changes = Changes()
        self.broken = False

    def add_notification(self, call_id: str, url: str, payload: dict[str, Any]) -> int:
        seq = len(self.rows) + 1
        self.rows[seq] = Row(seq, call_id, url, payload)
        return seq

    def pending_notifications(self) -> list[Row]:
        return [row for _, row in sorted(self.rows.items()) if row.status == "pending"]

    def record_attempt(
        self,
        seq: int,
        *,
        at: float,
        status_code: int | None,
        error: str | None,
        outcome: AttemptOutcome,
    ) -> None:
        if self.broken:
            raise OSError("disk full")
        row = self.rows[seq]
        assert row.status == "pending", f"attempt recorded on a {row.status} row"
        row.attempts += 1
        row.history.append(Attempt(at, status_code, error, outcome))
        row.status = "pending" if outcome == "retrying" else outcome
        self.changes.ping()

    def requeue(self, seq: int) -> bool:
        row = self.rows.get(seq)
        if row is None or row.status != "failed":
            return False
        row.status = "pending"
        return True

    def outcomes(self, seq: int) -> list[str]:
        return [attempt.outcome for attempt in self.rows[seq].history]


# the receiver: a real HTTP server


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    answer: str


class Receiver:
    """Serve HTTP/1.1 on 127.0.0.1, record every request, answer as scripted."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self._scripts: dict[str, deque[str]] = {}
        self._release = asyncio.Event()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._server: asyncio.Server | None = None
        self._changes = Changes()
        self.port = 0

    async def __aenter__(self) -> Receiver:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._release.set()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=WAIT_S)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, path: str, *answers: str) -> None:
        """Answer the next requests on ``path`` with a status, stall or drop."""
        self._scripts.setdefault(path, deque()).extend(answers)

    def delivered(self, path: str | None = None) -> list[dict[str, Any]]:
        """Return the bodies answered 2xx, in arrival order."""
        return [
            r.body
            for r in self.requests
            if r.answer.startswith("2") and path in (None, r.path)
        ]

    async def wait_for(self, count: int, path: str | None = None) -> None:
        """Wait until ``count`` requests (on ``path``, if given) have arrived."""
        await self._changes.until(
            lambda: len([r for r in self.requests if path in (None, r.path)]) >= count
        )

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            while await self._answer_one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            self._handlers.discard(task)

    async def _answer_one(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Read and answer one request; return whether to keep the connection."""
        request_line = await reader.readline()
        if not request_line:
            return False
        method, target, _ = request_line.decode("ascii").split(" ", 2)
        headers: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, value = line.decode("latin-1").split(":", 1)
            headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))

        path = target.split("?", 1)[0]
        script = self._scripts.get(path)
        answer = script.popleft() if script else "202"
        self.requests.append(Request(method, path, headers, json.loads(body), answer))
        self._changes.ping()
        if answer == "drop":
            return False
        if answer == "stall":
            await self._release.wait()
            return False

        phrase = HTTPStatus(int(answer)).phrase
        head = f"HTTP/1.1 {answer} {phrase}\r\nContent-Length: 0\r\n\r\n"
        writer.write(head.encode("ascii"))
        await writer.drain()
        return True


def closed_port_url() -> str:
    """Return a URL on which nothing listens: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/gone"


def delivery_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("webhook-")]


# fixtures


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as receiver:
        yield receiver


@pytest.fixture
def store() -> FakeOutbox:
    return FakeOutbox()


Starter = Callable[..., Awaitable[WebhookDelivery]]


@pytest.fixture
async def started(store: FakeOutbox, receiver: Receiver) -> AsyncIterator[Starter]:
    """Start deliveries on ``store``; close them all at teardown."""
    deliveries: list[WebhookDelivery] = []

    async def start(policy: RetryPolicy = FAST, **kwargs: Any) -> WebhookDelivery:
        kwargs.setdefault("headers", {"Authorization": f"Bearer {SECRET}"})
        delivery = WebhookDelivery(store, policy=policy, **kwargs)
        deliveries.append(delivery)
        await delivery.start()
        return delivery

    yield start
    for delivery in deliveries:
        await delivery.aclose()


@pytest.fixture
async def delivery(started: Starter) -> WebhookDelivery:
    return await started()


# ordering and the request itself


async def test_delivery_posts_each_call_in_seq_order(
    delivery: WebhookDelivery, store: FakeOutbox, receiver: Receiver
) -> None:
    """Interleaved calls each arrive in their own enqueue order."""
    for n in range(5):
        for call in ("a", "b", "c"):
            delivery.enqueue(call, receiver.url(f"/{call}"), {"call": call, "n": n})

    assert await delivery.drain(WAIT_S)

    for call in ("a", "b", "c"):
        assert [body["n"] for body in receiver.delivered(f"/{call}")] == [0, 1, 2, 3, 4]
    assert all(row.status == "delivered" for row in store.rows.values())
    assert all(row.attempts == 1 for row in store.rows.values())


async def test_delivery_posts_json_with_identity_and_given_headers(
    delivery: WebhookDelivery, receiver: Receiver
) -> None:
    delivery.enqueue("a", receiver.url("/a"), {"value": [{"changeType": "deleted"}]})
    assert await delivery.drain(WAIT_S)

    (request,) = receiver.requests
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == f"graphcomms/{__version__}"
    assert request.headers["authorization"] == f"Bearer {SECRET}"
    assert request.body == {"value": [{"changeType": "deleted"}]}


async def test_delivery_holds_later_notifications_while_head_retries(
    delivery: WebhookDelivery, receiver: Receiver
) -> None:
    """A retried head is never overtaken by the call's next notifications."""
    receiver.script("/a", "503", "503")
    for n in range(3):
        delivery.enqueue("a", receiver.url("/a"), {"n": n})

    assert await delivery.drain(WAIT_S)

    assert [r.body["n"] for r in receiver.requests] == [0, 0, 0, 1, 2]


# retries and failures


async def test_delivery_after_503s_records_each_attempt(
    delivery: WebhookDelivery,
    store: FakeOutbox,
    receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    receiver.script("/a", "503", "503")
    seq = delivery.enqueue("a", receiver.url("/a?code=key-in-query"), {"n": 0})

    assert await delivery.drain(WAIT_S)

    row = store.rows[seq]
    assert (row.status, row.attempts) == ("delivered", 3)
    assert [a.status_code for a in row.history] == [503, 503, 202]
    assert [a.error for a in row.history] == [
        "503 Service Unavailable",
        "503 Service Unavailable",
        None,
    ]
    assert store.outcomes(seq) == ["retrying", "retrying", "delivered"]
    times = [a.at for a in row.history]
    assert times == sorted(times)

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    url = f"http://127.0.0.1:{receiver.port}/a?..."
    assert warnings == [
        f"call=a notification={seq} POST {url} failed: 503 Service Unavailable "
        "(attempt 1 of 3); retrying in 0.01 s",
        f"call=a notification={seq} POST {url} failed: 503 Service Unavailable "
        "(attempt 2 of 3); retrying in 0.02 s",
    ]
    assert SECRET not in caplog.text
    assert "key-in-query" not in caplog.text


async def test_delivery_to_dead_receiver_fails_row_and_call_goes_on(
    delivery: WebhookDelivery,
    store: FakeOutbox,
    receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A notification nobody takes is kept as failed; the next one still goes."""
    dead = delivery.enqueue("a", closed_port_url(), {"n": 0})
    alive = delivery.enqueue("a", receiver.url("/a"), {"n": 1})

    assert await delivery.drain(WAIT_S)

    failed = store.rows[dead]
    assert (failed.status, failed.attempts) == ("failed", FAST.attempts)
    assert store.outcomes(dead) == ["retrying", "retrying", "failed"]
    assert all(a.status_code is None for a in failed.history)
    assert all("ConnectError" in (a.error or "") for a in failed.history)
    assert store.rows[alive].status == "delivered"
    assert store.rows[alive].history[0].at >= failed.history[-1].at
    assert receiver.delivered() == [{"n": 1}]

    (error,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert f"call=a notification={dead} POST http://127.0.0.1:" in error.getMessage()
    assert "giving up after 3 attempts" in error.getMessage()


async def test_redeliver_sends_a_failed_row_again_while_running(
    delivery: WebhookDelivery, store: FakeOutbox, receiver: Receiver
) -> None:
    """A failed notification put back in line goes out without a restart."""
    receiver.script("/a", *["503"] * FAST.attempts)
    seq = delivery.enqueue("a", receiver.url("/a"), {"n": 0})
    assert await delivery.drain(WAIT_S)
    assert store.rows[seq].status == "failed"

    assert delivery.redeliver(seq)

    assert await delivery.drain(WAIT_S)
    assert store.rows[seq].status == "delivered"
    assert receiver.delivered() == [{"n": 0}]
    assert not delivery.redeliver(seq)
    assert not delivery.redeliver(999)


@pytest.mark.parametrize("status", ["302", "404", "500"])
async def test_delivery_retries_any_non_2xx_within_the_same_bound(
    delivery: WebhookDelivery, store: FakeOutbox, receiver: Receiver, status: str
) -> None:
    receiver.script("/a", *[status] * FAST.attempts)
    seq = delivery.enqueue("a", receiver.url("/a"), {"n": 0})

    assert await delivery.drain(WAIT_S)

    assert store.rows[seq].status == "failed"
    assert [a.status_code for a in store.rows[seq].history] == [int(status)] * 3
    assert len(receiver.requests) == FAST.attempts


async def test_delivery_times_out_stalled_receiver_then_retries(
    started: Starter, store: FakeOutbox, receiver: Receiver
) -> None:
    delivery = await started(RetryPolicy(attempts=2, initial_delay_s=0, timeout_s=0.2))
    receiver.script("/a", "stall")
    seq = delivery.enqueue("a", receiver.url("/a"), {"n": 0})

    assert await delivery.drain(WAIT_S)

    first, second = store.rows[seq].history
    assert (first.outcome, first.status_code) == ("retrying", None)
    assert first.error is not None
    assert (second.outcome, second.status_code) == ("delivered", 202)


async def test_delivery_retries_dropped_connection(
    delivery: WebhookDelivery, store: FakeOutbox, receiver: Receiver
) -> None:
    receiver.script("/a", "drop")
    seq = delivery.enqueue("a", receiver.url("/a"), {"n": 0})

    assert await delivery.drain(WAIT_S)

    assert store.outcomes(seq) == ["retrying", "delivered"]
    assert "RemoteProtocolError" in (store.rows[seq].history[0].error or "")


async def test_delivery_jitter_keeps_delays_between_half_and_full_backoff(
    started: Starter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    policy = RetryPolicy(attempts=6, initial_delay_s=0.02, max_delay_s=0.02)
    delivery = await started(policy)
    delivery.enqueue("a", closed_port_url(), {"n": 0})

    assert await delivery.drain(WAIT_S)

    delays = [
        float(re.findall(r"retrying in (\S+) s", r.getMessage())[0])
        for r in caplog.records
        if r.levelno == logging.WARNING
    ]
    assert len(delays) == 5
    assert all(0.01 <= delay <= 0.02 for delay in delays)


async def test_delivery_fails_a_payload_that_cannot_be_sent(
    delivery: WebhookDelivery, store: FakeOutbox, receiver: Receiver
) -> None:
    bad = delivery.enqueue("a", receiver.url("/a"), {"when": object()})
    good = delivery.enqueue("a", receiver.url("/a"), {"n": 1})

    assert await delivery.drain(WAIT_S)

    assert store.rows[bad].status == "failed"
    assert "TypeError" in (store.rows[bad].history[0].error or "")
    assert store.rows[good].status == "delivered"


# independence of calls


async def test_dead_receivers_do_not_delay_other_calls(
    started: Starter, store: FakeOutbox, receiver: Receiver
) -> None:
    """One call stalls, another backs off; a third is delivered meanwhile."""
    delivery = await started(RetryPolicy(attempts=3, initial_delay_s=10, timeout_s=10))
    receiver.script("/stalled", "stall")
    stalled = delivery.enqueue("stalled", receiver.url("/stalled"), {"n": 0})
    backing_off = delivery.enqueue("gone", closed_port_url(), {"n": 0})
    await receiver.wait_for(1, "/stalled")
    await store.changes.until(lambda: store.rows[backing_off].attempts == 1)

    for n in range(3):
        delivery.enqueue("b", receiver.url("/b"), {"n": n})
    await receiver.wait_for(3, "/b")

    assert [body["n"] for body in receiver.delivered("/b")] == [0, 1, 2]
    assert store.rows[stalled].status == "pending"
    assert store.rows[backing_off].status == "pending"
    assert not delivery.idle


# lifecycle: restart, close, drain, enqueue


async def test_start_recovers_rows_left_pending_by_an_earlier_run(
    started: Starter, store: FakeOutbox, receiver: Receiver
) -> None:
    done = store.add_notification("a", receiver.url("/a"), {"n": 0})
    store.rows[done].status = "delivered"
    for n in (1, 2):
        store.add_notification("a", receiver.url("/a"), {"n": n})
    store.add_notification("b", receiver.url("/b"), {"n": 0})
    stopped = WebhookDelivery(store, policy=FAST)
    stopped.enqueue("a", receiver.url("/a"), {"n": 3})
    await asyncio.sleep(0.05)
    assert receiver.requests == []

    delivery = await started()
    assert await delivery.drain(WAIT_S)

    assert [body["n"] for body in receiver.delivered("/a")] == [1, 2, 3]
    assert [body["n"] for body in receiver.delivered("/b")] == [0]
    assert store.pending_notifications() == []


async def test_start_counts_attempts_made_by_an_earlier_run(
    delivery: WebhookDelivery, store: FakeOutbox
) -> None:
    await delivery.aclose()
    seq = store.add_notification("a", closed_port_url(), {"n": 0})
    store.rows[seq].attempts = FAST.attempts - 1

    await delivery.start()
    assert await delivery.drain(WAIT_S)

    assert store.rows[seq].status == "failed"
    assert store.outcomes(seq) == ["failed"]


async def test_aclose_leaves_undelivered_rows_pending(
    delivery: WebhookDelivery, started: Starter, store: FakeOutbox, receiver: Receiver
) -> None:
    """Closing mid-request abandons the attempt; a restart sends both rows."""
    receiver.script("/a", "stall")
    first = delivery.enqueue("a", receiver.url("/a"), {"n": 0})
    second = delivery.enqueue("a", receiver.url("/a"), {"n": 1})
    await receiver.wait_for(1)
    (worker,) = delivery_tasks()

    await delivery.aclose()
    await delivery.aclose()

    assert worker.cancelled()

    assert [store.rows[seq].status for seq in (first, second)] == ["pending"] * 2
    assert store.rows[first].history == []
    assert delivery.idle
    assert delivery_tasks() == []

    restarted = await started()
    assert await restarted.drain(WAIT_S)
    assert receiver.delivered() == [{"n": 0}, {"n": 1}]


async def test_aclose_during_backoff_keeps_row_pending(
    started: Starter, store: FakeOutbox
) -> None:
    delivery = await started(RetryPolicy(attempts=3, initial_delay_s=30))
    seq = delivery.enqueue("a", closed_port_url(), {"n": 0})
    await store.changes.until(lambda: store.rows[seq].attempts == 1)

    began = time.monotonic()
    await delivery.aclose()

    assert time.monotonic() - began < 1.0
    assert (store.rows[seq].status, store.outcomes(seq)) == ("pending", ["retrying"])
    assert delivery_tasks() == []


async def test_aclose_keeps_a_client_passed_in_open(
    started: Starter, receiver: Receiver
) -> None:
    async with httpx.AsyncClient() as client:
        delivery = await started(client=client)
        delivery.enqueue("a", receiver.url("/a"), {"n": 0})
        assert await delivery.drain(WAIT_S)

        await delivery.aclose()

        assert not client.is_closed
    assert receiver.delivered() == [{"n": 0}]


async def test_outbox_error_halts_the_call_until_restart_keeping_order(
    delivery: WebhookDelivery,
    store: FakeOutbox,
    receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Nothing later is sent ahead of a row whose outcome could not be stored."""
    store.broken = True
    first = delivery.enqueue("a", receiver.url("/a"), {"n": 0})
    assert await delivery.drain(WAIT_S)
    store.broken = False
    delivery.enqueue("a", receiver.url("/a"), {"n": 1})
    other = delivery.enqueue("b", receiver.url("/b"), {"n": 0})
    assert await delivery.drain(WAIT_S)

    assert receiver.delivered("/a") == [{"n": 0}]
    assert store.rows[first].status == "pending"
    assert store.rows[other].status == "delivered"
    assert "call=a delivery halted" in caplog.text

    await delivery.aclose()
    await delivery.start()
    assert await delivery.drain(WAIT_S)

    assert receiver.delivered("/a") == [{"n": 0}, {"n": 0}, {"n": 1}]
    assert store.pending_notifications() == []


async def test_drain_returns_at_once_when_idle(delivery: WebhookDelivery) -> None:
    assert delivery.idle
    assert await delivery.drain(0.01)


async def test_drain_times_out_while_receiver_stalls(
    delivery: WebhookDelivery, receiver: Receiver
) -> None:
    receiver.script("/a", "stall")
    delivery.enqueue("a", receiver.url("/a"), {"n": 0})

    assert not await delivery.drain(0.1)
    assert not delivery.idle


async def test_enqueue_works_from_a_synchronous_callback(
    delivery: WebhookDelivery, receiver: Receiver
) -> None:
    called = asyncio.Event()

    def engine_callback() -> None:
        delivery.enqueue("a", receiver.url("/a"), {"n": 0})
        called.set()

    asyncio.get_running_loop().call_soon(engine_callback)
    await called.wait()

    assert await delivery.drain(WAIT_S)
    assert receiver.delivered() == [{"n": 0}]


async def test_enqueue_off_the_loop_thread_raises_and_stores_nothing(
    delivery: WebhookDelivery, store: FakeOutbox, receiver: Receiver
) -> None:
    with pytest.raises(RuntimeError):
        await asyncio.to_thread(delivery.enqueue, "a", receiver.url("/a"), {})

    assert store.rows == {}


@pytest.mark.parametrize(
    "bad",
    [
        {"attempts": 0},
        {"initial_delay_s": -1.0},
        {"max_delay_s": -1.0},
        {"timeout_s": 0.0},
    ],
)
def test_retry_policy_rejects_impossible_values(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**bad)


# fault injection (BL-20)


async def test_reorder_fault_shuffles_a_burst_reproducibly(
    started: Starter, store: FakeOutbox, receiver: Receiver
) -> None:
    """With reorder on, a call's burst arrives shuffled, the same way per seed."""
    orders = []
    for _ in range(2):
        delivery = await started()
        delivery.faults = FaultPlan(seed=42, reorder=True)
        before = len(receiver.delivered())
        for n in range(6):
            delivery.enqueue("a", receiver.url("/a"), {"n": n})
        assert await delivery.drain(WAIT_S)
        orders.append([body["n"] for body in receiver.delivered()[before:]])
    assert sorted(orders[0]) == list(range(6))
    assert orders[0] != list(range(6))
    assert orders[0] == orders[1]


async def test_drop_fault_keeps_the_notification_as_failed(
    delivery: WebhookDelivery, store: FakeOutbox, receiver: Receiver
) -> None:
    """A dropped notification is never sent, and is visible as failed."""
    delivery.faults = FaultPlan(drop=1.0)
    seq = delivery.enqueue("a", receiver.url("/a"), {"n": 0})
    assert await delivery.drain(WAIT_S)
    assert receiver.delivered() == []
    row = store.rows[seq]
    assert row.status == "failed"
    assert row.history[-1].error == "dropped by fault injection"


async def test_duplicate_fault_posts_twice(
    delivery: WebhookDelivery, store: FakeOutbox, receiver: Receiver
) -> None:
    delivery.faults = FaultPlan(duplicate=1.0)
    seq = delivery.enqueue("a", receiver.url("/a"), {"n": 7})
    assert await delivery.drain(WAIT_S)
    assert receiver.delivered() == [{"n": 7}, {"n": 7}]
    assert store.rows[seq].status == "delivered"


def test_fault_plan_rejects_impossible_values() -> None:
    with pytest.raises(ValueError):
        FaultPlan(drop=1.5)
    with pytest.raises(ValueError):
        FaultPlan(delay_ms=-1)
    assert not FaultPlan(seed=3).active
    assert FaultPlan(reorder=True).active
