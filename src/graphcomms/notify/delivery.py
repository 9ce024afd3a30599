"""Deliver webhook notifications from the durable outbox.

Each notification is written to the outbox first (``OutboxStore``), and only
then POSTed to its callback URL, so a restart loses nothing acknowledged.

Facts about delivery
--------------------
- Per call, notifications go out strictly in ``seq`` order: each call with
  pending work has one worker task, which sends the head of its queue and
  moves on only once that notification is delivered or has failed for good.
- Calls are independent. Their workers run in parallel, so a dead receiver
  on one call delays nothing on another.
- Any 2xx is delivered. Everything else (3xx, 4xx, 5xx, a timeout, a refused
  or dropped connection) is retried with capped exponential backoff, up to
  ``RetryPolicy.attempts``. A local bot answering 4xx may just be restarting,
  so 4xx gets the same bounded attempts as 5xx.
- A notification that runs out of attempts is marked ``failed`` in the outbox
  (kept and visible, never dropped) and its call's next notification goes on.
- Every attempt is recorded in the outbox. The budget of attempts spans
  restarts: a row that already had attempts gets only what remains of it.
- If the outbox itself fails (``record_attempt`` raises), that call's delivery
  halts until the next ``start()``: its later notifications are stored but not
  sent, since sending them first would break the call's order.
- ``aclose()`` abandons an attempt in flight without recording it, so the row
  stays ``pending`` and the next ``start()`` sends it again. Receivers may
  therefore see a notification twice across a restart, never zero times.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, Protocol

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from graphcomms import __version__
from graphcomms.notify.faults import FaultDice, FaultPlan
from graphcomms.outbound import outbound_client

logger = logging.getLogger(__name__)

REORDER_WINDOW_S = 0.1
"""With reordering on, how long a call's notifications gather before one is picked."""
DROPPED = "dropped by fault injection"
USER_AGENT = f"graphcomms/{__version__}"

AttemptOutcome = Literal["delivered", "retrying", "failed"]
"""What one delivery attempt left the outbox row as."""


class OutboxEntryView(Protocol):
    """Expose the fields of an outbox row that delivery reads."""

    @property
    def seq(self) -> int: ...

    @property
    def call_id(self) -> str: ...

    @property
    def url(self) -> str: ...

    @property
    def payload(self) -> dict[str, Any]: ...

    @property
    def status(self) -> str: ...

    @property
    def attempts(self) -> int: ...


class OutboxStore(Protocol):
    """Persist notifications and the outcome of each delivery attempt."""

    def add_notification(self, call_id: str, url: str, payload: dict[str, Any]) -> int:
        """Store a pending notification and return its ``seq`` (global order)."""
        ...

    def requeue(self, seq: int) -> bool: ...

    def pending_notifications(self) -> Sequence[OutboxEntryView]:
        """Return every pending notification, in ``seq`` order."""
        ...

    def record_attempt(
        self,
        seq: int,
        *,
        at: float,
        status_code: int | None,
        error: str | None,
        outcome: AttemptOutcome,
    ) -> None:
        """Record one attempt on ``seq`` and move the row to ``outcome``."""
        ...


@dataclass(frozen=True)
class RetryPolicy:
    """Bound how often, and how patiently, a notification is sent.

    Attributes:
        attempts: Attempts per notification before it is marked failed.
        initial_delay_s: Delay after the first failure; it doubles after each
            further failure.
        max_delay_s: Cap on the delay between two attempts.
        timeout_s: Deadline of one POST, from connect to response. Graph
            expects a bot to answer its callbacks within 5 s.
        jitter: Draw each delay between half and all of the backoff, so
            receivers coming back are not hit by every call at once.
    """

    attempts: int = 8
    initial_delay_s: float = 0.5
    max_delay_s: float = 30.0
    timeout_s: float = 5.0
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, not {self.attempts}")
        if self.initial_delay_s < 0 or self.max_delay_s < 0:
            raise ValueError("delays must not be negative")
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, not {self.timeout_s}")


@dataclass(slots=True)
class _Notification:
    """A notification in a call's delivery queue."""

    seq: int
    call_id: str
    url: str
    payload: dict[str, Any]
    attempts: int
    """Attempts made so far, earlier runs included."""
    attempt_limit: int


class _AttemptFailed(Exception):
    """An attempt got no 2xx; carries what the outbox records about it."""

    def __init__(self, at: float, status_code: int | None, reason: str) -> None:
        super().__init__(reason)
        self.at = at
        self.status_code = status_code
        self.reason = reason


class WebhookDelivery:
    """Deliver outbox notifications to callback URLs, in order per call.

    Args:
        store: The outbox. Its methods are called from the event loop and
            should return quickly (a local SQLite write).
        policy: Retries, backoff and per-request deadline.
        client: An HTTP client to share; when omitted, one is created on
            ``start()`` and closed by ``aclose()``.
        headers: Extra headers for every POST (for example Authorization).
            They are sent, never logged.
    """

    def __init__(
        self,
        store: OutboxStore,
        *,
        policy: RetryPolicy = RetryPolicy(),
        client: httpx.AsyncClient | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self._store = store
        self._policy = policy
        self._client = client
        self._owns_client = client is None
        self._headers = httpx.Headers({"User-Agent": USER_AGENT})
        self._headers.update(headers or {})
        self._headers["Content-Type"] = "application/json"
        self._backoff = _backoff(policy)
        self._running = False
        self._queues: dict[str, deque[_Notification]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._halted: set[str] = set()
        self._dice = FaultDice(FaultPlan())
        self._idle = asyncio.Event()
        self._idle.set()

    def __repr__(self) -> str:
        state = "running" if self._running else "stopped"
        queued = sum(len(queue) for queue in self._queues.values())
        return (
            f"<WebhookDelivery {state}, {queued} notifications queued "
            f"on {len(self._queues)} calls>"
        )

    @property
    def policy(self) -> RetryPolicy:
        """The retry policy in force."""
        return self._policy

    @property
    def idle(self) -> bool:
        """Whether no notification is queued or in flight in this process.

        Rows enqueued while stopped wait in the outbox and do not count.
        """
        return not self._queues

    async def start(self) -> None:
        """Start delivering, first the rows an earlier run left pending."""
        if self._running:
            return
        pending = self._store.pending_notifications()
        if self._client is None:
            self._client = outbound_client(follow_redirects=False)
        self._running = True
        self._halted.clear()
        for entry in pending:
            self._schedule(self._from_entry(entry))

        if pending:
            calls = {entry.call_id for entry in pending}
            logger.warning(
                "recovered %d pending notifications of %d calls from the outbox",
                len(pending),
                len(calls),
            )

    def enqueue(self, call_id: str, url: str, payload: dict[str, Any]) -> int:
        """Store a notification in the outbox and wake its call's delivery.

        Never blocks: the POST happens later, in the call's worker task. Call
        it from the event loop's thread (synchronous code is fine). While
        delivery is stopped, or halted for this call by an outbox error, the
        row just waits in the outbox for ``start()``.

        Returns:
            The notification's ``seq``.

        Raises:
            RuntimeError: Delivery is running and no event loop runs in this
                thread; nothing was stored.
        """
        if self._running:
            asyncio.get_running_loop()  # fail before storing, not after
        seq = self._store.add_notification(call_id, url, payload)
        if self._running and call_id not in self._halted:
            attempt_limit = self._policy.attempts
            self._schedule(_Notification(seq, call_id, url, payload, 0, attempt_limit))
        return seq

    def redeliver(self, seq: int) -> bool:
        """Put the failed notification ``seq`` back in line, with one more try.

        Returns:
            False if no failed notification has this ``seq``.
        """
        if not self._store.requeue(seq):
            return False
        pending = self._store.pending_notifications()
        entry = next((e for e in pending if e.seq == seq), None)
        if entry is not None and self._running and entry.call_id not in self._halted:
            self._schedule(self._from_entry(entry))
        return True

    async def drain(self, timeout_s: float | None = None) -> bool:
        """Wait until nothing is queued or in flight.

        Returns:
            True once idle; False if ``timeout_s`` passed first.
        """
        try:
            async with asyncio.timeout(timeout_s):
                while not self.idle:
                    await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def aclose(self) -> None:
        """Stop every worker; undelivered rows stay pending in the outbox.

        Idempotent. An attempt in flight is abandoned and not recorded.
        """
        self._running = False
        workers = list(self._workers.values())
        left = sum(len(queue) for queue in self._queues.values())
        for task in workers:
            task.cancel()
        try:
            if workers:
                await asyncio.wait(workers)
        finally:
            # a task cancelled before its first step never runs its finally
            self._queues.clear()
            self._workers.clear()
            self._idle.set()
            if self._owns_client and self._client is not None:
                client, self._client = self._client, None
                await client.aclose()

        if left:
            logger.warning(
                "delivery stopped; %d notifications of %d calls stay pending "
                "in the outbox",
                left,
                len(workers),
            )

    def _from_entry(self, entry: OutboxEntryView) -> _Notification:
        attempt_limit = max(self._policy.attempts, entry.attempts + 1)
        return _Notification(
            entry.seq,
            entry.call_id,
            entry.url,
            entry.payload,
            entry.attempts,
            attempt_limit,
        )

    def _schedule(self, note: _Notification) -> None:
        queue = self._queues.get(note.call_id)
        if queue is None:
            queue = self._queues[note.call_id] = deque()
            self._workers[note.call_id] = asyncio.get_running_loop().create_task(
                self._run_call(note.call_id, queue),
                name=f"webhook-delivery call={note.call_id}",
            )
        queue.append(note)
        self._idle.clear()

    @property
    def faults(self) -> FaultPlan:
        """Return the faults injected into delivery (none by default)."""
        return self._dice.plan

    @faults.setter
    def faults(self, plan: FaultPlan) -> None:
        self._dice = FaultDice(plan)

    async def _run_call(self, call_id: str, queue: deque[_Notification]) -> None:
        try:
            while queue:
                if self._dice.plan.reorder:
                    await self._shuffle_head(queue)
                await self._deliver(queue[0])
                queue.popleft()
        except Exception:
            # sending later notifications now would break the call's order
            self._halted.add(call_id)
            logger.exception(
                "call=%s delivery halted by an unexpected error; its pending "
                "notifications wait in the outbox until the next start",
                call_id,
            )
        finally:
            # no await since the loop saw an empty queue: nothing can slip in
            self._queues.pop(call_id, None)
            self._workers.pop(call_id, None)
            if not self._queues:
                self._idle.set()

    async def _shuffle_head(self, queue: deque[_Notification]) -> None:
        # a short wait lets a burst gather, so there is something to reorder
        await asyncio.sleep(REORDER_WINDOW_S)
        index = self._dice.pick(len(queue))
        if index:
            note = queue[index]
            del queue[index]
            queue.appendleft(note)

    async def _deliver(self, note: _Notification) -> None:
        plan = self._dice.plan
        if plan.delay_ms:
            await asyncio.sleep(plan.delay_ms / 1000)
        if self._dice.roll(plan.drop):
            self._drop(note)
            return
        retrying = AsyncRetrying(
            stop=stop_after_attempt(note.attempt_limit - note.attempts),
            wait=self._backoff,
            retry=retry_if_exception_type(_AttemptFailed),
            before_sleep=partial(self._retrying, note),
            reraise=True,
        )
        try:
            result: tuple[int, float] = await retrying(self._post, note)
        except _AttemptFailed as failure:
            self._give_up(note, failure)
        else:
            self._delivered(note, *result)
            if self._dice.roll(plan.duplicate):
                with contextlib.suppress(_AttemptFailed):
                    await self._post(note)

    def _drop(self, note: _Notification) -> None:
        self._store.record_attempt(
            note.seq,
            at=time.time(),
            status_code=None,
            error=DROPPED,
            outcome="failed",
        )
        logger.warning(
            "call=%s notification=%d not sent: %s", note.call_id, note.seq, DROPPED
        )

    async def _post(self, note: _Notification) -> tuple[int, float]:
        client = self._client
        if client is None:
            raise RuntimeError("WebhookDelivery is not started")
        timeout_s = self._policy.timeout_s
        note.attempts += 1
        at = time.time()

        try:
            async with asyncio.timeout(timeout_s):
                response = await client.post(
                    note.url,
                    json=note.payload,
                    headers=self._headers,
                    timeout=timeout_s,
                )
        except TimeoutError:
            raise _AttemptFailed(
                at, None, f"no response within {timeout_s:g} s"
            ) from None
        except Exception as exc:
            # transport errors mostly; a payload httpx cannot encode ends the
            # same way, as a failed row someone can see
            raise _AttemptFailed(at, None, _describe(exc)) from exc

        if not response.is_success:
            reason = f"{response.status_code} {response.reason_phrase}".rstrip()
            raise _AttemptFailed(at, response.status_code, reason)
        return response.status_code, at

    def _retrying(self, note: _Notification, state: RetryCallState) -> None:
        failure = _failure_of(state)
        delay_s = state.next_action.sleep if state.next_action else 0.0
        self._store.record_attempt(
            note.seq,
            at=failure.at,
            status_code=failure.status_code,
            error=failure.reason,
            outcome="retrying",
        )
        logger.warning(
            "call=%s notification=%d POST %s failed: %s (attempt %d of %d); "
            "retrying in %.3g s",
            note.call_id,
            note.seq,
            _loggable(note.url),
            failure.reason,
            note.attempts,
            note.attempt_limit,
            delay_s,
        )

    def _give_up(self, note: _Notification, failure: _AttemptFailed) -> None:
        self._store.record_attempt(
            note.seq,
            at=failure.at,
            status_code=failure.status_code,
            error=failure.reason,
            outcome="failed",
        )
        logger.error(
            "call=%s notification=%d POST %s failed: %s; giving up after %d "
            "attempts, kept as failed in the outbox; the call's next "
            "notification goes on",
            note.call_id,
            note.seq,
            _loggable(note.url),
            failure.reason,
            note.attempts,
        )

    def _delivered(self, note: _Notification, status_code: int, at: float) -> None:
        self._store.record_attempt(
            note.seq, at=at, status_code=status_code, error=None, outcome="delivered"
        )
        # after warnings, say that the receiver is back; otherwise stay quiet
        level = logging.INFO if note.attempts > 1 else logging.DEBUG
        logger.log(
            level,
            "call=%s notification=%d POST %s delivered: %d (attempt %d)",
            note.call_id,
            note.seq,
            _loggable(note.url),
            status_code,
            note.attempts,
        )


def _backoff(policy: RetryPolicy) -> Callable[[RetryCallState], float]:
    """Return the delay function for ``policy``: capped doubling, maybe jittered."""
    exponential = wait_exponential(
        multiplier=policy.initial_delay_s, max=policy.max_delay_s
    )
    if not policy.jitter:
        return exponential

    def jittered(state: RetryCallState) -> float:
        delay_s = exponential(state)
        return random.uniform(delay_s / 2, delay_s)

    return jittered


def _failure_of(state: RetryCallState) -> _AttemptFailed:
    """Return the failure that made tenacity schedule another attempt."""
    failure = state.outcome.exception() if state.outcome else None
    # only _AttemptFailed is retried, so nothing else reaches before_sleep
    assert isinstance(failure, _AttemptFailed)
    return failure


def _describe(exc: Exception) -> str:
    """Name a failure, e.g. ``ConnectError: All connection attempts failed``."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _loggable(url: str) -> str:
    """Return ``url`` fit for a log: no userinfo, no query (either may be a key)."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return "<invalid URL>"
    shown = parsed.copy_with(username=None, password=None, query=None, fragment=None)
    return f"{shown}?..." if parsed.query else str(shown)
