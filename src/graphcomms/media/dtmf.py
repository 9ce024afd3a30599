"""In-band DTMF: key tones to send, and a detector for the keys callers press.

Detection works on every call at once. Each 20 ms frame is cut into two
10 ms halves, and all halves of the batch are projected onto the eight DTMF
frequencies in one matrix multiply: (2 calls, 160) float32 samples against
a cached (160, 16) basis of cosines and sines. Per call this gives each
frequency's complex amplitude in each half, from which come:

- *Which key*, from the whole frame (the halves' amplitudes added in phase:
  50 Hz resolution, enough to tell neighbouring rows apart). A frame is a
  key when it is loud enough, the strongest row and column sines carry most
  of its energy, each stands well above the runner-up of its group, their
  levels are close enough (twist), and each is on pitch: a sine off its
  nominal frequency turns its phase from one half to the next.
- *How long*, from the halves: a steady tone's amplitude in a half is
  proportional to how much of the half it covers. Summing these coverages
  over a tone measures its length to about a millisecond, whatever the frame
  alignment. Counting frames cannot: a 40 ms tone may fill one frame and
  parts of two more, a 30 ms tone three quarters of two frames.

Per call slot, a small state machine (idle, in a tone, in a gap after a
press) is kept in numpy arrays and stepped for all busy slots together, half
by half; Python only touches the slots that report a key. A press is
reported once, as soon as its tone has measured ``TONE_ACCEPT_MS``; after a
press, the same key counts again only once the gap has measured
``GAP_ACCEPT_MS``, while another key counts at once. ITU-T Q.24 asks that
40 ms tones and pauses be recognised. Measured lengths count each fade as
half its length, so with 2 ms fades a tone is accepted from about 35 ms and
always at 40 ms, a 30 ms tone never; gaps split presses from about 32 ms and
always at 40 ms.
"""

from typing import Final, TypeVar

import numpy as np
import numpy.typing as npt

from graphcomms.media.levels import FULL_SCALE, sines_pcm
from graphcomms.types import FRAME_SAMPLES, SAMPLE_RATE_HZ, Frames, Pcm, ms_to_samples

KEYS: Final = "123A456B789C*0#D"
"""The keypad, row by row: key ``KEYS[4 * row + column]``."""

ROW_FREQS_HZ: Final = (697, 770, 852, 941)
COLUMN_FREQS_HZ: Final = (1209, 1336, 1477, 1633)

TONE_NAMES: Final[dict[str, str]] = {
    **{digit: f"tone{digit}" for digit in "0123456789"},
    "*": "star",
    "#": "pound",
    **{letter: letter.lower() for letter in "ABCD"},
}
"""Graph's ``tone`` value for each key."""

KEY_FOR_TONE: Final[dict[str, str]] = {tone: key for key, tone in TONE_NAMES.items()}
"""The key for each of Graph's ``tone`` values that has one."""

TONE_RAMP_MS: Final = 2
TONE_ACCEPT_MS: Final = 32
GAP_ACCEPT_MS: Final = 32

# frame decision
GATE_DBFS: Final = -45.0  # RMS level below which a frame is never a key
MIN_KEY_ENERGY_SHARE: Final = 0.7  # of the frame's energy, row and column together
MIN_RUNNER_UP_DB: Final = 8.0  # strongest row (column) over the next row (column)
MAX_TWIST_DB: Final = 10.0  # row against column level, either way
MAX_PITCH_ERROR: Final = 0.025  # Q.24: accept 1.5 %, reject 3.5 %

# a half still holds the tone while both its frequencies keep half their peak
MIN_COVERAGE: Final = 0.5

_HALF_SAMPLES: Final = FRAME_SAMPLES // 2
_HALF_MS: Final = 1000 * _HALF_SAMPLES / SAMPLE_RATE_HZ
_TONE_ACCEPT_HALVES: Final = TONE_ACCEPT_MS / _HALF_MS
_GAP_ACCEPT_HALVES: Final = GAP_ACCEPT_MS / _HALF_MS
_FREQS_HZ: Final = np.array(ROW_FREQS_HZ + COLUMN_FREQS_HZ, dtype=np.float32)
_FREQS: Final = len(_FREQS_HZ)

_Scalar = TypeVar("_Scalar", bound=np.generic)

_IDLE: Final = 0
_TONE: Final = 1
_GAP: Final = 2


def tone_pcm(key: str, duration_ms: int = 100, level_dbfs: float = -10.0) -> Pcm:
    """Return the tone of one key: its row and column sines, soft-edged.

    Args:
        key: one of ``KEYS``.
        duration_ms: length of the tone, its 2 ms fades included.
        level_dbfs: peak level of each of the two sines against full scale.

    Raises:
        ValueError: ``key`` is not a DTMF key.
    """
    row, column = divmod(_key_index(key), 4)
    freqs_hz = (ROW_FREQS_HZ[row], COLUMN_FREQS_HZ[column])
    return sines_pcm(freqs_hz, duration_ms, level_dbfs, TONE_RAMP_MS)


def key_sequence_pcm(keys: str, tone_ms: int = 100, gap_ms: int = 100) -> Pcm:
    """Return the tones of ``keys`` in order, with ``gap_ms`` of silence between.

    The gap goes between tones only: the sound starts with the first tone and
    ends with the last, so it lasts ``n * tone_ms + (n - 1) * gap_ms``.

    Raises:
        ValueError: one of ``keys`` is not a DTMF key.
    """
    gap = np.zeros(ms_to_samples(gap_ms), dtype=np.int16)
    parts: list[Pcm] = []
    for position, key in enumerate(keys):
        if position:
            parts.append(gap)
        parts.append(tone_pcm(key, tone_ms))
    if not parts:
        return np.zeros(0, dtype=np.int16)
    return np.concatenate(parts)


def _key_index(key: str) -> int:
    index = KEYS.find(key) if len(key) == 1 else -1
    if index < 0:
        raise ValueError(f"{key!r} is not a DTMF key; keys are {KEYS}")
    return index


# the phase each frequency gains over one half frame
_HALF_TURN_RAD: Final = (
    2.0 * np.pi * _FREQS_HZ.astype(np.float64) * _HALF_SAMPLES / SAMPLE_RATE_HZ
)


def _half_basis() -> npt.NDArray[np.float32]:
    """Build the (160, 16) basis: cosines, then negated sines, at each frequency.

    A half frame times the basis gives each frequency's complex amplitude
    (real parts, then imaginary parts), with phase measured from the half's
    first sample.
    """
    phase = np.outer(np.arange(_HALF_SAMPLES), _HALF_TURN_RAD / _HALF_SAMPLES)
    basis = np.concatenate((np.cos(phase), -np.sin(phase)), axis=1)
    return basis.astype(np.float32)


_BASIS: Final = _half_basis()
_GROUP_START: Final = np.array([[0], [len(ROW_FREQS_HZ)]])  # rows, then columns
_TURN_COS: Final = np.cos(_HALF_TURN_RAD).astype(np.float32)[:, None]
_TURN_SIN: Final = np.sin(_HALF_TURN_RAD).astype(np.float32)[:, None]
# how far the phase may drift from half to half for a sine on pitch
_PITCH_COS: Final = np.cos(MAX_PITCH_ERROR * _HALF_TURN_RAD).astype(np.float32)


def _power_ratio(db: float) -> np.float32:
    return np.float32(10.0 ** (db / 10.0))


class ToneDetector:
    """Find DTMF key presses in the inbound audio of many calls at once.

    Each call has a slot, a small integer chosen by the caller of
    ``detect``; the detector keeps that slot's timing state between frames,
    in arrays indexed by slot that double in size to fit the largest slot
    seen. Feed a slot its frames in order, one per tick; ``reset`` it when
    the slot passes to another call.

    Time passes for a slot only in the frames it is fed: ticks skipped while
    a caller sends nothing are no gap to the detector. When a caller falls
    silent, feed its slot at least two silent frames (40 ms), so that a
    press ends and its gap is measured, or ``reset`` the slot; otherwise the
    same key pressed again later is taken for the same press.
    """

    def __init__(self, capacity: int = 64) -> None:
        """Make a detector with room for slots ``0 .. capacity - 1`` to start."""
        self._capacity = 0
        self._mode = np.zeros(0, dtype=np.int8)
        self._key = np.zeros(0, dtype=np.int8)
        self._confirmed = np.zeros(0, dtype=np.bool_)
        self._gap = np.zeros(0, dtype=np.float32)
        # sum and peak of the key's amplitude per half: row, then column
        self._sum = np.zeros((2, 0), dtype=np.float32)
        self._peak = np.zeros((2, 0), dtype=np.float32)
        # the last frame's half powers, to look back when a key shows up
        self._last = np.zeros((2, _FREQS, 0), dtype=np.float32)
        self._grow(max(capacity, 1))

        mean_square = (FULL_SCALE * 10.0 ** (GATE_DBFS / 20.0)) ** 2
        self._gate_energy = np.float32(FRAME_SAMPLES * mean_square)
        self._runner_up = _power_ratio(MIN_RUNNER_UP_DB)
        self._twist = _power_ratio(MAX_TWIST_DB)

    def __repr__(self) -> str:
        """Show the capacity and how many slots are in a tone or a gap."""
        busy = int(np.count_nonzero(self._mode != _IDLE))
        return f"<ToneDetector capacity={self._capacity} busy={busy}>"

    def detect(
        self, slots: npt.NDArray[np.intp], frames: Frames
    ) -> list[tuple[int, str]]:
        """Analyse one frame per slot and return the presses confirmed by it.

        Args:
            slots: distinct slot numbers (>= 0), one per row of ``frames``.
            frames: int16 frames, shape (len(slots), 320), this tick's audio.

        Returns:
            ``(slot, key)`` for every press that became valid on this frame,
            each press once; a slot changing keys may report two.
        """
        if len(slots) == 0:
            return []
        self._grow(int(slots.max()) + 1)
        powers, keys = self._analyse(frames)

        reports: list[tuple[npt.NDArray[np.intp], npt.NDArray[np.int8]]] = []
        ended = self._follow(slots, powers, reports)
        self._start(slots, powers, keys, ended, reports)
        self._last[:, :, slots] = powers

        return [
            (slot, KEYS[key])
            for slot_array, key_array in reports
            for slot, key in zip(slot_array.tolist(), key_array.tolist(), strict=True)
        ]

    def reset(self, slot: int) -> None:
        """Forget what ``slot`` heard, as for a call that just joined it."""
        if 0 <= slot < self._capacity:
            self._mode[slot] = _IDLE
            self._confirmed[slot] = False
            self._gap[slot] = 0.0
            self._sum[:, slot] = 0.0
            self._peak[:, slot] = 0.0
            self._last[:, :, slot] = 0.0

    def _analyse(
        self, frames: Frames
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int8]]:
        """Return half powers (half, frequency, call) and each frame's key or -1.

        Arrays run along calls so that each numpy step is one long loop.
        """
        halves = frames.reshape(-1, _HALF_SAMPLES).astype(np.float32)
        whole = halves.reshape(-1, FRAME_SAMPLES)
        calls = np.arange(len(whole))
        energy = np.einsum("ij,ij->i", whole, whole)
        projected = np.ascontiguousarray((halves @ _BASIS).reshape(len(whole), -1).T)
        real_0, imaginary_0, real_1, imaginary_1 = projected.reshape(4, _FREQS, -1)
        powers = np.stack(
            (
                real_0 * real_0 + imaginary_0 * imaginary_0,
                real_1 * real_1 + imaginary_1 * imaginary_1,
            )
        )

        # the second half times the conjugate of the first, in the frame's
        # phase: its real part makes the whole frame's power from the halves',
        # its angle is how far the sine drifted in 10 ms
        cross = (real_1 * real_0 + imaginary_1 * imaginary_0) * _TURN_COS + (
            imaginary_1 * real_0 - real_1 * imaginary_0
        ) * _TURN_SIN
        frame_power = powers[0] + powers[1] + 2.0 * cross

        # choose row and column on the whole frame, where neighbours are apart
        index, best, runner_up = _strongest(frame_power.reshape(2, 4, -1))
        picked = index + _GROUP_START
        first, second = powers[0, picked, calls], powers[1, picked, calls]
        drift = cross[picked, calls]
        on_pitch = (drift >= _PITCH_COS[picked] * np.sqrt(first * second)) | (
            # one half holds little of the tone (it starts or ends): no pitch
            np.minimum(first, second) < 0.25 * np.maximum(first, second)
        )
        # 2 |X|^2 / N is the energy a sine puts in N samples; summing the
        # halves keeps it whole for tones a little off pitch
        sine_energy = (first + second).sum(axis=0) * np.float32(2.0 / _HALF_SAMPLES)

        is_key = (
            (energy >= self._gate_energy)
            & (sine_energy >= MIN_KEY_ENERGY_SHARE * energy)
            & (best >= self._runner_up * runner_up).all(axis=0)
            & (best.max(axis=0) <= self._twist * best.min(axis=0))
            & on_pitch.all(axis=0)
        )
        row, column = picked
        keys = np.where(is_key, 4 * row + column - 4, -1).astype(np.int8)
        return powers, keys

    def _follow(
        self,
        slots: npt.NDArray[np.intp],
        powers: npt.NDArray[np.float32],
        reports: list[tuple[npt.NDArray[np.intp], npt.NDArray[np.int8]]],
    ) -> npt.NDArray[np.bool_]:
        """Step the slots in a tone or a gap through this frame's two halves.

        Returns which rows ended a tone during this frame.
        """
        ended = np.zeros(len(slots), dtype=np.bool_)
        rows = np.flatnonzero(self._mode[slots] != _IDLE)
        if rows.size == 0:
            return ended
        busy = slots[rows]
        key = self._key[busy]
        mode = self._mode[busy]
        confirmed = self._confirmed[busy]
        gap = self._gap[busy]
        total = self._sum[:, busy]
        peak = self._peak[:, busy]
        # (half, row/column, busy) amplitudes of each slot's own key
        own = np.sqrt(np.stack(_own_powers(powers, key, rows), axis=1))
        tiny = np.float32(1e-6)
        ending_any = np.zeros(rows.size, dtype=np.bool_)

        for level in own:
            # measure the tone: the share of the half it covers
            in_tone = mode == _TONE
            tone_level = level * in_tone.astype(np.float32)
            peak = np.maximum(peak, tone_level)
            ratio = level / np.maximum(peak, tiny)
            coverage = np.minimum(ratio[0], ratio[1])
            present = coverage >= MIN_COVERAGE
            total += tone_level

            # report a tone the moment it is long enough, even as it ends
            length = total / np.maximum(peak, tiny)
            long_enough = np.minimum(length[0], length[1]) >= _TONE_ACCEPT_HALVES
            accepted = in_tone & long_enough & ~confirmed
            if accepted.any():
                reports.append((busy[accepted], key[accepted]))
            confirmed |= accepted

            # a fading tone opens a gap; a gap grows until the key is back
            absent = np.maximum(1.0 - coverage, 0.0)
            ending = in_tone & ~present
            ending_any |= ending
            gap = np.where(ending, absent, gap + absent)

            # then: the key is there, or a press waits out its gap, or idle
            # (a fragment too short to be a press, or a gap long enough)
            waits = np.where(in_tone, confirmed, gap < _GAP_ACCEPT_HALVES)
            mode = (mode != _IDLE) * np.where(present, _TONE, _GAP * waits)

        ended[rows] = ending_any
        self._mode[busy] = mode
        self._confirmed[busy] = confirmed
        self._gap[busy] = gap
        self._sum[:, busy] = total
        self._peak[:, busy] = peak
        return ended

    def _start(
        self,
        slots: npt.NDArray[np.intp],
        powers: npt.NDArray[np.float32],
        keys: npt.NDArray[np.int8],
        ended: npt.NDArray[np.bool_],
        reports: list[tuple[npt.NDArray[np.intp], npt.NDArray[np.int8]]],
    ) -> None:
        """Open a tone for slots whose frame is a key they are not following."""
        current = self._key[slots]
        following = self._mode[slots] != _IDLE
        # a tone that just faded must not be counted again from its last frame
        new = (keys >= 0) & ~((following | ended) & (current == keys))
        rows = np.flatnonzero(new)
        if rows.size == 0:
            return
        starting = slots[rows]
        key = keys[rows]

        # the tone may have begun in the last frame, too weakly to be a key
        halves = np.concatenate((self._last[:, :, starting], powers[:, :, rows]))
        own = np.sqrt(np.stack(_own_powers(halves, key, None), axis=1))
        total = own.sum(axis=0)
        peak = np.maximum(own.max(axis=0), np.float32(1e-6))
        accepted = (total / peak).min(axis=0) >= _TONE_ACCEPT_HALVES
        if accepted.any():
            reports.append((starting[accepted], key[accepted]))

        self._mode[starting] = _TONE
        self._key[starting] = key
        self._confirmed[starting] = accepted
        self._gap[starting] = 0.0
        self._sum[:, starting] = total
        self._peak[:, starting] = peak

    def _grow(self, needed: int) -> None:
        """Make room for slots below ``needed``, doubling the capacity."""
        if needed <= self._capacity:
            return
        capacity = max(self._capacity, 1)
        while capacity < needed:
            capacity *= 2
        self._mode = _resized(self._mode, capacity)
        self._key = _resized(self._key, capacity)
        self._confirmed = _resized(self._confirmed, capacity)
        self._gap = _resized(self._gap, capacity)
        self._sum = _resized(self._sum, capacity)
        self._peak = _resized(self._peak, capacity)
        self._last = _resized(self._last, capacity)
        self._capacity = capacity


def _strongest(
    groups: npt.NDArray[np.float32],
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Return the index, the power and the runner-up's power in groups of 4.

    ``groups`` is (group, 4, call). Pairwise maxima rather than ``argmax`` or
    ``sort`` along the short axis, which numpy runs as many tiny loops.
    """
    first, second, third, fourth = groups.transpose(1, 0, 2)
    first_wins = first >= second
    third_wins = third >= fourth
    low_best = np.where(first_wins, first, second)
    low_other = np.where(first_wins, second, first)
    high_best = np.where(third_wins, third, fourth)
    high_other = np.where(third_wins, fourth, third)

    low_wins = low_best >= high_best
    # a win counts 1: 1 - first_wins is 0 when the first wins, else 1
    index = np.where(low_wins, 1 - first_wins, 3 - third_wins)
    best = np.maximum(low_best, high_best)
    runner_up = np.maximum(
        np.minimum(low_best, high_best), np.where(low_wins, low_other, high_other)
    )
    return index, best, runner_up


def _own_powers(
    powers: npt.NDArray[np.float32],
    key: npt.NDArray[np.int8],
    calls: npt.NDArray[np.intp] | None,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Pick, per half, the powers of each call's key: row, then column.

    ``powers`` is (half, frequency, call); ``calls`` picks the calls that go
    with ``key`` (all of them, in order, when None).
    """
    index = key.astype(np.intp)
    picked = np.arange(len(index)) if calls is None else calls
    return powers[:, index // 4, picked], powers[:, 4 + index % 4, picked]


def _resized(array: npt.NDArray[_Scalar], capacity: int) -> npt.NDArray[_Scalar]:
    """Copy ``array`` into a larger one whose last axis (slots) has ``capacity``."""
    grown = np.zeros((*array.shape[:-1], capacity), dtype=array.dtype)
    grown[..., : array.shape[-1]] = array
    return grown
