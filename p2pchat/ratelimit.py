# -*- test-case-name: tests.unit.test_ratelimit -*-
"""
A token bucket, for limiting what one link (or one console) may send per
second without slowing anyone else.

The bucket holds up to C{burst} tokens and gains C{rate_per_s} tokens per
second.  Two ways to spend:

  - L{TokenBucket.take} spends only if enough tokens are there (drop or
    refuse otherwise);
  - L{TokenBucket.charge} always spends, possibly into debt, and says how
    long to wait until the debt is paid: a protocol that pauses its
    transport for that long slows the sender down to the rate without
    losing anything (TCP back-pressure does the rest).

Time comes from an injected clock (anything with C{seconds()}, like the
reactor or L{twisted.internet.task.Clock}).
"""

from twisted.internet.interfaces import IReactorTime

# Proposed per-link defaults (see docs/security.md).
DEFAULT_ENTRIES_PER_S = 200.0
DEFAULT_ENTRY_BURST = 1000
# Token counts are floats; this much shortfall (from rounding of clock
# differences) still counts as enough.
_EPSILON = 1e-9


class TokenBucket:
    """
    A token bucket driven by an injected clock.

    @ivar rate_per_s: tokens added per second.
    @ivar burst: the most tokens the bucket holds (and its initial fill).
    """

    def __init__(self, rate_per_s: float, burst: float, clock: IReactorTime):
        """
        @raise ValueError: if C{rate_per_s} is not positive or C{burst} is
            less than 1.
        """
        if not rate_per_s > 0:
            raise ValueError(f"rate_per_s must be > 0, got {rate_per_s!r}")
        if not burst >= 1:
            raise ValueError(f"burst must be >= 1, got {burst!r}")
        self.rate_per_s = float(rate_per_s)
        self.burst = float(burst)
        self._clock = clock
        self._tokens = self.burst
        self._updated_s = clock.seconds()

    def __repr__(self) -> str:
        return (
            f"<TokenBucket {self.tokens:.1f}/{self.burst:g} tokens, "
            f"{self.rate_per_s:g}/s>"
        )

    def _refill(self) -> None:
        now = self._clock.seconds()
        elapsed = now - self._updated_s
        if elapsed > 0:  # a clock that steps back adds nothing
            self._tokens = min(self.burst, self._tokens + elapsed * self.rate_per_s)
        self._updated_s = now

    @property
    def tokens(self) -> float:
        """
        The tokens available now (negative while in debt after
        L{charge}).
        """
        self._refill()
        return self._tokens

    def _check_amount(self, n: float) -> None:
        if not 0 < n <= self.burst:
            raise ValueError(f"n must be > 0 and at most the burst {self.burst:g}, got {n!r}")

    def take(self, n: float = 1) -> bool:
        """
        Spend C{n} tokens if there are that many.

        @return: whether they were spent; if not, nothing changes.
        @raise ValueError: if C{n} is not positive or exceeds the burst (it
            could never succeed).
        """
        self._check_amount(n)
        self._refill()
        if self._tokens >= n - _EPSILON:
            self._tokens -= n
            return True
        return False

    def charge(self, n: float = 1) -> float:
        """
        Spend C{n} tokens, going into debt if needed.

        @return: the seconds to wait until the balance is back to zero
            (C{0.0} if it did not go negative): pause the sender that long.
        @raise ValueError: if C{n} is not positive or exceeds the burst.
        """
        self._check_amount(n)
        self._refill()
        self._tokens -= n
        return self.debt_s()

    def seconds_until(self, n: float = 1) -> float:
        """
        @return: how long until C{n} tokens are available (C{0.0} if they
            are now).
        @raise ValueError: if C{n} is not positive or exceeds the burst.
        """
        self._check_amount(n)
        self._refill()
        missing = n - self._tokens
        return missing / self.rate_per_s if missing > _EPSILON else 0.0

    def debt_s(self) -> float:
        """
        @return: how long until the balance is back to zero (C{0.0} when
            not in debt).
        """
        self._refill()
        return -self._tokens / self.rate_per_s if self._tokens < -_EPSILON else 0.0
