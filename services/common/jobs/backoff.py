"""Backoff with jitter: the one way every job spaces its retries."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Delays between attempts: exponential (`base` doubling up to `cap`) or an explicit
    `schedule` (one delay per attempt; exhausted after its last), each multiplied by a
    random factor from `jitter` so failures that happened together retry apart.

    Example::

        Backoff(base=1, cap=300).delay(3)  # 2 to 4 seconds (half to all of 2**2)
        Backoff(schedule=(5, 300), jitter=(0.9, 1.1)).delay(2)  # 270 to 330 seconds
        Backoff(schedule=(5, 300)).delay(3)  # None: the schedule is exhausted
    """

    base: float = 1.0
    cap: float = 300.0
    schedule: Sequence[float] = ()
    jitter: tuple[float, float] = (0.5, 1.0)

    def ceiling(self, attempts: int) -> float | None:
        """The un-jittered delay after `attempts` failed attempts; None when exhausted."""
        if self.schedule:
            if attempts > len(self.schedule):
                return None
            return float(self.schedule[max(attempts, 1) - 1])
        return float(min(self.cap, self.base * 2 ** min(max(attempts - 1, 0), 30)))

    def delay(self, attempts: int) -> float | None:
        """Seconds to wait before the next attempt after `attempts` failed ones; None = give up."""
        ceiling = self.ceiling(attempts)
        if ceiling is None:
            return None
        low, high = self.jitter
        return ceiling * random.uniform(low, high)


def backoff_seconds(attempts: int, base: float = 1.0, cap: float = 300.0) -> float:
    """Exponential backoff with jitter (between half and all of the ceiling), capped."""
    delay = Backoff(base=base, cap=cap).delay(attempts)
    assert delay is not None  # exponential backoff is never exhausted
    return delay
