"""Bad input against a live graphcomms: every endpoint answers Graph's envelope.

Malformed JSON, wrong types, broken limits, bodies over 1 MiB, unknown
ids, actions on an ended call, unknown actions and paths: each gets the
status the spec gives it and the ``{"error": {...}}`` envelope; never a
500 and never FastAPI's 422 ``{"detail": ...}`` shape.

One server serves the whole module (none of these requests changes state);
it is built from the plugin's classes directly, which proves they work
outside the fixtures too.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graphcomms.testing import (
    GraphcommsServer,
    PromptServer,
    WebhookReceiver,
    tone_wav,
)

from .helpers import (
    SERVICE_HOSTED,
    TARGET,
    assert_graph_error,
    call_body,
    create_call,
    play,
)

CALLS = "/v1.0/communications/calls"
UNKNOWN = "6f1c54e7-0000-4000-8000-000000000000"
MALFORMED = b'{"prompts": [{"mediaInfo": '
NOT_UTF8 = b'{"clientContext": "\xff\xfe"}'
HUGE = b'{"clientContext": "' + b"a" * (1024 * 1024 + 10) + b'"}'
CALLBACK = "https://bot.example.test/api/calls"
BEEP = "https://prompts.example.test/beep.wav"
PROMPT = {"@odata.type": "#microsoft.graph.mediaPrompt", "mediaInfo": {"uri": BEEP}}


@dataclass(frozen=True)
class World:
    """A server with one call in each state that matters here."""

    server: GraphcommsServer
    ids: dict[str, str]
    """live, ended, incoming and op (a running operation of the live call)."""


@dataclass(frozen=True)
class Case:
    """One bad request and the answer it must get."""

    method: str
    path: str
    """With {live}, {ended}, {incoming}, {op} and {unknown} placeholders."""
    body: bytes | dict[str, Any] | list[Any] | None
    status: int
    code: str | None = None
    content_type: str = "application/json"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Start a server with a live call (and a running op), an ended call, a
    ringing incoming call."""
    data_dir: Path = tmp_path_factory.mktemp("bad-input")
    with (
        WebhookReceiver() as receiver,
        PromptServer() as prompts,
        GraphcommsServer(data_dir) as server,
    ):
        menu = prompts.add("menu.wav", tone_wav(60_000))
        live = create_call(server, receiver)
        op = play(server, live, menu)
        ended = create_call(server, receiver)
        assert server.http.delete(f"{CALLS}/{ended}").status_code == 204
        receiver.call_state(ended, "terminated")
        incoming = server.place_call(receiver.url)
        ids = {
            "live": live,
            "ended": ended,
            "incoming": incoming,
            "op": op["id"],
            "unknown": UNKNOWN,
        }
        yield World(server, ids)


# what is valid for each action, to isolate one fault at a time
VALID: dict[str, dict[str, Any] | None] = {
    "answer": {
        "callbackUri": CALLBACK,
        "acceptedModalities": ["audio"],
        "mediaConfig": SERVICE_HOSTED,
    },
    "reject": {"reason": "busy"},
    "redirect": {"targets": [TARGET]},
    "keepAlive": None,
    "playPrompt": {"prompts": [PROMPT]},
    "recordResponse": {},
    "subscribeToTone": {},
    "sendDtmfTones": {"tones": ["tone1"]},
    "cancelMediaProcessing": {},
    "mute": {},
    "unmute": {},
    "updateRecordingStatus": {"status": "recording"},
}
INCOMING_ONLY = {"answer", "reject", "redirect"}
BODY_REQUIRED = {"answer", "redirect", "playPrompt", "sendDtmfTones"} | {
    "updateRecordingStatus"
}
WRONG_TYPES: dict[str, list[dict[str, Any]]] = {
    "answer": [
        {**(VALID["answer"] or {}), "acceptedModalities": "audio"},
        {**(VALID["answer"] or {}), "mediaConfig": {"blob": "x"}},
        {**(VALID["answer"] or {}), "callbackUri": "not a uri"},
    ],
    "reject": [{"reason": 7}, {"reason": "tired"}],
    "redirect": [{"targets": {"identity": {}}}, {"targets": [TARGET], "timeout": 5}],
    "playPrompt": [
        {"prompts": BEEP},
        {"prompts": [{"mediaInfo": {"uri": 5}}]},
        {"prompts": [{"mediaInfo": {"uri": "relative/a.wav"}}]},
        {"prompts": [PROMPT] * 21},
        {"prompts": []},
        {"prompts": [PROMPT], "clientContext": "c" * 257},
        {"prompts": [PROMPT], "clientContext": 5},
    ],
    "recordResponse": [
        {"maxRecordDurationInSeconds": "10"},
        {"maxRecordDurationInSeconds": 121},
        {"initialSilenceTimeoutInSeconds": 0},
        {"maxSilenceTimeoutInSeconds": 1.5},
        {"bargeInAllowed": 1},
        {"stopTones": "#"},
        {"stopTones": ["x"]},
        {"prompts": [PROMPT, PROMPT]},
    ],
    "subscribeToTone": [{"clientContext": 5}, {"clientContext": "c" * 257}],
    "sendDtmfTones": [
        {"tones": ["tone99"]},
        {"tones": "tone1"},
        {"tones": ["tone1"], "delayBetweenTonesMs": "100"},
        {"tones": ["tone1"], "delayBetweenTonesMs": 10**9},
    ],
    "cancelMediaProcessing": [{"all": "yes"}, {"clientContext": ["a"]}],
    "mute": [{"clientContext": ["a"]}],
    "unmute": [{"clientContext": {"a": 1}}],
    "updateRecordingStatus": [{"status": "maybe"}, {"status": 1}],
}
CREATE_WRONG: list[dict[str, Any]] = [
    {"callbackUri": 5, "targets": [TARGET], "mediaConfig": SERVICE_HOSTED},
    {"callbackUri": CALLBACK, "targets": [], "mediaConfig": SERVICE_HOSTED},
    {"callbackUri": CALLBACK, "targets": [TARGET], "mediaConfig": {"blob": "x"}},
    {
        "callbackUri": CALLBACK,
        "targets": [TARGET],
        "mediaConfig": {"@odata.type": "#microsoft.graph.nope"},
    },
    {"callbackUri": "ftp://bot/x", "targets": [TARGET], "mediaConfig": SERVICE_HOSTED},
    {
        "callbackUri": CALLBACK,
        "targets": [TARGET],
        "mediaConfig": SERVICE_HOSTED,
        "requestedModalities": ["smell"],
    },
]
SIM_WRONG: list[tuple[str, dict[str, Any]]] = [
    ("/_sim/calls", {"callbackUri": "ftp://bot/x"}),
    ("/_sim/calls", {"callbackUri": 5}),
    ("/_sim/calls", {"callbackUri": CALLBACK, "script": [{"action": "dance"}]}),
    ("/_sim/calls", {"callbackUri": CALLBACK, "script": {"action": "hangup"}}),
    ("/_sim/calls/{live}/caller", {"action": "dtmf", "tones": "xyz"}),
    ("/_sim/calls/{live}/caller", {"action": "dtmf"}),
    ("/_sim/calls/{live}/caller", {"action": "speak"}),
    ("/_sim/calls/{live}/caller", {"action": "speak", "audio": "!!not base64"}),
    (
        "/_sim/calls/{live}/caller",
        {"action": "speak", "audio": base64.b64encode(b"RIFFnope").decode()},
    ),
    ("/_sim/calls/{live}/caller", {"action": "silence", "ms": -1}),
    ("/_sim/calls/{live}/caller", {"action": "silence"}),
    ("/_sim/clock/advance", {"ms": -1}),
    ("/_sim/clock/advance", {"ms": "100"}),
    ("/_sim/clock/advance", {"ms": 10**12}),
]
SIM_BODY_ENDPOINTS = ["/_sim/calls", "/_sim/calls/{live}/caller", "/_sim/clock/advance"]


def _action_path(name: str, call: str = "live") -> str:
    target = "incoming" if name in INCOMING_ONLY and call == "live" else call
    return f"{CALLS}/{{{target}}}/{name}"


def _cases() -> Iterator[tuple[str, Case]]:
    """Yield (test id, case) for every bad request."""
    body_paths = [
        (name, _action_path(name)) for name in VALID if VALID[name] is not None
    ]
    body_paths += [
        ("create", CALLS),
        ("beta-record", "/beta/communications/calls/{live}/record"),
    ]
    body_paths += [(path, path) for path in SIM_BODY_ENDPOINTS]

    # bodies that are not JSON objects, and bodies too big
    for name, path in body_paths:
        yield f"{name}-malformed-json", Case("POST", path, MALFORMED, 400, "8523")
        yield f"{name}-json-array", Case("POST", path, [], 400, "8523")
        yield f"{name}-json-string", Case("POST", path, b'"hello"', 400, "8523")
        yield f"{name}-not-utf8", Case("POST", path, NOT_UTF8, 400, "8523")
        yield f"{name}-huge", Case("POST", path, HUGE, 413)
        yield (
            f"{name}-text-plain",
            Case("POST", path, b"{}", 415, content_type="text/plain"),
        )
    yield "keepAlive-huge", Case("POST", _action_path("keepAlive"), HUGE, 413)

    # wrong types and broken limits
    for name, bodies in WRONG_TYPES.items():
        for i, body in enumerate(bodies):
            yield (
                f"{name}-wrong-{i}",
                Case("POST", _action_path(name), body, 400, "8523"),
            )
    for i, body in enumerate(CREATE_WRONG):
        yield f"create-wrong-{i}", Case("POST", CALLS, body, 400, "8523")
    for i, (path, body) in enumerate(SIM_WRONG):
        yield f"sim-wrong-{i}", Case("POST", path, body, 400, "8523")

    # empty bodies where one is required
    for name in BODY_REQUIRED:
        yield f"{name}-empty", Case("POST", _action_path(name), b"", 400, "8523")
    yield "create-empty", Case("POST", CALLS, b"", 400, "8523")
    for path in SIM_BODY_ENDPOINTS:
        yield f"{path}-empty", Case("POST", path, b"", 400, "8523")

    # unknown and ended calls, unknown operations
    for call in ("unknown", "ended"):
        for name, body in VALID.items():
            path = _action_path(name, call)
            yield f"{name}-{call}-call", Case("POST", path, body, 404, "8522")
        yield f"get-{call}-call", Case("GET", f"{CALLS}/{{{call}}}", None, 404, "8522")
        yield (
            f"delete-{call}-call",
            Case("DELETE", f"{CALLS}/{{{call}}}", None, 404, "8522"),
        )
        op_path = f"{CALLS}/{{{call}}}/operations/{{op}}"
        yield f"get-op-{call}-call", Case("GET", op_path, None, 404, "8522")
        beta_path = f"/beta/app/calls/{{{call}}}/record"
        yield f"beta-record-{call}-call", Case("POST", beta_path, {}, 404, "8522")
    unknown_op = f"{CALLS}/{{live}}/operations/{{unknown}}"
    yield "get-unknown-op", Case("GET", unknown_op, None, 404, "8522")
    yield "get-op-not-a-guid", Case("GET", f"{CALLS}/{{live}}/operations/x", None, 404)
    yield "get-call-not-a-guid", Case("GET", f"{CALLS}/not-a-guid", None, 404)
    yield (
        "caller-unknown-call",
        Case("POST", "/_sim/calls/{unknown}/caller", {"action": "hangup"}, 404),
    )
    yield "inspect-unknown-call", Case("GET", "/_sim/calls/{unknown}", None, 404)
    yield (
        "heard-unknown-call",
        Case("GET", "/_sim/calls/{unknown}/heard.wav", None, 404),
    )

    # answer, reject and redirect are for incoming calls only
    for name in INCOMING_ONLY:
        path = f"{CALLS}/{{live}}/{name}"
        yield f"{name}-established-call", Case("POST", path, VALID[name], 400, "8519")

    # unknown actions, paths, versions and methods
    yield "unknown-action", Case("POST", f"{CALLS}/{{live}}/dance", {}, 404)
    yield "v1-only-lacks-record", Case("POST", f"{CALLS}/{{live}}/record", {}, 404)
    yield "unknown-version", Case("GET", "/v9.9/communications/calls", None, 404)
    yield "unknown-path", Case("GET", "/v1.0/nothing/here", None, 404)
    yield "wrong-method", Case("PUT", f"{CALLS}/{{live}}", {}, 405)
    yield "recording-no-token", Case("GET", "/recordings/{unknown}", None, 401)
    yield "unknown-sound", Case("GET", "/_sim/sounds/nope.wav", None, 404)
    yield "sound-path-escape", Case("GET", "/_sim/sounds/..%2Fruntime.py", None, 404)
    yield (
        "redeliver-unknown",
        Case("POST", "/_sim/notifications/999999/redeliver", None, 404),
    )
    yield (
        "redeliver-not-a-number",
        Case("POST", "/_sim/notifications/abc/redeliver", None, 404),
    )
    yield (
        "notifications-bad-status",
        Case("GET", "/_sim/notifications?status=nope", None, 400, "8523"),
    )


CASES = dict(_cases())


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_bad_request_answers_graph_error_envelope(world: World, case: Case) -> None:
    """The status of the case, Graph's envelope, never 500 nor 422."""
    path = case.path.format(**world.ids)
    headers = {"Content-Type": case.content_type}
    if isinstance(case.body, bytes):
        response = world.server.http.request(
            case.method, path, content=case.body, headers=headers
        )
    elif case.body is None:
        response = world.server.http.request(case.method, path)
    else:
        response = world.server.http.request(case.method, path, json=case.body)

    assert response.status_code not in (422, 500), response.text
    assert_graph_error(response, case.status, case.code)


def test_graph_answers_carry_odata_headers_and_echo_client_request_id(
    world: World,
) -> None:
    """OData-Version 4.0, odata.metadata=minimal, ids echoed in errors too."""
    sent = str(uuid.uuid4())
    headers = {"client-request-id": sent}
    ok = world.server.http.get(f"{CALLS}/{world.ids['live']}", headers=headers)
    assert ok.headers["OData-Version"] == "4.0"
    assert "odata.metadata=minimal" in ok.headers["Content-Type"]
    assert ok.headers["client-request-id"] == sent
    bad = world.server.http.get(f"{CALLS}/{UNKNOWN}", headers=headers)
    inner = assert_graph_error(bad, 404, "8522")["innerError"]
    assert inner["client-request-id"] == sent
    assert inner["request-id"] == bad.headers["request-id"]


def test_recording_with_wrong_token_is_404(world: World) -> None:
    """A bearer token that matches nothing finds no recording."""
    response = world.server.http.get(
        f"/recordings/{uuid.uuid4()}", headers={"Authorization": "Bearer nope"}
    )
    assert_graph_error(response, 404)


def test_bad_requests_leave_the_live_call_untouched(world: World) -> None:
    """After all of that, the live call and its running operation are fine."""
    ids = world.ids
    call = world.server.http.get(f"{CALLS}/{ids['live']}")
    assert call.status_code == 200 and call.json()["state"] == "established"
    op = world.server.http.get(f"{CALLS}/{ids['live']}/operations/{ids['op']}")
    assert op.status_code == 200 and op.json()["status"] == "running"


# random bodies -----------------------------------------------------------------

ACTIONS = [*VALID, "record", "transfer", "changeScreenSharingRole"]
BODY_PATHS = [
    f"/{version}/communications/calls/{{call}}/{name}"
    for version in ("v1.0", "beta")
    for name in ACTIONS
] + [CALLS, "/_sim/calls", "/_sim/calls/{call}/caller"]
KEYS = st.sampled_from(
    sorted(
        {key for bodies in WRONG_TYPES.values() for body in bodies for key in body}
        | {"mediaInfo", "uri", "resourceId", "@odata.type", "action", "tones", "ms"}
    )
)
LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
JSON = st.recursive(
    LEAVES,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(KEYS | st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=12,
)


@pytest.fixture
def calls_for_fuzz(
    graphcomms_server: GraphcommsServer, webhook_receiver: WebhookReceiver
) -> dict[str, str]:
    """Return the ids of a ringing and an established call, replaced when ended."""
    return {}


def _call_in_state(
    server: GraphcommsServer,
    receiver: WebhookReceiver,
    calls: dict[str, str],
    state: str,
) -> str:
    """Return a call in ``state``, making a new one if a request ended the last."""
    known = calls.get(state)
    if known is not None:
        current = server.http.get(f"{CALLS}/{known}")
        if current.status_code == 200 and current.json()["state"] == state:
            return known
    if state == "incoming":
        calls[state] = server.place_call(receiver.url)
    else:
        calls[state] = create_call(server, receiver)
    return calls[state]


@settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(path=st.sampled_from(BODY_PATHS), ringing=st.booleans(), body=JSON)
def test_random_json_bodies_never_answer_500_or_422(
    graphcomms_server: GraphcommsServer,
    webhook_receiver: WebhookReceiver,
    calls_for_fuzz: dict[str, str],
    path: str,
    ringing: bool,
    body: Any,
) -> None:
    """Any JSON to any action: a Graph answer, an envelope on failure."""
    server = graphcomms_server
    state = "incoming" if ringing else "established"
    call_id = _call_in_state(server, webhook_receiver, calls_for_fuzz, state)
    response = server.http.post(path.format(call=call_id), json=body)
    assert response.status_code not in (422, 500), response.text
    if response.status_code >= 400:
        assert_graph_error(response, response.status_code)


# URIs httpx cannot decode --------------------------------------------------------

INVALID_IDNA = "http://xn--/a.wav"
"""An absolute URI whose host httpx cannot decode (an empty punycode label)."""


@pytest.mark.parametrize("where", ["playPrompt", "recordResponse", "create", "answer"])
def test_prompt_uri_with_undecodable_host_is_never_a_500(
    graphcomms_server: GraphcommsServer,
    webhook_receiver: WebhookReceiver,
    where: str,
) -> None:
    """The URI is refused (400) or its play fails 8536; never a 500."""
    server, receiver = graphcomms_server, webhook_receiver
    prefetch = {**SERVICE_HOSTED, "preFetchMedia": [{"uri": INVALID_IDNA}]}
    prompts = [PROMPT | {"mediaInfo": {"uri": INVALID_IDNA}}]
    if where == "create":
        response = server.http.post(
            CALLS, json=call_body(receiver.url, mediaConfig=prefetch)
        )
    elif where == "answer":
        incoming = server.place_call(receiver.url)
        body = {**(VALID["answer"] or {}), "mediaConfig": prefetch}
        response = server.http.post(f"{CALLS}/{incoming}/answer", json=body)
    else:
        call_id = create_call(server, receiver)
        response = server.http.post(
            f"{CALLS}/{call_id}/{where}", json={"prompts": prompts}
        )
    assert response.status_code != 500, response.text
    if response.status_code == 400:
        assert_graph_error(response, 400, "8523")
    elif where in ("playPrompt", "recordResponse"):
        server.advance(100)
        ended = receiver.operation_ended(response.json()["id"])
        assert ended["status"] == "failed"
        assert ended["resultInfo"]["subcode"] == 8536
