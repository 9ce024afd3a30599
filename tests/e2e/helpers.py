"""What the end-to-end tests share: Graph requests over raw HTTP, checks."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np

from graphcomms.testing import GraphcommsServer, WebhookReceiver, read_wav

GRAPH = "#microsoft.graph."
SERVICE_HOSTED = {"@odata.type": GRAPH + "serviceHostedMediaConfig"}
APP_HOSTED = {"@odata.type": GRAPH + "appHostedMediaConfig", "blob": "<opaque>"}
TARGET = {"identity": {"user": {"id": "8f1e1e3c-user", "displayName": "Callee"}}}
ANSWER_MS = 100
"""The test server's simulated callee answers after this much clock time."""
FRAME_MS = 20
SAMPLE_RATE_HZ = 16_000


def call_body(callback_uri: str, **extra: Any) -> dict[str, Any]:
    """Return a create-call body (BL S0), service-hosted unless overridden."""
    return {
        "@odata.type": GRAPH + "call",
        "callbackUri": callback_uri,
        "targets": [TARGET],
        "requestedModalities": ["audio"],
        "mediaConfig": SERVICE_HOSTED,
        **extra,
    }


def create_call(
    server: GraphcommsServer,
    receiver: WebhookReceiver,
    *,
    version: str = "v1.0",
    callback_uri: str | None = None,
    **extra: Any,
) -> str:
    """Place an outgoing call, let the callee answer; return the call id."""
    body = call_body(callback_uri or receiver.url, **extra)
    response = server.http.post(f"/{version}/communications/calls", json=body)
    assert response.status_code == 201, response.text
    call_id: str = response.json()["id"]
    server.advance(ANSWER_MS)
    receiver.call_state(call_id, "established")
    return call_id


def action(
    server: GraphcommsServer,
    call_id: str,
    name: str,
    body: Any = None,
    *,
    version: str = "v1.0",
) -> httpx.Response:
    """POST an action on a call and return the raw response."""
    path = f"/{version}/communications/calls/{call_id}/{name}"
    return server.http.post(path, json=body if body is not None else {})


def operation(
    server: GraphcommsServer,
    call_id: str,
    name: str,
    body: Any = None,
    *,
    version: str = "v1.0",
) -> dict[str, Any]:
    """Run an action that answers 200 + Location + operation; return the op."""
    response = action(server, call_id, name, body, version=version)
    assert response.status_code == 200, response.text
    op: dict[str, Any] = response.json()
    assert response.headers["Location"].endswith(f"/operations/{op['id']}")
    return op


def prompt(uri: str, **media_info: Any) -> dict[str, Any]:
    """Return a mediaPrompt for ``uri``."""
    return {
        "@odata.type": GRAPH + "mediaPrompt",
        "mediaInfo": {"uri": uri, **media_info},
    }


def play(
    server: GraphcommsServer,
    call_id: str,
    uri: str,
    context: str | None = None,
    *,
    version: str = "v1.0",
) -> dict[str, Any]:
    """Queue a playPrompt of one URI; return the operation."""
    body: dict[str, Any] = {"prompts": [prompt(uri)]}
    if context is not None:
        body["clientContext"] = context
    return operation(server, call_id, "playPrompt", body, version=version)


def operation_view(
    server: GraphcommsServer, call_id: str, op_id: str
) -> dict[str, Any]:
    """Return the emulator's view of an operation (times, resource, history)."""
    for view in server.history(call_id)["operations"]:
        if view["resource"]["id"] == op_id:
            found: dict[str, Any] = view
            return found
    raise AssertionError(f"operation {op_id} is not in the call's history")


def established_ms(server: GraphcommsServer, call_id: str) -> int:
    """Return the clock time at which the call was established."""
    for line in server.history(call_id)["history"]:
        if line["event"] == "established":
            at_ms: int = line["atMs"]
            return at_ms
    raise AssertionError("the call was never established")


def heard_frames(server: GraphcommsServer, call_id: str) -> np.ndarray:
    """Return what the caller heard as rows of 20 ms frames.

    Row ``i`` is the frame of clock tick ``established_ms + 20 * i``.
    """
    rate, samples = read_wav(server.heard(call_id))
    assert rate == SAMPLE_RATE_HZ
    frame = SAMPLE_RATE_HZ * FRAME_MS // 1000
    usable = len(samples) // frame * frame
    return samples[:usable].reshape(-1, frame)


def frame_at(server: GraphcommsServer, call_id: str, at_ms: int) -> int:
    """Return the row of ``heard_frames`` played on the tick at ``at_ms``."""
    return (at_ms - established_ms(server, call_id)) // FRAME_MS


def dominant_hz(samples: np.ndarray) -> float:
    """Return the strongest frequency in ``samples``."""
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    freqs = np.fft.rfftfreq(len(samples), 1 / SAMPLE_RATE_HZ)
    return float(freqs[int(np.argmax(spectrum))])


def assert_graph_error(
    response: httpx.Response, status: int, code: str | None = None
) -> dict[str, Any]:
    """Check Graph's error envelope and status; return the error object."""
    assert response.status_code == status, response.text
    body = response.json()
    assert "detail" not in body, body
    error: dict[str, Any] = body["error"]
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    inner = error["innerError"]
    assert {"request-id", "date", "client-request-id"} <= set(inner)
    if code is not None:
        assert error["code"] == code, error
    return error


def result(data: dict[str, Any]) -> tuple[int, int]:
    """Return (code, subcode) of a resource's resultInfo."""
    info = data["resultInfo"]
    return info["code"], info["subcode"]
