"""Time ToneDetector.detect on one core for batches of calls.

Run: ``python bench/bench_dtmf.py``. Each batch is one 20 ms tick for N calls:
a tenth of them pressing keys, the rest speaking (noise shaped like a voice's
level) or silent, so the state machine does its usual work. BLAS is held to
one thread, since the media plane's budget is one core per so many calls.
"""

import os

# set before numpy loads its BLAS, which reads these once
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"

import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402

from graphcomms.media.dtmf import KEYS, ToneDetector, key_sequence_pcm  # noqa: E402
from graphcomms.types import FRAME_MS, FRAME_SAMPLES  # noqa: E402

BATCH_SIZES = (100, 1000, 2000)
RUNS = 200
WARMUP_RUNS = 20
SEED = 7


def _audio(calls: int, ticks: int) -> npt.NDArray[np.int16]:
    """Return (ticks, calls, 320) frames: 10 % keys, 60 % noise, 30 % silence."""
    rng = np.random.default_rng(SEED)
    audio = np.zeros((calls, ticks * FRAME_SAMPLES), dtype=np.int16)
    keys = key_sequence_pcm(KEYS * 4, tone_ms=60, gap_ms=60)
    for call in range(calls):
        kind = call % 10
        if kind == 0:
            start = int(rng.integers(0, FRAME_SAMPLES))
            length = min(len(keys), audio.shape[1] - start)
            audio[call, start : start + length] = keys[:length]
        elif kind < 7:
            noise = rng.normal(0.0, 3000.0, audio.shape[1])
            audio[call] = np.clip(noise, -32768, 32767).astype(np.int16)
    return audio.reshape(calls, ticks, FRAME_SAMPLES).transpose(1, 0, 2).copy()


def _time_batches(calls: int) -> tuple[float, float, int]:
    """Return median and p99 of detect() in ms, and how many keys were found."""
    ticks = WARMUP_RUNS + RUNS
    audio = _audio(calls, ticks)
    detector = ToneDetector(capacity=calls)
    slots = np.arange(calls, dtype=np.intp)
    took_ms: list[float] = []
    found = 0
    for tick in range(ticks):
        started = time.perf_counter()
        found += len(detector.detect(slots, audio[tick]))
        if tick >= WARMUP_RUNS:
            took_ms.append((time.perf_counter() - started) * 1000.0)
    took_ms.sort()
    p99 = took_ms[min(len(took_ms) - 1, int(0.99 * len(took_ms)))]
    return statistics.median(took_ms), p99, found


def main() -> None:
    """Print the timing table."""
    print(f"ToneDetector.detect, {RUNS} ticks per row, one BLAS thread")
    print(f"{'calls':>6} {'median ms':>10} {'p99 ms':>8} {'% of tick':>10} {'keys':>6}")
    for calls in BATCH_SIZES:
        median_ms, p99_ms, found = _time_batches(calls)
        share = 100.0 * median_ms / FRAME_MS
        print(f"{calls:>6} {median_ms:>10.3f} {p99_ms:>8.3f} {share:>9.1f}% {found:>6}")


if __name__ == "__main__":
    main()
