"""Audio levels: frame loudness, an energy speech detector, the beep and mixing.

Levels are in dB relative to full scale (dBFS). Two readings are used, and
each function says which:

- *RMS level* (``frame_rms_dbfs``): the root mean square of the samples
  against 32768. A full-scale sine reads -3 dBFS, white noise reads its RMS.
- *Sine level* (``level_dbfs`` of the generators): the peak of each sine
  against full scale, so a ``0.0`` sine just fits and its RMS level is -3 dBFS.

Every function works on whole batches: ``Frames`` of shape (calls, samples).
"""

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from graphcomms.types import SAMPLE_RATE_HZ, Frames, Pcm, ms_to_samples

FULL_SCALE = 32768.0
FLOOR_DBFS = -120.0
"""What ``frame_rms_dbfs`` reports for exact silence (any nonzero frame reads above)."""

SPEECH_THRESHOLD_DBFS = -40.0
BEEP_RAMP_MS = 5
INT16_MIN = -32768
INT16_MAX = 32767


def frame_rms_dbfs(frames: Frames) -> npt.NDArray[np.float32]:
    """Return the RMS level of each frame in dBFS, ``FLOOR_DBFS`` for silence.

    Args:
        frames: int16 samples, shape (calls, samples).

    Returns:
        float32 array of shape (calls,).
    """
    samples = frames.astype(np.float32)
    # einsum squares and sums in one pass, without a (calls, samples) temporary
    energy = np.einsum("ij,ij->i", samples, samples)
    mean_square = energy / np.float32(max(frames.shape[-1], 1) * FULL_SCALE**2)
    floor = np.float32(10.0 ** (FLOOR_DBFS / 10.0))
    level: npt.NDArray[np.float32] = np.log10(np.maximum(mean_square, floor))
    level *= np.float32(10.0)
    return level


def is_speech(
    frames: Frames, threshold_dbfs: float = SPEECH_THRESHOLD_DBFS
) -> npt.NDArray[np.bool_]:
    """Tell, per frame, whether it is loud enough to be someone speaking.

    A plain energy detector: a frame is speech when its RMS level is above
    ``threshold_dbfs``. The default of -40 dBFS sits between the line noise of
    real callers (about -60 to -50 dBFS) and conversational speech (about -30
    to -15 dBFS RMS over a voiced frame); a simulated caller's silence is
    exact zeros and reads ``FLOOR_DBFS``. Quiet consonants and pauses inside
    words fall below it, so callers that time silence should allow a few
    frames of hangover rather than end a recording on one quiet frame.

    Args:
        frames: int16 samples, shape (calls, samples).
        threshold_dbfs: RMS level a frame must exceed to count as speech.

    Returns:
        bool array of shape (calls,).
    """
    return frame_rms_dbfs(frames) > np.float32(threshold_dbfs)


def sines_pcm(
    freqs_hz: Sequence[float],
    duration_ms: int,
    level_dbfs: float,
    ramp_ms: float,
) -> Pcm:
    """Synthesise the sum of sines, each at ``level_dbfs``, with soft edges.

    The start and end fade over ``ramp_ms`` with a raised cosine, so the
    sound starts and stops without a click (a hard edge splatters energy over
    the whole band). Ramps are shortened to a quarter of the sound each when
    the sound is too short for them.

    Args:
        freqs_hz: frequencies of the sines.
        duration_ms: length of the sound, ramps included.
        level_dbfs: peak level of each sine (sine level, see the module).
        ramp_ms: length of each fade.

    Returns:
        The samples, clipped to int16 if the sines add up beyond full scale.
    """
    count = ms_to_samples(duration_ms)
    t_s = np.arange(count, dtype=np.float64) / SAMPLE_RATE_HZ
    amplitude = FULL_SCALE * 10.0 ** (level_dbfs / 20.0)
    signal = np.zeros(count, dtype=np.float64)
    for freq_hz in freqs_hz:
        signal += amplitude * np.sin(2.0 * np.pi * freq_hz * t_s)

    ramp = min(round(ramp_ms * SAMPLE_RATE_HZ / 1000), count // 4)
    if ramp > 0:
        # half a cosine period rising from 0 to 1, sampled at sample centres
        rise = 0.5 - 0.5 * np.cos(np.pi * (np.arange(ramp) + 0.5) / ramp)
        signal[:ramp] *= rise
        signal[count - ramp :] *= rise[::-1]
    return to_pcm(signal)


def to_pcm(signal: npt.NDArray[np.floating]) -> Pcm:
    """Round float samples (in int16 units) to int16, clipping at full scale."""
    pcm: Pcm = np.clip(np.rint(signal), INT16_MIN, INT16_MAX).astype(np.int16)
    return pcm


def beep_pcm(
    duration_ms: int = 300, freq_hz: int = 1000, level_dbfs: float = -12.0
) -> Pcm:
    """Return the beep played before a recording starts: a soft-edged sine.

    Args:
        duration_ms: length of the beep, fades included.
        freq_hz: pitch of the beep.
        level_dbfs: peak level of the sine (sine level, see the module).
    """
    return sines_pcm([freq_hz], duration_ms, level_dbfs, BEEP_RAMP_MS)


def mix(a: Pcm, b: Pcm) -> Pcm:
    """Add two sounds of the same length, clipping the sum to int16.

    The sum is formed in int32 so that loud parts clip at full scale instead
    of wrapping around to the opposite sign.

    Raises:
        ValueError: the two sounds differ in shape.
    """
    if a.shape != b.shape:
        raise ValueError(f"cannot mix sounds of shapes {a.shape} and {b.shape}")
    total = a.astype(np.int32) + b.astype(np.int32)
    return np.clip(total, INT16_MIN, INT16_MAX).astype(np.int16)
