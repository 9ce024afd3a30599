"""The call ends (caller hang-up, bot DELETE, or both at once) at every point.

The promises: every operation reaches exactly one terminal state with
exactly one ``deleted`` notification; pending operations are failed and
notified before the call's own ``deleted``; nothing follows that; and then
the call, its actions and its operations all answer 404 ``8522``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
import robustness_support as rs

from graphcomms.testing import (
    GraphcommsServer,
    PromptServer,
    WebhookReceiver,
    press,
    speak,
    tone_wav,
)

Point = Callable[[GraphcommsServer, WebhookReceiver, PromptServer], str]


def _no_op(server: GraphcommsServer, receiver: WebhookReceiver, _: PromptServer) -> str:
    return rs.answered_call(server, receiver)


def _downloading(
    server: GraphcommsServer, receiver: WebhookReceiver, prompts: PromptServer
) -> str:
    call_id = rs.answered_call(server, receiver)
    rs.play(server, call_id, prompts.add_stalling("stall.wav"))
    rs.play(server, call_id, prompts.add("short.wav", tone_wav(100)))
    return call_id


def _playing(
    server: GraphcommsServer, receiver: WebhookReceiver, prompts: PromptServer
) -> str:
    call_id = rs.answered_call(server, receiver)
    long = prompts.add("long.wav", tone_wav(3000))
    rs.play(server, call_id, long)
    rs.play(server, call_id, long)
    server.advance(500)
    return call_id


def _between(
    server: GraphcommsServer, receiver: WebhookReceiver, prompts: PromptServer
) -> str:
    call_id = rs.answered_call(server, receiver)
    first = rs.play(server, call_id, prompts.add("short.wav", tone_wav(100)))
    rs.play(server, call_id, prompts.add("long.wav", tone_wav(3000)))
    rs.advance_until(server, lambda: bool(rs.ends(receiver, first["id"])))
    return call_id


def _beep(
    server: GraphcommsServer, receiver: WebhookReceiver, prompts: PromptServer
) -> str:
    call_id = rs.answered_call(server, receiver)
    rs.operation(server, call_id, "recordResponse", rs.RECORD)
    rs.play(server, call_id, prompts.add("long.wav", tone_wav(3000)))
    server.advance(40)
    return call_id


def _recording(
    server: GraphcommsServer, receiver: WebhookReceiver, prompts: PromptServer
) -> str:
    call_id = rs.answered_call(server, receiver, script=[speak(1500)])
    rs.operation(server, call_id, "recordResponse", rs.RECORD)
    rs.play(server, call_id, prompts.add("long.wav", tone_wav(3000)))
    server.advance(1000)
    return call_id


def _after_stop_tone(
    server: GraphcommsServer, receiver: WebhookReceiver, prompts: PromptServer
) -> str:
    call_id = rs.answered_call(server, receiver, script=[speak(500), press("#")])
    rs.operation(server, call_id, "subscribeToTone")
    record = rs.operation(server, call_id, "recordResponse", rs.RECORD)
    rs.play(server, call_id, prompts.add("long.wav", tone_wav(3000)))
    rs.advance_until(server, lambda: bool(rs.ends(receiver, record["id"])))
    return call_id


def _sending_tones(
    server: GraphcommsServer, receiver: WebhookReceiver, prompts: PromptServer
) -> str:
    call_id = rs.answered_call(server, receiver)
    rs.operation(server, call_id, "sendDtmfTones", {"tones": ["tone1"] * 20})
    rs.play(server, call_id, prompts.add("long.wav", tone_wav(3000)))
    server.advance(60)
    return call_id


POINTS: dict[str, Point] = {
    "no-op": _no_op,
    "downloading": _downloading,
    "playing": _playing,
    "between-prompts": _between,
    "record-beep": _beep,
    "recording": _recording,
    "after-stop-tone": _after_stop_tone,
    "sending-tones": _sending_tones,
}


def _end(server: GraphcommsServer, call_id: str, how: str) -> int:
    """End the call ``how``; return the subcode the call must end with."""
    if how == "bot":
        assert rs.hang_up(server, call_id).status_code == 204
        server.advance(20)
        return 7000
    server.caller(call_id).hang_up()
    if how == "caller":
        server.advance(1000)  # the hang-up runs after speech still queued
        return 4097
    # both: the caller's hang-up is due on the tick that runs beside the DELETE
    statuses: list[int] = []
    tick = threading.Thread(target=server.advance, args=(20,))
    tick.start()
    statuses.append(rs.hang_up(server, call_id).status_code)
    tick.join()
    server.advance(1000)
    assert statuses[0] in (204, 404)
    return 7000 if statuses[0] == 204 else 4097


@pytest.mark.graphcomms(prompt_timeout_s=0.3)
@pytest.mark.parametrize("how", ["bot", "caller", "both"])
@pytest.mark.parametrize("point", list(POINTS))
def test_call_end_at_any_point_fails_pending_ops_before_call_deleted(
    graphcomms_server: GraphcommsServer,
    webhook_receiver: WebhookReceiver,
    prompt_server: PromptServer,
    point: str,
    how: str,
) -> None:
    """One end per op, all before the call's end; then 404 8522 everywhere."""
    server, receiver = graphcomms_server, webhook_receiver
    call_id = POINTS[point](server, receiver, prompt_server)

    subcode = _end(server, call_id, how)

    story = rs.assert_call_story(server, receiver, call_id)
    last = receiver.for_call(call_id)[-1]
    assert last.data["state"] == "terminated"
    assert last.data["resultInfo"]["subcode"] == subcode
    assert story["state"] == "terminated"
    op_ids = [view["resource"]["id"] for view in story["operations"]]
    for view in story["operations"]:
        if view["kind"] not in rs.COMPLETED_AT_ONCE:
            assert view["resource"]["status"] in ("completed", "failed"), view
    rs.assert_call_gone(server, call_id, op_ids)
    caller = server.http.post(
        f"/_sim/calls/{call_id}/caller", json={"action": "hangup"}
    )
    rs.assert_graph_error(caller, 404, "8522")


def test_call_hung_up_by_caller_while_ringing_is_deleted_once(
    graphcomms_server: GraphcommsServer, webhook_receiver: WebhookReceiver
) -> None:
    """A hang-up before the answer: ``deleted`` only, and answering is 404."""
    server, receiver = graphcomms_server, webhook_receiver
    call_id = server.place_call(receiver.url)
    server.caller(call_id).hang_up()
    server.advance(20)

    rs.assert_call_story(server, receiver, call_id)
    states = [n.data.get("state") for n in receiver.for_call(call_id)]
    assert states == ["incoming", "terminated"]
    answer = rs.graph(
        server,
        call_id,
        "answer",
        {"acceptedModalities": ["audio"], "mediaConfig": rs.SERVICE_HOSTED},
    )
    rs.assert_graph_error(answer, 404, "8522")


def test_call_deleted_by_many_threads_ends_once(
    graphcomms_server: GraphcommsServer,
    webhook_receiver: WebhookReceiver,
    prompt_server: PromptServer,
) -> None:
    """Eight concurrent DELETEs: one 204, seven 404s, one end per operation."""
    server, receiver = graphcomms_server, webhook_receiver
    call_id = _playing(server, receiver, prompt_server)
    results: list[int] = []
    lock = threading.Lock()

    def delete() -> None:
        status = rs.hang_up(server, call_id).status_code
        with lock:
            results.append(status)

    threads = [threading.Thread(target=delete) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    server.advance(20)

    assert sorted(results) == [204] + [404] * 7
    rs.assert_call_story(server, receiver, call_id)
