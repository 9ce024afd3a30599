"""The engine: calls, their IVR queues, operations and tones.

Every rule of design.md's "Engine rules" lives here or in ``queue.py``. The
engine's methods are synchronous: each decides the new state, persists it,
hands notifications to the notifier and drives media, all before returning,
so the API can answer with the operation as it stands. Slow work (prompt
downloads, webhook delivery) runs behind the ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np

from graphcomms.callers import CallerAction, SimulatedCaller
from graphcomms.clock import Clock, Timer
from graphcomms.engine import operation as results
from graphcomms.engine.call import (
    ENDED_BY_BOT,
    ENDED_BY_PEER,
    KEEP_ALIVE_TIMEOUT,
    NOT_ANSWERED,
    REDIRECTED,
    REJECTED,
    SERVICE_RESTARTED,
    Call,
    CallState,
    Direction,
    MediaMode,
)
from graphcomms.engine.operation import (
    ApiVersion,
    CompletionReason,
    Operation,
    OperationKind,
    OperationStatus,
    PromptSource,
    RecordSettings,
    ResultInfo,
)
from graphcomms.engine.ports import (
    MediaPort,
    Notifier,
    PromptError,
    PromptLoader,
    RecordJob,
    RecordOutcome,
    Store,
)
from graphcomms.engine.queue import Dropped, Effect, MediaQueue, Start, Stop
from graphcomms.errors import (
    CallNotEstablished,
    CallNotFound,
    CallStateConflict,
    MediaModeNotSupported,
    OperationNotFound,
    RecordingAccessDenied,
    RecordingNotFound,
)
from graphcomms.media.dtmf import KEY_FOR_TONE, TONE_NAMES
from graphcomms.types import CallId, OperationId, Pcm, samples_to_ms

logger = logging.getLogger(__name__)


ENDED_CALLS_KEPT = 100
"""How many ended calls keep what their caller heard, for the inspection API."""

MAX_LOOPED_PROMPT_SAMPLES = 16_000 * 60 * 30
"""A prompt repeated by a legacy ``loop`` count is cut at 30 minutes."""


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """Timings and policies of the engine; defaults follow Graph."""

    public_base_url: str = "http://127.0.0.1:8000"
    recordings_dir: Path = Path("recordings")
    answer_delay_ms: int = 1000
    """How long a simulated callee rings before answering an outgoing call."""
    establish_delay_ms: int = 200
    """From answer (or pickup) to established."""
    answer_deadline_ms: int = 15_000
    keep_alive_timeout_ms: int = 45 * 60_000
    recording_retention_s: float = 3600.0
    cancelled_dtmf_status: Literal["completed", "failed"] = "completed"
    """How a cancelled sendDtmfTones ends: as its own page shows, or as others."""


@dataclass(frozen=True, slots=True)
class NewCall:
    """What a bot (or the emulator) asks for when a call is made."""

    callback_uri: str
    api_version: ApiVersion
    targets: list[dict[str, Any]] = field(default_factory=list)
    source: dict[str, Any] | None = None
    requested_modalities: list[str] = field(default_factory=lambda: ["audio"])
    media_mode: MediaMode = MediaMode.SERVICE_HOSTED
    prefetch: tuple[PromptSource, ...] = ()
    subject: str | None = None
    tenant_id: str | None = None


@dataclass(slots=True)
class _Live:
    """What the engine keeps beside a live call: queue, operations, timers."""

    call: Call
    caller: Any
    queue: MediaQueue = field(default_factory=MediaQueue)
    pending: dict[OperationId, Operation] = field(default_factory=dict)
    """Operations the Graph API can still GET."""
    sending: dict[OperationId, Operation] = field(default_factory=dict)
    """sendDtmfTones operations whose tones are still going out."""
    timers: dict[str, Timer] = field(default_factory=dict)

    def set_timer(self, name: str, timer: Timer) -> None:
        """Replace the timer called ``name``."""
        old = self.timers.pop(name, None)
        if old is not None:
            old.cancel()
        self.timers[name] = timer

    def cancel_timer(self, name: str) -> None:
        """Cancel the timer called ``name``, if there is one."""
        timer = self.timers.pop(name, None)
        if timer is not None:
            timer.cancel()

    def cancel_timers(self) -> None:
        """Cancel every timer of the call."""
        for timer in self.timers.values():
            timer.cancel()
        self.timers.clear()


CallerFactory = Callable[[list[CallerAction]], Any]


class Engine:
    """Calls and their media operations, as Graph defines them."""

    def __init__(
        self,
        *,
        clock: Clock,
        media: MediaPort,
        prompts: PromptLoader,
        notifier: Notifier,
        store: Store,
        settings: EngineSettings | None = None,
        caller_factory: CallerFactory = SimulatedCaller,
    ) -> None:
        self.clock = clock
        self.settings = settings or EngineSettings()
        self._media = media
        self._prompts = prompts
        self._notifier = notifier
        self._store = store
        self._caller_factory = caller_factory
        self._live: dict[CallId, _Live] = {}
        # the most recent ended calls stay at hand for inspection; the store
        # keeps them all, and their callers (with heard audio) are let go
        self._ended: OrderedDict[CallId, tuple[Call, Any]] = OrderedDict()
        self._writing: dict[OperationId, asyncio.Future[None]] = {}

    def __repr__(self) -> str:
        return f"<Engine live_calls={len(self._live)} now_ms={self.clock.now_ms()}>"

    @property
    def live_call_count(self) -> int:
        """Return how many calls are live."""
        return len(self._live)

    # calls

    def create_call(self, spec: NewCall) -> Call:
        """Place an outgoing call; a simulated callee answers it shortly."""
        call = self._new_call(spec, Direction.OUTGOING, CallState.ESTABLISHING)
        live = self._register(call, self._caller_factory([]))
        self._notifier.call_changed(call, "updated", ["state"])
        live.set_timer(
            "establish",
            self.clock.call_later(
                self.settings.answer_delay_ms, lambda: self._establish(call.id)
            ),
        )
        return call

    def place_incoming_call(self, spec: NewCall, script: list[CallerAction]) -> Call:
        """Ring the bot: a ``created`` notification, then 15 s to answer."""
        call = self._new_call(spec, Direction.INCOMING, CallState.INCOMING)
        live = self._register(call, self._caller_factory(list(script)))
        self._notifier.call_changed(call, "created", ["*"])
        live.set_timer(
            "answer",
            self.clock.call_later(
                self.settings.answer_deadline_ms,
                lambda: self._end_if_unanswered(call.id),
            ),
        )
        return call

    def get_call(self, call_id: str) -> Call:
        """Return the live call ``call_id``."""
        return self._get_live(call_id).call

    def answer(
        self,
        call_id: str,
        *,
        callback_uri: str | None,
        media_mode: MediaMode,
        prefetch: tuple[PromptSource, ...],
        api_version: ApiVersion,
    ) -> None:
        """Answer an incoming call; it is established shortly after."""
        live = self._incoming(call_id, "answer")
        call = live.call
        if callback_uri:
            call.callback_uri = callback_uri
        call.media_mode = media_mode
        call.api_version = api_version
        call.prefetch = prefetch
        self._prefetch(prefetch)
        live.cancel_timer("answer")
        self._set_state(call, CallState.ESTABLISHING)
        live.set_timer(
            "establish",
            self.clock.call_later(
                self.settings.establish_delay_ms, lambda: self._establish(call.id)
            ),
        )

    def reject(self, call_id: str, *, reason: str | None) -> None:
        """Reject an incoming call; it ends at once."""
        live = self._incoming(call_id, "reject")
        live.call.note(self.clock.now_ms(), f"rejected ({reason or 'none'})")
        self._terminate(live, REJECTED, announce=False)

    def redirect(self, call_id: str, *, targets: list[dict[str, Any]]) -> None:
        """Redirect an incoming call elsewhere; for this service it ends."""
        live = self._incoming(call_id, "redirect")
        live.call.note(self.clock.now_ms(), f"redirected to {len(targets)} target(s)")
        self._terminate(live, REDIRECTED, announce=False)

    def hang_up(self, call_id: str) -> None:
        """End the call from the bot's side (DELETE)."""
        self._terminate(self._get_live(call_id), ENDED_BY_BOT)

    def keep_alive(self, call_id: str) -> None:
        """Restart the call's 45-minute keep-alive window."""
        live = self._get_live(call_id)
        self._arm_keep_alive(live)

    # media operations

    def play_prompt(
        self,
        call_id: str,
        prompts: tuple[PromptSource, ...],
        *,
        client_context: str | None,
        loop: bool,
        api_version: ApiVersion,
    ) -> Operation:
        """Queue a playPrompt; it runs when the operations before it are done."""
        live = self._media_ready(call_id, "playPrompt")
        op = self._new_operation(
            live, OperationKind.PLAY_PROMPT, api_version, client_context
        )
        op.prompts = prompts
        op.loop_forever = loop or any(p.loop == 0 for p in prompts)
        self._prefetch(prompts)
        self._enqueue(live, op, live.queue.enqueue(op))
        return op

    def record_response(
        self,
        call_id: str,
        settings: RecordSettings,
        *,
        client_context: str | None,
        api_version: ApiVersion,
        legacy: bool = False,
    ) -> Operation:
        """Queue a recordResponse, or barge in at once when it allows."""
        live = self._media_ready(call_id, "recordResponse")
        op = self._new_operation(
            live, OperationKind.RECORD, api_version, client_context
        )
        op.record = settings
        op.legacy_record = legacy
        if settings.prompt is not None:
            self._prefetch((settings.prompt,))
        if settings.barge_in_allowed:
            effects = live.queue.barge_in(op)
        else:
            effects = live.queue.enqueue(op)
        self._enqueue(live, op, effects)
        return op

    def subscribe_to_tone(
        self, call_id: str, *, client_context: str | None, api_version: ApiVersion
    ) -> Operation:
        """Start sending the caller's keys as toneInfo updates; idempotent."""
        live = self._media_ready(call_id, "subscribeToTone")
        live.call.tone_subscribed = True
        self._store.save_call(live.call)
        return self._completed_at_once(
            live, OperationKind.SUBSCRIBE_TO_TONE, api_version, client_context
        )

    def send_dtmf_tones(
        self,
        call_id: str,
        tones: tuple[str, ...],
        *,
        delay_between_tones_ms: int,
        client_context: str | None,
        api_version: ApiVersion,
    ) -> Operation:
        """Send DTMF tones to the caller, beside the IVR queue."""
        live = self._media_ready(call_id, "sendDtmfTones", hosted_only=False)
        op = self._new_operation(
            live, OperationKind.SEND_DTMF_TONES, api_version, client_context
        )
        op.tones = tones
        op.delay_between_tones_ms = delay_between_tones_ms
        op.status = OperationStatus.RUNNING
        op.started_ms = self.clock.now_ms()
        keys = "".join(KEY_FOR_TONE[t] for t in tones if t in KEY_FOR_TONE)
        self._store.save_operation(op)
        live.pending[op.id] = op
        live.sending[op.id] = op
        self._log_started(op)
        if keys:
            self._media.send_tones(live.call.id, op.id, keys, delay_between_tones_ms)
        else:  # only "flash", which is not a key: nothing to send
            self._succeed(live, op)
        return op

    def cancel_media_processing(
        self,
        call_id: str,
        *,
        all_operations: bool,
        client_context: str | None,
        api_version: ApiVersion,
    ) -> Operation:
        """Stop the running operation and, with ``all_operations``, the queue.

        The returned operation is already completed. Each stopped operation
        gets one terminal notification: the running one first, then the
        queued ones in order. Tones still being sent stop too; the tone
        subscription is untouched.
        """
        live = self._media_ready(call_id, "cancelMediaProcessing", hosted_only=False)
        op = self._completed_at_once(
            live,
            OperationKind.CANCEL_MEDIA_PROCESSING,
            api_version,
            client_context,
            cancel_all=all_operations,
        )
        with self._store.transaction():
            self._apply(live, live.queue.cancel(all_operations=all_operations))
            for sending in list(live.sending.values()):
                self._media.stop_tones(live.call.id, sending.id)
                self._cancel_tones(live, sending)
        return op

    def mute(
        self, call_id: str, *, client_context: str | None, api_version: ApiVersion
    ) -> Operation:
        """Mute the bot: the caller hears silence until unmute."""
        return self._set_muted(call_id, True, client_context, api_version)

    def unmute(
        self, call_id: str, *, client_context: str | None, api_version: ApiVersion
    ) -> Operation:
        """Unmute the bot."""
        return self._set_muted(call_id, False, client_context, api_version)

    def update_recording_status(
        self,
        call_id: str,
        status: str,
        *,
        client_context: str | None,
        api_version: ApiVersion,
    ) -> Operation:
        """Record the bot's declared recording status on the call."""
        live = self._get_live(call_id)
        live.call.recording_status = status
        self._store.save_call(live.call)
        op = self._completed_at_once(
            live,
            OperationKind.UPDATE_RECORDING_STATUS,
            api_version,
            client_context,
        )
        op.recording_status = status
        self._store.save_operation(op)
        return op

    def get_operation(self, call_id: str, op_id: str) -> Operation:
        """Return an operation that is still pending (or completed at once)."""
        live = self._get_live(call_id)
        op = live.pending.get(OperationId(op_id.lower()))
        if op is None:
            raise OperationNotFound(call_id, op_id)
        return op

    # the emulator's side

    def caller_action(self, call_id: str, action: CallerAction) -> None:
        """Give the call's simulated caller one more scripted action."""
        live = self._get_live(call_id)
        if action.kind == "hangup" and live.call.state is not CallState.ESTABLISHED:
            live.call.note(self.clock.now_ms(), "caller hung up before media")
            self._terminate(live, ENDED_BY_PEER)
            return
        enqueue = getattr(live.caller, "enqueue", None)
        if enqueue is None:
            raise CallStateConflict(call_id, "This call's caller cannot be scripted.")
        enqueue(action)

    def call_record(self, call_id: str) -> Call:
        """Return any call ever seen, live or ended."""
        key = CallId(call_id.lower())
        if key in self._live:
            return self._live[key].call
        if key in self._ended:
            return self._ended[key][0]
        stored = self._store.get_call(key)
        if stored is None:
            raise CallNotFound(call_id)
        return stored

    def operations_record(self, call_id: str) -> list[Operation]:
        """Return every operation the call ever had, in creation order."""
        self.call_record(call_id)
        return self._store.operations_of(CallId(call_id.lower()))

    def heard_audio(self, call_id: str) -> Pcm | None:
        """Return what the simulated caller heard so far, if it keeps that."""
        key = CallId(call_id.lower())
        live = self._live.get(key)
        ended = self._ended.get(key)
        caller = live.caller if live else ended[1] if ended else None
        heard = getattr(caller, "heard", None)
        return heard() if heard is not None else None

    async def recording_file(self, op_id: str, token: str) -> Path:
        """Return the recording file of ``op_id`` once it is fully written."""
        writing = self._writing.get(OperationId(op_id.lower()))
        if writing is not None:
            with contextlib.suppress(OSError):
                await asyncio.shield(writing)
        return self.recording_path(op_id, token)

    def recording_path(self, op_id: str, token: str) -> Path:
        """Return the recording file of ``op_id`` if ``token`` is its token."""
        entry = self._store.get_recording(op_id.lower())
        if entry is None:
            raise RecordingNotFound(op_id)
        if not secrets.compare_digest(entry.token.encode(), token.encode()):
            raise RecordingAccessDenied(op_id)
        path = Path(entry.path)
        if not path.exists():
            raise RecordingNotFound(op_id)
        return path

    def recover(self) -> None:
        """End, cleanly, the calls a previous run left live.

        Their pending operations fail with "call terminated" and are
        notified, then the call is terminated; undelivered notifications are
        the delivery worker's to resend.
        """
        for call in self._store.live_calls():
            live = _Live(call, caller=None)
            for op in self._store.operations_of(call.id):
                if not op.status.terminal:
                    live.pending[op.id] = op
            logger.info("call=%s ended on restart", call.id)
            self._terminate(live, SERVICE_RESTARTED, registered=False)

    # the MediaListener side: what media reports, inside a tick

    def play_finished(self, call_id: CallId, op_id: OperationId) -> None:
        """Complete the prompt that just played out; start what is next."""
        live = self._live.get(call_id)
        if live is None or live.queue.running is None:
            return
        op = live.queue.running
        if op.id != op_id:
            return
        op.completion_reason = CompletionReason.COMPLETED_SUCCESSFULLY
        with self._store.transaction():
            self._finish(live, op, OperationStatus.COMPLETED, results.PLAY_COMPLETED)
            self._apply(live, live.queue.finish(op))

    def recording_finished(
        self, call_id: CallId, op_id: OperationId, outcome: RecordOutcome, audio: Pcm
    ) -> None:
        """End the recording with its outcome and publish the file."""
        live = self._live.get(call_id)
        op = live.queue.running if live else None
        if live is None or op is None or op.id != op_id:
            return
        status, result, reason = _RECORD_ENDINGS[outcome]
        op.completion_reason = reason
        op.recording_ms = samples_to_ms(len(audio))
        if status is OperationStatus.COMPLETED:
            try:
                self._publish_recording(op, audio)
            except OSError as exc:
                logger.error(
                    "call=%s op=%s recording not saved: %s", call_id, op_id, exc
                )
                status, result = OperationStatus.FAILED, results.RECORDING_NOT_SAVED
                op.completion_reason = CompletionReason.UNSPECIFIED_ERROR
                op.recording_location = ""
                op.recording_access_token = ""
        else:
            op.recording_location = ""
            op.recording_access_token = ""
        with self._store.transaction():
            self._finish(live, op, status, result)
            self._apply(live, live.queue.finish(op))

    def tones_sent(self, call_id: CallId, op_id: OperationId) -> None:
        """Complete a sendDtmfTones whose last tone went out."""
        live = self._live.get(call_id)
        op = live.sending.get(op_id) if live else None
        if live is not None and op is not None:
            self._succeed(live, op)

    def tone_detected(self, call_id: CallId, key: str) -> None:
        """Tell a subscribed bot about a key the caller pressed."""
        live = self._live.get(call_id)
        if live is None:
            return
        call = live.call
        tone = TONE_NAMES.get(key, key)
        call.note(self.clock.now_ms(), f"caller pressed {tone}")
        if not call.tone_subscribed or call.state is not CallState.ESTABLISHED:
            return
        call.tone_sequence += 1
        call.last_tone = tone
        logger.info("call=%s tone %s (sequence %d)", call.id, tone, call.tone_sequence)
        self._store.save_call(call)
        self._notifier.call_changed(call, "updated", ["state", "toneInfo"])

    def caller_hung_up(self, call_id: CallId) -> None:
        """End the call because the caller hung up."""
        live = self._live.get(call_id)
        if live is not None:
            live.call.note(self.clock.now_ms(), "caller hung up")
            self._terminate(live, ENDED_BY_PEER)

    # internals: calls

    def _new_call(self, spec: NewCall, direction: Direction, state: CallState) -> Call:
        call = Call(
            id=CallId(str(uuid.uuid4())),
            direction=direction,
            api_version=spec.api_version,
            callback_uri=spec.callback_uri,
            state=state,
            media_mode=spec.media_mode,
            source=spec.source,
            targets=list(spec.targets),
            requested_modalities=list(spec.requested_modalities),
            subject=spec.subject,
            tenant_id=spec.tenant_id,
            my_participant_id=str(uuid.uuid4()),
            call_chain_id=str(uuid.uuid4()),
            prefetch=spec.prefetch,
            created_ms=self.clock.now_ms(),
        )
        call.note(call.created_ms, f"{direction.value} call {state.value}")
        self._prefetch(spec.prefetch)
        logger.info("call=%s %s call %s", call.id, direction.value, state.value)
        return call

    def _register(self, call: Call, caller: Any) -> _Live:
        live = _Live(call, caller)
        self._store.save_call(call)  # a call the store refused never goes live
        self._live[call.id] = live
        self._arm_keep_alive(live)
        return live

    def _establish(self, call_id: CallId) -> None:
        live = self._live.get(call_id)
        if live is None or live.call.state is not CallState.ESTABLISHING:
            return
        self._media.attach(call_id, live.caller)
        self._set_state(live.call, CallState.ESTABLISHED, ["state", "mediaState"])

    def _end_if_unanswered(self, call_id: CallId) -> None:
        live = self._live.get(call_id)
        if live is not None and live.call.state is CallState.INCOMING:
            live.call.note(self.clock.now_ms(), "not answered within the deadline")
            self._terminate(live, NOT_ANSWERED, announce=False)

    def _arm_keep_alive(self, live: _Live) -> None:
        call_id = live.call.id

        def expire() -> None:
            current = self._live.get(call_id)
            if current is not None:
                current.call.note(self.clock.now_ms(), "keep-alive window expired")
                self._terminate(current, KEEP_ALIVE_TIMEOUT)

        live.set_timer(
            "keepAlive",
            self.clock.call_later(self.settings.keep_alive_timeout_ms, expire),
        )

    def _set_state(
        self, call: Call, state: CallState, fields: Sequence[str] = ("state",)
    ) -> None:
        call.state = state
        call.note(self.clock.now_ms(), state.value)
        logger.info("call=%s %s", call.id, state.value)
        self._store.save_call(call)
        self._notifier.call_changed(call, "updated", list(fields))

    def _terminate(
        self,
        live: _Live,
        result: ResultInfo,
        *,
        announce: bool = True,
        registered: bool = True,
    ) -> None:
        """End a call: its operations first, then terminating, then terminated."""
        call = live.call
        if call.state is CallState.TERMINATED:
            return
        live.cancel_timers()
        with self._store.transaction():
            # stop media first, so nothing more is heard or recorded
            for effect in live.queue.clear():
                if isinstance(effect, Stop):
                    self._media.stop(call.id, effect.op.id)
            if registered:
                self._media.detach(call.id)
            for op in list(live.pending.values()):
                if not op.status.terminal:
                    self._fail_on_call_end(live, op)
            if announce and call.state is not CallState.INCOMING:
                self._set_state(call, CallState.TERMINATING)
            call.state = CallState.TERMINATED
            call.result_info = result
            call.ended_ms = self.clock.now_ms()
            call.note(call.ended_ms, f"terminated: {result.code}/{result.subcode}")
            self._store.save_call(call)
            self._notifier.call_changed(call, "deleted", ["state", "resultInfo"])
        logger.info(
            "call=%s terminated %d/%d %s",
            call.id,
            result.code,
            result.subcode,
            result.message,
        )
        self._live.pop(call.id, None)
        self._ended[call.id] = (call, live.caller)
        while len(self._ended) > ENDED_CALLS_KEPT:
            self._ended.popitem(last=False)

    def _get_live(self, call_id: str) -> _Live:
        live = self._live.get(CallId(call_id.lower()))
        if live is None:
            raise CallNotFound(call_id)
        return live

    def _incoming(self, call_id: str, action: str) -> _Live:
        live = self._get_live(call_id)
        if live.call.state is not CallState.INCOMING:
            raise CallStateConflict(
                call_id,
                f"Cannot {action} a call in state {live.call.state.value}; "
                "only incoming calls can be answered, rejected or redirected.",
            )
        return live

    def _media_ready(
        self, call_id: str, action: str, *, hosted_only: bool = True
    ) -> _Live:
        live = self._get_live(call_id)
        if hosted_only and live.call.media_mode == MediaMode.APP_HOSTED:
            raise MediaModeNotSupported(call_id, action)
        if live.call.state is not CallState.ESTABLISHED:
            raise CallNotEstablished(call_id, live.call.state.value)
        return live

    def _prefetch(self, sources: tuple[PromptSource, ...]) -> None:
        """Start downloads early; a failure is reported when the prompt plays."""
        for source in sources:
            self._prompts.load(source).add_done_callback(_observe)

    def _set_muted(
        self,
        call_id: str,
        muted: bool,
        client_context: str | None,
        api_version: ApiVersion,
    ) -> Operation:
        live = self._media_ready(call_id, "mute", hosted_only=False)
        live.call.muted = muted
        self._store.save_call(live.call)
        self._media.set_muted(live.call.id, muted)
        kind = OperationKind.MUTE if muted else OperationKind.UNMUTE
        op = self._completed_at_once(live, kind, api_version, client_context)
        self._notifier.roster_changed(live.call)
        return op

    # internals: operations

    def _new_operation(
        self,
        live: _Live,
        kind: OperationKind,
        api_version: ApiVersion,
        client_context: str | None,
    ) -> Operation:
        now = self.clock.now_ms()
        op = Operation(
            id=OperationId(str(uuid.uuid4())),
            call_id=live.call.id,
            kind=kind,
            api_version=api_version,
            client_context=client_context,
            created_ms=now,
        )
        op.note(now, "requested")
        return op

    def _completed_at_once(
        self,
        live: _Live,
        kind: OperationKind,
        api_version: ApiVersion,
        client_context: str | None,
        *,
        cancel_all: bool | None = None,
    ) -> Operation:
        op = self._new_operation(live, kind, api_version, client_context)
        op.cancel_all = cancel_all
        op.status = OperationStatus.COMPLETED
        op.result_info = results.OPERATION_COMPLETED
        op.started_ms = op.finished_ms = op.created_ms
        op.note(op.created_ms, "completed")
        self._store.save_operation(op)
        live.pending[op.id] = op
        logger.info("call=%s op=%s %s completed", live.call.id, op.id, kind.value)
        return op

    def _enqueue(self, live: _Live, op: Operation, effects: list[Effect]) -> None:
        live.pending[op.id] = op
        with self._store.transaction():
            self._store.save_operation(op)
            self._apply(live, effects)
        if op.status is OperationStatus.NOT_STARTED:
            op.note(op.created_ms, "queued")
            logger.info("call=%s op=%s %s queued", live.call.id, op.id, op.kind.value)

    def _apply(self, live: _Live, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Stop):
                self._media.stop(live.call.id, effect.op.id)
            elif isinstance(effect, Dropped):
                self._cancel(live, effect.op)
            elif isinstance(effect, Start):
                self._start(live, effect.op)

    def _start(self, live: _Live, op: Operation) -> None:
        op.started_ms = self.clock.now_ms()
        op.note(op.started_ms, "running")
        self._store.save_operation(op)
        self._log_started(op)
        sources = op.prompts if op.kind is OperationKind.PLAY_PROMPT else ()
        if op.record is not None and op.record.prompt is not None:
            sources = (op.record.prompt,)
        loaded = _gather([self._prompts.load(s) for s in sources])
        # the media job starts once audio is in; virtual time waits for it
        started: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self.clock.hold(started)

        def begin(done: asyncio.Future[list[Pcm | BaseException]]) -> None:
            try:
                if (
                    live.queue.running is op
                    and live.call.state is CallState.ESTABLISHED
                ):
                    self._begin_media(live, op, sources, done.result())
            finally:
                started.set_result(None)

        loaded.add_done_callback(begin)

    def _begin_media(
        self,
        live: _Live,
        op: Operation,
        sources: Sequence[PromptSource],
        audio: list[Pcm | BaseException],
    ) -> None:
        failure = next((a for a in audio if isinstance(a, BaseException)), None)
        if failure is not None:
            self._fail_prompt(live, op, failure)
            return
        pcm = [a for a in audio if not isinstance(a, BaseException)]
        if op.kind is OperationKind.PLAY_PROMPT:
            joined = _join_prompts(pcm, sources, loop_forever=op.loop_forever)
            self._media.play(live.call.id, op.id, joined, loop=op.loop_forever)
            return
        settings = op.record
        assert settings is not None
        self._media.record(
            live.call.id,
            op.id,
            RecordJob(
                prompt=pcm[0] if pcm else None,
                play_beep=settings.play_beep,
                initial_silence_ms=settings.initial_silence_timeout_s * 1000,
                max_silence_ms=settings.max_silence_timeout_s * 1000,
                max_duration_ms=settings.max_record_duration_s * 1000,
                stop_tones=frozenset(settings.stop_tones),
            ),
        )

    def _fail_prompt(self, live: _Live, op: Operation, failure: BaseException) -> None:
        if isinstance(failure, PromptError) and failure.reason == "format":
            result = results.INVALID_FORMAT
        else:
            result = results.DOWNLOAD_FAILED
        detail = failure.detail if isinstance(failure, PromptError) else repr(failure)
        op.note(self.clock.now_ms(), f"prompt failed: {detail}")
        if op.kind is OperationKind.RECORD:
            op.completion_reason = CompletionReason.PLAY_PROMPT_FAILED
            op.recording_location = ""
            op.recording_access_token = ""
        else:
            op.completion_reason = CompletionReason.UNKNOWN
        with self._store.transaction():
            self._finish(live, op, OperationStatus.FAILED, result)
            self._apply(live, live.queue.finish(op))

    def _cancel(self, live: _Live, op: Operation) -> None:
        if op.kind is OperationKind.RECORD:
            op.completion_reason = CompletionReason.OPERATION_CANCELED
            op.recording_location = ""
            op.recording_access_token = ""
        else:
            op.completion_reason = CompletionReason.MEDIA_OPERATION_CANCELED
        self._finish(live, op, OperationStatus.FAILED, results.CANCELLED)

    def _cancel_tones(self, live: _Live, op: Operation) -> None:
        op.completion_reason = CompletionReason.MEDIA_OPERATION_CANCELED
        live.sending.pop(op.id, None)
        if self.settings.cancelled_dtmf_status == "failed":
            self._finish(live, op, OperationStatus.FAILED, results.CANCELLED)
        else:
            self._finish(live, op, OperationStatus.COMPLETED, results.CANCELLED)

    def _succeed(self, live: _Live, op: Operation) -> None:
        live.sending.pop(op.id, None)
        op.completion_reason = CompletionReason.COMPLETED_SUCCESSFULLY
        self._finish(live, op, OperationStatus.COMPLETED, results.OPERATION_COMPLETED)

    def _fail_on_call_end(self, live: _Live, op: Operation) -> None:
        live.sending.pop(op.id, None)
        if op.kind is OperationKind.RECORD:
            op.completion_reason = CompletionReason.UNSPECIFIED_ERROR
            op.recording_location = ""
            op.recording_access_token = ""
        else:
            op.completion_reason = CompletionReason.UNKNOWN
        self._finish(live, op, OperationStatus.FAILED, results.CALL_TERMINATED)

    def _finish(
        self,
        live: _Live,
        op: Operation,
        status: OperationStatus,
        result: ResultInfo,
    ) -> None:
        """Give ``op`` its one terminal state and its one notification."""
        if op.status.terminal:
            return
        op.status = status
        op.result_info = result
        op.finished_ms = self.clock.now_ms()
        op.note(op.finished_ms, f"{status.value} {result.code}/{result.subcode}")
        live.pending.pop(op.id, None)
        self._store.save_operation(op)
        self._notifier.operation_finished(live.call, op)
        logger.info(
            "call=%s op=%s %s %s %d/%d %s",
            op.call_id,
            op.id,
            op.kind.value,
            status.value,
            result.code,
            result.subcode,
            op.completion_reason.value if op.completion_reason else "",
        )

    def _log_started(self, op: Operation) -> None:
        logger.info("call=%s op=%s %s running", op.call_id, op.id, op.kind.value)

    def _written(self, op_id: OperationId, writing: asyncio.Future[None]) -> None:
        self._writing.pop(op_id, None)
        error = writing.exception() if not writing.cancelled() else None
        if error is not None:
            logger.error("op=%s recording could not be written: %s", op_id, error)

    def _publish_recording(self, op: Operation, audio: Pcm) -> None:
        from graphcomms.media.wav import write_wav

        directory = self.settings.recordings_dir
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{op.id}.wav"
        # written off the media tick (many recordings can end on one tick);
        # a download waits for its file in recording_file()
        writing = asyncio.get_running_loop().run_in_executor(
            None, write_wav, path, audio
        )
        self._writing[op.id] = writing
        writing.add_done_callback(partial(self._written, op.id))
        token = secrets.token_urlsafe(32)
        base = self.settings.public_base_url.rstrip("/")
        op.recording_location = f"{base}/recordings/{op.id}"
        op.recording_access_token = token
        expires_at = time.time() + self.settings.recording_retention_s
        self._store.save_recording(op.id, op.call_id, str(path), token, expires_at)


_RECORD_ENDINGS: dict[
    RecordOutcome, tuple[OperationStatus, ResultInfo, CompletionReason]
] = {
    RecordOutcome.MAX_DURATION: (
        OperationStatus.COMPLETED,
        results.RECORD_MAX_DURATION,
        CompletionReason.MAX_RECORD_DURATION_REACHED,
    ),
    RecordOutcome.STOP_TONE: (
        OperationStatus.COMPLETED,
        results.RECORD_STOP_TONE,
        CompletionReason.STOP_TONE_DETECTED,
    ),
    RecordOutcome.MAX_SILENCE: (
        OperationStatus.COMPLETED,
        results.RECORD_MAX_SILENCE,
        CompletionReason.MAX_SILENCE_TIMEOUT,
    ),
    RecordOutcome.INITIAL_SILENCE: (
        OperationStatus.FAILED,
        results.RECORD_INITIAL_SILENCE,
        CompletionReason.INITIAL_SILENCE_TIMEOUT,
    ),
}


def _observe(future: asyncio.Future[Pcm]) -> None:
    """Mark a prefetch's failure as seen; the operation reports it later."""
    if not future.cancelled():
        future.exception()


def _gather(
    futures: list[asyncio.Future[Pcm]],
) -> asyncio.Future[list[Pcm | BaseException]]:
    """Wait for every future, keeping failures as values (none goes unread)."""
    return asyncio.gather(*futures, return_exceptions=True)


def _join_prompts(
    audio: list[Pcm], sources: Sequence[PromptSource], *, loop_forever: bool
) -> Pcm:
    """Concatenate prompts, repeating each by its legacy ``loop`` count."""
    if len(audio) == 1 and (loop_forever or sources[0].loop <= 1):
        return audio[0]  # the cached prompt itself: playing never copies it
    parts: list[Pcm] = []
    total = 0
    for pcm, source in zip(audio, sources, strict=True):
        repeats = 1 if loop_forever or source.loop <= 1 else source.loop
        # no more copies than the 30-minute cut can use
        room = MAX_LOOPED_PROMPT_SAMPLES - total
        repeats = min(repeats, max(1, -(-room // max(len(pcm), 1))))
        parts.extend([pcm] * repeats)
        total += repeats * len(pcm)
        if total >= MAX_LOOPED_PROMPT_SAMPLES:
            break
    joined = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)
    return joined[:MAX_LOOPED_PROMPT_SAMPLES]
