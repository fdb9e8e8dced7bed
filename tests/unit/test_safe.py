"""
Tests for L{p2pchat.safe}.
"""

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from p2pchat.safe import LogLimiter, printable


class PrintableTests(SynchronousTestCase):
    def test_plain_text_unchanged(self):
        self.assertEqual(printable("héllo wörld ל"), "héllo wörld ל")

    def test_controls_escaped(self):
        self.assertEqual(printable("a\x1b[2Jb\nc\r"), "a\\x1b[2Jb\\nc\\r")
        self.assertEqual(printable("\u202eevil"), "\\u202eevil")

    def test_limit(self):
        self.assertEqual(printable("abcdef", limit=3), "abc...")
        self.assertEqual(printable("abc", limit=3), "abc")

    def test_not_a_string(self):
        self.assertEqual(printable(None), "None")


class LogLimiterTests(SynchronousTestCase):
    def test_once_per_interval_with_count(self):
        clock = Clock()
        limiter = LogLimiter(clock, interval_s=10)
        emitted = []
        for _ in range(5):
            limiter.log("k", lambda f, **kw: emitted.append((f, kw)), "refused {who}", who="x")
        self.assertEqual(emitted, [("refused {who}", {"who": "x"})])
        clock.advance(10)
        limiter.log("k", lambda f, **kw: emitted.append((f, kw)), "refused {who}", who="y")
        self.assertEqual(
            emitted[1],
            ("refused {who} ({held} similar line{plural} not logged)",
             {"who": "y", "held": 4, "plural": "s"}),
        )

    def test_kinds_independent(self):
        limiter = LogLimiter(Clock())
        self.assertEqual(limiter.allow("a"), 0)
        self.assertEqual(limiter.allow("b"), 0)
        self.assertIsNone(limiter.allow("a"))
