"""Accepted submissions per minute from one client address (a token bucket each)."""

from __future__ import annotations

import threading
import time


class RateLimiter:
    """Allows `per_minute` accepted submissions a minute per address, in bursts too.

    The bucket of an address holds up to `per_minute` tokens and refills evenly, so a
    whole event behind one mobile NAT can submit at once. 0 turns the limit off.
    """

    def __init__(self, per_minute: int, clock=time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, address: str) -> bool:
        """Take one token for this address; False when it has none left."""
        if self.per_minute <= 0:
            return True
        rate = self.per_minute / 60.0
        with self._lock:
            moment = self._clock()
            tokens, last = self._buckets.get(address, (float(self.per_minute), moment))
            tokens = min(float(self.per_minute), tokens + (moment - last) * rate)
            if tokens < 1:
                self._buckets[address] = (tokens, moment)
                return False
            self._buckets[address] = (tokens - 1, moment)
            if len(self._buckets) > 10_000:
                self._forget_full(moment, rate)
            return True

    def retry_after(self, address: str) -> int:
        """Whole seconds until the address may submit again."""
        if self.per_minute <= 0:
            return 0
        tokens, _ = self._buckets.get(address, (1.0, 0.0))
        return max(1, round((1 - tokens) * 60 / self.per_minute + 0.5))

    def _forget_full(self, moment: float, rate: float) -> None:
        self._buckets = {
            a: (t, last) for a, (t, last) in self._buckets.items() if t + (moment - last) * rate < self.per_minute
        }
