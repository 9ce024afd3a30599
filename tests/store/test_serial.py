"""Engine objects survive the trip to JSON text and back, unchanged."""

from __future__ import annotations

import dataclasses
import enum
import json
from typing import Any

import pytest

from graphcomms.engine.call import Call, CallState, Direction, MediaMode
from graphcomms.engine.operation import (
    CANCELLED,
    ApiVersion,
    CompletionReason,
    Operation,
    OperationKind,
    OperationStatus,
    PromptSource,
    RecordSettings,
    ResultInfo,
)
from graphcomms.store.serial import (
    call_from_dict,
    call_from_json,
    call_to_dict,
    call_to_json,
    dump_json,
    from_dict,
    operation_from_dict,
    operation_from_json,
    operation_to_dict,
    operation_to_json,
    to_dict,
)
from graphcomms.types import CallId, OperationId


def full_call() -> Call:
    return Call(
        id=CallId("c-1"),
        direction=Direction.INCOMING,
        api_version=ApiVersion.BETA,
        callback_uri="http://localhost:9000/callback",
        state=CallState.TERMINATED,
        media_mode=MediaMode.APP_HOSTED,
        source={"identity": {"application": {"id": "app", "displayName": "Bot"}}},
        targets=[{"identity": {"user": {"id": "u-1"}}}, {"n": [1, 2.5, None]}],
        requested_modalities=["audio", "video"],
        subject="Support line ☎",
        tenant_id="tenant-1",
        my_participant_id="p-1",
        call_chain_id="chain-1",
        prefetch=(PromptSource("https://x/a.wav", "res-a", 3), PromptSource("b.wav")),
        result_info=ResultInfo(
            200, 4097, "The call was ended by the other participant."
        ),
        tone_subscribed=True,
        tone_sequence=7,
        last_tone="#",
        muted=True,
        recording_status="recording",
        created_ms=1_000,
        ended_ms=61_000,
        history=[(0, "created"), (1_000, "established"), (61_000, "terminated")],
    )


def full_operation() -> Operation:
    prompt = PromptSource("https://x/beep.wav", None, 0)
    return Operation(
        id=OperationId("op-1"),
        call_id=CallId("c-1"),
        kind=OperationKind.RECORD,
        api_version=ApiVersion.BETA,
        client_context="ctx-ü",
        status=OperationStatus.FAILED,
        result_info=CANCELLED,
        completion_reason=CompletionReason.OPERATION_CANCELED,
        created_ms=10,
        started_ms=20,
        finished_ms=30,
        prompts=(prompt, PromptSource("https://x/menu.wav", "menu", 2)),
        loop_forever=True,
        record=RecordSettings(
            prompt=prompt,
            barge_in_allowed=True,
            initial_silence_timeout_s=1,
            max_silence_timeout_s=2,
            max_record_duration_s=3,
            play_beep=False,
            stop_tones=("#", "*"),
        ),
        tones=("1", "2", "A"),
        delay_between_tones_ms=150,
        cancel_all=False,
        recording_status="notRecording",
        legacy_record=True,
        recording_location="http://localhost/recordings/op-1",
        recording_access_token="secret",
        recording_ms=2_500,
        history=[(10, "queued"), (20, "running"), (30, "cancelled")],
    )


def assert_same(left: Any, right: Any, where: str = "") -> None:
    """Assert equality *and* identical types all the way down.

    ``==`` alone would pass a list for a tuple's place, or a str for a
    StrEnum member.
    """
    assert type(left) is type(right), f"{where}: {type(left)} vs {type(right)}"
    if dataclasses.is_dataclass(left):
        for f in dataclasses.fields(left):
            assert_same(
                getattr(left, f.name), getattr(right, f.name), f"{where}.{f.name}"
            )
    elif isinstance(left, list | tuple):
        assert len(left) == len(right), where
        for i, (a, b) in enumerate(zip(left, right, strict=True)):
            assert_same(a, b, f"{where}[{i}]")
    elif isinstance(left, dict):
        assert left.keys() == right.keys(), where
        for key in left:
            assert_same(left[key], right[key], f"{where}[{key!r}]")
    else:
        assert left == right, where


def assert_no_field_at_default(obj: Any) -> None:
    """Assert every field differs from its default, so a round trip covers it."""
    for f in dataclasses.fields(obj):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            continue
        assert getattr(obj, f.name) != default, f"{type(obj).__name__}.{f.name}"


def test_fixtures_populate_every_field() -> None:
    """A field added to the engine fails here until the fixtures cover it."""
    assert_no_field_at_default(full_call())
    operation = full_operation()
    assert_no_field_at_default(operation)
    assert operation.record is not None
    assert_no_field_at_default(operation.record)


def test_call_round_trips_through_json_text_exactly() -> None:
    call = full_call()

    restored = call_from_dict(json.loads(dump_json(call_to_dict(call))))

    assert restored == call
    assert_same(restored, call)


def test_operation_round_trips_through_json_text_exactly() -> None:
    op = full_operation()

    restored = operation_from_dict(json.loads(dump_json(operation_to_dict(op))))

    assert restored == op
    assert_same(restored, op)


def test_json_helpers_round_trip_defaults() -> None:
    call = Call(CallId("c"), Direction.OUTGOING, ApiVersion.V1, "https://bot/cb")
    op = Operation(
        OperationId("o"), CallId("c"), OperationKind.PLAY_PROMPT, ApiVersion.V1
    )

    assert_same(call_from_json(call_to_json(call)), call)
    assert_same(operation_from_json(operation_to_json(op)), op)


def test_to_dict_writes_wire_values_of_enums() -> None:
    data = operation_to_dict(full_operation())

    assert type(data["kind"]) is str
    assert data["kind"] == "record"
    assert data["completion_reason"] == "operationCanceled"
    assert data["result_info"] == {
        "code": 400,
        "subcode": 8508,
        "message": CANCELLED.message,
    }
    assert data["record"]["stop_tones"] == ["#", "*"]


def test_dump_json_is_compact_and_keeps_non_ascii() -> None:
    assert dump_json({"a": [1, "é☎"]}) == '{"a":[1,"é☎"]}'


def test_dump_json_refuses_nan() -> None:
    with pytest.raises(ValueError):
        dump_json({"x": float("nan")})


def test_from_dict_fills_missing_fields_with_defaults_and_ignores_unknown_ones() -> (
    None
):
    """Rows written before a field existed, or after one was removed, still load."""
    data = call_to_dict(full_call())
    del data["muted"]
    del data["history"]
    data["field_from_the_future"] = 1

    restored = call_from_dict(data)

    assert restored.muted is False
    assert restored.history == []
    assert restored.subject == "Support line ☎"


def test_to_dict_refuses_values_it_cannot_round_trip() -> None:
    call = full_call()
    call.targets = [{"when": {1, 2}}]

    with pytest.raises(TypeError, match="set"):
        call_to_dict(call)


def test_to_dict_refuses_a_non_dataclass() -> None:
    with pytest.raises(TypeError):
        to_dict({"id": "c"})


class _Colour(enum.Enum):
    RED = 1


@dataclasses.dataclass(frozen=True, slots=True)
class _Mixed:
    pair: tuple[int, str]
    colours: dict[str, _Colour]
    either: int | str


def test_from_dict_refuses_a_union_it_cannot_tell_apart() -> None:
    data = to_dict(_Mixed((1, "a"), {"x": _Colour.RED}, 3))

    with pytest.raises(TypeError, match="union"):
        from_dict(_Mixed, data)
