"""Malformed and hostile input on every endpoint, /_sim included.

The promise: bad input always gets Graph's error envelope
``{"error": {"code", "message", "innerError": {...}}}``, never a 500 and
never FastAPI's 422 shape; a prompt that cannot be fetched or is not a Graph
prompt fails its operation (8536 or 8535) and never the call.
"""

from __future__ import annotations

import gzip
import io
import socket
import struct
import wave
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import numpy as np
import pytest
import robustness_support as rs

from graphcomms.testing import (
    GraphcommsServer,
    PromptServer,
    WebhookReceiver,
    tone_wav,
)

JSON = "application/json"

HOSTILE_BODIES: dict[str, tuple[bytes, str]] = {
    "array": (b'[{"ms": 20}]', JSON),
    "string": (b'"x"', JSON),
    "number": (b"12", JSON),
    "null": (b"null", JSON),
    "gzip": (gzip.compress(b'{"ms": 20}'), JSON),
    "text-plain": (b'{"ms": 20}', "text/plain"),
    "form": (b"ms=20", "application/x-www-form-urlencoded"),
    "multipart": (b"--x\r\n\r\n--x--", "multipart/form-data; boundary=x"),
    "garbage-type": (b'{"ms": 20}', ";;;"),
    "utf16": ('{"ms": 20}'.encode("utf-16"), JSON),
    "latin1": ('{"clientContext": "\xe9"}'.encode("latin-1"), JSON),
    "nan": (b'{"ms": NaN, "seed": Infinity}', JSON),
    "huge-int": (b'{"ms": 1' + b"0" * 5000 + b"}", JSON),
    "big-numbers": (
        b'{"ms": 99999999999999999999999, "maxRecordDurationInSeconds": 1e400,'
        b' "delayBetweenTonesMs": 99999999999999999999, "seed": 1.5}',
        JSON,
    ),
    "numbers-as-strings": (
        b'{"ms": "20", "maxRecordDurationInSeconds": "5", "delayMs": "1",'
        b' "delayBetweenTonesMs": "5", "drop": "0.5", "prompts": "1"}',
        JSON,
    ),
    "booleans-as-strings": (
        b'{"all": "false", "bargeInAllowed": "true", "playBeep": "true",'
        b' "reorder": "true", "loop": "true"}',
        JSON,
    ),
    "negatives": (
        b'{"ms": -20, "maxRecordDurationInSeconds": -5,'
        b' "initialSilenceTimeoutInSeconds": -1, "maxSilenceTimeoutInSeconds": 0,'
        b' "delayBetweenTonesMs": -5, "delayMs": -1, "drop": -0.5}',
        JSON,
    ),
    "empty-uris": (
        b'{"callbackUri": "", "prompts": [{"mediaInfo": {"uri": ""}}],'
        b' "targets": [{}], "acceptedModalities": ["audio"], "mediaConfig":'
        b' {"@odata.type": "#microsoft.graph.serviceHostedMediaConfig",'
        b' "preFetchMedia": [{"uri": ""}]}}',
        JSON,
    ),
    "file-uris": (
        b'{"callbackUri": "file:///etc/passwd",'
        b' "prompts": [{"mediaInfo": {"uri": "file:///etc/passwd"}}]}',
        JSON,
    ),
    "nul-chars": (b'{"clientContext": "\\u0000", "tones": "\\u0000"}', JSON),
    "wrong-shapes": (
        b'{"prompts": "abc", "stopTones": "#", "tones": "tone1", "targets": {},'
        b' "script": {}, "acceptedModalities": "audio", "status": 5,'
        b' "mediaConfig": {"@odata.type": 5}, "action": []}',
        JSON,
    ),
    "unicode-digits": (
        b'{"tones": ["\\u0661"], "stopTones": ["\\u0661"], "ms": "\\u0661"}',
        JSON,
    ),
    "nested-600": (b'{"a": ' * 600 + b"1" + b"}" * 600, JSON),
    "nested-100k": (b"[" * 100_000 + b"]" * 100_000, JSON),
}


def _post_paths(call_id: str) -> list[str]:
    graph = rs.calls_path(call_id)
    beta = rs.calls_path(call_id, "beta")
    actions = [
        "playPrompt",
        "recordResponse",
        "cancelMediaProcessing",
        "subscribeToTone",
        "sendDtmfTones",
        "keepAlive",
        "mute",
        "unmute",
        "updateRecordingStatus",
        "answer",
        "reject",
        "redirect",
    ]
    return [
        *(f"{graph}/{a}" for a in actions),
        f"{beta}/playPrompt",
        f"{beta}/record",
        "/v1.0/communications/calls",
        "/_sim/calls",
        "/beta/_sim/calls",
        f"/_sim/calls/{call_id}/caller",
        "/_sim/clock/advance",
    ]


@pytest.mark.parametrize("kind", list(HOSTILE_BODIES))
def test_hostile_body_on_every_post_is_never_500_or_422(
    graphcomms_server: GraphcommsServer,
    webhook_receiver: WebhookReceiver,
    kind: str,
) -> None:
    """Each hostile body on each POST (and PUT /_sim/faults): an envelope."""
    server = graphcomms_server
    call_id = rs.answered_call(server, webhook_receiver)
    body, content_type = HOSTILE_BODIES[kind]
    headers = {"Content-Type": content_type}
    if kind == "gzip":
        headers["Content-Encoding"] = "gzip"
    answers = [
        (path, server.http.post(path, content=body, headers=headers))
        for path in _post_paths(call_id)
    ]
    answers.append(
        ("/_sim/faults", server.http.put("/_sim/faults", content=body, headers=headers))
    )

    for path, response in answers:
        assert response.status_code not in (422, 500), (path, response.text)
        assert response.status_code < 500, (path, response.text)
        if response.status_code >= 400:
            rs.assert_envelope(response)
    if content_type.split(";")[0] in ("text/plain", "multipart/form-data"):
        assert {r.status_code for _, r in answers} == {415}
    assert server.http.get(rs.calls_path(call_id)).json()["state"] == "established"


def test_gzip_body_is_400_and_wrong_content_type_is_415(
    graphcomms_server: GraphcommsServer, webhook_receiver: WebhookReceiver
) -> None:
    """Content-Encoding is not decoded: a gzip body is not JSON text."""
    server = graphcomms_server
    call_id = rs.answered_call(server, webhook_receiver)
    path = rs.calls_path(call_id) + "/cancelMediaProcessing"
    raw = b'{"clientContext": "x"}'

    zipped = server.http.post(
        path,
        content=gzip.compress(raw),
        headers={"Content-Type": JSON, "Content-Encoding": "gzip"},
    )
    form = server.http.post(
        path, content=raw, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    plain = server.http.post(path, content=raw, headers={"Content-Type": "text/plain"})

    rs.assert_graph_error(zipped, 400, "8523")
    rs.assert_graph_error(form, 415, "unsupportedMediaType")
    rs.assert_graph_error(plain, 415, "unsupportedMediaType")


def _chunks(total: int) -> Iterator[bytes]:
    yield b'{"clientContext": "'
    for _ in range(total // 65_536):
        yield b"x" * 65_536
    yield b'"}'


@pytest.mark.parametrize(
    "method,path",
    [
        ("POST", "/v1.0/communications/calls/{id}/playPrompt"),
        ("POST", "/v1.0/communications/calls"),
        ("POST", "/_sim/calls"),
        ("POST", "/_sim/calls/{id}/caller"),
        ("POST", "/_sim/clock/advance"),
        ("PUT", "/_sim/faults"),
    ],
)
def test_chunked_body_over_one_mib_is_413(
    graphcomms_server: GraphcommsServer,
    webhook_receiver: WebhookReceiver,
    method: str,
    path: str,
) -> None:
    """1.25 MiB streamed without Content-Length: 413 requestEntityTooLarge."""
    server = graphcomms_server
    call_id = rs.answered_call(server, webhook_receiver)
    response = server.http.request(
        method,
        path.format(id=call_id),
        content=_chunks(1_310_720),
        headers={"Content-Type": JSON},
    )
    rs.assert_graph_error(response, 413, "requestEntityTooLarge")


def test_duplicate_keys_take_the_last_value(
    graphcomms_server: GraphcommsServer, webhook_receiver: WebhookReceiver
) -> None:
    """``{"all": "x", "all": false}`` is read as all=false, not a 500."""
    server = graphcomms_server
    call_id = rs.answered_call(server, webhook_receiver)
    response = server.http.post(
        rs.calls_path(call_id) + "/cancelMediaProcessing",
        content=b'{"all": "x", "all": false, "clientContext": 1, "clientContext": "c"}',
        headers={"Content-Type": JSON},
    )
    assert response.status_code == 200, response.text
    assert response.json()["all"] is False
    assert response.json()["clientContext"] == "c"


@pytest.mark.parametrize(
    "raw_id",
    [
        "%E2%98%83",
        "..%2F..%2F..%2Fetc%2Fpasswd",
        "%2E%2E",
        "%00",
        "x" * 10_000,
        "00000000-0000-0000-0000-000000000000",
    ],
)
def test_hostile_ids_answer_404_envelopes(
    graphcomms_server: GraphcommsServer,
    webhook_receiver: WebhookReceiver,
    raw_id: str,
) -> None:
    """Unicode, traversal, NUL and 10 kB ids in every id-taking path."""
    server = graphcomms_server
    live = rs.answered_call(server, webhook_receiver)
    answers = [
        server.http.get(f"/v1.0/communications/calls/{raw_id}"),
        server.http.delete(f"/v1.0/communications/calls/{raw_id}"),
        server.http.post(f"/v1.0/communications/calls/{raw_id}/keepAlive"),
        server.http.get(f"/v1.0/communications/calls/{live}/operations/{raw_id}"),
        server.http.get(f"/_sim/calls/{raw_id}"),
        server.http.get(f"/_sim/calls/{raw_id}/heard.wav"),
        server.http.post(f"/_sim/calls/{raw_id}/caller", json={"action": "hangup"}),
        server.http.get(f"/_sim/sounds/{raw_id}"),
        server.http.get(f"/recordings/{raw_id}", headers={"Authorization": "Bearer t"}),
        server.http.post(f"/_sim/notifications/{raw_id}/redeliver"),
    ]
    for response in answers:
        assert response.status_code in (404, 405), response.text[:300]
        rs.assert_envelope(response)
    assert server.http.get(rs.calls_path(live)).status_code == 200


@pytest.mark.parametrize("seq", ["%C2%B2", "99999999999999999999999"])
def test_redeliver_with_odd_seq_is_404(
    graphcomms_server: GraphcommsServer, seq: str
) -> None:
    """Superscript digits and huge numbers name no notification: 404."""
    response = graphcomms_server.http.post(f"/_sim/notifications/{seq}/redeliver")
    rs.assert_graph_error(response, 404, "itemNotFound")


@pytest.mark.parametrize("where", ["/_sim/calls", "/v1.0/communications/calls"])
def test_deeply_nested_source_is_400(
    graphcomms_server: GraphcommsServer,
    webhook_receiver: WebhookReceiver,
    where: str,
) -> None:
    """A ``source`` nested 600 levels deep is refused with 400 8523."""
    server = graphcomms_server
    nested = '{"a": ' * 600 + "1" + "}" * 600
    body = (
        f'{{"callbackUri": "{webhook_receiver.url}", "source": {nested},'
        ' "targets": [{"identity": {}}], "mediaConfig":'
        ' {"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"}}'
    )
    response = server.http.post(
        where, content=body.encode(), headers={"Content-Type": JSON}
    )
    rs.assert_graph_error(response, 400, "8523")


@pytest.mark.parametrize(
    "path,template",
    [
        ("/_sim/calls", '{"callbackUri": "http://\\ud800/"}'),
        ("/_sim/calls", '{"callbackUri": "URL", "subject": "\\ud800"}'),
        ("/_sim/calls", '{"callbackUri": "URL", "source": {"x": "\\udfff"}}'),
        (
            "/v1.0/communications/calls",
            '{"callbackUri": "URL", "targets": [{"x": "\\ud800"}], "mediaConfig":'
            ' {"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"}}',
        ),
    ],
)
def test_lone_surrogate_in_call_body_is_400(
    graphcomms_server: GraphcommsServer,
    webhook_receiver: WebhookReceiver,
    path: str,
    template: str,
) -> None:
    """A lone surrogate anywhere in a call's body is refused with 400 8523."""
    body = template.replace("URL", webhook_receiver.url).encode()
    response = graphcomms_server.http.post(
        path, content=body, headers={"Content-Type": JSON}
    )
    rs.assert_graph_error(response, 400, "8523")


def test_lone_surrogate_in_prompt_uri_is_400_and_call_still_ends(
    graphcomms_server: GraphcommsServer,
    webhook_receiver: WebhookReceiver,
    prompt_server: PromptServer,
) -> None:
    """The bad playPrompt is refused, and the call still plays and hangs up."""
    server, receiver = graphcomms_server, webhook_receiver
    short = prompt_server.add("short.wav", tone_wav(100))
    call_id = rs.answered_call(server, receiver)
    uri = short + "?\\ud800"  # a JSON escape, sent as is
    body = '{"prompts": [{"mediaInfo": {"uri": "' + uri + '"}}]}'

    bad = server.http.post(
        rs.calls_path(call_id) + "/playPrompt",
        content=body.encode(),
        headers={"Content-Type": JSON},
    )
    good = rs.play(server, call_id, short)
    server.advance(300)
    hung_up = rs.hang_up(server, call_id)
    server.advance(20)

    assert bad.status_code == 400, bad.text
    assert good["status"] == "running"
    assert hung_up.status_code == 204, hung_up.text
    rs.assert_call_story(server, receiver, call_id)


@pytest.mark.parametrize("via", ["caller", "script"])
def test_caller_dtmf_longer_than_an_hour_is_400(
    graphcomms_server: GraphcommsServer,
    webhook_receiver: WebhookReceiver,
    via: str,
) -> None:
    """The call stays unanswered, so no tick ever builds the audio."""
    server = graphcomms_server
    action = {"action": "dtmf", "tones": "1" * 100_000, "toneMs": 2000}
    action["gapMs"] = 10_000
    if via == "script":
        response = server.http.post(
            "/_sim/calls",
            json={"callbackUri": webhook_receiver.url, "script": [action]},
        )
        if response.status_code == 201:
            call_id = response.json()["id"]
            rs.graph(server, call_id, "reject", {"reason": "busy"})
    else:
        call_id = server.place_call(webhook_receiver.url)
        response = server.http.post(f"/_sim/calls/{call_id}/caller", json=action)
        rs.graph(server, call_id, "reject", {"reason": "busy"})
    rs.assert_graph_error(response, 400, "8523")


def _wav(channels: int, rate_hz: int) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate_hz)
        out.writeframes(np.full(3200 * channels, 1000, dtype="<i2").tobytes())
    return buffer.getvalue()


def _lying(data_size: int, cut: int = 0) -> bytes:
    wav = bytearray(tone_wav(200)[: len(tone_wav(200)) - cut])
    struct.pack_into("<I", wav, 40, data_size)
    return bytes(wav)


def _huge_declared(handler: BaseHTTPRequestHandler, _: bytes) -> None:
    handler.send_response(200)
    handler.send_header("Content-Length", str(2 * 1024**3))
    handler.end_headers()
    try:
        for _chunk in range(8):
            handler.wfile.write(b"\0" * 65_536)
    except OSError:
        pass


def _refused_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


@pytest.mark.graphcomms(prompt_timeout_s=1.0)
def test_bad_prompts_fail_their_operation_and_the_call_plays_on(
    graphcomms_server: GraphcommsServer,
    webhook_receiver: WebhookReceiver,
    prompt_server: PromptServer,
) -> None:
    """Each broken prompt ends its op 8535/8536; a good prompt still plays."""
    server, receiver = graphcomms_server, webhook_receiver
    side = rs.SideServer(_huge_declared)
    files = {
        "8k": (_wav(1, 8000), 8535),
        "stereo": (_wav(2, 16_000), 8535),
        "mp3-named-wav": (b"ID3\x03\x00\x00\x00" + b"\xff\xfb" * 500, 8535),
        "empty": (b"", 8535),
        "header-only": (tone_wav(200)[:44], 8535),
        "lying-odd-size": (_lying(10_000_000, cut=1), 8535),
    }
    uris = {
        name: (prompt_server.add(f"{name}.wav", data), code)
        for name, (data, code) in files.items()
    }
    uris["missing"] = (prompt_server.url("missing.wav"), 8536)
    uris["refused-port"] = (f"http://127.0.0.1:{_refused_port()}/x.wav", 8536)
    uris["file-localhost"] = ("file://localhost/etc/passwd", 8536)
    uris["ftp"] = ("ftp://127.0.0.1/x.wav", 8536)
    uris["2-GB-declared"] = (side.url("/huge.wav"), 8536)
    try:
        call_id = rs.answered_call(server, receiver)
        ops = {
            name: rs.play(server, call_id, uri)["id"] for name, (uri, _) in uris.items()
        }
        lying = rs.play(server, call_id, prompt_server.add("lying.wav", _lying(10**7)))
        server.advance(1000)

        for name, (_, subcode) in uris.items():
            ended = rs.wait_for_end(server, receiver, ops[name])
            assert rs.result_of(ended) == ("failed", 400, subcode), name
        # a data chunk longer than the file plays the samples that are there
        done = rs.wait_for_end(server, receiver, lying["id"])
        assert rs.result_of(done) == ("completed", 200, 0)
        assert rs.loud_frames(rs.heard(server, call_id)) == 10
        assert server.http.get(rs.calls_path(call_id)).json()["state"] == "established"
    finally:
        side.close()


def test_recording_with_missing_or_wrong_token_is_401(
    graphcomms_server: GraphcommsServer, webhook_receiver: WebhookReceiver
) -> None:
    """No token, an empty one, another scheme, a wrong one: 401 each."""
    server = graphcomms_server
    path = "/recordings/00000000-0000-0000-0000-000000000001"
    for headers in (
        {},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "bearer"},
    ):
        rs.assert_graph_error(
            server.http.get(path, headers=headers), 401, "InvalidAuthenticationToken"
        )
    unknown = server.http.get(path, headers={"Authorization": "Bearer \xe9".encode()})
    rs.assert_graph_error(unknown, 404, "itemNotFound")
