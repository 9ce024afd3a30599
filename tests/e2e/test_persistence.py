"""A restart loses nothing acknowledged (issue 2, item 8).

The documented choice (engine.recover): calls that were live when the
service stopped are ended cleanly on the next start. Their pending
operations fail with "call terminated" and are notified, then the call goes
terminating and terminated with resultInfo 500/9999. Notifications that
were stored but not delivered are delivered by the new run, in order.
"""

from __future__ import annotations

from pathlib import Path

from graphcomms.testing import PromptServer, WebhookReceiver, tone_wav
from graphcomms.testing.plugin import ServerFactory

from .helpers import assert_graph_error, call_body, play, result

PATIENT_DELIVERY = {
    "delivery_attempts": 10_000,
    "delivery_initial_delay_s": 0.05,
    "delivery_max_delay_s": 0.1,
}
"""Keep retrying while the receiver is down, so rows stay pending."""


def test_restart_delivers_pending_notifications_and_ends_live_calls(
    graphcomms_server_factory: ServerFactory,
    webhook_receiver: WebhookReceiver,
    prompt_server: PromptServer,
    tmp_path: Path,
) -> None:
    """Down receiver, stop, start again: everything arrives, in order."""
    receiver = webhook_receiver
    menu = prompt_server.add("menu.wav", tone_wav(20_000))
    data_dir = tmp_path / "state"
    receiver.go_down()

    # first run: a live call with a running prompt, nothing delivered
    first = graphcomms_server_factory(data_dir, **PATIENT_DELIVERY)
    created = first.http.post(
        "/v1.0/communications/calls", json=call_body(receiver.url)
    )
    assert created.status_code == 201
    call_id = created.json()["id"]
    first.advance(100)
    op = play(first, call_id, menu, "ctx-menu")
    first.advance(1000)
    assert not first.drain(timeout=0.3)  # still retrying the dead receiver
    kept = first.history(call_id)["notifications"]
    assert [n["status"] for n in kept] == ["pending", "pending"]
    # in order per call: the second waits behind the first
    assert kept[0]["attempts"] >= 1 and kept[1]["attempts"] == 0
    first.stop()
    assert receiver.notifications == []

    # second run on the same data: the receiver is back
    receiver.come_up()
    second = graphcomms_server_factory(data_dir)
    terminated = receiver.call_state(call_id, "terminated")
    assert result(terminated) == (500, 9999)
    assert second.drain()

    notes = receiver.for_call(call_id)
    states = [n.data.get("state") for n in notes if not n.operation_id]
    assert states == ["establishing", "established", "terminating", "terminated"]
    op_notes = [n for n in notes if n.operation_id]
    assert [n.operation_id for n in op_notes] == [op["id"]]
    ended = op_notes[0].data
    assert ended["status"] == "failed" and result(ended) == (400, 8528)
    assert ended["clientContext"] == "ctx-menu"
    # the op's end comes after what the first run sent, before the call's end
    assert notes[1].index < op_notes[0].index < notes[-2].index

    story = second.history(call_id)
    assert {n["status"] for n in story["notifications"]} == {"delivered"}
    assert story["state"] == "terminated"
    response = second.http.get(f"/v1.0/communications/calls/{call_id}")
    assert_graph_error(response, 404, "8522")
