"""DTMF keys and Graph's ``tone`` names for them.

Graph names tones ``tone0``..``tone9``, ``star``, ``pound``, ``a``..``d`` and
``flash``; inside graphcomms a key is one character: ``0``-``9``, ``*``,
``#``, ``A``-``D``. ``flash`` is a hook flash, not a key, so it has none.
"""

from __future__ import annotations

from graphcomms.media import dtmf
from graphcomms.media.dtmf import KEY_FOR_TONE


def _graph_order(tone: str) -> tuple[int, str]:
    return (0, tone) if tone.startswith("tone") else (1, tone)


KEY_OF_TONE: dict[str, str] = dict(KEY_FOR_TONE)
TONE_OF_KEY: dict[str, str] = dict(dtmf.TONE_NAMES)

TONE_NAMES: tuple[str, ...] = (*sorted(KEY_OF_TONE, key=_graph_order), "flash")
"""Graph's tone enum, in its own order."""

DTMF_KEYS = frozenset(TONE_OF_KEY)
"""Every key a caller can press: 0-9, *, #, A-D."""


def tone_name(tone: str) -> str:
    """Return Graph's name for ``tone``, given as a key or already as a name.

    >>> tone_name("1"), tone_name("#"), tone_name("b"), tone_name("star")
    ('tone1', 'pound', 'b', 'star')
    """
    if tone in TONE_OF_KEY:
        return TONE_OF_KEY[tone]
    if tone.upper() in TONE_OF_KEY and len(tone) == 1:
        return TONE_OF_KEY[tone.upper()]
    return tone


def key_of(tone: str) -> str | None:
    """Return the key character for a Graph tone name or key, or None.

    Names match case-insensitively; ``flash`` and unknown names give None.
    """
    if len(tone) == 1:
        key = tone.upper()
        return key if key in DTMF_KEYS else None
    return KEY_OF_TONE.get(tone.lower())
