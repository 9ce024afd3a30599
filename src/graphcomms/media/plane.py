"""The media plane: one 20 ms tick for every call's audio, batched.

Per tick, for each attached call: the bot's outbound frame (prompt, beep,
DTMF being sent, or silence) goes to the caller; the caller's inbound frame
goes, batched across calls, to tone detection and speech detection, and to a
running recording. Jobs end on exact frame boundaries, so a prompt of 3.2 s
finishes 160 ticks after it starts.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from threadpoolctl import threadpool_limits

from graphcomms.clock import Clock
from graphcomms.media.dtmf import key_sequence_pcm
from graphcomms.media.jobs import MediaListener, RecordJob, RecordOutcome
from graphcomms.media.levels import beep_pcm, is_speech, mix
from graphcomms.types import (
    FRAME_MS,
    FRAME_SAMPLES,
    SILENCE,
    CallId,
    OperationId,
    Pcm,
)

logger = logging.getLogger(__name__)


QUIET_FRAMES_FED = 2
"""Silence fed to analysis after a caller goes quiet: 40 ms, a DTMF gap."""

DTMF_TONE_MS = 100
"""How long each DTMF tone the bot sends lasts."""


class Caller(Protocol):
    """A caller endpoint as the media plane drives it."""

    hung_up: bool

    def next_frame(self) -> Pcm | None: ...

    def hear(self, frame: Pcm) -> None: ...


@dataclass(slots=True)
class _Source:
    """Samples going out frame by frame."""

    audio: Pcm
    loop: bool = False
    pos: int = 0
    full_end: int = field(init=False)
    """Where the last whole frame ends: before it, a frame is a plain slice."""

    def __post_init__(self) -> None:
        self.full_end = len(self.audio) // FRAME_SAMPLES * FRAME_SAMPLES

    def next_frame(self) -> Pcm | None:
        """Return the next frame, or None once the audio is used up."""
        if self.pos >= len(self.audio):
            if not self.loop:
                return None
            self.pos = 0
        frame = self.audio[self.pos : self.pos + FRAME_SAMPLES]
        self.pos += FRAME_SAMPLES
        if len(frame) < FRAME_SAMPLES:
            frame = np.pad(frame, (0, FRAME_SAMPLES - len(frame)))
        return frame

    @property
    def done(self) -> bool:
        """Return whether every sample has gone out (never, when looping)."""
        return not self.loop and self.pos >= len(self.audio)


@dataclass(slots=True)
class _Play:
    op_id: OperationId
    source: _Source


@dataclass(slots=True)
class _Record:
    op_id: OperationId
    job: RecordJob
    lead_in: _Source | None
    """Prompt and beep played before listening starts."""
    frames: list[Pcm] = field(default_factory=list)
    heard_speech: bool = False
    silence_ms: int = 0

    @property
    def listening(self) -> bool:
        """Return whether the lead-in is over and the caller is recorded."""
        return self.lead_in is None

    @property
    def recorded_ms(self) -> int:
        """Return how long the recording is so far."""
        return len(self.frames) * FRAME_MS


@dataclass(slots=True)
class _Tones:
    op_id: OperationId
    source: _Source


@dataclass(slots=True)
class _Channel:
    call_id: CallId
    slot: int
    caller: Caller
    job: _Play | _Record | None = None
    tones: _Tones | None = None
    tones_waiting: deque[_Tones] = field(default_factory=deque)
    muted: bool = False
    quiet_frames: int = 2
    """Silent frames fed to analysis since the caller last sent audio."""


def _next_tones(channel: _Channel) -> _Tones | None:
    return channel.tones_waiting.popleft() if channel.tones_waiting else None


class MediaPlane:
    """All calls' audio, ticked together by the clock."""

    def __init__(self, clock: Clock, *, detector: Any | None = None) -> None:
        from graphcomms.media.dtmf import ToneDetector

        self.listener: MediaListener | None = None
        self._clock = clock
        self._channels: dict[CallId, _Channel] = {}
        self._free_slots: list[int] = []
        self._next_slot = 0
        self._detector = detector if detector is not None else ToneDetector()
        self._beep = beep_pcm()
        # one BLAS thread: the tick's small products gain nothing from a
        # second one, whose spinning steals the core the event loop needs
        threadpool_limits(limits=1, user_api="blas")
        clock.add_listener(self.tick)

    def __repr__(self) -> str:
        return f"<MediaPlane calls={len(self._channels)}>"

    def __len__(self) -> int:
        return len(self._channels)

    # the MediaPort side: what the engine asks for

    def attach(self, call_id: CallId, caller: Any) -> None:
        """Connect ``caller`` to the call's media from the next tick on."""
        if call_id in self._channels:
            return
        slot = self._free_slots.pop() if self._free_slots else self._take_slot()
        self._detector.reset(slot)
        self._channels[call_id] = _Channel(call_id, slot, caller)

    def detach(self, call_id: CallId) -> None:
        """Disconnect the call's media; idempotent."""
        channel = self._channels.pop(call_id, None)
        if channel is not None:
            self._free_slots.append(channel.slot)

    def play(
        self, call_id: CallId, op_id: OperationId, audio: Pcm, *, loop: bool
    ) -> None:
        """Play ``audio`` from the next frame on."""
        channel = self._channels.get(call_id)
        if channel is not None:
            channel.job = _Play(op_id, _Source(audio, loop=loop))

    def record(self, call_id: CallId, op_id: OperationId, job: RecordJob) -> None:
        """Play the lead-in (prompt, beep), then record until an end condition."""
        channel = self._channels.get(call_id)
        if channel is None:
            return
        parts = [p for p in (job.prompt,) if p is not None and len(p)]
        if job.play_beep:
            parts.append(self._beep)
        lead_in = _Source(np.concatenate(parts)) if parts else None
        channel.job = _Record(op_id, job, lead_in)

    def stop(self, call_id: CallId, op_id: OperationId) -> None:
        """Stop the job ``op_id`` at once: the next frame is silence."""
        channel = self._channels.get(call_id)
        if channel is not None and channel.job is not None:
            if channel.job.op_id == op_id:
                channel.job = None

    def send_tones(
        self, call_id: CallId, op_id: OperationId, keys: str, gap_ms: int
    ) -> None:
        """Send DTMF ``keys`` mixed over whatever else plays."""
        channel = self._channels.get(call_id)
        if channel is not None:
            audio = key_sequence_pcm(keys, DTMF_TONE_MS, gap_ms)
            tones = _Tones(op_id, _Source(audio))
            if channel.tones is None:
                channel.tones = tones
            else:
                # tones asked for while others go out follow them, in order
                channel.tones_waiting.append(tones)

    def stop_tones(self, call_id: CallId, op_id: OperationId) -> None:
        """Stop sending the tones of ``op_id`` at once."""
        channel = self._channels.get(call_id)
        if channel is None:
            return
        if channel.tones is not None and channel.tones.op_id == op_id:
            channel.tones = _next_tones(channel)
        else:
            channel.tones_waiting = deque(
                t for t in channel.tones_waiting if t.op_id != op_id
            )

    def set_muted(self, call_id: CallId, muted: bool) -> None:
        """Send silence instead of the bot's audio while muted."""
        channel = self._channels.get(call_id)
        if channel is not None:
            channel.muted = muted

    # the tick

    def tick(self, now_ms: int) -> None:
        """Move every call's audio on by one frame.

        One pass over the calls does what must be per call (the next frame
        out, the next frame in); everything that looks at the audio (speech,
        tones) then runs once on the batch of inbound frames.
        """
        if not self._channels:
            return
        frames: list[Pcm] = []
        senders: list[_Channel] = []
        listening: list[tuple[_Channel, _Record]] = []
        hung_up: list[_Channel] = []
        for channel in list(self._channels.values()):
            # the common cases inline (tick cost is per call): nothing to
            # send, or the middle of a prompt; the rest goes the long way
            job = channel.job
            if channel.tones is not None or channel.muted:
                outbound = self._outbound(channel)
            elif job is None:
                outbound = SILENCE
            elif (
                job.__class__ is _Play
                and job.source.pos + FRAME_SAMPLES < job.source.full_end
            ):
                source = job.source
                pos = source.pos
                source.pos = pos + FRAME_SAMPLES
                outbound = source.audio[pos : pos + FRAME_SAMPLES]
            else:
                outbound = self._outbound(channel)
            channel.caller.hear(outbound)
            inbound = channel.caller.next_frame()
            if channel.caller.hung_up:
                hung_up.append(channel)
                continue
            if inbound is not None:
                frames.append(inbound)
                senders.append(channel)
                channel.quiet_frames = 0
            elif channel.quiet_frames < QUIET_FRAMES_FED:
                # the tone detector must see a key released before silence
                frames.append(SILENCE)
                senders.append(channel)
                channel.quiet_frames += 1
            record = channel.job
            if isinstance(record, _Record) and record.lead_in is None:
                record.frames.append(SILENCE if inbound is None else inbound.copy())
                listening.append((channel, record))
        if frames:
            self._analyse(senders, np.stack(frames))
        for channel, record in listening:
            self._check_record_timers(channel, record)
        for channel in hung_up:
            self._emit_hangup(channel)

    def _outbound(self, channel: _Channel) -> Pcm:
        frame = self._job_frame(channel) if channel.job is not None else None
        tones = channel.tones
        if tones is not None:
            tone_frame = tones.source.next_frame()
            if tone_frame is not None:
                frame = tone_frame if frame is None else mix(frame, tone_frame)
            if tones.source.done:
                channel.tones = _next_tones(channel)
                self._emit("tones_sent", channel.call_id, tones.op_id)
        if frame is None or channel.muted:
            return SILENCE
        return frame

    def _job_frame(self, channel: _Channel) -> Pcm | None:
        job = channel.job
        if isinstance(job, _Play):
            frame = job.source.next_frame()
            if job.source.done:
                channel.job = None
                self._emit("play_finished", channel.call_id, job.op_id)
            return frame
        if isinstance(job, _Record) and job.lead_in is not None:
            if job.lead_in.done:
                # listening starts on the frame after the lead-in's last one
                job.lead_in = None
                return None
            return job.lead_in.next_frame()
        return None

    def _analyse(self, senders: list[_Channel], frames: Pcm) -> None:
        speech = is_speech(frames)
        if speech.any():
            for index in np.flatnonzero(speech).tolist():
                record = senders[index].job
                if isinstance(record, _Record) and record.lead_in is None:
                    record.heard_speech = True
                    record.silence_ms = -FRAME_MS  # this frame is speech
        slots = np.fromiter(
            (c.slot for c in senders), dtype=np.intp, count=len(senders)
        )
        by_slot = {c.slot: c for c in senders}
        for slot, key in self._detector.detect(slots, frames):
            channel = by_slot[int(slot)]
            if self._channels.get(channel.call_id) is channel:
                self._on_key(channel, key)

    def _on_key(self, channel: _Channel, key: str) -> None:
        # the tone is reported before what it causes: the end of a recording
        self._emit_tone(channel.call_id, key)
        record = channel.job
        if isinstance(record, _Record) and key in record.job.stop_tones:
            # the key ends the recording whether or not it was still lead-in
            self._end_record(channel, record, RecordOutcome.STOP_TONE)

    def _check_record_timers(self, channel: _Channel, record: _Record) -> None:
        if channel.job is not record:
            return
        record.silence_ms += FRAME_MS
        job = record.job
        if record.recorded_ms >= job.max_duration_ms:
            self._end_record(channel, record, RecordOutcome.MAX_DURATION)
        elif not record.heard_speech and record.silence_ms >= job.initial_silence_ms:
            self._end_record(channel, record, RecordOutcome.INITIAL_SILENCE)
        elif record.heard_speech and record.silence_ms >= job.max_silence_ms:
            self._end_record(channel, record, RecordOutcome.MAX_SILENCE)

    def _end_record(
        self, channel: _Channel, record: _Record, outcome: RecordOutcome
    ) -> None:
        if channel.job is not record:
            return
        channel.job = None
        audio = (
            np.concatenate(record.frames)
            if record.frames
            else np.zeros(0, dtype=np.int16)
        )
        if self.listener is not None:
            self.listener.recording_finished(
                channel.call_id, record.op_id, outcome, audio
            )

    def _emit(self, event: str, call_id: CallId, op_id: OperationId) -> None:
        if self.listener is not None:
            getattr(self.listener, event)(call_id, op_id)

    def _emit_tone(self, call_id: CallId, key: str) -> None:
        if self.listener is not None:
            self.listener.tone_detected(call_id, key)

    def _emit_hangup(self, channel: _Channel) -> None:
        self.detach(channel.call_id)
        if self.listener is not None:
            self.listener.caller_hung_up(channel.call_id)

    def _take_slot(self) -> int:
        slot = self._next_slot
        self._next_slot += 1
        return slot
