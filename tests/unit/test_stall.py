"""
Tests for L{p2pchat.ops.stall.StallMonitor}, driven by a L{Clock}.
"""

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from p2pchat.ops.stall import StallMonitor


class StallMonitorTests(SynchronousTestCase):
    """
    The monitor keeps the largest lateness of its timer.
    """

    def test_on_time_is_zero(self):
        """
        Ticks that run when due leave the longest turn at 0.
        """
        clock = Clock()
        monitor = StallMonitor(clock, interval_s=0.05)
        monitor.start()
        for _ in range(10):
            clock.advance(0.05)
        self.assertEqual(monitor.ticks, 10)
        self.assertEqual(monitor.longest_s, 0.0)

    def test_longest_lateness_kept(self):
        """
        A tick that runs 0.3 s late (the reactor was busy for 0.35 s)
        records 0.3 s; later, shorter stalls do not lower it, and the last
        lateness is kept separately.
        """
        clock = Clock()
        monitor = StallMonitor(clock, interval_s=0.05)
        monitor.start()
        clock.advance(0.35)
        self.assertAlmostEqual(monitor.longest_s, 0.3)
        clock.advance(0.15)
        self.assertAlmostEqual(monitor.last_s, 0.1)
        self.assertAlmostEqual(monitor.longest_s, 0.3)
        clock.advance(0.05)
        self.assertEqual(monitor.last_s, 0.0)
        self.assertAlmostEqual(monitor.longest_s, 0.3)

    def test_stop_leaves_no_timer(self):
        """
        Stopping cancels the pending tick; starting again keeps the
        longest turn already seen.
        """
        clock = Clock()
        monitor = StallMonitor(clock, interval_s=0.05)
        monitor.start()
        clock.advance(1.05)
        monitor.stop()
        self.assertFalse(monitor.running)
        self.assertEqual(clock.getDelayedCalls(), [])
        monitor.stop()
        monitor.start()
        self.assertTrue(monitor.running)
        self.assertAlmostEqual(monitor.longest_s, 1.0)
        monitor.stop()
