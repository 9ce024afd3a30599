"""What the robustness tests share: calls, actions and the checks of promises.

Every check here reads both sides of the wire: what the webhook received and
what the emulator's ``GET /_sim/calls/{id}`` says it stored, so a test sees a
notification that was lost, duplicated, reordered or sent after its call had
ended.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import numpy as np

from graphcomms.testing import GraphcommsServer, WebhookReceiver, read_wav

GRAPH = "#microsoft.graph."
SERVICE_HOSTED = {"@odata.type": GRAPH + "serviceHostedMediaConfig"}
FRAME_MS = 20
FRAME_SAMPLES = 320
ESTABLISH_MS = 200
"""An answered call is established this long after the answer."""

COMPLETED_AT_ONCE = frozenset(
    {"subscribeToTone", "cancelMediaProcessing", "mute", "unmute"}
    | {"updateRecordingStatus"}
)
"""Operation kinds that complete in their response and send no notification."""

RECORD = {
    "playBeep": True,
    "maxRecordDurationInSeconds": 10,
    "initialSilenceTimeoutInSeconds": 5,
    "maxSilenceTimeoutInSeconds": 2,
    "stopTones": ["#"],
}
"""A recordResponse body that ends only on its own timers or ``#``."""


def calls_path(call_id: str, version: str = "v1.0") -> str:
    """Return the Graph path of a call."""
    return f"/{version}/communications/calls/{call_id}"


def answered_call(
    server: GraphcommsServer,
    receiver: WebhookReceiver,
    script: Sequence[dict[str, Any]] | None = None,
) -> str:
    """Ring the bot, answer with service-hosted media; return the call id."""
    call_id = server.place_call(receiver.url, script=script)
    answer = {
        "callbackUri": receiver.url,
        "acceptedModalities": ["audio"],
        "mediaConfig": SERVICE_HOSTED,
    }
    response = server.http.post(calls_path(call_id) + "/answer", json=answer)
    assert response.status_code == 202, response.text
    server.advance(ESTABLISH_MS)
    return call_id


def graph(
    server: GraphcommsServer,
    call_id: str,
    action: str,
    body: Any = None,
    *,
    version: str = "v1.0",
) -> httpx.Response:
    """POST a Graph action on a call; return the raw response."""
    path = calls_path(call_id, version) + "/" + action
    return server.http.post(path, json={} if body is None else body)


def operation(
    server: GraphcommsServer,
    call_id: str,
    action: str,
    body: Any = None,
    *,
    version: str = "v1.0",
) -> dict[str, Any]:
    """Run an action answered with 200 and an operation; return the operation."""
    response = graph(server, call_id, action, body, version=version)
    assert response.status_code == 200, response.text
    op: dict[str, Any] = response.json()
    return op


def prompts(*uris: str) -> list[dict[str, Any]]:
    """Return mediaPrompts for ``uris``."""
    return [
        {"@odata.type": GRAPH + "mediaPrompt", "mediaInfo": {"uri": u}} for u in uris
    ]


def play(
    server: GraphcommsServer, call_id: str, *uris: str, version: str = "v1.0"
) -> dict[str, Any]:
    """Queue one playPrompt of ``uris``; return the operation."""
    body = {"prompts": prompts(*uris)}
    return operation(server, call_id, "playPrompt", body, version=version)


def cancel(
    server: GraphcommsServer, call_id: str, all_ops: bool | None = None
) -> dict[str, Any]:
    """Send cancelMediaProcessing (``all`` left out when None)."""
    body = {} if all_ops is None else {"all": all_ops}
    op = operation(server, call_id, "cancelMediaProcessing", body)
    assert op["status"] == "completed", op
    return op


def hang_up(server: GraphcommsServer, call_id: str) -> httpx.Response:
    """DELETE the call as the bot."""
    return server.http.delete(calls_path(call_id))


def assert_graph_error(response: httpx.Response, status: int, code: str) -> None:
    """Check the status and Graph's error envelope with ``code``."""
    assert response.status_code == status, (response.status_code, response.text)
    assert_envelope(response)
    assert response.json()["error"]["code"] == code, response.text


def assert_envelope(response: httpx.Response) -> None:
    """Check that a failed response carries Graph's error envelope."""
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        raise AssertionError(f"not a Graph error: {response.text[:300]}") from None
    assert isinstance(error["code"], str) and error["code"], error
    assert isinstance(error["message"], str) and error["message"], error
    inner = error["innerError"]
    assert {"request-id", "date", "client-request-id"} <= set(inner), error


def ends(receiver: WebhookReceiver, op_id: str) -> list[dict[str, Any]]:
    """Return every terminal (``deleted``) notification the receiver got for op."""
    return [
        n.data
        for n in receiver.notifications
        if n.operation_id == op_id and n.change_type == "deleted"
    ]


def wait_for_end(
    server: GraphcommsServer, receiver: WebhookReceiver, op_id: str
) -> dict[str, Any]:
    """Let delivery finish and return the operation's one terminal notification."""
    assert server.drain(5.0)
    found = ends(receiver, op_id)
    assert len(found) == 1, f"{len(found)} terminal notifications for {op_id}"
    return found[0]


def result_of(data: dict[str, Any]) -> tuple[str, int, int]:
    """Return (status, code, subcode) of an operation's terminal resource."""
    info = data["resultInfo"]
    return data["status"], info["code"], info["subcode"]


def call_notifications(
    receiver: WebhookReceiver, call_id: str
) -> list[tuple[str, str | None, dict[str, Any]]]:
    """Return (changeType, operation id, resource) of the call, as received."""
    return [(n.change_type, n.operation_id, n.data) for n in receiver.for_call(call_id)]


def assert_call_story(
    server: GraphcommsServer,
    receiver: WebhookReceiver,
    call_id: str,
    *,
    ended: bool = True,
) -> dict[str, Any]:
    """Check the notification promises of one call, from both sides of the wire.

    - the receiver got exactly what the outbox stored, once each, in seq order;
    - every queued or sent operation has exactly one terminal notification and
      the ones completed in their response have none;
    - with ``ended``: exactly one ``deleted`` for the call, it is the last
      notification, and every operation's end came before it.

    Returns:
        The call's story from ``GET /_sim/calls/{id}``.
    """
    assert server.drain(5.0), "delivery did not go idle"
    story = server.history(call_id)
    stored = [entry["payload"]["value"][0] for entry in story["notifications"]]
    assert [entry["status"] for entry in story["notifications"]] == ["delivered"] * len(
        stored
    )
    received = [n.item for n in receiver.for_call(call_id)]
    assert received == stored, "the receiver did not get the outbox, in order, once"
    notes = receiver.for_call(call_id)
    call_ends = [
        i
        for i, n in enumerate(notes)
        if n.operation_id is None and n.change_type == "deleted"
    ]
    if ended:
        assert call_ends == [len(notes) - 1], [n.describe() for n in notes]
        assert sum(n.data.get("state") == "terminating" for n in notes) <= 1
    else:
        assert call_ends == []
    for view in story["operations"]:
        op_id = view["resource"]["id"]
        terminal = [
            i
            for i, n in enumerate(notes)
            if n.operation_id == op_id and n.change_type == "deleted"
        ]
        want = 0 if view["kind"] in COMPLETED_AT_ONCE else 1
        if not ended and view["resource"]["status"] in ("running", "notStarted"):
            want = 0
        assert len(terminal) == want, (view["kind"], op_id, terminal)
        if ended and terminal:
            assert terminal[0] < call_ends[0]
    return story


def assert_call_gone(
    server: GraphcommsServer, call_id: str, op_ids: Iterable[str] = ()
) -> None:
    """Check that an ended call and its operations answer 404 8522 everywhere."""
    path = calls_path(call_id)
    assert_graph_error(server.http.get(path), 404, "8522")
    assert_graph_error(server.http.delete(path), 404, "8522")
    body = {"prompts": prompts("http://127.0.0.1:9/never.wav")}
    assert_graph_error(graph(server, call_id, "playPrompt", body), 404, "8522")
    assert_graph_error(graph(server, call_id, "cancelMediaProcessing"), 404, "8522")
    for op_id in op_ids:
        found = server.http.get(f"{path}/operations/{op_id}")
        assert_graph_error(found, 404, "8522")


def heard(server: GraphcommsServer, call_id: str) -> np.ndarray:
    """Return every sample the caller heard so far."""
    rate, samples = read_wav(server.heard(call_id))
    assert rate == 16_000
    return samples


def heard_count(server: GraphcommsServer, call_id: str) -> int:
    """Return how many samples the caller has heard so far."""
    return len(heard(server, call_id))


def loud_frames(samples: np.ndarray) -> int:
    """Return how many whole 20 ms frames of ``samples`` hold any sound."""
    usable = len(samples) // FRAME_SAMPLES * FRAME_SAMPLES
    frames = samples[:usable].reshape(-1, FRAME_SAMPLES)
    return int(np.count_nonzero(np.abs(frames).max(axis=1)))


def advance_until(
    server: GraphcommsServer,
    done: Callable[[], bool],
    *,
    limit_ms: int = 10_000,
) -> int:
    """Advance one tick at a time until ``done()`` (checked after delivery)."""
    for _ in range(limit_ms // FRAME_MS):
        server.advance(FRAME_MS)
        server.drain(5.0)
        if done():
            return server.now_ms
    raise AssertionError(f"not done within {limit_ms} ms of clock time")


class SideServer:
    """A tiny HTTP server on 127.0.0.1 whose GET/POST run ``answer``.

    ``answer(handler, body)`` writes the whole response (``body`` is the
    request body, empty for a GET); it may sleep or close the connection to
    misbehave.
    """

    def __init__(self, answer: Callable[[BaseHTTPRequestHandler, bytes], None]) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                owner.requests += 1
                answer(self, b"")

            def do_POST(self) -> None:
                owner.requests += 1
                length = int(self.headers.get("Content-Length") or 0)
                answer(self, self.rfile.read(length))

            def log_message(self, format: str, *args: object) -> None:
                """Stay quiet."""

        self.requests = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}
        )
        self._thread.daemon = True
        self._thread.start()

    def url(self, path: str = "/x") -> str:
        """Return a URL on this server."""
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
