"""
Tests for L{p2pchat.ops.readiness}: C{READY=1} after the initial catch-up
or the bound, and C{STATUS=} lines meanwhile; on a L{Clock} with a
recording notifier.
"""

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from p2pchat.ops.readiness import STATUS_INTERVAL_S, Readiness


class RecordingNotifier:
    def __init__(self):
        self.sent = []

    def ready(self, status=None):
        self.sent.append(f"READY=1\nSTATUS={status}")
        return True

    def status(self, text):
        self.sent.append(f"STATUS={text}")
        return True


class ReadinessTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.notifier = RecordingNotifier()
        self.caught_up = False
        self.line = "waiting for a peer"
        self.readiness = Readiness(
            self.clock, lambda: self.notifier, lambda: self.line,
            lambda: self.caught_up, timeout_s=60.0,
        )

    def test_no_peer_ready_at_once(self):
        """
        With no peer to wait for, the node is ready as it starts.
        """
        self.line = "0 peers alive, 5 messages"
        self.readiness.start(wait=False)
        self.assertTrue(self.readiness.ready)
        self.assertEqual(self.notifier.sent, ["READY=1\nSTATUS=0 peers alive, 5 messages"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_ready_after_catch_up_with_status_meanwhile(self):
        """
        With peers, C{STATUS=} says how far the catch-up is every
        interval, and C{READY=1} comes as soon as it is done, not before
        (a link alone is not enough).
        """
        self.readiness.start(wait=True)
        self.line = "catching up: 10 of about 100 entries from 1 peer; 1 peers alive"
        self.readiness.changed()
        self.clock.advance(STATUS_INTERVAL_S)
        self.line = "catching up: 60 of about 100 entries from 1 peer, ~1 s left"
        self.clock.advance(STATUS_INTERVAL_S)
        self.assertFalse(self.readiness.ready)
        self.caught_up = True
        self.line = "1 peers alive, 100 messages"
        self.readiness.changed()
        self.assertTrue(self.readiness.ready)
        self.assertEqual(self.notifier.sent, [
            "STATUS=waiting for a peer",
            "STATUS=catching up: 10 of about 100 entries from 1 peer; 1 peers alive",
            "STATUS=catching up: 60 of about 100 entries from 1 peer, ~1 s left",
            "READY=1\nSTATUS=1 peers alive, 100 messages",
        ])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_catch_up_ending_without_a_change(self):
        """
        A catch-up can end with no link or message change (a claim
        expired): the periodic status notices it.
        """
        self.readiness.start(wait=True)
        self.caught_up = True
        self.clock.advance(STATUS_INTERVAL_S)
        self.assertTrue(self.readiness.ready)

    def test_bound(self):
        """
        A catch-up that does not end does not keep the node from being
        ready for more than C{timeout_s}.
        """
        self.readiness.start(wait=True)
        self.clock.pump([STATUS_INTERVAL_S] * 59)
        self.assertFalse(self.readiness.ready)
        self.clock.advance(1.0)
        self.assertTrue(self.readiness.ready)
        self.assertEqual(self.notifier.sent[-1], "READY=1\nSTATUS=waiting for a peer")
        self.assertEqual(len(self.notifier.sent), 61)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_status_after_ready_is_rate_limited(self):
        """
        Once ready, changes send at most one status line a second.
        """
        self.readiness.start(wait=False)
        for _ in range(10):
            self.readiness.changed()
        self.clock.advance(STATUS_INTERVAL_S)
        self.readiness.changed()
        self.clock.advance(STATUS_INTERVAL_S)
        self.assertEqual(len(self.notifier.sent), 3)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stop(self):
        self.readiness.start(wait=True)
        self.readiness.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_no_notifier(self):
        """
        Outside systemd nothing is sent, and nothing is scheduled once
        ready.
        """
        readiness = Readiness(self.clock, lambda: None, lambda: "x", lambda: True, 60.0)
        readiness.start(wait=True)
        readiness.changed()
        self.assertTrue(readiness.ready)
        self.assertEqual(self.clock.getDelayedCalls(), [])
