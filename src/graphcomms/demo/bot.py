"""The demo's IVR bot: a webhook app that drives its calls over Graph's HTTP API.

It speaks plain JSON with httpx, in Graph's shapes, so the demo needs no
SDK (``examples/ivr_bot`` is the same flow written with msgraph-sdk). Each
webhook is handled completely, Graph requests included, before the bot
answers 202: once the service's outbox is drained, the bot has reacted.

The flow, per call::

    created (incoming)        → answer, prefetching every prompt
    updated (established)     → subscribeToTone; play welcome, menu, menu again
    toneInfo tone2 (in menu)  → cancelMediaProcessing; play billing; recordResponse
    record deleted            → download the recording; play goodbye
    goodbye deleted           → hang up (DELETE)
    call deleted              → done
"""

from __future__ import annotations

import asyncio
import io
import ssl
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from graphcomms.demo.timeline import Timeline

JsonObject = dict[str, Any]

CALLBACK_PATH = "/callback"
PROMPTS = ("welcome", "menu", "billing", "sales", "goodbye")
RECORD_MAX_S = 20
GRAPH = "#microsoft.graph."


class GraphRequestFailed(Exception):
    """A Graph request the bot made was answered with an error."""


@dataclass(slots=True)
class Session:
    """What the bot knows about one call."""

    call_id: str
    stage: str = "answering"
    menu_started: bool = False
    cancelled: list[str] = field(default_factory=list)
    """clientContexts of the operations a cancel stopped."""
    recording: Path | None = None
    recording_s: float | None = None
    ended: str | None = None
    """The call's final resultInfo as ``code/subcode``, once terminated."""


class DemoBot:
    """An IVR bot: webhook in, Graph requests out, each shown on the timeline.

    Args:
        graph_url: Graph's base URL with the version, e.g. ``.../v1.0``.
        prompts_url: Where the prompt WAVs are, e.g. ``.../_sim/sounds``.
        callback_url: This bot's webhook, as Graph should call it.
        out_dir: Where downloaded recordings are saved.
        timeline: Where requests and notifications are shown.
        tls: The TLS context for https URLs (creating one takes ~0.1 s).
    """

    def __init__(
        self,
        *,
        graph_url: str,
        prompts_url: str,
        callback_url: str,
        out_dir: Path,
        timeline: Timeline,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._graph_url = graph_url.rstrip("/")
        self._prompts_url = prompts_url.rstrip("/")
        self.callback_url = callback_url
        self._out_dir = out_dir
        self._timeline = timeline
        self._client = httpx.AsyncClient(
            timeout=10.0, trust_env=False, verify=tls or ssl.create_default_context()
        )
        self.app = Starlette(
            routes=[Route(CALLBACK_PATH, self._callback, methods=["POST"])]
        )
        self.sessions: dict[str, Session] = {}
        self.finished = asyncio.Event()
        self.failure: str | None = None

    def __repr__(self) -> str:
        return f"<DemoBot calls={len(self.sessions)} stage={self.stage!r}>"

    @property
    def stage(self) -> str:
        """Return where the latest call is in the flow."""
        if not self.sessions:
            return "waiting for the incoming call"
        return list(self.sessions.values())[-1].stage

    async def aclose(self) -> None:
        """Close the bot's HTTP client."""
        await self._client.aclose()

    # the webhook

    async def _callback(self, request: Request) -> Response:
        payload = await request.json()
        try:
            for item in payload.get("value", []):
                await self._handle(item)
        except (GraphRequestFailed, httpx.HTTPError, KeyError, ValueError) as exc:
            self.failure = f"the bot failed while {self.stage}: {exc}"
            self._timeline.add("bot", "note", "gave up", outcome=str(exc))
            self.finished.set()
        return Response(status_code=202)

    async def _handle(self, item: JsonObject) -> None:
        url: str = item["resourceUrl"]
        change: str = item["changeType"]
        data: JsonObject = item.get("resourceData") or {}
        call_id = url.split("/")[3]
        if "/operations/" in url:
            self._show_operation(change, data)
            await self._on_operation(call_id, data)
        elif url.endswith("/participants"):
            self._timeline.add("graph → bot", "notification", f"{change:8} roster")
        else:
            self._show_call(change, data)
            await self._on_call(call_id, change, data)

    # the flow

    async def _on_call(self, call_id: str, change: str, data: JsonObject) -> None:
        state = data.get("state")
        if change == "created" and state == "incoming":
            self.sessions[call_id] = Session(call_id)
            await self._answer(call_id)
            return
        session = self.sessions.get(call_id)
        if session is None:
            return
        tone = (data.get("toneInfo") or {}).get("tone")
        if change == "deleted":
            session.stage = "done"
            session.ended = _result(data.get("resultInfo"))
            self.finished.set()
        elif tone is not None:
            await self._on_tone(session, tone)
        elif state == "established" and not session.menu_started:
            await self._start_menu(session)

    async def _answer(self, call_id: str) -> None:
        prefetch = [self._media_info(name) for name in PROMPTS]
        body = {
            "callbackUri": self.callback_url,
            "acceptedModalities": ["audio"],
            "mediaConfig": {
                "@odata.type": GRAPH + "serviceHostedMediaConfig",
                "preFetchMedia": prefetch,
            },
        }
        await self._action(call_id, "answer", body)
        self.sessions[call_id].stage = "waiting for the call to be established"

    async def _start_menu(self, session: Session) -> None:
        session.menu_started = True
        session.stage = "playing the menu, waiting for key 2"
        await self._action(
            session.call_id, "subscribeToTone", {"clientContext": "keys"}
        )
        await self._play(session, "welcome")
        await self._play(session, "menu")
        await self._play(session, "menu", label="menu-repeat")

    async def _on_tone(self, session: Session, tone: str) -> None:
        if not session.stage.startswith("playing the menu"):
            return
        if tone == "tone2":
            session.stage = "playing the billing prompt and recording"
            await self._cancel(session)
            await self._play(session, "billing")
            await self._record(session)
        elif tone == "tone1":
            session.stage = "playing the sales prompt"
            await self._cancel(session)
            await self._play(session, "sales")

    async def _on_operation(self, call_id: str, op: JsonObject) -> None:
        session = self.sessions.get(call_id)
        label = op.get("clientContext")
        if session is None:
            return
        if label == "reply" and session.stage.startswith("playing the billing"):
            if op.get("status") == "completed" and op.get("recordingLocation"):
                session.stage = "downloading the recording"
                await self._download(session, op)
            session.stage = "saying goodbye"
            await self._play(session, "goodbye")
        elif label == "sales" and op.get("status") == "completed":
            session.stage = "saying goodbye"
            await self._play(session, "goodbye")
        elif label == "goodbye" and op.get("status") == "completed":
            session.stage = "hanging up"
            await self._hang_up(session)
        elif (
            op.get("status") == "failed"
            and op.get("resultInfo", {}).get("subcode") == 8508
        ):
            session.cancelled.append(str(label))

    # Graph requests

    async def _play(self, session: Session, prompt: str, *, label: str = "") -> None:
        body = {
            "clientContext": label or prompt,
            "prompts": [
                {
                    "@odata.type": GRAPH + "mediaPrompt",
                    "mediaInfo": self._media_info(prompt),
                }
            ],
        }
        await self._action(session.call_id, "playPrompt", body, label=label or prompt)

    async def _record(self, session: Session) -> None:
        body = {
            "clientContext": "reply",
            "playBeep": True,
            "stopTones": ["#"],
            "maxRecordDurationInSeconds": RECORD_MAX_S,
        }
        await self._action(session.call_id, "recordResponse", body, label="reply")

    async def _cancel(self, session: Session) -> None:
        body = {"clientContext": "cancel-menu"}
        await self._action(session.call_id, "cancelMediaProcessing", body)

    async def _download(self, session: Session, op: JsonObject) -> None:
        response = await self._client.get(
            op["recordingLocation"],
            headers={"Authorization": f"Bearer {op['recordingAccessToken']}"},
        )
        size_kb = len(response.content) / 1024
        self._timeline.add(
            "bot → graph",
            "request",
            "GET recording (Bearer token)",
            outcome=f"{response.status_code}  {size_kb:.0f} KiB",
            name="recording",
            http_status=response.status_code,
        )
        _raise_for_status(response, "GET recording")
        path = self._out_dir / "recording.wav"
        path.write_bytes(response.content)
        session.recording = path
        session.recording_s = wav_seconds(response.content)
        self._timeline.add(
            "bot",
            "file",
            "saved the recording",
            outcome=f"{session.recording_s:.2f} s  {path}",
            name="recording",
            path=path,
        )

    async def _hang_up(self, session: Session) -> None:
        url = f"{self._graph_url}/communications/calls/{session.call_id}"
        response = await self._client.delete(url)
        self._timeline.add(
            "bot → graph",
            "request",
            "DELETE call (hang up)",
            outcome=str(response.status_code),
            name="hangUp",
            http_status=response.status_code,
        )
        _raise_for_status(response, "DELETE call")

    async def _action(
        self, call_id: str, action: str, body: JsonObject, *, label: str | None = None
    ) -> JsonObject:
        url = f"{self._graph_url}/communications/calls/{call_id}/{action}"
        response = await self._client.post(url, json=body)
        op: JsonObject = response.json() if response.content else {}
        status = op.get("status")
        outcome = f"{response.status_code}  {status or ''}"
        if "all" in op:
            outcome += f" (all: {str(op['all']).lower()})"
        self._timeline.add(
            "bot → graph",
            "request",
            f"POST {action} {label or ''}".rstrip(),
            outcome=outcome.rstrip(),
            name=action,
            label=label or op.get("clientContext"),
            http_status=response.status_code,
            status=status,
        )
        _raise_for_status(response, action)
        return op

    def _media_info(self, prompt: str) -> JsonObject:
        return {
            "@odata.type": GRAPH + "mediaInfo",
            "uri": f"{self._prompts_url}/{prompt}.wav",
            "resourceId": f"graphcomms-demo-{prompt}",
        }

    # the timeline

    def _show_call(self, change: str, data: JsonObject) -> None:
        state = data.get("state")
        tone_info = data.get("toneInfo") or {}
        tone = tone_info.get("tone")
        result = _result(data.get("resultInfo"))
        if tone is not None:
            outcome = f"toneInfo {tone} (sequence {tone_info.get('sequenceId')})"
        elif change == "created":
            outcome = f"{state} from {_caller_name(data.get('source'))}"
        elif result is not None:
            message = (data.get("resultInfo") or {}).get("message", "")
            outcome = f"{state} {result} {message}"
        else:
            audio = (data.get("mediaState") or {}).get("audio")
            outcome = f"{state}, audio {audio}" if audio else str(state)
        self._timeline.add(
            "graph → bot",
            "notification",
            f"{change:8} call",
            outcome=outcome,
            name="call",
            change_type=change,
            status=state,
            result=result,
            tone=tone,
        )

    def _show_operation(self, change: str, op: JsonObject) -> None:
        kind = _operation_kind(op.get("@odata.type", ""))
        label = op.get("clientContext")
        result = _result(op.get("resultInfo"))
        reason = op.get("completionReason")
        outcome = " ".join(
            str(part) for part in (op.get("status"), result, reason) if part
        )
        self._timeline.add(
            "graph → bot",
            "notification",
            f"{change:8} {kind} {label or ''}".rstrip(),
            outcome=outcome,
            name=kind,
            label=label,
            change_type=change,
            status=op.get("status"),
            result=result,
            completion_reason=reason,
        )


def _operation_kind(odata_type: str) -> str:
    """Return ``playPrompt`` for ``#microsoft.graph.playPromptOperation``."""
    return odata_type.removeprefix(GRAPH).removesuffix("Operation")


def _caller_name(source: JsonObject | None) -> str:
    """Return who is calling, from a participantInfo's identity set."""
    identity = (source or {}).get("identity") or {}
    for kind in ("phone", "user", "application", "guest"):
        party = identity.get(kind)
        if isinstance(party, dict):
            return str(party.get("displayName") or party.get("id") or kind)
    return "an unknown caller"


def _result(info: JsonObject | None) -> str | None:
    if not info:
        return None
    return f"{info.get('code')}/{info.get('subcode')}"


def _raise_for_status(response: httpx.Response, what: str) -> None:
    if response.is_success:
        return
    try:
        error = response.json().get("error", {})
        detail = f"{error.get('code')}: {error.get('message')}"
    except ValueError:
        detail = response.text[:200]
    raise GraphRequestFailed(f"{what} answered {response.status_code} ({detail})")


def wav_seconds(data: bytes) -> float:
    """Return the duration of a WAV file's audio, in seconds."""
    with wave.open(io.BytesIO(data)) as wav:
        frames: int = wav.getnframes()
        rate: int = wav.getframerate()
    return frames / rate
