"""The HTTP edge: every failure is Graph's envelope, routing is forgiving.

The app runs on a fake runtime whose engine answers from a table, so these
tests pin the API layer alone: status codes, error codes and messages,
headers, path canonicalisation. End-to-end behaviour is tested elsewhere
with the real engine.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from graphcomms.api.app import create_app
from graphcomms.clock import Clock
from graphcomms.engine.call import Call, CallState, Direction
from graphcomms.engine.operation import (
    ApiVersion,
    Operation,
    OperationKind,
    OperationStatus,
    PromptSource,
    RecordSettings,
)
from graphcomms.errors import (
    CallNotFound,
    CallStateConflict,
    OperationNotFound,
    RecordingNotFound,
    VirtualClockRequired,
)
from graphcomms.notify.faults import FaultDice, FaultPlan
from graphcomms.types import CallId, OperationId

CALL_ID = "57dab8b1-894c-409a-b240-bd8beae78896"
BASE = "http://graphcomms.test"
CALLS = "/v1.0/communications/calls"
PROMPT = {
    "@odata.type": "#microsoft.graph.mediaPrompt",
    "mediaInfo": {"uri": "https://prompts.example.test/beep.wav"},
}
BODY_LIMIT = 4096


@dataclass
class FakeSettings:
    """The settings the API reads."""

    base_url: str = BASE
    max_body_bytes: int = BODY_LIMIT
    clock_mode: str = "real"


@dataclass
class FakeEngine:
    """Knows one established call; records what it was asked to do."""

    clock: Clock = field(default_factory=Clock)
    requests: list[tuple[str, Any]] = field(default_factory=list)
    call: Call = field(
        default_factory=lambda: Call(
            id=CallId(CALL_ID),
            direction=Direction.OUTGOING,
            api_version=ApiVersion.V1,
            callback_uri="https://bot.example.test/api/calls",
            state=CallState.ESTABLISHED,
        )
    )

    def get_call(self, call_id: str) -> Call:
        if call_id != CALL_ID:
            raise CallNotFound(call_id)
        return self.call

    def _op(self, kind: OperationKind, context: str | None, **extra: Any) -> Operation:
        op = Operation(
            id=OperationId("0fe0623f-d628-42ed-b4bd-8ac290072cc5"),
            call_id=CallId(CALL_ID),
            kind=kind,
            api_version=ApiVersion.V1,
            client_context=context,
            status=OperationStatus.RUNNING,
        )
        for name, value in extra.items():
            setattr(op, name, value)
        return op

    def play_prompt(
        self,
        call_id: str,
        prompts: tuple[PromptSource, ...],
        *,
        client_context: str | None,
        loop: bool,
        api_version: ApiVersion,
    ) -> Operation:
        self.get_call(call_id)
        self.requests.append(("playPrompt", (prompts, loop, api_version)))
        return self._op(OperationKind.PLAY_PROMPT, client_context)

    def record_response(
        self,
        call_id: str,
        settings: RecordSettings,
        *,
        client_context: str | None,
        api_version: ApiVersion,
        legacy: bool = False,
    ) -> Operation:
        self.get_call(call_id)
        self.requests.append(("record", (settings, legacy)))
        return self._op(OperationKind.RECORD, client_context, legacy_record=legacy)

    def cancel_media_processing(
        self,
        call_id: str,
        *,
        all_operations: bool,
        client_context: str | None,
        api_version: ApiVersion,
    ) -> Operation:
        self.get_call(call_id)
        return self._op(
            OperationKind.CANCEL_MEDIA_PROCESSING,
            client_context,
            status=OperationStatus.COMPLETED,
            cancel_all=all_operations,
        )

    def subscribe_to_tone(
        self, call_id: str, *, client_context: str | None, api_version: ApiVersion
    ) -> Operation:
        self.get_call(call_id)
        return self._op(
            OperationKind.SUBSCRIBE_TO_TONE,
            client_context,
            status=OperationStatus.COMPLETED,
        )

    def mute(
        self, call_id: str, *, client_context: str | None, api_version: ApiVersion
    ) -> Operation:
        raise RuntimeError("a bug deep inside the engine")

    def keep_alive(self, call_id: str) -> None:
        self.get_call(call_id)

    def hang_up(self, call_id: str) -> None:
        self.get_call(call_id)

    def answer(self, call_id: str, **kwargs: Any) -> None:
        self.get_call(call_id)
        raise CallStateConflict(call_id, "Cannot answer a call in state established.")

    def get_operation(self, call_id: str, op_id: str) -> Operation:
        self.get_call(call_id)
        raise OperationNotFound(call_id, op_id)

    async def recording_file(self, op_id: str, token: str) -> Path:
        raise RecordingNotFound(op_id)


@dataclass
class FakeRuntime:
    """The runtime as the API sees it."""

    settings: FakeSettings = field(default_factory=FakeSettings)
    engine: FakeEngine = field(default_factory=FakeEngine)
    requests_in_flight: int = 0
    api_faults: FaultDice = field(default_factory=lambda: FaultDice(FaultPlan()))

    @property
    def faults(self) -> FaultPlan:
        return self.api_faults.plan

    async def advance_clock(self, ms: int) -> int:
        raise VirtualClockRequired()

    def sound_path(self, name: str) -> Path | None:
        return None

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass


@pytest.fixture
def runtime() -> FakeRuntime:
    return FakeRuntime()


@pytest.fixture
async def client(runtime: FakeRuntime) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(runtime)  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield client


def assert_envelope(
    response: httpx.Response, status: int, code: str, message: str | None = None
) -> dict[str, Any]:
    """Check Graph's error envelope and return its ``error`` object."""
    assert response.status_code == status, response.text
    assert (
        response.headers["content-type"] == "application/json; odata.metadata=minimal"
    )
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code
    if message is not None:
        assert error["message"] == message
    inner = error["innerError"]
    assert inner["request-id"] == response.headers["request-id"]
    assert inner["client-request-id"] == response.headers["client-request-id"]
    assert len(inner["date"]) == len("2021-01-20T20:36:25")
    return error


# -- bodies ---------------------------------------------------------------------


async def test_malformed_json_is_400_8523(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{CALLS}/{CALL_ID}/playPrompt",
        content=b'{"prompts": [',
        headers={"Content-Type": "application/json"},
    )
    error = assert_envelope(response, 400, "8523")
    assert error["message"].startswith("The request body is not valid JSON")


@pytest.mark.parametrize("body", [b"[]", b"42", b"null", b'"x"'])
async def test_json_that_is_not_an_object_is_400(
    client: httpx.AsyncClient, body: bytes
) -> None:
    response = await client.post(f"{CALLS}/{CALL_ID}/playPrompt", content=body)
    error = assert_envelope(response, 400, "8523")
    assert "must be a JSON object" in error["message"]


async def test_declared_huge_body_is_413(client: httpx.AsyncClient) -> None:
    body = json.dumps({"clientContext": "x" * (BODY_LIMIT + 10)})
    response = await client.post(
        f"{CALLS}/{CALL_ID}/cancelMediaProcessing", content=body
    )
    error = assert_envelope(response, 413, "requestEntityTooLarge")
    assert str(BODY_LIMIT) in error["message"]


async def test_streamed_huge_body_is_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b" " * 1000

    response = await client.post(
        f"{CALLS}/{CALL_ID}/cancelMediaProcessing", content=chunks()
    )
    assert "content-length" not in response.request.headers
    assert_envelope(response, 413, "requestEntityTooLarge")


async def test_wrong_types_name_the_field(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{CALLS}/{CALL_ID}/recordResponse",
        json={"maxRecordDurationInSeconds": "10", "playBeep": 1},
    )
    error = assert_envelope(response, 400, "8523")
    assert error["message"] == (
        "maxRecordDurationInSeconds: must be an integer; "
        "playBeep: must be true or false."
    )


async def test_client_context_of_257_chars_is_400_bl22(
    client: httpx.AsyncClient,
) -> None:
    url = f"{CALLS}/{CALL_ID}/playPrompt"
    ok = await client.post(url, json={"prompts": [PROMPT], "clientContext": "c" * 256})
    assert ok.status_code == 200
    assert ok.json()["clientContext"] == "c" * 256
    response = await client.post(
        url, json={"prompts": [PROMPT], "clientContext": "c" * 257}
    )
    assert_envelope(response, 400, "8523", "clientContext: at most 256 characters.")


async def test_21_prompts_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{CALLS}/{CALL_ID}/playPrompt", json={"prompts": [PROMPT] * 21}
    )
    assert_envelope(response, 400, "8523", "prompts: at most 20 items (got 21).")


async def test_non_json_content_type_is_415(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{CALLS}/{CALL_ID}/subscribeToTone",
        content=b"clientContext=x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_envelope(response, 415, "unsupportedMediaType")


async def test_missing_content_type_is_fine_for_json(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        f"{CALLS}/{CALL_ID}/subscribeToTone", content=b'{"clientContext": "ctx"}'
    )
    assert "content-type" not in response.request.headers
    assert response.status_code == 200
    assert response.json()["clientContext"] == "ctx"


@pytest.mark.parametrize("body", [b"", b"{}"])
async def test_actions_with_optional_bodies_accept_empty_and_empty_object(
    client: httpx.AsyncClient, body: bytes
) -> None:
    for action in ("cancelMediaProcessing", "subscribeToTone"):
        response = await client.post(f"{CALLS}/{CALL_ID}/{action}", content=body)
        assert response.status_code == 200, response.text
    response = await client.post(f"{CALLS}/{CALL_ID}/keepAlive", content=body)
    assert response.status_code == 200
    assert response.content == b""


# -- routing --------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        f"{CALLS}/{CALL_ID}/playPrompt",
        f"{CALLS}/{CALL_ID}/playprompt",
        f"{CALLS}/{CALL_ID}/microsoft.graph.playPrompt",
        f"{CALLS}/{CALL_ID}/Microsoft.Graph.PLAYPROMPT",
        f"/V1.0/Communications/Calls/{CALL_ID.upper()}/playPrompt",
        f"/v1.0/communications/calls/{CALL_ID.replace('-', '')}/playPrompt/",
        f"/v1.0/app/calls/{CALL_ID}/playPrompt",
        f"/v1.0/applications/app-1/calls/{CALL_ID}/playPrompt",
    ],
)
async def test_action_paths_route_in_any_spelling(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.post(path, json={"prompts": [PROMPT]})
    assert response.status_code == 200, response.text
    op = response.json()
    assert op["@odata.type"] == "#microsoft.graph.playPromptOperation"
    assert op["status"] == "running"
    assert response.headers["location"] == (
        f"{BASE}/v1.0/communications/calls/{CALL_ID}/operations/{op['id']}"
    )


async def test_beta_app_alias_with_bl07_body(
    client: httpx.AsyncClient, runtime: FakeRuntime
) -> None:
    body = {
        "prompts": [
            {
                "@odata.type": "#microsoft.graph.mediaPrompt",
                "mediaInfo": {
                    "uri": "https://prompts.example.test/b.wav",
                    "resourceid": "g",
                },
                "loop": 5,
            }
        ]
    }
    response = await client.post(f"/beta/app/calls/{CALL_ID}/playPrompt", json=body)
    assert response.status_code == 200
    assert response.headers["location"].startswith(f"{BASE}/beta/communications/calls/")
    prompts, loop, version = runtime.engine.requests[-1][1]
    assert prompts[0].resource_id is None
    assert prompts[0].loop == 5
    assert (loop, version) == (False, ApiVersion.BETA)


async def test_unknown_action_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{CALLS}/{CALL_ID}/dance", json={})
    assert_envelope(
        response, 404, "itemNotFound", "Resource not found for the segment 'dance'."
    )


async def test_graph_action_graphcomms_lacks_is_501(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{CALLS}/{CALL_ID}/transfer", json={})
    assert_envelope(response, 501, "notSupported")


async def test_legacy_record_is_beta_only_and_answers_202_with_location(
    client: httpx.AsyncClient,
) -> None:
    v1 = await client.post(f"{CALLS}/{CALL_ID}/record", json={})
    assert_envelope(v1, 404, "itemNotFound")
    beta = await client.post(
        f"/beta/app/calls/{CALL_ID}/record", json={"maxRecordDurationInSeconds": 300}
    )
    assert beta.status_code == 202
    assert beta.content == b""
    assert "/beta/communications/calls/" in beta.headers["location"]


@pytest.mark.parametrize(
    "path", ["/v1.0/me", "/nowhere", "/v2.0/communications/calls", "/v1.0/_sim/x"]
)
async def test_unknown_path_is_404_envelope(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)
    error = assert_envelope(response, 404, "itemNotFound")
    assert path in error["message"] or "segment" in error["message"]


async def test_wrong_method_is_405_envelope(client: httpx.AsyncClient) -> None:
    response = await client.put(f"{CALLS}/{CALL_ID}")
    assert_envelope(response, 405, "notSupported")
    response = await client.get(f"{CALLS}/{CALL_ID}/playPrompt")
    assert_envelope(response, 405, "notSupported")


# -- engine failures ------------------------------------------------------------


async def test_unknown_call_is_404_8522(client: httpx.AsyncClient) -> None:
    other = "00000000-0000-0000-0000-000000000001"
    for response in (
        await client.get(f"{CALLS}/{other}"),
        await client.delete(f"{CALLS}/{other}"),
        await client.post(f"{CALLS}/{other}/keepAlive"),
        await client.post(f"{CALLS}/{other}/playPrompt", json={"prompts": [PROMPT]}),
    ):
        assert_envelope(response, 404, "8522", "Call not found.")


async def test_unknown_operation_is_404_8522(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{CALLS}/{CALL_ID}/operations/abc")
    assert_envelope(response, 404, "8522", "Operation not found.")


async def test_answer_on_answered_call_is_400_8519(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{CALLS}/{CALL_ID}/answer",
        json={
            "acceptedModalities": ["audio"],
            "mediaConfig": {"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"},
        },
    )
    assert_envelope(response, 400, "8519")


@pytest.mark.parametrize("prefix", ["", "/v1.0", "/beta"])
async def test_clock_advance_in_real_mode_is_400(
    client: httpx.AsyncClient, prefix: str
) -> None:
    response = await client.post(f"{prefix}/_sim/clock/advance", json={"ms": 100})
    assert_envelope(response, 400, "invalidRequest")


async def test_recording_needs_a_bearer_token(client: httpx.AsyncClient) -> None:
    response = await client.get("/recordings/abc")
    assert_envelope(response, 401, "InvalidAuthenticationToken")
    assert response.headers["www-authenticate"].startswith("Bearer")
    response = await client.get(
        "/recordings/abc", headers={"Authorization": "Bearer nope"}
    )
    assert_envelope(response, 404, "itemNotFound")


async def test_unknown_sound_is_404(client: httpx.AsyncClient) -> None:
    assert_envelope(await client.get("/_sim/sounds/x.wav"), 404, "itemNotFound")


async def test_unexpected_error_is_500_9999_and_logged(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="graphcomms.api.app"):
        response = await client.post(f"{CALLS}/{CALL_ID}/mute", json={})
    error = assert_envelope(response, 500, "9999")
    assert "generalException" in error["message"]
    assert "bug deep inside" not in response.text
    (record,) = caplog.records
    assert record.levelno == logging.ERROR
    assert response.headers["request-id"] in record.getMessage()


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", f"{CALLS}", b'{"callbackUri": 5}'),
        ("POST", f"{CALLS}", b"{"),
        ("POST", f"{CALLS}/{CALL_ID}/sendDtmfTones", b'{"tones": "tone1"}'),
        ("POST", f"{CALLS}/{CALL_ID}/playPrompt", b'{"prompts": [{"mediaInfo": 7}]}'),
        ("POST", f"{CALLS}/{CALL_ID}/answer", b'{"mediaConfig": []}'),
        ("POST", "/_sim/calls", b'{"script": [{"action": "fly"}]}'),
        ("POST", f"/_sim/calls/{CALL_ID}/caller", b'{"action": "dtmf", "tones": "x"}'),
        ("POST", "/_sim/clock/advance", b'{"ms": -1}'),
        ("POST", "/_sim/notifications/abc/redeliver", b""),
    ],
)
async def test_bad_input_never_gets_422_or_500(
    client: httpx.AsyncClient, method: str, path: str, body: bytes
) -> None:
    response = await client.request(method, path, content=body)
    assert response.status_code not in (422, 500), response.text
    assert 400 <= response.status_code < 500
    assert "detail" not in response.json()
    assert response.json()["error"]["code"]


# -- headers --------------------------------------------------------------------


async def test_graph_headers_on_success(client: httpx.AsyncClient) -> None:
    response = await client.get(
        f"{CALLS}/{CALL_ID}", headers={"client-request-id": "my-id-1"}
    )
    assert response.status_code == 200
    assert (
        response.headers["content-type"] == "application/json; odata.metadata=minimal"
    )
    assert response.headers["odata-version"] == "4.0"
    assert response.headers["client-request-id"] == "my-id-1"
    assert response.headers["request-id"]
    body = response.json()
    assert body["@odata.context"] == (
        f"{BASE}/v1.0/$metadata#communications/calls/$entity"
    )
    assert body["id"] == CALL_ID


async def test_client_request_id_is_made_up_when_absent(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(f"{CALLS}/nope")
    assert response.headers["client-request-id"]
    assert (
        response.json()["error"]["innerError"]["client-request-id"]
        == (response.headers["client-request-id"])
    )


async def test_delete_is_204_and_health_is_ok(client: httpx.AsyncClient) -> None:
    response = await client.delete(f"{CALLS}/{CALL_ID}")
    assert response.status_code == 204
    assert response.content == b""
    health = await client.get("/health")
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}


# -- the emulator's bodies ------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"action": "speak"}, "speak: give either ms or audio (a base64 WAV)."),
        (
            {"action": "speak", "ms": 100, "audio": "UklGRg=="},
            "speak: give either ms or audio (a base64 WAV).",
        ),
        ({"action": "speak", "audio": "not base64!"}, "audio: is not valid base64."),
        ({"action": "silence"}, "ms: is required for silence."),
        ({"action": "dtmf"}, 'tones: is required for dtmf, e.g. "12#".'),
        (
            {"action": "dtmf", "tones": "1x#"},
            "tones: 'X' are not DTMF keys (use 0-9, *, #, A-D).",
        ),
        ({"action": "silence", "ms": 0}, "ms: must be at least 1."),
    ],
)
async def test_caller_action_bodies_are_checked(
    client: httpx.AsyncClient, body: dict[str, Any], message: str
) -> None:
    response = await client.post(f"/_sim/calls/{CALL_ID}/caller", json=body)
    assert_envelope(response, 400, "8523", message)


async def test_caller_audio_must_be_a_prompt_format_wav(
    client: httpx.AsyncClient,
) -> None:
    mp3 = base64.b64encode(b"ID3\x03\x00\x00\x00").decode()
    response = await client.post(
        f"/_sim/calls/{CALL_ID}/caller", json={"action": "speak", "audio": mp3}
    )
    error = assert_envelope(response, 400, "8523")
    assert error["message"].startswith("audio: prompt is not a WAV file")


async def test_incoming_call_needs_a_callback(client: httpx.AsyncClient) -> None:
    response = await client.post("/_sim/calls", json={})
    assert_envelope(response, 400, "8523", "callbackUri: is required.")
