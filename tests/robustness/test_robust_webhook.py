"""Webhook receivers that are down, fail, stall or hang up.

The promises (design.md, "Notifications"): delivery never blocks the
engine; a failing receiver gets retries; a notification that runs out of
attempts is kept as ``failed`` and visible in ``GET /_sim/calls/{id}`` with
each attempt, never dropped; ``POST /_sim/notifications/{seq}/redeliver``
sends it again once the receiver is back; per call, order is kept.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
import robustness_support as rs

from graphcomms.testing import GraphcommsServer, WebhookReceiver

FEW_ATTEMPTS = {
    "delivery_attempts": 2,
    "delivery_initial_delay_s": 0.01,
    "delivery_max_delay_s": 0.02,
    "delivery_timeout_s": 0.2,
}
"""Give up fast: two tries per notification, 0.2 s deadline each."""


class FlakyReceiver:
    """A callback that misbehaves as told, then recovers on the same URL.

    Modes: ``500`` (answer 500), ``stall`` (answer after the delivery
    deadline), ``close`` (drop the connection without answering), ``ok``.
    Bodies answered 2xx are kept in arrival order.
    """

    def __init__(self) -> None:
        self.mode = "ok"
        self.accepted: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.server = rs.SideServer(self._answer)

    def _answer(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        mode = self.mode
        if mode == "close":
            handler.close_connection = True
            return
        if mode == "stall":
            time.sleep(0.5)
        status = 500 if mode == "500" else 202
        try:
            handler.send_response(status)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
        except OSError:  # graphcomms gave up on the stalled request
            return
        if mode == "ok":
            with self._lock:
                self.accepted.append(json.loads(body))


def _short_call(server: GraphcommsServer, url: str) -> str:
    """A call whose every notification goes to ``url``: 5 notifications."""
    call_id = server.place_call(url)
    answer = {"acceptedModalities": ["audio"], "mediaConfig": rs.SERVICE_HOSTED}
    assert rs.graph(server, call_id, "answer", answer).status_code == 202
    server.advance(rs.ESTABLISH_MS)
    assert rs.hang_up(server, call_id).status_code == 204
    server.advance(20)
    return call_id


@pytest.mark.graphcomms(**FEW_ATTEMPTS)
@pytest.mark.parametrize("mode", ["500", "stall", "close"])
def test_webhook_failing_receiver_keeps_notifications_failed_then_redelivers(
    graphcomms_server: GraphcommsServer, mode: str
) -> None:
    """Every notification is retried, kept failed with its attempts, then sent."""
    server = graphcomms_server
    receiver = FlakyReceiver()
    receiver.mode = mode
    try:
        call_id = _short_call(server, receiver.server.url("/hook"))
        assert server.drain(10.0)

        story = server.history(call_id)
        assert story["state"] == "terminated"  # delivery never held the call up
        kept = story["notifications"]
        assert [n["status"] for n in kept] == ["failed"] * 5
        for note in kept:
            assert note["attempts"] == 2
            assert [a["outcome"] for a in note["attemptLog"]] == ["retrying", "failed"]
            codes = {a["statusCode"] for a in note["attemptLog"]}
            assert codes == ({500} if mode == "500" else {None})
            assert note["lastError"]
        listed = server.sim("GET", "/_sim/notifications?status=failed").json()
        assert [n["seq"] for n in listed["value"]] == [n["seq"] for n in kept]
        assert receiver.accepted == []

        receiver.mode = "ok"
        for note in kept:
            again = server.sim("POST", f"/_sim/notifications/{note['seq']}/redeliver")
            assert again.status_code == 202
        assert server.drain(10.0)

        assert receiver.accepted == [n["payload"] for n in kept]
        after = server.history(call_id)["notifications"]
        assert [n["status"] for n in after] == ["delivered"] * 5
        assert [n["attempts"] for n in after] == [3] * 5
        twice = server.http.post(f"/_sim/notifications/{kept[0]['seq']}/redeliver")
        rs.assert_graph_error(twice, 404, "itemNotFound")
    finally:
        receiver.server.close()


@pytest.mark.graphcomms(**FEW_ATTEMPTS)
def test_webhook_down_for_whole_call_keeps_all_then_redeliver_works(
    graphcomms_server: GraphcommsServer, webhook_receiver: WebhookReceiver
) -> None:
    """Connection refused throughout: nothing lost, redelivered once back up."""
    server, receiver = graphcomms_server, webhook_receiver
    receiver.go_down()
    call_id = _short_call(server, receiver.url)
    assert server.drain(10.0)

    kept = server.history(call_id)["notifications"]
    assert [n["status"] for n in kept] == ["failed"] * 5
    assert all("Connect" in (n["lastError"] or "") for n in kept)
    assert receiver.notifications == []

    receiver.come_up()
    for note in kept:
        server.sim("POST", f"/_sim/notifications/{note['seq']}/redeliver")
    assert server.drain(10.0)

    got = [n.item for n in receiver.for_call(call_id)]
    assert got == [n["payload"]["value"][0] for n in kept]
    states = [n.data.get("state") for n in receiver.for_call(call_id)]
    assert states == [
        "incoming",
        "establishing",
        "established",
        "terminating",
        "terminated",
    ]


@pytest.mark.graphcomms(
    delivery_attempts=10_000,
    delivery_initial_delay_s=0.01,
    delivery_max_delay_s=0.03,
)
def test_webhook_down_then_up_mid_call_gets_everything_in_order(
    graphcomms_server: GraphcommsServer, webhook_receiver: WebhookReceiver
) -> None:
    """Retries outlast the outage: the call's notifications arrive in order."""
    server, receiver = graphcomms_server, webhook_receiver
    receiver.go_down()
    call_id = _short_call(server, receiver.url)
    assert not server.drain(0.3)
    pending = server.history(call_id)["notifications"]
    assert [n["status"] for n in pending] == ["pending"] * 5
    assert pending[0]["attempts"] >= 2 and pending[1]["attempts"] == 0

    receiver.come_up()
    rs.assert_call_story(server, receiver, call_id)


@pytest.mark.graphcomms(**FEW_ATTEMPTS)
def test_webhook_receiver_go_down_refuses_kept_alive_deliveries(
    graphcomms_server: GraphcommsServer, webhook_receiver: WebhookReceiver
) -> None:
    """After go_down(), nothing is received, even on a kept-alive connection."""
    server, receiver = graphcomms_server, webhook_receiver
    call_id = server.place_call(receiver.url)
    receiver.wait_for(lambda n: n.change_type == "created")

    receiver.go_down()
    rs.graph(server, call_id, "reject", {"reason": "busy"})
    assert server.drain(10.0)

    assert [n.data.get("state") for n in receiver.for_call(call_id)] == ["incoming"]
    kept = server.history(call_id)["notifications"]
    assert [n["status"] for n in kept] == ["delivered", "failed"]


def test_webhook_receiver_call_state_finds_the_incoming_call(
    graphcomms_server: GraphcommsServer, webhook_receiver: WebhookReceiver
) -> None:
    """``call_state(id, "incoming")`` returns the ``created`` notification."""
    call_id = graphcomms_server.place_call(webhook_receiver.url)
    created = webhook_receiver.wait_for(lambda n: n.change_type == "created")
    assert created.data["state"] == "incoming"

    found = webhook_receiver.call_state(call_id, "incoming", timeout=0.5)

    assert found == created.data
