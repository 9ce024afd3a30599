"""Prompt WAV validation and recording output."""

from __future__ import annotations

import io
import struct
import wave
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from graphcomms.media.wav import (
    WavFormatError,
    parse_prompt_wav,
    wav_bytes,
    write_wav,
)
from graphcomms.types import Pcm

PCM_GUID_TAIL = bytes.fromhex("000000001000800000aa00389b71")


def ramp(samples: int = 320) -> Pcm:
    return (np.arange(samples, dtype=np.int32) * 97 % 65536 - 32768).astype(np.int16)


def chunk(chunk_id: bytes, payload: bytes, *, declared: int | None = None) -> bytes:
    size = len(payload) if declared is None else declared
    return struct.pack("<4sI", chunk_id, size) + payload + b"\0" * (len(payload) & 1)


def fmt_pcm(
    *, tag: int = 1, channels: int = 1, rate_hz: int = 16_000, bits: int = 16
) -> bytes:
    block = channels * bits // 8
    return struct.pack("<HHIIHH", tag, channels, rate_hz, rate_hz * block, block, bits)


def fmt_extensible(*, subformat: int = 1, valid_bits: int = 16) -> bytes:
    guid = struct.pack("<H", subformat) + PCM_GUID_TAIL
    return fmt_pcm(tag=0xFFFE) + struct.pack("<HHI16s", 22, valid_bits, 4, guid)


def riff(*chunks: bytes) -> bytes:
    body = b"WAVE" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def test_wav_bytes_roundtrip_returns_same_samples() -> None:
    pcm = ramp(16_000)
    parsed = parse_prompt_wav(wav_bytes(pcm))
    assert parsed.dtype == np.int16
    np.testing.assert_array_equal(parsed, pcm)


def test_wav_bytes_header_is_read_by_stdlib_wave_as_16k_mono_s16() -> None:
    """An independent reader agrees with the header we write."""
    pcm = ramp(480)
    with wave.open(io.BytesIO(wav_bytes(pcm))) as reader:
        assert reader.getnchannels() == 1
        assert reader.getframerate() == 16_000
        assert reader.getsampwidth() == 2
        assert reader.getnframes() == 480
        frames = reader.readframes(480)
    np.testing.assert_array_equal(np.frombuffer(frames, "<i2"), pcm)


def test_parse_prompt_wav_little_endian_samples_decode_exactly() -> None:
    data = riff(chunk(b"fmt ", fmt_pcm()), chunk(b"data", b"\x02\x01\xff\xff\x00\x80"))
    assert parse_prompt_wav(data).tolist() == [0x0102, -1, -32768]


def test_parse_prompt_wav_result_is_writable_copy() -> None:
    data = wav_bytes(ramp())
    parsed = parse_prompt_wav(data)
    parsed[0] = 1
    assert parse_prompt_wav(data)[0] == ramp()[0]


def test_parse_prompt_wav_22050_hz_is_rejected_with_rate_in_message() -> None:
    data = riff(chunk(b"fmt ", fmt_pcm(rate_hz=22_050)), chunk(b"data", b"\0" * 64))
    with pytest.raises(WavFormatError, match=r"prompt is 22050 Hz; .*16 kHz"):
        parse_prompt_wav(data)


def test_parse_prompt_wav_stereo_is_rejected_naming_channels() -> None:
    data = riff(chunk(b"fmt ", fmt_pcm(channels=2)), chunk(b"data", b"\0" * 64))
    with pytest.raises(WavFormatError, match=r"2 channels; .*mono"):
        parse_prompt_wav(data)


def test_parse_prompt_wav_8_bit_is_rejected_naming_width() -> None:
    data = riff(chunk(b"fmt ", fmt_pcm(bits=8)), chunk(b"data", b"\x80" * 64))
    with pytest.raises(WavFormatError, match=r"8-bit; .*16-bit"):
        parse_prompt_wav(data)


def test_parse_prompt_wav_several_faults_are_all_named() -> None:
    data = riff(
        chunk(b"fmt ", fmt_pcm(channels=2, rate_hz=44_100, bits=24)),
        chunk(b"data", b"\0" * 60),
    )
    with pytest.raises(WavFormatError) as caught:
        parse_prompt_wav(data)
    message = str(caught.value)
    assert "2 channels" in message
    assert "24-bit" in message
    assert "44100 Hz" in message


@pytest.mark.parametrize(
    ("tag", "name"),
    [(3, "IEEE float"), (7, "mu-law"), (6, "A-law"), (0x55, "MP3"), (0x1234, "0x1234")],
)
def test_parse_prompt_wav_non_pcm_format_is_rejected_by_name(
    tag: int, name: str
) -> None:
    data = riff(chunk(b"fmt ", fmt_pcm(tag=tag)), chunk(b"data", b"\0" * 64))
    with pytest.raises(WavFormatError, match=f"{name} rather than PCM"):
        parse_prompt_wav(data)


def test_parse_prompt_wav_extensible_pcm_is_accepted() -> None:
    data = riff(chunk(b"fmt ", fmt_extensible()), chunk(b"data", b"\x01\x00\x02\x00"))
    assert parse_prompt_wav(data).tolist() == [1, 2]


def test_parse_prompt_wav_extensible_float_is_rejected() -> None:
    data = riff(chunk(b"fmt ", fmt_extensible(subformat=3)), chunk(b"data", b"\0" * 8))
    with pytest.raises(WavFormatError, match="IEEE float rather than PCM"):
        parse_prompt_wav(data)


def test_parse_prompt_wav_extensible_12_valid_bits_is_rejected() -> None:
    data = riff(
        chunk(b"fmt ", fmt_extensible(valid_bits=12)), chunk(b"data", b"\0" * 8)
    )
    with pytest.raises(WavFormatError, match="12-bit"):
        parse_prompt_wav(data)


def test_parse_prompt_wav_extensible_short_fmt_is_rejected() -> None:
    data = riff(chunk(b"fmt ", fmt_pcm(tag=0xFFFE)), chunk(b"data", b"\0" * 8))
    with pytest.raises(WavFormatError, match="needs 40"):
        parse_prompt_wav(data)


def test_parse_prompt_wav_unknown_and_odd_chunks_are_skipped() -> None:
    """LIST/fact chunks, odd sizes and their pad bytes do not disturb parsing."""
    data = riff(
        chunk(b"JUNK", b"\0" * 3),
        chunk(b"fmt ", fmt_pcm() + b"\0\0"),
        chunk(b"LIST", b"INFOISFT\x05\0\0\0abcd\0"),
        chunk(b"fact", struct.pack("<I", 2)),
        chunk(b"data", b"\x01\x00\x02\x00"),
        chunk(b"id3 ", b"\0" * 7),
    )
    assert parse_prompt_wav(data).tolist() == [1, 2]


def test_parse_prompt_wav_data_before_fmt_is_accepted() -> None:
    data = riff(chunk(b"data", b"\x05\x00"), chunk(b"fmt ", fmt_pcm()))
    assert parse_prompt_wav(data).tolist() == [5]


def test_parse_prompt_wav_truncated_aligned_data_uses_what_is_there() -> None:
    data = riff(chunk(b"fmt ", fmt_pcm()), chunk(b"data", b"\x01\x00\x02\x00"))
    cut = data[:-2]  # the header still declares 4 bytes
    assert parse_prompt_wav(cut).tolist() == [1]


def test_parse_prompt_wav_truncated_mid_sample_is_rejected() -> None:
    data = riff(chunk(b"fmt ", fmt_pcm()), chunk(b"data", b"\x01\x00\x02\x00"))
    with pytest.raises(WavFormatError, match="cut short"):
        parse_prompt_wav(data[:-1])


def test_parse_prompt_wav_streamed_data_size_reads_to_end() -> None:
    payload = ramp(100).tobytes()
    data = riff(chunk(b"fmt ", fmt_pcm()), chunk(b"data", payload, declared=0xFFFFFFFF))
    np.testing.assert_array_equal(parse_prompt_wav(data), ramp(100))


def test_parse_prompt_wav_empty_data_is_rejected() -> None:
    data = riff(chunk(b"fmt ", fmt_pcm()), chunk(b"data", b""))
    with pytest.raises(WavFormatError, match="no audio"):
        parse_prompt_wav(data)


def test_parse_prompt_wav_missing_data_chunk_is_rejected() -> None:
    with pytest.raises(WavFormatError, match="no data chunk"):
        parse_prompt_wav(riff(chunk(b"fmt ", fmt_pcm())))


def test_parse_prompt_wav_missing_fmt_chunk_is_rejected() -> None:
    with pytest.raises(WavFormatError, match="no fmt chunk"):
        parse_prompt_wav(riff(chunk(b"data", b"\0\0")))


def test_parse_prompt_wav_short_fmt_chunk_is_rejected() -> None:
    data = riff(chunk(b"fmt ", fmt_pcm()[:14]), chunk(b"data", b"\0\0"))
    with pytest.raises(WavFormatError, match="needs 16"):
        parse_prompt_wav(data)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "empty"),
        (b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\0" * 100, "looks like MP3"),
        (b"\xff\xfb\x90\x64" + b"\0" * 100, "looks like MP3"),
        (b"\n<!DOCTYPE html><html><body>404</body></html>", "HTML"),
        (b'{"error": {"code": "AuthenticationFailed"}}', "JSON"),
        (b"OggS\0\2" + b"\0" * 40, "Ogg"),
        (b"RIFF\x10\0\0\0AVI LIST\0\0\0\0", "RIFF 'AVI' file"),
        (b"RIFX\x10\0\0\0WAVE", "RIFX"),
        (b"\x00\x01\x02\x03junkjunk", "starts with"),
        (b"RIFF", "starts with"),
    ],
)
def test_parse_prompt_wav_not_a_wav_is_rejected_saying_what_it_is(
    data: bytes, expected: str
) -> None:
    with pytest.raises(WavFormatError, match=expected):
        parse_prompt_wav(data)


def test_wav_format_error_is_a_value_error() -> None:
    assert issubclass(WavFormatError, ValueError)


@given(st.binary(max_size=200))
def test_parse_prompt_wav_arbitrary_bytes_raise_only_wav_format_error(
    data: bytes,
) -> None:
    """No input makes the parser fail with anything but WavFormatError."""
    try:
        parse_prompt_wav(data)
    except WavFormatError:
        pass


@given(st.binary(max_size=120))
def test_parse_prompt_wav_arbitrary_chunks_after_header_raise_only_wav_format_error(
    tail: bytes,
) -> None:
    """Garbage behind a valid RIFF/WAVE/fmt header never crashes the parser."""
    try:
        parse_prompt_wav(riff(chunk(b"fmt ", fmt_pcm())) + tail)
    except WavFormatError:
        pass


@given(arrays(np.int16, st.integers(1, 2000)))
def test_wav_bytes_any_samples_roundtrip_exactly(pcm: Pcm) -> None:
    np.testing.assert_array_equal(parse_prompt_wav(wav_bytes(pcm)), pcm)


def test_wav_bytes_two_dimensional_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="1-D int16"):
        wav_bytes(np.zeros((2, 320), dtype=np.int16))


def test_wav_bytes_wide_samples_are_rejected() -> None:
    with pytest.raises(ValueError, match="int16"):
        wav_bytes(np.zeros(320, dtype=np.int32))


def test_write_wav_file_holds_the_samples(tmp_path: Path) -> None:
    path = tmp_path / "rec.wav"
    write_wav(path, ramp(640))
    np.testing.assert_array_equal(parse_prompt_wav(path.read_bytes()), ramp(640))
    assert [p.name for p in tmp_path.iterdir()] == ["rec.wav"]


def test_write_wav_existing_file_is_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "rec.wav"
    write_wav(path, ramp(640))
    write_wav(path, ramp(10))
    np.testing.assert_array_equal(parse_prompt_wav(path.read_bytes()), ramp(10))
    assert [p.name for p in tmp_path.iterdir()] == ["rec.wav"]


def test_write_wav_failure_leaves_old_file_and_no_temp(tmp_path: Path) -> None:
    """A write that fails midway leaves the previous recording untouched."""
    path = tmp_path / "rec.wav"
    write_wav(path, ramp(640))
    before = path.read_bytes()
    (tmp_path / "sub").mkdir()
    with pytest.raises(OSError):
        write_wav(tmp_path / "sub", ramp(10))  # rename onto a directory fails
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec.wav", "sub"]


def test_write_wav_invalid_samples_write_nothing(tmp_path: Path) -> None:
    path = tmp_path / "rec.wav"
    with pytest.raises(ValueError):
        write_wav(path, np.zeros((2, 2), dtype=np.int16))
    assert list(tmp_path.iterdir()) == []
