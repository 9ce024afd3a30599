"""The pytest plugin itself: its helpers behave as documented.

The rest of tests/e2e uses the fixtures for real work; these tests pin the
parts a bot author relies on directly: prompt files, the prompt server's
404s and stalls, the receiver's timeouts and faults, the server's
lifecycle and clock, and use from async tests.
"""

from __future__ import annotations

import wave
from io import BytesIO
from pathlib import Path

import httpx
import pytest

from graphcomms.errors import VirtualClockRequired
from graphcomms.testing import (
    GraphcommsServer,
    NotificationTimeout,
    PromptServer,
    SimRequestFailed,
    WebhookReceiver,
    read_wav,
    tone_wav,
)
from graphcomms.testing.plugin import ServerFactory

from .helpers import call_body, create_call


def test_tone_wav_is_a_graph_prompt_of_exact_length() -> None:
    """16 kHz, mono, 16-bit PCM, ms * 16 samples."""
    data = tone_wav(1234, 440)
    with wave.open(BytesIO(data)) as source:
        assert source.getframerate() == 16_000
        assert source.getnchannels() == 1 and source.getsampwidth() == 2
        assert source.getnframes() == 1234 * 16
    rate, samples = read_wav(tone_wav(500, 1000, sample_rate_hz=8000))
    assert rate == 8000 and len(samples) == 4000


def test_prompt_server_serves_404s_stalls_and_counts(
    prompt_server: PromptServer,
) -> None:
    """Registered names 200, others 404, stalled ones time out; all counted."""
    url = prompt_server.add("a b.wav", tone_wav(100))
    stalled = prompt_server.add_stalling("slow.wav")
    broken = prompt_server.add_error("boom.wav", 500)
    with httpx.Client(trust_env=False) as client:
        assert client.get(url).content == tone_wav(100)
        assert client.get(prompt_server.url("missing.wav")).status_code == 404
        assert client.get(broken).status_code == 500
        with pytest.raises(httpx.ReadTimeout):
            client.get(stalled, timeout=0.2)
    assert prompt_server.request_counts == {
        "a b.wav": 1,
        "missing.wav": 1,
        "boom.wav": 1,
        "slow.wav": 1,
    }


def test_webhook_receiver_times_out_with_what_it_received(
    webhook_receiver: WebhookReceiver,
) -> None:
    """A wait that fails says what was waited for and lists what came."""
    with pytest.raises(NotificationTimeout) as raised:
        webhook_receiver.call_state("6f1c54e7-0000-4000-8000-000000000000", "x", 0.05)
    assert "in state x" in str(raised.value)
    assert "0 notifications received" in str(raised.value)


def test_webhook_receiver_goes_down_and_comes_back_on_its_url(
    webhook_receiver: WebhookReceiver,
) -> None:
    """Down: connection refused. Up again: same URL, answers 202."""
    body = {"value": [{"changeType": "updated", "resourceUrl": "/x"}]}
    webhook_receiver.go_down()
    assert not webhook_receiver.is_up
    with httpx.Client(trust_env=False) as client:
        with pytest.raises(httpx.ConnectError):
            client.post(webhook_receiver.url, json=body)
        webhook_receiver.come_up()
        assert client.post(webhook_receiver.url, json=body).status_code == 202
        assert client.post(webhook_receiver.url, content=b"nope").status_code == 400
    assert [n.resource_url for n in webhook_receiver.notifications] == ["/x"]


def test_server_starts_and_stops_idempotently(tmp_path: Path) -> None:
    """Start, answer /health, stop twice; a stopped server refuses the clock."""
    server = GraphcommsServer(tmp_path / "gc").start()
    try:
        assert server.http.get("/health").status_code == 200
        assert server.advance(50) == 60  # whole ticks
        assert server.now_ms == 60
    finally:
        server.stop()
        server.stop()
    with pytest.raises(RuntimeError):
        server.advance(20)


def test_real_clock_server_refuses_advance(
    graphcomms_server_factory: ServerFactory,
) -> None:
    """clock_mode="real": advance raises the service's own error."""
    server = graphcomms_server_factory(clock_mode="real")
    with pytest.raises(VirtualClockRequired):
        server.advance(100)
    with pytest.raises(SimRequestFailed) as raised:
        server.sim("POST", "/_sim/clock/advance", json={"ms": 100})
    assert raised.value.response.status_code == 400


async def test_server_methods_work_from_an_async_test(
    graphcomms_server: GraphcommsServer, webhook_receiver: WebhookReceiver
) -> None:
    """Blocking helpers are safe inside a running event loop."""
    async with httpx.AsyncClient(base_url=graphcomms_server.base_url) as client:
        response = await client.post(
            "/v1.0/communications/calls", json=call_body(webhook_receiver.url)
        )
    call_id = response.json()["id"]
    graphcomms_server.advance(100)
    webhook_receiver.call_state(call_id, "established")
    assert graphcomms_server.history(call_id)["state"] == "established"


def test_caller_heard_nothing_before_any_prompt(
    graphcomms_server: GraphcommsServer, webhook_receiver: WebhookReceiver
) -> None:
    """heard() is a WAV of silence, one frame per tick since established."""
    call_id = create_call(graphcomms_server, webhook_receiver)
    graphcomms_server.advance(1000)
    rate, samples = read_wav(graphcomms_server.heard(call_id))
    assert rate == 16_000
    assert len(samples) == (1000 + 20) * 16
    assert not samples.any()


def test_server_that_cannot_start_raises_with_the_cause(tmp_path: Path) -> None:
    """A failed startup is an error naming why, not a hang."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(RuntimeError, match="did not start"):
        GraphcommsServer(blocker / "data").start()
