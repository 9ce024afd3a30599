"""A prompt host for tests: WAV files over real HTTP, and broken URLs too.

``PromptServer`` serves the prompts a test registers, answers 404 for any
other name, and can stall a path (accept the request, never answer) so a
test can prove that prompt downloads are bounded in time. ``tone_wav``
makes prompts of an exact length without any audio files.
"""

from __future__ import annotations

import io
import threading
import wave
from collections import Counter
from http.server import BaseHTTPRequestHandler
from typing import cast
from urllib.parse import quote, unquote, urlsplit

import numpy as np
import numpy.typing as npt

from graphcomms.testing._httpd import HttpThread

SAMPLE_RATE_HZ = 16_000
"""Graph's prompt format: 16 kHz, mono, 16-bit PCM."""

STALL_LIMIT_S = 120.0
"""A stalled request is released after this long even if the server runs on."""

Samples = npt.NDArray[np.int16]


def tone_pcm(
    ms: int,
    freq_hz: float = 440.0,
    *,
    sample_rate_hz: int = SAMPLE_RATE_HZ,
    amplitude: float = 0.3,
) -> Samples:
    """Return ``ms`` milliseconds of a sine tone as 16-bit samples.

    Args:
        ms: Length in milliseconds.
        freq_hz: Pitch of the tone.
        sample_rate_hz: Samples per second.
        amplitude: Peak level as a fraction of full scale (0..1).
    """
    count = ms * sample_rate_hz // 1000
    t = np.arange(count, dtype=np.float64) / sample_rate_hz
    wave_ = amplitude * 32767 * np.sin(2 * np.pi * freq_hz * t)
    return wave_.astype(np.int16)


def wav_bytes(samples: Samples, *, sample_rate_hz: int = SAMPLE_RATE_HZ) -> bytes:
    """Return mono 16-bit PCM ``samples`` as a WAV file."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate_hz)
        out.writeframes(np.asarray(samples, dtype="<i2").tobytes())
    return buffer.getvalue()


def tone_wav(
    ms: int,
    freq_hz: float = 440.0,
    *,
    sample_rate_hz: int = SAMPLE_RATE_HZ,
    amplitude: float = 0.3,
) -> bytes:
    """Return a WAV file holding ``ms`` milliseconds of a sine tone.

    At the default rate the file is a valid Graph prompt (PCM, mono, 16-bit,
    16 kHz); pass ``sample_rate_hz=8000`` for one that Graph rejects.
    """
    samples = tone_pcm(ms, freq_hz, sample_rate_hz=sample_rate_hz, amplitude=amplitude)
    return wav_bytes(samples, sample_rate_hz=sample_rate_hz)


def read_wav(data: bytes) -> tuple[int, Samples]:
    """Return the sample rate and the samples of a mono 16-bit WAV file."""
    with wave.open(io.BytesIO(data), "rb") as source:
        if source.getnchannels() != 1 or source.getsampwidth() != 2:
            raise ValueError("expected a mono 16-bit WAV file")
        frames = source.readframes(source.getnframes())
        rate = source.getframerate()
    return rate, np.frombuffer(frames, dtype="<i2").astype(np.int16)


class PromptServer:
    """Serve prompt files over HTTP on 127.0.0.1, with a request count per path.

    Names not registered answer 404. Example::

        prompts = PromptServer().start()
        prompts.add("menu.wav", tone_wav(20_000))
        uri = prompts.url("menu.wav")
    """

    def __init__(self) -> None:
        self._http = HttpThread(_PromptHandler, self)
        self._lock = threading.Lock()
        self._files: dict[str, bytes] = {}
        self._stalling: set[str] = set()
        self._errors: dict[str, int] = {}
        self._counts: Counter[str] = Counter()
        self._release = threading.Event()

    def __repr__(self) -> str:
        return f"<PromptServer {self._http!r} files={len(self._files)}>"

    def __enter__(self) -> PromptServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> PromptServer:
        """Start serving; returns ``self``."""
        self._release.clear()
        self._http.start()
        return self

    def stop(self) -> None:
        """Release stalled requests and stop serving; idempotent."""
        self._release.set()
        self._http.stop()

    @property
    def base_url(self) -> str:
        """The server's root URL, without a trailing slash."""
        return f"http://127.0.0.1:{self._http.port}"

    def url(self, name: str) -> str:
        """Return the URL of ``name`` (registered or not: unknown names 404)."""
        return f"{self.base_url}/{quote(name)}"

    def add(
        self,
        name: str,
        audio: bytes | Samples,
        *,
        sample_rate_hz: int = SAMPLE_RATE_HZ,
    ) -> str:
        """Serve ``audio`` as ``name`` and return its URL.

        Args:
            name: The path under the root, e.g. ``"menu.wav"``.
            audio: A whole file (bytes, served as is) or 16-bit samples,
                wrapped in a mono WAV at ``sample_rate_hz``.
            sample_rate_hz: The rate written for samples.
        """
        if isinstance(audio, np.ndarray):
            body = wav_bytes(audio, sample_rate_hz=sample_rate_hz)
        else:
            body = bytes(audio)
        with self._lock:
            self._files[name] = body
        return self.url(name)

    def add_stalling(self, name: str) -> str:
        """Make ``name`` accept requests and never answer; return its URL."""
        with self._lock:
            self._stalling.add(name)
        return self.url(name)

    def add_error(self, name: str, status: int) -> str:
        """Make ``name`` answer ``status`` with an empty body; return its URL."""
        with self._lock:
            self._errors[name] = status
        return self.url(name)

    def requests(self, name: str) -> int:
        """Return how many GET requests ``name`` has had."""
        with self._lock:
            return self._counts[name]

    @property
    def request_counts(self) -> dict[str, int]:
        """How many GET requests each path had, by name."""
        with self._lock:
            return dict(self._counts)

    # the handler's side

    def _answer(self, name: str) -> tuple[int, bytes] | None:
        """Count a request; return the status and body, or None to stall."""
        with self._lock:
            self._counts[name] += 1
            if name in self._stalling:
                return None
            if name in self._errors:
                return self._errors[name], b""
            body = self._files.get(name)
        return (200, body) if body is not None else (404, b"not found")

    def _stall(self) -> None:
        self._release.wait(STALL_LIMIT_S)


class _PromptHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        owner = cast(PromptServer, self.server.owner)  # type: ignore[attr-defined]
        name = unquote(urlsplit(self.path).path.lstrip("/"))
        answer = owner._answer(name)
        if answer is None:
            owner._stall()
            self.close_connection = True
            return
        status, body = answer
        self.send_response(status)
        self.send_header("Content-Type", "audio/wav" if status == 200 else "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Keep test output quiet."""
