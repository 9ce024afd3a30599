"""The project's vocabulary: ids, units and the one audio format.

Audio inside graphcomms is always 16 kHz, mono, signed 16-bit PCM, carried in
20 ms frames of 320 samples (numpy ``int16`` arrays). Conversions happen at
the edges (prompt decoding, caller transports); nothing in between resamples.
"""

from typing import NewType

import numpy as np
import numpy.typing as npt

CallId = NewType("CallId", str)
OperationId = NewType("OperationId", str)

SAMPLE_RATE_HZ = 16_000
FRAME_MS = 20
FRAME_SAMPLES = SAMPLE_RATE_HZ * FRAME_MS // 1000  # 320
SAMPLE_WIDTH_BYTES = 2

Pcm = npt.NDArray[np.int16]
"""A run of samples in the internal format (one dimension)."""

Frames = npt.NDArray[np.int16]
"""A batch of frames, shape (calls, FRAME_SAMPLES)."""


def ms_to_samples(ms: int) -> int:
    """Return how many samples ``ms`` milliseconds hold at the internal rate."""
    return ms * SAMPLE_RATE_HZ // 1000


def samples_to_ms(samples: int) -> int:
    """Return the duration of ``samples`` samples, rounded down to a millisecond."""
    return samples * 1000 // SAMPLE_RATE_HZ


SILENCE: Pcm = np.zeros(FRAME_SAMPLES, dtype=np.int16)
"""One frame of silence, shared and read-only: compare with ``is``."""
SILENCE.flags.writeable = False
