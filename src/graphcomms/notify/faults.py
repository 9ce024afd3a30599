"""Faults graphcomms can inject, so a bot can prove it copes with Graph's.

Graph documents that notifications may arrive out of order; bots also meet
late, repeated and missing callbacks and the odd 5xx. A ``FaultPlan`` makes
each of those happen on purpose, reproducibly from its seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """What to break, and how often; the default breaks nothing."""

    seed: int = 0
    delay_ms: int = 0
    """Extra real-time delay before each webhook POST."""
    reorder: bool = False
    """Deliver each call's waiting notifications in a shuffled order."""
    duplicate: float = 0.0
    """Probability that a delivered notification is POSTed a second time."""
    drop: float = 0.0
    """Probability that a notification is not sent; it is kept as failed."""
    api_errors: float = 0.0
    """Probability that a Graph API request is answered 503 untouched."""

    def __post_init__(self) -> None:
        for name in ("duplicate", "drop", "api_errors"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability from 0 to 1")
        if self.delay_ms < 0:
            raise ValueError("delay_ms must not be negative")

    @property
    def active(self) -> bool:
        """Return whether the plan breaks anything at all."""
        return self != FaultPlan(seed=self.seed)


class FaultDice:
    """The seeded randomness behind a plan's probabilities."""

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan
        self._rng = random.Random(plan.seed)

    def roll(self, probability: float) -> bool:
        """Return True with ``probability``."""
        return probability > 0 and self._rng.random() < probability

    def pick(self, count: int) -> int:
        """Return a random index below ``count``."""
        return self._rng.randrange(count)
