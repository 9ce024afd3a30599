"""WAV in and out: strict prompt validation, and recordings to disk.

Graph plays only WAV files holding PCM, mono, 16-bit samples at 16 kHz, which
is also the internal format, so a valid prompt needs no conversion and every
other prompt is refused with a message naming what is wrong. The RIFF chunks
are read here with ``struct`` because the stdlib ``wave`` module rejects
WAVE_FORMAT_EXTENSIBLE headers on Python 3.11.
"""

from __future__ import annotations

import contextlib
import os
import struct
import tempfile
from pathlib import Path

import numpy as np

from graphcomms.types import SAMPLE_RATE_HZ, SAMPLE_WIDTH_BYTES, Pcm

_WAVE_FORMAT_PCM = 0x0001
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE
# the KSDATAFORMAT_SUBTYPE GUID tail shared by every format code's subtype
_SUBTYPE_GUID_TAIL = bytes.fromhex("000000001000800000aa00389b71")
_STREAMED_SIZE = 0xFFFF_FFFF
_MAX_DATA_BYTES = 0xFFFF_FFFF - 36
_REQUIREMENT = "Graph prompts must be WAV PCM, mono, 16-bit, 16 kHz"

_FORMAT_NAMES = {
    0x0002: "Microsoft ADPCM",
    0x0003: "IEEE float",
    0x0006: "A-law",
    0x0007: "mu-law",
    0x0011: "IMA ADPCM",
    0x0031: "GSM 6.10",
    0x0055: "MP3",
}

# the starts of files that are often served where a WAV was expected
_NOT_WAV_MAGIC = (
    (b"ID3", "MP3"),
    (b"\xff\xfb", "MP3"),
    (b"\xff\xf3", "MP3"),
    (b"\xff\xf2", "MP3"),
    (b"OggS", "Ogg"),
    (b"fLaC", "FLAC"),
    (b"RIFX", "big-endian RIFF (RIFX)"),
    (b"RF64", "RF64 (64-bit WAV)"),
    (b"<", "HTML or XML, perhaps an error page"),
    (b"{", "JSON, perhaps an error response"),
)


class WavFormatError(ValueError):
    """The bytes were not a WAV file that Graph accepts as a prompt.

    The message says what is wrong in words, e.g. "prompt is 22050 Hz;
    Graph prompts must be WAV PCM, mono, 16-bit, 16 kHz".
    """


def parse_prompt_wav(data: bytes) -> Pcm:
    """Validate a prompt file as Graph does and return its samples.

    Accepts a RIFF/WAVE file whose format is PCM (tag 1, or EXTENSIBLE with
    the PCM subtype), 1 channel, 16000 Hz and 16 bits. Unknown chunks (LIST,
    fact, ...) are skipped, odd-sized chunks are read with their pad byte, a
    data chunk cut short by the end of the file yields the whole samples that
    are there, and a data size of 0xFFFFFFFF (a streamed file) means "to the
    end of the file".

    Args:
        data: The whole file.

    Returns:
        The samples as a new, writable native ``int16`` array.

    Raises:
        WavFormatError: The file is not a WAV, is not in the prompt format,
            is malformed, or holds no audio.
    """
    _check_container(data)
    fmt: bytes | None = None
    audio: bytes | None = None
    offset = 12
    while offset + 8 <= len(data) and (fmt is None or audio is None):
        chunk_id, size = struct.unpack_from("<4sI", data, offset)
        start = offset + 8
        if chunk_id == b"data":
            audio = _data_payload(data, start, size)
            if size == _STREAMED_SIZE:
                break
        elif chunk_id == b"fmt ":
            if start + size > len(data):
                raise WavFormatError("prompt's fmt chunk is cut short")
            fmt = data[start : start + size]
        offset = start + size + (size & 1)
    if fmt is None:
        raise WavFormatError("prompt has no fmt chunk, so its format is unknown")
    _check_format(fmt)
    if audio is None:
        raise WavFormatError("prompt has no data chunk")
    if not audio:
        raise WavFormatError("prompt holds no audio (its data chunk is empty)")
    return np.frombuffer(audio, dtype="<i2").astype(np.int16)


def wav_bytes(pcm: Pcm) -> bytes:
    """Encode samples as a 16 kHz, mono, 16-bit PCM WAV file.

    Raises:
        ValueError: ``pcm`` is not a one-dimensional ``int16`` array, or is
            too long for a WAV file (over about 37 hours).
    """
    if pcm.ndim != 1 or pcm.dtype != np.int16:
        raise ValueError(
            f"expected a 1-D int16 array, got {pcm.ndim}-D {pcm.dtype}; "
            "clip and convert wider samples first"
        )
    payload = pcm.astype("<i2", copy=False).tobytes()
    if len(payload) > _MAX_DATA_BYTES:
        raise ValueError(f"{len(payload)} bytes of audio do not fit in a WAV file")
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + len(payload),
        b"WAVE",
        b"fmt ",
        16,
        _WAVE_FORMAT_PCM,
        1,
        SAMPLE_RATE_HZ,
        SAMPLE_RATE_HZ * SAMPLE_WIDTH_BYTES,
        SAMPLE_WIDTH_BYTES,
        SAMPLE_WIDTH_BYTES * 8,
        b"data",
        len(payload),
    )
    return header + payload


def write_wav(path: Path, pcm: Pcm) -> None:
    """Write samples to ``path`` as a WAV file, atomically.

    The file is written and synced under a temporary name in the same
    directory, then renamed over ``path``, so a reader sees either the old
    file or the whole new one, never a partial recording.

    Raises:
        ValueError: As for ``wav_bytes``; nothing is written then.
        OSError: The file could not be written; ``path`` is unchanged.
    """
    encoded = wav_bytes(pcm)
    fd, tmp_name = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(encoded)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise


def _check_container(data: bytes) -> None:
    if not data:
        raise WavFormatError("prompt is empty (0 bytes); " + _REQUIREMENT)
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return
    if data[:4] == b"RIFF" and len(data) >= 12:
        kind = data[8:12].decode("latin-1").strip()
        raise WavFormatError(f"prompt is a RIFF {kind!r} file, not WAVE")
    head = data.lstrip()
    for magic, kind in _NOT_WAV_MAGIC:
        if head.startswith(magic):
            raise WavFormatError(f"prompt is not a WAV file (it looks like {kind})")
    raise WavFormatError(f"prompt is not a WAV file (it starts with {data[:8]!r})")


def _data_payload(data: bytes, start: int, size: int) -> bytes:
    end = len(data) if size == _STREAMED_SIZE else min(start + size, len(data))
    payload = data[start:end]
    if len(payload) % SAMPLE_WIDTH_BYTES:
        cut = " (the file is cut short)" if end < start + size else ""
        raise WavFormatError(
            f"prompt's data chunk is {len(payload)} bytes, which is not a whole "
            f"number of 16-bit samples{cut}"
        )
    return payload


def _check_format(fmt: bytes) -> None:
    if len(fmt) < 16:
        raise WavFormatError(f"prompt's fmt chunk is {len(fmt)} bytes; it needs 16")
    tag, channels, rate_hz, _, _, bits = struct.unpack_from("<HHIIHH", fmt)
    valid_bits = bits
    if tag == _WAVE_FORMAT_EXTENSIBLE:
        if len(fmt) < 40:
            raise WavFormatError(
                f"prompt's extensible fmt chunk is {len(fmt)} bytes; it needs 40"
            )
        valid_bits, _, subtype = struct.unpack_from("<HI16s", fmt, 18)
        if subtype[2:] == _SUBTYPE_GUID_TAIL:
            (tag,) = struct.unpack_from("<H", subtype)
        else:
            tag = -1
        valid_bits = valid_bits or bits
    problems = []
    if tag != _WAVE_FORMAT_PCM:
        name = "an unknown subtype" if tag == -1 else _FORMAT_NAMES.get(tag)
        problems.append(f"{name or f'format {tag:#06x}'} rather than PCM")
    if channels != 1:
        problems.append(f"{channels} channels")
    if bits != 16 or valid_bits != 16:
        problems.append(f"{valid_bits}-bit")
    if rate_hz != SAMPLE_RATE_HZ:
        problems.append(f"{rate_hz} Hz")
    if problems:
        raise WavFormatError(f"prompt is {', '.join(problems)}; {_REQUIREMENT}")
