"""A scripted caller: speaks, presses keys, stays silent and hangs up on cue.

Its actions run one after another on the media clock, one frame per tick, so
"speak 4 s then press #" lands at exactly 4 s of clock time. Key presses are
real DTMF audio, found by the same in-band detector as a real caller's keys.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Literal

import numpy as np

from graphcomms.media.dtmf import key_sequence_pcm
from graphcomms.media.wav import parse_prompt_wav
from graphcomms.types import FRAME_MS, FRAME_SAMPLES, SILENCE, Pcm, ms_to_samples

logger = logging.getLogger(__name__)

ActionKind = Literal["dtmf", "speak", "silence", "hangup"]

HEARD_LIMIT_FRAMES = 30 * 60 * 1000 // FRAME_MS
"""What the caller heard is kept for the last 30 minutes of the call at most."""


@dataclass(frozen=True, slots=True)
class CallerAction:
    """One step of a caller's script."""

    kind: ActionKind
    keys: str = ""
    """For ``dtmf``: the keys, as characters 0-9 * # A-D."""
    ms: int = 0
    """For ``silence`` and for ``speak`` with the built-in speech sample."""
    audio: Pcm | None = None
    """For ``speak``: the caller's own audio (internal format)."""
    tone_ms: int = 100
    gap_ms: int = 100


@cache
def speech_sample() -> Pcm:
    """Return the built-in speech sample (espeak-ng English, 16 kHz)."""
    data = resources.files("graphcomms.media").joinpath("sounds/speech-sample.wav")
    return parse_prompt_wav(data.read_bytes())


def speech_for(ms: int) -> Pcm:
    """Return ``ms`` of speech: the sample, repeated and cut to length."""
    sample = speech_sample()
    wanted = ms_to_samples(ms)
    reps = -(-wanted // len(sample))
    return np.tile(sample, reps)[:wanted]


def _pressed(action: CallerAction) -> Pcm:
    """Return the audio of pressing keys: tones with gaps, and a gap after.

    The closing gap keeps two presses of the same key, given as two actions,
    two separate tones.
    """
    tones = key_sequence_pcm(action.keys, action.tone_ms, action.gap_ms)
    gap = np.zeros(ms_to_samples(action.gap_ms), dtype=np.int16)
    return np.concatenate((tones, gap))


class SimulatedCaller:
    """A caller that runs a script of actions frame by frame."""

    def __init__(self, script: list[CallerAction] | None = None) -> None:
        self._actions: deque[CallerAction] = deque(script or ())
        self._audio: Pcm | None = None
        self._pos = 0
        self._left = 0
        self._silent_frames = 0
        self.hung_up = False
        # what the caller heard, as frames and runs of silent frames (counts)
        self._heard: deque[Pcm | int] = deque()
        self._heard_frames = 0

    def __repr__(self) -> str:
        state = "hung up" if self.hung_up else f"{len(self._actions)} actions queued"
        return f"<SimulatedCaller {state}>"

    def enqueue(self, action: CallerAction) -> None:
        """Add ``action`` after the ones already scripted."""
        self._actions.append(action)

    @property
    def idle(self) -> bool:
        """Return whether the script has nothing left to do."""
        return not self._actions and self._audio is None and not self._silent_frames

    def next_frame(self) -> Pcm | None:
        """Return this tick's audio from the caller, or None for silence."""
        audio, pos = self._audio, self._pos
        if (
            audio is not None
            and self._left > FRAME_SAMPLES
            and pos + FRAME_SAMPLES <= len(audio)
        ):
            # the common case first: the middle of speech or a key press
            self._pos = pos + FRAME_SAMPLES
            self._left -= FRAME_SAMPLES
            return audio[pos : pos + FRAME_SAMPLES]
        if self.hung_up:
            return None
        if self._audio is None and not self._silent_frames:
            self._begin_next_action()
        if self._silent_frames:
            self._silent_frames -= 1
            return None
        if self._audio is None:
            return None
        audio, pos = self._audio, self._pos
        take = min(FRAME_SAMPLES, self._left)
        if pos + take <= len(audio):
            frame = audio[pos : pos + take]
            self._pos = pos + take
        else:
            # speech repeats its sample: go round without copying it up front
            rest = take - (len(audio) - pos)
            frame = np.concatenate((audio[pos:], audio[:rest]))
            self._pos = rest
        self._left -= take
        if self._left <= 0:
            self._audio = None
        if len(frame) < FRAME_SAMPLES:
            frame = np.pad(frame, (0, FRAME_SAMPLES - len(frame)))
        return frame

    def hear(self, frame: Pcm) -> None:
        """Keep the bot's audio for this tick.

        Frames are kept by reference (the media plane never writes to a frame
        it handed out) and silence as a count, so a quiet call costs little.
        """
        heard = self._heard
        if frame is SILENCE:
            if heard and isinstance(heard[-1], int):
                heard[-1] += 1
            else:
                heard.append(1)
        else:
            heard.append(frame)
        self._heard_frames += 1
        if self._heard_frames > HEARD_LIMIT_FRAMES:
            self._forget_oldest()

    def heard(self) -> Pcm:
        """Return what the caller heard, in order (the last 30 minutes at most)."""
        if not self._heard:
            return np.zeros(0, dtype=np.int16)
        parts = [
            np.zeros(part * FRAME_SAMPLES, dtype=np.int16)
            if isinstance(part, int)
            else part
            for part in self._heard
        ]
        return np.concatenate(parts)

    def _forget_oldest(self) -> None:
        oldest = self._heard[0]
        if isinstance(oldest, int) and oldest > 1:
            self._heard[0] = oldest - 1
        else:
            self._heard.popleft()
        self._heard_frames -= 1

    def _begin_next_action(self) -> None:
        while self._actions:
            action = self._actions.popleft()
            if action.kind == "hangup":
                self.hung_up = True
                return
            if action.kind == "silence":
                self._silent_frames = -(-ms_to_samples(action.ms) // FRAME_SAMPLES)
            elif action.kind == "dtmf":
                self._play(_pressed(action))
            elif action.audio is not None:
                self._play(action.audio)
            else:
                self._play(speech_sample(), samples=ms_to_samples(action.ms))
            if self._audio is not None or self._silent_frames:
                return

    def _play(self, audio: Pcm, *, samples: int | None = None) -> None:
        """Send ``audio`` from its start: ``samples`` of it, going round if longer."""
        length = len(audio) if samples is None else samples
        if len(audio) and length > 0:
            self._audio = audio
            self._pos = 0
            self._left = length
