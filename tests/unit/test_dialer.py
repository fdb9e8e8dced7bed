"""
Tests for L{p2pchat.mesh.dialer.Dialer}: a L{Clock}, and recording fakes for
the I/O it is given; each test asserts the exact calls it made.
"""

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from p2pchat.config import PeerAddress
from p2pchat.mesh.dialer import Dialer, backoff_delay
from p2pchat.mesh.hello import HandshakeFailed

BOB = PeerAddress("bob.example", 9090)
CAROL = PeerAddress("carol.example", 9090)


class FakeLink:
    def __init__(self, calls, address):
        self._calls = calls
        self._address = address

    def close(self, reason):
        self._calls.append(("link.close", str(self._address), reason))


class DialerTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.calls = []
        self.attempts = []
        self.linked = set()
        self.count = 0
        self.linked_ids = set()
        self.dialer = Dialer(
            self.clock, self.attempt, lambda a: a in self.linked, lambda: self.count,
            self.close, jitter=lambda: 0.0, linked_peer=lambda i: i in self.linked_ids,
            own_id="0" * 64,
        )

    def attempt(self, address):
        self.calls.append(("attempt", str(address)))
        attempt = Deferred(lambda d: self.calls.append(("cancel", str(address))))
        self.attempts.append(attempt)
        return attempt

    def close(self, address):
        self.calls.append(("close", str(address)))
        return 1 if address in self.linked else 0

    def fail(self, attempt):
        attempt.errback(Failure(ConnectionRefusedError("refused")))

    def test_backoff_delay(self):
        """
        0.5 s doubling up to 30 s, jitter adding up to 10%.
        """
        self.assertEqual(
            [backoff_delay(n) for n in range(8)], [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
        )
        self.assertEqual(backoff_delay(0, 0.5), 0.525)
        self.assertEqual(backoff_delay(10_000), 30.0)

    def test_seed_redialled_with_backoff_until_linked(self):
        """
        A seed is dialled at once, then again after each failure with a
        growing delay, and not before.
        """
        self.assertTrue(self.dialer.keep(BOB))
        self.fail(self.attempts[-1])
        self.clock.advance(0.4)
        self.assertEqual(self.calls, [("attempt", "bob.example:9090")])
        self.clock.advance(0.1)
        self.fail(self.attempts[-1])
        self.clock.advance(0.9)
        self.assertEqual(len(self.calls), 2)
        self.clock.advance(0.1)
        self.assertEqual(self.calls, [("attempt", "bob.example:9090")] * 3)
        self.attempts[-1].callback(FakeLink(self.calls, BOB))
        self.clock.advance(100)
        self.assertEqual(len(self.calls), 3)

    def test_seed_reaching_a_linked_peer_stops(self):
        """
        A seed whose handshake fails because it reached a peer already
        linked under another address (one link per pair of nodes) is not
        dialled again; one that failed reaching a peer not linked is.
        """
        self.linked_ids.add("a" * 64)
        self.assertTrue(self.dialer.keep(BOB))
        self.attempts[-1].errback(Failure(HandshakeFailed("refused", "b" * 64)))
        self.clock.advance(0.5)
        self.assertEqual(self.calls, [("attempt", "bob.example:9090")] * 2)
        self.attempts[-1].errback(Failure(HandshakeFailed("already linked", "a" * 64)))
        self.clock.advance(100)
        self.assertEqual(len(self.calls), 2)
        self.assertNotIn(BOB, self.dialer.seeds)

    def test_seed_that_is_this_node_stops(self):
        """
        A seed that turns out to be this node (C{/connect} to its own
        address) is not dialled again, and the log says why.
        """
        self.assertTrue(self.dialer.keep(BOB))
        self.attempts[-1].errback(Failure(HandshakeFailed("connected to self", "0" * 64)))
        self.clock.advance(100)
        self.assertEqual(self.calls, [("attempt", "bob.example:9090")])
        self.assertNotIn(BOB, self.dialer.seeds)

    def test_one_attempt_per_address(self):
        """
        An address being dialled, or linked, is not dialled again: not by
        keep (which says so), not by membership's dial.
        """
        self.assertTrue(self.dialer.keep(BOB))
        self.assertFalse(self.dialer.keep(BOB))
        self.dialer.dial(BOB)
        self.attempts[-1].callback(FakeLink(self.calls, BOB))
        self.assertFalse(self.dialer.keep(BOB))
        self.dialer.dial(BOB)
        self.linked.add(CAROL)
        self.assertFalse(self.dialer.keep(CAROL))
        self.dialer.dial(CAROL)
        self.assertEqual(self.calls, [("attempt", "bob.example:9090")])

    def test_membership_dials_share_the_backoff(self):
        """
        A one-shot dial that failed is not retried by itself, and a dial
        of that address within its back-off does nothing.
        """
        self.dialer.dial(CAROL)
        self.fail(self.attempts[-1])
        self.clock.advance(0.4)
        self.dialer.dial(CAROL)
        self.clock.advance(0.1)
        self.dialer.dial(CAROL)
        self.clock.advance(100)
        self.assertEqual(self.calls, [("attempt", "carol.example:9090")] * 2)

    def test_seed_stops_once_its_link_closes_while_the_node_has_others(self):
        """
        When a seed's link closes while the node has other links, the seed
        is not dialled again.  A seed whose attempts fail is redialled
        whatever other links the node has, until it is linked (whoever
        dialled).
        """
        self.dialer.keep(BOB)
        self.attempts[-1].callback(FakeLink(self.calls, BOB))
        self.count = 1
        self.dialer.lost(BOB, refused=False)
        self.clock.advance(0)
        self.assertEqual(self.dialer.seeds, set())
        self.dialer.keep(CAROL)
        self.fail(self.attempts[-1])
        self.clock.advance(0.5)
        self.assertEqual(self.dialer.seeds, {CAROL})
        self.fail(self.attempts[-1])
        self.linked.add(CAROL)
        self.clock.advance(100)
        self.assertEqual(self.dialer.seeds, set())
        self.assertEqual(self.calls, [("attempt", "bob.example:9090")]
                         + [("attempt", "carol.example:9090")] * 2)

    def test_lost_seed_redialled_when_alone(self):
        """
        A seed whose link closed is redialled at once if the node has no
        other link; a refused link counts as a failure (backed off).
        """
        self.dialer.keep(BOB)
        self.attempts[-1].callback(FakeLink(self.calls, BOB))
        self.dialer.lost(BOB, refused=False)
        self.clock.advance(0)
        self.assertEqual(len(self.calls), 2)
        self.attempts[-1].callback(FakeLink(self.calls, BOB))
        self.dialer.lost(BOB, refused=True)
        self.clock.advance(0.4)
        self.assertEqual(len(self.calls), 2)
        self.clock.advance(0.1)
        self.assertEqual(self.calls, [("attempt", "bob.example:9090")] * 3)

    def test_drop_stops_dialling_and_closes(self):
        """
        drop cancels the attempt under way and the retries, closes the
        link the dialer opened and the node's links at the address, and
        says whether there was anything to stop.
        """
        self.dialer.keep(BOB)
        self.fail(self.attempts[-1])
        self.assertTrue(self.dialer.drop(BOB))
        self.clock.advance(100)
        self.assertEqual(
            self.calls, [("attempt", "bob.example:9090"), ("close", "bob.example:9090")]
        )
        self.calls.clear()
        self.dialer.keep(BOB)
        self.assertTrue(self.dialer.drop(BOB))
        self.assertEqual(self.calls, [
            ("attempt", "bob.example:9090"), ("cancel", "bob.example:9090"),
            ("close", "bob.example:9090"),
        ])
        self.calls.clear()
        self.dialer.keep(BOB)
        self.attempts[-1].callback(FakeLink(self.calls, BOB))
        self.assertTrue(self.dialer.drop(BOB))
        self.assertEqual(self.calls, [
            ("attempt", "bob.example:9090"),
            ("link.close", "bob.example:9090", "disconnected by this node's user"),
            ("close", "bob.example:9090"),
        ])
        self.calls.clear()
        self.assertFalse(self.dialer.drop(CAROL))
        self.assertEqual(self.calls, [("close", "carol.example:9090")])

    def test_dropped_address_not_dialled_by_membership(self):
        """
        After drop, membership's dials of the address do nothing, until
        the address is kept again.
        """
        self.dialer.drop(BOB)
        self.dialer.dial(BOB)
        self.assertEqual(self.dialer.dropped, {BOB})
        self.assertTrue(self.dialer.keep(BOB))
        self.assertEqual(self.dialer.dropped, set())
        self.assertEqual(
            self.calls, [("close", "bob.example:9090"), ("attempt", "bob.example:9090")]
        )

    def test_stop_waits_for_the_links_it_opened(self):
        """
        stop fires at once with no link open, else once every link the
        dialer opened is lost.
        """
        self.dialer.keep(BOB)
        self.dialer.dial(CAROL)
        self.attempts[0].callback(FakeLink(self.calls, BOB))
        self.attempts[1].callback(FakeLink(self.calls, CAROL))
        stopped = self.dialer.stop()
        self.assertNoResult(stopped)
        self.dialer.lost(BOB, refused=False)
        self.assertNoResult(stopped)
        self.dialer.lost(CAROL, refused=False)
        self.assertIsNone(self.successResultOf(stopped))
        self.clock.advance(100)
        self.assertEqual(self.calls, [("attempt", "bob.example:9090"),
                                      ("attempt", "carol.example:9090")])
        self.assertIsNone(self.successResultOf(Dialer(
            self.clock, self.attempt, lambda a: False, lambda: 0, self.close).stop()))

    def test_stop(self):
        """
        Once stopped, the dialer aborts what is under way and dials nothing.
        """
        self.dialer.keep(BOB)
        self.dialer.keep(CAROL)
        self.fail(self.attempts[-1])
        self.dialer.stop()
        self.assertFalse(self.dialer.keep(PeerAddress("dave.example", 1)))
        self.dialer.dial(PeerAddress("dave.example", 1))
        self.clock.advance(100)
        self.assertEqual(self.calls, [
            ("attempt", "bob.example:9090"), ("attempt", "carol.example:9090"),
            ("cancel", "bob.example:9090"),
        ])
