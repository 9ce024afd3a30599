"""Webhook delivery against a receiver that fails: retried, never dropped.

Also the plugin's handler hook: a bot under test reacting inside its
webhook, the way real bots answer incoming calls.
"""

from __future__ import annotations

from typing import Any

import pytest

from graphcomms.testing import (
    GraphcommsServer,
    Notification,
    ToneInfo,
    WebhookReceiver,
    press,
    silence,
)

from .helpers import SERVICE_HOSTED, call_body, create_call

ATTEMPTS = 5
"""The plugin's default ``delivery_attempts``."""


def test_notifications_to_a_down_receiver_are_retried_then_kept_failed(
    graphcomms_server: GraphcommsServer, webhook_receiver: WebhookReceiver
) -> None:
    """Every attempt is recorded; failed rows stay visible and can be resent."""
    server, receiver = graphcomms_server, webhook_receiver
    receiver.go_down()
    response = server.http.post(
        "/v1.0/communications/calls", json=call_body(receiver.url)
    )
    call_id = response.json()["id"]
    server.advance(100)
    assert server.drain(timeout=10)

    kept = server.history(call_id)["notifications"]
    assert len(kept) == 2
    for row in kept:
        assert row["status"] == "failed"
        assert row["attempts"] == ATTEMPTS
        assert len(row["attemptLog"]) == ATTEMPTS
        assert row["attemptLog"][-1]["outcome"] == "failed"
        assert "ConnectError" in row["lastError"]
    failed = server.sim("GET", "/_sim/notifications").json()["value"]
    assert {row["seq"] for row in failed} >= {row["seq"] for row in kept}

    # the call went on regardless, and a failed row can be sent again
    call = server.http.get(f"/v1.0/communications/calls/{call_id}").json()
    assert call["state"] == "established"
    receiver.come_up()
    server.sim("POST", f"/_sim/notifications/{kept[1]['seq']}/redeliver", expect=202)
    assert receiver.call_state(call_id, "established")
    assert server.drain()
    resent = server.history(call_id)["notifications"][1]
    assert resent["status"] == "delivered"


def test_receiver_failing_twice_gets_the_notification_on_the_third_attempt(
    graphcomms_server: GraphcommsServer, webhook_receiver: WebhookReceiver
) -> None:
    """503, 503, then 202: delivered once, three attempts on record."""
    server, receiver = graphcomms_server, webhook_receiver
    receiver.fail_next(2, status=503)
    response = server.http.post(
        "/v1.0/communications/calls", json=call_body(receiver.url)
    )
    call_id = response.json()["id"]
    receiver.call_state(call_id, "establishing")
    assert server.drain()

    first = server.history(call_id)["notifications"][0]
    assert first["status"] == "delivered" and first["attempts"] == 3
    codes = [attempt["statusCode"] for attempt in first["attemptLog"]]
    assert codes == [503, 503, 202]
    assert receiver.posts == 3
    assert len(receiver.for_call(call_id)) == 1


@pytest.mark.graphcomms(answer_delay_ms=500)
def test_marker_settings_reach_the_server(
    graphcomms_server: GraphcommsServer, webhook_receiver: WebhookReceiver
) -> None:
    """@pytest.mark.graphcomms(answer_delay_ms=500): the callee answers at 500 ms."""
    server, receiver = graphcomms_server, webhook_receiver
    assert server.settings.answer_delay_ms == 500
    response = server.http.post(
        "/v1.0/communications/calls", json=call_body(receiver.url)
    )
    call_id = response.json()["id"]
    server.advance(480)
    assert server.drain()
    assert not [
        n for n in receiver.for_call(call_id) if n.data.get("state") == "established"
    ]
    server.advance(20)
    receiver.call_state(call_id, "established")


def test_bot_answering_inside_its_webhook_hears_the_scripted_caller(
    graphcomms_server: GraphcommsServer, webhook_receiver: WebhookReceiver
) -> None:
    """The handler hook: answer on created, subscribe on established."""
    server, receiver = graphcomms_server, webhook_receiver
    calls = f"{server.graph_url()}/communications/calls"

    def bot(note: Notification) -> None:
        if note.call_id is None or note.operation_id is not None:
            return
        if note.change_type == "created":
            answer: dict[str, Any] = {
                "callbackUri": receiver.url,
                "acceptedModalities": ["audio"],
                "mediaConfig": SERVICE_HOSTED,
            }
            reply = server.http.post(f"{calls}/{note.call_id}/answer", json=answer)
            assert reply.status_code == 202, reply.text
        elif note.data.get("state") == "established" and "toneInfo" not in note.data:
            reply = server.http.post(f"{calls}/{note.call_id}/subscribeToTone", json={})
            assert reply.status_code == 200, reply.text

    receiver.handler = bot
    call_id = server.place_call(
        receiver.url, script=[silence(400), press("4"), silence(200), press("2")]
    )
    receiver.wait_for(lambda n: n.change_type == "created")
    assert server.drain()  # the handler has answered
    server.advance(200)  # established 200 ms after the answer
    receiver.call_state(call_id, "established")
    assert server.drain()  # the handler's subscribeToTone is in
    server.advance(1000)
    assert receiver.tones(call_id, at_least=2) == [
        ToneInfo(1, "tone4"),
        ToneInfo(2, "tone2"),
    ]
    assert receiver.handler_errors == []


def test_webhook_handler_error_answers_500_and_is_kept(
    graphcomms_server: GraphcommsServer, webhook_receiver: WebhookReceiver
) -> None:
    """A bot that raises gets the POST answered 500; the error is kept."""
    server, receiver = graphcomms_server, webhook_receiver

    def broken(note: Notification) -> None:
        raise RuntimeError("bot bug")

    receiver.handler = broken
    create_call_id = server.http.post(
        "/v1.0/communications/calls", json=call_body(receiver.url)
    ).json()["id"]
    assert server.drain(timeout=10)
    first = server.history(create_call_id)["notifications"][0]
    assert [a["statusCode"] for a in first["attemptLog"]] == [500] * ATTEMPTS
    assert len(receiver.handler_errors) == ATTEMPTS
    assert str(receiver.handler_errors[0]) == "bot bug"
    receiver.handler = None
    assert create_call(server, receiver)
