"""
Tests for L{p2pchat.log.feed}: one L{Feed} on a temporary store with a
L{Clock} and a recording listener; each test asserts the exact sequence of
what the feed reported upward and did to the sending link.
"""

import os

from nacl.signing import SigningKey
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from p2pchat.log.entry import create_entry
from p2pchat.log.feed import MAX_LAMPORT_LEAD, Feed, IFeedListener
from p2pchat.log.identity import Identity
from p2pchat.log.store import Store, StoreError
from tests.nodes import Network

ME, CAROL = (Identity(SigningKey(bytes([n]) * 32)) for n in (1, 3))


@implementer(IFeedListener)
class RecordingListener:
    """
    Records every report as C{(method, args...)}, entries by id.
    """

    def __init__(self):
        self.calls = []

    def committed(self, entry, source, live):
        self.calls.append(("committed", entry.id, source, live))

    def duplicate(self, source, live):
        self.calls.append(("duplicate", source, live))

    def gap(self, source):
        self.calls.append(("gap", source))

    def failed(self, count, error):
        self.calls.append(("failed", count, str(error)))


class RecordingLink:
    """
    The parts of a link the feed uses, recording C{close}.
    """

    catching_up = False

    def __init__(self):
        self.calls = []

    def describe(self):
        return "carol (link)"

    def close(self, reason, misbehaved=False):
        self.calls.append(("close", reason, misbehaved))


def chat(identity, seq, prev=None, lamport=None, text="hi"):
    return create_entry(
        identity, seq, prev, seq if lamport is None else lamport, 0, "chat",
        {"name": "carol", "text": text},
    )


class FeedTests(SynchronousTestCase):
    def setUp(self):
        directory = self.mktemp()
        os.makedirs(directory)
        self.store = Store(os.path.join(directory, "store.sqlite3"))
        self.store.open()
        self.addCleanup(self.store.close)
        self.clock = Clock()
        self.feed = Feed(self.store, self.clock, wall_clock=lambda: 1_700_000_000.0)
        self.listener = RecordingListener()
        self.feed.subscribe(self.listener)
        self.link = RecordingLink()

    def test_listener_interface(self):
        """
        The recording fake and every listener a node subscribes (its chat
        service and its relay) provide L{IFeedListener}.
        """
        node = Network(self).node("alice")
        self.assertEqual(node.feed.listeners, [node.chat, node.relay])
        for listener in [self.listener] + node.feed.listeners:
            self.assertTrue(verifyObject(IFeedListener, listener))

    def test_authored_entries_reported_once_committed(self):
        """
        A local author's entries chain on its feed and tick the Lamport
        clock; nothing is reported until the batch is committed, then each
        entry once, in order, as local and live.
        """
        first = self.feed.author(ME, "chat", {"name": "me", "text": "one"})
        second = self.feed.author(ME, "chat", {"name": "me", "text": "two"})
        self.assertEqual(self.listener.calls, [])
        self.assertEqual((first.seq, second.seq, second.prev), (1, 2, first.id))
        self.assertEqual((first.lamport, second.lamport), (1, 2))
        self.clock.advance(0)
        self.assertEqual(self.listener.calls, [
            ("committed", first.id, None, True),
            ("committed", second.id, None, True),
        ])
        self.assertEqual(self.store.count(), 2)

    def test_only_own_entries_are_synced(self):
        """
        A batch of received entries is committed as not durable (peers
        send it again if a power failure loses it); a batch holding one of
        this node's own entries is durable.
        """
        calls = []
        real_add = self.store.add_entries

        def add_entries(entries, durable=True):
            calls.append((len(entries), durable))
            return real_add(entries, durable)

        self.patch(self.store, "add_entries", add_entries)
        first = chat(CAROL, 1)
        self.feed.rx_entry(first.to_wire(), self.link)
        self.feed.flush()
        self.feed.rx_entry(chat(CAROL, 2, first.id).to_wire(), self.link)
        self.feed.author(ME, "chat", {"name": "me", "text": "mine"})
        self.feed.flush()
        self.assertEqual(calls, [(1, False), (2, True)])

    def test_received_entry_then_duplicate(self):
        """
        A new entry from a link is committed with its source and liveness;
        the same entry again is reported as a duplicate from that link.
        """
        entry = chat(CAROL, 1)
        self.assertTrue(self.feed.rx_entry(entry.to_wire(), self.link, live=False))
        self.clock.advance(0)
        self.assertFalse(self.feed.rx_entry(entry.to_wire(), self.link))
        self.assertEqual(self.listener.calls, [
            ("committed", entry.id, self.link, False),
            ("duplicate", self.link, True),
        ])
        self.assertEqual((self.feed.entries_received, self.feed.duplicates_received), (2, 1))
        self.assertEqual(self.link.calls, [])

    def test_queued_entry_is_a_duplicate(self):
        """
        An entry still queued (not yet committed) is already held.
        """
        entry = chat(CAROL, 1)
        self.feed.rx_entry(entry.to_wire(), self.link)
        self.assertTrue(self.feed.holds(entry.id))
        self.feed.rx_entry(entry.to_wire(), self.link)
        self.feed.flush()
        self.assertEqual(self.listener.calls, [
            ("duplicate", self.link, True),
            ("committed", entry.id, self.link, True),
        ])

    def test_gap_reported_after_commit(self):
        """
        An entry beyond its author's contiguous run is committed, then the
        link that sent it is reported as holding what this node lacks.
        """
        first = chat(CAROL, 1)
        second = chat(CAROL, 2, first.id)
        self.feed.rx_entry(second.to_wire(), self.link)
        self.feed.flush()
        self.assertEqual(self.listener.calls, [
            ("committed", second.id, self.link, True),
            ("gap", self.link),
        ])

    def test_invalid_entry_closes_link(self):
        """
        An entry that fails its checks closes its link as misbehaving and
        is reported to nobody.
        """
        bad = dict(chat(CAROL, 1).to_wire(), ts=5)
        self.assertFalse(self.feed.rx_entry(bad, self.link))
        self.clock.advance(0)
        self.assertEqual(len(self.link.calls), 1)
        name, reason, misbehaved = self.link.calls[0]
        self.assertEqual((name, misbehaved), ("close", True))
        self.assertTrue(reason.startswith("rejected entry: "), reason)
        self.assertEqual(self.listener.calls, [])
        self.assertEqual(self.store.count(), 0)

    def test_store_failure_reported_and_feed_rewound(self):
        """
        A batch the store refuses is reported as failed (never as
        committed), and the local author's next entry chains onto what is
        really stored.
        """
        kept = self.feed.author(ME, "chat", {"name": "me", "text": "kept"})
        self.feed.flush()

        def full(batch, durable=True):
            raise StoreError("disk full")

        self.patch(self.store, "add_entries", full)
        self.feed.author(ME, "chat", {"name": "me", "text": "lost"})
        self.feed.flush()
        self.assertEqual(self.listener.calls, [
            ("committed", kept.id, None, True),
            ("failed", 1, "disk full"),
        ])
        self.patch(self.store, "add_entries", Store.add_entries.__get__(self.store))
        again = self.feed.author(ME, "chat", {"name": "me", "text": "again"})
        self.assertEqual((again.seq, again.prev), (2, kept.id))

    def test_clock_follows_plausible_entries_only(self):
        """
        The Lamport clock advances past a received entry's time unless it
        is far ahead of the number of entries held.
        """
        self.feed.rx_entry(chat(CAROL, 1, lamport=40).to_wire(), self.link)
        self.feed.flush()
        self.assertEqual(self.feed.lamport, 40)
        far = chat(ME, 1, lamport=MAX_LAMPORT_LEAD + 100)
        self.feed.rx_entry(far.to_wire(), self.link)
        self.feed.flush()
        self.assertEqual(self.feed.lamport, 40)
        self.assertEqual(self.feed.author(ME, "chat", {"name": "me", "text": "x"}).lamport, 41)

    def test_stopped_feed_takes_nothing(self):
        """
        After stop() what was queued is committed and new entries are
        refused.
        """
        entry = self.feed.author(ME, "chat", {"name": "me", "text": "last"})
        self.feed.stop()
        self.assertFalse(self.feed.rx_entry(chat(CAROL, 1).to_wire(), self.link))
        self.assertEqual(self.listener.calls, [("committed", entry.id, None, True)])
