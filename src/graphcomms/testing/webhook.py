"""A bot's webhook for tests: receives commsNotifications over real HTTP.

``WebhookReceiver`` listens on 127.0.0.1, answers each POST with 202 and
records every ``commsNotification`` in the order it arrived, so a test can
wait for "the operation ended" or "the call is established" instead of
sleeping. It can also misbehave on purpose: answer errors for the next N
deliveries, or go down altogether (connections refused), to test retries.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, cast

from graphcomms.testing._httpd import HttpThread

DEFAULT_TIMEOUT_S = 5.0
SHOWN_IN_ERRORS = 25
"""How many of the latest notifications a timeout message lists."""


class NotificationTimeout(AssertionError):
    """No notification matched before the timeout."""


@dataclass(frozen=True, slots=True)
class Notification:
    """One ``commsNotification`` as the receiver got it.

    Attributes:
        index: Receipt order over the receiver's life, from 0.
        change_type: ``created``, ``updated`` or ``deleted``.
        resource_url: The changed resource, e.g.
            ``/communications/calls/{id}/operations/{opId}``.
        resource_data: The resource as sent (an object, or a list for a
            roster change).
        call_id: The call's id from ``resource_url`` (lower case), if any.
        operation_id: The operation's id from ``resource_url``, if any.
        item: The whole commsNotification object, as received.
    """

    index: int
    change_type: str
    resource_url: str
    resource_data: Any
    call_id: str | None
    operation_id: str | None
    item: dict[str, Any]

    @property
    def data(self) -> dict[str, Any]:
        """The resource data as an object (empty for a roster list)."""
        data = self.resource_data
        return data if isinstance(data, dict) else {}

    @property
    def odata_type(self) -> str | None:
        """The resource's ``@odata.type``, e.g. ``#microsoft.graph.call``."""
        value = self.data.get("@odata.type")
        return value if isinstance(value, str) else None

    def describe(self) -> str:
        """Return a one-line summary for failure messages."""
        data = self.data
        what = data.get("state") or data.get("status") or ""
        tone = data.get("toneInfo")
        if isinstance(tone, dict):
            what = f"{what} tone={tone.get('tone')}#{tone.get('sequenceId')}"
        kind = (self.odata_type or "").removeprefix("#microsoft.graph.")
        return f"#{self.index} {self.change_type} {kind} {self.resource_url} {what}"


@dataclass(frozen=True, slots=True)
class ToneInfo:
    """A key the caller pressed, as a call update reported it."""

    sequence_id: int
    tone: str


NotificationHandler = Callable[[Notification], None]
"""Called with each notification before the receiver answers its POST."""


class WebhookReceiver:
    """Receive and record the commsNotifications of calls.

    Args:
        handler: Called in the receiver's thread with each notification
            before the POST is answered, so a bot under test can react
            inside its webhook (e.g. answer an incoming call). If it raises,
            the POST is answered 500 and the error is kept in
            ``handler_errors``.
        path: The path the receiver listens on.

    Example::

        with WebhookReceiver() as receiver:
            ...  # create a call with callbackUri=receiver.url
            receiver.call_state(call_id, "established")
    """

    def __init__(
        self, handler: NotificationHandler | None = None, *, path: str = "/api/calls"
    ) -> None:
        self.handler = handler
        self.path = "/" + path.lstrip("/")
        self.handler_errors: list[BaseException] = []
        self._http = HttpThread(_WebhookHandler, self)
        self._changed = threading.Condition()
        self._notifications: list[Notification] = []
        self._posts = 0
        self._received = 0
        self._failures: list[int] = []

    def __repr__(self) -> str:
        return (
            f"<WebhookReceiver {self._http!r} notifications={len(self._notifications)}>"
        )

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # lifecycle and faults

    def start(self) -> WebhookReceiver:
        """Start listening; returns ``self``."""
        self._http.start()
        return self

    def stop(self) -> None:
        """Stop listening; idempotent. What was received stays readable."""
        self._http.stop()

    @property
    def url(self) -> str:
        """The callback URI to give graphcomms."""
        return f"http://127.0.0.1:{self._http.port}{self.path}"

    @property
    def is_up(self) -> bool:
        """Whether the receiver accepts connections."""
        return self._http.is_up

    def go_down(self) -> None:
        """Close the socket: deliveries fail with connection refused."""
        self._http.stop()

    def come_up(self) -> None:
        """Listen again, on the same port and URL."""
        self._http.start()

    def fail_next(self, count: int, status: int = 503) -> None:
        """Answer the next ``count`` POSTs with ``status``, recording nothing."""
        with self._changed:
            self._failures.extend([status] * count)

    @property
    def posts(self) -> int:
        """How many POSTs arrived, failed ones included."""
        with self._changed:
            return self._posts

    # what was received

    @property
    def notifications(self) -> list[Notification]:
        """Every notification received so far, in receipt order."""
        with self._changed:
            return list(self._notifications)

    def for_call(self, call_id: str) -> list[Notification]:
        """Return the notifications about ``call_id`` and its operations."""
        wanted = _canonical_id(call_id)
        return [n for n in self.notifications if n.call_id == wanted]

    def clear(self) -> None:
        """Forget what was received (receipt indexes keep counting)."""
        with self._changed:
            self._notifications.clear()

    def wait_for(
        self,
        predicate: Callable[[Notification], bool],
        timeout: float = DEFAULT_TIMEOUT_S,
        *,
        description: str = "a matching notification",
    ) -> Notification:
        """Return the first notification (received or yet to come) that matches.

        Raises:
            NotificationTimeout: Nothing matched within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for note in self._notifications:
                    if predicate(note):
                        return note
                left = deadline - time.monotonic()
                if left <= 0:
                    raise NotificationTimeout(self._timeout_message(description))
                self._changed.wait(left)

    def wait_until(
        self, condition: Callable[[], bool], timeout: float = DEFAULT_TIMEOUT_S
    ) -> None:
        """Wait until ``condition()`` holds; it is re-checked on each arrival.

        Raises:
            NotificationTimeout: It did not hold within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while not condition():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise NotificationTimeout(self._timeout_message("the condition"))
                self._changed.wait(left)

    def operation_ended(
        self, operation_id: str, timeout: float = DEFAULT_TIMEOUT_S
    ) -> dict[str, Any]:
        """Wait for the operation's ``deleted`` notification; return its resource.

        Raises:
            NotificationTimeout: It did not arrive within ``timeout`` seconds.
        """
        wanted = _canonical_id(operation_id)
        note = self.wait_for(
            lambda n: n.change_type == "deleted" and n.operation_id == wanted,
            timeout,
            description=f"the end of operation {operation_id}",
        )
        return note.data

    def call_state(
        self, call_id: str, state: str, timeout: float = DEFAULT_TIMEOUT_S
    ) -> dict[str, Any]:
        """Wait for a notification putting the call in ``state``; return its data.

        Raises:
            NotificationTimeout: It did not arrive within ``timeout`` seconds.
        """
        wanted = _canonical_id(call_id)
        note = self.wait_for(
            lambda n: (
                n.call_id == wanted
                and n.operation_id is None
                and n.data.get("state") == state
                and n.data.get("toneInfo") is None
            ),
            timeout,
            description=f"call {call_id} in state {state}",
        )
        return note.data

    def tones(
        self, call_id: str, *, at_least: int = 0, timeout: float = DEFAULT_TIMEOUT_S
    ) -> list[ToneInfo]:
        """Return the tones reported for a call, in receipt order.

        Args:
            call_id: The call.
            at_least: Wait until this many tones have arrived.
            timeout: How long to wait for them, in seconds.

        Raises:
            NotificationTimeout: Fewer than ``at_least`` arrived in time.
        """
        self.wait_until(lambda: len(self._tones_of(call_id)) >= at_least, timeout)
        with self._changed:
            return self._tones_of(call_id)

    def _tones_of(self, call_id: str) -> list[ToneInfo]:
        wanted = _canonical_id(call_id)
        found: list[ToneInfo] = []
        for note in self._notifications:
            info = note.data.get("toneInfo") if note.call_id == wanted else None
            if isinstance(info, dict) and note.operation_id is None:
                found.append(ToneInfo(int(info["sequenceId"]), str(info["tone"])))
        return found

    def _timeout_message(self, description: str) -> str:
        seen = self._notifications[-SHOWN_IN_ERRORS:]
        lines = "\n  ".join(n.describe() for n in seen) or "(none)"
        return (
            f"timed out waiting for {description}; "
            f"{len(self._notifications)} notifications received, the latest:\n"
            f"  {lines}"
        )

    # the handler's side

    def _next_failure(self) -> int | None:
        with self._changed:
            self._posts += 1
            return self._failures.pop(0) if self._failures else None

    def _record(self, body: Any) -> list[Notification]:
        items = body.get("value") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise ValueError("not a commsNotifications object")
        with self._changed:
            start = self._received
            added = [_parse(start + i, item) for i, item in enumerate(items)]
            self._received += len(added)
            self._notifications.extend(added)
            self._changed.notify_all()
        return added

    def _handle(self, added: list[Notification]) -> bool:
        """Run the handler on each notification; False if it raised."""
        handler = self.handler
        if handler is None:
            return True
        for note in added:
            try:
                handler(note)
            except Exception as exc:
                with self._changed:
                    self.handler_errors.append(exc)
                return False
        return True


def _parse(index: int, item: Any) -> Notification:
    if not isinstance(item, dict):
        raise ValueError("a commsNotification is not an object")
    url = str(item.get("resourceUrl") or item.get("resource") or "")
    call_id, operation_id = _ids_in(url)
    return Notification(
        index=index,
        change_type=str(item.get("changeType", "")),
        resource_url=url,
        resource_data=item.get("resourceData"),
        call_id=call_id,
        operation_id=operation_id,
        item=item,
    )


def _ids_in(url: str) -> tuple[str | None, str | None]:
    """Return the call and operation ids in a resource URL."""
    parts = [part for part in url.split("/") if part]
    lowered = [part.lower() for part in parts]
    if "calls" not in lowered:
        return None, None
    at = lowered.index("calls")
    call_id = _canonical_id(parts[at + 1]) if len(parts) > at + 1 else None
    operation_id = None
    if len(parts) > at + 3 and lowered[at + 2] == "operations":
        operation_id = _canonical_id(parts[at + 3])
    return call_id, operation_id


def _canonical_id(raw: str) -> str:
    """Return an id as lower-case GUID with dashes when it is a GUID."""
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        return raw.lower()


class _WebhookHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        owner = cast(WebhookReceiver, self.server.owner)  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        failure = owner._next_failure()
        if failure is not None:
            self._reply(failure)
            return
        if self.path.split("?", 1)[0] != owner.path:
            self._reply(404)
            return
        try:
            added = owner._record(json.loads(raw))
        except ValueError:
            self._reply(400)
            return
        self._reply(202 if owner._handle(added) else 500)

    def _reply(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Keep test output quiet."""
