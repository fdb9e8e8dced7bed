"""
Tests for L{p2pchat.ratelimit.TokenBucket}.
"""

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from p2pchat.ratelimit import TokenBucket


class TokenBucketTests(SynchronousTestCase):
    """
    L{TokenBucket} allows a burst, then the configured rate, by the
    injected clock.
    """

    def setUp(self):
        self.clock = Clock()
        self.bucket = TokenBucket(rate_per_s=10, burst=5, clock=self.clock)

    def test_burst_then_refuse(self):
        """
        A full bucket allows C{burst} takes at once, then refuses.
        """
        self.assertEqual([self.bucket.take() for _ in range(6)], [True] * 5 + [False])

    def test_refill_at_rate(self):
        """
        Tokens come back at C{rate_per_s}: after 0.1 s one more take is
        allowed at 10/s, and not a second one.
        """
        for _ in range(5):
            self.bucket.take()
        self.clock.advance(0.1)
        self.assertTrue(self.bucket.take())
        self.assertFalse(self.bucket.take())

    def test_refill_capped_at_burst(self):
        """
        However long the bucket stays idle, it never holds more than
        C{burst} tokens.
        """
        self.clock.advance(3600)
        self.assertEqual(self.bucket.tokens, 5)
        self.assertEqual(sum(self.bucket.take() for _ in range(10)), 5)

    def test_take_many_is_all_or_nothing(self):
        """
        C{take(n)} spends C{n} tokens only if all are there; a refused take
        spends nothing.
        """
        self.assertTrue(self.bucket.take(3))
        self.assertFalse(self.bucket.take(3))
        self.assertEqual(self.bucket.tokens, 2)
        self.assertTrue(self.bucket.take(2))

    def test_seconds_until(self):
        """
        C{seconds_until(n)} says how long until C{n} tokens are there, and
        is 0 when they are there now.
        """
        self.assertEqual(self.bucket.seconds_until(5), 0.0)
        self.bucket.take(5)
        self.assertAlmostEqual(self.bucket.seconds_until(2), 0.2)
        self.clock.advance(0.2)
        self.assertTrue(self.bucket.take(2))

    def test_charge_goes_into_debt_and_says_how_long(self):
        """
        C{charge} always spends, returns the wait until the balance is back
        to zero, and the bucket refuses takes until then: a sender paused
        that long loses nothing and averages the rate.
        """
        self.assertEqual(self.bucket.charge(5), 0.0)
        self.assertAlmostEqual(self.bucket.charge(3), 0.3)
        self.assertFalse(self.bucket.take())
        self.clock.advance(0.3)
        self.assertAlmostEqual(self.bucket.debt_s(), 0.0)
        self.clock.advance(0.1)
        self.assertTrue(self.bucket.take())

    def test_clock_stepping_back_adds_nothing(self):
        """
        A clock that goes backwards neither adds tokens nor breaks the
        bucket.
        """
        self.bucket.take(5)
        self.clock.rightNow -= 100
        self.assertFalse(self.bucket.take())
        self.clock.advance(0.1)
        self.assertTrue(self.bucket.take())

    def test_bad_parameters(self):
        """
        A rate that is not positive, a burst under 1, or an amount that is
        not positive or exceeds the burst is refused with L{ValueError}.
        """
        self.assertRaises(ValueError, TokenBucket, 0, 5, self.clock)
        self.assertRaises(ValueError, TokenBucket, 1, 0.5, self.clock)
        self.assertRaises(ValueError, self.bucket.take, 6)
        self.assertRaises(ValueError, self.bucket.take, 0)
        self.assertRaises(ValueError, self.bucket.charge, 6)
        self.assertRaises(ValueError, self.bucket.seconds_until, -1)
