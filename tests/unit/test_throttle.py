"""
Tests for L{p2pchat.throttle}.
"""

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from p2pchat.throttle import ReadThrottle


class RecordingProducer:
    """
    Records the calls a L{ReadThrottle} makes, with the clock's time.
    """

    def __init__(self, clock):
        self.clock = clock
        self.calls = []

    def pauseProducing(self):
        self.calls.append(("pause", self.clock.seconds()))

    def resumeProducing(self):
        self.calls.append(("resume", self.clock.seconds()))


class ReadThrottleTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.producer = RecordingProducer(self.clock)
        self.throttle = ReadThrottle(self.producer, self.clock)

    def test_hold_pauses_then_resumes(self):
        """
        A hold pauses the producer at once and resumes it when it is up.
        """
        self.throttle.hold(2.0)
        self.assertTrue(self.throttle.held)
        self.clock.advance(1.9)
        self.assertEqual(self.producer.calls, [("pause", 0)])
        self.clock.advance(0.1)
        self.assertEqual(self.producer.calls, [("pause", 0), ("resume", 2.0)])
        self.assertFalse(self.throttle.held)

    def test_nothing_to_wait_for(self):
        """
        A hold of zero or less seconds (the bucket is not in debt) does
        nothing.
        """
        self.throttle.hold(0)
        self.throttle.hold(-1)
        self.assertEqual(self.producer.calls, [])
        self.assertFalse(self.throttle.held)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_longer_hold_extends(self):
        """
        A longer hold while held extends it without pausing twice; a
        shorter one changes nothing.
        """
        self.throttle.hold(2.0)
        self.clock.advance(1.0)
        self.throttle.hold(3.0)
        self.throttle.hold(0.5)
        self.clock.advance(2.9)
        self.assertEqual(self.producer.calls, [("pause", 0)])
        self.clock.advance(0.1)
        self.assertEqual(self.producer.calls, [("pause", 0), ("resume", 4.0)])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stop_never_resumes(self):
        """
        Once stopped (the stream is closing), a running hold still counts
        until its time is up but does not resume the producer, and new
        holds do nothing.
        """
        self.throttle.hold(2.0)
        self.throttle.stop()
        self.throttle.hold(5.0)
        self.assertTrue(self.throttle.held)
        self.clock.advance(2.0)
        self.assertFalse(self.throttle.held)
        self.assertEqual(self.producer.calls, [("pause", 0)])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_cancel(self):
        """
        Cancelling (the stream closed) drops the pending resumption.
        """
        self.throttle.hold(2.0)
        self.throttle.cancel()
        self.assertFalse(self.throttle.held)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.throttle.hold(1.0)
        self.assertEqual(self.producer.calls, [("pause", 0)])
