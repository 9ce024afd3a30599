"""An IVR bot for the Microsoft Graph calling API, written with the official SDK.

It answers incoming calls and runs a small menu on service-hosted media:

    incoming call             → answer (prefetching the prompts)
    call established          → subscribeToTone; play welcome, menu, menu again
    caller presses 2          → cancelMediaProcessing; play billing; recordResponse
    caller presses 1          → cancelMediaProcessing; play sales
    recording finished        → download it (Bearer token); play goodbye
    sales prompt finished     → play goodbye
    goodbye finished          → hang up

Graph requests go through ``msgraph-sdk`` (``GraphServiceClient``);
notifications arrive on ``POST /callback`` as ``commsNotifications``, which
the SDK has no model for, so ``parse_notifications`` reads the envelope and
lets the SDK parse each ``resourceData`` into its typed ``Call`` or
operation. Each notification is acted on before the webhook answers 202;
Graph delivers one call's notifications in order, so the flow of a call
never races with itself.

Run it against a local graphcomms (see README.md)::

    python examples/ivr_bot/bot.py --graph-url http://127.0.0.1:8000/v1.0
"""

from __future__ import annotations

import argparse
import enum
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import uvicorn
from kiota_abstractions.api_error import APIError
from kiota_abstractions.authentication import AnonymousAuthenticationProvider
from kiota_abstractions.serialization import Parsable, ParsableFactory
from kiota_serialization_json.json_parse_node_factory import JsonParseNodeFactory
from msgraph.generated.communications.calls.item.answer.answer_post_request_body import (  # noqa: E501
    AnswerPostRequestBody,
)
from msgraph.generated.communications.calls.item.call_item_request_builder import (
    CallItemRequestBuilder,
)
from msgraph.generated.communications.calls.item.cancel_media_processing.cancel_media_processing_post_request_body import (  # noqa: E501
    CancelMediaProcessingPostRequestBody,
)
from msgraph.generated.communications.calls.item.play_prompt.play_prompt_post_request_body import (  # noqa: E501
    PlayPromptPostRequestBody,
)
from msgraph.generated.communications.calls.item.record_response.record_response_post_request_body import (  # noqa: E501
    RecordResponsePostRequestBody,
)
from msgraph.generated.communications.calls.item.subscribe_to_tone.subscribe_to_tone_post_request_body import (  # noqa: E501
    SubscribeToTonePostRequestBody,
)
from msgraph.generated.models.call import Call
from msgraph.generated.models.call_state import CallState
from msgraph.generated.models.comms_operation import CommsOperation
from msgraph.generated.models.media_info import MediaInfo
from msgraph.generated.models.media_prompt import MediaPrompt
from msgraph.generated.models.modality import Modality
from msgraph.generated.models.operation_status import OperationStatus
from msgraph.generated.models.record_operation import RecordOperation
from msgraph.generated.models.service_hosted_media_config import (
    ServiceHostedMediaConfig,
)
from msgraph.generated.models.tone import Tone
from msgraph.graph_request_adapter import GraphRequestAdapter
from msgraph.graph_service_client import GraphServiceClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

logger = logging.getLogger("ivr_bot")

M = TypeVar("M", bound=Parsable)

CALLBACK_PATH = "/callback"
PROMPTS = ("welcome", "menu", "billing", "sales", "goodbye")
RECORD_MAX_S = 20
GRAPH_SCOPES = ["https://graph.microsoft.com/.default"]
WARM_UP_NOTIFICATIONS = json.dumps(
    {
        "value": [
            {
                "changeType": "updated",
                "resourceUrl": "/communications/calls/warm-up",
                "resourceData": {"@odata.type": "#microsoft.graph.call"},
            },
            {
                "changeType": "deleted",
                "resourceUrl": "/communications/calls/warm-up/operations/x",
                "resourceData": {"@odata.type": "#microsoft.graph.recordOperation"},
            },
        ]
    }
).encode()


class Stage(enum.Enum):
    """Where a call is in the IVR flow."""

    ANSWERING = "answering"
    MENU = "menu: waiting for 1 or 2"
    SALES = "playing the sales prompt"
    BILLING = "playing the billing prompt, then recording"
    GOODBYE = "saying goodbye"
    HANGING_UP = "hanging up"
    ENDED = "ended"


@dataclass(slots=True)
class CallFlow:
    """One call's progress through the menu."""

    call_id: str
    stage: Stage = Stage.ANSWERING
    recording: Path | None = None
    """Where the caller's recorded reply was saved, once downloaded."""


@dataclass(frozen=True, slots=True)
class CommsNotification:
    """One change Graph reports: ``created``, ``updated`` or ``deleted``.

    ``resource`` is the SDK model of ``resourceData``: a ``Call`` for the
    call itself, a typed ``CommsOperation`` (``PlayPromptOperation``,
    ``RecordOperation``...) for an operation, None for anything else
    (a participants roster).
    """

    change_type: str
    resource_url: str
    resource: Call | CommsOperation | None

    @property
    def call_id(self) -> str:
        """Return the call's id, from ``/communications/calls/{id}/...``."""
        return self.resource_url.split("/")[3]


def parse_notifications(body: bytes) -> list[CommsNotification]:
    """Return the notifications in a ``commsNotifications`` webhook body."""
    envelope = json.loads(body)
    return [_parse_one(item) for item in envelope.get("value", [])]


def _parse_one(item: dict[str, Any]) -> CommsNotification:
    url: str = item.get("resourceUrl") or item.get("resource") or ""
    data = item.get("resourceData")
    resource: Call | CommsOperation | None = None
    if isinstance(data, dict):
        if "/operations/" in url:
            resource = _parse_model(data, CommsOperation)
        elif not url.endswith("/participants"):
            resource = _parse_model(data, Call)
    return CommsNotification(item.get("changeType", ""), url, resource)


def _parse_model(data: dict[str, Any], model: ParsableFactory[M]) -> M:
    """Return ``data`` as the SDK model ``model`` (or its ``@odata.type``)."""
    node = JsonParseNodeFactory().get_root_parse_node(
        "application/json", json.dumps(data).encode()
    )
    return node.get_object_value(model)


class IvrBot:
    """The webhook app and the menu flow of every call it answers.

    Args:
        graph: The SDK client, pointed at graphcomms or at Microsoft Graph.
        callback_url: This bot's webhook as Graph reaches it.
        prompts_url: Where ``welcome.wav``, ``menu.wav``... are served.
        recordings_dir: Where the callers' recorded replies are saved.
        http: The client used to download recordings.
    """

    def __init__(
        self,
        graph: GraphServiceClient,
        *,
        callback_url: str,
        prompts_url: str,
        recordings_dir: Path,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.graph = graph
        self.callback_url = callback_url
        self.prompts_url = prompts_url.rstrip("/")
        self.recordings_dir = recordings_dir
        self.http = http or httpx.AsyncClient(timeout=30.0)
        self.calls: dict[str, CallFlow] = {}
        self.app = Starlette(
            routes=[Route(CALLBACK_PATH, self.callback, methods=["POST"])]
        )

    def __repr__(self) -> str:
        return f"<IvrBot calls={len(self.calls)}>"

    @staticmethod
    def warm_up() -> None:
        """Load the SDK's models now rather than on the first call.

        The SDK imports its generated modules lazily: the first call
        notification parsed costs seconds, and Graph expects a webhook to
        answer quickly.
        """
        parse_notifications(WARM_UP_NOTIFICATIONS)

    async def callback(self, request: Request) -> Response:
        """Act on each notification in the body, then answer 202."""
        for notification in parse_notifications(await request.body()):
            try:
                await self.on_notification(notification)
            except APIError as exc:
                logger.error(
                    "call=%s Graph refused a request: %s %s",
                    notification.call_id,
                    exc.response_status_code,
                    exc.message or exc,
                )
        return Response(status_code=202)

    async def on_notification(self, notification: CommsNotification) -> None:
        """Move the call's flow on by one notification."""
        resource = notification.resource
        if isinstance(resource, Call):
            await self.on_call(notification.call_id, notification.change_type, resource)
        elif isinstance(resource, CommsOperation):
            flow = self.calls.get(notification.call_id)
            if flow is not None and notification.change_type == "deleted":
                await self.on_operation_finished(flow, resource)

    async def on_call(self, call_id: str, change_type: str, call: Call) -> None:
        """React to a change of the call itself."""
        flow = self.calls.get(call_id)
        if change_type == "created" and call.state == CallState.Incoming:
            if flow is None:  # a redelivered notification is not answered twice
                self.calls[call_id] = CallFlow(call_id)
                await self.answer(call_id)
        elif flow is None:
            return
        elif change_type == "deleted":
            flow.stage = Stage.ENDED
            result = call.result_info
            logger.info(
                "call=%s ended: %s/%s",
                call_id,
                result.code if result else None,
                result.subcode if result else None,
            )
        elif call.tone_info is not None:
            await self.on_tone(flow, call.tone_info.tone)
        elif call.state == CallState.Established and flow.stage is Stage.ANSWERING:
            await self.start_menu(flow)

    async def on_tone(self, flow: CallFlow, tone: Tone | None) -> None:
        """Pick the menu option the caller pressed."""
        if flow.stage is not Stage.MENU:
            return
        logger.info("call=%s caller pressed %s", flow.call_id, tone)
        if tone == Tone.Tone2:
            flow.stage = Stage.BILLING
            await self.cancel_media(flow)
            await self.play(flow, "billing")
            await self.record_reply(flow)
        elif tone == Tone.Tone1:
            flow.stage = Stage.SALES
            await self.cancel_media(flow)
            await self.play(flow, "sales")

    async def on_operation_finished(self, flow: CallFlow, op: CommsOperation) -> None:
        """React to an operation's terminal notification."""
        logger.info(
            "call=%s %s %s finished: %s",
            flow.call_id,
            type(op).__name__,
            op.client_context,
            op.status.value if op.status else None,
        )
        completed = op.status == OperationStatus.Completed
        if isinstance(op, RecordOperation) and flow.stage is Stage.BILLING:
            if completed and op.recording_location:
                await self.download_recording(flow, op)
            flow.stage = Stage.GOODBYE
            await self.play(flow, "goodbye")
        elif op.client_context == "sales" and flow.stage is Stage.SALES and completed:
            flow.stage = Stage.GOODBYE
            await self.play(flow, "goodbye")
        elif op.client_context == "goodbye" and flow.stage is Stage.GOODBYE:
            flow.stage = Stage.HANGING_UP
            await self.call(flow.call_id).delete()

    # Graph requests

    def call(self, call_id: str) -> CallItemRequestBuilder:
        """Return the SDK's request builder for one call."""
        return self.graph.communications.calls.by_call_id(call_id)

    async def answer(self, call_id: str) -> None:
        """Answer with service-hosted media, prefetching every prompt."""
        body = AnswerPostRequestBody(
            callback_uri=self.callback_url,
            accepted_modalities=[Modality.Audio],
            media_config=ServiceHostedMediaConfig(
                pre_fetch_media=[self.media(name) for name in PROMPTS]
            ),
        )
        await self.call(call_id).answer.post(body)
        logger.info("call=%s answered", call_id)

    async def start_menu(self, flow: CallFlow) -> None:
        """Listen for keys; queue the welcome, the menu and a repeat of it."""
        flow.stage = Stage.MENU
        tones = SubscribeToTonePostRequestBody(client_context="keys")
        await self.call(flow.call_id).subscribe_to_tone.post(tones)
        await self.play(flow, "welcome")
        await self.play(flow, "menu")
        await self.play(flow, "menu", context="menu-repeat")

    async def play(self, flow: CallFlow, prompt: str, *, context: str = "") -> None:
        """Queue one prompt; the queue plays prompts one after another."""
        body = PlayPromptPostRequestBody(
            client_context=context or prompt,
            prompts=[MediaPrompt(media_info=self.media(prompt))],
        )
        op = await self.call(flow.call_id).play_prompt.post(body)
        status = op.status.value if op and op.status else None
        logger.info("call=%s play %s: %s", flow.call_id, prompt, status)

    async def cancel_media(self, flow: CallFlow) -> None:
        """Stop the prompt playing now and every prompt queued behind it."""
        body = CancelMediaProcessingPostRequestBody(client_context="cancel")
        await self.call(flow.call_id).cancel_media_processing.post(body)

    async def record_reply(self, flow: CallFlow) -> None:
        """Record the caller after a beep, until # or 20 s."""
        body = RecordResponsePostRequestBody(
            client_context="reply",
            play_beep=True,
            stop_tones=["#"],
            max_record_duration_in_seconds=RECORD_MAX_S,
        )
        await self.call(flow.call_id).record_response.post(body)

    async def download_recording(self, flow: CallFlow, op: RecordOperation) -> None:
        """Fetch the recording with its access token and save it."""
        assert op.recording_location is not None
        response = await self.http.get(
            op.recording_location,
            headers={"Authorization": f"Bearer {op.recording_access_token}"},
        )
        response.raise_for_status()
        self.recordings_dir.mkdir(parents=True, exist_ok=True)
        path = self.recordings_dir / f"{flow.call_id}.wav"
        path.write_bytes(response.content)
        flow.recording = path
        logger.info("call=%s recording saved to %s", flow.call_id, path)

    def media(self, prompt: str) -> MediaInfo:
        """Return the mediaInfo of a prompt; its resourceId keys Graph's cache."""
        return MediaInfo(
            uri=f"{self.prompts_url}/{prompt}.wav", resource_id=f"ivr-bot-{prompt}"
        )


def graph_client(graph_url: str) -> GraphServiceClient:
    """Return an SDK client for graphcomms, or for Microsoft Graph itself.

    For ``https://graph.microsoft.com`` the app's credentials come from the
    environment (``AZURE_TENANT_ID``, ``AZURE_CLIENT_ID``,
    ``AZURE_CLIENT_SECRET``); graphcomms needs none.
    """
    if graph_url.startswith("https://graph.microsoft.com"):
        from azure.identity.aio import ClientSecretCredential

        credential = ClientSecretCredential(
            os.environ["AZURE_TENANT_ID"],
            os.environ["AZURE_CLIENT_ID"],
            os.environ["AZURE_CLIENT_SECRET"],
        )
        return GraphServiceClient(credentials=credential, scopes=GRAPH_SCOPES)
    adapter = GraphRequestAdapter(AnonymousAuthenticationProvider())
    adapter.base_url = graph_url.rstrip("/")
    return GraphServiceClient(request_adapter=adapter)


def main() -> None:
    """Serve the bot's webhook until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--graph-url", default="http://127.0.0.1:8000/v1.0")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument(
        "--callback-url", help="the webhook as Graph reaches it (default: local)"
    )
    parser.add_argument(
        "--prompts-url", help="where the prompt WAVs are (default: graphcomms')"
    )
    parser.add_argument("--recordings", type=Path, default=Path("recordings"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request

    graph_root = args.graph_url.rstrip("/").rsplit("/", 1)[0]
    bot = IvrBot(
        graph_client(args.graph_url),
        callback_url=args.callback_url
        or f"http://{args.host}:{args.port}{CALLBACK_PATH}",
        prompts_url=args.prompts_url or f"{graph_root}/_sim/sounds",
        recordings_dir=args.recordings,
    )
    logger.info("loading the Graph SDK's models (a few seconds)")
    bot.warm_up()
    logger.info("listening on http://%s:%d%s", args.host, args.port, CALLBACK_PATH)
    uvicorn.run(bot.app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
