"""
Tests for L{p2pchat.ops.metrics.Metrics}: what the node reports moves the
right metric, on a L{Clock} (scraping over HTTP is tested in
C{tests.integration.test_ops}).
"""

from prometheus_client import REGISTRY
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from p2pchat.ops.metrics import Metrics


def sample(metrics, name, **labels):
    """
    @return: the current value of one sample of C{metrics}.
    """
    return metrics.registry.get_sample_value(name, labels)


class MetricsTests(SynchronousTestCase):
    """
    L{Metrics} records what the node reports.
    """

    def test_counters_and_gauges(self):
        """
        Each method moves its own metric.
        """
        metrics = Metrics()
        metrics.entry_stored(3)
        metrics.entry_relayed()
        metrics.entry_rejected("invalid_signature")
        metrics.entry_rejected("fork", 2)
        metrics.bytes_in(100)
        metrics.bytes_out(250)
        metrics.set_links(2)
        metrics.set_entries_held(40)
        metrics.set_replication_lag(5)
        self.assertEqual(sample(metrics, "p2pchat_entries_stored_total"), 3)
        self.assertEqual(sample(metrics, "p2pchat_entries_relayed_total"), 1)
        self.assertEqual(
            sample(metrics, "p2pchat_entries_rejected_total", reason="invalid_signature"), 1
        )
        self.assertEqual(sample(metrics, "p2pchat_entries_rejected_total", reason="fork"), 2)
        self.assertEqual(sample(metrics, "p2pchat_received_bytes_total"), 100)
        self.assertEqual(sample(metrics, "p2pchat_sent_bytes_total"), 250)
        self.assertEqual(sample(metrics, "p2pchat_links"), 2)
        self.assertEqual(sample(metrics, "p2pchat_entries_held"), 40)
        self.assertEqual(sample(metrics, "p2pchat_replication_lag_entries"), 5)

    def test_peer_states(self):
        """
        Peers by state start at 0; a state missing from a later update
        drops to 0 instead of keeping a stale count.
        """
        metrics = Metrics()
        self.assertEqual(sample(metrics, "p2pchat_peers", state="alive"), 0)
        metrics.set_peer_states({"alive": 2, "suspect": 1})
        metrics.set_peer_states({"dead": 2, "alive": 1})
        self.assertEqual(sample(metrics, "p2pchat_peers", state="alive"), 1)
        self.assertEqual(sample(metrics, "p2pchat_peers", state="dead"), 2)
        self.assertEqual(sample(metrics, "p2pchat_peers", state="suspect"), 0)

    def test_private_registries(self):
        """
        Two nodes' metrics in one process do not collide, and nothing goes
        into prometheus_client's global registry.
        """
        first, second = Metrics(), Metrics()
        first.entry_stored(1)
        self.assertEqual(sample(second, "p2pchat_entries_stored_total"), 0)
        self.assertIsNone(REGISTRY.get_sample_value("p2pchat_entries_stored_total"))

    def test_collect_from(self):
        """
        Levels are read from the C{collect_from} sources at each render (a
        C{ChatNode.status()}-like mapping fits); a source that raises is
        logged and skipped.
        """
        metrics = Metrics()
        status = {"messages": 7, "links": 1, "peers": 1, "peer_states": {"alive": 1}}

        def broken():
            raise RuntimeError("status unavailable")

        metrics.collect_from(lambda: status)
        metrics.collect_from(broken)
        body, content_type = metrics.render()
        self.assertIn(b"p2pchat_entries_held 7.0", body)
        self.assertIn(b"p2pchat_links 1.0", body)
        self.assertIn(b'p2pchat_peers{state="alive"} 1.0', body)
        self.assertTrue(content_type.startswith("text/plain"))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_lag_monitor(self):
        """
        The lag monitor ticks every second on the injected clock and
        records how late the tick ran: 0 on time, 2.5 s after a reactor
        blocked for 3.5 s, 0 again once the reactor is back on schedule;
        stopping it leaves no timer.
        """
        metrics, clock = Metrics(), Clock()
        metrics.start_lag_monitor(clock)
        clock.advance(1)
        self.assertEqual(sample(metrics, "p2pchat_reactor_lag_seconds"), 0)
        clock.advance(3.5)
        self.assertEqual(sample(metrics, "p2pchat_reactor_lag_seconds"), 2.5)
        clock.advance(0.5)
        self.assertEqual(sample(metrics, "p2pchat_reactor_lag_seconds"), 0)
        clock.advance(1.25)
        self.assertEqual(sample(metrics, "p2pchat_reactor_lag_seconds"), 0.25)
        metrics.stop_lag_monitor()
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_longest_reactor_turn_gauge(self):
        """
        C{longest_reactor_turn_s} from a status source (as
        C{ChatNode.metrics_status} gives it) is the
        C{p2pchat_longest_reactor_turn_seconds} gauge.
        """
        metrics = Metrics()
        metrics.collect_from(lambda: {"longest_reactor_turn_s": 0.375})
        body, _ = metrics.render()
        self.assertIn(b"p2pchat_longest_reactor_turn_seconds 0.375\n", body)
