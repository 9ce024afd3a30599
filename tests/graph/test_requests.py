"""Request bodies: Graph's limits and types hold, and bodies become engine values."""

from __future__ import annotations

import json
from typing import Any, TypeVar

import pytest
from pydantic import BaseModel

from graphcomms.engine.call import MediaMode
from graphcomms.engine.operation import ApiVersion, PromptSource, RecordSettings
from graphcomms.errors import InvalidRequest
from graphcomms.graph.requests import (
    AnswerRequest,
    BetaPlayPromptRequest,
    CancelMediaProcessingRequest,
    ClientContextRequest,
    CreateCallRequest,
    LegacyRecordRequest,
    PlayPromptRequest,
    RecordResponseRequest,
    RedirectRequest,
    RejectRequest,
    SendDtmfTonesRequest,
    UpdateRecordingStatusRequest,
    decode_json_object,
    describe_errors,
    parse_body,
)

BEEP = "https://prompts.example.test/beep.wav"


def prompt(uri: str = BEEP, **extra: Any) -> dict[str, Any]:
    """Return a mediaPrompt as the SDK sends it."""
    return {
        "@odata.type": "#microsoft.graph.mediaPrompt",
        "mediaInfo": {"uri": uri},
        **extra,
    }


M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], body: dict[str, Any]) -> M:
    """Parse ``body`` as raw JSON bytes, the way the API does."""
    return parse_body(model, json.dumps(body).encode())


def rejection(model: type[BaseModel], body: dict[str, Any]) -> str:
    """Return the message of the InvalidRequest that ``body`` raises."""
    with pytest.raises(InvalidRequest) as caught:
        parse(model, body)
    return str(caught.value)


# -- JSON itself ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"{", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object, not list"),
        (b"null", "must be a JSON object, not null"),
        (b'"text"', "must be a JSON object, not str"),
        (b'{"a": "\xff"}', "not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
)
def test_decode_json_object_bad_bodies_are_invalid_requests(
    raw: bytes, expected: str
) -> None:
    with pytest.raises(InvalidRequest, match=expected):
        decode_json_object(raw)


def test_decode_json_object_empty_body_is_an_empty_object() -> None:
    assert decode_json_object(b"") == {}
    assert decode_json_object(b"  \r\n") == {}


def test_describe_errors_names_field_and_problem_and_counts_the_rest() -> None:
    errors = [
        {"loc": ("prompts", 0, "mediaInfo", "uri"), "type": "missing", "msg": "x"},
    ] * 7
    text = describe_errors(errors)
    assert text.startswith("prompts[0].mediaInfo.uri: is required; ")
    assert text.endswith("and 2 more.")


# -- playPrompt -----------------------------------------------------------------


def test_play_prompt_sdk_body_becomes_prompt_sources() -> None:
    body = parse(
        PlayPromptRequest,
        {
            "clientContext": "ctx-1",
            "prompts": [
                {
                    "@odata.type": "#microsoft.graph.mediaPrompt",
                    "mediaInfo": {"resourceId": "r1", "uri": BEEP},
                }
            ],
        },
    )
    assert body.client_context == "ctx-1"
    assert body.prompt_sources() == (PromptSource(BEEP, "r1", 1),)
    assert body.loop_forever is False


def test_play_prompt_twenty_prompts_pass_twenty_one_fail() -> None:
    assert len(parse(PlayPromptRequest, {"prompts": [prompt()] * 20}).prompts) == 20
    message = rejection(PlayPromptRequest, {"prompts": [prompt()] * 21})
    assert message == "prompts: at most 20 items (got 21)."


def test_play_prompt_needs_at_least_one_prompt() -> None:
    assert "prompts: at least 1 item" in rejection(PlayPromptRequest, {"prompts": []})
    assert "prompts: is required" in rejection(PlayPromptRequest, {})


def test_client_context_256_chars_pass_257_fail() -> None:
    ok = parse(PlayPromptRequest, {"prompts": [prompt()], "clientContext": "c" * 256})
    assert ok.client_context == "c" * 256
    message = rejection(
        PlayPromptRequest, {"prompts": [prompt()], "clientContext": "c" * 257}
    )
    assert message == "clientContext: at most 256 characters."


def test_client_context_must_be_a_string() -> None:
    message = rejection(ClientContextRequest, {"clientContext": 5})
    assert message == "clientContext: must be a string."


def test_mis_cased_resource_id_is_ignored_bl07() -> None:
    body = parse(
        BetaPlayPromptRequest,
        {"prompts": [{"mediaInfo": {"uri": BEEP, "resourceid": "g"}, "loop": 5}]},
    )
    assert body.prompt_sources() == (PromptSource(BEEP, None, 5),)


def test_snake_case_names_are_unknown_properties() -> None:
    body = parse(ClientContextRequest, {"client_context": "x"})
    assert body.client_context is None


def test_v1_ignores_per_prompt_loop_bl10() -> None:
    body = parse(PlayPromptRequest, {"prompts": [prompt(loop=100)], "loop": "yes"})
    assert body.prompt_sources() == (PromptSource(BEEP, None, 1),)
    assert body.loop_forever is False


def test_beta_honours_request_loop_and_legacy_prompt_loop() -> None:
    body = parse(BetaPlayPromptRequest, {"prompts": [prompt(loop=0)], "loop": True})
    assert body.loop_forever is True
    assert body.prompt_sources()[0].loop == 0


def test_beta_loop_must_be_boolean_and_prompt_loop_non_negative() -> None:
    assert rejection(BetaPlayPromptRequest, {"prompts": [prompt()], "loop": 1}) == (
        "loop: must be true or false."
    )
    assert "prompts[0].loop: must be at least 0" in rejection(
        BetaPlayPromptRequest, {"prompts": [prompt(loop=-1)]}
    )


def test_prompt_odata_type_is_optional_but_checked() -> None:
    plain = {"mediaInfo": {"uri": BEEP}}
    assert parse(PlayPromptRequest, {"prompts": [plain]}).prompts[0].odata_type is None
    wrong = {"@odata.type": "#microsoft.graph.prompt", **plain}
    message = rejection(PlayPromptRequest, {"prompts": [wrong]})
    assert message.startswith("prompts[0].@odata.type: must be ")
    assert "#microsoft.graph.mediaPrompt" in message


@pytest.mark.parametrize("uri", ["beep.wav", "/prompts/beep.wav", "https://", ""])
def test_media_uri_must_be_absolute(uri: str) -> None:
    message = rejection(PlayPromptRequest, {"prompts": [prompt(uri)]})
    assert message.startswith("prompts[0].mediaInfo.uri: must be an absolute URI")


def test_media_uri_is_required() -> None:
    message = rejection(PlayPromptRequest, {"prompts": [{"mediaInfo": {}}]})
    assert message == "prompts[0].mediaInfo.uri: is required."


def test_plain_http_and_other_schemes_pass_validation_bl05() -> None:
    # scheme policy is the prompt loader's: the POST only checks the shape
    body = parse(PlayPromptRequest, {"prompts": [prompt("http://h/x.wav")]})
    assert body.prompt_sources()[0].uri == "http://h/x.wav"


# -- recordResponse -------------------------------------------------------------


def test_record_response_defaults_are_graphs() -> None:
    settings = parse(RecordResponseRequest, {}).to_settings()
    assert settings == RecordSettings()


def test_record_response_sdk_body_becomes_settings() -> None:
    body = parse(
        RecordResponseRequest,
        {
            "bargeInAllowed": True,
            "clientContext": "ctx-1",
            "maxRecordDurationInSeconds": 10,
            "initialSilenceTimeoutInSeconds": 3,
            "maxSilenceTimeoutInSeconds": 2,
            "playBeep": False,
            "prompts": [prompt()],
            "stopTones": ["#", "tone1", "*", "pound", "b"],
        },
    )
    assert body.client_context == "ctx-1"
    assert body.to_settings() == RecordSettings(
        prompt=PromptSource(BEEP),
        barge_in_allowed=True,
        initial_silence_timeout_s=3,
        max_silence_timeout_s=2,
        max_record_duration_s=10,
        play_beep=False,
        stop_tones=("#", "1", "*", "B"),
    )


def test_record_response_explicit_nulls_mean_defaults() -> None:
    body = parse(
        RecordResponseRequest,
        {"bargeInAllowed": None, "playBeep": None, "prompts": None, "stopTones": None},
    )
    assert body.to_settings() == RecordSettings()


def test_record_response_allows_one_prompt_only() -> None:
    message = rejection(RecordResponseRequest, {"prompts": [prompt(), prompt()]})
    assert message == "prompts: at most 1 items (got 2)."


@pytest.mark.parametrize(
    "name",
    [
        "initialSilenceTimeoutInSeconds",
        "maxSilenceTimeoutInSeconds",
        "maxRecordDurationInSeconds",
    ],
)
def test_record_timeouts_are_1_to_120(name: str) -> None:
    assert parse(RecordResponseRequest, {name: 1}).to_settings()
    assert parse(RecordResponseRequest, {name: 120}).to_settings()
    assert rejection(RecordResponseRequest, {name: 0}) == f"{name}: must be at least 1."
    assert (
        rejection(RecordResponseRequest, {name: 121}) == f"{name}: must be at most 120."
    )


@pytest.mark.parametrize("value", ["5", 5.0, True])
def test_record_timeout_must_be_an_integer(value: object) -> None:
    message = rejection(RecordResponseRequest, {"maxRecordDurationInSeconds": value})
    assert message == "maxRecordDurationInSeconds: must be an integer."


def test_record_booleans_must_be_booleans() -> None:
    assert (
        rejection(RecordResponseRequest, {"playBeep": "true"})
        == "playBeep: must be true or false."
    )
    assert (
        rejection(RecordResponseRequest, {"bargeInAllowed": 1})
        == "bargeInAllowed: must be true or false."
    )


def test_stop_tones_reject_unknown_keys() -> None:
    message = rejection(RecordResponseRequest, {"stopTones": ["#", "x"]})
    assert message.startswith("stopTones[1]: must be a DTMF key")
    assert "stopTones[0]: must be a DTMF key" in rejection(
        RecordResponseRequest, {"stopTones": ["flash"]}
    )


def test_legacy_record_allows_five_minutes() -> None:
    body = parse(LegacyRecordRequest, {"maxRecordDurationInSeconds": 300})
    assert body.to_settings().max_record_duration_s == 300
    message = rejection(LegacyRecordRequest, {"maxRecordDurationInSeconds": 301})
    assert message == "maxRecordDurationInSeconds: must be at most 300."


def test_legacy_record_ignores_its_dropped_fields() -> None:
    body = parse(
        LegacyRecordRequest,
        {"streamWhileRecording": True, "recordingFormat": "wav", "clientContext": "c"},
    )
    assert body.client_context == "c"


# -- the other actions ----------------------------------------------------------


def test_send_dtmf_tones_sdk_body() -> None:
    body = parse(
        SendDtmfTonesRequest,
        {
            "clientContext": "ctx-1",
            "delayBetweenTonesMs": 100,
            "tones": ["tone1", "pound"],
        },
    )
    assert body.tones == ["tone1", "pound"]
    assert body.delay_ms == 100


def test_send_dtmf_tones_names_are_canonicalised_and_checked() -> None:
    assert parse(
        SendDtmfTonesRequest, {"tones": ["Tone1", "STAR", "A", "flash"]}
    ).tones == [
        "tone1",
        "star",
        "a",
        "flash",
    ]
    message = rejection(SendDtmfTonesRequest, {"tones": ["tone1", "1"]})
    assert message.startswith("tones[1]: must be one of: tone0, tone1")
    assert (
        rejection(SendDtmfTonesRequest, {"tones": []}) == "tones: at least 1 item(s)."
    )


def test_send_dtmf_tones_delay_is_0_to_10000_with_a_default() -> None:
    assert parse(SendDtmfTonesRequest, {"tones": ["a"]}).delay_ms == 100
    assert (
        parse(SendDtmfTonesRequest, {"tones": ["a"], "delayBetweenTonesMs": 0}).delay_ms
        == 0
    )
    message = rejection(
        SendDtmfTonesRequest, {"tones": ["a"], "delayBetweenTonesMs": 10_001}
    )
    assert message == "delayBetweenTonesMs: must be at most 10000."


def test_cancel_media_processing_all_defaults_to_true() -> None:
    assert parse(CancelMediaProcessingRequest, {}).cancel_all is True
    assert parse(CancelMediaProcessingRequest, {"all": False}).cancel_all is False
    assert parse(CancelMediaProcessingRequest, {"all": None}).cancel_all is True
    assert (
        rejection(CancelMediaProcessingRequest, {"all": "false"})
        == "all: must be true or false."
    )


def test_update_recording_status_values() -> None:
    body = parse(UpdateRecordingStatusRequest, {"status": "Recording"})
    assert body.status == "recording"
    assert rejection(UpdateRecordingStatusRequest, {}) == "status: is required."
    assert rejection(UpdateRecordingStatusRequest, {"status": "paused"}).startswith(
        "status: must be one of: notRecording, recording, failed"
    )


# -- call lifecycle -------------------------------------------------------------

SERVICE_HOSTED = {"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"}
TARGET = {"identity": {"user": {"id": "u1"}}}


def test_create_call_s0_body_becomes_new_call() -> None:
    body = parse(
        CreateCallRequest,
        {
            "callbackUri": "https://bot.example.test/api/calls",
            "targets": [TARGET],
            "requestedModalities": ["audio"],
            "mediaConfig": {
                **SERVICE_HOSTED,
                "preFetchMedia": [{"uri": BEEP, "resourceId": "r1"}],
            },
            "tenantId": "t1",
        },
    )
    spec = body.to_new_call(ApiVersion.BETA)
    assert spec.callback_uri == "https://bot.example.test/api/calls"
    assert spec.api_version is ApiVersion.BETA
    assert spec.targets == [TARGET]
    assert spec.media_mode is MediaMode.SERVICE_HOSTED
    assert spec.prefetch == (PromptSource(BEEP, "r1"),)
    assert spec.tenant_id == "t1"


def test_create_call_app_hosted_media() -> None:
    body = parse(
        CreateCallRequest,
        {
            "callbackUri": "http://localhost:3978/api/calls",
            "targets": [TARGET],
            "mediaConfig": {
                "@odata.type": "#microsoft.graph.appHostedMediaConfig",
                "blob": "<opaque>",
            },
        },
    )
    spec = body.to_new_call(ApiVersion.V1)
    assert spec.media_mode is MediaMode.APP_HOSTED
    assert spec.prefetch == ()
    assert spec.requested_modalities == ["audio"]


def test_create_call_media_config_needs_a_known_odata_type() -> None:
    base = {"callbackUri": "https://b/c", "targets": [TARGET]}
    assert rejection(CreateCallRequest, {**base, "mediaConfig": {}}) == (
        "mediaConfig: needs an @odata.type."
    )
    message = rejection(
        CreateCallRequest, {**base, "mediaConfig": {"@odata.type": "#g.other"}}
    )
    assert message.startswith("mediaConfig: @odata.type '#g.other' is not one of")


def test_create_call_callback_must_be_http_and_targets_present() -> None:
    base = {"targets": [TARGET], "mediaConfig": SERVICE_HOSTED}
    assert rejection(CreateCallRequest, {**base, "callbackUri": "ftp://b/c"}) == (
        "callbackUri: must be an http or https URI."
    )
    message = rejection(
        CreateCallRequest, {"callbackUri": "https://b/c", "mediaConfig": SERVICE_HOSTED}
    )
    assert message == "targets: is required."
    message = rejection(
        CreateCallRequest, {**base, "callbackUri": "https://b/c", "targets": ["x"]}
    )
    assert message == "targets[0]: must be an object."


def test_answer_body_gives_media_mode_and_prefetch() -> None:
    body = parse(
        AnswerRequest,
        {
            "callbackUri": "https://bot.contoso.com/api/calls",
            "acceptedModalities": ["audio"],
            "mediaConfig": {
                **SERVICE_HOSTED,
                "preFetchMedia": [{"uri": BEEP, "resourceId": "1D6DE2D4"}],
            },
        },
    )
    assert body.media_mode is MediaMode.SERVICE_HOSTED
    assert body.prefetch == (PromptSource(BEEP, "1D6DE2D4"),)


def test_answer_needs_modalities_and_media_config() -> None:
    message = rejection(AnswerRequest, {})
    assert "acceptedModalities: is required" in message
    assert "mediaConfig: is required" in message
    assert rejection(
        AnswerRequest, {"acceptedModalities": ["smell"], "mediaConfig": SERVICE_HOSTED}
    ).startswith("acceptedModalities[0]: must be one of: unknown, audio")


def test_reject_reason_matches_in_any_case() -> None:
    assert parse(RejectRequest, {"reason": "Busy"}).reason == "busy"
    assert parse(RejectRequest, {}).reason is None
    assert rejection(RejectRequest, {"reason": "later"}).startswith("reason: must be")


def test_redirect_limits() -> None:
    assert parse(RedirectRequest, {"targets": [TARGET], "timeout": 15}).timeout == 15
    assert rejection(RedirectRequest, {"targets": [TARGET], "timeout": 91}) == (
        "timeout: must be at most 90."
    )
    assert rejection(RedirectRequest, {"targets": [TARGET] * 26}) == (
        "targets: at most 25 items (got 26)."
    )


@pytest.mark.parametrize(
    "raw",
    [
        b'{"clientContext": NaN}',
        b'{"a": Infinity}',
        b'{"a": -Infinity}',
        b'{"a": 1e999}',
    ],
)
def test_non_finite_numbers_are_invalid_json(raw: bytes) -> None:
    from graphcomms.graph.requests import decode_json_object

    with pytest.raises(InvalidRequest, match="not valid JSON"):
        decode_json_object(raw)
